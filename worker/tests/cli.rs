//! End-to-end tests of the `donmai` binary beyond the golden cases: plans
//! refused or accepted by signature, the audit chain after real runs (and
//! after tampering), a signal or a cancel from another process while a run
//! is live on the real clock, Ctrl-C then `--resume`, HTTP plugin
//! endpoints, and the usage errors.

use donmai_runtime::store::lmdb::HeedStore;
use donmai_runtime::store::{Store, Table};
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn donmai(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_donmai"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run donmai")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_string()
}

const SIMPLE: &str = r#"apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: simple, version: "1"}
requires: [{plugin: core@1}]
triggers: [{id: go, kind: manual, config: {inputs: {name: string}}}]
spec:
  steps:
    - {id: start, type: trigger, config: {triggerId: go}, next: [greet]}
    - {id: greet, type: action, config: {action: "core@1:core.set", values: {hello: "{{ trigger.name }}"}}}
"#;

/// A gate waiting up to a day for a signal, then a step reading its output.
const GATED: &str = r#"apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: gated, version: "1"}
requires: [{plugin: core@1}, {plugin: github@1}]
triggers: [{id: go, kind: manual}]
spec:
  steps:
    - {id: start, type: trigger, config: {triggerId: go}, next: [ci]}
    - id: ci
      type: gate
      gateConfig: {gateType: signal, signalEventType: com.github.workflow_run.completed, onTimeout: error, timeoutMs: 86400000}
      next: [after]
    - {id: after, type: action, config: {action: "core@1:core.set", values: {got: "{{ nodes.ci.output.workflow_run.conclusion }}"}}}
"#;

