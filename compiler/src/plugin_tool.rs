//! Plugin authors' tools and the trust rule for third-party manifests:
//! `donmaic plugin check` (a manifest validated as `donmaic check` loads it,
//! plus its `idempotencyKey` templates type-checked and its signature
//! verified), `donmaic plugin sign`, and [`check_signature`], which the
//! project's `[plugins] requireSignatures` applies to every third-party
//! manifest it loads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use donmai_grammar::expr::{Expr, ExprKind, Name};
use donmai_grammar::template::{Segment, parse_template};
use donmai_grammar::{Code, Diagnostic, SourceFile, Span};
use donmai_runtime::keys::{KeyId, Rejection, TrustedKeys, hex, load_signing_key, unhex};
use donmai_stdlib::manifest::{Plugin, PluginOrigin, Verb};
use donmai_stdlib::registry::{MANIFEST_FILE, Registry};
use donmai_stdlib::types::{Field, ObjectType, Type};
use ed25519_dalek::{Signature, Signer};
use std::sync::Arc;

use crate::cli::{PluginArgs, PluginCommand};
use crate::render::{Format, RenderOptions, render};
use crate::report::{CheckReport, FileReport, plural};
use crate::typeck::check_expr;

/// What a signature covers: a fixed context, then the manifest hash. The
/// context keeps a manifest signature from being valid as any other
/// donmai signature made with the same key.
const SIGNING_CONTEXT: &[u8] = b"donmai plugin manifest v1\0";

/// The bytes a manifest's signature signs.
pub fn signed_message(manifest_hash: &[u8; 32]) -> Vec<u8> {
    let mut message = SIGNING_CONTEXT.to_vec();
    message.extend_from_slice(manifest_hash);
    message
}

/// `sha256:<hex>`, as a `manifestHash` writes a hash.
pub fn hash_text(hash: &[u8; 32]) -> String {
    format!("sha256:{}", hex(hash))
}

/// Where a manifest's signature stands against a set of trusted keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    Unsigned,
    /// The content changed after signing.
    HashMismatch {
        signed: String,
        actual: String,
    },
    /// `keyId` or `signatureValue` cannot be read.
    Malformed(String),
    /// Signed by a key the set does not hold (the content is unchanged).
    UntrustedKey(String),
    /// A trusted key has the id but did not make this signature.
    BadSignature(String),
    Valid(String),
}

/// Checks `plugin`'s signature against `trusted`.
pub fn check_signature(plugin: &Plugin, trusted: &TrustedKeys) -> SignatureCheck {
    let (Some(signature), Some(hash)) = (&plugin.signature, &plugin.manifest_hash) else {
        return SignatureCheck::Unsigned;
    };
    let actual = hash_text(hash);
    if signature.manifest_hash != actual {
        return SignatureCheck::HashMismatch {
            signed: signature.manifest_hash.clone(),
            actual,
        };
    }
    let key_id = match signature.key_id.parse::<KeyId>() {
        Ok(id) => id,
        Err(_) => {
            return SignatureCheck::Malformed(format!(
                "`keyId` must be 16 hex digits, not `{}`",
                signature.key_id
            ));
        }
    };
    let value = match unhex(&signature.signature_value)
        .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
    {
        Some(bytes) => Signature::from_bytes(&bytes),
        None => {
            return SignatureCheck::Malformed(
                "`signatureValue` must be 128 hex digits (an Ed25519 signature)".into(),
            );
        }
    };
    match trusted.check(key_id, &signed_message(hash), &value) {
        Ok(()) => SignatureCheck::Valid(key_id.to_string()),
        Err(Rejection::UntrustedKey) => SignatureCheck::UntrustedKey(key_id.to_string()),
        Err(Rejection::BadSignature) => SignatureCheck::BadSignature(key_id.to_string()),
    }
}

