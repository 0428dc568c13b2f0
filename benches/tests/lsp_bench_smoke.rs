//! Keeps the language-server benchmark from rotting: a tiny run of the real
//! `lsp-bench` harness against the real `donmai-lsp` (debug build is fine:
//! only the framing, matching and bookkeeping are checked, not the speed).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// `donmai-lsp` beside `lsp-bench` in the target folder; built when this
/// crate's tests run alone (`cargo test --workspace` builds it anyway).
fn donmai_lsp() -> PathBuf {
    let bench = Path::new(env!("CARGO_BIN_EXE_lsp-bench"));
    let path = bench.with_file_name(format!("donmai-lsp{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "donmai-lsp",
                "--bin",
                "donmai-lsp",
            ])
            .status()
            .expect("start cargo to build donmai-lsp");
        assert!(status.success(), "building donmai-lsp failed");
    }
    path
}

fn samples(series: &Value, key: &str) -> Vec<f64> {
    series[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {series}"))
        .iter()
        .map(|v| v.as_f64().expect("a number of milliseconds"))
        .collect()
}

fn plausible(latencies: &[f64], what: &str) {
    for &ms in latencies {
        assert!(ms > 0.0 && ms < 30_000.0, "{what}: {ms} ms");
    }
}

#[test]
fn lsp_bench_measures_donmai_lsp() {
    let server = donmai_lsp();
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lsp-bench-smoke");
    let _ = std::fs::remove_dir_all(&work);
    let result = work.join("result.json");
    let schema =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../grammar/schema/workflow.schema.json");
    let output = Command::new(env!("CARGO_BIN_EXE_lsp-bench"))
        .arg("--donmai-lsp")
        .arg(&server)
        .args([
            "--servers",
            "donmai",
            "--sizes",
            "10",
            "--edits",
            "5",
            "--warmup",
            "1",
        ])
        .args([
            "--startups",
            "2",
            "--startup-steps",
            "10",
            "--queries",
            "3",
            "--query-steps",
            "10",
        ])
        .arg("--schema")
        .arg(&schema)
        .arg("--work")
        .arg(work.join("files"))
        .arg("--json")
        .arg(&result)
        .output()
        .expect("start lsp-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "lsp-bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("donmai-lsp"), "{stdout}");

    let runs: Value = serde_json::from_slice(&std::fs::read(&result).expect("the JSON result"))
        .expect("valid JSON");
    let run = &runs[0];
    let edits = run["edits"].as_array().expect("edit series");
    assert_eq!(edits.len(), 2, "a comment series and an expression series");
    for series in edits {
        let latencies = samples(series, "samples_ms");
        assert_eq!(latencies.len(), 5, "{series}");
        plausible(&latencies, "edit");
        assert_eq!(series["steps"], 10);
    }
    // The harness really waited for each edit's own diagnostics: typing in
    // an expression breaks it and deleting the letter repairs it.
    let comment = &edits[0];
    assert_eq!(comment["edit"], "comment");
    assert_eq!(comment["diagnostics_after_insert"], serde_json::json!([0]));
    assert_eq!(comment["diagnostics_after_delete"], serde_json::json!([0]));
    let expression = &edits[1];
    assert_eq!(expression["edit"], "expression");
    assert!(
        expression["diagnostics_after_insert"][0].as_u64() >= Some(1),
        "{expression}"
    );
    assert_eq!(
        expression["diagnostics_after_delete"],
        serde_json::json!([0])
    );

    let startup = &run["startups"][0];
    let initialized = samples(startup, "initialize_ms");
    let diagnosed = samples(startup, "first_diagnostics_ms");
    assert_eq!(diagnosed.len(), 2);
    plausible(&diagnosed, "start-up");
    for (init, diag) in initialized.iter().zip(&diagnosed) {
        assert!(
            init < diag,
            "initialize {init} ms after first diagnostics {diag} ms"
        );
    }

    let queries = run["queries"].as_array().expect("query series");
    assert_eq!(queries.len(), 2, "completion and hover");
    for query in queries {
        if query["supported"] == true {
            plausible(&samples(query, "idle_ms"), "request at rest");
            plausible(&samples(query, "after_edit_ms"), "request after an edit");
        } else {
            assert!(stdout.contains("not supported yet"), "{stdout}");
        }
    }
}
