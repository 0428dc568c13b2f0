//! The plugin manifest format (`apiVersion: donmai.dev/v1`, `kind: Plugin`):
//! its model, and its validation from a JSON value whose positions are kept
//! in a [`SpanTable`].
//!
//! Every problem is a `BAD_MANIFEST` diagnostic pointing into the manifest.
//! A problem inside one verb or event type drops only that verb or event
//! type; a problem in the document's header drops the document. The format is
//! specified in `stdlib/README.md`.

use crate::schema::{SchemaError, SchemaRole, schema_to_type};
use crate::types::{ObjectType, Type};
use crate::value::{truncate_for_message, write_canonical};
use crate::yaml_json::{SpanTable, pointer_push};
use donmai_grammar::codes::Code;
use donmai_grammar::diagnostic::{Diagnostic, did_you_mean};
use donmai_grammar::span::Span;
use serde_json::{Map, Value};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use time::Date;
use time::macros::format_description;

pub const API_VERSION: &str = "donmai.dev/v1";
pub const KIND: &str = "Plugin";

/// The bundled plugin that owns the first-party namespaces.
pub const FIRST_PARTY_PLUGIN: &str = "donmai";
/// Plugins that ship with donmai and are never an integration a project
/// enables: the first-party verbs and the runtime's builtin `core` verbs.
pub const BUILTIN_PLUGINS: &[&str] = &[FIRST_PARTY_PLUGIN, "core"];
/// Verb namespaces owned by [`FIRST_PARTY_PLUGIN`] although not named after it.
pub const FIRST_PARTY_NAMESPACES: &[&str] =
    &["agent", "gate", "requester", "workflow", "architecture"];
/// Names no plugin may take: provider families, and the first-party
/// namespaces (a plugin named `agent` would make `agent.*` ambiguous).
pub const RESERVED_PLUGIN_NAMES: &[&str] = &[
    "tracker",
    "vcs",
    "sandbox",
    "workarea",
    "deployment",
    "kit",
    "agent",
    "gate",
    "requester",
    "workflow",
    "architecture",
];
/// Branch key the compiler reserves for "every other handle".
pub const DEFAULT_HANDLE: &str = "default";
/// The longest `endpointTimeoutMs` a manifest may declare: a day. A verb
/// call that may take longer belongs behind a gate, not one HTTP request.
pub const MAX_ENDPOINT_TIMEOUT_MS: u64 = 86_400_000;

const DOCUMENT_KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "endpoint",
    "endpointTimeoutMs",
    "auth",
    "signature",
    "providers",
    "verbs",
    "events",
];
const METADATA_KEYS: &[&str] = &["name", "version", "description"];
const PROVIDER_KEYS: &[&str] = &["id", "class", "capabilities"];
const AUTH_KEYS: &[&str] = &["type", "scopes"];
const SIGNATURE_KEYS: &[&str] = &["keyId", "manifestHash", "signatureValue"];
const VERB_KEYS: &[&str] = &[
    "id",
    "kind",
    "description",
    "inputSchema",
    "outputSchema",
    "sideEffectClass",
    "idempotencyKey",
    "eventSubscription",
    "routeBy",
    "handles",
    "deprecatedSince",
    "deprecatedAfter",
    "successor",
    "providerId",
    "authScopes",
];
const EVENTS_KEYS: &[&str] = &["webhookPath", "types"];
const EVENT_TYPE_KEYS: &[&str] = &["type", "description", "payloadSchema"];

/// Where a plugin was loaded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginOrigin {
    /// Shipped inside the toolchain; the path is the one shown in diagnostics.
    Bundled(PathBuf),
    /// A third-party manifest on disk.
    File(PathBuf),
}

impl PluginOrigin {
    pub fn path(&self) -> &std::path::Path {
        match self {
            PluginOrigin::Bundled(path) | PluginOrigin::File(path) => path,
        }
    }

    pub fn is_bundled(&self) -> bool {
        matches!(self, PluginOrigin::Bundled(_))
    }
}

/// `MAJOR.MINOR.PATCH` of `metadata.version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PluginVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl PluginVersion {
    pub fn parse(text: &str) -> Option<PluginVersion> {
        let mut parts = text.split('.');
        let mut number = || -> Option<u32> {
            let part = parts.next()?;
            let canonical = part == "0" || !part.starts_with('0');
            if part.is_empty() || !canonical || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let version = PluginVersion {
            major: number()?,
            minor: number()?,
            patch: number()?,
        };
        parts.next().is_none().then_some(version)
    }
}

impl fmt::Display for PluginVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// One loaded plugin major: one manifest document.
#[derive(Clone, Debug)]
pub struct Plugin {
    pub name: String,
    pub version: PluginVersion,
    pub description: Option<String>,
    pub providers: Vec<Provider>,
    pub verbs: Vec<Verb>,
    pub webhook_path: Option<String>,
    pub event_types: Vec<EventType>,
    /// Where the runtime calls this major's verbs over HTTP (`endpoint`):
    /// an absolute `http://` or `https://` URL without credentials. A
    /// deployment fact, never part of a plan: `donmai run` reads it from
    /// the project's registry, and `--plugin-endpoint` overrides it.
    pub endpoint: Option<String>,
    /// The bound on one call of this major's verbs when the step gives no
    /// `timeoutMs` (`endpointTimeoutMs`), whatever URL serves them.
    pub endpoint_timeout_ms: Option<u64>,
    /// How the provider's API is authorised and every scope its verbs may
    /// ask for (`auth`); a verb's `authScopes` are drawn from these.
    pub auth: Option<PluginAuth>,
    /// The `signature` block as written; checking it against trusted keys
    /// is the project's business (`[plugins] trustedKeys` in donmai.toml).
    pub signature: Option<ManifestSignature>,
    /// SHA-256 of the document's canonical JSON without its `signature`:
    /// what a signature covers. Computed for third-party manifests only:
    /// bundled ones ship inside the toolchain and are never signed.
    pub manifest_hash: Option<[u8; 32]>,
    pub origin: PluginOrigin,
    /// The `metadata` mapping's key in the manifest.
    pub span: Span,
}

impl Plugin {
    pub fn major(&self) -> u32 {
        self.version.major
    }

    /// `name@major`, as workflows pin it.
    pub fn pin(&self) -> String {
        format!("{}@{}", self.name, self.version.major)
    }

    pub fn verb(&self, id: &str) -> Option<&Verb> {
        self.verbs.iter().find(|verb| verb.id == id)
    }

    pub fn event_type(&self, name: &str) -> Option<&EventType> {
        self.event_types.iter().find(|event| event.name == name)
    }

    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|provider| provider.id == id)
    }

    /// The closest verb id to a misspelt one.
    pub fn suggest_verb(&self, id: &str) -> Option<&str> {
        did_you_mean(id, self.verbs.iter().map(|verb| verb.id.as_str()))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    /// The provider family, e.g. `tracker`.
    pub family: String,
    pub id: String,
    pub class: Option<String>,
    pub capabilities: Vec<String>,
}

/// `auth` of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginAuth {
    pub kind: AuthKind,
    pub scopes: Vec<String>,
}

/// How a provider authorises calls: the credential a session's snapshot
/// carries for the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthKind {
    /// OAuth 2 access tokens carrying scopes.
    OAuth2,
    /// A static API key or token with permissions set at the provider.
    ApiKey,
    /// An installed app (GitHub App, Slack app) with per-installation grants.
    App,
}

impl AuthKind {
    pub const NAMES: &[&str] = &["oauth2", "api-key", "app"];

    pub fn parse(text: &str) -> Option<AuthKind> {
        Some(match text {
            "oauth2" => AuthKind::OAuth2,
            "api-key" => AuthKind::ApiKey,
            "app" => AuthKind::App,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::OAuth2 => "oauth2",
            AuthKind::ApiKey => "api-key",
            AuthKind::App => "app",
        }
    }
}

/// `signature` of a manifest: an Ed25519 signature over [`Plugin::manifest_hash`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestSignature {
    /// The signing key's id (16 hex digits: the first 8 bytes of the
    /// SHA-256 of the public key).
    pub key_id: String,
    /// `sha256:<64 hex digits>`, as the signer computed it.
    pub manifest_hash: String,
    /// The 64-byte signature in standard base64.
    pub signature_value: String,
    /// The `signature` key in the manifest.
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VerbKind {
    Action,
    Condition,
    Trigger,
    Gate,
}

impl VerbKind {
    pub const NAMES: &[&str] = &["action", "condition", "trigger", "gate"];

