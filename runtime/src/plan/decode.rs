//! Reads `.dplan` bytes back into a [`Plan`] (layout in [`super::wire`]).
//!
//! The input is untrusted. Every read is bounds-checked and every failure is
//! a [`PlanError`] naming the section and byte offset, never a panic. A list
//! count is checked against the bytes left (each item takes at least a known
//! number of bytes) before anything is allocated, so memory stays within a
//! small multiple of the input size; recursion stops at the nesting limits
//! of [`super::limits`]. Only the shortest encoding of each number is
//! accepted, so an accepted plan re-encodes to exactly the bytes read and
//! its hash is its identity.
//!
//! The hash is checked before the sections are read, so a damaged file is
//! reported as damaged rather than by whatever its damage looks like.

use std::ops::Range;

use ed25519_dalek::Signature;

use crate::keys::KeyId;

use super::error::{PlanError, PlanErrorKind, Section};
use super::id::{PlanId, plan_hash};
use super::limits::{MAX_PREDICATE_DEPTH, MAX_TEMPLATE_DEPTH};
use super::model::*;
use super::wire::{
    HASH_LEN, KEY_ID_LEN, MAGIC, PREAMBLE_LEN, SIGNATURE_BLOCK_LEN, SIGNATURE_MARKER,
    TABLE_ENTRY_LEN,
};

/// A decoded plan with its id and, if signed, who signed it. The signature
/// is not checked here (that needs the trusted keys: see
/// [`DecodedPlan::check_signature`]); the hash is.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedPlan {
    plan: Plan,
    id: PlanId,
    signature: Option<PlanSignature>,
    /// Where the signature block starts (or would start): errors about the
    /// signature point there.
    signature_offset: u64,
}

/// The signature block of a signed plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanSignature {
    pub key_id: KeyId,
    pub signature: Signature,
}

impl DecodedPlan {
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn into_plan(self) -> Plan {
        self.plan
    }

    /// SHA-256 of the body, checked against the one stored in the file.
    pub fn id(&self) -> PlanId {
        self.id
    }

    pub fn signature(&self) -> Option<&PlanSignature> {
        self.signature.as_ref()
    }

    pub fn is_signed(&self) -> bool {
        self.signature.is_some()
    }

    /// The id of the key the plan claims to be signed by (not yet checked).
    pub fn signer(&self) -> Option<KeyId> {
        self.signature.map(|signature| signature.key_id)
    }

    pub(super) fn signature_offset(&self) -> u64 {
        self.signature_offset
    }
}

/// Decodes a `.dplan`: checks magic, version, section table, hash and the
/// shape of the signature block, then reads every section.
pub fn decode(bytes: &[u8]) -> Result<DecodedPlan, PlanError> {
    let frame = read_frame(bytes)?;
    Ok(DecodedPlan {
        plan: read_sections(bytes, &frame)?,
        id: frame.id,
        signature: frame.signature,
        signature_offset: frame.body.len() as u64 + HASH_LEN as u64,
    })
}

/// Reads the sections of a file whose frame [`read_frame`] accepted.
pub(super) fn read_sections(bytes: &[u8], frame: &Frame<'_>) -> Result<Plan> {
    let section = |i: usize| Reader {
        file: bytes,
        pos: frame.sections[i].start,
        end: frame.sections[i].end,
        section: Section::BODY[i],
    };
    // Indices follow `Section::BODY`.
    Ok(Plan {
        header: section(0).read_all(|r| r.header(frame.version))?,
        constants: section(1).read_all(|r| r.list("constants", 1, Reader::constant))?,
        verbs: section(2).read_all(|r| r.list("verbs", 11, Reader::verb))?,
        exprs: section(3).read_all(|r| r.list("expressions", 10, Reader::expr))?,
        levels: section(4).read_all(|r| r.list("levels", 5, Reader::level))?,
        sources: section(5).read_all(|r| r.list("source files", 33, Reader::source_file))?,
    })
}

/// The id of a `.dplan` (its hash, checked against its body) without
/// reading its sections.
pub fn plan_id(bytes: &[u8]) -> Result<PlanId, PlanError> {
    read_frame(bytes).map(|frame| frame.id)
}

/// Everything of a plan file outside its sections' contents.
pub(super) struct Frame<'a> {
    pub version: u16,
    /// The byte ranges in the file of the sections of [`Section::BODY`].
    pub sections: [Range<usize>; Section::BODY.len()],
    pub body: &'a [u8],
    pub id: PlanId,
    pub signature: Option<PlanSignature>,
}

