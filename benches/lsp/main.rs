//! `lsp-bench`: latency of language servers as an editor sees it.
//!
//! Drives `donmai-lsp`, yaml-language-server (the donmai workflow against
//! the grammar's JSON Schema) and GitHub's `@actions/languageserver` (a
//! GitHub Actions workflow of the same line count) as real clients do:
//! spawn, `initialize`, open a document, then one-character `didChange`
//! edits, alternately inserting and deleting so the text stays the same,
//! each timed from sending the change to receiving its
//! `publishDiagnostics`. Also start-up to the first diagnostics, and
//! completion and hover latency on `donmai-lsp`. `benches/lsp/run.sh`
//! builds, installs the npm servers (pinned) and runs it.

mod client;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use client::{Client, Received, editor_responder, median, percentile};
use donmai_bench::{DONMAI_TOML, donmai_workflow, github_jobs_for_lines, github_workflow};
use serde_json::{Value, json};

const USAGE: &str = "\
usage: lsp-bench [options]
  --donmai-lsp PATH    the donmai-lsp binary (needed for the donmai server)
  --npm DIR            folder whose node_modules holds yaml-language-server
                       and @actions/languageserver (needed for yaml, actions)
  --node PATH          node (default: node)
  --schema PATH        the workflow JSON Schema (default:
                       grammar/schema/workflow.schema.json)
  --work DIR           scratch folder for documents and server logs
                       (default: target/lsp-bench)
  --servers LIST       donmai,yaml,actions (default: all three)
  --sizes LIST         workflow sizes in steps (default: 100,1000,5000)
  --edits N            measured edits per document and kind of edit (200)
  --warmup N           unmeasured edits before them (20)
  --typing-ms N        pause between measured edits, as between keystrokes
                       (default 0: each edit right after the last answer)
  --yaml-sizes LIST    sizes for yaml-language-server (default: --sizes)
  --actions-sizes LIST sizes for actions-languageserver (default: --sizes)
  --node-edits N       measured edits for them (default: --edits)
  --node-warmup N      warm-up edits for them (default: --warmup)
  --budget-secs S      stop a series after S seconds once --min-edits are in (90)
  --min-edits N        (30)
  --timeout-secs S     longest wait for any one answer (60)
  --runs N             repeat everything N times (1)
  --startups N         start-ups to first diagnostics per server (donmai: N,
                       node servers: N/4, at least 3) (20)
  --startup-steps N    size of the start-up document (1000)
  --queries N          completion and hover requests per series (200)
  --query-steps N      size of the completion/hover document (1000)
  --json PATH          also write every sample as JSON";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Donmai,
    Yaml,
    Actions,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Donmai => "donmai-lsp",
            Kind::Yaml => "yaml-language-server",
            Kind::Actions => "actions-languageserver",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Kind::Donmai => "donmai",
            Kind::Yaml => "yaml",
            Kind::Actions => "actions",
        }
    }
}

struct Options {
    donmai_lsp: Option<PathBuf>,
    npm: Option<PathBuf>,
    node: PathBuf,
    schema: PathBuf,
    work: PathBuf,
    servers: Vec<Kind>,
    sizes: Vec<usize>,
    edits: usize,
    warmup: usize,
    typing: Duration,
    yaml_sizes: Option<Vec<usize>>,
    actions_sizes: Option<Vec<usize>>,
    timeout: Duration,
    node_edits: Option<usize>,
    node_warmup: Option<usize>,
    budget: Duration,
    min_edits: usize,
    runs: usize,
    startups: usize,
    startup_steps: usize,
    queries: usize,
    query_steps: usize,
    json: Option<PathBuf>,
}

impl Options {
    /// Warm-up and measured edits for a server.
    fn counts(&self, kind: Kind) -> (usize, usize) {
        match kind {
            Kind::Donmai => (self.warmup, self.edits),
            _ => (
                self.node_warmup.unwrap_or(self.warmup),
                self.node_edits.unwrap_or(self.edits),
            ),
        }
    }

    /// `--startup-steps`, or for a node server measured only on smaller
    /// documents the largest of those (start-up includes a full check).
    fn startup_size(&self, kind: Kind) -> usize {
        let sizes = self.sizes_of(kind);
        if kind == Kind::Donmai || sizes.contains(&self.startup_steps) {
            return self.startup_steps;
        }
        let below = sizes.iter().filter(|&&s| s <= self.startup_steps).max();
        below
            .or(sizes.iter().min())
            .copied()
            .unwrap_or(self.startup_steps)
    }

