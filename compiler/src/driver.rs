//! `donmaic check`: finds workflow files, checks them in parallel, applies
//! suppressions, lint levels and fixes, and decides the exit code.
//!
//! The checker is a parameter so that the driver can be tested with small
//! fake checkers; the binary passes `check::check_file`.

use crate::fix::{fix_in_rounds, unified_diff, write_atomically};
use crate::project::{LintLevel, Project, ProjectCache};
use crate::report::{CheckReport, Failure, FileReport, sort_diagnostics};
use crate::suppress::apply_suppressions;
use donmai_grammar::{Code, Diagnostic, SourceFile};
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Directories never searched when walking a folder (besides hidden ones).
const SKIPPED_DIRS: &[&str] = &["target", "node_modules"];

/// What to do with machine-applicable fixes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FixMode {
    /// Report diagnostics only.
    #[default]
    Report,
    /// Apply fixes in place, then report what remains.
    Apply,
    /// Compute the fixed text and produce a unified diff; write nothing.
    Diff,
}

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Files and folders to check; empty means the current directory.
    pub paths: Vec<PathBuf>,
    /// Lint levels from the command line, in order (a later one for the same
    /// code wins). They override `[lints]` of `donmai.toml`.
    pub lint_levels: Vec<(Code, LintLevel)>,
    pub fix: FixMode,
    /// Worker threads; `None` uses the available parallelism.
    pub threads: Option<NonZeroUsize>,
}

/// Everything a `check` run produced.
#[derive(Clone, Debug, Default)]
pub struct CheckRun {
    pub report: CheckReport,
    /// With [`FixMode::Diff`]: one unified diff per file that would change,
    /// in path order.
    pub diffs: Vec<String>,
    /// With [`FixMode::Apply`] or [`FixMode::Diff`]: fixes applied (or that
    /// would be) and in how many files.
    pub fixes_applied: usize,
    pub files_fixed: usize,
}

/// Exit status: 0 clean, 1 errors (or warnings when they are denied), 2 when
/// some path could not be checked.
pub fn exit_code(report: &CheckReport, deny_warnings: bool) -> u8 {
    let summary = report.summary();
    if !report.failures.is_empty() {
        2
    } else if summary.errors > 0 || (deny_warnings && summary.warnings > 0) {
        1
    } else {
        0
    }
}

/// A file to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub path: PathBuf,
    /// Named on the command line: checked whatever it contains. A file found
    /// by walking a folder is checked only if it looks like a workflow.
    pub explicit: bool,
}

/// `./a/./b.yaml` → `a/b.yaml`, so the same file has one name.
fn normalize(path: &Path) -> PathBuf {
    let normalized: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if normalized.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        normalized
    }
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

fn skip_dir(name: &str) -> bool {
    name.starts_with('.') || SKIPPED_DIRS.contains(&name)
}

fn describe_io(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => error.to_string(),
    }
}

/// The files to check under `paths`, sorted and without duplicates, and the
/// paths that could not be searched. Folders are walked without following
/// symbolic links to folders, skipping hidden folders (`.git`, `.donmai`…),
/// `target` and `node_modules`; only `*.yaml` and `*.yml` files are taken.
pub fn discover(paths: &[PathBuf]) -> (Vec<Candidate>, Vec<Failure>) {
    let mut found: BTreeMap<PathBuf, bool> = BTreeMap::new();
    let mut failures = Vec::new();
    let default = [PathBuf::from(".")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    for given in paths {
        let path = normalize(given);
        match std::fs::metadata(&path) {
            Err(error) => failures.push(Failure {
                path: given.clone(),
                message: describe_io(&error),
            }),
            Ok(metadata) if metadata.is_dir() => walk(&path, &mut found, &mut failures),
            Ok(_) => {
                found.insert(path, true);
            }
        }
    }
    let candidates = found
        .into_iter()
        .map(|(path, explicit)| Candidate { path, explicit })
        .collect();
    (candidates, failures)
}

fn walk(root: &Path, found: &mut BTreeMap<PathBuf, bool>, failures: &mut Vec<Failure>) {
    // An explicit stack, not recursion: folder depth is unbounded.
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) => {
                failures.push(Failure {
                    path: dir,
                    message: describe_io(&error),
                });
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    failures.push(Failure {
                        path: dir.clone(),
                        message: describe_io(&error),
                    });
                    continue;
                }
            };
            let path = normalize(&entry.path());
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                if !skip_dir(&entry.file_name().to_string_lossy()) {
                    pending.push(path);
                }
            } else if is_yaml(&path) && (file_type.is_file() || path.is_file()) {
                found.entry(path).or_insert(false);
            }
        }
    }
}

