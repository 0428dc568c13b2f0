//! `core.http.request` and the HTTP plugin executor against a local server:
//! idempotency keys on the wire, JSON and text answers, timeouts, and a
//! retried plugin call that keeps its key.

mod engine_support;

use donmai_runtime::exec::{
    CompositeExecutor, CoreExecutor, HttpClient, HttpPluginExecutor, VerbCall, VerbExecutor,
    error_kind,
};
use donmai_runtime::plan::model::*;
use donmai_stdlib::value::Value;
use engine_support::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    delay: Duration,
}

/// A one-thread HTTP/1.1 server answering each request with `handler`.
fn serve(
    handler: impl Fn(&Seen, usize) -> Reply + Send + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let path = parts.next().unwrap_or("").to_string();
            let mut headers = BTreeMap::new();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.trim_end().split_once(':') {
                    headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
                }
            }
            let length: usize = headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let request = Seen {
                method,
                path,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            log.lock().unwrap().push(request.clone());
            let reply = handler(&request, n);
            std::thread::sleep(reply.delay);
            let _ = write!(
                stream,
                "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nx-test: a\r\nx-test: b\r\nconnection: close\r\n\r\n{}",
                reply.status,
                reply.content_type,
                reply.body.len(),
                reply.body
            );
        }
    });
    (url, seen)
}

