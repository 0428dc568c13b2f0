//! JSON-RPC framing over a byte stream, tolerant of whatever a peer sends.
//!
//! tower-lsp-server's own `Server` ends the session on the first frame it
//! cannot decode (invalid UTF-8, malformed JSON, a message of the wrong
//! shape). A language server must instead answer such a frame with a
//! JSON-RPC error and keep serving, so the framing is ours and the service
//! (`LspService`) is theirs. Requests are handed to the service in arrival
//! order and answered concurrently, as in tower-lsp-server: handlers that
//! change state do so before their first `.await`, so arrival order is the
//! order of effect.

use futures::stream::StreamExt;
use futures::{SinkExt, future};
use serde_json::{Value, json};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tower::Service;
use tower_lsp_server::jsonrpc::{Request, Response};
use tower_lsp_server::{ClientSocket, LspService};

use crate::server::Backend;

/// The largest message body accepted. A bigger one is read and dropped,
/// and answered with an error, so it cannot exhaust memory.
pub const MAX_BODY: usize = 64 << 20;
/// The longest header line: real headers are a few dozen bytes.
const MAX_HEADER_LINE: usize = 8 << 10;
/// Requests answered at once; later ones queue (in order) behind them.
const CONCURRENCY: usize = 4;

/// How long answers still being computed may take once the input ended.
const ANSWERS_AFTER_INPUT_END: std::time::Duration = std::time::Duration::from_secs(2);

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;

/// One frame read from the peer.
#[derive(Debug, PartialEq)]
enum Frame {
    Body(Vec<u8>),
    /// A frame that could not be read, answered with this error; the
    /// reader has moved past it.
    Bad(i64, String),
    End,
}

/// Reads frames: header lines up to an empty line, then `Content-Length`
/// bytes. Malformed headers skip ahead to the next `Content-Length` line.
struct FrameReader<R> {
    input: R,
    line: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> FrameReader<R> {
    fn new(input: R) -> Self {
        FrameReader {
            input,
            line: Vec::new(),
        }
    }

    /// One header line without its line break; `None` at the end of input.
    /// An over-long line is consumed to its end and reported as bad.
    async fn header_line(&mut self) -> std::io::Result<Option<Result<String, String>>> {
        self.line.clear();
        let mut too_long = false;
        loop {
            let available = self.input.fill_buf().await?;
            if available.is_empty() {
                return Ok((!self.line.is_empty() || too_long)
                    .then(|| Err("the input ended inside a header".into())));
            }
            let (taken, done) = match memchr::memchr(b'\n', available) {
                Some(at) => (at + 1, true),
                None => (available.len(), false),
            };
            if self.line.len() + taken <= MAX_HEADER_LINE {
                self.line.extend_from_slice(&available[..taken]);
            } else {
                too_long = true;
            }
            self.input.consume(taken);
            if done {
                break;
            }
        }
        if too_long {
            return Ok(Some(Err(format!(
                "a header line is longer than {MAX_HEADER_LINE} bytes"
            ))));
        }
        while matches!(self.line.last(), Some(b'\n' | b'\r')) {
            self.line.pop();
        }
        Ok(Some(
            String::from_utf8(std::mem::take(&mut self.line))
                .map_err(|_| "a header is not valid UTF-8".to_string()),
        ))
    }

    async fn next(&mut self) -> std::io::Result<Frame> {
        let mut length: Option<usize> = None;
        let mut problem: Option<String> = None;
        let mut seen_any = false;
        loop {
            let Some(line) = self.header_line().await? else {
                return Ok(if seen_any {
                    Frame::Bad(PARSE_ERROR, "the input ended inside a header".into())
                } else {
                    Frame::End
                });
            };
            let line = match line {
                Ok(line) => line,
                Err(message) => {
                    problem.get_or_insert(message);
                    seen_any = true;
                    continue;
                }
            };
            if line.is_empty() {
                if !seen_any {
                    // Stray blank lines between messages.
                    continue;
                }
                break;
            }
            seen_any = true;
            // The body of a frame that had no length is read as header
            // text, glued to the next frame's first line: a length header
            // inside a line starts a fresh frame there.
            let line = match find_content_length(&line) {
                Some(at) if at > 0 => {
                    problem = None;
                    length = None;
                    &line[at..]
                }
                _ => line.as_str(),
            };
            let Some((name, value)) = line.split_once(':') else {
                problem.get_or_insert(format!("malformed header `{}`", truncate(line)));
                continue;
            };
            let value = value.trim();
            if name.trim().eq_ignore_ascii_case("content-length") {
                match value.parse::<usize>() {
                    Ok(n) => {
                        // A good length after garbage starts a fresh frame.
                        length = Some(n);
                        problem = None;
                    }
                    Err(_) => {
                        problem.get_or_insert(format!(
                            "Content-Length `{}` is not a number",
                            truncate(value)
                        ));
                    }
                }
            } else if name.trim().eq_ignore_ascii_case("content-type") {
                let charset = value
                    .split(';')
                    .skip(1)
                    .filter_map(|p| p.trim().strip_prefix("charset="))
                    .last();
                if charset.is_some_and(|c| {
                    !c.eq_ignore_ascii_case("utf-8") && !c.eq_ignore_ascii_case("utf8")
                }) {
                    problem
                        .get_or_insert(format!("unsupported content type `{}`", truncate(value)));
                }
            }
        }
        let Some(length) = length else {
            return Ok(Frame::Bad(
                PARSE_ERROR,
                problem.unwrap_or_else(|| "a message has no Content-Length header".into()),
            ));
        };
        if length > MAX_BODY {
            let skipped = tokio::io::copy(
                &mut (&mut self.input).take(length as u64),
                &mut tokio::io::sink(),
            )
            .await?;
            let why = if (skipped as usize) < length {
                "the input ended inside a message".to_string()
            } else {
                format!("a message of {length} bytes is larger than the limit of {MAX_BODY}")
            };
            return Ok(Frame::Bad(INVALID_REQUEST, why));
        }
        let mut body = vec![0; length];
        if let Err(error) = self.input.read_exact(&mut body).await {
            if error.kind() == std::io::ErrorKind::UnexpectedEof {
                return Ok(Frame::Bad(
                    PARSE_ERROR,
                    "the input ended inside a message".into(),
                ));
            }
            return Err(error);
        }
        Ok(match problem {
            Some(problem) => Frame::Bad(PARSE_ERROR, problem),
            None => Frame::Body(body),
        })
    }
}

/// Where `Content-Length:` starts in `line`, in any case.
fn find_content_length(line: &str) -> Option<usize> {
    const NAME: &[u8] = b"content-length:";
    line.as_bytes()
        .windows(NAME.len())
        .position(|w| w.eq_ignore_ascii_case(NAME))
}

fn truncate(text: &str) -> String {
    text.chars().take(60).collect()
}

/// What a frame's body turned out to be.
#[derive(Debug)]
enum Incoming {
    Request(Request),
    Response(Response),
    /// Answer with this error, to this id when the message had one.
    Error(Value, i64, String),
}

fn classify(body: &[u8]) -> Incoming {
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(error) => {
            return Incoming::Error(
                Value::Null,
                PARSE_ERROR,
                format!(
                    "the message is not valid UTF-8 (byte {})",
                    error.valid_up_to()
                ),
            );
        }
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            return Incoming::Error(
                Value::Null,
                PARSE_ERROR,
                format!("the message is not JSON: {error}"),
            );
        }
    };
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let id = if id.is_string() || id.is_number() {
        id
    } else {
        Value::Null
    };
    if !value.is_object() {
        return Incoming::Error(
            Value::Null,
            INVALID_REQUEST,
            "a message must be a JSON object (batches are not part of LSP)".into(),
        );
    }
    if value.get("method").is_some() {
        match serde_json::from_value::<Request>(value) {
            Ok(request) => Incoming::Request(request),
            Err(error) => {
                Incoming::Error(id, INVALID_REQUEST, format!("not a valid request: {error}"))
            }
        }
    } else {
        match serde_json::from_value::<Response>(value) {
            Ok(response) => Incoming::Response(response),
            Err(error) => Incoming::Error(
                id,
                INVALID_REQUEST,
                format!("not a valid request or response: {error}"),
            ),
        }
    }
}