/// A cheap test for a workflow: some line starts with `apiVersion:` and its
/// value (quoted or not) starts with `workflow/`. Only column-0 keys count,
/// so nested `apiVersion` keys and flow-style documents are not seen.
pub fn looks_like_workflow(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    bytes.split(|&b| b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(rest) = [&b"apiVersion"[..], b"\"apiVersion\"", b"'apiVersion'"]
            .iter()
            .find_map(|key| line.strip_prefix(*key))
        else {
            return false;
        };
        let rest = rest.trim_ascii_start();
        let Some(value) = rest.strip_prefix(b":") else {
            return false;
        };
        let value = value.trim_ascii_start();
        let value = value
            .strip_prefix(b"\"")
            .or_else(|| value.strip_prefix(b"'"))
            .unwrap_or(value);
        value.starts_with(b"workflow/")
    })
}

/// Levels from the command line over those of the project.
struct Levels {
    cli: HashMap<Code, LintLevel>,
}

impl Levels {
    fn apply(&self, project: &Project, diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
        diagnostics
            .into_iter()
            .filter_map(|diagnostic| {
                let level = self
                    .cli
                    .get(&diagnostic.code)
                    .copied()
                    .or_else(|| project.lint_level(diagnostic.code));
                match level {
                    Some(level) => level.apply(diagnostic),
                    None => Some(diagnostic),
                }
            })
            .collect()
    }
}

/// What `donmaic check` reports for `source` given the checker's raw
/// diagnostics: suppression comments, then the project's lint levels, in
/// the report's order. The language server publishes exactly this, so the
/// editor and CI never disagree.
pub fn finish_diagnostics(
    source: &SourceFile,
    project: &Project,
    raw: Vec<Diagnostic>,
) -> Vec<Diagnostic> {
    let levels = Levels {
        cli: HashMap::new(),
    };
    let mut diagnostics = levels.apply(project, apply_suppressions(source, raw));
    sort_diagnostics(&mut diagnostics);
    diagnostics
}

/// The checker's diagnostics after suppression comments, then lint levels:
/// a suppression is used even when its code is allowed, so allowing a lint
/// does not make its suppressions "unused".
fn finish<C>(
    checker: &C,
    source: &SourceFile,
    project: &Project,
    levels: &Levels,
) -> Result<Vec<Diagnostic>, String>
where
    C: Fn(&SourceFile, &Project) -> Vec<Diagnostic> + Sync,
{
    let raw = catch_unwind(AssertUnwindSafe(|| {
        apply_suppressions(source, checker(source, project))
    }))
    .map_err(|_| {
        "internal error: the checker crashed on this file (please report it)".to_string()
    })?;
    let mut diagnostics = levels.apply(project, raw);
    sort_diagnostics(&mut diagnostics);
    Ok(diagnostics)
}

enum Outcome {
    Skipped,
    Checked {
        report: FileReport,
        diff: Option<String>,
        fixes: usize,
    },
    Failed(Failure),
}

struct Job {
    candidate: Candidate,
    project: Project,
}

