//! A minimal LSP client for the latency benchmark: spawns a server, frames
//! JSON-RPC messages with `Content-Length` headers over its stdio, answers
//! the requests a server makes of its client, and timestamps every message
//! the moment its last byte has been read.
//!
//! It deliberately shares nothing with `donmai-lsp`'s own transport, so the
//! figures measure what any editor would see.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// `sysconf(_SC_CLK_TCK)`, 100 on every Linux architecture this runs on;
/// the unit of the times in `/proc/<pid>/stat`.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// Largest message accepted from a server: a runaway length header must not
/// make the client allocate without bound.
const MAX_MESSAGE: usize = 256 << 20;

/// Reads one framed message. `Ok(None)` is a clean end of stream before
/// any header; an end of stream inside a message is an error.
pub fn read_message(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut length: Option<usize> = None;
    let mut line = String::new();
    let mut first = true;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            if first {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stream ended inside a message header",
            ));
        }
        first = false;
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(invalid(format!("malformed header line {header:?}")));
        };
        // Other headers (Content-Type) carry nothing the client needs.
        if name.trim().eq_ignore_ascii_case("content-length") {
            let value = value.trim();
            let parsed = value
                .parse::<usize>()
                .map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
            if parsed > MAX_MESSAGE {
                return Err(invalid(format!("message of {parsed} bytes is too large")));
            }
            length = Some(parsed);
        }
    }
    let length = length.ok_or_else(|| invalid("message without Content-Length".to_string()))?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Frames one message as the protocol's base layer requires.
pub fn frame(message: &Value) -> Vec<u8> {
    let body = message.to_string();
    let mut framed = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    framed.extend_from_slice(body.as_bytes());
    framed
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A message from the server and when its last byte arrived.
pub struct Received {
    pub at: Instant,
    pub message: Value,
}

impl Received {
    pub fn method(&self) -> Option<&str> {
        self.message.get("method").and_then(Value::as_str)
    }
}

/// What the client answers to a request the server sends it, given the
/// method and params: a result, or an error code and message.
pub type Responder = Box<dyn Fn(&str, &Value) -> Result<Value, (i64, String)> + Send>;

/// The answers an editor gives: settings from `settings` (an object keyed by
/// section name) for `workspace/configuration`, acceptance for registrations
/// and progress tokens, "method not found" for anything else.
pub fn editor_responder(settings: Value) -> Responder {
    Box::new(move |method, params| match method {
        "workspace/configuration" => {
            let items = params
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            Ok(Value::Array(
                items
                    .iter()
                    .map(|item| {
                        item.get("section")
                            .and_then(Value::as_str)
                            .and_then(|section| settings.get(section))
                            .cloned()
                            .unwrap_or(Value::Null)
                    })
                    .collect(),
            ))
        }
        "client/registerCapability"
        | "client/unregisterCapability"
        | "window/workDoneProgress/create"
        | "workspace/semanticTokens/refresh"
        | "workspace/inlayHint/refresh"
        | "workspace/diagnostic/refresh" => Ok(Value::Null),
        other => Err((-32601, format!("the benchmark client has no {other}"))),
    })
}

/// A running server and the client side of its connection.
pub struct Client {
    name: String,
    child: Child,
    writer: Arc<Mutex<ChildStdin>>,
    incoming: Receiver<Received>,
    next_id: i64,
}

impl Client {
    /// Starts `program args…` with its stderr appended to `stderr_log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        stderr_log: &Path,
        responder: Responder,
    ) -> Result<Client, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_log)
            .map_err(|e| format!("cannot open {}: {e}", stderr_log.display()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start {name} ({}): {e}", program.display()))?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let writer = Arc::new(Mutex::new(stdin));
        let (sender, incoming) = std::sync::mpsc::channel();
        let thread_writer = writer.clone();
        std::thread::Builder::new()
            .name(format!("{name}-reader"))
            .spawn(move || read_loop(stdout, thread_writer, responder, sender))
            .map_err(|e| format!("cannot start the reader thread: {e}"))?;
        Ok(Client {
            name: name.to_string(),
            child,
            writer,
            incoming,
            next_id: 0,
        })
    }

    /// Sends a request; returns its id and the instant just before the
    /// first byte was written.
    pub fn request(&mut self, method: &str, params: Value) -> Result<(i64, Instant), String> {
        self.next_id += 1;
        let id = self.next_id;
        let at =
            self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        Ok((id, at))
    }

    /// Sends a notification; returns the instant just before the first
    /// byte was written.
    pub fn notify(&mut self, method: &str, params: Value) -> Result<Instant, String> {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
    }

    fn send(&mut self, message: &Value) -> Result<Instant, String> {
        // Serialised before the clock starts: an editor has its message in
        // hand before it writes it.
        let framed = frame(message);
        let mut stdin = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let at = Instant::now();
        stdin
            .write_all(&framed)
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("{}: cannot write to the server: {e}", self.name))?;
        Ok(at)
    }

    /// The next message for which `wanted` holds, dropping the others, or an
    /// error after `timeout` or if the server closed its output.
    pub fn wait(
        &mut self,
        timeout: Duration,
        what: &str,
        mut wanted: impl FnMut(&Received) -> bool,
    ) -> Result<Received, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.incoming.recv_timeout(left) {
                Ok(received) if wanted(&received) => return Ok(received),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("{}: no {what} within {timeout:?}", self.name));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "{}: the server closed its output while the client waited for {what}",
                        self.name
                    ));
                }
            }
        }
    }

    /// The response to request `id`; an error response is an error.
    pub fn response(&mut self, id: i64, timeout: Duration) -> Result<Received, String> {
        let received = self.wait(timeout, &format!("response to request {id}"), |r| {
            r.method().is_none() && r.message.get("id").and_then(Value::as_i64) == Some(id)
        })?;
        if let Some(error) = received.message.get("error") {
            return Err(format!("{}: request {id} failed: {error}", self.name));
        }
        Ok(received)
    }

    /// Drops every message already received.
    pub fn drain(&mut self) {
        while self.incoming.try_recv().is_ok() {}
    }

    /// Waits until the server has been silent for `quiet` (at most `limit`
    /// in all), dropping what it sends: lets late publications of a warm-up
    /// land before measuring.
    pub fn settle(&mut self, quiet: Duration, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.incoming.recv_timeout(quiet) {
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    /// CPU time the server process has used so far (all its threads, user
    /// and system), from `/proc`; `None` where that is not available. Its
    /// unit is the kernel's clock tick, so only differences over many
    /// edits are meaningful.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // The command name may hold spaces: fields are counted after its ')'.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let user: u64 = fields.get(11)?.parse().ok()?;
        let system: u64 = fields.get(12)?.parse().ok()?;
        Some(Duration::from_secs_f64(
            (user + system) as f64 / CLOCK_TICKS_PER_SECOND,
        ))
    }

    /// `shutdown`, `exit`, and the process's end; a server that does not
    /// stop within `timeout` is killed and reported.
    pub fn shutdown(mut self, timeout: Duration) -> Result<(), String> {
        let (id, _) = self.request("shutdown", Value::Null)?;
        self.response(id, timeout)?;
        self.notify("exit", Value::Null)?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!("{}: did not exit after `exit`; killed", self.name));
                }
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // A client dropped on an error path must not leave its server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_loop(
    stdout: impl Read,
    writer: Arc<Mutex<ChildStdin>>,
    responder: Responder,
    sender: Sender<Received>,
) {
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    // `LSP_BENCH_TRACE=1` prints the start of every message received, for
    // finding out what a server is doing between an edit and its answer.
    let trace = std::env::var_os("LSP_BENCH_TRACE").is_some();
    let started = Instant::now();
    // Any read error ends the loop; dropping `sender` tells the waiting side.
    while let Ok(Some(body)) = read_message(&mut reader) {
        let at = Instant::now();
        let Ok(message) = serde_json::from_slice::<Value>(&body) else {
            continue;
        };
        if trace {
            let head: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            eprintln!("[{:?}] <- {head}", at.duration_since(started));
        }
        let is_request = message.get("method").is_some() && message.get("id").is_some();
        if is_request {
            let method = message["method"].as_str().unwrap_or_default();
            let params = message.get("params").cloned().unwrap_or(Value::Null);
            let reply = match responder(method, &params) {
                Ok(result) => json!({"jsonrpc": "2.0", "id": message["id"], "result": result}),
                Err((code, text)) => json!({"jsonrpc": "2.0", "id": message["id"],
                    "error": {"code": code, "message": text}}),
            };
            let mut stdin = writer.lock().unwrap_or_else(|p| p.into_inner());
            if stdin
                .write_all(&frame(&reply))
                .and_then(|()| stdin.flush())
                .is_err()
            {
                return;
            }
        }
        if sender.send(Received { at, message }).is_err() {
            return;
        }
    }
}

