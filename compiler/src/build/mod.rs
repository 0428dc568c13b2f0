//! From a workflow file to a plan: check it with every rule, then lower it
//! ([`lower`]) to the plan model that the runtime's encoder writes as a
//! `.dplan`. `donmaic build`, `donmaic graph` and `donmai run` all come
//! through [`compile`], so none of them can run what `check` would refuse.

pub mod disasm;
pub mod graph;
pub mod lower;

use std::path::Path;

use donmai_grammar::SourceFile;
use donmai_runtime::plan::Plan;

use crate::driver::{CheckOptions, run_check};
use crate::project::Project;
use crate::report::{CheckReport, Failure};

pub use lower::LowerError;

/// A plan and the warnings its check reported.
#[derive(Debug)]
pub struct Compiled {
    pub plan: Plan,
    pub report: CheckReport,
}

#[derive(Debug)]
pub enum CompileError {
    /// The check found errors (the report holds them) or could not read a
    /// path (its failures).
    Check(CheckReport),
    /// The file is not a workflow, or is not readable.
    Failure(Failure),
    Lower(LowerError),
}

/// Checks the workflow at `path` and lowers it to a plan.
pub fn compile(path: &Path) -> Result<Compiled, CompileError> {
    let failure = |message: String| {
        CompileError::Failure(Failure {
            path: path.to_path_buf(),
            message,
        })
    };
    if !path.is_file() {
        return Err(failure(if path.exists() {
            "not a regular file: name one workflow file".into()
        } else {
            "no such file".into()
        }));
    }
    let options = CheckOptions {
        paths: vec![path.to_path_buf()],
        ..CheckOptions::default()
    };
    let run = run_check(&options, &crate::check::check_file);
    let report = run.report;
    if report.summary().errors > 0 || !report.failures.is_empty() {
        return Err(CompileError::Check(report));
    }
    if report.files_checked == 0 {
        return Err(failure(
            "not a workflow: it has no `apiVersion: workflow/v1` or `workflow/v2`".into(),
        ));
    }
    let bytes =
        donmai_grammar::span::read_regular_file(path).map_err(|e| failure(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| failure("not UTF-8 text".into()))?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let project = Project::discover(dir).map_err(|e| failure(e.to_string()))?;
    let registry = crate::plugins::registry_for(&project);
    let source = SourceFile::new(path, text);
    let plan = lower::lower(&source, &project, &registry.registry).map_err(CompileError::Lower)?;
    Ok(Compiled { plan, report })
}
