//! Plugins served at the `endpoint` their manifest declares, through the
//! real `donmai` binary: a temporary project enables a third-party plugin
//! whose `.donmai/plugins/acme/plugin.yaml` names a local test server; the
//! server records every request. Also: `--plugin-endpoint` overriding the
//! manifest, the manifest's `endpointTimeoutMs`, `.dplan` input (whose bytes
//! do not depend on the endpoint), `--resume` from the project folder, and
//! the start-up refusals (a manifest with a bad endpoint, `https://` in a
//! build without HTTPS, a plugin the project does not enable).

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn donmai_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_donmai"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run donmai")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn events(stdout: &[u8]) -> Vec<Value> {
    text(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn find<'e>(events: &'e [Value], kind: &str, step: &str) -> &'e Value {
    events
        .iter()
        .find(|e| e["type"] == kind && e["stepId"] == step)
        .unwrap_or_else(|| panic!("no {kind} of {step} in {events:#?}"))
}

/// One HTTP request as the test server read it.
#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    /// Lower-case names.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", text(&self.body)))
    }
}

/// How the test server answers.
#[derive(Clone, Copy)]
enum Answer {
    /// 200 with `{"output": {"closed": true, "by": SERVER}}`.
    Closed(&'static str),
    /// Reads the request and never answers.
    Silent,
}

/// A local plugin server that records every request it reads.
struct Server {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start(answer: Answer) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/acme", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        // The thread ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let recorded = recorded.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, answer, &recorded);
                });
            }
        });
        Server { url, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(
    mut stream: TcpStream,
    answer: Answer,
    recorded: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        bytes.extend_from_slice(&buf[..n]);
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_string();
    let path = request_line.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = bytes[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    recorded.lock().unwrap().push(Request {
        method,
        path,
        headers,
        body,
    });
    match answer {
        Answer::Closed(server) => {
            let body = json!({"output": {"closed": true, "by": server}}).to_string();
            write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        Answer::Silent => {
            std::thread::sleep(Duration::from_secs(10));
            Ok(())
        }
    }
}

const WORKFLOW: &str = r#"apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: close-ticket, version: "1"}
requires: [{plugin: acme@1}]
triggers: [{id: go, kind: manual, config: {inputs: {ticket: string}}}]
spec:
  steps:
    - {id: start, type: trigger, config: {triggerId: go}, next: [close]}
    - {id: close, type: action, config: {action: "acme@1:acme.ticket.close", ticketId: "{{ trigger.ticket }}"}}
"#;

/// The manifest of `acme@1`, with these extra header lines (an `endpoint`,
/// an `endpointTimeoutMs`).
fn manifest(header: &str) -> String {
    format!(
        r#"apiVersion: donmai.dev/v1
kind: Plugin
metadata: {{name: acme, version: "1.2.0", description: The Acme ticket tracker.}}
{header}
verbs:
  - id: acme.ticket.close
    description: Closes a ticket.
    sideEffectClass: external-write
    idempotencyKey: "close:${{input.ticketId}}"
    inputSchema:
      type: object
      required: [ticketId]
      properties:
        ticketId: {{type: string}}
    outputSchema:
      type: object
      required: [closed]
      properties:
        closed: {{type: boolean}}
        by: {{type: string}}
"#
    )
}

/// A project enabling `acme` (and `github`, for gates), with the manifest
/// of `acme` and the workflow at `flows/close.yaml`, one folder below the
/// root, so the project is found by walking up.
struct Project {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Project {
    fn new(manifest_header: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let project = Project { _dir: dir, root };
        project.write(
            "donmai.toml",
            "[integrations]\nenabled = [\"acme\", \"github\"]\n",
        );
        project.write(
            ".donmai/plugins/acme/plugin.yaml",
            &manifest(manifest_header),
        );
        project.write("flows/close.yaml", WORKFLOW);
        project
    }

    fn write(&self, relative: &str, content: &str) {
        let path = self.root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn path(&self, relative: &str) -> String {
        self.root.join(relative).to_str().unwrap().to_string()
    }

    /// `donmai run FILE` from the project root, JSON events, a payload.
    fn run(&self, file: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "run",
            file,
            "--format",
            "json",
            "--payload",
            r#"{"ticket": "T-1"}"#,
        ];
        args.extend_from_slice(extra);
        donmai_in(&self.root, &args)
    }
}

#[test]
fn a_manifest_endpoint_serves_a_third_party_plugin() {
    let server = Server::start(Answer::Closed("manifest"));
    let project = Project::new(&format!("endpoint: {}", server.url));
    let out = project.run("flows/close.yaml", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/acme");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    assert_eq!(body["verb"], "acme@1:acme.ticket.close");
    assert_eq!(body["input"], json!({"ticketId": "T-1"}));
    assert_eq!(body["attempt"], 1);
    assert_eq!(body["stepId"], "close");
    // The write verb's idempotency key: in the header, in the body, and the
    // one the store keeps for the step.
    let key = request
        .header("idempotency-key")
        .expect("an Idempotency-Key header");
    assert!(!key.is_empty());
    assert_eq!(body["idempotencyKey"], key);

    let events = events(&out.stdout);
    let done = find(&events, "step.completed", "close");
    assert_eq!(done["output"], json!({"closed": true, "by": "manifest"}));
    let run = done["runId"].as_str().unwrap();
    assert_eq!(body["runId"], run);
    let shown = donmai_in(&project.root, &["runs", run, "--format", "json"]);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let step = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stepId"] == "close")
        .unwrap();
    assert_eq!(step["idempotencyKey"], key);
    // The default store is the project's, found from the workflow's folder.
    assert!(project.root.join(".donmai/state/data.mdb").is_file());
}

#[test]
fn the_command_line_overrides_the_manifest_endpoint() {
    let declared = Server::start(Answer::Closed("manifest"));
    let chosen = Server::start(Answer::Closed("command line"));
    let project = Project::new(&format!("endpoint: {}", declared.url));
    for (i, plugin) in ["acme", "acme@1"].iter().enumerate() {
        let flag = format!("{plugin}={}", chosen.url);
        let out = project.run("flows/close.yaml", &["--plugin-endpoint", &flag]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let events = events(&out.stdout);
        let done = find(&events, "step.completed", "close");
        assert_eq!(done["output"]["by"], "command line", "{plugin}");
        assert_eq!(chosen.requests().len(), i + 1, "{plugin}");
    }
    assert!(declared.requests().is_empty(), "{:#?}", declared.requests());

    // An override for a plugin the run does not call is pointed out.
    let flag = format!("slack={}", chosen.url);
    let out = project.run("flows/close.yaml", &["--plugin-endpoint", &flag]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("--plugin-endpoint slack=…: no verb the run calls belongs to `slack`"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(declared.requests().len(), 1);
}

#[test]
fn the_manifest_timeout_bounds_calls_whatever_url_serves_them() {
    let silent = Server::start(Answer::Silent);
    let project = Project::new(&format!("endpoint: {}\nendpointTimeoutMs: 300", silent.url));
    let started = std::time::Instant::now();
    let out = project.run("flows/close.yaml", &[]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let events = events(&out.stdout);
    let failed = find(&events, "step.failed", "close");
    assert_eq!(failed["error"]["kind"], "timeout", "{failed}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_eq!(silent.requests().len(), 1);

    // Served elsewhere by the command line, the manifest's bound still holds.
    let other = Server::start(Answer::Silent);
    let flag = format!("acme={}", other.url);
    let out = project.run("flows/close.yaml", &["--plugin-endpoint", &flag]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let failed = find(&events_of(&out), "step.failed", "close").clone();
    assert_eq!(failed["error"]["kind"], "timeout", "{failed}");
    assert_eq!(other.requests().len(), 1);
}

fn events_of(out: &Output) -> Vec<Value> {
    events(&out.stdout)
}

/// What `donmaic build` writes for `workflow`.
fn build(workflow: &Path) -> Vec<u8> {
    let compiled = donmai_compiler::build::compile(workflow).expect("compiles");
    let plan = donmai_runtime::verify::verify(compiled.plan).expect("verifies");
    donmai_runtime::plan::encode(&plan)
}

#[test]
fn a_built_plan_takes_its_endpoint_from_the_project_it_runs_in() {
    let server = Server::start(Answer::Closed("manifest"));
    let project = Project::new(&format!("endpoint: {}", server.url));
    let workflow = project.root.join("flows/close.yaml");
    let with_endpoint = build(&workflow);
    // Endpoints are deployment facts: the plan is the same bytes whatever
    // the manifest says, or without an endpoint at all.
    project.write(
        ".donmai/plugins/acme/plugin.yaml",
        &manifest("endpoint: https://elsewhere.example.com/acme\nendpointTimeoutMs: 5"),
    );
    assert_eq!(build(&workflow), with_endpoint);
    project.write(".donmai/plugins/acme/plugin.yaml", &manifest(""));
    assert_eq!(build(&workflow), with_endpoint);

    project.write(
        ".donmai/plugins/acme/plugin.yaml",
        &manifest(&format!("endpoint: {}", server.url)),
    );
    std::fs::create_dir_all(project.root.join("plans")).unwrap();
    std::fs::write(project.root.join("plans/close.dplan"), &with_endpoint).unwrap();
    let out = project.run(&project.path("plans/close.dplan"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        find(&events_of(&out), "step.completed", "close")["output"]["by"],
        "manifest"
    );

    // The same plan outside any project has no endpoint for `acme`.
    let elsewhere = tempfile::tempdir().unwrap();
    let plan = elsewhere.path().join("close.dplan");
    std::fs::write(&plan, &with_endpoint).unwrap();
    let out = donmai_in(
        elsewhere.path(),
        &[
            "run",
            plan.to_str().unwrap(),
            "--format",
            "json",
            "--payload",
            r#"{"ticket": "T-1"}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: nothing can run `acme@1:acme.ticket.close`")
            && stderr.contains("`endpoint:` in its manifest"),
        "{stderr}"
    );
    assert_eq!(
        find(&events_of(&out), "step.failed", "close")["error"]["kind"],
        "no_executor"
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn resume_takes_endpoints_from_the_current_project() {
    let server = Server::start(Answer::Closed("manifest"));
    let project = Project::new(&format!("endpoint: {}", server.url));
    project.write(
        "flows/gated.yaml",
        r#"apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: gated-close, version: "1"}
requires: [{plugin: acme@1}, {plugin: github@1}]
triggers: [{id: go, kind: manual, config: {inputs: {ticket: string}}}]
spec:
  steps:
    - {id: start, type: trigger, config: {triggerId: go}, next: [ci]}
    - id: ci
      type: gate
      gateConfig: {gateType: signal, signalEventType: com.github.workflow_run.completed, onTimeout: error, timeoutMs: 86400000}
      next: [close]
    - {id: close, type: action, config: {action: "acme@1:acme.ticket.close", ticketId: "{{ trigger.ticket }}"}}
"#,
    );
    let out = project.run("flows/gated.yaml", &["--detach"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(server.requests().is_empty());
    let signal = donmai_in(
        &project.root,
        &[
            "signal",
            "com.github.workflow_run.completed",
            "--data",
            r#"{"workflow_run": {"conclusion": "success"}}"#,
        ],
    );
    assert_eq!(signal.status.code(), Some(0), "{}", text(&signal.stderr));
    // From a folder inside the project, as the default store is found.
    let out = donmai_in(
        &project.root.join("flows"),
        &[
            "run",
            "--resume",
            "--store",
            &project.path(".donmai/state"),
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let events = events(&out.stdout);
    assert_eq!(
        find(&events, "step.completed", "close")["output"]["by"],
        "manifest"
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_manifest_with_a_bad_endpoint_stops_the_run_before_it_starts() {
    let project = Project::new("endpoint: \"http://admin:s3cret@127.0.0.1:9/acme\"");
    let out = project.run("flows/close.yaml", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("an endpoint must not carry credentials"),
        "{stderr}"
    );
    // Positioned in the manifest (line 4, the value's first column).
    assert!(stderr.contains("plugin.yaml:4:11"), "{stderr}");
    assert!(stderr.contains("nothing was run"), "{stderr}");
    assert!(!project.root.join(".donmai/state").exists());

    // A plan built before the manifest broke is refused the same way.
    project.write(".donmai/plugins/acme/plugin.yaml", &manifest(""));
    let plan = build(&project.root.join("flows/close.yaml"));
    std::fs::write(project.root.join("close.dplan"), plan).unwrap();
    project.write(
        ".donmai/plugins/acme/plugin.yaml",
        &manifest("endpoint: acme.example.com/verbs"),
    );
    let out = project.run("close.dplan", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not an absolute URL") && stderr.contains("plugin.yaml:4:11"),
        "{stderr}"
    );
    assert!(stderr.contains("manifests with errors"), "{stderr}");
    assert!(!project.root.join(".donmai/state").exists());
}

#[test]
fn https_needs_a_build_with_https_and_says_so_at_start_up() {
    let project = Project::new("endpoint: https://127.0.0.1:9/acme");
    let out = project.run("flows/close.yaml", &[]);
    let stderr = text(&out.stderr);
    if donmai_runtime::exec::http::HTTPS_SUPPORTED {
        // The run starts and the call fails on the network instead.
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let events = events(&out.stdout);
        assert_eq!(
            find(&events, "step.failed", "close")["error"]["kind"],
            "network"
        );
    } else {
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(out.stdout.is_empty(), "nothing runs");
        assert!(
            stderr.contains("plugin `acme@1` cannot be served")
                && stderr.contains("needs HTTPS")
                && stderr.contains("--features https"),
            "{stderr}"
        );
        assert!(!project.root.join(".donmai/state").exists());
    }
    // The same from the command line, for a manifest without endpoint.
    project.write(".donmai/plugins/acme/plugin.yaml", &manifest(""));
    let out = project.run(
        "flows/close.yaml",
        &["--plugin-endpoint", "acme=https://127.0.0.1:9/acme"],
    );
    if !donmai_runtime::exec::http::HTTPS_SUPPORTED {
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty());
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("--plugin-endpoint: `https://127.0.0.1:9/acme` needs HTTPS"),
            "{stderr}"
        );
    }
}

#[test]
fn a_plugin_the_project_does_not_enable_is_not_served_from_its_manifest() {
    let server = Server::start(Answer::Closed("manifest"));
    let project = Project::new(&format!("endpoint: {}", server.url));
    let plan = build(&project.root.join("flows/close.yaml"));
    std::fs::write(project.root.join("close.dplan"), plan).unwrap();
    project.write("donmai.toml", "[integrations]\nenabled = [\"github\"]\n");
    let out = project.run("close.dplan", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("declares an endpoint") && stderr.contains("does not enable `acme`"),
        "{stderr}"
    );
    assert!(server.requests().is_empty());
}
