//! The texts a plan was built from, when they are at hand: runtime errors
//! then name `file:line:column` instead of a byte range.
//!
//! A plan records each source file's path (relative to the main
//! workflow's folder) and SHA-256, not its text. Whoever starts the engine
//! may find the files (next to the workflow it compiled, or the plan file)
//! and hand them over; a file whose text no longer has the recorded hash is
//! left out, so a position is never given in a text the plan was not built
//! from.

use std::path::Path;

use donmai_grammar::SourceFile;
use sha2::{Digest, Sha256};

use crate::plan::Plan;

/// The plan's source files that were found, by source index.
#[derive(Clone, Debug, Default)]
pub struct PlanSources {
    files: Vec<Option<SourceFile>>,
}

impl PlanSources {
    /// Looks for each of `plan`'s source files under each of `dirs` in turn
    /// (a plan's paths are relative to its main workflow's folder), keeping
    /// the first whose SHA-256 is the recorded one.
    pub fn find(plan: &Plan, dirs: &[&Path]) -> PlanSources {
        let files = plan
            .sources
            .iter()
            .map(|source| {
                dirs.iter().find_map(|dir| {
                    let path = dir.join(&source.path);
                    let bytes = std::fs::read(&path).ok()?;
                    if Sha256::digest(&bytes).as_slice() != source.sha256 {
                        return None;
                    }
                    let text = String::from_utf8(bytes).ok()?;
                    Some(SourceFile::new(source.path.clone(), text))
                })
            })
            .collect();
        PlanSources { files }
    }

    /// The 1-based line and column of byte `offset` of source `file`, when
    /// that file was found.
    pub fn line_col(&self, file: u32, offset: u32) -> Option<(usize, usize)> {
        let source = self.files.get(file as usize)?.as_ref()?;
        let at = source.line_col(offset as usize);
        Some((at.line, at.column))
    }
}