    pub fn parse(text: &str) -> Option<VerbKind> {
        Some(match text {
            "action" => VerbKind::Action,
            "condition" => VerbKind::Condition,
            "trigger" => VerbKind::Trigger,
            "gate" => VerbKind::Gate,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VerbKind::Action => "action",
            VerbKind::Condition => "condition",
            VerbKind::Trigger => "trigger",
            VerbKind::Gate => "gate",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SideEffectClass {
    ReadOnly,
    ExternalWrite,
    InternalOnly,
}

impl SideEffectClass {
    pub const NAMES: &[&str] = &["read-only", "external-write", "internal-only"];

    pub fn parse(text: &str) -> Option<SideEffectClass> {
        Some(match text {
            "read-only" => SideEffectClass::ReadOnly,
            "external-write" => SideEffectClass::ExternalWrite,
            "internal-only" => SideEffectClass::InternalOnly,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SideEffectClass::ReadOnly => "read-only",
            SideEffectClass::ExternalWrite => "external-write",
            SideEffectClass::InternalOnly => "internal-only",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deprecation {
    pub since: Date,
    /// From this day on (exclusive) the verb no longer compiles.
    pub after: Option<Date>,
    /// Fully qualified: `plugin@major:verb`.
    pub successor: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeprecationStatus {
    Active,
    /// Deprecated but still compiles (a warning).
    Deprecated,
    /// Past `deprecatedAfter` (an error).
    Removed,
}

/// How a verb's step picks its outgoing edge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Routing<'a> {
    /// A single `next`.
    Next,
    /// Boolean condition: handles `yes` and `no`, from the bool output `port`.
    Bool { port: &'a str },
    /// Switch condition: one handle per value of the enum output `port`.
    Switch { port: &'a str, cases: &'a [String] },
    /// Gate with named handles.
    Handles(&'a [String]),
}

#[derive(Clone, Debug)]
pub struct Verb {
    pub id: String,
    pub kind: VerbKind,
    pub description: Option<String>,
    pub side_effect_class: SideEffectClass,
    /// The schemas as written, for run-time validation.
    pub input_schema: Value,
    pub output_schema: Option<Value>,
    pub idempotency_key: Option<String>,
    /// The `idempotencyKey` value in the manifest.
    pub idempotency_key_span: Option<Span>,
    /// Event types a gate or trigger verb waits for (`a|b` in the manifest).
    pub event_subscription: Vec<String>,
    pub route_by: Option<String>,
    pub deprecation: Option<Deprecation>,
    pub provider_id: Option<String>,
    /// The provider scopes a call needs (`authScopes`), each one of the
    /// plugin's `auth.scopes`; `None` when the manifest does not say (an
    /// empty list says the credential alone is enough).
    pub auth_scopes: Option<Vec<String>>,
    /// The verb's `id` value in the manifest.
    pub span: Span,
    input_type: Type,
    output_type: Type,
    gate_handles: Vec<String>,
}

impl Verb {
    /// The input ports: a closed object unless the schema opens it.
    pub fn input_type(&self) -> Type {
        self.input_type.clone()
    }

    /// The output: an empty closed object when the verb declares no
    /// `outputSchema`, `dyn` for `outputSchema: {}`.
    pub fn output_type(&self) -> Type {
        self.output_type.clone()
    }

    pub fn routing(&self) -> Routing<'_> {
        if self.kind == VerbKind::Gate && !self.gate_handles.is_empty() {
            return Routing::Handles(&self.gate_handles);
        }
        let Some(port) = self.route_by.as_deref() else {
            return Routing::Next;
        };
        // Loading guarantees the port is a required, non-null bool or enum.
        let Type::Object(object) = &self.output_type else {
            return Routing::Next;
        };
        match object.fields.get(port).map(|field| &field.ty) {
            Some(Type::Bool) => Routing::Bool { port },
            Some(Type::Enum(cases)) => Routing::Switch { port, cases },
            _ => Routing::Next,
        }
    }

    /// The handles a step of this verb may route to: `yes`/`no` for a bool
    /// condition, the enum values for a switch, a gate's named handles.
    /// Empty when the step just continues with `next`.
    pub fn handles(&self) -> Vec<String> {
        match self.routing() {
            Routing::Next => Vec::new(),
            Routing::Bool { .. } => vec!["yes".to_string(), "no".to_string()],
            Routing::Switch { cases, .. } => cases.to_vec(),
            Routing::Handles(handles) => handles.to_vec(),
        }
    }

    /// The type of the output a condition routes by.
    pub fn route_type(&self) -> Option<Type> {
        self.output_type.field(self.route_by.as_deref()?)
    }

    pub fn deprecation_status(&self, today: Date) -> DeprecationStatus {
        match &self.deprecation {
            None => DeprecationStatus::Active,
            Some(Deprecation {
                after: Some(after), ..
            }) if today > *after => DeprecationStatus::Removed,
            Some(Deprecation { since, .. }) if today >= *since => DeprecationStatus::Deprecated,
            Some(_) => DeprecationStatus::Active,
        }
    }
}

#[derive(Clone, Debug)]
pub struct EventType {
    /// E.g. `github.pr.opened`.
    pub name: String,
    pub description: Option<String>,
    pub payload_schema: Value,
    pub span: Span,
    payload_type: Type,
}

impl EventType {
    pub fn payload_type(&self) -> Type {
        self.payload_type.clone()
    }
}

/// Which plugin owns a verb id: the first segment, except that the
/// first-party namespaces belong to `donmai`.
pub fn verb_owner(verb_id: &str) -> &str {
    let first = verb_id.split('.').next().unwrap_or(verb_id);
    if FIRST_PARTY_NAMESPACES.contains(&first) {
        FIRST_PARTY_PLUGIN
    } else {
        first
    }
}

fn is_lower_identifier(text: &str) -> bool {
    let mut bytes = text.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// Why `name` is not a valid plugin name, if it is not.
pub fn plugin_name_error(name: &str) -> Option<String> {
    if !is_lower_identifier(name) || name.len() > 64 {
        return Some(format!(
            "`{name}` is not a plugin name: use lowercase letters, digits and `_`, starting with a letter"
        ));
    }
    None
}

/// Why `id` is not a valid verb id, if it is not.
pub fn verb_id_error(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("the verb id is empty".into());
    }
    if !id.contains('.') {
        return Some(format!(
            "`{id}` is not a verb id: write `<namespace>.<verb>` or `<namespace>.<resource>.<op>`"
        ));
    }
    if let Some(bad) = id.split('.').find(|s| !is_lower_identifier(s)) {
        return Some(format!(
            "`{id}` is not a verb id: segment `{bad}` must be lowercase letters, digits and `_`, starting with a letter"
        ));
    }
    None
}

/// Why `name` is not a valid event type name, if it is not.
pub fn event_type_error(name: &str) -> Option<String> {
    let segments: Vec<&str> = name.split('.').collect();
    let segment_ok = |s: &&str| {
        let mut bytes = s.bytes();
        matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if segments.len() < 2 || !segments.iter().all(segment_ok) {
        return Some(format!(
            "`{name}` is not an event type: write dot-separated segments such as `github.pr.opened`"
        ));
    }
    None
}

fn handle_error(handle: &str) -> Option<String> {
    if handle == DEFAULT_HANDLE {
        return Some(
            "`default` is reserved for `branches.default`; name this handle differently".into(),
        );
    }
    let mut bytes = handle.bytes();
    let ok = matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
    (!ok).then(|| {
        format!("`{handle}` is not a handle name: use lowercase letters, digits, `_` and `-`")
    })
}

/// Why a URL cannot be a plugin endpoint, with what to do instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointUrlProblem {
    pub message: String,
    pub help: Option<String>,
}

/// Why `url` cannot be a plugin endpoint, if it cannot. An endpoint is an
/// absolute `http://` or `https://` URL with a host, an optional port, path
/// and query, written in ASCII (percent-encoded where needed), with no
/// fragment (never sent) and no credentials: a manifest is read by everyone
/// who reads the repository, so a password in it is leaked. Messages never
/// repeat the URL's authority, which may hold that password.
///
/// Hand-written rather than a URL crate: only this one shape is accepted,
/// and the compiler, which loads manifests, stays free of IDNA tables.
pub fn endpoint_url_problem(url: &str) -> Option<EndpointUrlProblem> {
    let problem = |message: String, help: Option<&str>| {
        Some(EndpointUrlProblem {
            message,
            help: help.map(str::to_string),
        })
    };
    const ABSOLUTE: &str = "write an absolute URL such as `https://plugins.example.com/acme` or `http://127.0.0.1:8080/verbs`";
    const ENCODE: &str =
        "percent-encode it (a space is `%20`); write an internationalised host in its `xn--` form";
    if url.is_empty() {
        return problem("the endpoint is empty".into(), Some(ABSOLUTE));
    }
    if let Some(c) = url.chars().find(|c| !c.is_ascii_graphic()) {
        let what = match c {
            ' ' => "a space".to_string(),
            c if c.is_control() => format!("the control character U+{:04X}", c as u32),
            c => format!("the non-ASCII character `{c}`"),
        };
        return problem(format!("the endpoint contains {what}"), Some(ENCODE));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return problem(
            "the endpoint is not an absolute URL: it has no `http://` or `https://`".into(),
            Some(ABSOLUTE),
        );
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return problem(
            format!(
                "`{}` endpoints are not supported: plugins are called over `http://` or `https://`",
                truncate_for_message(scheme)
            ),
            None,
        );
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if authority.contains('@') {
        return problem(
            "an endpoint must not carry credentials (`user:password@`)".into(),
            Some(
                "a manifest is read by everyone who reads the repository: remove the credentials and let the plugin's server authenticate its callers another way (a private network, mutual TLS, a proxy)",
            ),
        );
    }
    let (host, port) = if let Some(literal) = authority.strip_prefix('[') {
        let Some((address, after)) = literal.split_once(']') else {
            return problem(
                "the endpoint's IPv6 address has no closing `]`".into(),
                None,
            );
        };
        let ipv6 = address.contains(':')
            && address
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ipv6 {
            return problem(
                format!(
                    "`[{}]` is not an IPv6 address",
                    truncate_for_message(address)
                ),
                None,
            );
        }
        match after {
            "" => (address, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (address, Some(port)),
                None => {
                    return problem(
                        "the endpoint has text between its IPv6 address and its path".into(),
                        None,
                    );
                }
            },
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return problem("the endpoint has no host".into(), Some(ABSOLUTE));
    }
    if !authority.starts_with('[') {
        let valid_host = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            && !host.trim_end_matches('.').split('.').any(str::is_empty);
        if !valid_host {
            return problem(
                format!("`{}` is not a host name", truncate_for_message(host)),
                Some(
                    "a host is a name such as `plugins.example.com` (letters, digits, `-`, `_` and dots), an IPv4 address, or an IPv6 address in brackets",
                ),
            );
        }
    }
    if let Some(port) = port {
        let valid_port = (1..=5).contains(&port.len())
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
        if !valid_port {
            return problem(
                format!(
                    "`{}` is not a port number (1 to 65535)",
                    truncate_for_message(port)
                ),
                None,
            );
        }
    }
    if tail.contains('#') {
        return problem(
            "the endpoint has a fragment (`#…`), which is never sent to the server".into(),
            Some("remove it; a query (`?…`) is sent"),
        );
    }
    if let Some(c) = tail
        .chars()
        .find(|c| matches!(c, '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}'))
    {
        return problem(
            format!("the endpoint contains `{c}`, which a URL cannot hold unencoded"),
            Some(ENCODE),
        );
    }
    let bytes = tail.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let escape_ok = |at: usize| bytes.get(at).is_some_and(u8::is_ascii_hexdigit);
        if b == b'%' && !(escape_ok(i + 1) && escape_ok(i + 2)) {
            return problem(
                "the endpoint has a `%` that is not followed by two hex digits".into(),
                Some("write a literal `%` as `%25`"),
            );
        }
    }
    None
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<Date> {
    Date::parse(text, format_description!("[year]-[month]-[day]")).ok()
}

/// SHA-256 of the canonical JSON ([`write_canonical`]) of a manifest
/// document without its `signature`: what a manifest signature covers, so
/// re-indenting or reordering the YAML keeps a signature valid and any
/// change of meaning breaks it.
pub fn manifest_hash(document: &Value) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut text = String::new();
    match document.as_object() {
        // Only signed (third-party) manifests pay for the copy.
        Some(map) if map.contains_key("signature") => {
            let unsigned: Map<String, Value> = map
                .iter()
                .filter(|(key, _)| *key != "signature")
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            write_canonical(&Value::Object(unsigned), &mut text);
        }
        _ => write_canonical(document, &mut text),
    }
    Sha256::digest(text.as_bytes()).into()
}

/// Validates one manifest document and builds its plugin.
pub fn parse_plugin(
    document: &Value,
    spans: &SpanTable,
    origin: PluginOrigin,
) -> (Option<Plugin>, Vec<Diagnostic>) {
    let mut checker = Checker {
        spans,
        diagnostics: Vec::new(),
    };
    let plugin = checker.document(document, origin);
    (plugin, checker.diagnostics)
}

struct Checker<'a> {
    spans: &'a SpanTable,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn report(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics
            .push(Diagnostic::new(Code::BAD_MANIFEST, span, message));
        let last = self.diagnostics.len() - 1;
        &mut self.diagnostics[last]
    }

    fn at_value(&mut self, pointer: &str, message: impl Into<String>) -> &mut Diagnostic {
        let span = self.spans.value_span(pointer);
        self.report(span, message)
    }

    fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    fn mapping<'v>(
        &mut self,
        value: &'v Value,
        pointer: &str,
        what: &str,
    ) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            _ => {
                self.at_value(pointer, format!("{what} must be a mapping"));
                None
            }
        }
    }

    fn check_keys(
        &mut self,
        map: &Map<String, Value>,
        pointer: &str,
        allowed: &[&str],
        what: &str,
    ) {
        for key in map.keys() {
            if allowed.contains(&key.as_str()) {
                continue;
            }
            let span = self.spans.key_span(&pointer_push(pointer, key));
            let suggestion = did_you_mean(key, allowed.iter().copied());
            let diagnostic = Diagnostic::new(
                Code::BAD_MANIFEST,
                span,
                format!("unknown key `{key}` in {what}"),
            );
            self.diagnostics.push(match suggestion {
                Some(s) => diagnostic
                    .with_help(format!("did you mean `{s}`?"))
                    .with_replacement(format!("rename to `{s}`"), span, s),
                None => {
                    diagnostic.with_help(format!("the keys of {what} are {}", quoted_list(allowed)))
                }
            });
        }
    }

    fn required<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        pointer: &str,
        key: &str,
        what: &str,
    ) -> Option<&'v Value> {
        let value = map.get(key);
        if value.is_none() {
            let span = self.spans.anchor_span(pointer);
            self.report(span, format!("{what} is missing `{key}`"));
        }
        value
    }

    fn string<'v>(&mut self, value: &'v Value, pointer: &str, what: &str) -> Option<&'v str> {
        match value {
            Value::String(text) => Some(text),
            other => {
                self.at_value(
                    pointer,
                    format!("{what} must be a string, not {}", describe(other)),
                );
                None
            }
        }
    }

    fn optional_string(
        &mut self,
        map: &Map<String, Value>,
        pointer: &str,
        key: &str,
    ) -> Option<String> {
        let value = map.get(key)?;
        self.string(value, &pointer_push(pointer, key), &format!("`{key}`"))
            .map(str::to_string)
    }

    fn schema_errors(&mut self, errors: Vec<SchemaError>) {
        for error in errors {
            let span = if error.at_key {
                self.spans.key_span(&error.pointer)
            } else {
                self.spans.value_span(&error.pointer)
            };
            let mut diagnostic = Diagnostic::new(Code::BAD_MANIFEST, span, error.message);
            if let Some(help) = error.help {
                diagnostic = diagnostic.with_help(help);
            }
            if let Some(suggestion) = error.suggestion {
                diagnostic = diagnostic.with_replacement(
                    format!("rename to `{suggestion}`"),
                    span,
                    suggestion,
                );
            }
            self.diagnostics.push(diagnostic);
        }
    }

    fn document(&mut self, document: &Value, origin: PluginOrigin) -> Option<Plugin> {
        let root = self.mapping(document, "", "a plugin manifest")?;
        self.check_keys(root, "", DOCUMENT_KEYS, "a plugin manifest");
        let header_errors = self.error_count();

        if let Some(value) = self.required(root, "", "apiVersion", "the manifest")
            && let Some(text) = self.string(value, "/apiVersion", "`apiVersion`")
            && text != API_VERSION
        {
            let span = self.spans.value_span("/apiVersion");
            self.report(span, format!("unsupported manifest apiVersion `{text}`"))
                .help = Some(format!("this toolchain reads `apiVersion: {API_VERSION}`"));
        }
        if let Some(value) = self.required(root, "", "kind", "the manifest")
            && let Some(text) = self.string(value, "/kind", "`kind`")
            && text != KIND
        {
            self.at_value(
                "/kind",
                format!("a plugin manifest has `kind: {KIND}`, not `{text}`"),
            );
        }

        let (name, version, description) = self.metadata(root)?;
        if self.error_count() > header_errors {
            return None;
        }

        // Endpoint problems drop the endpoint only: the verbs still type
        // workflows, and the error still stops every check and run.
        let endpoint = self.endpoint(root);
        let endpoint_timeout_ms = self.endpoint_timeout(root);
        let auth = root.get("auth").and_then(|value| self.auth(value));
        let signature = root
            .get("signature")
            .and_then(|value| self.signature(value));
        let manifest_hash =
            matches!(origin, PluginOrigin::File(_)).then(|| manifest_hash(document));
        let providers = match root.get("providers") {
            Some(value) => self.providers(value),
            None => Vec::new(),
        };
        let (webhook_path, event_types) = match root.get("events") {
            Some(value) => self.events(value, &name),
            None => (None, Vec::new()),
        };
        let verbs = match root.get("verbs") {
            Some(value) => self.verbs(value, &name, version.major, &providers, auth.as_ref()),
            None => Vec::new(),
        };
        Some(Plugin {
            name,
            version,
            description,
            providers,
            verbs,
            webhook_path,
            event_types,
            endpoint,
            endpoint_timeout_ms,
            auth,
            signature,
            manifest_hash,
            origin,
            span: self.spans.key_span("/metadata"),
        })
    }

    fn auth(&mut self, value: &Value) -> Option<PluginAuth> {
        let map = self.mapping(value, "/auth", "`auth`")?;
        self.check_keys(map, "/auth", AUTH_KEYS, "`auth`");
        let kind = self
            .required(map, "/auth", "type", "`auth`")
            .and_then(|value| {
                self.keyword(
                    value,
                    "/auth/type",
                    "known auth type",
                    AuthKind::NAMES,
                    AuthKind::parse,
                )
            });
        let mut scopes: Vec<String> = Vec::new();
        if let Some(value) = map.get("scopes") {
            for (i, scope) in self
                .string_list(value, "/auth/scopes", "`scopes`")
                .into_iter()
                .enumerate()
            {
                if scopes.contains(&scope) {
                    self.at_value(
                        &format!("/auth/scopes/{i}"),
                        format!("scope `{scope}` is listed twice"),
                    );
                } else {
                    scopes.push(scope);
                }
            }
        }
        Some(PluginAuth {
            kind: kind?,
            scopes,
        })
    }

    fn signature(&mut self, value: &Value) -> Option<ManifestSignature> {
        let map = self.mapping(value, "/signature", "`signature`")?;
        self.check_keys(map, "/signature", SIGNATURE_KEYS, "`signature`");
        let mut field = |key: &str| {
            self.required(map, "/signature", key, "`signature`")
                .and_then(|v| self.string(v, &pointer_push("/signature", key), &format!("`{key}`")))
                .map(str::to_string)
        };
        let key_id = field("keyId");
        let manifest_hash = field("manifestHash");
        let signature_value = field("signatureValue");
        Some(ManifestSignature {
            key_id: key_id?,
            manifest_hash: manifest_hash?,
            signature_value: signature_value?,
            span: self.spans.key_span("/signature"),
        })
    }

    fn endpoint(&mut self, root: &Map<String, Value>) -> Option<String> {
        let url = self.string(root.get("endpoint")?, "/endpoint", "`endpoint`")?;
        match endpoint_url_problem(url) {
            None => Some(url.to_string()),
            Some(problem) => {
                self.at_value("/endpoint", problem.message).help = problem.help;
                None
            }
        }
    }

    fn endpoint_timeout(&mut self, root: &Map<String, Value>) -> Option<u64> {
        let value = root.get("endpointTimeoutMs")?;
        let millis = value
            .as_u64()
            .filter(|ms| (1..=MAX_ENDPOINT_TIMEOUT_MS).contains(ms));
        if millis.is_none() {
            let what = match value {
                Value::Number(number) => format!("`{number}`"),
                other => describe(other).to_string(),
            };
            self.at_value(
                "/endpointTimeoutMs",
                format!(
                    "`endpointTimeoutMs` must be a whole number of milliseconds from 1 to {MAX_ENDPOINT_TIMEOUT_MS}, not {what}"
                ),
            )
            .help = Some("e.g. `endpointTimeoutMs: 60000` for a minute".into());
        }
        millis
    }

    fn metadata(
        &mut self,
        root: &Map<String, Value>,
    ) -> Option<(String, PluginVersion, Option<String>)> {
        let value = self.required(root, "", "metadata", "the manifest")?;
        let map = self.mapping(value, "/metadata", "`metadata`")?;
        self.check_keys(map, "/metadata", METADATA_KEYS, "`metadata`");
        let description = self.optional_string(map, "/metadata", "description");

        let name = self
            .required(map, "/metadata", "name", "`metadata`")
            .and_then(|v| self.string(v, "/metadata/name", "`metadata.name`"))
            .map(str::to_string);
        if let Some(name) = &name {
            if let Some(problem) = plugin_name_error(name) {
                self.at_value("/metadata/name", problem);
            } else if RESERVED_PLUGIN_NAMES.contains(&name.as_str()) {
                self.at_value(
                    "/metadata/name",
                    format!("the plugin name `{name}` is reserved"),
                );
            }
        }

        let version = match self.required(map, "/metadata", "version", "`metadata`") {
            Some(Value::String(text)) => {
                let parsed = PluginVersion::parse(text);
                if parsed.is_none() {
                    self.at_value("/metadata/version", format!("`{text}` is not a version"))
                        .help = Some("write `MAJOR.MINOR.PATCH`, e.g. \"1.2.0\"".into());
                }
                parsed
            }
            Some(_) => {
                self.at_value(
                    "/metadata/version",
                    "`metadata.version` must be a quoted string",
                )
                .help = Some("write `MAJOR.MINOR.PATCH` in quotes, e.g. \"1.2.0\"".into());
                None
            }
            None => None,
        };
        Some((name?, version?, description))
    }

    fn providers(&mut self, value: &Value) -> Vec<Provider> {
        let mut providers: Vec<Provider> = Vec::new();
        let Some(families) = self.mapping(value, "/providers", "`providers`") else {
            return providers;
        };
        for (family, list) in families {
            let family_pointer = pointer_push("/providers", family);
            let Value::Array(items) = list else {
                self.at_value(
                    &family_pointer,
                    format!("provider family `{family}` must be a list of providers"),
                );
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                let pointer = pointer_push(&family_pointer, &i.to_string());
                let Some(map) = self.mapping(item, &pointer, "a provider") else {
                    continue;
                };
                self.check_keys(map, &pointer, PROVIDER_KEYS, "a provider");
                let id = self
                    .required(map, &pointer, "id", "the provider")
                    .and_then(|v| self.string(v, &pointer_push(&pointer, "id"), "a provider id"))
                    .map(str::to_string);
                let class = self.optional_string(map, &pointer, "class");
                let capabilities = match map.get("capabilities") {
                    None => Vec::new(),
                    Some(value) => self.string_list(
                        value,
                        &pointer_push(&pointer, "capabilities"),
                        "`capabilities`",
                    ),
                };
                let Some(id) = id else { continue };
                if providers.iter().any(|p| p.id == id) {
                    self.at_value(
                        &pointer_push(&pointer, "id"),
                        format!("provider `{id}` is declared twice"),
                    );
                    continue;
                }
                providers.push(Provider {
                    family: family.clone(),
                    id,
                    class,
                    capabilities,
                });
            }
        }
        providers
    }

    fn string_list(&mut self, value: &Value, pointer: &str, what: &str) -> Vec<String> {
        let Value::Array(items) = value else {
            self.at_value(pointer, format!("{what} must be a list of strings"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(text) =
                self.string(item, &pointer_push(pointer, &i.to_string()), "each item")
            {
                out.push(text.to_string());
            }
        }
        out
    }

    fn events(&mut self, value: &Value, plugin: &str) -> (Option<String>, Vec<EventType>) {
        let mut event_types: Vec<EventType> = Vec::new();
        let Some(map) = self.mapping(value, "/events", "`events`") else {
            return (None, event_types);
        };
        self.check_keys(map, "/events", EVENTS_KEYS, "`events`");
        let webhook_path = self.optional_string(map, "/events", "webhookPath");
        if let Some(path) = &webhook_path
            && !path.starts_with('/')
        {
            self.at_value("/events/webhookPath", "`webhookPath` must start with `/`");
        }
        let Some(types) = self.required(map, "/events", "types", "`events`") else {
            return (webhook_path, event_types);
        };
        let Value::Array(items) = types else {
            self.at_value("/events/types", "`events.types` must be a list");
            return (webhook_path, event_types);
        };
        let mut seen: Vec<(String, Span)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let pointer = pointer_push("/events/types", &i.to_string());
            let before = self.error_count();
            let Some(map) = self.mapping(item, &pointer, "an event type") else {
                continue;
            };
            self.check_keys(map, &pointer, EVENT_TYPE_KEYS, "an event type");
            let name_pointer = pointer_push(&pointer, "type");
            let name = self
                .required(map, &pointer, "type", "the event type")
                .and_then(|v| self.string(v, &name_pointer, "`type`"))
                .map(str::to_string);
            if let Some(name) = &name {
                if let Some(problem) = event_type_error(name) {
                    self.at_value(&name_pointer, problem);
                } else if !event_owned_by(name, plugin) {
                    self.at_value(
                        &name_pointer,
                        format!("event type `{name}` is not in plugin `{plugin}`'s namespace"),
                    )
                    .help = Some(format!(
                        "name it `{plugin}.…` or, reverse-DNS style, `com.{plugin}.…`"
                    ));
                } else {
                    let span = self.spans.value_span(&name_pointer);
                    if let Some((_, first)) = seen.iter().find(|(seen_name, _)| seen_name == name) {
                        let diagnostic = Diagnostic::new(
                            Code::BAD_MANIFEST,
                            span,
                            format!("event type `{name}` is declared twice"),
                        )
                        .with_label(*first, "first declared here");
                        self.diagnostics.push(diagnostic);
                    } else {
                        seen.push((name.clone(), span));
                    }
                }
            }
            let description = self.optional_string(map, &pointer, "description");
            let schema_pointer = pointer_push(&pointer, "payloadSchema");
            let payload = self
                .required(map, &pointer, "payloadSchema", "the event type")
                .map(|schema| {
                    let (ty, errors) = schema_to_type(schema, &schema_pointer, SchemaRole::Value);
                    self.schema_errors(errors);
                    (schema.clone(), ty)
                });
            if self.error_count() > before {
                continue;
            }
            if let (Some(name), Some((payload_schema, payload_type))) = (name, payload) {
                event_types.push(EventType {
                    name,
                    description,
                    payload_schema,
                    span: self.spans.value_span(&name_pointer),
                    payload_type,
                });
            }
        }
        (webhook_path, event_types)
    }

    fn verbs(
        &mut self,
        value: &Value,
        plugin: &str,
        major: u32,
        providers: &[Provider],
        auth: Option<&PluginAuth>,
    ) -> Vec<Verb> {
        let mut verbs: Vec<Verb> = Vec::new();
        let Value::Array(items) = value else {
            self.at_value("/verbs", "`verbs` must be a list");
            return verbs;
        };
        // Successors may name verbs declared further down; check them last.
        let mut successors: Vec<(usize, String)> = Vec::new();
        // Every id seen, valid verb or not, so that a duplicate is reported
        // even when the first declaration had other problems.
        let mut seen: Vec<(&str, Span)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let pointer = pointer_push("/verbs", &i.to_string());
            if let Some(id) = item.get("id").and_then(Value::as_str) {
                let span = self.spans.value_span(&pointer_push(&pointer, "id"));
                if let Some((_, first)) = seen.iter().find(|(seen_id, _)| *seen_id == id) {
                    let diagnostic = Diagnostic::new(
                        Code::BAD_MANIFEST,
                        span,
                        format!("verb `{id}` is declared twice"),
                    )
                    .with_label(*first, "first declared here");
                    self.diagnostics.push(diagnostic);
                    continue;
                }
                seen.push((id, span));
            }
            let before = self.error_count();
            let verb = self.verb(item, &pointer, plugin, major, providers, auth);
            if self.error_count() > before {
                continue;
            }
            let Some(verb) = verb else { continue };
            if let Some(successor) = verb.deprecation.as_ref().and_then(|d| d.successor.clone()) {
                successors.push((i, successor));
            }
            verbs.push(verb);
        }
        let local_prefix = format!("{plugin}@{major}:");
        for (i, successor) in successors {
            let Some(local) = successor.strip_prefix(&local_prefix) else {
                continue;
            };
            if verbs.iter().all(|v| v.id != local) {
                let pointer = pointer_push(&pointer_push("/verbs", &i.to_string()), "successor");
                let suggestion =
                    did_you_mean(local, verbs.iter().map(|v| v.id.as_str())).map(str::to_string);
                let diagnostic = self.at_value(
                    &pointer,
                    format!("successor `{local}` is not a verb of {plugin}@{major}"),
                );
                if let Some(s) = suggestion {
                    diagnostic.help = Some(format!("did you mean `{s}`?"));
                }
            }
        }
        verbs
    }

    fn verb(
        &mut self,
        item: &Value,
        pointer: &str,
        plugin: &str,
        major: u32,
        providers: &[Provider],
        auth: Option<&PluginAuth>,
    ) -> Option<Verb> {
        let map = self.mapping(item, pointer, "a verb")?;
        self.check_keys(map, pointer, VERB_KEYS, "a verb");
        let at = |key: &str| pointer_push(pointer, key);

        let id = self
            .required(map, pointer, "id", "the verb")
            .and_then(|v| self.string(v, &at("id"), "the verb id"))
            .map(str::to_string);
        if let Some(id) = &id {
            if let Some(problem) = verb_id_error(id) {
                self.at_value(&at("id"), problem);
            } else if verb_owner(id) != plugin {
                let owner = verb_owner(id);
                let message = format!(
                    "verb `{id}` is in namespace `{owner}`, which plugin `{plugin}` does not own"
                );
                let help = if plugin == FIRST_PARTY_PLUGIN {
                    format!(
                        "donmai's verbs live in `donmai.*` or one of {}",
                        quoted_list(FIRST_PARTY_NAMESPACES)
                    )
                } else {
                    format!("a plugin's verb ids start with its name: `{plugin}.…`")
                };
                self.at_value(&at("id"), message).help = Some(help);
            }
        }

        let kind = match map.get("kind") {
            None => Some(VerbKind::Action),
            Some(value) => self.keyword(
                value,
                &at("kind"),
                "verb kind",
                VerbKind::NAMES,
                VerbKind::parse,
            ),
        };
        let side_effect_class = self
            .required(map, pointer, "sideEffectClass", "the verb")
            .and_then(|value| {
                self.keyword(
                    value,
                    &at("sideEffectClass"),
                    "side-effect class",
                    SideEffectClass::NAMES,
                    SideEffectClass::parse,
                )
            });
        let description = self.optional_string(map, pointer, "description");
        let idempotency_key = self.optional_string(map, pointer, "idempotencyKey");
        let idempotency_key_span = idempotency_key
            .as_ref()
            .map(|_| self.spans.value_span(&at("idempotencyKey")));
        if side_effect_class == Some(SideEffectClass::ExternalWrite)
            && idempotency_key.is_none()
            && !BUILTIN_PLUGINS.contains(&plugin)
        {
            // The runtime's derived key dedupes retries within one run only.
            let span = self.spans.value_span(&at("sideEffectClass"));
            self.diagnostics.push(
                Diagnostic::new(
                    Code::MISSING_IDEMPOTENCY_KEY,
                    span,
                    "this external-write verb declares no `idempotencyKey`",
                )
                .with_help("without one, a call repeated by another run (a re-delivered webhook, a manual re-run) repeats its effect; name the effect, e.g. `idempotencyKey: \"${input.ticketId}:${input.status}\"`"),
            );
        }
        let auth_scopes = map
            .get("authScopes")
            .map(|value| self.auth_scopes(value, &at("authScopes"), auth));
        let provider_id = self.optional_string(map, pointer, "providerId");
        if let Some(provider) = &provider_id
            && providers.iter().all(|p| &p.id != provider)
        {
            let suggestion =
                did_you_mean(provider, providers.iter().map(|p| p.id.as_str())).map(str::to_string);
            let diagnostic = self.at_value(
                &at("providerId"),
                format!("provider `{provider}` is not declared in `providers`"),
            );
            if let Some(s) = suggestion {
                diagnostic.help = Some(format!("did you mean `{s}`?"));
            }
        }

        let input_schema = map
            .get("inputSchema")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        let (input_type, errors) =
            schema_to_type(&input_schema, &at("inputSchema"), SchemaRole::VerbInput);
        self.schema_errors(errors);
        let output_schema = map.get("outputSchema").cloned();
        let mut output_valid = true;
        let output_type = match &output_schema {
            Some(schema) => {
                let (ty, errors) = schema_to_type(schema, &at("outputSchema"), SchemaRole::Value);
                output_valid = errors.is_empty();
                self.schema_errors(errors);
                ty
            }
            // No `outputSchema` means no outputs, not unknown outputs.
            None => Type::Object(Arc::new(ObjectType {
                fields: Default::default(),
                closed: true,
            })),
        };

        let event_subscription = match map.get("eventSubscription") {
            None => Vec::new(),
            Some(value) => self.event_subscription(value, &at("eventSubscription")),
        };
        let route_by = self.optional_string(map, pointer, "routeBy");
        let gate_handles = match map.get("handles") {
            None => Vec::new(),
            Some(value) => self.handles(value, &at("handles")),
        };
        let deprecation = self.deprecation(map, pointer, plugin, major);

        let kind = kind?;
        // A broken output schema already has its errors; judging `routeBy`
        // against the `dyn` it left behind would only add noise.
        let route_by_checkable = route_by.as_deref().filter(|_| output_valid);
        self.check_kind_fields(map, pointer, kind, route_by_checkable, &output_type);
        let span = self.spans.value_span(&at("id"));
        Some(Verb {
            id: id?,
            kind,
            description,
            side_effect_class: side_effect_class?,
            input_schema,
            output_schema,
            idempotency_key,
            idempotency_key_span,
            event_subscription,
            route_by,
            deprecation,
            provider_id,
            auth_scopes,
            span,
            input_type,
            output_type,
            gate_handles,
        })
    }

    fn auth_scopes(
        &mut self,
        value: &Value,
        pointer: &str,
        auth: Option<&PluginAuth>,
    ) -> Vec<String> {
        let scopes = self.string_list(value, pointer, "`authScopes`");
        let Some(auth) = auth else {
            if !scopes.is_empty() {
                self.at_value(
                    pointer,
                    "`authScopes` needs the plugin's `auth` to declare its scopes",
                )
                .help = Some(
                    "add `auth: {type: oauth2, scopes: [...]}` at the top of the manifest".into(),
                );
            }
            return Vec::new();
        };
        let mut known = Vec::new();
        for (i, scope) in scopes.into_iter().enumerate() {
            if auth.scopes.contains(&scope) {
                known.push(scope);
                continue;
            }
            let suggestion =
                did_you_mean(&scope, auth.scopes.iter().map(String::as_str)).map(str::to_string);
            let diagnostic = self.at_value(
                &pointer_push(pointer, &i.to_string()),
                format!("scope `{scope}` is not one of the plugin's `auth.scopes`"),
            );
            diagnostic.help = Some(match suggestion {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "declared scopes: {}",
                    quoted_list(&auth.scopes.iter().map(String::as_str).collect::<Vec<_>>())
                ),
            });
        }
        known
    }