pub(super) fn read_frame(bytes: &[u8]) -> Result<Frame<'_>, PlanError> {
    let fail = |section, offset: usize, kind| Err(PlanError::new(section, offset as u64, kind));
    let truncated = |section, offset: usize, what, needed: usize| {
        fail(
            section,
            offset,
            PlanErrorKind::Truncated {
                what,
                needed: needed as u64,
                available: bytes.len().saturating_sub(offset) as u64,
            },
        )
    };

    let seen = bytes.len().min(MAGIC.len());
    if bytes[..seen] != MAGIC[..seen] {
        return fail(Section::Preamble, 0, PlanErrorKind::BadMagic);
    }
    if bytes.len() < PREAMBLE_LEN {
        let (offset, what, needed) = match bytes.len() {
            n if n < MAGIC.len() => (0, "the magic bytes", MAGIC.len()),
            n if n < MAGIC.len() + 2 => (MAGIC.len(), "the format version", 2),
            _ => (MAGIC.len() + 2, "the section count", 2),
        };
        return truncated(Section::Preamble, offset, what, needed);
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return fail(
            Section::Preamble,
            MAGIC.len(),
            PlanErrorKind::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            },
        );
    }
    let count = u16::from_le_bytes([bytes[10], bytes[11]]);
    if usize::from(count) != Section::BODY.len() {
        return fail(
            Section::Preamble,
            MAGIC.len() + 2,
            PlanErrorKind::SectionCount {
                found: count,
                expected: Section::BODY.len() as u16,
            },
        );
    }

    let table_end = PREAMBLE_LEN + TABLE_ENTRY_LEN * Section::BODY.len();
    let mut sections: [Range<usize>; Section::BODY.len()] = Default::default();
    let mut start = table_end;
    for (i, expected) in Section::BODY.into_iter().enumerate() {
        let entry = PREAMBLE_LEN + TABLE_ENTRY_LEN * i;
        let Some(raw) = bytes.get(entry..entry + TABLE_ENTRY_LEN) else {
            return truncated(
                Section::SectionTable,
                entry,
                "a section table entry",
                TABLE_ENTRY_LEN,
            );
        };
        let id = raw[0];
        if Some(id) != expected.id() {
            return fail(
                Section::SectionTable,
                entry,
                PlanErrorKind::UnexpectedSection {
                    found: id,
                    expected,
                },
            );
        }
        let mut length = [0; 8];
        length.copy_from_slice(&raw[1..]);
        let length = u64::from_le_bytes(length);
        let available = bytes.len().saturating_sub(start);
        let end = usize::try_from(length)
            .ok()
            .filter(|&length| length <= available)
            .map(|length| start + length);
        let Some(end) = end else {
            return fail(
                expected,
                entry + 1,
                PlanErrorKind::LengthPastEnd {
                    what: "the section length",
                    length,
                    available: available as u64,
                },
            );
        };
        sections[i] = start..end;
        start = end;
    }

    let body_end = start;
    let Some(stored) = bytes.get(body_end..body_end + HASH_LEN) else {
        return truncated(Section::Hash, body_end, "the plan hash", HASH_LEN);
    };
    let body = &bytes[..body_end];
    let computed = plan_hash(body);
    let mut stored_id = [0; HASH_LEN];
    stored_id.copy_from_slice(stored);
    let stored = PlanId(stored_id);
    if stored != computed {
        return fail(
            Section::Hash,
            body_end,
            PlanErrorKind::HashMismatch { stored, computed },
        );
    }

    let trailer_start = body_end + HASH_LEN;
    let trailer = &bytes[trailer_start..];
    let signature = if trailer.is_empty() {
        None
    } else {
        let marked = trailer.len().min(SIGNATURE_MARKER.len());
        if trailer[..marked] != SIGNATURE_MARKER[..marked] {
            return fail(
                Section::Signature,
                trailer_start,
                PlanErrorKind::TrailingBytes {
                    count: trailer.len() as u64,
                },
            );
        }
        if trailer.len() < SIGNATURE_BLOCK_LEN {
            return truncated(
                Section::Signature,
                trailer_start,
                "the signature block",
                SIGNATURE_BLOCK_LEN,
            );
        }
        if trailer.len() > SIGNATURE_BLOCK_LEN {
            return fail(
                Section::Signature,
                trailer_start + SIGNATURE_BLOCK_LEN,
                PlanErrorKind::TrailingBytes {
                    count: (trailer.len() - SIGNATURE_BLOCK_LEN) as u64,
                },
            );
        }
        let mut key_id = [0; KEY_ID_LEN];
        let key_start = SIGNATURE_MARKER.len();
        key_id.copy_from_slice(&trailer[key_start..key_start + KEY_ID_LEN]);
        let mut signature = [0; 64];
        signature.copy_from_slice(&trailer[key_start + KEY_ID_LEN..]);
        Some(PlanSignature {
            key_id: KeyId(key_id),
            signature: Signature::from_bytes(&signature),
        })
    };

    Ok(Frame {
        version,
        sections,
        body,
        id: computed,
        signature,
    })
}

