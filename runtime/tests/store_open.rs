//! Opening a durable store: what it creates, and the errors for every way a
//! directory can be unusable.

use donmai_runtime::store::lmdb::{FORMAT_KEY, FORMAT_VERSION, HeedStore};
use donmai_runtime::store::{Store, Table};
use std::fs;
use std::path::Path;

fn open_error(dir: &Path) -> String {
    match HeedStore::open(dir) {
        Ok(_) => panic!("{} opened but should not have", dir.display()),
        Err(err) => err.message,
    }
}

#[test]
fn creates_missing_directories_and_records_the_format() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a/b/store");
    let store = HeedStore::open(&dir).unwrap();
    assert!(dir.join("data.mdb").is_file());
    assert_eq!(store.dir(), dir.canonicalize().unwrap());
    store
        .read(&mut |txn| {
            assert_eq!(
                txn.get(Table::Meta, FORMAT_KEY)?,
                Some(FORMAT_VERSION.to_be_bytes().to_vec())
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_file_in_place_of_the_directory_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("store");
    fs::write(&file, b"hello").unwrap();
    let message = open_error(&file);
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("not a directory"), "{message}");

    let below = file.join("inner");
    let message = open_error(&below);
    assert!(message.contains(&below.display().to_string()), "{message}");
    assert!(message.contains("path is not a directory"), "{message}");
}

#[test]
fn garbage_data_files_are_refused() {
    for garbage in [vec![b'x'; 16 * 1024], b"0123456789".to_vec()] {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("data.mdb"), &garbage).unwrap();
        let message = open_error(root.path());
        assert!(
            message.contains(&root.path().display().to_string()),
            "{message}"
        );
        assert!(
            message.contains("not an LMDB data file"),
            "{} bytes of garbage: {message}",
            garbage.len()
        );
        // Refusing must not have touched the file.
        assert_eq!(fs::read(root.path().join("data.mdb")).unwrap(), garbage);
    }
}

#[test]
fn a_store_from_a_future_version_is_refused() {
    let root = tempfile::tempdir().unwrap();
    {
        let store = HeedStore::open(root.path()).unwrap();
        store
            .write(&mut |txn| txn.put(Table::Meta, FORMAT_KEY, &(FORMAT_VERSION + 1).to_be_bytes()))
            .unwrap();
    }
    let message = open_error(root.path());
    assert!(
        message.contains(&format!("format version {}", FORMAT_VERSION + 1)),
        "{message}"
    );
    assert!(message.contains("use a newer donmai"), "{message}");
}

#[test]
fn a_damaged_format_record_is_refused() {
    let root = tempfile::tempdir().unwrap();
    {
        let store = HeedStore::open(root.path()).unwrap();
        store
            .write(&mut |txn| txn.put(Table::Meta, FORMAT_KEY, b"v1"))
            .unwrap();
    }
    let message = open_error(root.path());
    assert!(message.contains("format record is damaged"), "{message}");
}

#[test]
fn data_without_a_format_record_is_not_a_donmai_store() {
    let root = tempfile::tempdir().unwrap();
    {
        let store = HeedStore::open(root.path()).unwrap();
        store
            .write(&mut |txn| {
                txn.put(Table::Runs, b"r1", b"{}")?;
                txn.delete(Table::Meta, FORMAT_KEY).map(drop)
            })
            .unwrap();
    }
    let message = open_error(root.path());
    assert!(message.contains("runs table holds data"), "{message}");
    assert!(message.contains("no format record"), "{message}");
}

#[test]
fn a_foreign_lmdb_environment_is_refused_untouched() {
    use heed::types::Bytes;
    use heed::{CommitOrAbort, EnvOpenOptions};
    let root = tempfile::tempdir().unwrap();
    {
        // SAFETY: a fresh directory that nothing else opens.
        let env = unsafe {
            EnvOpenOptions::new()
                .max_dbs(4)
                .map_size(1 << 20)
                .open(root.path())
                .unwrap()
        };
        let wtxn = env.write_txn().unwrap();
        let db = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                opener
                    .create_database::<Bytes, Bytes>(wtxn, Some("somebody-elses"))
                    .map(CommitOrAbort::<_, ()>::Commit)
            })
            .unwrap()
            .unwrap_commit();
        let mut wtxn = env.write_txn().unwrap();
        db.put(&mut wtxn, b"k", b"v").unwrap();
        wtxn.commit().unwrap();
    }
    let before = fs::read(root.path().join("data.mdb")).unwrap();
    let message = open_error(root.path());
    assert!(message.contains("not a donmai store"), "{message}");
    assert!(message.contains("somebody-elses"), "{message}");
    assert_eq!(fs::read(root.path().join("data.mdb")).unwrap(), before);
}

#[cfg(unix)]
#[test]
fn an_unwritable_directory_is_refused_with_its_path() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("locked");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o500)).unwrap();
    // Permission bits do not bind a privileged user (root in a container):
    // only then is there nothing to test.
    if fs::write(dir.join("probe"), b"").is_ok() {
        eprintln!("permissions are not enforced for this user; skipping");
        return;
    }
    let message = open_error(&dir);
    assert!(message.contains(&dir.display().to_string()), "{message}");
    assert!(message.contains("permission denied"), "{message}");
}