    fn keyword<T>(
        &mut self,
        value: &Value,
        pointer: &str,
        what: &str,
        names: &[&str],
        parse: fn(&str) -> Option<T>,
    ) -> Option<T> {
        let text = self.string(value, pointer, &format!("the {what}"))?;
        if let Some(parsed) = parse(text) {
            return Some(parsed);
        }
        let span = self.spans.value_span(pointer);
        let suggestion = did_you_mean(text, names.iter().copied());
        let diagnostic = Diagnostic::new(
            Code::BAD_MANIFEST,
            span,
            format!("`{text}` is not a {what}"),
        );
        self.diagnostics.push(match suggestion {
            Some(s) => diagnostic
                .with_help(format!("did you mean `{s}`?"))
                .with_replacement(format!("replace with `{s}`"), span, s),
            None => diagnostic.with_help(format!("expected one of {}", quoted_list(names))),
        });
        None
    }

    /// Which of `routeBy`, `handles` and `eventSubscription` each kind takes.
    fn check_kind_fields(
        &mut self,
        map: &Map<String, Value>,
        pointer: &str,
        kind: VerbKind,
        route_by: Option<&str>,
        output: &Type,
    ) {
        let at = |key: &str| pointer_push(pointer, key);
        if kind == VerbKind::Condition {
            match route_by {
                None => {
                    if !map.contains_key("routeBy") {
                        let span = self.spans.anchor_span(pointer);
                        self.report(span, "a condition verb must name its routing output in `routeBy`")
                            .help = Some("`routeBy` names a required output property of type boolean or string enum".into());
                    }
                }
                Some(port) => self.check_route_by(port, &at("routeBy"), output),
            }
        } else if map.contains_key("routeBy") {
            let span = self.spans.key_span(&at("routeBy"));
            self.report(
                span,
                format!(
                    "`routeBy` only applies to condition verbs, not to a {}",
                    kind.as_str()
                ),
            );
        }
        if kind != VerbKind::Gate && map.contains_key("handles") {
            let span = self.spans.key_span(&at("handles"));
            let diagnostic = self.report(
                span,
                format!(
                    "`handles` only applies to gate verbs, not to a {}",
                    kind.as_str()
                ),
            );
            if kind == VerbKind::Condition {
                diagnostic.help =
                    Some("a condition's handles come from its `routeBy` output".into());
            }
        }
        if !matches!(kind, VerbKind::Gate | VerbKind::Trigger)
            && map.contains_key("eventSubscription")
        {
            let span = self.spans.key_span(&at("eventSubscription"));
            self.report(
                span,
                format!(
                    "`eventSubscription` only applies to gate and trigger verbs, not to a {}",
                    kind.as_str()
                ),
            );
        }
    }