/// The diagnostic for a signature that does not pass, if any. With
/// `required`, an unsigned manifest or an unknown key fails too; without,
/// only a signature that is provably wrong does.
pub fn signature_diagnostic(
    plugin: &Plugin,
    trusted: &TrustedKeys,
    required: bool,
) -> Option<Diagnostic> {
    let at = plugin.signature.as_ref().map_or(plugin.span, |s| s.span);
    let pin = plugin.pin();
    let (message, help) = match check_signature(plugin, trusted) {
        SignatureCheck::Valid(_) => return None,
        SignatureCheck::Unsigned if !required => return None,
        SignatureCheck::UntrustedKey(_) if !required && trusted.is_empty() => return None,
        SignatureCheck::Unsigned => (
            format!("`{pin}` is not signed, and this project requires signed plugins"),
            "ask its publisher for a signed release, or sign it yourself with `donmaic plugin sign` and trust that key in `[plugins] trustedKeys`".to_string(),
        ),
        SignatureCheck::HashMismatch { signed, actual } => (
            format!("`{pin}` changed after it was signed"),
            format!("the signature covers {signed}, the manifest is now {actual}; get the publisher's release again, or re-sign it"),
        ),
        SignatureCheck::Malformed(problem) => (
            format!("the signature of `{pin}` cannot be read: {problem}"),
            "`donmaic plugin sign` writes a valid block".to_string(),
        ),
        SignatureCheck::UntrustedKey(id) => (
            format!("`{pin}` is signed by key {id}, which this project does not trust"),
            "add the publisher's public key to `[plugins] trustedKeys` in donmai.toml".to_string(),
        ),
        SignatureCheck::BadSignature(id) => (
            format!("the signature of `{pin}` does not verify with trusted key {id}"),
            "the manifest or its signature was altered; get the publisher's release again".to_string(),
        ),
    };
    Some(Diagnostic::new(Code::BAD_MANIFEST, at, message).with_help(help))
}

/// `plugin.yaml` in `path` when it is a folder, else `path`.
fn manifest_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(MANIFEST_FILE)
    } else {
        path.to_path_buf()
    }
}

use crate::cli::usage_error as fail;

/// Runs `donmaic plugin …`.
pub fn run(args: PluginArgs) -> ExitCode {
    match args.command {
        PluginCommand::Check { path, key, format } => check_command(&path, &key, format),
        PluginCommand::Sign { path, key } => sign_command(&path, &key),
    }
}

/// Loads the manifest at `path` beside the bundled plugins, as a project
/// would: its source and everything loading and linting it reported.
fn load(path: &Path) -> Result<(Arc<SourceFile>, Registry, Vec<Diagnostic>), String> {
    let file = manifest_path(path);
    let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{}: the manifest is not UTF-8", file.display()))?;
    let source = Arc::new(SourceFile::new(file.clone(), text));
    let (mut registry, _) = Registry::load_bundled();
    let diagnostics = registry.add_manifest(&source, PluginOrigin::File(file));
    Ok((source, registry, diagnostics))
}

fn plugins_of<'r>(registry: &'r Registry, source: &SourceFile) -> Vec<&'r Plugin> {
    registry
        .plugins()
        .filter(|p| matches!(&p.origin, PluginOrigin::File(path) if path == source.path()))
        .collect()
}

fn check_command(path: &Path, keys: &[PathBuf], format: Format) -> ExitCode {
    let (source, registry, mut diagnostics) = match load(path) {
        Ok(loaded) => loaded,
        Err(message) => return fail(&message),
    };
    let trusted = match TrustedKeys::load(keys) {
        Ok(trusted) => trusted,
        Err(error) => return fail(&error.to_string()),
    };
    let plugins = plugins_of(&registry, &source);
    for plugin in &plugins {
        diagnostics.extend(lint_plugin(&source, plugin));
        if let Some(problem) = signature_diagnostic(plugin, &trusted, !keys.is_empty()) {
            diagnostics.push(problem);
        }
    }
    let report = CheckReport {
        files: vec![FileReport::new((*source).clone(), diagnostics)],
        failures: Vec::new(),
        files_checked: 1,
    };
    let color = format == Format::Human && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let rendered = render(
        &report,
        format,
        &RenderOptions {
            color,
            deny_warnings: false,
        },
    );
    print!("{rendered}");
    if !rendered.is_empty() && !rendered.ends_with('\n') {
        println!();
    }
    if format == Format::Human {
        for plugin in &plugins {
            let signature = match check_signature(plugin, &trusted) {
                SignatureCheck::Valid(id) => format!("signed by trusted key {id}"),
                SignatureCheck::UntrustedKey(id) => {
                    format!("signed by key {id} (give --key to verify it)")
                }
                SignatureCheck::Unsigned => "unsigned".into(),
                _ => "signature invalid".into(),
            };
            eprintln!(
                "{}: {}, {}, {signature}",
                plugin.pin(),
                plural(plugin.verbs.len(), "verb"),
                plural(plugin.event_types.len(), "event type")
            );
        }
    }
    ExitCode::from(if report.summary().errors > 0 { 1 } else { 0 })
}