fn check_one<C>(job: &Job, checker: &C, levels: &Levels, mode: FixMode) -> Outcome
where
    C: Fn(&SourceFile, &Project) -> Vec<Diagnostic> + Sync,
{
    let path = &job.candidate.path;
    let fail = |message: String| {
        Outcome::Failed(Failure {
            path: path.clone(),
            message,
        })
    };
    let bytes = match donmai_grammar::span::read_regular_file(path) {
        Ok(bytes) => bytes,
        Err(error) => return fail(describe_io(&error)),
    };
    if !job.candidate.explicit && !looks_like_workflow(&bytes) {
        return Outcome::Skipped;
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            return fail(format!(
                "not valid UTF-8 (invalid byte at offset {})",
                error.utf8_error().valid_up_to()
            ));
        }
    };
    let source = SourceFile::new(path.clone(), text);
    let diagnostics = match finish(checker, &source, &job.project, levels) {
        Ok(diagnostics) => diagnostics,
        Err(message) => return fail(message),
    };
    if mode == FixMode::Report {
        return Outcome::Checked {
            report: FileReport::new(source, diagnostics),
            diff: None,
            fixes: 0,
        };
    }
    let mut crashed = None;
    let original = source.text().to_string();
    let outcome = fix_in_rounds(source, diagnostics, |fixed| {
        finish(checker, fixed, &job.project, levels).unwrap_or_else(|message| {
            crashed = Some(message);
            Vec::new()
        })
    });
    if let Some(message) = crashed {
        return fail(message);
    }
    let mut diff = None;
    if outcome.changed() {
        match mode {
            FixMode::Apply => {
                if let Err(error) = write_atomically(path, outcome.source.text()) {
                    return fail(format!("cannot write the fixes: {}", describe_io(&error)));
                }
            }
            FixMode::Diff => {
                let shown = path.to_string_lossy().replace('\\', "/");
                diff = Some(unified_diff(&shown, &original, outcome.source.text()));
            }
            FixMode::Report => {}
        }
    }
    Outcome::Checked {
        fixes: outcome.applied,
        report: FileReport::new(outcome.source, outcome.diagnostics),
        diff,
    }
}

/// Runs `check` over `options.paths` with `checker` for each workflow file.
pub fn run_check<C>(options: &CheckOptions, checker: &C) -> CheckRun
where
    C: Fn(&SourceFile, &Project) -> Vec<Diagnostic> + Sync,
{
    let (candidates, mut failures) = discover(&options.paths);
    let levels = Levels {
        cli: options.lint_levels.iter().copied().collect(),
    };

    // Projects are found before the parallel part so that each donmai.toml
    // is read once, however many files share it.
    let mut cache = ProjectCache::new();
    let mut jobs = Vec::with_capacity(candidates.len());
    let mut manifests: BTreeMap<PathBuf, FileReport> = BTreeMap::new();
    for candidate in candidates {
        let dir = match candidate.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match cache.discover(&dir) {
            Ok(project) => {
                if let Some(file) = project.manifest_file()
                    && !project.diagnostics().is_empty()
                {
                    manifests
                        .entry(file.path().to_path_buf())
                        .or_insert_with(|| {
                            FileReport::new(file.clone(), project.diagnostics().to_vec())
                        });
                }
                // Third-party plugin manifests with problems are reported
                // as files of their own, once each.
                for load in &crate::plugins::registry_for(&project).reports {
                    if let Some(source) = &load.source
                        && !load.diagnostics.is_empty()
                    {
                        manifests.entry(load.path.clone()).or_insert_with(|| {
                            FileReport::new((**source).clone(), load.diagnostics.clone())
                        });
                    }
                }
                jobs.push(Job { candidate, project });
            }
            Err(error) => {
                let message = error.to_string();
                if !failures.iter().any(|f| f.message == message) {
                    failures.push(Failure {
                        path: candidate.path.clone(),
                        message,
                    });
                }
            }
        }
    }

    let outcomes = run_parallel(&jobs, options.threads, |job| {
        check_one(job, checker, &levels, options.fix)
    });

    let mut run = CheckRun::default();
    let mut files: Vec<FileReport> = manifests.into_values().collect();
    for outcome in outcomes {
        match outcome {
            Outcome::Skipped => {}
            Outcome::Failed(failure) => failures.push(failure),
            Outcome::Checked {
                report,
                diff,
                fixes,
            } => {
                run.report.files_checked += 1;
                if fixes > 0 {
                    run.fixes_applied += fixes;
                    run.files_fixed += 1;
                }
                run.diffs.extend(diff);
                files.push(report);
            }
        }
    }
    files.sort_by(|a, b| a.path().cmp(b.path()));
    failures.sort_by(|a, b| a.path.cmp(&b.path));
    run.report.files = files;
    run.report.failures = failures;
    run
}

