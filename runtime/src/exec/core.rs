//! The builtin `core@1` verbs: `core.set`, `core.log`, `core.http.request`,
//! `core.fail`. (`core.wait` is a durable timer: the engine runs it, never
//! an executor.)

use super::http::{DEFAULT_TIMEOUT, HttpClient, HttpRequest};
use super::{ExecError, VerbCall, VerbExecutor, VerbOutcome, error_kind};
use crate::plan::model::VerbRef;
use donmai_stdlib::value::{MapEntries, MapKey, Value, truncate_for_message};
use std::sync::Arc;
use std::time::Duration;

pub const PLUGIN: &str = "core";
pub const MAJOR: u32 = 1;
pub const SET: &str = "core.set";
pub const LOG: &str = "core.log";
pub const HTTP_REQUEST: &str = "core.http.request";
pub const WAIT: &str = "core.wait";
pub const FAIL: &str = "core.fail";

/// Whether `verb` is one of the builtin `core@1` verbs.
pub fn is_core(verb: &VerbRef) -> bool {
    verb.plugin == PLUGIN && verb.major == MAJOR
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    fn parse(text: &str) -> Option<LogLevel> {
        Some(match text {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => return None,
        })
    }
}

/// Where `core.log` writes: run id, step id, level, message.
pub type LogSink = Arc<dyn Fn(&str, &str, LogLevel, &str) + Send + Sync>;

#[derive(Clone)]
pub struct CoreExecutor {
    http: HttpClient,
    log: LogSink,
}

impl Default for CoreExecutor {
    fn default() -> CoreExecutor {
        CoreExecutor::new(HttpClient::new())
    }
}

impl CoreExecutor {
    /// Logs go to standard error until [`CoreExecutor::with_log_sink`].
    pub fn new(http: HttpClient) -> CoreExecutor {
        CoreExecutor {
            http,
            log: Arc::new(|run, step, level, message| {
                eprintln!("[{}] {run} {step}: {message}", level.as_str());
            }),
        }
    }

    pub fn with_log_sink(mut self, sink: LogSink) -> CoreExecutor {
        self.log = sink;
        self
    }

