//! Crash tests against the real `donmai` binary: a run that calls a local
//! HTTP endpoint is killed with SIGKILL at random instants, then continued
//! with `donmai run --resume`, many times. Every run must end with exactly
//! the outputs of an uninterrupted run, and the endpoint — which records
//! every `Idempotency-Key` with the body it came with — must never see one
//! key with two different bodies (a doubled effect would show up as a
//! second key for the same step of the same run, which is checked too).
//!
//! The number of trials is `DONMAI_CRASH_TRIALS` (default 200). Most
//! trials kill the run a random few milliseconds after the endpoint received
//! one of its requests, so the kills land mid-run however fast or slow the
//! machine is; the others kill at a random instant of a warm run's
//! duration, which also covers kills before the run is recorded.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const WORKFLOW: &str = r#"apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: crash, version: "1"}
requires: [{plugin: core@1}]
triggers: [{id: go, kind: manual, config: {inputs: {url: string}}}]
spec:
  steps:
    - {id: go, type: trigger, config: {triggerId: go}, next: [a]}
    - id: a
      type: action
      config: {action: "core@1:core.http.request", method: POST, url: "{{ trigger.url }}/a", body: {n: 1}}
      next: [b]
    - id: b
      type: action
      config: {action: "core@1:core.http.request", method: POST, url: "{{ trigger.url }}/b", body: {prev: "{{ nodes.a.output.body.echo.n }}"}}
      next: [c, d]
    - id: c
      type: action
      config: {action: "core@1:core.http.request", method: PUT, url: "{{ trigger.url }}/c", body: {from: "{{ nodes.b.output.body.path }}"}}
      next: [e]
    - id: d
      type: action
      config: {action: "core@1:core.set", values: {x: "{{ nodes.b.output.status * 2 }}"}}
      next: [e]
    - id: e
      type: action
      config: {action: "core@1:core.http.request", method: POST, url: "{{ trigger.url }}/e", body: {c: "{{ nodes.c.output.status }}", d: "{{ nodes.d.output.x }}"}}
      next: [f]
    - {id: f, type: action, config: {action: "core@1:core.log", message: "done {{ nodes.e.output.body.echo.d }}"}}
"#;

/// What the endpoint saw: per key, the (path, body) of its first request and
/// how many requests carried it; and every conflict.
#[derive(Default)]
struct Ledger {
    keys: BTreeMap<String, (String, String, usize)>,
    conflicts: Vec<String>,
    missing_key: Vec<String>,
    /// Requests read in full so far.
    requests: usize,
}

/// The ledger, and a signal for each request it records.
#[derive(Default)]
struct Endpoint {
    ledger: Mutex<Ledger>,
    arrived: Condvar,
}

impl Endpoint {
    /// Waits until the endpoint has read `count` requests in all, or
    /// `limit` has passed.
    fn wait_for_requests(&self, count: usize, limit: Duration) {
        let guard = self.ledger.lock().unwrap();
        let _ = self
            .arrived
            .wait_timeout_while(guard, limit, |ledger| ledger.requests < count)
            .unwrap();
    }
}

fn serve(listener: TcpListener, ledger: Arc<Endpoint>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let ledger = Arc::clone(&ledger);
        std::thread::spawn(move || {
            let _ = answer(stream, &ledger);
        });
    }
}

