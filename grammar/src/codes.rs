//! The catalog of stable diagnostic codes.
//!
//! A code, once published, never changes meaning. The long explanation of
//! each code lives in `docs/diagnostics/DNxxxx.md` (shown by `donmaic
//! explain`); the corpus under `tests/corpus/err/` holds at least one case per
//! code, and a test keeps the three in step.

use crate::diagnostic::Severity;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub u16);

pub struct CodeInfo {
    pub code: Code,
    /// Kebab-case name, shown next to the number.
    pub name: &'static str,
    pub severity: Severity,
    /// One line, the same wording as the catalog in `docs/diagnostics/`.
    pub summary: &'static str,
}

macro_rules! catalog {
    ($($konst:ident = $num:literal, $name:literal, $sev:ident, $summary:literal;)*) => {
        impl Code {
            $(pub const $konst: Code = Code($num);)*
        }
        pub static CATALOG: &[CodeInfo] = &[
            $(CodeInfo { code: Code($num), name: $name, severity: Severity::$sev, summary: $summary },)*
        ];
    };
}

catalog! {
    // The YAML layer and the document shape.
    YAML_SYNTAX = 1, "yaml-syntax", Error, "the file is not valid YAML";
    DUPLICATE_KEY = 2, "duplicate-key", Error, "a mapping has the same key twice";
    DOCUMENT_TOO_COMPLEX = 3, "document-too-complex", Error, "nesting or alias expansion exceeds the safety limits";
    NOT_A_WORKFLOW = 4, "not-a-workflow", Error, "a file named on the command line is not a workflow";
    UNSUPPORTED_API_VERSION = 5, "unsupported-api-version", Error, "apiVersion or kind is not one this compiler knows";
    UNKNOWN_KEY = 6, "unknown-key", Error, "a key the workflow format does not define";
    MISSING_FIELD = 7, "missing-field", Error, "a required field is missing";
    WRONG_SHAPE = 8, "wrong-shape", Error, "a value has the wrong YAML shape (mapping, list or scalar)";
    UNQUOTED_TEMPLATE = 9, "unquoted-template", Error, "an unquoted `{{ ... }}` was read by YAML as a flow mapping";
    EXPRESSION_SYNTAX = 10, "expression-syntax", Error, "an expression does not parse";
    TEMPLATE_SYNTAX = 11, "template-syntax", Error, "a `{{` or `${` is never closed";
    INVALID_VALUE = 12, "invalid-value", Error, "a field has a value outside its allowed set";
    BAD_MANIFEST = 13, "bad-manifest", Error, "a plugin manifest is malformed";
    BAD_PROJECT_FILE = 14, "bad-project-file", Error, "donmai.toml is malformed";
    MISSING_IDEMPOTENCY_KEY = 15, "missing-idempotency-key", Warning, "an external-write verb of a third-party plugin declares no `idempotencyKey`";
    // Names and topology.
    DUPLICATE_ID = 100, "duplicate-id", Error, "two steps or two triggers share an id";
    UNKNOWN_STEP = 101, "unknown-step", Error, "`next`, `branches` or a timeout branch names a step that does not exist";
    UNKNOWN_TRIGGER = 102, "unknown-trigger", Error, "`triggerId` names no trigger";
    CYCLE = 103, "cycle", Error, "the steps form a cycle";
    UNREACHABLE_STEP = 104, "unreachable-step", Error, "a step cannot be reached from any trigger";
    // Plugins and verbs (rules 1, 2, 7, 8).
    PLUGIN_NOT_INSTALLED = 110, "plugin-not-installed", Error, "a required plugin, or the major it pins, is not installed";
    PLUGIN_NOT_REQUIRED = 111, "plugin-not-required", Error, "a verb's plugin is missing from `requires`";
    PROVIDER_DISABLED = 112, "provider-disabled", Error, "the integration is not enabled in donmai.toml";
    UNKNOWN_VERB = 113, "unknown-verb", Error, "`config.action` names no verb of its plugin";
    VERB_REMOVED = 114, "verb-removed", Error, "the verb is past its `deprecatedAfter` date";
    VERB_DEPRECATED = 115, "verb-deprecated", Warning, "the verb is deprecated";
    VERB_KIND_MISMATCH = 116, "verb-kind-mismatch", Error, "the verb's kind does not fit the step's type";
    SCOPE_DENIED = 117, "scope-denied", Error, "the provider's scope does not admit this workflow";
    // Inputs, types and expressions (rules 3, 6, W1, W4).
    UNKNOWN_INPUT = 120, "unknown-input", Error, "an input the verb does not declare";
    MISSING_INPUT = 121, "missing-input", Error, "a required input of the verb is not given";
    TYPE_MISMATCH = 122, "type-mismatch", Error, "a value's type does not fit where it is used";
    UNKNOWN_REFERENCE = 123, "unknown-reference", Error, "an expression names something that does not exist here";
    UNKNOWN_FIELD = 124, "unknown-field", Error, "a field that the value's type does not have";
    NOT_UPSTREAM = 125, "not-upstream", Error, "an expression reads a node that does not run before this one";
    UNKNOWN_FUNCTION = 126, "unknown-function", Error, "a function that does not exist, or wrong arguments";
    ALWAYS_NULL = 127, "always-null", Error, "a required input is null on every path";
    MAYBE_NULL = 128, "maybe-null", Warning, "a required input is null on some path, which skips the step";
    STEPS_REFERENCE = 129, "steps-reference", Error, "`steps.*` is not a reference in workflow/v2: use `nodes.*`";
    TRIGGER_DATA_DEPRECATED = 130, "trigger-data-deprecated", Warning, "`trigger.data.*` is deprecated in workflow/v2";
    // Branching, gates and predicates.
    UNKNOWN_HANDLE = 140, "unknown-handle", Error, "a `branches` key is not a handle of the step";
    SWITCH_CASE_NOT_IN_ENUM = 141, "switch-case-not-in-enum", Error, "a switch case is not a value of the verb's routing enum";
    BAD_DEFAULT_HANDLE = 142, "bad-default-handle", Error, "`defaultHandle` is not one of the cases";
    HANDLE_NOT_COVERED = 143, "handle-not-covered", Error, "a handle of the step leads nowhere and there is no default";
    MATCH_LIMIT = 144, "match-limit", Error, "a `match` predicate exceeds the bounded-predicate limits";
    EMPTY_GATE_FILTER = 145, "empty-gate-filter", Warning, "a gate's filter is empty, so it always takes its timeout path";
    SCHEDULE_KIND_DEPRECATED = 146, "schedule-kind-deprecated", Warning, "trigger kind `schedule` is deprecated: use `cron`";
    // Groups and loops.
    GROUP_NOT_FOUND = 150, "group-not-found", Error, "a group or loop body file cannot be read or is not a group";
    GROUP_CYCLE = 151, "group-cycle", Error, "group files reference each other in a cycle";
    GROUP_VERSION_MISMATCH = 152, "group-version-mismatch", Error, "the group's metadata.version major is not the pinned one";
    BAD_INTERFACE = 153, "bad-interface", Error, "a group file is malformed or has errors, so its interface cannot be trusted";
    UNBOUNDED_LOOP = 154, "unbounded-loop", Error, "a loop lacks a valid `maxIterations` or `until`";
    // Design lints (warnings that can be turned off).
    TOO_MANY_ROOTS = 200, "too-many-roots", Warning, "more than 7 root nodes: consider groups";
    FLAT_DISPATCH_CHAIN = 201, "flat-dispatch-chain", Warning, "a long flat chain of acknowledge/dispatch steps";
    UNUSED_OUTPUT = 202, "unused-output", Warning, "the output of a read-only verb is never used";
    UNUSED_SUPPRESSION = 203, "unused-suppression", Warning, "a `donmai-ignore` comment silences nothing";
}