fn events(stdout: &[u8]) -> Vec<Value> {
    text(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// A compiled, encoded plan of `workflow` (what `donmaic build` writes).
fn build(workflow: &Path) -> Vec<u8> {
    let compiled = donmai_compiler::build::compile(workflow).expect("compiles");
    let plan = donmai_runtime::verify::verify(compiled.plan).expect("verifies");
    donmai_runtime::plan::encode(&plan)
}

#[test]
fn a_workflow_runs_and_its_run_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = write(dir.path(), "simple.yaml", SIMPLE);
    let out = donmai(&[
        "run",
        &workflow,
        "--payload",
        r#"{"name":"Ada"}"#,
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let events = events(&out.stdout);
    assert_eq!(
        types(&events),
        [
            "run.started",
            "step.completed",
            "step.started",
            "step.completed",
            "run.completed"
        ]
    );
    assert_eq!(events[3]["output"], json!({"hello": "Ada"}));
    for event in &events {
        assert!(event["runId"].is_string() && event["at"].is_string());
    }
    // With no donmai.toml, the store is `.donmai/state` beside the workflow.
    let store = dir.path().join(".donmai/state");
    assert!(store.join("data.mdb").is_file());
    let run = events[0]["runId"].as_str().unwrap();
    let listed = donmai(&["runs", "--store", store.to_str().unwrap()]);
    assert!(
        text(&listed.stdout).contains(run),
        "{}",
        text(&listed.stdout)
    );
    let shown = donmai(&["runs", "--store", store.to_str().unwrap(), run]);
    let shown = text(&shown.stdout);
    assert!(
        shown.contains("completed") && shown.contains("greet") && shown.contains("Ada"),
        "{shown}"
    );
}

#[test]
fn the_default_store_is_under_the_project_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("donmai.toml"), "").unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    let workflow = write(&dir.path().join("flows"), "simple.yaml", SIMPLE);
    let out = donmai(&["run", &workflow, "--payload", r#"{"name":"x"}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(dir.path().join(".donmai/state/data.mdb").is_file());
    assert!(!dir.path().join("flows/.donmai").exists());
}

#[test]
fn usage_errors_exit_2_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state");
    let store = store.to_str().unwrap();
    let two = write(
        dir.path(),
        "two.yaml",
        &SIMPLE.replace(
            "triggers: [{id: go, kind: manual, config: {inputs: {name: string}}}]",
            "triggers: [{id: go, kind: manual, config: {inputs: {name: string}}}, {id: again, kind: manual, config: {inputs: {name: string}}}]",
        ).replace(
            "    - {id: greet,",
            "    - {id: start2, type: trigger, config: {triggerId: again}, next: [greet]}\n    - {id: greet,",
        ),
    );
    let simple = write(dir.path(), "simple.yaml", SIMPLE);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", &two, "--store", store],
            "choose one with --trigger: go, again",
        ),
        (
            vec!["run", &two, "--store", store, "--trigger", "nope"],
            "no trigger `nope`; its triggers: go, again",
        ),
        (
            vec!["run", &simple, "--store", store],
            "the payload lacks `name` (string)",
        ),
        (
            vec![
                "run",
                &simple,
                "--store",
                store,
                "--payload",
                r#"{"name": 3}"#,
            ],
            "must be a string",
        ),
        (
            vec!["run", &simple, "--store", store, "--payload", "{oops"],
            "not valid JSON",
        ),
        (
            vec!["run", &simple, "--store", store, "--payload", "[1]"],
            "must be a JSON object",
        ),
        (
            vec!["run", "no/such.yaml", "--store", store],
            "no such file",
        ),
        (
            vec![
                "run",
                &simple,
                "--store",
                store,
                "--payload",
                r#"{"name":"x"}"#,
                "--plugin-endpoint",
                "linear",
            ],
            "expected PLUGIN=URL",
        ),
        (
            vec!["runs", "--store", "/nonexistent/store"],
            "no store at /nonexistent/store",
        ),
        (
            vec!["run", &simple, "--trust-key", &simple],
            "--trust-key applies to built plans",
        ),
    ];
    for (args, expected) in cases {
        let out = donmai(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // A workflow with check errors is a refused plan, its diagnostics shown
    // as `donmaic check` shows them.
    let bad = write(
        dir.path(),
        "bad.yaml",
        &SIMPLE.replace("core.set", "core.sett"),
    );
    let out = donmai(&[
        "run",
        &bad,
        "--store",
        store,
        "--payload",
        r#"{"name":"x"}"#,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error[DN") && stderr.contains("nothing was run"),
        "{stderr}"
    );
}

#[test]
fn a_verb_with_no_executor_fails_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = write(
        dir.path(),
        "wf.yaml",
        r#"apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: needs-linear, version: "1"}
requires: [{plugin: linear@1}]
triggers: [{id: go, kind: manual}]
spec:
  steps:
    - {id: start, type: trigger, config: {triggerId: go}, next: [get]}
    - {id: get, type: action, config: {action: "linear@1:linear.issue.get", issueId: LIN-1}}
"#,
    );
    let store = dir.path().join("s");
    let out = donmai(&[
        "run",
        &workflow,
        "--store",
        store.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: nothing can run `linear@1:linear.issue.get`"),
        "{stderr}"
    );
    let events = events(&out.stdout);
    let failed = events.iter().find(|e| e["type"] == "step.failed").unwrap();
    assert_eq!(failed["error"]["kind"], "no_executor");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("linear@1:linear.issue.get") && message.contains("--fixtures"),
        "{message}"
    );
}

#[test]
fn a_tampered_plan_is_refused_and_a_signed_one_needs_a_trusted_key() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = write(dir.path(), "simple.yaml", SIMPLE);
    let bytes = build(Path::new(&workflow));
    let store = dir.path().join("s");
    let store = store.to_str().unwrap();
    let payload = r#"{"name":"plan"}"#;

    let plan = dir.path().join("simple.dplan");
    std::fs::write(&plan, &bytes).unwrap();
    let out = donmai(&[
        "run",
        plan.to_str().unwrap(),
        "--store",
        store,
        "--payload",
        payload,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let mut tampered = bytes.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x20;
    let bad = dir.path().join("tampered.dplan");
    std::fs::write(&bad, &tampered).unwrap();
    let out = donmai(&[
        "run",
        bad.to_str().unwrap(),
        "--store",
        store,
        "--payload",
        payload,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("plan refused"), "{stderr}");

    // Signed with one key; trusted with that key, another, or none.
    let signing =
        donmai_runtime::keys::load_or_create_signing_key(dir.path().join("signing.pem")).unwrap();
    let public = dir.path().join("signing.pub.pem");
    std::fs::write(
        &public,
        signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    let other =
        donmai_runtime::keys::load_or_create_signing_key(dir.path().join("other.pem")).unwrap();
    let other_public = dir.path().join("other.pub.pem");
    std::fs::write(
        &other_public,
        other
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    let signed = donmai_runtime::plan::sign(&bytes, &signing).unwrap();
    let signed_path = dir.path().join("signed.dplan");
    std::fs::write(&signed_path, &signed).unwrap();
    let signed_path = signed_path.to_str().unwrap();

    let trusted = donmai(&[
        "run",
        signed_path,
        "--store",
        store,
        "--payload",
        payload,
        "--trust-key",
        public.to_str().unwrap(),
    ]);
    assert_eq!(trusted.status.code(), Some(0), "{}", text(&trusted.stderr));
    let untrusted = donmai(&[
        "run",
        signed_path,
        "--store",
        store,
        "--payload",
        payload,
        "--trust-key",
        other_public.to_str().unwrap(),
    ]);
    assert_eq!(untrusted.status.code(), Some(2));
    assert!(
        text(&untrusted.stderr).contains("plan refused"),
        "{}",
        text(&untrusted.stderr)
    );
    let unsigned = donmai(&[
        "run",
        plan.to_str().unwrap(),
        "--store",
        store,
        "--payload",
        payload,
        "--trust-key",
        public.to_str().unwrap(),
    ]);
    assert_eq!(unsigned.status.code(), Some(2));
    assert!(
        text(&unsigned.stderr).contains("plan refused"),
        "{}",
        text(&unsigned.stderr)
    );
}

fn store_put(dir: &str, table: Table, key: &[u8], value: &[u8]) {
    let store = HeedStore::open(Path::new(dir)).unwrap();
    store.write(&mut |txn| txn.put(table, key, value)).unwrap();
}

fn first_run_event_key(dir: &str) -> (Vec<u8>, Vec<u8>) {
    let store = HeedStore::open(Path::new(dir)).unwrap();
    let mut found = None;
    store
        .read(&mut |txn| {
            txn.scan(Table::Events, b"", &mut |key, value| {
                if key.len() != 8 {
                    found = Some((key.to_vec(), value.to_vec()));
                    return false;
                }
                true
            })
        })
        .unwrap();
    found.expect("a run event")
}

#[test]
fn the_audit_chain_verifies_after_runs_and_exports_for_offline_checks() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = write(dir.path(), "simple.yaml", SIMPLE);
    let store_path = dir.path().join("s");
    let store = store_path.to_str().unwrap();
    for name in ["a", "b"] {
        let out = donmai(&[
            "run",
            &workflow,
            "--store",
            store,
            "--payload",
            &format!(r#"{{"name":"{name}"}}"#),
        ]);
        assert_eq!(out.status.code(), Some(0));
    }
    let verified = donmai(&["audit", "verify", "--store", store, "--format", "json"]);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        text(&verified.stderr)
    );
    let report: Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["length"], 10, "two runs of five events");
    let anchor = report["anchor"].as_str().unwrap().to_string();

    // Export, verify offline, with the export's keys and with a pinned key.
    let export = dir.path().join("audit.jsonl");
    let export_str = export.to_str().unwrap();
    let out = donmai(&["audit", "export", "--store", store, "-o", export_str]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let offline = donmai(&["audit", "verify", "--file", export_str]);
    assert_eq!(offline.status.code(), Some(0), "{}", text(&offline.stderr));
    let offline_text = text(&offline.stdout);
    assert!(
        offline_text.contains("10 entries, head hash"),
        "{offline_text}"
    );
    assert!(offline_text.contains(&anchor), "{offline_text}");
    let anchored = donmai(&["audit", "verify", "--file", export_str, "--anchor", &anchor]);
    assert_eq!(
        anchored.status.code(),
        Some(0),
        "{}",
        text(&anchored.stderr)
    );

    let store_key = donmai_runtime::audit::AuditSigner::for_store(&store_path)
        .unwrap()
        .verifying_key();
    let pinned = dir.path().join("store.pub.pem");
    std::fs::write(
        &pinned,
        store_key.to_public_key_pem(LineEnding::LF).unwrap(),
    )
    .unwrap();
    let other =
        donmai_runtime::keys::load_or_create_signing_key(dir.path().join("other.pem")).unwrap();
    let wrong = dir.path().join("other.pub.pem");
    std::fs::write(
        &wrong,
        other
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    let ok = donmai(&[
        "audit",
        "verify",
        "--file",
        export_str,
        "--key",
        pinned.to_str().unwrap(),
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    let refused = donmai(&[
        "audit",
        "verify",
        "--file",
        export_str,
        "--key",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("not a trusted key"),
        "{}",
        text(&refused.stderr)
    );

    // A changed event in the export is found, and named.
    let exported = std::fs::read_to_string(&export).unwrap();
    let changed = exported.replacen(r#"\"hello\":\"a\""#, r#"\"hello\":\"z\""#, 1);
    assert_ne!(changed, exported);
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, changed).unwrap();
    let out = donmai(&["audit", "verify", "--file", tampered.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("INVALID") && text(&out.stderr).contains("altered"),
        "{}",
        text(&out.stderr)
    );

    // A changed run event in the store (what `donmai runs` reads) is found.
    let (key, value) = first_run_event_key(store);
    let mut event: Value = serde_json::from_slice(&value).unwrap();
    event["trigger"] = json!("forged");
    store_put(store, Table::Events, &key, event.to_string().as_bytes());
    let out = donmai(&["audit", "verify", "--store", store]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("is not signed by the audit chain"),
        "{}",
        text(&out.stderr)
    );
    store_put(store, Table::Events, &key, &value);
    assert_eq!(
        donmai(&["audit", "verify", "--store", store]).status.code(),
        Some(0)
    );

    // An anchor the chain does not extend (as after entries were cut off
    // its end) is refused.
    let longer_anchor = format!("11:{}", "0".repeat(64));
    let out = donmai(&[
        "audit",
        "verify",
        "--file",
        export_str,
        "--anchor",
        &longer_anchor,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let out = donmai(&[
        "audit",
        "verify",
        "--store",
        store,
        "--anchor",
        &longer_anchor,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
}

/// Spawns `donmai run` and reads its NDJSON lines on a channel.
fn spawn_run(args: &[&str]) -> (Child, mpsc::Receiver<Value>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_donmai"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn donmai run");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(event) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(event);
            }
        }
    });
    (child, rx)
}

fn wait_for(rx: &mpsc::Receiver<Value>, kind: &str) -> Value {
    loop {
        let event = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no `{kind}` event within 30 s"));
        if event["type"] == kind {
            return event;
        }
    }
}

fn wait_exit(child: &mut Child) -> (Option<i32>, String) {
    for _ in 0..600 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.code(), stderr);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("donmai run did not exit within 30 s");
}

#[test]
fn a_signal_from_another_process_resumes_a_live_run() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = write(dir.path(), "gated.yaml", GATED);
    let store = dir.path().join("s");
    let store = store.to_str().unwrap();
    let (mut child, rx) = spawn_run(&["run", &workflow, "--store", store, "--format", "json"]);
    let waiting = wait_for(&rx, "gate.waiting");
    let run = waiting["runId"].as_str().unwrap().to_string();
    let out = donmai(&[
        "signal",
        "--store",
        store,
        "com.github.workflow_run.completed",
        "--run",
        &run,
        "--data",
        r#"{"workflow_run": {"conclusion": "success"}}"#,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let completed = wait_for(&rx, "run.completed");
    assert_eq!(completed["runId"], run.as_str());
    let (code, stderr) = wait_exit(&mut child);
    assert_eq!(code, Some(0), "{stderr}");
    let shown = donmai(&["runs", "--store", store, &run, "--format", "json"]);
    let info: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let after = info["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stepId"] == "after")
        .unwrap();
    assert_eq!(after["output"], json!({"got": "success"}));
}

#[test]
fn a_cancel_from_another_process_ends_a_live_run() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = write(dir.path(), "gated.yaml", GATED);
    let store = dir.path().join("s");
    let store = store.to_str().unwrap();
    let (mut child, rx) = spawn_run(&["run", &workflow, "--store", store, "--format", "json"]);
    let run = wait_for(&rx, "gate.waiting")["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let out = donmai(&["cancel", "--store", store, &run]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("run.cancelled"));
    // The live process prints the cancellation from the store and exits 1.
    let cancelled = wait_for(&rx, "run.cancelled");
    assert_eq!(cancelled["runId"], run.as_str());
    let (code, stderr) = wait_exit(&mut child);
    assert_eq!(code, Some(1), "{stderr}");
    // Cancelling again: the run has ended.
    assert_eq!(
        donmai(&["cancel", "--store", store, &run]).status.code(),
        Some(1)
    );
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_driving_and_resume_continues() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = write(dir.path(), "gated.yaml", GATED);
    let store = dir.path().join("s");
    let store = store.to_str().unwrap();
    let (mut child, rx) = spawn_run(&["run", &workflow, "--store", store, "--format", "json"]);
    let run = wait_for(&rx, "gate.waiting")["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (code, stderr) = wait_exit(&mut child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted") && stderr.contains("--resume"),
        "{stderr}"
    );

    let out = donmai(&[
        "signal",
        "--store",
        store,
        "com.github.workflow_run.completed",
        "--data",
        r#"{"workflow_run": {"conclusion": "neutral"}}"#,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = donmai(&["run", "--resume", "--store", store, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let events = events(&out.stdout);
    // Only what happened after the resume is printed.
    assert_eq!(events[0]["type"], "gate.resumed");
    assert_eq!(events.last().unwrap()["type"], "run.completed");
    assert!(events.iter().all(|e| e["runId"] == run.as_str()));
}

#[test]
fn plugin_verbs_are_served_by_an_http_endpoint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        // Headers, then the body by its Content-Length.
        loop {
            let n = stream.read(&mut buf).unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        let body =
            r#"{"output": {"title": "From the plugin", "status": "Todo", "assigneeId": null}}"#;
        write!(stream, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    let dir = tempfile::tempdir().unwrap();
    let workflow = write(
        dir.path(),
        "wf.yaml",
        r#"apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: plugin, version: "1"}
requires: [{plugin: linear@1}]
triggers: [{id: go, kind: manual}]
spec:
  steps:
    - {id: start, type: trigger, config: {triggerId: go}, next: [get]}
    - {id: get, type: action, config: {action: "linear@1:linear.issue.get", issueId: LIN-5}}
"#,
    );
    let store = dir.path().join("s");
    let endpoint = format!("linear=http://127.0.0.1:{port}/verbs");
    let out = donmai(&[
        "run",
        &workflow,
        "--store",
        store.to_str().unwrap(),
        "--plugin-endpoint",
        &endpoint,
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let request = server.join().unwrap();
    assert!(request.starts_with("POST /verbs"), "{request}");
    assert!(
        request.to_ascii_lowercase().contains("idempotency-key:"),
        "{request}"
    );
    assert!(
        request.contains(r#""verb":"linear@1:linear.issue.get""#),
        "{request}"
    );
    let events = events(&out.stdout);
    let done = events
        .iter()
        .find(|e| e["type"] == "step.completed" && e["stepId"] == "get")
        .unwrap();
    assert_eq!(done["output"]["title"], "From the plugin");
}

#[test]
fn a_killed_process_s_run_is_resumed_with_its_history_intact() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = write(dir.path(), "gated.yaml", GATED);
    let store = dir.path().join("s");
    let store = store.to_str().unwrap();
    let (mut child, rx) = spawn_run(&["run", &workflow, "--store", store, "--format", "json"]);
    let run = wait_for(&rx, "gate.waiting")["runId"]
        .as_str()
        .unwrap()
        .to_string();
    // SIGKILL: no chance to clean up; the lease names a dead process.
    child.kill().unwrap();
    child.wait().unwrap();
    let out = donmai(&[
        "signal",
        "--store",
        store,
        "com.github.workflow_run.completed",
        "--run",
        &run,
        "--data",
        r#"{"workflow_run": {"conclusion": "success"}}"#,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = donmai(&["run", "--resume", "--store", store, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        types(&events(&out.stdout)),
        [
            "gate.resumed",
            "step.completed",
            "step.started",
            "step.completed",
            "run.completed"
        ]
    );
    // The store holds one uninterrupted history: nine events, each once,
    // every one signed.
    let shown = donmai(&["runs", "--store", store, &run, "--format", "json"]);
    let info: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(info["run"]["status"], "completed");
    let audit = donmai(&["audit", "verify", "--store", store, "--format", "json"]);
    assert_eq!(audit.status.code(), Some(0));
    let audit: Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert_eq!(audit["length"], 9);
    // Nothing is left to resume.
    let again = donmai(&["run", "--resume", "--store", store]);
    assert_eq!(again.status.code(), Some(0));
    assert!(text(&again.stderr).contains("resuming 0 unfinished runs"));
}
