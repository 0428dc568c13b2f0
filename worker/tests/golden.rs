//! Golden runtime tests: every case folder of `tests/runtime/` is run
//! through the real `donmai` binary, and the events it prints (NDJSON) and
//! the final state `donmai runs` reports must equal the files checked in.
//!
//! A case folder holds:
//! - `workflow.yaml` (and any group files it references);
//! - `fixtures.yaml`, optional: passed as `--fixtures`;
//! - `case.json`, optional: the session to play, as a list of steps (default
//!   one `run` with status 0):
//!   ```json
//!   {"steps": [
//!      {"run": ["--detach"], "exit": 0},
//!      {"signal": ["com.github.workflow_run.completed", "--data", "{}"]},
//!      {"cancel": "$R1"},
//!      {"run": ["--resume"]}],
//!    "relativeTimes": true,
//!    "stderr": ["text that standard error must contain"]}
//!   ```
//!   Every `run` gets `--store`, `--format json`, `--virtual-time` and the
//!   fixtures, plus the workflow unless it resumes; `$R1`, `$R2`… stand for
//!   the runs in the order they started.
//! - `expected.ndjson`: the events the `run` steps printed, one per line;
//! - `final.json`: `donmai runs RUN --format json` of every run at the end.
//!
//! Volatile fields are normalised: run ids become `R1`, `R2`… wherever they
//! appear; times become offsets from the run's start (`+86400000ms`) — in
//! virtual time these are exact — or `<time>` when `relativeTimes` is false
//! (sessions that span processes, whose clocks restart); derived
//! idempotency keys become `<key>`.
//!
//! `DONMAI_UPDATE_GOLDEN=1 cargo test -p donmai-worker --test golden`
//! rewrites the expected files; review the diff before committing it.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/runtime")
}

fn donmai(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_donmai"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run donmai")
}

#[derive(Default)]
struct Normaliser {
    runs: Vec<String>,
    /// Each run's start in ms since the epoch, from its `run.started`.
    starts: HashMap<String, i64>,
    relative_times: bool,
}

fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    // `2026-01-01T00:00:00.000Z`, as the engine writes every time.
    let bytes = text.as_bytes();
    if bytes.len() != 24 || bytes[10] != b'T' || bytes[23] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((((days * 24 + hh) * 60 + mm) * 60 + ss) * 1000 + ms)
}

impl Normaliser {
    fn run_name(&mut self, id: &str) -> String {
        let index = match self.runs.iter().position(|r| r == id) {
            Some(index) => index,
            None => {
                self.runs.push(id.to_string());
                self.runs.len() - 1
            }
        };
        format!("R{}", index + 1)
    }

    fn time(&self, run: &str, text: &str) -> Value {
        if !self.relative_times {
            return json!("<time>");
        }
        match (parse_rfc3339_ms(text), self.starts.get(run)) {
            (Some(at), Some(start)) => json!(format!("+{}ms", at - start)),
            _ => json!("<time>"),
        }
    }

