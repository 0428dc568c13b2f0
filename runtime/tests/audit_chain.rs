//! The audit chain against tampering, in both stores and in export files.

use donmai_runtime::audit::{
    self, AuditEntry, AuditError, AuditErrorKind, AuditSigner, ChainReport,
};
use donmai_runtime::keys::{KeyId, TrustedKeys, generate_signing_key};
use donmai_runtime::store::lmdb::HeedStore;
use donmai_runtime::store::memory::MemoryStore;
use donmai_runtime::store::{ReadTxn, Store, StoreError, Table};
use std::path::Path;

const EVENTS: u64 = 10;

struct Fixture {
    store: Box<dyn Store>,
    signer: AuditSigner,
    /// The head after each append: `anchors[n - 1]` is the anchor at length n.
    anchors: Vec<ChainReport>,
    _dir: Option<tempfile::TempDir>,
}

fn event(n: u64) -> Vec<u8> {
    format!(r#"{{"run":"r1","event":"step.finished","n":{n}}}"#).into_bytes()
}

fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

impl Fixture {
    fn new(durable: bool) -> Fixture {
        let (store, dir): (Box<dyn Store>, _) = if durable {
            let dir = tempfile::tempdir().unwrap();
            (Box::new(HeedStore::open(dir.path()).unwrap()), Some(dir))
        } else {
            (Box::new(MemoryStore::new()), None)
        };
        let signer = AuditSigner::new(generate_signing_key().unwrap());
        let mut fixture = Fixture {
            store,
            signer,
            anchors: Vec::new(),
            _dir: dir,
        };
        for n in 1..=EVENTS {
            fixture.append(&event(n));
        }
        fixture
    }

    fn append(&mut self, event: &[u8]) -> AuditEntry {
        let mut appended = None;
        let signer = &self.signer;
        self.store
            .write(&mut |txn| {
                // The state change the event records, in the same transaction.
                txn.put(Table::Runs, b"r1", event)?;
                appended = Some(audit::append(txn, signer, event)?);
                Ok(())
            })
            .unwrap();
        let head = self.read(|txn| audit::head(txn).unwrap().unwrap());
        self.anchors.push(head);
        appended.unwrap()
    }

    fn trusted(&self) -> TrustedKeys {
        TrustedKeys::new().with(self.signer.verifying_key())
    }

    fn read<T>(&self, mut f: impl FnMut(&dyn ReadTxn) -> T) -> T {
        let mut out = None;
        self.store
            .read(&mut |txn| {
                out = Some(f(txn));
                Ok(())
            })
            .unwrap();
        out.unwrap()
    }

    fn verify(&self) -> Result<ChainReport, AuditError> {
        let keys = self.trusted();
        self.read(|txn| audit::verify(txn, &keys))
    }

    fn verify_anchored(&self, anchor: &ChainReport) -> Result<ChainReport, AuditError> {
        let keys = self.trusted();
        self.read(|txn| audit::verify_anchored(txn, &keys, anchor))
    }

    fn entry(&self, seq: u64) -> AuditEntry {
        self.read(|txn| {
            AuditEntry::decode(&txn.get(Table::Audit, &key(seq)).unwrap().unwrap()).unwrap()
        })
    }

    fn tamper(&self, mut f: impl FnMut(&mut dyn donmai_runtime::store::WriteTxn)) {
        self.store
            .write(&mut |txn| {
                f(txn);
                Ok(())
            })
            .unwrap();
    }
}

fn both(test: impl Fn(Fixture)) {
    test(Fixture::new(false));
    test(Fixture::new(true));
}

fn failure(result: Result<ChainReport, AuditError>) -> AuditError {
    match result {
        Ok(report) => panic!("verification passed ({report}) but should have failed"),
        Err(err) => err,
    }
}

#[test]
fn an_intact_chain_verifies_and_reports_its_head() {
    both(|fixture| {
        let report = fixture.verify().unwrap();
        assert_eq!(report.length, EVENTS);
        assert_eq!(report, *fixture.anchors.last().unwrap());
        // Every earlier anchor is extended by the chain.
        for anchor in &fixture.anchors {
            assert_eq!(fixture.verify_anchored(anchor).unwrap(), report);
        }
        let first = fixture.entry(1);
        assert_eq!(first.prev_hash, [0; 32]);
        assert_eq!(fixture.entry(2).prev_hash, first.hash());
    });
}

#[test]
fn an_empty_chain_verifies() {
    let store = MemoryStore::new();
    store
        .read(&mut |txn| {
            let report = audit::verify(txn, &TrustedKeys::new()).unwrap();
            assert_eq!(report.length, 0);
            assert_eq!(audit::head(txn)?, None);
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_changed_event_is_found() {
    both(|fixture| {
        fixture.tamper(|txn| {
            txn.put(Table::AuditEvents, &key(5), b"{\"forged\":true}")
                .unwrap()
        });
        let err = failure(fixture.verify());
        assert_eq!(err.seq, Some(5));
        assert!(
            matches!(err.kind, AuditErrorKind::DigestMismatch { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("audit entry 5: the stored event"),
            "{err}"
        );
    });
}

#[test]
fn a_changed_entry_is_found() {
    both(|fixture| {
        // Re-pointing the digest at a forged event, without the key.
        let forged = b"{\"forged\":true}";
        let mut entry = fixture.entry(5);
        entry.event_digest = sha256(forged);
        fixture.tamper(|txn| {
            txn.put(Table::AuditEvents, &key(5), forged).unwrap();
            txn.put(Table::Audit, &key(5), &entry.encode()).unwrap();
        });
        let err = failure(fixture.verify());
        assert_eq!(err.seq, Some(5));
        assert!(
            matches!(err.kind, AuditErrorKind::BadSignature { .. }),
            "{err}"
        );
    });
    both(|fixture| {
        let mut entry = fixture.entry(3);
        entry.signature[10] ^= 1;
        fixture.tamper(|txn| txn.put(Table::Audit, &key(3), &entry.encode()).unwrap());
        let err = failure(fixture.verify());
        assert_eq!(err.seq, Some(3));
        assert!(
            matches!(err.kind, AuditErrorKind::BadSignature { .. }),
            "{err}"
        );
    });
    both(|fixture| {
        fixture.tamper(|txn| txn.put(Table::Audit, &key(7), b"\x01garbage").unwrap());
        let err = failure(fixture.verify());
        assert_eq!(err.seq, Some(7));
        assert!(matches!(err.kind, AuditErrorKind::Malformed(_)), "{err}");
    });
}

#[test]
fn a_dropped_entry_is_found() {
    both(|fixture| {
        fixture.tamper(|txn| {
            txn.delete(Table::Audit, &key(4)).unwrap();
            txn.delete(Table::AuditEvents, &key(4)).unwrap();
        });
        let err = failure(fixture.verify());
        assert_eq!(err.seq, Some(4));
        assert_eq!(
            err.kind,
            AuditErrorKind::Gap {
                expected: 4,
                found: 5
            }
        );
    });
    both(|fixture| {
        // Dropped and renumbered: every later signature covers the old seq.
        fixture.tamper(|txn| {
            for seq in 4..EVENTS {
                let next_entry = txn.get(Table::Audit, &key(seq + 1)).unwrap().unwrap();
                let next_event = txn.get(Table::AuditEvents, &key(seq + 1)).unwrap().unwrap();
                let mut entry = AuditEntry::decode(&next_entry).unwrap();
                entry.seq = seq;
                txn.put(Table::Audit, &key(seq), &entry.encode()).unwrap();
                txn.put(Table::AuditEvents, &key(seq), &next_event).unwrap();
            }
            txn.delete(Table::Audit, &key(EVENTS)).unwrap();
            txn.delete(Table::AuditEvents, &key(EVENTS)).unwrap();
        });
        let err = failure(fixture.verify());
        assert_eq!(err.seq, Some(4));
        assert!(
            matches!(err.kind, AuditErrorKind::BadSignature { .. }),
            "{err}"
        );
    });
}

#[test]
fn reordered_entries_are_found() {
    both(|fixture| {
        fixture.tamper(|txn| {
            for table in [Table::Audit, Table::AuditEvents] {
                let five = txn.get(table, &key(5)).unwrap().unwrap();
                let six = txn.get(table, &key(6)).unwrap().unwrap();
                txn.put(table, &key(5), &six).unwrap();
                txn.put(table, &key(6), &five).unwrap();
            }
        });
        let err = failure(fixture.verify());
        assert_eq!(err.seq, Some(5));
        assert_eq!(err.kind, AuditErrorKind::OutOfPlace { claimed: 6 });
    });
}

/// Cuts `count` entries off the tail; `update_head` makes the cut clean.
fn truncate(fixture: &Fixture, count: u64, update_head: bool) {
    let new_head = fixture.anchors[(EVENTS - count - 1) as usize];
    fixture.tamper(|txn| {
        for seq in EVENTS - count + 1..=EVENTS {
            txn.delete(Table::Audit, &key(seq)).unwrap();
            txn.delete(Table::AuditEvents, &key(seq)).unwrap();
        }
        if update_head {
            let record = [&key(new_head.length)[..], &new_head.head_hash].concat();
            txn.put(Table::Meta, b"audit/head", &record).unwrap();
        }
    });
}

#[test]
fn a_clean_tail_cut_needs_an_anchor() {
    both(|fixture| {
        truncate(&fixture, 2, true);
        // On its own the shorter chain is consistent: nothing to see.
        let report = fixture.verify().unwrap();
        assert_eq!(report.length, EVENTS - 2);
        // Against the anchor published at the full length, the cut shows.
        let anchor = fixture.anchors.last().unwrap();
        let err = failure(fixture.verify_anchored(anchor));
        assert_eq!(err.seq, Some(EVENTS - 1));
        assert_eq!(
            err.kind,
            AuditErrorKind::Truncated {
                anchor_length: EVENTS,
                length: EVENTS - 2
            }
        );
        // Older anchors are still extended.
        fixture.verify_anchored(&fixture.anchors[4]).unwrap();
    });
}

#[test]
fn a_tail_cut_that_leaves_the_head_record_is_found() {
    both(|fixture| {
        truncate(&fixture, 3, false);
        let err = failure(fixture.verify());
        assert!(
            matches!(err.kind, AuditErrorKind::HeadMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("cut off the tail"), "{err}");
    });
    both(|fixture| {
        fixture.tamper(|txn| {
            txn.delete(Table::Meta, b"audit/head").unwrap();
        });
        let err = failure(fixture.verify());
        assert!(err.to_string().contains("no head record"), "{err}");
        // And appending refuses to start a second chain over the first.
        let signer = &fixture.signer;
        let refused = fixture
            .store
            .write(&mut |txn| audit::append(txn, signer, b"{}").map(drop))
            .unwrap_err();
        assert!(refused.message.contains("no head record"), "{refused}");
    });
}

#[test]
fn an_unsigned_event_is_found() {
    both(|fixture| {
        fixture.tamper(|txn| {
            txn.put(Table::AuditEvents, &key(EVENTS + 1), b"{}")
                .unwrap()
        });
        let err = failure(fixture.verify());
        assert_eq!(err.seq, Some(EVENTS + 1));
        assert_eq!(err.kind, AuditErrorKind::UnsignedEvent);
    });
}

#[test]
fn entries_by_an_untrusted_key_are_found() {
    both(|fixture| {
        let stranger = TrustedKeys::new().with(generate_signing_key().unwrap().verifying_key());
        let err = fixture.read(|txn| failure(audit::verify(txn, &stranger)));
        assert_eq!(err.seq, Some(1));
        let key_id = fixture.signer.key_id();
        assert_eq!(err.kind, AuditErrorKind::UnknownKey { key_id });
        assert_eq!(
            err.to_string(),
            format!("audit entry 1: signed by key {key_id}, which is not a trusted key")
        );
    });
}

#[test]
fn entries_name_their_key_by_its_eight_byte_id() {
    both(|fixture| {
        let key_id = fixture.signer.key_id();
        assert_eq!(key_id, KeyId::of(&fixture.signer.verifying_key()));
        let stored = fixture.read(|txn| txn.get(Table::Audit, &key(1)).unwrap().unwrap());
        assert_eq!(stored.len(), 145);
        assert_eq!(&stored[73..81], key_id.as_bytes());
        assert_eq!(fixture.entry(1).key_id, key_id);
        // The store records the public key under the id's hex digits.
        let record = format!("audit/key/{key_id}");
        assert_eq!(record.len(), "audit/key/".len() + 16);
        let public = fixture.read(|txn| txn.get(Table::Meta, record.as_bytes()).unwrap());
        assert_eq!(
            public.as_deref(),
            Some(&fixture.signer.verifying_key().as_bytes()[..])
        );
        let from_store = fixture.read(|txn| audit::trusted_keys_from_store(txn).unwrap());
        assert_eq!(from_store, fixture.trusted());
    });
}

#[test]
fn damaged_public_key_records_are_refused() {
    let other = generate_signing_key().unwrap().verifying_key();
    let check = |record: &[u8], value: &[u8], expected: &str| {
        let fixture = Fixture::new(false);
        fixture.tamper(|txn| txn.put(Table::Meta, record, value).unwrap());
        let err = fixture
            .read(|txn| audit::trusted_keys_from_store(txn))
            .unwrap_err();
        assert!(matches!(err.kind, AuditErrorKind::Malformed(_)), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
    };
    // Another key filed under a key id that is not its own.
    let stranger = KeyId::of(&generate_signing_key().unwrap().verifying_key());
    check(
        format!("audit/key/{stranger}").as_bytes(),
        other.as_bytes(),
        &format!(
            "the public key stored as {stranger} has id {}",
            KeyId::of(&other)
        ),
    );
    // The text ids of the earlier entry encoding.
    check(
        format!("audit/key/ed25519:{}", KeyId::of(&other)).as_bytes(),
        other.as_bytes(),
        "is not named by a key id",
    );
    check(
        format!("audit/key/{}", KeyId::of(&other)).as_bytes(),
        &[7; 31],
        "is invalid",
    );
}

#[test]
fn a_forger_with_another_key_is_caught_by_pinned_keys() {
    both(|mut fixture| {
        let honest = fixture.trusted();
        // The forger cuts the chain to 5 entries and re-appends from there
        // with a key of their own, which the store then records.
        truncate(&fixture, EVENTS - 5, true);
        fixture.signer = AuditSigner::new(generate_signing_key().unwrap());
        for n in 6..=EVENTS {
            fixture.append(format!(r#"{{"forged":{n}}}"#).as_bytes());
        }
        let from_store = fixture.read(|txn| audit::trusted_keys_from_store(txn).unwrap());
        assert_eq!(from_store.len(), 2);
        // Trusting whatever the store lists accepts the forgery...
        assert!(fixture.read(|txn| audit::verify(txn, &from_store)).is_ok());
        // ...pinning the honest key does not.
        let err = fixture.read(|txn| failure(audit::verify(txn, &honest)));
        assert_eq!(err.seq, Some(6));
        assert!(
            matches!(err.kind, AuditErrorKind::UnknownKey { .. }),
            "{err}"
        );
    });
}

#[test]
fn history_rewritten_with_the_real_key_breaks_the_anchor() {
    both(|mut fixture| {
        let published = *fixture.anchors.last().unwrap();
        truncate(&fixture, EVENTS - 3, true);
        for n in 4..=EVENTS {
            fixture.append(format!(r#"{{"rewritten":{n}}}"#).as_bytes());
        }
        assert_eq!(fixture.verify().unwrap().length, EVENTS);
        let err = failure(fixture.verify_anchored(&published));
        assert_eq!(err.seq, Some(EVENTS));
        assert!(
            matches!(err.kind, AuditErrorKind::AnchorMismatch { .. }),
            "{err}"
        );
    });
}

#[test]
fn a_failed_transaction_appends_nothing() {
    both(|mut fixture| {
        let signer = &fixture.signer;
        let result = fixture.store.write(&mut |txn| {
            audit::append(txn, signer, b"{\"lost\":true}")?;
            Err(StoreError::new("the transition failed"))
        });
        assert!(result.is_err());
        assert_eq!(fixture.verify().unwrap().length, EVENTS);
        assert_eq!(fixture.append(b"{}").seq, EVENTS + 1);
        assert_eq!(fixture.verify().unwrap().length, EVENTS + 1);
    });
}

#[test]
fn rotated_keys_each_verify_their_entries() {
    both(|mut fixture| {
        let first = fixture.signer.verifying_key();
        fixture.signer = AuditSigner::new(generate_signing_key().unwrap());
        fixture.append(b"{\"after\":\"rotation\"}");
        let both_keys = fixture.trusted().with(first);
        let report = fixture.read(|txn| audit::verify(txn, &both_keys)).unwrap();
        assert_eq!(report.length, EVENTS + 1);
        let only_first = TrustedKeys::new().with(first);
        let err = fixture.read(|txn| failure(audit::verify(txn, &only_first)));
        assert_eq!(err.seq, Some(EVENTS + 1));
    });
}

#[test]
fn the_store_signer_key_lives_in_the_store_directory() {
    let dir = tempfile::tempdir().unwrap();
    let signer = AuditSigner::for_store(dir.path()).unwrap();
    let again = AuditSigner::for_store(dir.path()).unwrap();
    assert_eq!(signer.key_id(), again.key_id());
    assert_eq!(signer.key_id(), KeyId::of(&signer.verifying_key()));
    assert!(dir.path().join(audit::AUDIT_KEY_FILE).is_file());
    assert!(!format!("{signer:?}").contains("secret"));
}

// ---------------------------------------------------------------------------
// Exports.

fn export_to(fixture: &Fixture, path: &Path) -> ChainReport {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let report = fixture.read(|txn| audit::export(txn, &mut file).unwrap());
    drop(file);
    report
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

#[test]
fn an_export_verifies_offline() {
    both(|fixture| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let exported = export_to(&fixture, &path);
        assert_eq!(exported, fixture.verify().unwrap());
        let embedded = audit::export_keys(&path).unwrap();
        assert_eq!(embedded, fixture.trusted());
        assert_eq!(
            audit::verify_export(&path, &fixture.trusted()).unwrap(),
            exported
        );
        let anchor = fixture.anchors[6];
        assert_eq!(
            audit::verify_export_anchored(&path, &fixture.trusted(), &anchor).unwrap(),
            exported
        );
        let text = lines(&path);
        assert_eq!(text.len() as u64, EVENTS + 2);
        assert!(
            text[0].starts_with(&format!(
                r#"{{"format":"donmai-audit-export","version":2,"keys":[{{"keyId":"{}","publicKey":""#,
                fixture.signer.key_id()
            )),
            "{}",
            text[0]
        );
        assert!(
            text[1].contains(&format!(r#""keyId":"{}""#, fixture.signer.key_id())),
            "{}",
            text[1]
        );
        assert!(
            text[1].contains(r#""event":"{\"run\":\"r1\""#),
            "{}",
            text[1]
        );
        assert!(
            text.last()
                .unwrap()
                .starts_with(r#"{"end":{"length":10,"headHash":""#)
        );
    });
}

#[test]
fn binary_events_export_as_hex() {
    let mut fixture = Fixture::new(false);
    fixture.append(&[0xff, 0x00, 0xfe]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    export_to(&fixture, &path);
    assert!(lines(&path)[EVENTS as usize + 1].contains(r#""eventHex":"ff00fe""#));
    assert_eq!(
        audit::verify_export(&path, &fixture.trusted())
            .unwrap()
            .length,
        EVENTS + 1
    );
}

#[test]
fn tampered_exports_are_found_with_their_line() {
    let fixture = Fixture::new(false);
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("audit.jsonl");
    let exported = export_to(&fixture, &original);
    let keys = fixture.trusted();
    let tampered = dir.path().join("tampered.jsonl");
    let check = |edit: &dyn Fn(&mut Vec<String>)| {
        let mut text = lines(&original);
        edit(&mut text);
        assert_ne!(text, lines(&original), "the edit changed nothing");
        write_lines(&tampered, &text);
        failure(audit::verify_export(&tampered, &keys))
    };

    // Entry 5 is on line 6 (the header is line 1).
    let err = check(&|text| text[5] = text[5].replace(r#"\"n\":5"#, r#"\"n\":50"#));
    assert_eq!((err.seq, err.line), (Some(5), Some(6)));
    assert!(
        matches!(err.kind, AuditErrorKind::DigestMismatch { .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("audit entry 5 (line 6):"),
        "{err}"
    );

    let err = check(&|text| {
        text.remove(5);
    });
    assert_eq!(err.seq, Some(5));
    assert_eq!(
        err.kind,
        AuditErrorKind::Gap {
            expected: 5,
            found: 6
        }
    );

    let err = check(&|text| text.swap(5, 6));
    assert_eq!(err.seq, Some(5));
    assert_eq!(
        err.kind,
        AuditErrorKind::Gap {
            expected: 5,
            found: 6
        }
    );

    let err = check(&|text| {
        let sig_at = text[3].find(r#""sig":""#).unwrap() + 7;
        let flipped = if &text[3][sig_at..sig_at + 1] == "0" {
            "1"
        } else {
            "0"
        };
        text[3].replace_range(sig_at..sig_at + 1, flipped);
    });
    assert_eq!(err.seq, Some(3));
    assert!(
        matches!(err.kind, AuditErrorKind::BadSignature { .. }),
        "{err}"
    );

    // Cut short: the closing line is gone.
    let err = check(&|text| text.truncate(8));
    assert!(err.to_string().contains("the file is truncated"), "{err}");

    // A closing line that lies about the length.
    let err = check(&|text| {
        let last = text.len() - 1;
        text[last] = text[last].replace(r#""length":10"#, r#""length":11"#);
    });
    assert_eq!(err.line, Some(EVENTS as usize + 2));
    assert!(err.to_string().contains("records 11 entries"), "{err}");

    // Not an export at all.
    let err = check(&|text| text[0] = "{\"hello\":1}".to_string());
    assert_eq!(err.line, Some(1));

    let err = check(&|text| text[4] = "not json".to_string());
    assert_eq!(err.line, Some(5));

    // Key ids: the header's must name its key, an entry's must be one.
    let key_id = fixture.signer.key_id().to_string();
    let err = check(&|text| text[0] = text[0].replace(&key_id, "0123456789abcdef"));
    assert_eq!(err.line, Some(1));
    assert!(
        err.to_string()
            .contains("the public key listed as 0123456789abcdef has id"),
        "{err}"
    );
    let err = check(&|text| text[0] = text[0].replace(&key_id, &format!("ed25519:{key_id}")));
    assert_eq!(err.line, Some(1));
    assert!(
        err.to_string()
            .contains("is invalid: a key id is 16 hex digits"),
        "{err}"
    );
    let err = check(&|text| text[2] = text[2].replace(&key_id, &key_id[..14]));
    assert_eq!((err.seq, err.line), (Some(2), Some(3)));
    assert!(
        err.to_string().contains("keyId is not 8 bytes of hex"),
        "{err}"
    );
    // An entry naming a key that is not trusted: the error names it.
    let err = check(&|text| text[2] = text[2].replace(&key_id, "0123456789abcdef"));
    assert_eq!(
        err.kind,
        AuditErrorKind::UnknownKey {
            key_id: "0123456789abcdef".parse().unwrap()
        }
    );
    // An export written before key ids had one width.
    let err = check(&|text| text[0] = text[0].replace(r#""version":2"#, r#""version":1"#));
    assert!(
        err.to_string()
            .contains("export version 1 is not supported (this donmai reads version 2)"),
        "{err}"
    );

    // A clean cut, closing line rewritten: only an anchor shows it.
    let mut text = lines(&original);
    let kept = fixture.anchors[7];
    text.truncate(9);
    text.push(format!(
        r#"{{"end":{{"length":8,"headHash":"{}"}}}}"#,
        kept.head_hash
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    write_lines(&tampered, &text);
    assert_eq!(audit::verify_export(&tampered, &keys).unwrap(), kept);
    let err = failure(audit::verify_export_anchored(&tampered, &keys, &exported));
    assert_eq!(
        err.kind,
        AuditErrorKind::Truncated {
            anchor_length: EVENTS,
            length: 8
        }
    );

    let missing = failure(audit::verify_export(&dir.path().join("nope.jsonl"), &keys));
    assert!(missing.to_string().contains("does not exist"), "{missing}");
}
