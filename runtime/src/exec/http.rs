//! HTTP for verbs: a small blocking client (ureq) shared by
//! `core.http.request`, and the executor for plugins served over HTTP.
//!
//! The plugin protocol: the executor POSTs JSON
//! `{"verb", "input", "idempotencyKey", "attempt", "runId", "stepId"}` to the
//! plugin's endpoint with an `Idempotency-Key` header. A 2xx answer is
//! `{"output": <any>, "handle": <string>?}`; any other status fails the call,
//! with the kind and message of an `{"error": {"kind", "message"}}` body when
//! there is one (so a plugin decides which of its errors `retryOn` may name).
//!
//! Plain HTTP always works; HTTPS needs the runtime's `https` feature
//! (rustls), which is off by default to keep the build small.

use super::{ExecError, VerbCall, VerbExecutor, VerbOutcome, error_kind};
use crate::plan::model::VerbRef;
use donmai_stdlib::value::{Value, truncate_for_message};
use std::collections::BTreeMap;
use std::time::Duration;

/// Answers larger than this are refused rather than read into memory.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;
/// The bound on a call when neither the step nor the request gives one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
    pub follow_redirects: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    /// Lower-case names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn is_json(&self) -> bool {
        self.headers.get("content-type").is_some_and(|ct| {
            let mime = ct.split(';').next().unwrap_or("").trim();
            mime.eq_ignore_ascii_case("application/json")
                || mime.to_ascii_lowercase().ends_with("+json")
        })
    }
}

/// A blocking HTTP client with connection reuse.
#[derive(Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
    max_body_bytes: u64,
}