fn answer(mut stream: TcpStream, endpoint: &Endpoint) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    if request_line.trim().is_empty() {
        // A client killed between connecting and sending: no request.
        return Ok(());
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut length = 0usize;
    let mut key = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        let value = value.trim().to_string();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "idempotency-key" => key = Some(value),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    {
        let mut guard = endpoint.ledger.lock().unwrap();
        let ledger = &mut *guard;
        ledger.requests += 1;
        endpoint.arrived.notify_all();
        match key {
            None => ledger.missing_key.push(request_line.clone()),
            Some(key) => match ledger.keys.get_mut(&key) {
                Some((first_path, first_body, count)) => {
                    if *first_path != path || *first_body != body {
                        ledger.conflicts.push(format!(
                            "key {key}: {first_path} {first_body} then {path} {body}"
                        ));
                    }
                    *count += 1;
                }
                None => {
                    ledger.keys.insert(key, (path.clone(), body.clone(), 1));
                }
            },
        }
    }
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    let reply = serde_json::json!({"path": path, "echo": echo}).to_string();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    stream.flush()
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn donmai() -> Command {
    Command::new(env!("CARGO_BIN_EXE_donmai"))
}

/// The outputs of every step of the store's only run, by step id, and
/// each step's idempotency key.
fn outcome(
    store: &Path,
) -> (
    String,
    BTreeMap<String, serde_json::Value>,
    BTreeMap<String, String>,
) {
    let list = donmai()
        .args(["runs", "--store"])
        .arg(store)
        .args(["--format", "json"])
        .output()
        .expect("donmai runs");
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("JSON");
    let runs = list["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{list}");
    let run_id = runs[0]["runId"].as_str().expect("runId").to_string();
    let run = donmai()
        .args(["runs", "--store"])
        .arg(store)
        .arg(&run_id)
        .args(["--format", "json"])
        .output()
        .expect("donmai runs RUN");
    let run: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON");
    let status = run["run"]["status"].as_str().unwrap_or("?").to_string();
    let mut outputs = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for step in run["steps"].as_array().expect("steps") {
        let id = step["stepId"].as_str().expect("stepId").to_string();
        outputs.insert(id.clone(), step["output"].clone());
        if let Some(key) = step["idempotencyKey"].as_str() {
            keys.insert(id, key.to_string());
        }
    }
    (status, outputs, keys)
}

/// A small deterministic generator: the trials are reproducible from the seed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_result_without_doubled_effects() {
    let trials: usize = std::env::var("DONMAI_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let root = std::env::temp_dir().join(format!("donmai-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("mkdir");
    let _scratch = Scratch(root.clone());
    let workflow = root.join("crash.yaml");
    std::fs::write(&workflow, WORKFLOW).expect("write workflow");
    // Build once, so every trial runs the same verified plan.
    let plan = root.join("crash.dplan");
    let compiled = donmai_compiler::build::compile(&workflow).expect("the workflow compiles");
    let verified = donmai_runtime::verify::verify(compiled.plan).expect("the plan verifies");
    std::fs::write(&plan, donmai_runtime::plan::encode(&verified)).expect("write plan");

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let endpoint = Arc::new(Endpoint::default());
    {
        let endpoint = Arc::clone(&endpoint);
        std::thread::spawn(move || serve(listener, endpoint));
    }
    let payload = serde_json::json!({ "url": url }).to_string();

    // The reference: one uninterrupted run.
    let reference_store = root.join("reference");
    let started = Instant::now();
    let run = donmai()
        .arg("run")
        .arg(&plan)
        .arg("--store")
        .arg(&reference_store)
        .args(["--payload", &payload])
        .output()
        .expect("donmai run");
    let full_run = started.elapsed();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (status, reference, _) = outcome(&reference_store);
    assert_eq!(status, "completed");
    assert_eq!(reference.len(), 7, "{reference:?}");

    // Kill within the time a warm run takes: the fastest of a few.
    let mut fastest = full_run;
    for warm in 0..3 {
        let store = root.join(format!("warm-{warm}"));
        let started = Instant::now();
        let run = donmai()
            .arg("run")
            .arg(&plan)
            .arg("--store")
            .arg(&store)
            .args(["--payload", &payload])
            .output()
            .expect("donmai run");
        assert!(run.status.success());
        fastest = fastest.min(started.elapsed());
    }
    let warm_runs = 3;
    let window_us = (fastest.as_micros() as u64).max(1_000);
    let mut dice = Dice(0x5eed_cafe_f00d_u64);
    let mut killed = 0;
    let mut all_keys: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let writes_per_run = 4;
    for trial in 0..trials {
        let store = root.join(format!("trial-{trial}"));
        let requests_before = endpoint.ledger.lock().unwrap().requests;
        let mut child = donmai()
            .arg("run")
            .arg(&plan)
            .arg("--store")
            .arg(&store)
            .args(["--payload", &payload])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        if dice.below(4) == 0 {
            std::thread::sleep(Duration::from_micros(dice.below(window_us)));
        } else {
            // A few milliseconds after one of the run's writes reached the
            // endpoint: the run may be waiting for the answer, recording
            // it, or on to the next step.
            let writes = 1 + dice.below(writes_per_run as u64) as usize;
            endpoint.wait_for_requests(requests_before + writes, Duration::from_secs(30));
            std::thread::sleep(Duration::from_micros(dice.below(3_000)));
        }
        if child.try_wait().expect("try_wait").is_none() {
            child.kill().expect("SIGKILL");
            killed += 1;
        }
        let _ = child.wait();
        // A kill before the run was recorded leaves nothing to resume; then
        // the trial starts it again, as a user would.
        let resumed = donmai()
            .args(["run", "--resume", "--store"])
            .arg(&store)
            .output()
            .expect("resume");
        let has_run = donmai()
            .args(["runs", "--store"])
            .arg(&store)
            .args(["--format", "json"])
            .output()
            .map(|o| {
                serde_json::from_slice::<serde_json::Value>(&o.stdout)
                    .map(|v| v["runs"].as_array().is_some_and(|r| !r.is_empty()))
                    .unwrap_or(false)
            })
            .unwrap_or(false);
        if !has_run {
            let again = donmai()
                .arg("run")
                .arg(&plan)
                .arg("--store")
                .arg(&store)
                .args(["--payload", &payload])
                .output()
                .expect("rerun");
            assert!(
                again.status.success(),
                "trial {trial}: {}",
                String::from_utf8_lossy(&again.stderr)
            );
        } else {
            assert!(
                resumed.status.success(),
                "trial {trial}: resume failed: {}",
                String::from_utf8_lossy(&resumed.stderr)
            );
        }
        let (status, outputs, keys) = outcome(&store);
        assert_eq!(status, "completed", "trial {trial}");
        assert_eq!(outputs, reference, "trial {trial}: the outputs differ");
        for (step, key) in keys {
            if let Some((other, other_step)) = all_keys.insert(key.clone(), (trial, step.clone())) {
                panic!(
                    "key {key} used by trial {other} step {other_step} and trial {trial} step {step}"
                );
            }
        }
    }
    let ledger = endpoint.ledger.lock().unwrap();
    assert!(ledger.conflicts.is_empty(), "{:#?}", ledger.conflicts);
    assert!(
        ledger.missing_key.is_empty(),
        "writes without an Idempotency-Key: {:?}",
        ledger.missing_key
    );
    // Every external write of every run reached the endpoint under the key
    // the store recorded for it, and no step produced a second key.
    assert_eq!(ledger.keys.len(), (trials + 1 + warm_runs) * writes_per_run);
    assert!(
        killed * 2 >= trials,
        "only {killed} of {trials} trials were killed before their run ended"
    );
    eprintln!(
        "{trials} trials, {killed} killed before their run ended; {} requests for {} keys (each repeat identical)",
        ledger.keys.values().map(|(_, _, n)| n).sum::<usize>(),
        ledger.keys.len()
    );
}