    fn set(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError> {
        match call.input_field("values") {
            values @ Value::Map(_) => Ok(VerbOutcome::output(values)),
            other => Err(invalid(
                call,
                format!("`values` must be a map, not {}", other.type_name()),
            )),
        }
    }

    fn log(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError> {
        let message = match call.input_field("message") {
            Value::String(text) => text.to_string(),
            Value::Null => return Err(invalid(call, "`message` is required".into())),
            other => other.to_string(),
        };
        let level = match call.input_field("level") {
            Value::Null => LogLevel::Info,
            Value::String(text) => LogLevel::parse(&text).ok_or_else(|| {
                invalid(
                    call,
                    format!(
                        "`level` must be debug, info, warn or error, not `{}`",
                        truncate_for_message(&text)
                    ),
                )
            })?,
            other => {
                return Err(invalid(
                    call,
                    format!("`level` must be a string, not {}", other.type_name()),
                ));
            }
        };
        (self.log)(call.run_id, call.step_id, level, &message);
        Ok(VerbOutcome::output(Value::map(MapEntries::new())))
    }

    fn http_request(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError> {
        let method = match call.input_field("method") {
            Value::Null => "GET".to_string(),
            Value::String(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()) => {
                m.to_ascii_uppercase()
            }
            other => {
                return Err(invalid(
                    call,
                    format!("`method` is not an HTTP method: {other}"),
                ));
            }
        };
        let url = match call.input_field("url") {
            Value::String(url) => url.to_string(),
            other => {
                return Err(invalid(
                    call,
                    format!("`url` must be a string, not {}", other.type_name()),
                ));
            }
        };
        let mut headers = Vec::new();
        let mut has_content_type = false;
        match call.input_field("headers") {
            Value::Null => {}
            Value::Map(entries) => {
                for (name, value) in entries.iter() {
                    let text = match value {
                        Value::String(s) => s.to_string(),
                        Value::Null => continue,
                        other => other.to_string(),
                    };
                    let name = name.to_string();
                    has_content_type |= name.eq_ignore_ascii_case("content-type");
                    headers.push((name, text));
                }
            }
            other => {
                return Err(invalid(
                    call,
                    format!("`headers` must be a map, not {}", other.type_name()),
                ));
            }
        }
        let body = match call.input_field("body") {
            Value::Null => None,
            Value::String(text) => {
                if !has_content_type {
                    headers.push(("content-type".into(), "text/plain; charset=utf-8".into()));
                }
                Some(text.as_bytes().to_vec())
            }
            other => {
                if !has_content_type {
                    headers.push(("content-type".into(), "application/json".into()));
                }
                Some(other.to_json().to_string().into_bytes())
            }
        };
        // Every request that may change something carries the key, so a
        // repeated attempt is recognised by APIs that honour it.
        if method != "GET" && method != "HEAD" {
            headers.retain(|(name, _)| !name.eq_ignore_ascii_case("idempotency-key"));
            headers.push(("idempotency-key".into(), call.idempotency_key.to_string()));
        }
        let timeout = match call.input_field("timeoutMs") {
            Value::Null => None,
            Value::Int(ms) if ms > 0 => Some(ms as u64),
            other => {
                return Err(invalid(
                    call,
                    format!("`timeoutMs` must be a positive int, not {other}"),
                ));
            }
        };
        // The tighter of the request's own bound and the step's.
        let timeout = match (timeout, call.timeout_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let request = HttpRequest {
            method,
            url,
            headers,
            body,
            timeout: timeout
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_TIMEOUT),
            follow_redirects: true,
        };
        let response = self.http.send(&request)?;
        let body = if response.is_json() {
            match serde_json::from_slice::<serde_json::Value>(&response.body) {
                Ok(json) => Value::from_json(&json),
                Err(_) => Value::string(String::from_utf8_lossy(&response.body).as_ref()),
            }
        } else {
            Value::string(String::from_utf8_lossy(&response.body).as_ref())
        };
        let headers: MapEntries = response
            .headers
            .iter()
            .map(|(name, value)| (MapKey::from(name.as_str()), Value::string(value.as_str())))
            .collect();
        let output: MapEntries = [
            (
                MapKey::from("status"),
                Value::Int(i64::from(response.status)),
            ),
            (MapKey::from("headers"), Value::map(headers)),
            (MapKey::from("body"), body),
        ]
        .into_iter()
        .collect();
        Ok(VerbOutcome::output(Value::map(output)))
    }
}

fn invalid(call: &VerbCall<'_>, message: String) -> ExecError {
    ExecError::new(
        error_kind::INVALID_INPUT,
        format!("{}: {message}", call.qualified),
    )
}

impl VerbExecutor for CoreExecutor {
    fn execute(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError> {
        if !is_core(call.verb) {
            return Err(ExecError::new(
                error_kind::NO_EXECUTOR,
                format!("`{}` is not a core@1 verb", call.qualified),
            ));
        }
        match call.verb.verb.as_str() {
            SET => self.set(call),
            LOG => self.log(call),
            HTTP_REQUEST => self.http_request(call),
            FAIL => {
                let message = match call.input_field("message") {
                    Value::String(text) => text.to_string(),
                    Value::Null => "core.fail".to_string(),
                    other => other.to_string(),
                };
                Err(ExecError::new(error_kind::FAILED, message))
            }
            WAIT => Err(ExecError::new(
                error_kind::NO_EXECUTOR,
                "core.wait is a durable timer that the engine runs; no executor calls it",
            )),
            other => Err(ExecError::new(
                error_kind::NO_EXECUTOR,
                format!("core@1 has no verb `{other}`"),
            )),
        }
    }

    fn is_inline(&self, verb: &VerbRef) -> bool {
        is_core(verb) && matches!(verb.verb.as_str(), SET | LOG | FAIL)
    }
}
