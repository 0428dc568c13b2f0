//! The diagnostic type every stage of the toolchain reports through.
//!
//! A diagnostic carries byte spans only; it is tied to its file by whoever
//! collects it (see `donmai_compiler::report`). Human, JSON, SARIF, GitHub and
//! LSP renderings are all derived from this one type.

use crate::codes::Code;
use crate::span::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A secondary location with a note, e.g. "first defined here".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One text replacement of a fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    pub span: Span,
    pub replacement: String,
}

/// A machine-applicable fix: applying all of its edits removes the diagnostic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fix {
    pub message: String,
    pub edits: Vec<Edit>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub span: Span,
    pub message: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
    pub fix: Option<Fix>,
    /// Edits an editor may offer that need the author's attention (they
    /// insert placeholders to fill in), so `check --fix` never applies them.
    pub suggestions: Vec<Fix>,
}

impl Diagnostic {
    /// A diagnostic with the code's default severity.
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: code.default_severity(),
            span,
            message: message.into(),
            labels: Vec::new(),
            help: None,
            fix: None,
            suggestions: Vec::new(),
        }
    }

    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_fix(mut self, message: impl Into<String>, edits: Vec<Edit>) -> Diagnostic {
        self.fix = Some(Fix {
            message: message.into(),
            edits,
        });
        self
    }

    /// An edit to offer in editors but never apply unattended.
    pub fn with_suggested_edit(
        mut self,
        message: impl Into<String>,
        edits: Vec<Edit>,
    ) -> Diagnostic {
        self.suggestions.push(Fix {
            message: message.into(),
            edits,
        });
        self
    }

    /// [`Diagnostic::with_suggested_edit`] when there is an edit to offer.
    pub fn with_suggested_edits(
        self,
        message: impl Into<String>,
        edit: Option<Edit>,
    ) -> Diagnostic {
        match edit {
            Some(edit) => self.with_suggested_edit(message, vec![edit]),
            None => self,
        }
    }

    /// Shorthand for a fix that replaces one span.
    pub fn with_replacement(
        self,
        message: impl Into<String>,
        span: Span,
        replacement: impl Into<String>,
    ) -> Diagnostic {
        self.with_fix(
            message,
            vec![Edit {
                span,
                replacement: replacement.into(),
            }],
        )
    }

    /// "did you mean `name`?" with a fix that writes `name` over `span`,
    /// quoted when YAML needs it.
    pub fn with_suggestion(self, name: &str, span: Span) -> Diagnostic {
        self.with_help(format!("did you mean `{name}`?"))
            .with_replacement(
                format!("use `{name}`"),
                span,
                crate::yaml::scalar_source(name),
            )
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Names as a message lists them: `` `a`, `b`, `c` ``.
pub fn backticked<I, S>(names: I) -> String
where
    I: IntoIterator<Item = S>,
    S: std::fmt::Display,
{
    names
        .into_iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "did you mean `x`?" for the closest candidate, if one is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let score =
            strsim::jaro_winkler(&name.to_ascii_lowercase(), &candidate.to_ascii_lowercase());
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["triggers", "spec", "metadata"];
        assert_eq!(did_you_mean("trigers", keys), Some("triggers"));
        assert_eq!(did_you_mean("Metadata", keys), Some("metadata"));
        assert_eq!(did_you_mean("zzz", keys), None);
    }
}