    fn check_route_by(&mut self, port: &str, pointer: &str, output: &Type) {
        let Type::Object(object) = output else {
            self.at_value(
                pointer,
                format!("`routeBy: {port}` needs an `outputSchema` that describes an object"),
            );
            return;
        };
        let Some(field) = object.fields.get(port) else {
            let suggestion =
                did_you_mean(port, object.fields.keys().map(String::as_str)).map(str::to_string);
            let diagnostic = self.at_value(
                pointer,
                format!("`routeBy` names `{port}`, which the outputSchema does not declare"),
            );
            if let Some(s) = suggestion {
                diagnostic.help = Some(format!("did you mean `{s}`?"));
            }
            return;
        };
        match &field.ty {
            Type::Bool => {}
            Type::Enum(cases) => {
                if cases.iter().any(|c| c == DEFAULT_HANDLE) {
                    self.at_value(pointer, format!("the enum of `{port}` contains `default`, which is reserved for `branches.default`"));
                }
            }
            other => {
                self.at_value(pointer, format!("`routeBy` output `{port}` is {other}; a condition routes by a boolean or a string enum"));
                return;
            }
        }
        if !field.required {
            self.at_value(
                pointer,
                format!(
                    "`routeBy` output `{port}` must be listed in the outputSchema's `required`"
                ),
            );
        }
    }