    /// Replaces run ids inside any string (gate outputs echo signal data).
    fn strings(&self, value: &mut Value) {
        match value {
            Value::String(text) => {
                for (i, run) in self.runs.iter().enumerate() {
                    if text.contains(run.as_str()) {
                        *text = text.replace(run.as_str(), &format!("R{}", i + 1));
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.strings(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.strings(v)),
            _ => {}
        }
    }

    fn event(&mut self, mut event: Value) -> Value {
        let run = event["runId"].as_str().unwrap_or_default().to_string();
        let name = self.run_name(&run);
        if event["type"] == "run.started"
            && let Some(at) = event["at"].as_str().and_then(parse_rfc3339_ms)
        {
            self.starts.entry(run.clone()).or_insert(at);
        }
        for field in ["at", "deadline", "nextAttemptAt"] {
            if let Some(text) = event[field].as_str().map(str::to_string) {
                event[field] = self.time(&run, &text);
            }
        }
        self.strings(&mut event);
        event["runId"] = json!(name);
        event
    }

    fn final_state(&mut self, mut info: Value) -> Value {
        let run = info["run"]["runId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for field in ["startedAt", "endedAt"] {
            if let Some(text) = info["run"][field].as_str().map(str::to_string) {
                info["run"][field] = self.time(&run, &text);
            }
        }
        if let Some(steps) = info["steps"].as_array_mut() {
            for step in steps {
                // A key the engine derives hashes the run id; one from a
                // manifest's template is kept as is.
                let derived = step["idempotencyKey"].as_str().is_some_and(|key| {
                    key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())
                });
                if derived {
                    step["idempotencyKey"] = json!("<derived key>");
                }
            }
        }
        self.strings(&mut info);
        info
    }
}

struct CaseResult {
    events: String,
    final_state: String,
}

fn substitute(arg: &str, runs: &[String]) -> String {
    let mut out = arg.to_string();
    // Highest first, so `$R10` is not read as `$R1` and a `0`.
    for (i, run) in runs.iter().enumerate().rev() {
        out = out.replace(&format!("$R{}", i + 1), run);
    }
    out
}

fn strings_of(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().expect("string arguments").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn play(case: &Path) -> Result<CaseResult, String> {
    let store = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store_arg = store.path().to_str().expect("UTF-8 path").to_string();
    let spec: Value = match std::fs::read_to_string(case.join("case.json")) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("case.json: {e}"))?,
        Err(_) => json!({"steps": [{"run": []}]}),
    };
    let fixtures = case.join("fixtures.yaml");
    let mut normaliser = Normaliser {
        relative_times: spec["relativeTimes"].as_bool().unwrap_or(true),
        ..Normaliser::default()
    };
    let mut events = String::new();
    let mut stderr_all = String::new();
    for (index, step) in spec["steps"].as_array().expect("steps").iter().enumerate() {
        let expected_exit = step["exit"].as_i64().unwrap_or(0);
        let runs = normaliser.runs.clone();
        let mut args: Vec<String>;
        let prints_events;
        if let Some(extra) = step.get("run") {
            let extra: Vec<String> = strings_of(extra)
                .iter()
                .map(|a| substitute(a, &runs))
                .collect();
            args = vec!["run".into()];
            if !extra.iter().any(|a| a == "--resume") {
                args.push(case.join("workflow.yaml").to_str().expect("UTF-8").into());
            }
            args.extend([
                "--store".into(),
                store_arg.clone(),
                "--format".into(),
                "json".into(),
            ]);
            args.push("--virtual-time".into());
            if fixtures.is_file() {
                args.extend([
                    "--fixtures".into(),
                    fixtures.to_str().expect("UTF-8").into(),
                ]);
            }
            args.extend(extra);
            prints_events = true;
        } else if let Some(extra) = step.get("signal") {
            args = vec!["signal".into(), "--store".into(), store_arg.clone()];
            args.extend(strings_of(extra).iter().map(|a| substitute(a, &runs)));
            prints_events = false;
        } else if let Some(run) = step.get("cancel") {
            let run = substitute(run.as_str().expect("cancel RUN"), &runs);
            args = vec!["cancel".into(), "--store".into(), store_arg.clone(), run];
            prints_events = false;
        } else {
            return Err(format!("step {index}: unknown step {step}"));
        }
        let output = donmai(&args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        stderr_all.push_str(&stderr);
        if output.status.code() != Some(expected_exit as i32) {
            return Err(format!(
                "step {index} (donmai {}) exited with {:?}, expected {expected_exit}\n--- stdout\n{stdout}--- stderr\n{stderr}",
                args.join(" "),
                output.status.code()
            ));
        }
        if prints_events {
            for line in stdout.lines() {
                let event: Value = serde_json::from_str(line)
                    .map_err(|e| format!("step {index}: not JSON ({e}): {line}"))?;
                let event = normaliser.event(event);
                events.push_str(&ordered(&event));
                events.push('\n');
            }
        }
    }
    for needle in strings_of(&spec["stderr"]) {
        if !stderr_all.contains(&needle) {
            return Err(format!("standard error lacks {needle:?}:\n{stderr_all}"));
        }
    }
    let mut finals = Vec::new();
    for run in normaliser.runs.clone() {
        let output = donmai(&[
            "runs".into(),
            "--store".into(),
            store_arg.clone(),
            run.clone(),
            "--format".into(),
            "json".into(),
        ]);
        if !output.status.success() {
            return Err(format!(
                "donmai runs {run}: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let info: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
        finals.push(normaliser.final_state(info));
    }
    // Every case's audit chain must verify after its session.
    let audit = donmai(&["audit".into(), "verify".into(), "--store".into(), store_arg]);
    if !audit.status.success() {
        return Err(format!(
            "audit verify failed: {}{}",
            String::from_utf8_lossy(&audit.stdout),
            String::from_utf8_lossy(&audit.stderr)
        ));
    }
    Ok(CaseResult {
        events,
        final_state: serde_json::to_string_pretty(&Value::Array(finals)).expect("JSON") + "\n",
    })
}

/// An event as one JSON line with its keys in a readable order (what, whose,
/// when, then the details), the rest sorted.
fn ordered(event: &Value) -> String {
    const FIRST: &[&str] = &["type", "runId", "seq", "at", "stepId", "attempt"];
    let Value::Object(map) = event else {
        return event.to_string();
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| {
        (
            FIRST.iter().position(|f| f == k).unwrap_or(FIRST.len()),
            k.as_str(),
        )
    });
    let fields: Vec<String> = keys
        .iter()
        .map(|k| format!("{}:{}", Value::String((*k).clone()), map[k.as_str()]))
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn compare(path: &Path, actual: &str, update: bool, failures: &mut Vec<String>) {
    if update {
        std::fs::write(path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected != actual {
        let mut diff = String::new();
        let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
        for i in 0..e.len().max(a.len()) {
            let (el, al) = (e.get(i), a.get(i));
            if el != al {
                diff.push_str(&format!(
                    "line {}:\n  expected: {}\n  actual:   {}\n",
                    i + 1,
                    el.unwrap_or(&"<none>"),
                    al.unwrap_or(&"<none>")
                ));
            }
        }
        failures.push(format!("{} differs:\n{diff}", path.display()));
    }
}

#[test]
fn golden_runtime_cases() {
    let update = std::env::var_os("DONMAI_UPDATE_GOLDEN").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/runtime")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("workflow.yaml").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "only {} golden cases found", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        match play(case) {
            Ok(result) => {
                compare(
                    &case.join("expected.ndjson"),
                    &result.events,
                    update,
                    &mut failures,
                );
                compare(
                    &case.join("final.json"),
                    &result.final_state,
                    update,
                    &mut failures,
                );
            }
            Err(message) => failures.push(format!("{}: {message}", case.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed (DONMAI_UPDATE_GOLDEN=1 rewrites the files after review):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn rfc3339_parsing_matches_the_engine_clock() {
    assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00.000Z"), Some(0));
    assert_eq!(
        parse_rfc3339_ms("2026-01-01T00:00:00.000Z"),
        Some(1_767_225_600_000)
    );
    assert_eq!(
        parse_rfc3339_ms("2024-02-29T12:34:56.789Z"),
        Some(1_709_210_096_789)
    );
    assert_eq!(parse_rfc3339_ms("not a time"), None);
}
