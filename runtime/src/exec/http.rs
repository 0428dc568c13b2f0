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
//! Where a plugin is served is a deployment fact, never part of a plan: the
//! caller configures each plugin major's [`PluginEndpoint`] (`donmai run`
//! takes it from the plugin's manifest or `--plugin-endpoint`). A call is
//! bounded by the step's `timeoutMs`, else the endpoint's default (the
//! manifest's `endpointTimeoutMs`), else [`DEFAULT_TIMEOUT`].
//!
//! Plain HTTP always works; HTTPS needs the runtime's `https` feature
//! (rustls), which is off by default to keep the build small:
//! [`check_endpoint_url`] lets a caller refuse an `https://` endpoint at
//! start-up instead of at its first call.

use super::{ExecError, VerbCall, VerbExecutor, VerbOutcome, error_kind};
use crate::plan::model::VerbRef;
use donmai_stdlib::value::{Value, truncate_for_message};
use std::collections::BTreeMap;
use std::time::Duration;

/// Answers larger than this are refused rather than read into memory.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;
/// The bound on a call when neither the step nor the request gives one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Whether this build speaks HTTPS (the runtime's `https` feature).
pub const HTTPS_SUPPORTED: bool = cfg!(feature = "https");

/// Whether `url` is an `https://` URL (the scheme is case-insensitive).
pub fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// Why this build cannot call `url` as an endpoint, if it cannot: it is
/// not an absolute `http://`/`https://` URL the client can parse, or it is
/// `https://` and this build has no HTTPS. Callers check endpoints with it
/// when they are configured, so a deployment mistake stops a run before
/// it starts rather than failing its first call.
pub fn check_endpoint_url(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("`{}` is not a valid URL: {e}", truncate_for_message(url)))?;
    let scheme_ok = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        return Err(format!(
            "`{}` is not an absolute http:// or https:// URL",
            truncate_for_message(url)
        ));
    }
    if is_https(url) && !HTTPS_SUPPORTED {
        return Err(format!(
            "`{}` needs HTTPS, which this build leaves out (the runtime's `https` feature)",
            truncate_for_message(url)
        ));
    }
    Ok(())
}

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
        if is_https(&request.url) && !HTTPS_SUPPORTED {
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

/// Where one plugin major is served, and how long its calls may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginEndpoint {
    pub url: String,
    /// The bound on a call whose step gives no `timeoutMs`; `None` for
    /// [`DEFAULT_TIMEOUT`].
    pub default_timeout: Option<Duration>,
}

impl PluginEndpoint {
    pub fn new(url: impl Into<String>) -> PluginEndpoint {
        PluginEndpoint {
            url: url.into(),
            default_timeout: None,
        }
    }

    pub fn with_default_timeout(mut self, timeout: Option<Duration>) -> PluginEndpoint {
        self.default_timeout = timeout;
        self
    }

    /// The bound on one call: the step's `timeoutMs` when it gives one.
    pub fn timeout_for(&self, step_timeout_ms: Option<u64>) -> Duration {
        step_timeout_ms
            .map(Duration::from_millis)
            .or(self.default_timeout)
            .unwrap_or(DEFAULT_TIMEOUT)
    }
}

/// Calls plugins that are served over HTTP. Endpoints are configured per
/// plugin major (`linear@1`) or per plugin (`linear`, any major); the major
/// wins when both are.
#[derive(Clone, Debug, Default)]
pub struct HttpPluginExecutor {
    client: HttpClient,
    endpoints: BTreeMap<String, PluginEndpoint>,
}

impl HttpPluginExecutor {
    pub fn new(client: HttpClient) -> HttpPluginExecutor {
        HttpPluginExecutor {
            client,
            endpoints: BTreeMap::new(),
        }
    }

    /// `plugin` is `name@major` or `name`; calls get the default timeout.
    pub fn with_endpoint(self, plugin: impl Into<String>, url: impl Into<String>) -> Self {
        self.with_plugin_endpoint(plugin, PluginEndpoint::new(url))
    }

    /// `plugin` is `name@major` or `name`.
    pub fn with_plugin_endpoint(
        mut self,
        plugin: impl Into<String>,
        endpoint: PluginEndpoint,
    ) -> Self {
        self.endpoints.insert(plugin.into(), endpoint);
        self
    }

    pub fn plugin_endpoint_for(&self, verb: &VerbRef) -> Option<&PluginEndpoint> {
        self.endpoints
            .get(&format!("{}@{}", verb.plugin, verb.major))
            .or_else(|| self.endpoints.get(&verb.plugin))
    }

    pub fn endpoint_for(&self, verb: &VerbRef) -> Option<&str> {
        self.plugin_endpoint_for(verb).map(|e| e.url.as_str())
    }
}

