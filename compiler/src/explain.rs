//! `donmaic explain CODE`: the long form of each diagnostic, from
//! `docs/diagnostics/DNxxxx.md`, embedded in the binary.

use crate::project::resolve_code;
use donmai_grammar::Code;
use donmai_grammar::codes::CATALOG;
use donmai_grammar::diagnostic::did_you_mean;
use std::fmt::Write;

macro_rules! doc_table {
    ($($konst:ident => $file:literal,)*) => {
        /// Every code with its document, in catalog order.
        pub static DOCS: &[(Code, &str)] = &[
            $((Code::$konst, include_str!(concat!("../../docs/diagnostics/", $file, ".md"))),)*
        ];
    };
}

doc_table! {
    YAML_SYNTAX => "DN0001",
    DUPLICATE_KEY => "DN0002",
    DOCUMENT_TOO_COMPLEX => "DN0003",
    NOT_A_WORKFLOW => "DN0004",
    UNSUPPORTED_API_VERSION => "DN0005",
    UNKNOWN_KEY => "DN0006",
    MISSING_FIELD => "DN0007",
    WRONG_SHAPE => "DN0008",
    UNQUOTED_TEMPLATE => "DN0009",
    EXPRESSION_SYNTAX => "DN0010",
    TEMPLATE_SYNTAX => "DN0011",
    INVALID_VALUE => "DN0012",
    BAD_MANIFEST => "DN0013",
    BAD_PROJECT_FILE => "DN0014",
    MISSING_IDEMPOTENCY_KEY => "DN0015",
    DUPLICATE_ID => "DN0100",
    UNKNOWN_STEP => "DN0101",
    UNKNOWN_TRIGGER => "DN0102",
    CYCLE => "DN0103",
    UNREACHABLE_STEP => "DN0104",
    PLUGIN_NOT_INSTALLED => "DN0110",
    PLUGIN_NOT_REQUIRED => "DN0111",
    PROVIDER_DISABLED => "DN0112",
    UNKNOWN_VERB => "DN0113",
    VERB_REMOVED => "DN0114",
    VERB_DEPRECATED => "DN0115",
    VERB_KIND_MISMATCH => "DN0116",
    SCOPE_DENIED => "DN0117",
    UNKNOWN_INPUT => "DN0120",
    MISSING_INPUT => "DN0121",
    TYPE_MISMATCH => "DN0122",
    UNKNOWN_REFERENCE => "DN0123",
    UNKNOWN_FIELD => "DN0124",
    NOT_UPSTREAM => "DN0125",
    UNKNOWN_FUNCTION => "DN0126",
    ALWAYS_NULL => "DN0127",
    MAYBE_NULL => "DN0128",
    STEPS_REFERENCE => "DN0129",
    TRIGGER_DATA_DEPRECATED => "DN0130",
    UNKNOWN_HANDLE => "DN0140",
    SWITCH_CASE_NOT_IN_ENUM => "DN0141",
    BAD_DEFAULT_HANDLE => "DN0142",
    HANDLE_NOT_COVERED => "DN0143",
    MATCH_LIMIT => "DN0144",
    EMPTY_GATE_FILTER => "DN0145",
    SCHEDULE_KIND_DEPRECATED => "DN0146",
    GROUP_NOT_FOUND => "DN0150",
    GROUP_CYCLE => "DN0151",
    GROUP_VERSION_MISMATCH => "DN0152",
    BAD_INTERFACE => "DN0153",
    UNBOUNDED_LOOP => "DN0154",
    TOO_MANY_ROOTS => "DN0200",
    FLAT_DISPATCH_CHAIN => "DN0201",
    UNUSED_OUTPUT => "DN0202",
    UNUSED_SUPPRESSION => "DN0203",
}

/// The Markdown document of `code`.
pub fn doc(code: Code) -> Option<&'static str> {
    DOCS.iter().find(|(c, _)| *c == code).map(|(_, doc)| *doc)
}

