//! Where a store lives when `--store` is not given: `.donmai/state` under the
//! project root, the folder of the nearest `donmai.toml` above the workflow
//! (or above the current directory, for commands without a workflow), else
//! that folder itself. The same rule as the compiler's project discovery, so
//! `donmaic` and `donmai` agree on what the project is.

use donmai_compiler::project::Project;
use std::path::{Path, PathBuf};

/// The store folder under a project root.
pub const DEFAULT_STORE: &str = ".donmai/state";

/// The store directory: `explicit` when given, else the default of the
/// project around `near` (a workflow file or a directory).
pub fn store_dir(explicit: Option<&Path>, near: &Path) -> Result<PathBuf, String> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    let absolute =
        std::path::absolute(near).map_err(|e| format!("cannot resolve {}: {e}", near.display()))?;
    let start = if absolute.is_dir() {
        absolute
    } else {
        match absolute.parent() {
            Some(parent) => parent.to_path_buf(),
            None => absolute,
        }
    };
    let project = Project::discover(&start).map_err(|e| e.to_string())?;
    let root = project.root().map_or(start, Path::to_path_buf);
    Ok(root.join(DEFAULT_STORE))
}

/// For commands that read a store: the store must exist already, so a typo
/// in `--store` is an error instead of an empty store.
pub fn existing_store_dir(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let dir = store_dir(explicit, Path::new("."))?;
    if !dir.join("data.mdb").is_file() {
        return Err(format!(
            "no store at {}{}",
            dir.display(),
            if explicit.is_none() {
                " (the project's default; name one with --store DIR)"
            } else {
                ""
            }
        ));
    }
    Ok(dir)
}
