//! `--format github`: GitHub Actions workflow commands, one per diagnostic,
//! which the Actions runner turns into annotations on the pull request:
//! `::error file=F,line=L,col=C,endLine=EL,endColumn=EC,title=DN0002 duplicate-key::message`.

use crate::report::{CheckReport, Region};
use std::fmt::Write;

/// Escaping of a command's message: `%`, CR and LF.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escaping of a property value: as data, plus `:` and `,`, which would end
/// the value.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

pub fn render(report: &CheckReport) -> String {
    let mut out = String::new();
    for (source, diagnostic) in report.diagnostics() {
        let region = Region::of(source, diagnostic.span);
        let file = source.path().to_string_lossy().replace('\\', "/");
        let title = format!("{} {}", diagnostic.code, diagnostic.code.name());
        let mut message = diagnostic.message.clone();
        if let Some(help) = &diagnostic.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        let _ = writeln!(
            out,
            "::{} file={},line={},col={},endLine={},endColumn={},title={}::{}",
            diagnostic.severity.as_str(),
            escape_property(&file),
            region.start.line,
            region.start.column,
            region.end.line,
            region.end.column,
            escape_property(&title),
            escape_data(&message),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixtures;

    #[test]
    fn snapshot() {
        insta::assert_snapshot!(render(&fixtures::report()));
    }

    #[test]
    fn escapes_data_and_properties() {
        assert_eq!(escape_data("50% a\r\nb: c,d"), "50%25 a%0D%0Ab: c,d");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
    }

    #[test]
    fn clean_run_prints_nothing() {
        assert_eq!(render(&fixtures::clean()), "");
    }
}
