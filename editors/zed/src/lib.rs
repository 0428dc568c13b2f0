//! The Zed extension for donmai: it only tells Zed how to start
//! `donmai-lsp` (found on the worktree's PATH) for YAML files.

use zed_extension_api::{self as zed, LanguageServerId, Result};

struct Donmai;

impl zed::Extension for Donmai {
    fn new() -> Self {
        Donmai
    }

    fn language_server_command(
        &mut self,
        _language_server_id: &LanguageServerId,
        worktree: &zed::Worktree,
    ) -> Result<zed::Command> {
        let command = worktree
            .which("donmai-lsp")
            .ok_or_else(|| "donmai-lsp is not on PATH: see docs/editors.md".to_string())?;
        Ok(zed::Command {
            command,
            args: vec!["--stdio".to_string()],
            env: Vec::new(),
        })
    }
}

zed::register_extension!(Donmai);