    fn handles(&mut self, value: &Value, pointer: &str) -> Vec<String> {
        let Value::Array(items) = value else {
            self.at_value(pointer, "`handles` must be a list of handle names");
            return Vec::new();
        };
        if items.is_empty() {
            self.at_value(pointer, "`handles` must name at least one handle; omit it for a gate that continues with `next`");
        }
        let mut handles: Vec<String> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_pointer = pointer_push(pointer, &i.to_string());
            let Some(name) = self.string(item, &item_pointer, "a handle") else {
                continue;
            };
            if let Some(problem) = handle_error(name) {
                self.at_value(&item_pointer, problem);
            } else if handles.iter().any(|h| h == name) {
                self.at_value(&item_pointer, format!("handle `{name}` is listed twice"));
            } else {
                handles.push(name.to_string());
            }
        }
        handles
    }

    fn event_subscription(&mut self, value: &Value, pointer: &str) -> Vec<String> {
        let Some(text) = self.string(value, pointer, "`eventSubscription`") else {
            return Vec::new();
        };
        let mut names = Vec::new();
        for name in text.split('|').map(str::trim) {
            if let Some(problem) = event_type_error(name) {
                self.at_value(pointer, problem).help =
                    Some("list event types separated by `|`".into());
            } else {
                names.push(name.to_string());
            }
        }
        names
    }