/// Runs `work` on every job over a shared queue, on up to `threads` threads
/// (default: the available parallelism); results come back in job order.
fn run_parallel<J, R, F>(jobs: &[J], threads: Option<NonZeroUsize>, work: F) -> Vec<R>
where
    J: Sync,
    R: Send,
    F: Fn(&J) -> R + Sync,
{
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
        .min(jobs.len());
    if threads <= 1 {
        return jobs.iter().map(&work).collect();
    }
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<R>> = (0..jobs.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(index) else {
                            break;
                        };
                        done.push((index, work(job)));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            // `work` catches the checker's panics itself; a worker can only
            // die from a bug here, and its jobs are then run again below.
            if let Ok(done) = worker.join() {
                for (index, result) in done {
                    results[index] = Some(result);
                }
            }
        }
    });
    results
        .into_iter()
        .zip(jobs)
        .map(|(result, job)| result.unwrap_or_else(|| work(job)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use donmai_grammar::{Severity, Span};
    use std::sync::Mutex;

    struct TempTree {
        root: PathBuf,
    }

    impl TempTree {
        fn new(name: &str) -> TempTree {
            let root =
                std::env::temp_dir().join(format!("donmai-driver-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).expect("mkdir");
            TempTree { root }
        }

        fn write(&self, relative: &str, text: impl AsRef<[u8]>) -> PathBuf {
            let path = self.root.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(&path, text).expect("write");
            path
        }
    }

    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    const WORKFLOW: &str = "apiVersion: workflow/v2\nkind: WorkflowDefinition\n";

    fn no_problems(_: &SourceFile, _: &Project) -> Vec<Diagnostic> {
        Vec::new()
    }

    /// Reports every `bad` in the file as unused-output, with a fix to `good`.
    fn flags_bad(file: &SourceFile, _: &Project) -> Vec<Diagnostic> {
        file.text()
            .match_indices("bad")
            .map(|(at, _)| {
                Diagnostic::new(Code::UNUSED_OUTPUT, Span::new(at, at + 3), "bad word")
                    .with_replacement("say good", Span::new(at, at + 3), "good")
            })
            .collect()
    }

    fn relative(tree: &TempTree, run: &CheckRun) -> Vec<String> {
        run.report
            .files
            .iter()
            .map(|f| {
                f.path()
                    .strip_prefix(&tree.root)
                    .unwrap_or(f.path())
                    .to_string_lossy()
                    .replace('\\', "/")
            })
            .collect()
    }

    #[test]
    fn sniffs_workflow_api_versions() {
        assert!(looks_like_workflow(b"apiVersion: workflow/v2\n"));
        assert!(looks_like_workflow(
            b"\xef\xbb\xbfkind: X\r\napiVersion : \"workflow/v1\"\r\n"
        ));
        assert!(looks_like_workflow(b"# c\napiVersion: 'workflow/v9'"));
        assert!(!looks_like_workflow(b"  apiVersion: workflow/v2\n"));
        assert!(!looks_like_workflow(b"apiVersion: donmai.dev/v1\n"));
        assert!(!looks_like_workflow(b"apiVersionX: workflow/v2\n"));
    }

    #[test]
    fn walks_folders_skipping_hidden_target_and_non_workflows() {
        let tree = TempTree::new("walk");
        tree.write("a.yaml", WORKFLOW);
        tree.write("sub/b.yml", WORKFLOW);
        tree.write("sub/deep/c.yaml", WORKFLOW);
        tree.write("sub/not-a-workflow.yaml", "apiVersion: v1\nkind: Pod\n");
        tree.write("notes.txt", WORKFLOW);
        tree.write("target/d.yaml", WORKFLOW);
        tree.write(".git/e.yaml", WORKFLOW);
        tree.write(".donmai/plugins/f.yaml", WORKFLOW);
        tree.write(".hidden/g.yaml", WORKFLOW);
        let run = run_check(
            &CheckOptions {
                paths: vec![tree.root.clone()],
                ..CheckOptions::default()
            },
            &no_problems,
        );
        assert_eq!(
            relative(&tree, &run),
            ["a.yaml", "sub/b.yml", "sub/deep/c.yaml"]
        );
        assert_eq!(run.report.files_checked, 3);
        assert!(run.report.failures.is_empty());
    }

    #[test]
    fn explicit_files_are_always_checked_once() {
        let tree = TempTree::new("explicit");
        let other = tree.write("notes.txt", "hello");
        let workflow = tree.write("w.yaml", WORKFLOW);
        let run = run_check(
            &CheckOptions {
                paths: vec![other.clone(), workflow.clone(), tree.root.clone()],
                ..CheckOptions::default()
            },
            &no_problems,
        );
        assert_eq!(relative(&tree, &run), ["notes.txt", "w.yaml"]);
    }

    #[test]
    fn missing_paths_and_bad_utf8_are_failures() {
        let tree = TempTree::new("failures");
        let bad = tree.write("bad.yaml", b"apiVersion: workflow/v2\nname: \xff\n");
        let good = tree.write("good.yaml", WORKFLOW);
        let run = run_check(
            &CheckOptions {
                paths: vec![tree.root.join("missing.yaml"), bad, good],
                ..CheckOptions::default()
            },
            &no_problems,
        );
        assert_eq!(run.report.files_checked, 1);
        let messages: Vec<&str> = run
            .report
            .failures
            .iter()
            .map(|f| f.message.as_str())
            .collect();
        assert_eq!(
            messages,
            [
                "not valid UTF-8 (invalid byte at offset 30)",
                "no such file or directory"
            ]
        );
        assert_eq!(exit_code(&run.report, false), 2);
    }

    #[test]
    fn checks_in_parallel_with_stable_order() {
        let tree = TempTree::new("parallel");
        for i in 0..40 {
            tree.write(&format!("w{i:02}.yaml"), format!("{WORKFLOW}# bad {i}\n"));
        }
        let seen = Mutex::new(Vec::new());
        let checker = |file: &SourceFile, project: &Project| {
            seen.lock().expect("lock").push(std::thread::current().id());
            flags_bad(file, project)
        };
        let run = run_check(
            &CheckOptions {
                paths: vec![tree.root.clone()],
                threads: NonZeroUsize::new(4),
                ..CheckOptions::default()
            },
            &checker,
        );
        let names = relative(&tree, &run);
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names.len(), 40);
        assert_eq!(names, sorted);
        assert_eq!(run.report.summary().warnings, 40);
        assert_eq!(seen.lock().expect("lock").len(), 40);
        assert_eq!(exit_code(&run.report, false), 0);
        assert_eq!(exit_code(&run.report, true), 1);
    }

    #[test]
    fn cli_levels_override_the_project_and_suppressions_come_first() {
        let tree = TempTree::new("levels");
        tree.write("donmai.toml", "[lints]\nunused-output = \"deny\"\n");
        let path = tree.write(
            "w.yaml",
            format!("{WORKFLOW}a: bad\nb: bad # donmai-ignore: unused-output\n"),
        );
        let options = |levels: Vec<(Code, LintLevel)>| CheckOptions {
            paths: vec![path.clone()],
            lint_levels: levels,
            ..CheckOptions::default()
        };
        let run = run_check(&options(vec![]), &flags_bad);
        let severities: Vec<Severity> = run.report.diagnostics().map(|(_, d)| d.severity).collect();
        assert_eq!(
            severities,
            [Severity::Error],
            "denied by donmai.toml, one suppressed"
        );
        assert_eq!(exit_code(&run.report, false), 1);

        let run = run_check(
            &options(vec![
                (Code::UNUSED_OUTPUT, LintLevel::Deny),
                (Code::UNUSED_OUTPUT, LintLevel::Allow),
            ]),
            &flags_bad,
        );
        assert_eq!(
            run.report.diagnostics().count(),
            0,
            "the later flag wins; the suppression counts as used"
        );
        assert_eq!(exit_code(&run.report, false), 0);
    }

    #[test]
    fn manifest_problems_are_reported_once() {
        let tree = TempTree::new("manifest");
        tree.write("donmai.toml", "[lintz]\n");
        tree.write("a.yaml", WORKFLOW);
        tree.write("b/c.yaml", WORKFLOW);
        let run = run_check(
            &CheckOptions {
                paths: vec![tree.root.clone()],
                ..CheckOptions::default()
            },
            &no_problems,
        );
        let codes: Vec<Code> = run.report.diagnostics().map(|(_, d)| d.code).collect();
        assert_eq!(codes, [Code::BAD_PROJECT_FILE]);
        assert_eq!(run.report.summary().files, 2);
    }

    #[test]
    fn fix_applies_in_place_and_diff_writes_nothing() {
        let tree = TempTree::new("fix");
        let path = tree.write("w.yaml", format!("{WORKFLOW}a: bad\nb: bad\n"));
        let options = |fix| CheckOptions {
            paths: vec![path.clone()],
            fix,
            ..CheckOptions::default()
        };
        let run = run_check(&options(FixMode::Diff), &flags_bad);
        assert_eq!(run.diffs.len(), 1);
        assert!(
            run.diffs[0].contains("-a: bad\n-b: bad\n+a: good\n+b: good\n"),
            "{}",
            run.diffs[0]
        );
        assert_eq!(run.fixes_applied, 2);
        assert!(
            std::fs::read_to_string(&path)
                .expect("read")
                .contains("bad")
        );

        let run = run_check(&options(FixMode::Apply), &flags_bad);
        assert_eq!((run.fixes_applied, run.files_fixed), (2, 1));
        assert_eq!(run.report.diagnostics().count(), 0);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!("{WORKFLOW}a: good\nb: good\n")
        );
    }

    #[test]
    fn a_crashing_checker_fails_that_file_only() {
        let tree = TempTree::new("crash");
        tree.write("a.yaml", WORKFLOW);
        tree.write("boom.yaml", format!("{WORKFLOW}# boom\n"));
        let checker = |file: &SourceFile, _: &Project| -> Vec<Diagnostic> {
            if file.text().contains("boom") {
                panic!("checker bug");
            }
            Vec::new()
        };
        let run = run_check(
            &CheckOptions {
                paths: vec![tree.root.clone()],
                ..CheckOptions::default()
            },
            &checker,
        );
        assert_eq!(run.report.files_checked, 1);
        assert_eq!(run.report.failures.len(), 1);
        assert!(run.report.failures[0].message.contains("internal error"));
    }

    #[test]
    fn normalizes_current_dir_components() {
        assert_eq!(
            normalize(Path::new("./a/./b.yaml")),
            PathBuf::from("a/b.yaml")
        );
        assert_eq!(normalize(Path::new(".")), PathBuf::from("."));
    }
}