fn error_response(id: Value, code: i64, message: String) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

async fn write_frame<W: AsyncWrite + Unpin>(output: &mut W, json: &str) -> std::io::Result<()> {
    output
        .write_all(format!("Content-Length: {}\r\n\r\n", json.len()).as_bytes())
        .await?;
    output.write_all(json.as_bytes()).await?;
    output.flush().await
}

/// Serves `service` over `input`/`output` until the peer sends `exit` or
/// closes its end.
pub async fn serve<I, O>(
    input: I,
    mut output: O,
    mut service: LspService<Backend>,
    socket: ClientSocket,
) -> std::io::Result<()>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (to_client, mut from_client) = socket.split();
    let (task_tx, task_rx) = futures::channel::mpsc::unbounded();

    let write = async move {
        while let Some(json) = out_rx.recv().await {
            write_frame(&mut output, &json).await?;
        }
        Ok::<(), std::io::Error>(())
    };

    // The stream of server-to-client requests lives as long as the service;
    // it is cut when the session ends.
    let (to_client, stop_forwarding) = futures::stream::abortable(to_client);
    let server_requests = {
        let out = out_tx.clone();
        to_client.for_each(move |request| {
            if let Ok(json) = serde_json::to_string(&request) {
                let _ = out.send(json);
            }
            future::ready(())
        })
    };

    // A handler waiting for the client's answer to a server request (the
    // capability registration after `initialized`) would wait forever once
    // the input has ended: the answers still owed get a little while to
    // finish, then are dropped, so the process ends with its client.
    let (answers, stop_answers) = futures::future::abortable({
        let out = out_tx.clone();
        task_rx
            .buffer_unordered(CONCURRENCY)
            .for_each(move |response: Option<Response>| {
                if let Some(json) = response.and_then(|r| serde_json::to_string(&r).ok()) {
                    let _ = out.send(json);
                }
                future::ready(())
            })
    });

    let read = async move {
        let mut frames = FrameReader::new(BufReader::with_capacity(64 << 10, input));
        loop {
            let body = match frames.next().await? {
                Frame::End => break,
                Frame::Bad(code, message) => {
                    let _ = out_tx.send(error_response(Value::Null, code, message));
                    continue;
                }
                Frame::Body(body) => body,
            };
            match classify(&body) {
                Incoming::Error(id, code, message) => {
                    let _ = out_tx.send(error_response(id, code, message));
                }
                Incoming::Response(response) => {
                    if from_client.send(response).await.is_err() {
                        break;
                    }
                }
                Incoming::Request(request) => {
                    let exit = request.method() == "exit";
                    if future::poll_fn(|cx| service.poll_ready(cx)).await.is_err() {
                        break;
                    }
                    let answer = service.call(request);
                    let _ = task_tx.unbounded_send(async move { answer.await.unwrap_or(None) });
                    if exit {
                        break;
                    }
                }
            }
        }
        // Closing the queues lets the answers drain and the writer end.
        task_tx.close_channel();
        stop_forwarding.abort();
        drop(out_tx);
        tokio::spawn(async move {
            tokio::time::sleep(ANSWERS_AFTER_INPUT_END).await;
            stop_answers.abort();
        });
        Ok::<(), std::io::Error>(())
    };

    let ((), _, read, write) = tokio::join!(server_requests, answers, read, write);
    read.and(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8]) -> Vec<Frame> {
        let mut reader = FrameReader::new(BufReader::new(input));
        let mut out = Vec::new();
        loop {
            let frame = reader.next().await.unwrap();
            if frame == Frame::End {
                return out;
            }
            out.push(frame);
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn reads_frames_and_recovers_from_garbage() {
        let input = b"Content-Length: 2\r\n\r\n{}garbage\r\nContent-Length: x\r\n\r\n\r\nContent-Length: 3\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n[1]";
        let got = rt().block_on(frames(input));
        assert_eq!(got[0], Frame::Body(b"{}".to_vec()));
        assert!(matches!(got[1], Frame::Bad(PARSE_ERROR, _)), "{got:?}");
        assert_eq!(got.last(), Some(&Frame::Body(b"[1]".to_vec())));
    }

    /// A frame without a length leaves its body unread; the next frame's
    /// header follows it on the same line, and is found there.
    #[test]
    fn a_frame_without_a_length_does_not_hide_the_next() {
        let input =
            b"Content-Type: foo\r\n\r\n{}Content-Length: 2\r\n\r\n[]content-length: 3\r\n\r\n[1]";
        let got = rt().block_on(frames(input));
        assert!(matches!(got[0], Frame::Bad(PARSE_ERROR, _)), "{got:?}");
        assert_eq!(
            got[1..],
            [Frame::Body(b"[]".to_vec()), Frame::Body(b"[1]".to_vec())]
        );
    }

    #[test]
    fn truncated_input_is_reported_not_waited_for() {
        let got = rt().block_on(frames(b"Content-Length: 10\r\n\r\n{}"));
        assert!(
            matches!(got.as_slice(), [Frame::Bad(PARSE_ERROR, _)]),
            "{got:?}"
        );
        let got = rt().block_on(frames(b"Content-Len"));
        assert!(
            matches!(got.as_slice(), [Frame::Bad(PARSE_ERROR, _)]),
            "{got:?}"
        );
    }

    #[test]
    fn oversized_bodies_are_skipped() {
        let mut input = format!("Content-Length: {}\r\n\r\n", MAX_BODY + 1).into_bytes();
        input.resize(input.len() + MAX_BODY + 1, b' ');
        input.extend_from_slice(b"Content-Length: 2\r\n\r\n{}");
        let got = rt().block_on(frames(&input));
        assert!(matches!(got[0], Frame::Bad(INVALID_REQUEST, _)));
        assert_eq!(got[1], Frame::Body(b"{}".to_vec()));
    }

    #[test]
    fn over_long_header_lines_are_refused() {
        let mut input = b"X-Junk: ".to_vec();
        input.resize(MAX_HEADER_LINE * 3, b'a');
        input.extend_from_slice(b"\r\n\r\nContent-Length: 2\r\n\r\n{}");
        let got = rt().block_on(frames(&input));
        assert!(matches!(got[0], Frame::Bad(PARSE_ERROR, _)), "{got:?}");
        assert_eq!(got[1], Frame::Body(b"{}".to_vec()));
    }

    #[test]
    fn classifies_bodies() {
        assert!(matches!(
            classify(b"\xff"),
            Incoming::Error(Value::Null, PARSE_ERROR, _)
        ));
        assert!(matches!(
            classify(b"{"),
            Incoming::Error(Value::Null, PARSE_ERROR, _)
        ));
        assert!(matches!(
            classify(b"[1]"),
            Incoming::Error(Value::Null, INVALID_REQUEST, _)
        ));
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":3,"method":5}"#),
            Incoming::Error(Value::Number(_), INVALID_REQUEST, _)
        ));
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":3,"method":"x"}"#),
            Incoming::Request(_)
        ));
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":3,"result":null}"#),
            Incoming::Response(_)
        ));
    }
}