    fn date(&mut self, map: &Map<String, Value>, pointer: &str, key: &str) -> Option<Date> {
        let text = self.optional_string(map, pointer, key)?;
        let date = parse_date(&text);
        if date.is_none() {
            self.at_value(
                &pointer_push(pointer, key),
                format!("`{text}` is not a date"),
            )
            .help = Some("write `YYYY-MM-DD`".into());
        }
        date
    }

    fn deprecation(
        &mut self,
        map: &Map<String, Value>,
        pointer: &str,
        plugin: &str,
        major: u32,
    ) -> Option<Deprecation> {
        let since = self.date(map, pointer, "deprecatedSince");
        let after = self.date(map, pointer, "deprecatedAfter");
        let successor = self.optional_string(map, pointer, "successor");
        let successor_pointer = pointer_push(pointer, "successor");
        let successor = successor.and_then(|text| {
            if text.contains(':') {
                match crate::registry::VerbRef::parse(&text) {
                    Ok(reference) => Some(reference.to_string()),
                    Err(problem) => {
                        self.at_value(&successor_pointer, problem);
                        None
                    }
                }
            } else if let Some(problem) = verb_id_error(&text) {
                self.at_value(&successor_pointer, problem);
                None
            } else {
                Some(format!("{plugin}@{major}:{text}"))
            }
        });
        if let (Some(since), Some(after)) = (since, after)
            && after < since
        {
            self.at_value(
                &pointer_push(pointer, "deprecatedAfter"),
                "`deprecatedAfter` is before `deprecatedSince`",
            );
        }
        let has_since = map.contains_key("deprecatedSince");
        for key in ["deprecatedAfter", "successor"] {
            if map.contains_key(key) && !has_since {
                let span = self.spans.key_span(&pointer_push(pointer, key));
                self.report(span, format!("`{key}` needs `deprecatedSince`"));
            }
        }
        Some(Deprecation {
            since: since?,
            after,
            successor,
        })
    }
}