impl Default for HttpClient {
    fn default() -> HttpClient {
        HttpClient::new()
    }
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    pub fn new() -> HttpClient {
        let config = ureq::Agent::config_builder()
            // A status is an answer, not a transport error: the caller
            // decides what a 404 means.
            .http_status_as_error(false)
            .user_agent(concat!("donmai/", env!("CARGO_PKG_VERSION")))
            .build();
        HttpClient {
            agent: ureq::Agent::new_with_config(config),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    pub fn with_max_body_bytes(mut self, max: u64) -> HttpClient {
        self.max_body_bytes = max;
        self
    }

    pub fn send(&self, request: &HttpRequest) -> Result<HttpResponse, ExecError> {
        if request.url.len() >= 8
            && request.url[..8].eq_ignore_ascii_case("https://")
            && !cfg!(feature = "https")
        {
            return Err(ExecError::new(
                error_kind::INVALID_INPUT,
                format!(
                    "`{}` needs HTTPS, which this build leaves out (build the runtime with its `https` feature)",
                    truncate_for_message(&request.url)
                ),
            ));
        }
        let mut builder = ureq::http::Request::builder()
            .method(request.method.as_str())
            .uri(request.url.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let http_request = builder
            .body(request.body.clone().unwrap_or_default())
            .map_err(|e| {
                ExecError::new(
                    error_kind::INVALID_INPUT,
                    format!("invalid HTTP request: {e}"),
                )
            })?;
        let http_request = self
            .agent
            .configure_request(http_request)
            .timeout_global(Some(request.timeout))
            .max_redirects(if request.follow_redirects { 10 } else { 0 })
            .build();
        let mut response = self
            .agent
            .run(http_request)
            .map_err(|e| transport_error(&request.url, e))?;
        let status = response.status().as_u16();
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in response.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            headers
                .entry(name.as_str().to_ascii_lowercase())
                .and_modify(|existing| {
                    existing.push_str(", ");
                    existing.push_str(&value);
                })
                .or_insert(value);
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(self.max_body_bytes)
            .read_to_vec()
            .map_err(|e| transport_error(&request.url, e))?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

fn transport_error(url: &str, error: ureq::Error) -> ExecError {
    let url = truncate_for_message(url);
    match error {
        ureq::Error::Timeout(which) => {
            ExecError::new(error_kind::TIMEOUT, format!("{url}: timed out ({which})"))
        }
        ureq::Error::BadUri(reason) => ExecError::new(
            error_kind::INVALID_INPUT,
            format!("`{url}` is not a valid URL: {reason}"),
        ),
        ureq::Error::BodyExceedsLimit(limit) => ExecError::new(
            error_kind::BAD_RESPONSE,
            format!("{url}: the answer is larger than {limit} bytes"),
        ),
        other => ExecError::new(error_kind::NETWORK, format!("{url}: {other}")),
    }
}

/// Calls plugins that are served over HTTP. Endpoints are configured per
/// plugin major (`linear@1`) or per plugin (`linear`, any major).
#[derive(Clone, Debug, Default)]
pub struct HttpPluginExecutor {
    client: HttpClient,
    endpoints: BTreeMap<String, String>,
}

impl HttpPluginExecutor {
    pub fn new(client: HttpClient) -> HttpPluginExecutor {
        HttpPluginExecutor {
            client,
            endpoints: BTreeMap::new(),
        }
    }

    /// `plugin` is `name@major` or `name`.
    pub fn with_endpoint(mut self, plugin: impl Into<String>, url: impl Into<String>) -> Self {
        self.endpoints.insert(plugin.into(), url.into());
        self
    }

    pub fn endpoint_for(&self, verb: &VerbRef) -> Option<&str> {
        self.endpoints
            .get(&format!("{}@{}", verb.plugin, verb.major))
            .or_else(|| self.endpoints.get(&verb.plugin))
            .map(String::as_str)
    }
}

impl VerbExecutor for HttpPluginExecutor {
    fn execute(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError> {
        let Some(url) = self.endpoint_for(call.verb) else {
            return Err(ExecError::new(
                error_kind::NO_EXECUTOR,
                format!(
                    "plugin `{}@{}` has no HTTP endpoint configured (needed for `{}`)",
                    call.verb.plugin, call.verb.major, call.qualified
                ),
            ));
        };
        let body = serde_json::json!({
            "verb": call.qualified,
            "input": call.input.to_json(),
            "idempotencyKey": call.idempotency_key,
            "attempt": call.attempt,
            "runId": call.run_id,
            "stepId": call.step_id,
        });
        let request = HttpRequest {
            method: "POST".into(),
            url: url.to_string(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("accept".into(), "application/json".into()),
                ("idempotency-key".into(), call.idempotency_key.to_string()),
            ],
            body: Some(body.to_string().into_bytes()),
            timeout: call
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_TIMEOUT),
            follow_redirects: false,
        };
        let response = self.client.send(&request)?;
        plugin_answer(call.qualified, &response)
    }
}

/// Reads a plugin endpoint's answer per the protocol in the module doc.
fn plugin_answer(verb: &str, response: &HttpResponse) -> Result<VerbOutcome, ExecError> {
    let json: Option<serde_json::Value> = serde_json::from_slice(&response.body).ok();
    if !(200..300).contains(&response.status) {
        let reported = json.as_ref().and_then(|j| j.get("error"));
        let kind = reported
            .and_then(|e| e.get("kind"))
            .and_then(|k| k.as_str())
            .unwrap_or(error_kind::HTTP_STATUS);
        let message = reported
            .and_then(|e| e.get("message"))
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| {
                truncate_for_message(&String::from_utf8_lossy(&response.body)).to_string()
            });
        return Err(ExecError::new(
            kind,
            format!("{verb}: HTTP {}: {message}", response.status),
        ));
    }
    let Some(serde_json::Value::Object(answer)) = json else {
        return Err(ExecError::new(
            error_kind::BAD_RESPONSE,
            format!("{verb}: the plugin's answer is not a JSON object"),
        ));
    };
    let output = answer
        .get("output")
        .map(Value::from_json)
        .unwrap_or(Value::Null);
    let handle = match answer.get("handle") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(handle)) => Some(handle.clone()),
        Some(_) => {
            return Err(ExecError::new(
                error_kind::BAD_RESPONSE,
                format!("{verb}: the plugin's `handle` is not a string"),
            ));
        }
    };
    Ok(VerbOutcome { output, handle })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: BTreeMap::from([("content-type".into(), "application/json".into())]),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn plugin_answers_are_read_per_protocol() {
        let ok = plugin_answer(
            "p@1:v",
            &response(200, r#"{"output":{"a":1},"handle":"yes"}"#),
        )
        .unwrap();
        assert_eq!(ok.handle.as_deref(), Some("yes"));
        assert_eq!(ok.output.to_json(), serde_json::json!({"a": 1}));

        let reported = plugin_answer(
            "p@1:v",
            &response(
                503,
                r#"{"error":{"kind":"rate_limited","message":"slow down"}}"#,
            ),
        )
        .unwrap_err();
        assert_eq!(reported.kind, "rate_limited");
        assert!(reported.message.contains("HTTP 503: slow down"));

        let plain = plugin_answer("p@1:v", &response(500, "boom")).unwrap_err();
        assert_eq!(plain.kind, error_kind::HTTP_STATUS);

        let bad = plugin_answer("p@1:v", &response(200, "[1]")).unwrap_err();
        assert_eq!(bad.kind, error_kind::BAD_RESPONSE);
        let bad_handle = plugin_answer("p@1:v", &response(200, r#"{"handle":3}"#)).unwrap_err();
        assert_eq!(bad_handle.kind, error_kind::BAD_RESPONSE);
    }

    #[test]
    fn json_content_types() {
        let mut r = response(200, "{}");
        assert!(r.is_json());
        r.headers.insert(
            "content-type".into(),
            "application/problem+json; charset=utf-8".into(),
        );
        assert!(r.is_json());
        r.headers.insert("content-type".into(), "text/plain".into());
        assert!(!r.is_json());
    }
}
