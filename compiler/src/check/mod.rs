//! The workflow checker.

use crate::project::Project;
use donmai_grammar::{Diagnostic, SourceFile};

/// Every diagnostic for one workflow file.
pub fn check_file(file: &SourceFile, project: &Project) -> Vec<Diagnostic> {
    // placeholder: replaced by the real checker when branches merge
    let _ = (file, project);
    Vec::new()
}