fn event_owned_by(name: &str, plugin: &str) -> bool {
    let mut segments = name.split('.');
    let first = segments.next();
    let second = segments.next();
    first == Some(plugin) || second == Some(plugin)
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(document: Value) -> (Option<Plugin>, Vec<String>) {
        let (plugin, diagnostics) = parse_plugin(
            &document,
            &SpanTable::new(),
            PluginOrigin::File("t.yaml".into()),
        );
        assert!(diagnostics.iter().all(|d| d.code == Code::BAD_MANIFEST));
        (plugin, diagnostics.into_iter().map(|d| d.message).collect())
    }

    fn with_verbs(verbs: Value) -> Value {
        json!({
            "apiVersion": API_VERSION,
            "kind": "Plugin",
            "metadata": {"name": "acme", "version": "1.0.0"},
            "providers": {"tracker": [{"id": "acme", "capabilities": ["issues"]}]},
            "verbs": verbs,
        })
    }

    fn messages_of(verbs: Value) -> Vec<String> {
        load(with_verbs(verbs)).1
    }

    fn assert_one(messages: &[String], needle: &str) {
        assert!(
            messages.iter().filter(|m| m.contains(needle)).count() == 1,
            "expected one message containing {needle:?} in {messages:#?}"
        );
    }

    #[test]
    fn auth_scopes_are_drawn_from_the_plugin_auth() {
        let mut document = with_verbs(json!([
            {"id": "acme.issue.read", "sideEffectClass": "read-only", "authScopes": ["read"]},
            {"id": "acme.issue.write", "sideEffectClass": "read-only", "authScopes": ["writ"]},
        ]));
        document["auth"] = json!({"type": "oauth2", "scopes": ["read", "write", "read"]});
        let (plugin, messages) = load(document.clone());
        assert_one(
            &messages,
            "scope `writ` is not one of the plugin's `auth.scopes`",
        );
        assert_one(&messages, "scope `read` is listed twice");
        assert_eq!(messages.len(), 2, "{messages:#?}");
        let plugin = plugin.expect("plugin");
        let auth = plugin.auth.as_ref().expect("auth");
        assert_eq!(
            (auth.kind, auth.scopes.as_slice()),
            (
                AuthKind::OAuth2,
                &["read".to_string(), "write".to_string()][..]
            )
        );
        assert_eq!(
            plugin
                .verb("acme.issue.read")
                .expect("verb")
                .auth_scopes
                .as_deref()
                .unwrap_or_default(),
            ["read"]
        );

        document["auth"] = json!({"type": "oauth", "scopes": []});
        assert_one(
            &load(document.clone()).1,
            "`oauth` is not a known auth type",
        );
        document.as_object_mut().expect("map").remove("auth");
        let messages = load(document).1;
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(
            messages
                .iter()
                .all(|m| m.contains("`authScopes` needs the plugin's `auth`"))
        );
    }

    #[test]
    fn the_manifest_hash_ignores_the_signature_and_key_order() {
        let document = with_verbs(json!([{"id": "acme.a", "sideEffectClass": "read-only"}]));
        let mut signed = document.clone();
        signed["signature"] =
            json!({"keyId": "00", "manifestHash": "sha256:00", "signatureValue": "AA=="});
        let (plugin, messages) = load(signed);
        assert!(messages.is_empty(), "{messages:#?}");
        let plugin = plugin.expect("plugin");
        assert_eq!(plugin.manifest_hash, Some(manifest_hash(&document)));
        assert_eq!(
            plugin.signature.as_ref().map(|s| s.key_id.as_str()),
            Some("00")
        );
        let mut changed = document.clone();
        changed["metadata"]["version"] = json!("1.0.1");
        assert_ne!(manifest_hash(&changed), manifest_hash(&document));
        let mut canonical = String::new();
        write_canonical(
            &json!({"b": [1, "é"], "a": {"d": null, "c": true}}),
            &mut canonical,
        );
        assert_eq!(canonical, r#"{"a":{"c":true,"d":null},"b":[1,"é"]}"#);
        let mut incomplete = document;
        incomplete["signature"] = json!({"keyId": "00"});
        assert_one(&load(incomplete).1, "manifestHash");
    }

    #[test]
    fn versions_parse_strictly() {
        assert_eq!(
            PluginVersion::parse("1.2.0"),
            Some(PluginVersion {
                major: 1,
                minor: 2,
                patch: 0
            })
        );
        for bad in ["1.2", "1.2.0.0", "01.2.0", "1.x.0", "", "1..0", "-1.0.0"] {
            assert_eq!(PluginVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_clean_plugin_loads() {
        let (plugin, messages) = load(with_verbs(json!([
            {"id": "acme.issue.open", "kind": "condition", "sideEffectClass": "read-only", "routeBy": "open",
             "providerId": "acme",
             "inputSchema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
             "outputSchema": {"type": "object", "required": ["open"], "properties": {"open": {"type": "boolean"}}}},
            {"id": "acme.notify", "sideEffectClass": "external-write", "idempotencyKey": "${input.id}",
             "inputSchema": {"properties": {"id": {"type": "string"}}}},
        ])));
        assert!(messages.is_empty(), "{messages:#?}");
        let plugin = plugin.expect("plugin");
        assert_eq!(plugin.pin(), "acme@1");
        let condition = plugin.verb("acme.issue.open").expect("verb");
        assert_eq!(condition.routing(), Routing::Bool { port: "open" });
        assert_eq!(condition.handles(), ["yes", "no"]);
        assert_eq!(condition.route_type(), Some(Type::Bool));
        let action = plugin.verb("acme.notify").expect("verb");
        assert_eq!(action.kind, VerbKind::Action);
        assert_eq!(action.routing(), Routing::Next);
        assert_eq!(action.idempotency_key.as_deref(), Some("${input.id}"));
        // No outputSchema: no outputs at all.
        let Type::Object(output) = action.output_type() else {
            panic!()
        };
        assert!(output.closed && output.fields.is_empty());
    }

    #[test]
    fn header_problems_drop_the_document() {
        let (plugin, messages) = load(json!({"apiVersion": "donmai.dev/v2", "kind": "Plugin",
            "metadata": {"name": "acme", "version": "1.0.0"}}));
        assert!(plugin.is_none());
        assert_one(&messages, "unsupported manifest apiVersion");

        let (plugin, messages) = load(json!({"apiVersion": API_VERSION, "kind": "Workflow",
            "metadata": {"name": "Acme", "version": 1, "descripton": "x"}, "verb": []}));
        assert!(plugin.is_none());
        assert_one(&messages, "`kind: Plugin`");
        assert_one(&messages, "not a plugin name");
        assert_one(&messages, "must be a quoted string");
        assert_one(&messages, "unknown key `descripton`");
        assert_one(&messages, "unknown key `verb`");

        let (_, messages) = load(
            json!({"apiVersion": API_VERSION, "kind": "Plugin", "metadata": {"name": "gate"}}),
        );
        assert_one(&messages, "is reserved");
        assert_one(&messages, "missing `version`");
        let (_, messages) = load(json!([]));
        assert_one(&messages, "must be a mapping");
    }

    #[test]
    fn verb_problems_drop_the_verb_only() {
        let (plugin, messages) = load(with_verbs(json!([
            {"id": "acme.ok", "sideEffectClass": "read-only"},
            {"id": "acme.bad", "sideEffectClass": "read-onyl"},
        ])));
        assert_one(&messages, "`read-onyl` is not a side-effect class");
        let plugin = plugin.expect("plugin");
        assert!(plugin.verb("acme.ok").is_some() && plugin.verb("acme.bad").is_none());
    }

    #[test]
    fn verb_fields_are_checked() {
        let messages = messages_of(json!([
            {"id": "acme.a", "sideEffectClass": "read-only", "knd": "action"},
            {"id": "acme.a", "sideEffectClass": "read-only"},
            {"id": "acme.b", "kind": "condtion", "sideEffectClass": "read-only"},
            {"id": "acme.c"},
            {"id": "other.d", "sideEffectClass": "read-only"},
            {"id": "agent.e", "sideEffectClass": "read-only"},
            {"id": "acme", "sideEffectClass": "read-only"},
            {"id": "acme.Bad", "sideEffectClass": "read-only"},
            {"id": "acme.f", "sideEffectClass": "read-only", "providerId": "acmee"},
        ]));
        assert_one(&messages, "unknown key `knd`");
        assert_one(&messages, "verb `acme.a` is declared twice");
        assert_one(&messages, "`condtion` is not a verb kind");
        assert_one(&messages, "missing `sideEffectClass`");
        assert_one(&messages, "namespace `other`");
        assert_one(&messages, "namespace `donmai`");
        assert_one(&messages, "`acme` is not a verb id");
        assert_one(&messages, "segment `Bad`");
        assert_one(&messages, "provider `acmee` is not declared");
        assert_eq!(messages.len(), 9, "{messages:#?}");
    }

    #[test]
    fn first_party_namespaces_belong_to_donmai() {
        let (plugin, messages) = load(json!({"apiVersion": API_VERSION, "kind": "Plugin",
            "metadata": {"name": "donmai", "version": "3.0.0"},
            "verbs": [{"id": "agent.x", "sideEffectClass": "internal-only"},
                      {"id": "donmai.y", "sideEffectClass": "internal-only"},
                      {"id": "linear.z", "sideEffectClass": "internal-only"}]}));
        assert_one(&messages, "namespace `linear`");
        assert_eq!(plugin.expect("plugin").verbs.len(), 2);
        assert_eq!(verb_owner("gate.ci_check"), "donmai");
        assert_eq!(verb_owner("linear.issue.update"), "linear");
    }

    #[test]
    fn routing_rules() {
        let out = |props: Value, required: Value| json!({"type": "object", "properties": props, "required": required});
        let messages = messages_of(json!([
            {"id": "acme.no_route", "kind": "condition", "sideEffectClass": "read-only"},
            {"id": "acme.missing", "kind": "condition", "sideEffectClass": "read-only", "routeBy": "sise",
             "outputSchema": out(json!({"size": {"enum": ["s", "l"]}}), json!(["size"]))},
            {"id": "acme.string", "kind": "condition", "sideEffectClass": "read-only", "routeBy": "v",
             "outputSchema": out(json!({"v": {"type": "string"}}), json!(["v"]))},
            {"id": "acme.optional", "kind": "condition", "sideEffectClass": "read-only", "routeBy": "v",
             "outputSchema": out(json!({"v": {"type": "boolean"}}), json!([]))},
            {"id": "acme.nullable", "kind": "condition", "sideEffectClass": "read-only", "routeBy": "v",
             "outputSchema": out(json!({"v": {"type": ["boolean", "null"]}}), json!(["v"]))},
            {"id": "acme.reserved", "kind": "condition", "sideEffectClass": "read-only", "routeBy": "v",
             "outputSchema": out(json!({"v": {"enum": ["a", "default"]}}), json!(["v"]))},
            {"id": "acme.action_route", "sideEffectClass": "read-only", "routeBy": "v", "handles": ["a"]},
            {"id": "acme.gate", "kind": "gate", "sideEffectClass": "read-only", "handles": ["ok", "ok", "default", 3, "Bad"],
             "eventSubscription": "acme.done|"},
            {"id": "acme.gate_empty", "kind": "gate", "sideEffectClass": "read-only", "handles": []},
            {"id": "acme.sub", "sideEffectClass": "read-only", "eventSubscription": "acme.done"},
        ]));
        assert_one(&messages, "must name its routing output");
        assert_one(&messages, "names `sise`");
        assert_one(&messages, "is string; a condition routes by");
        assert_one(&messages, "must be listed in the outputSchema's `required`");
        assert_one(&messages, "is bool?");
        assert_one(&messages, "contains `default`");
        assert_one(&messages, "`routeBy` only applies");
        assert_one(&messages, "`handles` only applies");
        assert_one(&messages, "`ok` is listed twice");
        assert_one(&messages, "`default` is reserved");
        assert_one(&messages, "a handle must be a string");
        assert_one(&messages, "`Bad` is not a handle name");
        assert_one(&messages, "`` is not an event type");
        assert_one(&messages, "at least one handle");
        assert_one(&messages, "`eventSubscription` only applies");
    }

    #[test]
    fn switch_and_gate_routing() {
        let (plugin, messages) = load(with_verbs(json!([
            {"id": "acme.size", "kind": "condition", "sideEffectClass": "read-only", "routeBy": "size",
             "outputSchema": {"type": "object", "required": ["size"],
                              "properties": {"size": {"type": "string", "enum": ["s", "m", "l"]}}}},
            {"id": "acme.wait", "kind": "gate", "sideEffectClass": "read-only", "handles": ["passed", "timed-out"],
             "eventSubscription": "acme.done | com.acme.other"},
        ])));
        assert!(messages.is_empty(), "{messages:#?}");
        let plugin = plugin.expect("plugin");
        let size = plugin.verb("acme.size").expect("size");
        assert_eq!(size.handles(), ["s", "m", "l"]);
        assert!(
            matches!(size.routing(), Routing::Switch { port: "size", cases } if cases.len() == 3)
        );
        assert_eq!(size.route_type(), Some(Type::enumeration(["s", "m", "l"])));
        let wait = plugin.verb("acme.wait").expect("wait");
        assert_eq!(wait.handles(), ["passed", "timed-out"]);
        assert_eq!(wait.event_subscription, ["acme.done", "com.acme.other"]);
    }

    #[test]
    fn deprecation_rules() {
        let (plugin, messages) = load(with_verbs(json!([
            {"id": "acme.old", "sideEffectClass": "read-only", "deprecatedSince": "2026-01-01",
             "deprecatedAfter": "2026-06-30", "successor": "acme.new"},
            {"id": "acme.new", "sideEffectClass": "read-only"},
            {"id": "acme.elsewhere", "sideEffectClass": "read-only", "deprecatedSince": "2026-01-01",
             "successor": "other@2:other.verb"},
        ])));
        assert!(messages.is_empty(), "{messages:#?}");
        let plugin = plugin.expect("plugin");
        let old = plugin.verb("acme.old").expect("old");
        let deprecation = old.deprecation.as_ref().expect("deprecated");
        assert_eq!(deprecation.successor.as_deref(), Some("acme@1:acme.new"));
        let day = |text| parse_date(text).expect("date");
        assert_eq!(
            old.deprecation_status(day("2025-12-31")),
            DeprecationStatus::Active
        );
        assert_eq!(
            old.deprecation_status(day("2026-01-01")),
            DeprecationStatus::Deprecated
        );
        assert_eq!(
            old.deprecation_status(day("2026-06-30")),
            DeprecationStatus::Deprecated
        );
        assert_eq!(
            old.deprecation_status(day("2026-07-01")),
            DeprecationStatus::Removed
        );
        let elsewhere = plugin.verb("acme.elsewhere").expect("elsewhere");
        assert_eq!(
            elsewhere.deprecation_status(day("2099-01-01")),
            DeprecationStatus::Deprecated
        );

        let messages = messages_of(json!([
            {"id": "acme.a", "sideEffectClass": "read-only", "deprecatedSince": "2026-02-30"},
            {"id": "acme.b", "sideEffectClass": "read-only", "deprecatedSince": "2026-03-01", "deprecatedAfter": "2026-01-01"},
            {"id": "acme.c", "sideEffectClass": "read-only", "deprecatedAfter": "2026-01-01", "successor": "acme.d"},
            {"id": "acme.e", "sideEffectClass": "read-only", "deprecatedSince": "2026-03-01", "successor": "acme.nwe"},
            {"id": "acme.f", "sideEffectClass": "read-only", "deprecatedSince": "2026-03-01", "successor": "linear@x:linear.y"},
            {"id": "acme.new", "sideEffectClass": "read-only"},
        ]));
        assert_one(&messages, "`2026-02-30` is not a date");
        assert_one(&messages, "before `deprecatedSince`");
        assert_one(&messages, "`deprecatedAfter` needs `deprecatedSince`");
        assert_one(&messages, "`successor` needs `deprecatedSince`");
        assert_one(&messages, "successor `acme.nwe` is not a verb of acme@1");
        assert_one(&messages, "not a major version");
    }

    #[test]
    fn events_are_checked() {
        let mut document = with_verbs(json!([]));
        document["events"] = json!({
            "webhookPath": "hooks/acme",
            "types": [
                {"type": "acme.created", "payloadSchema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}},
                {"type": "com.acme.updated", "payloadSchema": {}},
                {"type": "acme.created", "payloadSchema": {}},
                {"type": "github.pr.opened", "payloadSchema": {}},
                {"type": "acme.nopayload"},
                {"type": "acme.bad", "payloadSchema": {"anyOf": []}},
                {"type": "acme..x", "payloadSchema": {}},
            ]
        });
        let (plugin, messages) = load(document);
        assert_one(&messages, "must start with `/`");
        assert_one(&messages, "`acme.created` is declared twice");
        assert_one(&messages, "not in plugin `acme`'s namespace");
        assert_one(&messages, "missing `payloadSchema`");
        assert_one(&messages, "`anyOf` is not supported");
        assert_one(&messages, "is not an event type");
        assert_eq!(messages.len(), 6, "{messages:#?}");
        let plugin = plugin.expect("plugin");
        let names: Vec<&str> = plugin.event_types.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["acme.created", "com.acme.updated"]);
        assert_eq!(
            plugin
                .event_type("acme.created")
                .expect("event")
                .payload_type()
                .to_string(),
            "{id: string}"
        );
    }

    fn with_endpoint(endpoint: Value) -> (Option<Plugin>, Vec<String>) {
        let mut document = with_verbs(json!([{"id": "acme.ping", "sideEffectClass": "read-only"}]));
        document["endpoint"] = endpoint;
        load(document)
    }

    #[test]
    fn endpoints_load() {
        for url in [
            "http://127.0.0.1:8080/verbs",
            "https://plugins.example.com",
            "HTTPS://plugins.example.com/acme?tenant=a%20b",
            "http://[::1]:9000/v1/",
            "http://localhost",
            "http://my_host.internal.:80/x@y",
        ] {
            let (plugin, messages) = with_endpoint(json!(url));
            assert!(messages.is_empty(), "{url}: {messages:#?}");
            assert_eq!(plugin.expect("plugin").endpoint.as_deref(), Some(url));
        }
        let (plugin, messages) = load(with_verbs(json!([])));
        assert!(messages.is_empty());
        let plugin = plugin.expect("plugin");
        assert_eq!(plugin.endpoint, None);
        assert_eq!(plugin.endpoint_timeout_ms, None);
    }

    #[test]
    fn bad_endpoints_are_refused_and_only_the_endpoint_is_dropped() {
        let cases = [
            (json!(""), "the endpoint is empty"),
            (json!("plugins.example.com/acme"), "not an absolute URL"),
            (json!("/verbs"), "not an absolute URL"),
            (
                json!("ftp://example.com"),
                "`ftp` endpoints are not supported",
            ),
            (json!("file:///tmp/x"), "`file` endpoints are not supported"),
            (
                json!("http://user:hunter2@example.com/v"),
                "must not carry credentials",
            ),
            (
                json!("https://token@example.com"),
                "must not carry credentials",
            ),
            (json!("http:///verbs"), "has no host"),
            (json!("http://:8080/verbs"), "has no host"),
            (json!("http://exa mple.com"), "contains a space"),
            (
                json!("http://example.com/\u{7}"),
                "control character U+0007",
            ),
            (json!("http://exämple.com"), "non-ASCII character `ä`"),
            (json!("http://example..com"), "is not a host name"),
            (json!("http://ex!ample.com"), "is not a host name"),
            (json!("http://example.com:0"), "`0` is not a port number"),
            (
                json!("http://example.com:65536"),
                "`65536` is not a port number",
            ),
            (json!("http://example.com:"), "`` is not a port number"),
            (
                json!("http://example.com:80x"),
                "`80x` is not a port number",
            ),
            (json!("http://[::1/verbs"), "no closing `]`"),
            (json!("http://[zz]/"), "is not an IPv6 address"),
            (json!("http://[::1]x/"), "between its IPv6 address"),
            (json!("http://example.com/v#part"), "has a fragment"),
            (json!("http://example.com/{verb}"), "contains `{`"),
            (json!("http://example.com/100%"), "`%` that is not followed"),
            (json!("http://example.com/%zz"), "`%` that is not followed"),
            (json!(8080), "`endpoint` must be a string, not a number"),
            (
                json!({"url": "http://x"}),
                "`endpoint` must be a string, not a mapping",
            ),
        ];
        for (endpoint, needle) in cases {
            let (plugin, messages) = with_endpoint(endpoint.clone());
            assert_eq!(messages.len(), 1, "{endpoint}: {messages:#?}");
            assert_one(&messages, needle);
            let plugin = plugin.unwrap_or_else(|| panic!("{endpoint}: the plugin is kept"));
            assert_eq!(plugin.endpoint, None);
            assert!(plugin.verb("acme.ping").is_some());
        }
        // The password is never repeated in a message.
        let (_, messages) = with_endpoint(json!("http://user:hunter2@example.com/v"));
        assert!(!messages[0].contains("hunter2"), "{messages:#?}");
    }

    #[test]
    fn endpoint_timeouts_are_checked() {
        let timeout = |value: Value| {
            let mut document = with_verbs(json!([]));
            document["endpointTimeoutMs"] = value;
            load(document)
        };
        let (plugin, messages) = timeout(json!(60000));
        assert!(messages.is_empty(), "{messages:#?}");
        assert_eq!(plugin.expect("plugin").endpoint_timeout_ms, Some(60_000));
        let (plugin, messages) = timeout(json!(MAX_ENDPOINT_TIMEOUT_MS));
        assert!(messages.is_empty(), "{messages:#?}");
        assert_eq!(
            plugin.expect("plugin").endpoint_timeout_ms,
            Some(MAX_ENDPOINT_TIMEOUT_MS)
        );
        for (value, shown) in [
            (json!(0), "not `0`"),
            (json!(-5), "not `-5`"),
            (json!(1.5), "not `1.5`"),
            (json!(MAX_ENDPOINT_TIMEOUT_MS + 1), "not `86400001`"),
            (json!("30s"), "not a string"),
        ] {
            let (plugin, messages) = timeout(value.clone());
            assert_eq!(messages.len(), 1, "{value}: {messages:#?}");
            assert_one(&messages, "whole number of milliseconds");
            assert_one(&messages, shown);
            assert_eq!(plugin.expect("plugin").endpoint_timeout_ms, None);
        }
        let (_, messages) = load(json!({"apiVersion": API_VERSION, "kind": "Plugin",
            "metadata": {"name": "acme", "version": "1.0.0"}, "endpont": "http://x"}));
        assert_one(&messages, "unknown key `endpont`");
    }

    #[test]
    fn providers_are_checked() {
        let mut document = with_verbs(json!([]));
        document["providers"] =
            json!({"tracker": [{"id": "a"}, {"id": "a"}, {"klass": "x"}], "vcs": "github"});
        let (plugin, messages) = load(document);
        assert_one(&messages, "provider `a` is declared twice");
        assert_one(&messages, "unknown key `klass`");
        assert_one(&messages, "missing `id`");
        assert_one(&messages, "must be a list of providers");
        assert_eq!(plugin.expect("plugin").providers.len(), 1);
    }
}