type Result<T, E = PlanError> = std::result::Result<T, E>;

/// A cursor over one section of the file; offsets in errors are absolute.
struct Reader<'a> {
    file: &'a [u8],
    pos: usize,
    end: usize,
    section: Section,
}

impl<'a> Reader<'a> {
    fn error_at(&self, offset: usize, kind: PlanErrorKind) -> PlanError {
        PlanError::new(self.section, offset as u64, kind)
    }

    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// Reads the whole section with `read`, which must use all of it.
    fn read_all<T>(mut self, read: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let value = read(&mut self)?;
        if self.pos != self.end {
            return Err(self.error_at(
                self.pos,
                PlanErrorKind::UnreadBytes {
                    count: self.remaining() as u64,
                },
            ));
        }
        Ok(value)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.error_at(
                self.pos,
                PlanErrorKind::Truncated {
                    what,
                    needed: n as u64,
                    available: self.remaining() as u64,
                },
            ));
        }
        let bytes = &self.file[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16> {
        let bytes = self.take(2, what)?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    fn fixed64(&mut self, what: &'static str) -> Result<u64> {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(bytes))
    }

    /// Unsigned LEB128 in its shortest form.
    fn varint(&mut self, what: &'static str) -> Result<u64> {
        let start = self.pos;
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8(what).map_err(|mut error| {
                error.offset = start as u64;
                error
            })?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && byte > 1 {
                return Err(self.error_at(start, PlanErrorKind::VarintOverflow { what }));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    return Err(self.error_at(start, PlanErrorKind::OverlongVarint { what }));
                }
                return Ok(value);
            }
        }
        unreachable!("the tenth byte either ends the varint or overflows")
    }

    fn u32(&mut self, what: &'static str) -> Result<u32> {
        let start = self.pos;
        let value = self.varint(what)?;
        u32::try_from(value).map_err(|_| {
            self.error_at(
                start,
                PlanErrorKind::ValueTooLarge {
                    what,
                    value,
                    max: u64::from(u32::MAX),
                },
            )
        })
    }

    fn tag(&mut self, what: &'static str, variants: u8) -> Result<(u8, usize)> {
        let at = self.pos;
        let tag = self.u8(what)?;
        if tag >= variants {
            return Err(self.error_at(at, PlanErrorKind::BadTag { what, tag }));
        }
        Ok((tag, at))
    }

    fn bool(&mut self, what: &'static str) -> Result<bool> {
        Ok(self.tag(what, 2)?.0 == 1)
    }

    fn length_prefixed(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let start = self.pos;
        let length = self.varint(what)?;
        match usize::try_from(length) {
            Ok(n) if n <= self.remaining() => self.take(n, what),
            _ => Err(self.error_at(
                start,
                PlanErrorKind::LengthPastEnd {
                    what,
                    length,
                    available: self.remaining() as u64,
                },
            )),
        }
    }

    fn string(&mut self, what: &'static str) -> Result<String> {
        let bytes = self.length_prefixed(what)?;
        let start = self.pos - bytes.len();
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(error) => Err(self.error_at(
                start + error.valid_up_to(),
                PlanErrorKind::InvalidUtf8 { what },
            )),
        }
    }

    fn option<T>(
        &mut self,
        what: &'static str,
        read: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<Option<T>> {
        if self.bool(what)? {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A count followed by that many items, each at least `min_item_bytes`
    /// long: a count the bytes left cannot hold is refused before the
    /// vector is allocated.
    fn list<T>(
        &mut self,
        what: &'static str,
        min_item_bytes: usize,
        mut read: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let start = self.pos;
        let count = self.varint(what)?;
        let available = self.remaining();
        let fits = usize::try_from(count)
            .ok()
            .filter(|&count| count <= available / min_item_bytes);
        let Some(count) = fits else {
            return Err(self.error_at(
                start,
                PlanErrorKind::CountTooLarge {
                    what,
                    count,
                    min_item_bytes: min_item_bytes as u64,
                    available: available as u64,
                },
            ));
        };
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(read(self)?);
        }
        Ok(items)
    }

    fn strings(&mut self, what: &'static str) -> Result<Vec<String>> {
        self.list(what, 1, |r| r.string(what))
    }

    fn header(&mut self, format_version: u16) -> Result<Header> {
        Ok(Header {
            format_version,
            api_version: self.string("the api version")?,
            name: self.string("the plan name")?,
            version: self.option("the plan version", |r| r.string("the plan version"))?,
            project: self.option("the project", |r| r.string("the project"))?,
            requires: self.strings("required plugins")?,
        })
    }

    fn constant(&mut self) -> Result<Constant> {
        let (tag, _) = self.tag("a constant", 6)?;
        Ok(match tag {
            0 => Constant::Null,
            1 => Constant::Bool(false),
            2 => Constant::Bool(true),
            3 => Constant::Int(self.fixed64("an int constant")? as i64),
            4 => Constant::Double(self.fixed64("a double constant")?),
            _ => Constant::String(self.string("a string constant")?),
        })
    }

    fn verb(&mut self) -> Result<VerbRef> {
        Ok(VerbRef {
            plugin: self.string("a plugin name")?,
            major: self.u32("a plugin major version")?,
            verb: self.string("a verb id")?,
            kind: match self.tag("a verb kind", 4)?.0 {
                0 => VerbKind::Action,
                1 => VerbKind::Condition,
                2 => VerbKind::Gate,
                _ => VerbKind::Trigger,
            },
            side_effect: match self.tag("a side-effect class", 3)?.0 {
                0 => SideEffect::ReadOnly,
                1 => SideEffect::ExternalWrite,
                _ => SideEffect::InternalOnly,
            },
            required_inputs: self.strings("required inputs")?,
            route_by: self.option("a route-by port", |r| r.string("a route-by port"))?,
            route_cases: self.strings("route cases")?,
            handles: self.strings("gate handles")?,
            events: self.strings("event types")?,
            idempotency_key: self.option("an idempotency key", |r| {
                r.u32("an idempotency key expression index")
            })?,
        })
    }

    fn source_ref(&mut self) -> Result<SourceRef> {
        Ok(SourceRef {
            file: self.u32("a source file index")?,
            start: self.u32("a source start offset")?,
            end: self.u32("a source end offset")?,
        })
    }

    fn expr(&mut self) -> Result<ExprCode> {
        Ok(ExprCode {
            code: self.length_prefixed("expression bytecode")?.to_vec(),
            max_stack: self.u16("an expression's maximum stack depth")?,
            locals: self.u16("an expression's local count")?,
            result_type: self.string("an expression's result type")?,
            source: self.source_ref()?,
            spans: self.list("instruction spans", 4, |r| {
                Ok((r.u32("an instruction offset")?, r.source_ref()?))
            })?,
        })
    }

    fn source_file(&mut self) -> Result<SourceFileRef> {
        let path = self.string("a source path")?;
        let mut sha256 = [0; 32];
        sha256.copy_from_slice(self.take(32, "a source file's SHA-256")?);
        Ok(SourceFileRef { path, sha256 })
    }

    fn port(&mut self) -> Result<Port> {
        Ok(Port {
            name: self.string("a port name")?,
            ty: self.string("a port type")?,
            optional: self.bool("a port's optional flag")?,
        })
    }

    fn named_templates(&mut self, what: &'static str) -> Result<Vec<(String, ValueTemplate)>> {
        self.list(what, 3, |r| Ok((r.string("a key")?, r.template(1)?)))
    }

    fn template(&mut self, depth: usize) -> Result<ValueTemplate> {
        let (tag, at) = self.tag("a value template", 5)?;
        if depth > MAX_TEMPLATE_DEPTH {
            return Err(self.error_at(
                at,
                PlanErrorKind::TooDeep {
                    what: "value templates",
                    limit: MAX_TEMPLATE_DEPTH,
                },
            ));
        }
        Ok(match tag {
            0 => ValueTemplate::Const(self.u32("a constant index")?),
            1 => ValueTemplate::Expr(self.u32("an expression index")?),
            2 => ValueTemplate::Interpolate(self.list("template parts", 2, |r| {
                Ok(match r.tag("a template part", 2)?.0 {
                    0 => TemplatePart::Text(r.string("template text")?),
                    _ => TemplatePart::Expr(r.u32("an expression index")?),
                })
            })?),
            3 => ValueTemplate::List(self.list("list items", 2, |r| r.template(depth + 1))?),
            _ => ValueTemplate::Map(self.list("map entries", 3, |r| {
                Ok((r.string("a map key")?, r.template(depth + 1)?))
            })?),
        })
    }

    fn level(&mut self) -> Result<Level> {
        Ok(Level {
            name: self.string("a level name")?,
            inputs: self.list("interface inputs", 3, Reader::port)?,
            outputs: self.named_templates("interface outputs")?,
            triggers: self.list("triggers", 9, Reader::trigger)?,
            steps: self.list("steps", 13, Reader::step)?,
        })
    }

    fn trigger(&mut self) -> Result<TriggerDef> {
        Ok(TriggerDef {
            id: self.string("a trigger id")?,
            kind: match self.tag("a trigger kind", 5)?.0 {
                0 => TriggerKind::Webhook,
                1 => TriggerKind::Cron,
                2 => TriggerKind::Signal,
                3 => TriggerKind::Manual,
                _ => TriggerKind::AgentRequest,
            },
            event_type: self.option("an event type", |r| r.string("an event type"))?,
            schedule: self.option("a schedule", |r| r.string("a schedule"))?,
            timezone: self.option("a time zone", |r| r.string("a time zone"))?,
            fields: self.list("trigger fields", 3, Reader::port)?,
            source: self.source_ref()?,
        })
    }

    fn step(&mut self) -> Result<StepDef> {
        Ok(StepDef {
            id: self.string("a step id")?,
            kind: self.step_kind()?,
            inputs: self.named_templates("step inputs")?,
            next: self.list("next steps", 1, |r| r.u32("a step index"))?,
            branches: self.list("branches", 2, |r| {
                Ok((r.string("a handle")?, r.u32("a step index")?))
            })?,
            default: self.option("a default route", |r| {
                Ok(match r.tag("a default route", 2)?.0 {
                    0 => DefaultRoute::Case(r.string("a default case")?),
                    _ => DefaultRoute::Branch,
                })
            })?,
            retry: self.option("a retry policy", Reader::retry)?,
            timeout_ms: self.option("a timeout", |r| r.varint("a timeout"))?,
            predecessors: self.list("predecessors", 1, |r| r.u32("a step index"))?,
            source: self.source_ref()?,
        })
    }

    fn step_kind(&mut self) -> Result<StepKind> {
        Ok(match self.tag("a step kind", 6)?.0 {
            0 => StepKind::Trigger {
                trigger: self.u32("a trigger index")?,
            },
            1 => StepKind::Condition {
                verb: self.u32("a verb index")?,
            },
            2 => StepKind::Action {
                verb: self.u32("a verb index")?,
            },
            3 => StepKind::Gate {
                verb: self.option("a gate verb", |r| r.u32("a verb index"))?,
                gate: self.gate()?,
            },
            4 => StepKind::Group {
                level: self.u32("a level index")?,
            },
            _ => StepKind::Loop {
                level: self.u32("a level index")?,
                max_iterations: self.u32("a loop's maximum iterations")?,
                until: self.option("a loop condition", |r| r.predicate(1))?,
            },
        })
    }

    fn gate(&mut self) -> Result<GateDef> {
        Ok(GateDef {
            gate_type: match self.tag("a gate type", 3)?.0 {
                0 => GateType::Signal,
                1 => GateType::Timer,
                _ => GateType::Webhook,
            },
            event_types: self.strings("gate event types")?,
            filter: self.option("a gate filter", |r| r.predicate(1))?,
            on_timeout: match self.tag("a gate's timeout route", 3)?.0 {
                0 => OnTimeout::Skip,
                1 => OnTimeout::Error,
                _ => OnTimeout::Branch(self.u32("a step index")?),
            },
            timeout_ms: self.option("a gate timeout", |r| r.varint("a gate timeout"))?,
        })
    }

    fn retry(&mut self) -> Result<RetryPolicy> {
        Ok(RetryPolicy {
            max_attempts: self.u32("a retry's maximum attempts")?,
            initial_ms: self.varint("a retry's initial delay")?,
            factor: self.fixed64("a retry's backoff factor")?,
            max_ms: self.varint("a retry's maximum delay")?,
            retry_on: self.strings("retried error kinds")?,
        })
    }

    fn predicate(&mut self, depth: usize) -> Result<Predicate> {
        let (tag, at) = self.tag("a predicate", 4)?;
        if depth > MAX_PREDICATE_DEPTH {
            return Err(self.error_at(
                at,
                PlanErrorKind::TooDeep {
                    what: "predicates",
                    limit: MAX_PREDICATE_DEPTH,
                },
            ));
        }
        Ok(match tag {
            0 => Predicate::All(self.list("predicates", 2, |r| r.predicate(depth + 1))?),
            1 => Predicate::Any(self.list("predicates", 2, |r| r.predicate(depth + 1))?),
            2 => Predicate::Not(Box::new(self.predicate(depth + 1)?)),
            _ => Predicate::Leaf {
                field: self.string("a predicate field")?,
                op: match self.tag("a predicate operator", 11)?.0 {
                    0 => PredicateOp::Eq,
                    1 => PredicateOp::Neq,
                    2 => PredicateOp::In,
                    3 => PredicateOp::Contains,
                    4 => PredicateOp::Prefix,
                    5 => PredicateOp::Suffix,
                    6 => PredicateOp::Lt,
                    7 => PredicateOp::Lte,
                    8 => PredicateOp::Gt,
                    9 => PredicateOp::Gte,
                    _ => PredicateOp::Exists,
                },
                value: self.option("a predicate value", |r| r.template(1))?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> Reader<'_> {
        Reader {
            file: bytes,
            pos: 0,
            end: bytes.len(),
            section: Section::Constants,
        }
    }

    fn encode_varint(mut value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let low = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(low);
                return out;
            }
            out.push(low | 0x80);
        }
    }

    #[test]
    fn varints_round_trip_at_every_width() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let bytes = encode_varint(value);
            let mut r = reader(&bytes);
            assert_eq!(r.varint("v"), Ok(value));
            assert_eq!(r.pos, bytes.len());
        }
        assert_eq!(encode_varint(u64::MAX).len(), 10);
    }

    #[test]
    fn varints_refuse_overlong_forms_and_overflow() {
        let kind = |bytes: &[u8]| reader(bytes).varint("v").unwrap_err().kind;
        assert_eq!(
            kind(&[0x80, 0x00]),
            PlanErrorKind::OverlongVarint { what: "v" }
        );
        assert_eq!(
            kind(&[0x81, 0x80, 0x00]),
            PlanErrorKind::OverlongVarint { what: "v" }
        );
        let mut eleven = vec![0xff; 9];
        eleven.push(0x02);
        assert_eq!(kind(&eleven), PlanErrorKind::VarintOverflow { what: "v" });
        let mut ten_continued = vec![0xff; 10];
        ten_continued.push(0x01);
        assert_eq!(
            kind(&ten_continued),
            PlanErrorKind::VarintOverflow { what: "v" }
        );
        assert!(matches!(kind(&[0x80]), PlanErrorKind::Truncated { .. }));
        let error = reader(&[0xff, 0xff]).varint("v").unwrap_err();
        assert_eq!(error.offset, 0, "a cut varint is reported where it starts");
    }

    #[test]
    fn u32_fields_refuse_larger_values() {
        let bytes = encode_varint(u64::from(u32::MAX) + 1);
        let error = reader(&bytes).u32("an index").unwrap_err();
        assert_eq!(
            error.kind,
            PlanErrorKind::ValueTooLarge {
                what: "an index",
                value: u64::from(u32::MAX) + 1,
                max: u64::from(u32::MAX)
            }
        );
    }

    #[test]
    fn invalid_utf8_is_reported_at_the_bad_byte() {
        let bytes = [3, b'a', 0xff, b'b'];
        let error = reader(&bytes).string("a name").unwrap_err();
        assert_eq!(error.kind, PlanErrorKind::InvalidUtf8 { what: "a name" });
        assert_eq!(error.offset, 2);
    }

    #[test]
    fn counts_are_checked_before_allocating() {
        let mut bytes = encode_varint(u64::MAX);
        bytes.extend_from_slice(&[0; 16]);
        let error = reader(&bytes).list("steps", 13, |r| r.u8("x")).unwrap_err();
        assert!(matches!(
            error.kind,
            PlanErrorKind::CountTooLarge {
                count: u64::MAX,
                available: 16,
                ..
            }
        ));
    }
}