fn reply(status: u16, content_type: &'static str, body: &str) -> Reply {
    Reply {
        status,
        content_type,
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

fn core_verb(name: &str) -> VerbRef {
    VerbRef {
        plugin: "core".into(),
        major: 1,
        verb: name.into(),
        kind: VerbKind::Action,
        side_effect: SideEffect::ExternalWrite,
        required_inputs: vec![],
        route_by: None,
        route_cases: vec![],
        handles: vec![],
        events: vec![],
        idempotency_key: None,
    }
}

fn call(
    executor: &dyn VerbExecutor,
    verb: &VerbRef,
    input: serde_json::Value,
    timeout_ms: Option<u64>,
) -> Result<donmai_runtime::exec::VerbOutcome, donmai_runtime::exec::ExecError> {
    let qualified = verb.qualified();
    let input = json_value(input);
    executor.execute(&VerbCall {
        verb,
        qualified: &qualified,
        input: &input,
        idempotency_key: "key-123",
        attempt: 1,
        timeout_ms,
        run_id: "RUN",
        step_id: "step",
    })
}

fn json_value(value: serde_json::Value) -> Value {
    Value::from_json(&value)
}

#[test]
fn a_post_carries_the_idempotency_key_and_json_answers_are_parsed() {
    let (url, seen) = serve(|_, _| reply(201, "application/json", r#"{"id": 7}"#));
    let core = CoreExecutor::default();
    let out = call(
        &core,
        &core_verb("core.http.request"),
        json!({"method": "post", "url": format!("{url}/items"), "headers": {"x-trace": "t1", "idempotency-key": "user-supplied"}, "body": {"name": "x"}}),
        None,
    )
    .unwrap();
    let out = out.output.to_json();
    assert_eq!(out["status"], json!(201));
    assert_eq!(out["body"], json!({"id": 7}));
    assert_eq!(out["headers"]["x-test"], json!("a, b"));
    let request = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/items")
    );
    assert_eq!(request.headers["idempotency-key"], "key-123");
    assert_eq!(request.headers["x-trace"], "t1");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.body, r#"{"name":"x"}"#);
}

#[test]
fn a_get_has_no_key_and_text_stays_text() {
    let (url, seen) = serve(|_, _| reply(404, "text/plain", "nothing here"));
    let out = call(
        &CoreExecutor::default(),
        &core_verb("core.http.request"),
        json!({"url": url}),
        None,
    )
    .unwrap();
    let out = out.output.to_json();
    assert_eq!(out["status"], json!(404));
    assert_eq!(out["body"], json!("nothing here"));
    let request = seen.lock().unwrap()[0].clone();
    assert_eq!(request.method, "GET");
    assert!(!request.headers.contains_key("idempotency-key"));
}

#[test]
fn timeouts_unreachable_hosts_and_bad_inputs_are_classified() {
    let (url, _) = serve(|_, _| Reply {
        delay: Duration::from_millis(1_500),
        ..reply(200, "text/plain", "late")
    });
    let core = CoreExecutor::default();
    let verb = core_verb("core.http.request");
    let err = call(
        &core,
        &verb,
        json!({"url": url.clone(), "timeoutMs": 200}),
        None,
    )
    .unwrap_err();
    assert_eq!(err.kind, error_kind::TIMEOUT, "{err}");
    // The step's bound applies when it is tighter than the request's.
    let err = call(&core, &verb, json!({"url": url}), Some(200)).unwrap_err();
    assert_eq!(err.kind, error_kind::TIMEOUT, "{err}");

    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = call(&core, &verb, json!({"url": dead_url}), None).unwrap_err();
    assert_eq!(err.kind, error_kind::NETWORK, "{err}");

    for (input, message) in [
        (json!({}), "`url` must be a string, not null"),
        (
            json!({"url": "http://x", "method": "GE T"}),
            "`method` is not an HTTP method",
        ),
        (
            json!({"url": "http://x", "timeoutMs": 0}),
            "`timeoutMs` must be a positive int",
        ),
        (
            json!({"url": "http://x", "headers": [1]}),
            "`headers` must be a map",
        ),
    ] {
        let err = call(&core, &verb, input, None).unwrap_err();
        assert_eq!(err.kind, error_kind::INVALID_INPUT);
        assert!(err.message.contains(message), "{err}");
    }
    if !cfg!(feature = "https") {
        let err = call(&core, &verb, json!({"url": "https://example.com"}), None).unwrap_err();
        assert!(err.message.contains("`https` feature"), "{err}");
    }
}

#[test]
fn core_set_log_and_fail() {
    let logged = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&logged);
    let core = CoreExecutor::default().with_log_sink(Arc::new(move |run, step, level, message| {
        sink.lock()
            .unwrap()
            .push(format!("{run} {step} {} {message}", level.as_str()))
    }));
    let out = call(
        &core,
        &core_verb("core.set"),
        json!({"values": {"a": [1]}}),
        None,
    )
    .unwrap();
    assert_eq!(out.output.to_json(), json!({"a": [1]}));
    assert!(call(&core, &core_verb("core.set"), json!({"values": 3}), None).is_err());
    call(
        &core,
        &core_verb("core.log"),
        json!({"message": "hi", "level": "warn"}),
        None,
    )
    .unwrap();
    call(
        &core,
        &core_verb("core.log"),
        json!({"message": "plain"}),
        None,
    )
    .unwrap();
    let err = call(
        &core,
        &core_verb("core.log"),
        json!({"message": "x", "level": "loud"}),
        None,
    )
    .unwrap_err();
    assert!(err.message.contains("debug, info, warn or error"));
    assert_eq!(
        *logged.lock().unwrap(),
        ["RUN step warn hi", "RUN step info plain"]
    );
    let err = call(
        &core,
        &core_verb("core.fail"),
        json!({"message": "stop here"}),
        None,
    )
    .unwrap_err();
    assert_eq!(
        (err.kind.as_str(), err.message.as_str()),
        ("failed", "stop here")
    );
    let err = call(
        &core,
        &core_verb("core.wait"),
        json!({"durationMs": 1}),
        None,
    )
    .unwrap_err();
    assert_eq!(err.kind, error_kind::NO_EXECUTOR);
}

#[test]
fn a_plugin_call_is_retried_through_the_engine_with_the_same_key() {
    let (url, seen) = serve(|_, n| {
        if n == 0 {
            reply(
                503,
                "application/json",
                r#"{"error": {"kind": "unavailable", "message": "try later"}}"#,
            )
        } else {
            reply(200, "application/json", r#"{"output": {"updated": true}}"#)
        }
    });
    let mut b = PlanBuilder::new("workflow/v2");
    let verb = b.verb(
        "linear@1:linear.issue.update",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    let t = b.trigger("start");
    let update = b.action(0, "update", verb);
    b.input(0, update, "issueId", json!("LIN-1"));
    b.next(0, t, update);
    b.step_mut(0, update).retry = Some(RetryPolicy {
        max_attempts: 2,
        initial_ms: 10,
        factor: 1f64.to_bits(),
        max_ms: 0,
        retry_on: vec!["unavailable".into()],
    });
    let executor = Arc::new(
        CompositeExecutor::default().with_http_plugins(
            HttpPluginExecutor::new(HttpClient::new())
                .with_endpoint("linear@1", format!("{url}/verbs")),
        ),
    );
    let mut h = Harness::new(b.build(), executor);
    let run = h.start("start", json!({}));
    h.drive();
    h.advance(10);
    assert_eq!(h.status(&run), "completed");
    assert_eq!(h.output(&run, "update"), json!({"updated": true}));
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let key = requests[0].headers["idempotency-key"].clone();
    assert_eq!(requests[1].headers["idempotency-key"], key);
    let first: serde_json::Value = serde_json::from_str(&requests[0].body).unwrap();
    let second: serde_json::Value = serde_json::from_str(&requests[1].body).unwrap();
    assert_eq!(
        first,
        json!({"verb": "linear@1:linear.issue.update", "input": {"issueId": "LIN-1"},
               "idempotencyKey": key, "attempt": 1, "runId": run.as_str(), "stepId": "update"})
    );
    assert_eq!(second["attempt"], json!(2));
    assert!(
        h.trace(&run).contains(
            &"step.retrying update unavailable: linear@1:linear.issue.update: HTTP 503: try later"
                .to_string()
        )
    );
}