/// Nearest-rank percentile of `sorted` (ascending), `p` in (0, 1].
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> io::Result<Vec<Value>> {
        let mut reader = BufReader::with_capacity(3, bytes);
        let mut out = Vec::new();
        while let Some(body) = read_message(&mut reader)? {
            out.push(serde_json::from_slice(&body).expect("json"));
        }
        Ok(out)
    }

    #[test]
    fn frames_read_back_across_small_buffers() {
        let first = json!({"jsonrpc": "2.0", "method": "a", "params": {"text": "é\r\n"}});
        let second = json!({"jsonrpc": "2.0", "id": 7, "result": null});
        let mut bytes = frame(&first);
        bytes.extend(frame(&second));
        assert_eq!(read_all(&bytes).unwrap(), vec![first, second]);
    }

    #[test]
    fn other_headers_and_any_case_are_accepted() {
        let body = br#"{"id":1}"#;
        let bytes = [
            format!(
                "content-length: {}\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n",
                body.len()
            )
            .as_bytes(),
            body,
        ]
        .concat();
        assert_eq!(read_all(&bytes).unwrap(), vec![json!({"id": 1})]);
    }

    #[test]
    fn truncated_and_malformed_frames_are_errors() {
        assert!(read_all(b"Content-Length: 10\r\n\r\n{}").is_err());
        assert!(read_all(b"Content-Length: 2\r\n").is_err());
        assert!(read_all(b"Content-Length: x\r\n\r\n").is_err());
        assert!(read_all(b"Content-Type: a\r\n\r\n{}").is_err());
        assert!(read_all(b"Content-Length: 99999999999\r\n\r\n").is_err());
        assert!(read_all(b"").unwrap().is_empty());
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.99), 198.0);
        assert_eq!(percentile(&values, 0.5), 100.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
    }
}