/// The explanation paragraphs of `code`'s document: after the one-line
/// summary, before the first `##` section.
pub fn explanation(code: Code) -> Option<String> {
    let doc = doc(code)?;
    let body = doc
        .split_once('\n')
        .map_or("", |(_, rest)| rest)
        .trim_start();
    let after_summary = body.split_once("\n\n").map_or("", |(_, rest)| rest);
    let text = after_summary.split("\n## ").next().unwrap_or("").trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// `DN0012`, `dn12`, `12` or `invalid-value`.
pub fn lookup(query: &str) -> Result<Code, String> {
    resolve_code(query).ok_or_else(|| {
        let mut message = format!("`{query}` is not a diagnostic code or name");
        if let Some(name) = did_you_mean(query, CATALOG.iter().map(|info| info.name)) {
            let _ = write!(message, "; did you mean `{name}`?");
        }
        message.push_str("\n`donmaic explain --list` lists every code");
        message
    })
}

/// One line per code: `DN0002  error    duplicate-key  a mapping has…`.
pub fn list() -> String {
    let width = CATALOG
        .iter()
        .map(|info| info.name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for info in CATALOG {
        let _ = writeln!(
            out,
            "{}  {:<7}  {:<width$}  {}",
            info.code,
            info.severity.as_str(),
            info.name,
            info.summary
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn docs_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/diagnostics")
    }

    #[test]
    fn every_catalog_code_has_a_doc_and_every_doc_a_code() {
        let table: BTreeSet<String> = DOCS.iter().map(|(code, _)| code.to_string()).collect();
        let catalog: BTreeSet<String> = CATALOG.iter().map(|info| info.code.to_string()).collect();
        assert_eq!(table, catalog, "the embedded table and the catalog differ");
        let files: BTreeSet<String> = std::fs::read_dir(docs_dir())
            .expect("docs/diagnostics exists")
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".md").map(str::to_string)
            })
            .collect();
        assert_eq!(
            files, catalog,
            "docs/diagnostics/*.md and the catalog differ"
        );
    }

    #[test]
    fn docs_follow_the_format() {
        for info in CATALOG {
            let doc = doc(info.code).expect("doc");
            let mut lines = doc.lines();
            assert_eq!(
                lines.next(),
                Some(format!("# {}: {}", info.code, info.name).as_str())
            );
            assert_eq!(lines.next(), Some(""), "{}", info.code);
            assert_eq!(
                lines.next(),
                Some(info.summary),
                "{}: summary as in the catalog",
                info.code
            );
            assert!(
                explanation(info.code).is_some(),
                "{} explains itself",
                info.code
            );
            let wrong = doc
                .find("\n## Wrong\n")
                .unwrap_or_else(|| panic!("{}: ## Wrong", info.code));
            let right = doc
                .find("\n## Right\n")
                .unwrap_or_else(|| panic!("{}: ## Right", info.code));
            assert!(wrong < right, "{}", info.code);
            assert!(doc[wrong..].contains("```yaml\n"), "{}", info.code);
            assert_eq!(
                doc.matches("```").count() % 2,
                0,
                "{}: fences balance",
                info.code
            );
        }
    }

    #[test]
    fn lookup_accepts_every_spelling() {
        for query in ["DN0012", "dn12", "12", "invalid-value", "Invalid-Value"] {
            assert_eq!(lookup(query), Ok(Code::INVALID_VALUE), "{query}");
        }
        let error = lookup("invalid-valu").expect_err("unknown");
        assert!(error.contains("did you mean `invalid-value`?"), "{error}");
        assert!(lookup("DN9999").is_err());
    }

    #[test]
    fn list_has_one_line_per_code() {
        let list = list();
        assert_eq!(list.lines().count(), CATALOG.len());
        assert!(
            list.lines()
                .any(|l| l.starts_with("DN0002  error    duplicate-key "))
        );
    }
}
