//! The editor set-ups in `docs/editors.md` are the files under `editors/`,
//! and those files start the binary this crate builds: neither can drift.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The file without its leading comment lines.
fn body(text: &str, comment: &str) -> String {
    text.lines()
        .skip_while(|line| line.starts_with(comment))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

fn fenced_blocks(markdown: &str, language: &str) -> Vec<String> {
    let fence = format!("```{language}\n");
    markdown
        .split(fence.as_str())
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or("").trim().to_string())
        .collect()
}

#[test]
fn docs_show_the_shipped_configurations() {
    let docs = read("docs/editors.md");
    let lua = body(&read("editors/neovim/donmai.lua"), "--");
    assert!(
        fenced_blocks(&docs, "lua").contains(&lua),
        "docs/editors.md must show editors/neovim/donmai.lua"
    );
    let helix = body(&read("editors/helix/languages.toml"), "#");
    assert!(
        fenced_blocks(&docs, "toml").contains(&helix),
        "docs/editors.md must show editors/helix/languages.toml"
    );
}

#[test]
fn every_configuration_starts_donmai_lsp() {
    let binary = Path::new(env!("CARGO_BIN_EXE_donmai-lsp"));
    assert_eq!(binary.file_stem().unwrap(), "donmai-lsp");
    let helix: toml::Table = toml::from_str(&read("editors/helix/languages.toml")).unwrap();
    assert_eq!(
        helix["language-server"]["donmai"]["command"].as_str(),
        Some("donmai-lsp")
    );
    let zed: toml::Table = toml::from_str(&read("editors/zed/extension.toml")).unwrap();
    assert!(
        zed["language_servers"]["donmai"]["languages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str() == Some("YAML"))
    );
    assert!(read("editors/zed/src/lib.rs").contains("which(\"donmai-lsp\")"));
    let vscode: serde_json::Value =
        serde_json::from_str(&read("editors/vscode/package.json")).unwrap();
    assert_eq!(
        vscode["contributes"]["configuration"]["properties"]["donmai.server.path"]["default"],
        "donmai-lsp"
    );
    assert!(read("editors/vscode/extension.js").contains("\"--stdio\""));
    assert!(read("editors/neovim/donmai.lua").contains("cmd = { 'donmai-lsp' }"));
    // The flag every configuration passes is accepted.
    let status = std::process::Command::new(binary)
        .args(["--stdio", "--version"])
        .output()
        .unwrap();
    assert!(status.status.success());
}