/// What `donmaic plugin check` adds to loading: every verb's
/// `idempotencyKey` parsed and type-checked (see below).
pub fn lint_plugin(source: &SourceFile, plugin: &Plugin) -> Vec<Diagnostic> {
    plugin
        .verbs
        .iter()
        .flat_map(|verb| idempotency_key_problems(source, verb))
        .collect()
}

/// An `idempotencyKey` must parse as a template and type-check against the
/// verb's inputs (`input`) and step (`step.id`): otherwise the first call
/// fails at run time, or the key silently dedupes the wrong calls.
fn idempotency_key_problems(source: &SourceFile, verb: &Verb) -> Vec<Diagnostic> {
    let (Some(key), Some(span)) = (&verb.idempotency_key, verb.idempotency_key_span) else {
        return Vec::new();
    };
    // Template offsets map onto the file when the scalar is written
    // without escapes (the usual case); otherwise onto the whole value.
    let written = source.slice(span);
    let inner = written
        .strip_prefix('"')
        .and_then(|w| w.strip_suffix('"'))
        .or_else(|| {
            written
                .strip_prefix('\'')
                .and_then(|w| w.strip_suffix('\''))
        })
        .unwrap_or(written);
    let base = if inner == key {
        Some(span.start + (written.len() - inner.len()) / 2)
    } else {
        None
    };
    let place = |local: Span| match base {
        Some(base) => Span::new(base + local.start, base + local.end),
        None => span,
    };
    let template = parse_template(key);
    let mut problems: Vec<Diagnostic> = template
        .diagnostics
        .iter()
        .map(|d| {
            Diagnostic::new(
                Code::BAD_MANIFEST,
                place(d.span),
                format!(
                    "the idempotencyKey of `{}` is not a valid template: {}",
                    verb.id, d.message
                ),
            )
        })
        .collect();
    let mut step_fields = BTreeMap::new();
    step_fields.insert(
        "id".to_string(),
        Field {
            ty: Type::String,
            required: true,
        },
    );
    let mut env: BTreeMap<String, Type> = BTreeMap::new();
    env.insert("input".into(), verb.input_type());
    env.insert(
        "step".into(),
        Type::Object(Arc::new(ObjectType {
            fields: step_fields,
            closed: true,
        })),
    );
    let mut has_expression = false;
    for segment in &template.segments {
        let Segment::Expr { expr, .. } = segment else {
            continue;
        };
        has_expression = true;
        let (_, found) = check_expr(expr, &env);
        problems.extend(found.into_iter().map(|mut d| {
            d.message = format!("in the idempotencyKey of `{}`: {}", verb.id, d.message);
            d.span = place(d.span);
            d.fix = None;
            d
        }));
        if let Type::Object(inputs) = verb.input_type() {
            absent_input_reads(expr, &inputs, &mut |field: &Name| {
                problems.push(
                    Diagnostic::new(
                        Code::BAD_MANIFEST,
                        place(field.span),
                        format!(
                            "the idempotencyKey of `{}` reads the optional input `{}`, which fails when a step leaves it out",
                            verb.id, field.text
                        ),
                    )
                    .with_help(format!(
                        "an input a step does not write is absent, not null: read it as `input?.{}` (with `?? ''` for a default)",
                        field.text
                    )),
                );
            });
        }
    }
    if !has_expression && template.diagnostics.is_empty() {
        problems.push(
            Diagnostic::new(
                Code::BAD_MANIFEST,
                span,
                format!("the idempotencyKey of `{}` is the same for every call", verb.id),
            )
            .with_help("a key names the effect, e.g. `${input.issueId}:${input.status}`; identical keys make the provider drop every call after the first"),
        );
    }
    problems
}