impl VerbExecutor for HttpPluginExecutor {
    fn execute(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError> {
        let Some(endpoint) = self.plugin_endpoint_for(call.verb) else {
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
            url: endpoint.url.clone(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("accept".into(), "application/json".into()),
                ("idempotency-key".into(), call.idempotency_key.to_string()),
            ],
            body: Some(body.to_string().into_bytes()),
            timeout: endpoint.timeout_for(call.timeout_ms),
            // A redirect would re-send the call somewhere the deployment
            // did not name.
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
    fn endpoint_urls_are_checked_for_this_build() {
        assert!(check_endpoint_url("http://127.0.0.1:8080/verbs").is_ok());
        assert!(check_endpoint_url("HTTP://[::1]:9/v?x=1").is_ok());
        // What a manifest accepts, the client accepts too.
        assert!(check_endpoint_url("http://my_host.internal.:80/x@y?a=%20").is_ok());
        for bad in [
            "",
            "/verbs",
            "ftp://example.com/x",
            "http://",
            "http://a b/",
        ] {
            assert!(check_endpoint_url(bad).is_err(), "{bad:?}");
        }
        let https = check_endpoint_url("https://plugins.example.com/acme");
        if HTTPS_SUPPORTED {
            assert!(https.is_ok(), "{https:?}");
        } else {
            let message = https.unwrap_err();
            assert!(message.contains("`https` feature"), "{message}");
        }
        assert!(is_https("HTTPS://x") && !is_https("http://x") && !is_https("https"));
    }

    proptest::proptest! {
        /// A URL the manifest rule accepts is one the client can call: a
        /// manifest that checks clean never fails at start-up for its URL.
        #[test]
        fn manifest_endpoints_parse_in_the_client(
            scheme in "(http|HTTPS|Http)",
            host in "([a-z0-9_.-]{1,20}|\\[[0-9a-f:]{2,12}\\])",
            port in proptest::option::of("[0-9]{1,5}"),
            rest in "[!-~]{0,24}",
        ) {
            let url = match &port {
                Some(port) => format!("{scheme}://{host}:{port}/{rest}"),
                None => format!("{scheme}://{host}/{rest}"),
            };
            if donmai_stdlib::manifest::endpoint_url_problem(&url).is_none() {
                let checked = check_endpoint_url(&url);
                proptest::prop_assert!(
                    checked.is_ok() || (is_https(&url) && !HTTPS_SUPPORTED),
                    "{url}: {checked:?}"
                );
            }
        }
    }

    /// A server that accepts connections and never answers, so only a
    /// timeout ends a call to it.
    fn silent_server() -> (String, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/verbs", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut held = Vec::new();
            // Two calls below; keep both connections open until the end.
            for _ in 0..2 {
                if let Ok((stream, _)) = listener.accept() {
                    held.push(stream);
                }
            }
            std::thread::sleep(Duration::from_secs(8));
        });
        (url, handle)
    }

    fn acme_verb(major: u32) -> VerbRef {
        VerbRef {
            plugin: "acme".into(),
            major,
            verb: "acme.ping".into(),
            kind: crate::plan::model::VerbKind::Action,
            side_effect: crate::plan::model::SideEffect::ExternalWrite,
            required_inputs: vec![],
            route_by: None,
            route_cases: Vec::new(),
            handles: vec![],
            events: vec![],
            idempotency_key: None,
        }
    }

    #[test]
    fn the_step_timeout_wins_then_the_endpoint_default() {
        let (url, _server) = silent_server();
        let verb = acme_verb(1);
        let executor = HttpPluginExecutor::new(HttpClient::new()).with_plugin_endpoint(
            "acme@1",
            PluginEndpoint::new(url).with_default_timeout(Some(Duration::from_millis(1000))),
        );
        let input = Value::from_json(&serde_json::json!({}));
        let call = |timeout_ms| {
            let started = std::time::Instant::now();
            let error = executor
                .execute(&VerbCall {
                    verb: &verb,
                    qualified: "acme@1:acme.ping",
                    input: &input,
                    idempotency_key: "k",
                    attempt: 1,
                    timeout_ms,
                    run_id: "r",
                    step_id: "s",
                })
                .unwrap_err();
            assert_eq!(error.kind, error_kind::TIMEOUT, "{error}");
            started.elapsed()
        };
        // The endpoint's default bounds a step without `timeoutMs`…
        let by_default = call(None);
        assert!(
            by_default >= Duration::from_millis(1000) && by_default < Duration::from_secs(5),
            "{by_default:?}"
        );
        // …and a step's own `timeoutMs` replaces it.
        let by_step = call(Some(50));
        assert!(by_step < Duration::from_millis(900), "{by_step:?}");
        assert_eq!(
            PluginEndpoint::new("http://x").timeout_for(None),
            DEFAULT_TIMEOUT
        );
    }

    #[test]
    fn a_major_s_endpoint_wins_over_the_plugin_s() {
        let executor = HttpPluginExecutor::default()
            .with_endpoint("acme", "http://any/")
            .with_endpoint("acme@2", "http://two/");
        assert_eq!(executor.endpoint_for(&acme_verb(2)), Some("http://two/"));
        assert_eq!(executor.endpoint_for(&acme_verb(1)), Some("http://any/"));
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