    fn sizes_of(&self, kind: Kind) -> &[usize] {
        let specific = match kind {
            Kind::Donmai => None,
            Kind::Yaml => self.yaml_sizes.as_ref(),
            Kind::Actions => self.actions_sizes.as_ref(),
        };
        specific.unwrap_or(&self.sizes)
    }
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        donmai_lsp: None,
        npm: None,
        node: PathBuf::from("node"),
        schema: PathBuf::from("grammar/schema/workflow.schema.json"),
        work: PathBuf::from("target/lsp-bench"),
        servers: vec![Kind::Donmai, Kind::Yaml, Kind::Actions],
        sizes: vec![100, 1000, 5000],
        edits: 200,
        warmup: 20,
        typing: Duration::ZERO,
        yaml_sizes: None,
        actions_sizes: None,
        timeout: Duration::from_secs(60),
        node_edits: None,
        node_warmup: None,
        budget: Duration::from_secs(90),
        min_edits: 30,
        runs: 1,
        startups: 20,
        startup_steps: 1000,
        queries: 200,
        query_steps: 1000,
        json: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("`{flag}` needs a value"))
        };
        let number = |text: String| {
            text.parse::<usize>()
                .map_err(|_| format!("`{flag}` takes a number, not `{text}`"))
        };
        match flag.as_str() {
            "--donmai-lsp" => options.donmai_lsp = Some(PathBuf::from(value()?)),
            "--npm" => options.npm = Some(PathBuf::from(value()?)),
            "--node" => options.node = PathBuf::from(value()?),
            "--schema" => options.schema = PathBuf::from(value()?),
            "--work" => options.work = PathBuf::from(value()?),
            "--servers" => {
                options.servers = value()?
                    .split(',')
                    .map(|name| match name {
                        "donmai" => Ok(Kind::Donmai),
                        "yaml" => Ok(Kind::Yaml),
                        "actions" => Ok(Kind::Actions),
                        other => Err(format!("unknown server `{other}`")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--sizes" => {
                options.sizes = value()?
                    .split(',')
                    .map(|n| number(n.to_string()))
                    .collect::<Result<_, _>>()?
            }
            "--yaml-sizes" | "--actions-sizes" => {
                let sizes = value()?
                    .split(',')
                    .map(|n| number(n.to_string()))
                    .collect::<Result<_, _>>()?;
                if flag == "--yaml-sizes" {
                    options.yaml_sizes = Some(sizes);
                } else {
                    options.actions_sizes = Some(sizes);
                }
            }
            "--timeout-secs" => options.timeout = Duration::from_secs(number(value()?)? as u64),
            "--node-edits" => options.node_edits = Some(number(value()?)?),
            "--node-warmup" => options.node_warmup = Some(number(value()?)?),
            "--edits" => options.edits = number(value()?)?,
            "--warmup" => options.warmup = number(value()?)?,
            "--typing-ms" => options.typing = Duration::from_millis(number(value()?)? as u64),
            "--budget-secs" => options.budget = Duration::from_secs(number(value()?)? as u64),
            "--min-edits" => options.min_edits = number(value()?)?,
            "--runs" => options.runs = number(value()?)?.max(1),
            "--startups" => options.startups = number(value()?)?,
            "--startup-steps" => options.startup_steps = number(value()?)?,
            "--queries" => options.queries = number(value()?)?,
            "--query-steps" => options.query_steps = number(value()?)?,
            "--json" => options.json = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if options.servers.contains(&Kind::Donmai) && options.donmai_lsp.is_none() {
        return Err("`--donmai-lsp PATH` is needed to measure donmai-lsp".to_string());
    }
    let node_servers = options.servers.iter().any(|k| *k != Kind::Donmai);
    if node_servers && options.npm.is_none() {
        return Err("`--npm DIR` is needed for yaml-language-server and actions".to_string());
    }
    if options.edits == 0 || options.node_edits == Some(0) {
        return Err("`--edits` must be at least 1".to_string());
    }
    Ok(options)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_options(&args) {
        Ok(options) => options,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The 1-, 5- and 15-minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

fn file_uri(path: &Path) -> String {
    // Paths here are absolute and made of safe characters (see `Workspace`).
    format!("file://{}", path.display())
}

/// A document the benchmark opens, and where it edits it.
struct Document {
    path: PathBuf,
    uri: String,
    language: &'static str,
    text: String,
    lines: usize,
    /// Edits that keep the file valid (inside a comment).
    comment: Site,
    /// Edits inside an expression (typing in the middle of an identifier).
    expression: Site,
    /// An edit every checker must report, to show it is checking at all.
    probe: Site,
}

/// A position (line, UTF-16 column; the generated text is ASCII).
#[derive(Clone, Copy, Debug)]
struct Site {
    line: usize,
    character: usize,
}

impl Site {
    fn position(self) -> Value {
        json!({"line": self.line, "character": self.character})
    }
}

/// The middle line for which `find` gives a column.
fn middle_site(
    text: &str,
    what: &str,
    find: impl Fn(&str) -> Option<usize>,
) -> Result<Site, String> {
    let found: Vec<Site> = text
        .lines()
        .enumerate()
        .filter_map(|(line, content)| find(content).map(|character| Site { line, character }))
        .collect();
    found
        .get(found.len() / 2)
        .copied()
        .ok_or_else(|| format!("the generated document has no {what}"))
}

fn after(needle: &'static str) -> impl Fn(&str) -> Option<usize> {
    move |line: &str| line.find(needle).map(|at| at + needle.len())
}

fn donmai_document(dir: &Path, steps: usize) -> Result<Document, String> {
    let text = donmai_workflow(steps);
    let path = dir.join(format!("flow-{steps}.yaml"));
    std::fs::write(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(Document {
        uri: file_uri(&path),
        path,
        language: "yaml",
        lines: text.lines().count(),
        comment: middle_site(&text, "stage comment", |l| {
            l.starts_with("    # Stage ").then_some(l.len())
        })?,
        expression: middle_site(&text, "session expression", |l| {
            l.contains("sessionId: \"{{ nodes.dispatch_")
                .then(|| after("output.sessionId")(l))
                .flatten()
        })?,
        probe: middle_site(&text, "action step", |l| {
            (l == "      type: action").then_some(l.len())
        })?,
        text,
    })
}

fn github_document(dir: &Path, lines: usize) -> Result<Document, String> {
    let text = github_workflow(github_jobs_for_lines(lines), 0);
    let path = dir.join(format!("ci-{lines}.yml"));
    std::fs::write(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(Document {
        uri: file_uri(&path),
        path,
        language: "github-actions-workflow",
        lines: text.lines().count(),
        comment: middle_site(&text, "job comment", |l| {
            l.starts_with("  # ").then_some(l.len())
        })?,
        expression: middle_site(&text, "env expression", after("${{ env.NODE_VERSION"))?,
        probe: middle_site(&text, "runs-on key", |l| {
            (l == "    runs-on: ubuntu-latest").then_some("    runs-on".len())
        })?,
        text,
    })
}

/// Folders for each server's documents: donmai's beside its project file,
/// GitHub's under `.github/workflows/` as the actions server expects.
struct Workspace {
    donmai: PathBuf,
    yaml: PathBuf,
    github: PathBuf,
    logs: PathBuf,
}

impl Workspace {
    fn create(root: &Path) -> Result<Workspace, String> {
        let root = std::path::absolute(root).map_err(|e| format!("{}: {e}", root.display()))?;
        let safe = root.to_str().is_some_and(|s| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
        });
        if !safe {
            return Err(format!(
                "the work folder {} must be a plain ASCII path (it becomes a file URI as is)",
                root.display()
            ));
        }
        let workspace = Workspace {
            donmai: root.join("donmai"),
            yaml: root.join("yaml"),
            github: root.join("github/.github/workflows"),
            logs: root.join("logs"),
        };
        for dir in [
            &workspace.donmai,
            &workspace.yaml,
            &workspace.github,
            &workspace.logs,
        ] {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        // The generated files allow one lint through their project file, as
        // in the other benchmarks; yaml-language-server gets the same text.
        std::fs::write(workspace.donmai.join("donmai.toml"), DONMAI_TOML)
            .map_err(|e| format!("cannot write donmai.toml: {e}"))?;
        Ok(workspace)
    }

    fn document(&self, kind: Kind, steps: usize) -> Result<Document, String> {
        match kind {
            Kind::Donmai => donmai_document(&self.donmai, steps),
            Kind::Yaml => donmai_document(&self.yaml, steps),
            Kind::Actions => {
                let lines = donmai_workflow(steps).lines().count();
                github_document(&self.github, lines)
            }
        }
    }
}

/// How to start each server and what it needs from its client.
struct Launcher<'a> {
    options: &'a Options,
    workspace: &'a Workspace,
    schema_uri: String,
}

/// A server after `initialize`, with what it advertised.
struct Session {
    client: Client,
    /// Whether `didChange` carries ranges (else the whole text).
    incremental: bool,
    capabilities: Value,
    version: i32,
    timeout: Duration,
}

impl Launcher<'_> {
    fn command(&self, kind: Kind) -> (PathBuf, Vec<String>) {
        let npm = self
            .options
            .npm
            .clone()
            .unwrap_or_default()
            .join("node_modules");
        match kind {
            Kind::Donmai => (self.options.donmai_lsp.clone().unwrap_or_default(), vec![]),
            Kind::Yaml => (
                self.options.node.clone(),
                vec![
                    npm.join("yaml-language-server/bin/yaml-language-server")
                        .display()
                        .to_string(),
                    "--stdio".to_string(),
                ],
            ),
            Kind::Actions => (
                self.options.node.clone(),
                vec![
                    npm.join("@actions/languageserver/bin/actions-languageserver")
                        .display()
                        .to_string(),
                    "--stdio".to_string(),
                ],
            ),
        }
    }

    /// What an editor configured for each server would answer to
    /// `workspace/configuration`. yaml-language-server gets the schema for
    /// every `.yaml` file and no schema store (it would download its
    /// catalogue).
    fn settings(&self, kind: Kind) -> Value {
        match kind {
            Kind::Yaml => json!({
                "yaml": {
                    "validate": true,
                    "hover": true,
                    "completion": true,
                    "format": {"enable": false},
                    "schemas": {self.schema_uri.clone(): ["*.yaml"]},
                    "schemaStore": {"enable": false},
                    "kubernetesCRDStore": {"enable": false},
                },
                "http": {"proxy": "", "proxyStrictSSL": false},
                "editor": {"tabSize": 2, "insertSpaces": true},
            }),
            _ => json!({}),
        }
    }

    fn root(&self, kind: Kind) -> &Path {
        match kind {
            Kind::Donmai => &self.workspace.donmai,
            Kind::Yaml => &self.workspace.yaml,
            Kind::Actions => self
                .workspace
                .github
                .parent()
                .and_then(Path::parent)
                .unwrap_or(&self.workspace.github),
        }
    }

    /// Spawns the server and completes `initialize`/`initialized` (and the
    /// configuration notification an editor sends next); returns the
    /// session and the instant of the `initialize` response.
    fn start(&self, kind: Kind) -> Result<(Session, Instant), String> {
        let (program, args) = self.command(kind);
        let log = self
            .workspace
            .logs
            .join(format!("{}.stderr.log", kind.key()));
        let mut client = Client::spawn(
            kind.label(),
            &program,
            &args,
            &log,
            editor_responder(self.settings(kind)),
        )?;
        let root = self.root(kind);
        let root_uri = file_uri(root);
        let mut params = json!({
            "processId": std::process::id(),
            "clientInfo": {"name": "donmai lsp-bench"},
            "rootUri": root_uri,
            "workspaceFolders": [{"uri": root_uri, "name": "bench"}],
            "capabilities": {
                "general": {"positionEncodings": ["utf-16"]},
                "textDocument": {
                    "synchronization": {"dynamicRegistration": false, "didSave": true},
                    "publishDiagnostics": {"relatedInformation": true, "versionSupport": true},
                    "completion": {
                        "contextSupport": true,
                        "completionItem": {"snippetSupport": true, "documentationFormat": ["markdown", "plaintext"]},
                    },
                    "hover": {"contentFormat": ["markdown", "plaintext"]},
                },
                "workspace": {
                    "configuration": true,
                    "workspaceFolders": true,
                    "didChangeConfiguration": {"dynamicRegistration": false},
                },
            },
        });
        if kind == Kind::Actions {
            // Its `initialize` reads fields of the options unconditionally;
            // no session token, so it never calls github.com.
            params["initializationOptions"] = json!({});
        }
        let (id, _) = client.request("initialize", params)?;
        let response = client.response(id, self.options.timeout)?;
        let capabilities = response.message["result"]["capabilities"].clone();
        let sync = &capabilities["textDocumentSync"];
        let change = sync.get("change").unwrap_or(sync).as_i64().unwrap_or(0);
        if change == 0 {
            return Err(format!("{} does not take document changes", kind.label()));
        }
        client.notify("initialized", json!({}))?;
        if kind == Kind::Yaml {
            client.notify(
                "workspace/didChangeConfiguration",
                json!({"settings": self.settings(kind)}),
            )?;
        }
        Ok((
            Session {
                client,
                incremental: change == 2,
                capabilities,
                version: 0,
                timeout: self.options.timeout,
            },
            response.at,
        ))
    }
}

fn is_publish_for(received: &Received, uri: &str, version: i32) -> bool {
    if received.method() != Some("textDocument/publishDiagnostics") {
        return false;
    }
    let params = &received.message["params"];
    if params["uri"].as_str() != Some(uri) {
        return false;
    }
    // A server that sends versions must send this one; one that does not
    // is taken at its next publication for the document.
    match params.get("version").and_then(Value::as_i64) {
        Some(sent) => sent == i64::from(version),
        None => true,
    }
}

fn diagnostic_count(received: &Received) -> usize {
    received.message["params"]["diagnostics"]
        .as_array()
        .map_or(0, Vec::len)
}

impl Session {
    /// Opens the document; returns the instant its first diagnostics
    /// arrived and their number.
    fn open(&mut self, document: &Document) -> Result<(Instant, usize), String> {
        self.version = 1;
        self.client.notify(
            "textDocument/didOpen",
            json!({"textDocument": {
                "uri": document.uri, "languageId": document.language,
                "version": self.version, "text": document.text,
            }}),
        )?;
        let first = self.client.wait(self.timeout, "first diagnostics", |r| {
            is_publish_for(r, &document.uri, 1)
        })?;
        Ok((first.at, diagnostic_count(&first)))
    }

    /// Sends one `didChange` inserting `x` at `site` (or deleting it again);
    /// returns when it was sent.
    fn change(&mut self, document: &Document, site: Site, insert: bool) -> Result<Instant, String> {
        self.version += 1;
        let change = if self.incremental {
            let end = Site {
                character: site.character + usize::from(!insert),
                ..site
            };
            json!({"range": {"start": site.position(), "end": end.position()}, "text": if insert { "x" } else { "" }})
        } else {
            // Full sync: what a client sends to a server that asks for it.
            json!({"text": if insert { with_insertion(&document.text, site) } else { document.text.clone() }})
        };
        self.client.drain();
        self.client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": document.uri, "version": self.version}, "contentChanges": [change]}),
        )
    }

    /// One edit and its diagnostics: latency in milliseconds and their count.
    fn timed_edit(
        &mut self,
        document: &Document,
        site: Site,
        insert: bool,
    ) -> Result<(f64, usize), String> {
        let sent = self.change(document, site, insert)?;
        let version = self.version;
        let published = self
            .client
            .wait(self.timeout, "diagnostics after an edit", |r| {
                is_publish_for(r, &document.uri, version)
            })?;
        Ok((ms(published.at - sent), diagnostic_count(&published)))
    }

    fn supports(&self, capability: &str) -> bool {
        let value = &self.capabilities[capability];
        !value.is_null() && value != &Value::Bool(false)
    }
}

fn with_insertion(text: &str, site: Site) -> String {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(site.line)
        .map(str::len)
        .sum();
    let at = line_start + site.character;
    let mut edited = String::with_capacity(text.len() + 1);
    edited.push_str(&text[..at]);
    edited.push('x');
    edited.push_str(&text[at..]);
    edited
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// One series of edits of one kind on one document.
struct EditSeries {
    server: Kind,
    steps: usize,
    lines: usize,
    edit: &'static str,
    samples: Vec<f64>,
    /// Diagnostic counts seen after insertions and after deletions.
    after_insert: Vec<usize>,
    after_delete: Vec<usize>,
    /// The server's CPU time over the measured edits, per edit (ms).
    cpu_per_edit: Option<f64>,
}

impl EditSeries {
    fn sorted(&self) -> Vec<f64> {
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        sorted
    }

    fn to_json(&self) -> Value {
        let sorted = self.sorted();
        json!({
            "server": self.server.key(), "steps": self.steps, "lines": self.lines, "edit": self.edit,
            "median_ms": median(&self.samples), "p99_ms": percentile(&sorted, 0.99),
            "max_ms": sorted.last(), "samples_ms": self.samples,
            "diagnostics_after_insert": counts(&self.after_insert),
            "diagnostics_after_delete": counts(&self.after_delete),
            "cpu_ms_per_edit": self.cpu_per_edit,
        })
    }
}

/// Distinct values, in order.
fn counts(values: &[usize]) -> Vec<usize> {
    let mut distinct = values.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct
}

fn show_counts(values: &[usize]) -> String {
    counts(values)
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("|")
}

/// Both kinds of edit on one server and document size, in one process.
fn measure_edits(launcher: &Launcher, kind: Kind, steps: usize) -> Result<Vec<EditSeries>, String> {
    let options = launcher.options;
    let document = launcher.workspace.document(kind, steps)?;
    let (mut session, _) = launcher.start(kind)?;
    let (_, baseline) = session.open(&document)?;
    // The probe must raise a diagnostic and its removal clear it again:
    // otherwise the server is not checking this file and the figures
    // would mean nothing.
    let (_, with_error) = session.timed_edit(&document, document.probe, true)?;
    let (_, repaired) = session.timed_edit(&document, document.probe, false)?;
    if with_error <= repaired || repaired != baseline {
        return Err(format!(
            "{} does not check {}: {baseline} diagnostics on open, {with_error} with an error \
             inserted at {:?}, {repaired} after removing it",
            kind.label(),
            document.path.display(),
            document.probe
        ));
    }
    let mut series = Vec::new();
    for (edit, site) in [
        ("comment", document.comment),
        ("expression", document.expression),
    ] {
        let (warmup, edits) = options.counts(kind);
        for index in 0..warmup {
            session.timed_edit(&document, site, index % 2 == 0)?;
        }
        // An odd warm-up ends on an insertion: undo it, then let any late
        // publication land before the clock matters.
        if warmup % 2 == 1 {
            session.timed_edit(&document, site, false)?;
        }
        session
            .client
            .settle(Duration::from_millis(300), Duration::from_secs(5));
        let mut result = EditSeries {
            server: kind,
            steps,
            lines: document.lines,
            edit,
            samples: Vec::new(),
            after_insert: Vec::new(),
            after_delete: Vec::new(),
            cpu_per_edit: None,
        };
        let cpu_before = session.client.cpu_time();
        let started = Instant::now();
        for index in 0..edits {
            let insert = index % 2 == 0;
            if !options.typing.is_zero() {
                std::thread::sleep(options.typing);
            }
            let (latency, diagnostics) = session.timed_edit(&document, site, insert)?;
            result.samples.push(latency);
            if insert {
                result.after_insert.push(diagnostics);
            } else {
                result.after_delete.push(diagnostics);
            }
            // An even count ends on the original text.
            let even = index % 2 == 1;
            if even && index + 1 >= options.min_edits && started.elapsed() > options.budget {
                break;
            }
        }
        if let (Some(before), Some(after)) = (cpu_before, session.client.cpu_time()) {
            result.cpu_per_edit = Some(ms(after - before) / result.samples.len() as f64);
        }
        // An odd count ends on an insertion: undo it for the next series.
        if result.samples.len() % 2 == 1 {
            session.timed_edit(&document, site, false)?;
        }
        series.push(result);
    }
    session.client.shutdown(Duration::from_secs(10))?;
    Ok(series)
}

/// Process start to the first diagnostics, through `initialize` and
/// `didOpen`, in milliseconds: (to the `initialize` response, to the
/// diagnostics).
fn measure_startup(
    launcher: &Launcher,
    kind: Kind,
    document: &Document,
) -> Result<(f64, f64), String> {
    let spawned = Instant::now();
    let (mut session, initialized) = launcher.start(kind)?;
    let (published, _) = session.open(document)?;
    session.client.shutdown(Duration::from_secs(10))?;
    Ok((ms(initialized - spawned), ms(published - spawned)))
}

/// Latency of one kind of request, at rest and right after an edit.
struct QuerySeries {
    method: &'static str,
    /// `None`: the server does not advertise the capability.
    idle: Option<Vec<f64>>,
    after_edit: Option<Vec<f64>>,
    /// Completion items or hover contents seen in the first answer.
    first_answer: String,
}

fn answer_summary(method: &str, result: &Value) -> String {
    match method {
        "textDocument/completion" => {
            let items = result.get("items").unwrap_or(result);
            let labels: Vec<&str> = items
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i["label"].as_str())
                        .take(3)
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "{} items, e.g. {}",
                items.as_array().map_or(0, Vec::len),
                labels.join(", ")
            )
        }
        _ if result.is_null() => "no hover".to_string(),
        _ => {
            let contents = result["contents"]["value"]
                .as_str()
                .or_else(|| result["contents"].as_str())
                .unwrap_or("(structured)");
            contents
                .chars()
                .take(60)
                .collect::<String>()
                .replace('\n', " ")
        }
    }
}

fn measure_queries(launcher: &Launcher, steps: usize) -> Result<Vec<QuerySeries>, String> {
    let options = launcher.options;
    let document = launcher.workspace.document(Kind::Donmai, steps)?;
    let completion_at = middle_site(&document.text, "`{{ nodes.` in an input", |l| {
        l.contains("sessionId: \"{{ nodes.dispatch_")
            .then(|| after("{{ nodes.")(l))
            .flatten()
    })?;
    let hover_at = Site {
        character: completion_at.character + 2,
        ..completion_at
    };
    let (mut session, _) = launcher.start(Kind::Donmai)?;
    session.open(&document)?;
    let mut series = Vec::new();
    for (method, capability, site) in [
        (
            "textDocument/completion",
            "completionProvider",
            completion_at,
        ),
        ("textDocument/hover", "hoverProvider", hover_at),
    ] {
        if !session.supports(capability) {
            series.push(QuerySeries {
                method,
                idle: None,
                after_edit: None,
                first_answer: String::new(),
            });
            continue;
        }
        let params = json!({"textDocument": {"uri": document.uri}, "position": site.position()});
        let mut first_answer = None;
        let mut idle = Vec::new();
        for index in 0..options.warmup + options.queries {
            let (id, sent) = session.client.request(method, params.clone())?;
            let answer = session.client.response(id, session.timeout)?;
            first_answer.get_or_insert_with(|| answer_summary(method, &answer.message["result"]));
            if index >= options.warmup {
                idle.push(ms(answer.at - sent));
            }
        }
        // As an editor asks when the user types: the request follows the
        // edit at once, so the answer may wait for the new analysis.
        let mut after_edit = Vec::new();
        for index in 0..options.warmup + options.queries {
            session.change(&document, document.comment, index % 2 == 0)?;
            let version = session.version;
            let (id, sent) = session.client.request(method, params.clone())?;
            // The edit's diagnostics may arrive before or after the answer.
            let mut published = false;
            let mut answered = None;
            while answered.is_none() || !published {
                let message = session.client.wait(
                    session.timeout,
                    "an answer or diagnostics after an edit",
                    |r| {
                        is_publish_for(r, &document.uri, version)
                            || (r.method().is_none()
                                && r.message.get("id").and_then(Value::as_i64) == Some(id))
                    },
                )?;
                if message.method().is_none() {
                    answered = Some(message.at);
                } else {
                    published = true;
                }
            }
            if index >= options.warmup {
                after_edit.push(ms(answered.expect("answered") - sent));
            }
        }
        if (options.warmup + options.queries) % 2 == 1 {
            session.timed_edit(&document, document.comment, false)?;
        }
        series.push(QuerySeries {
            method,
            idle: Some(idle),
            after_edit: Some(after_edit),
            first_answer: first_answer.unwrap_or_default(),
        });
    }
    session.client.shutdown(Duration::from_secs(10))?;
    Ok(series)
}

fn stats(samples: &[f64]) -> (f64, f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        median(samples),
        percentile(&sorted, 0.99),
        sorted.last().copied().unwrap_or(f64::NAN),
    )
}

/// Start-ups of one server: (to the `initialize` response, to the first
/// diagnostics), in milliseconds.
struct StartupSeries {
    server: Kind,
    steps: usize,
    samples: Vec<(f64, f64)>,
}

struct RunResult {
    load_before: String,
    load_after: String,
    edits: Vec<EditSeries>,
    /// Per server: samples of (to initialize response, to first diagnostics).
    startups: Vec<StartupSeries>,
    queries: Vec<QuerySeries>,
}

fn run_once(launcher: &Launcher, run: usize) -> Result<RunResult, String> {
    let options = launcher.options;
    let load_before = load_average();
    println!(
        "\n== run {run}/{} (load average {load_before}) ==",
        options.runs
    );
    println!(
        "\nedit -> publishDiagnostics, ms (donmai-lsp: {} measured edits after {} warm-up; node servers: {} after {}; p99 is nearest-rank)",
        options.edits,
        options.warmup,
        options.counts(Kind::Yaml).1,
        options.counts(Kind::Yaml).0,
    );
    if !options.typing.is_zero() {
        println!(
            "(a pause of {} ms before each measured edit, as between keystrokes)",
            options.typing.as_millis()
        );
    }
    println!(
        "{:>6} {:>6}  {:<23} {:<10} {:>5} {:>9} {:>9} {:>9} {:>9}  diagnostics ins/del  load",
        "steps", "lines", "server", "edit", "n", "median", "p99", "max", "cpu/edit"
    );
    let mut edits = Vec::new();
    let mut sizes = options.sizes.clone();
    sizes.extend(options.yaml_sizes.iter().flatten());
    sizes.extend(options.actions_sizes.iter().flatten());
    sizes.sort_unstable();
    sizes.dedup();
    for steps in sizes {
        for &kind in &options.servers {
            if !options.sizes_of(kind).contains(&steps) {
                continue;
            }
            for series in measure_edits(launcher, kind, steps)? {
                let (median, p99, max) = stats(&series.samples);
                println!(
                    "{:>6} {:>6}  {:<23} {:<10} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>9}  {:<19}  {}",
                    series.steps,
                    series.lines,
                    kind.label(),
                    series.edit,
                    series.samples.len(),
                    median,
                    p99,
                    max,
                    series
                        .cpu_per_edit
                        .map_or("?".to_string(), |cpu| format!("{cpu:.2}")),
                    format!(
                        "{}/{}",
                        show_counts(&series.after_insert),
                        show_counts(&series.after_delete)
                    ),
                    load_average()
                );
                edits.push(series);
            }
        }
    }
    let mut startups = Vec::new();
    if options.startups > 0 {
        println!(
            "\nstart-up: spawn -> initialize response -> didOpen -> first publishDiagnostics, ms"
        );
        println!(
            "{:<23} {:>6} {:>3} {:>14} {:>14} {:>14}",
            "server", "steps", "n", "init median", "diags median", "diags max"
        );
        for &kind in &options.servers {
            let count = match kind {
                Kind::Donmai => options.startups,
                _ => (options.startups / 4).max(3),
            };
            let steps = options.startup_size(kind);
            let document = launcher.workspace.document(kind, steps)?;
            let mut samples = Vec::new();
            for _ in 0..count {
                samples.push(measure_startup(launcher, kind, &document)?);
            }
            let init: Vec<f64> = samples.iter().map(|s| s.0).collect();
            let diags: Vec<f64> = samples.iter().map(|s| s.1).collect();
            let (diag_median, _, diag_max) = stats(&diags);
            println!(
                "{:<23} {:>6} {:>3} {:>14.2} {:>14.2} {:>14.2}",
                kind.label(),
                steps,
                count,
                median(&init),
                diag_median,
                diag_max
            );
            startups.push(StartupSeries {
                server: kind,
                steps,
                samples,
            });
        }
    }
    let mut queries = Vec::new();
    if options.queries > 0 && options.servers.contains(&Kind::Donmai) {
        println!(
            "\ndonmai-lsp requests at `{{{{ nodes.` in a step input, {} steps, ms ({} requests after {} warm-up)",
            options.query_steps, options.queries, options.warmup
        );
        for series in measure_queries(launcher, options.query_steps)? {
            match (&series.idle, &series.after_edit) {
                (Some(idle), Some(after_edit)) => {
                    for (when, samples) in [("at rest", idle), ("right after an edit", after_edit)]
                    {
                        let (median, p99, max) = stats(samples);
                        println!(
                            "  {:<24} {:<20} median {:>7.3}  p99 {:>7.3}  max {:>7.3}",
                            series.method, when, median, p99, max
                        );
                    }
                    println!(
                        "  {:<24} first answer: {}",
                        series.method, series.first_answer
                    );
                }
                _ => println!("  {:<24} not supported yet", series.method),
            }
            queries.push(series);
        }
    }
    let load_after = load_average();
    println!("\nload average after run {run}: {load_after}");
    Ok(RunResult {
        load_before,
        load_after,
        edits,
        startups,
        queries,
    })
}

fn run(options: &Options) -> Result<(), String> {
    let workspace = Workspace::create(&options.work)?;
    let schema_path = std::path::absolute(&options.schema).map_err(|e| e.to_string())?;
    if options.servers.contains(&Kind::Yaml) && !schema_path.is_file() {
        return Err(format!("no JSON Schema at {}", schema_path.display()));
    }
    let launcher = Launcher {
        options,
        workspace: &workspace,
        schema_uri: file_uri(&schema_path),
    };
    let mut runs = Vec::new();
    for run in 1..=options.runs {
        runs.push(run_once(&launcher, run)?);
    }
    print_summary(options, &runs);
    if let Some(path) = &options.json {
        std::fs::write(path, to_json(&runs).to_string())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Across runs: the median of each run's median and of each run's p99.
fn print_summary(options: &Options, runs: &[RunResult]) {
    if runs.len() < 2 && options.servers.len() < 2 {
        return;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n== summary: median over {} run(s) of each run's median / p99, ms ==",
        runs.len()
    );
    let first = &runs[0];
    for (index, series) in first.edits.iter().enumerate() {
        let medians: Vec<f64> = runs
            .iter()
            .map(|r| median(&r.edits[index].samples))
            .collect();
        let p99s: Vec<f64> = runs
            .iter()
            .map(|r| stats(&r.edits[index].samples).1)
            .collect();
        let cpus: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.edits[index].cpu_per_edit)
            .collect();
        let _ = write!(
            out,
            "{:>6} steps {:>6} lines  {:<23} {:<10} median {:>8.2}  p99 {:>8.2}  cpu/edit {:>8.2}",
            series.steps,
            series.lines,
            series.server.label(),
            series.edit,
            median(&medians),
            median(&p99s),
            median(&cpus)
        );
        if series.server != Kind::Donmai {
            let donmai = first.edits.iter().position(|s| {
                s.server == Kind::Donmai && s.steps == series.steps && s.edit == series.edit
            });
            if let Some(donmai) = donmai {
                let donmai_medians: Vec<f64> = runs
                    .iter()
                    .map(|r| median(&r.edits[donmai].samples))
                    .collect();
                let donmai_p99s: Vec<f64> = runs
                    .iter()
                    .map(|r| stats(&r.edits[donmai].samples).1)
                    .collect();
                let _ = write!(
                    out,
                    "  = {:.1}x donmai's median, {:.1}x its p99",
                    median(&medians) / median(&donmai_medians),
                    median(&p99s) / median(&donmai_p99s)
                );
            }
        }
        out.push('\n');
    }
    for (index, startup) in first.startups.iter().enumerate() {
        let (kind, steps) = (startup.server, startup.steps);
        let medians: Vec<f64> = runs
            .iter()
            .map(|r| {
                median(
                    &r.startups[index]
                        .samples
                        .iter()
                        .map(|s| s.1)
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "start-up to first diagnostics, {} steps, {:<23} median {:>8.2}",
            steps,
            kind.label(),
            median(&medians)
        );
    }
    for (index, series) in first.queries.iter().enumerate() {
        if series.idle.is_none() {
            let _ = writeln!(out, "{:<24} not supported yet", series.method);
            continue;
        }
        for (when, pick) in [
            (
                "at rest",
                (|q: &QuerySeries| q.idle.clone()) as fn(&QuerySeries) -> Option<Vec<f64>>,
            ),
            ("right after an edit", |q: &QuerySeries| {
                q.after_edit.clone()
            }),
        ] {
            let per_run: Vec<(f64, f64, f64)> = runs
                .iter()
                .filter_map(|r| pick(&r.queries[index]).map(|s| stats(&s)))
                .collect();
            let medians: Vec<f64> = per_run.iter().map(|s| s.0).collect();
            let p99s: Vec<f64> = per_run.iter().map(|s| s.1).collect();
            let _ = writeln!(
                out,
                "{:<24} {:<20} median {:>7.3}  p99 {:>7.3}",
                series.method,
                when,
                median(&medians),
                median(&p99s)
            );
        }
    }
    let loads: Vec<String> = runs
        .iter()
        .map(|r| format!("{} -> {}", r.load_before, r.load_after))
        .collect();
    let _ = writeln!(
        out,
        "load averages (1, 5, 15 min) per run: {}",
        loads.join("; ")
    );
    print!("{out}");
}

fn to_json(runs: &[RunResult]) -> Value {
    Value::Array(
        runs.iter()
            .map(|run| {
                json!({
                    "load_before": run.load_before,
                    "load_after": run.load_after,
                    "edits": run.edits.iter().map(EditSeries::to_json).collect::<Vec<_>>(),
                    "startups": run.startups.iter().map(|StartupSeries { server: kind, steps, samples }| json!({
                        "server": kind.key(),
                        "steps": steps,
                        "initialize_ms": samples.iter().map(|s| s.0).collect::<Vec<_>>(),
                        "first_diagnostics_ms": samples.iter().map(|s| s.1).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                    "queries": run.queries.iter().map(|q| json!({
                        "method": q.method,
                        "supported": q.idle.is_some(),
                        "idle_ms": q.idle,
                        "after_edit_ms": q.after_edit,
                        "first_answer": q.first_answer,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}