/// Calls `found` for each `input.<field>` (not `input?.<field>`) in `expr`
/// whose field is an optional input: a step that leaves the input out
/// makes that read an error, `??` or not.
fn absent_input_reads(expr: &Expr, inputs: &ObjectType, found: &mut dyn FnMut(&Name)) {
    if let ExprKind::Select {
        operand,
        field,
        optional: false,
    } = &expr.kind
        && matches!(&operand.kind, ExprKind::Ident(name) if name.text == "input")
        && inputs.fields.get(&field.text).is_some_and(|f| !f.required)
    {
        found(field);
    }
    for child in expr.children() {
        absent_input_reads(child, inputs, found);
    }
}

fn sign_command(path: &Path, key_path: &Path) -> ExitCode {
    let (source, registry, diagnostics) = match load(path) {
        Ok(loaded) => loaded,
        Err(message) => return fail(&message),
    };
    if diagnostics.iter().any(Diagnostic::is_error) {
        let report = CheckReport {
            files: vec![FileReport::new((*source).clone(), diagnostics)],
            failures: Vec::new(),
            files_checked: 1,
        };
        print!(
            "{}",
            render(&report, Format::Human, &RenderOptions::default())
        );
        eprintln!("error: fix the manifest before signing it");
        return ExitCode::from(1);
    }
    let key = match load_signing_key(key_path) {
        Ok(key) => key,
        Err(error) => return fail(&error.to_string()),
    };
    let key_id = KeyId::of(&key.verifying_key()).to_string();
    let mut plugins = plugins_of(&registry, &source);
    plugins.sort_by_key(|p| p.span.start);
    let text = source.text();
    let mut signed = String::with_capacity(text.len() + 256 * plugins.len());
    let mut cursor = 0;
    for plugin in &plugins {
        // Loaded from a file, so hashed.
        let Some(hash) = &plugin.manifest_hash else {
            continue;
        };
        let signature = key.sign(&signed_message(hash));
        let value = hex(&signature.to_bytes());
        let block = format!(
            "signature:\n  keyId: \"{key_id}\"\n  manifestHash: \"{}\"\n  signatureValue: \"{value}\"\n",
            hash_text(hash)
        );
        let (start, end) = match &plugin.signature {
            Some(existing) => top_level_entry(text, existing.span.start),
            None => {
                let at = document_end(text, plugin.span.start);
                (at, at)
            }
        };
        signed.push_str(&text[cursor..start]);
        if !signed.is_empty() && !signed.ends_with('\n') {
            signed.push('\n');
        }
        signed.push_str(&block);
        cursor = end;
    }
    signed.push_str(&text[cursor..]);
    let file = manifest_path(path);
    if let Err(error) = write_atomically(&file, &signed) {
        return fail(&format!("{}: {error}", file.display()));
    }
    eprintln!(
        "signed {} with key {key_id}",
        plugins
            .iter()
            .map(|p| p.pin())
            .collect::<Vec<_>>()
            .join(", ")
    );
    ExitCode::SUCCESS
}

/// The byte range of the top-level entry whose key starts at `key_start`:
/// its line and every following line that is indented, blank or a comment.
fn top_level_entry(text: &str, key_start: usize) -> (usize, usize) {
    let start = text[..key_start].rfind('\n').map_or(0, |i| i + 1);
    let mut end = text[key_start..]
        .find('\n')
        .map_or(text.len(), |i| key_start + i + 1);
    while end < text.len() {
        let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
        let line = &text[end..line_end];
        if line.starts_with([' ', '\t']) {
            end = line_end;
        } else {
            break;
        }
    }
    (start, end)
}

/// Where the YAML document holding `offset` ends: the start of its `---`
/// or `...` line, or the end of the text.
fn document_end(text: &str, offset: usize) -> usize {
    let mut at = text[offset..]
        .find('\n')
        .map_or(text.len(), |i| offset + i + 1);
    while at < text.len() {
        let line = &text[at..];
        if line.starts_with("---") || line.starts_with("...") {
            return at;
        }
        at = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
    }
    text.len()
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.donmaic-sign"));
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, path)
}