impl Code {
    pub fn info(self) -> Option<&'static CodeInfo> {
        CATALOG.iter().find(|info| info.code == self)
    }

    pub fn default_severity(self) -> Severity {
        self.info().map_or(Severity::Error, |info| info.severity)
    }

    pub fn name(self) -> &'static str {
        self.info().map_or("unknown", |info| info.name)
    }

    /// Parses `DN0012` (case-insensitive) or a bare `12`.
    pub fn parse(text: &str) -> Option<Code> {
        let text = text.trim();
        let digits = text
            .strip_prefix("DN")
            .or_else(|| text.strip_prefix("dn"))
            .unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let code = Code(digits.parse().ok()?);
        code.info().map(|_| code)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DN{:04}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_and_names_are_unique() {
        let mut codes = HashSet::new();
        let mut names = HashSet::new();
        for info in CATALOG {
            assert!(codes.insert(info.code), "duplicate {}", info.code);
            assert!(names.insert(info.name), "duplicate {}", info.name);
        }
    }

    #[test]
    fn parse_round_trips() {
        assert_eq!(Code::parse("DN0012"), Some(Code::INVALID_VALUE));
        assert_eq!(Code::parse("dn12"), Some(Code::INVALID_VALUE));
        assert_eq!(Code::parse("DN9999"), None);
        assert_eq!(Code::parse("DN"), None);
        assert_eq!(Code::INVALID_VALUE.to_string(), "DN0012");
    }
}
