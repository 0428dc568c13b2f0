//! `donmai run`: start a run (or, with `--resume`, take over every
//! unfinished run in the store) and drive it until it ends.
//!
//! Driving: the engine advances until nothing can move without time passing
//! or a signal arriving; then the loop waits — on the real clock, polling
//! the store every [`POLL`] for signals other processes delivered — or, with
//! `--virtual-time`, moves the clock straight to the next due timer. A run
//! can also end by another process's hand (`donmai cancel`): the loop checks
//! the store for that while it waits, and prints the event from the store.
//!
//! Interrupting (SIGINT, SIGTERM) stops the loop between transitions; every
//! committed transition is durable, and `donmai run --resume` continues.

use crate::audit::{AuditHook, signer_for};
use crate::cli::{OutputFormat, RunArgs};
use crate::endpoints::{self, Overrides, ProjectPlugins, Refused, Resolution};
use crate::executor::{ExecutorOptions, RunExecutor, serve_hint};
use crate::location::{existing_store_dir, store_dir};
use crate::payload::{read_json, trigger_payload};
use crate::plans;
use crate::printer::Printer;
use donmai_runtime::clock::{Clock, SystemClock, VirtualClock};
use donmai_runtime::engine::{
    Engine, EngineConfig, EngineError, PlanSources, RunId, RunInfo, RunStatus, StepStatus,
    Takeover, query,
};
use donmai_runtime::plan::model::{GateType, LevelIx, Plan, StepDef, StepKind};
use donmai_runtime::store::Store;
use donmai_runtime::store::lmdb::HeedStore;
use donmai_runtime::verify::VerifiedPlan;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often a waiting run looks at the store for signals and for runs
/// ended elsewhere.
const POLL: Duration = Duration::from_millis(150);
/// The longest uninterrupted sleep, so Ctrl-C is answered promptly.
const SLEEP_SLICE: Duration = Duration::from_millis(50);

pub const EXIT_OK: u8 = 0;
pub const EXIT_RUN_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
/// The shell's convention for a process stopped by SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}

/// The clock `run` gives the engines, and a handle to move it in virtual
/// time.
struct Time {
    clock: Arc<dyn Clock>,
    virtual_clock: Option<VirtualClock>,
}

impl Time {
    fn new(virtual_time: bool) -> Time {
        if virtual_time {
            // Virtual time starts at the real time, so event times read
            // naturally and stay after those of earlier runs in the store.
            let clock = VirtualClock::new(SystemClock.now_ms());
            Time {
                clock: Arc::new(clock.clone()),
                virtual_clock: Some(clock),
            }
        } else {
            Time {
                clock: Arc::new(SystemClock),
                virtual_clock: None,
            }
        }
    }
}

/// One plan's engine and the runs this process drives with it.
struct Driven {
    engine: Engine,
    plan: Arc<VerifiedPlan>,
    runs: Vec<RunId>,
}

/// What became of a run this process drove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Ended(RunStatus),
    /// Another process holds it now.
    HandedOff,
}

struct Context<'a> {
    store: Arc<HeedStore>,
    store_dir: &'a Path,
    /// Where to look for the plans' source files, for error positions: the
    /// folder of the workflow or plan file run, then the current one.
    source_dirs: Vec<PathBuf>,
    printer: Printer,
    time: Time,
    detach: bool,
    interrupted: Arc<AtomicBool>,
    format: OutputFormat,
}

pub fn run_command(args: &RunArgs, interrupted: Arc<AtomicBool>) -> ExitCode {
    if args.resume {
        return resume_command(args, interrupted);
    }
    let Some(workflow) = args.workflow.as_deref() else {
        return usage("name a workflow or a plan to run, or pass --resume");
    };
    let loaded = match plans::load(workflow, &args.trust_key) {
        Ok(loaded) => loaded,
        Err(plans::Refused(message)) => return usage(&message),
    };
    let plan = Arc::new(loaded.plan);
    let triggers = &plan.levels[0].triggers;
    let trigger = match &args.trigger {
        Some(id) => match triggers.iter().find(|t| &t.id == id) {
            Some(trigger) => trigger,
            None => {
                return usage(&format!(
                    "the workflow has no trigger `{id}`; its triggers: {}",
                    list_or_none(triggers.iter().map(|t| t.id.as_str()))
                ));
            }
        },
        None => match triggers.as_slice() {
            [only] => only,
            [] => return usage("the workflow has no triggers: there is nothing to start it by"),
            several => {
                return usage(&format!(
                    "the workflow has several triggers; choose one with --trigger: {}",
                    list_or_none(several.iter().map(|t| t.id.as_str()))
                ));
            }
        },
    };
    let payload_json = match args.payload.as_deref() {
        Some(text) => match read_json(text, "payload") {
            Ok(json) => json,
            Err(message) => return usage(&message),
        },
        None => serde_json::json!({}),
    };
    let payload = match trigger_payload(trigger, &payload_json) {
        Ok(payload) => payload,
        Err(message) => return usage(&message),
    };
    let trigger_id = trigger.id.clone();
    let overrides = match Overrides::parse(&args.plugin_endpoints) {
        Ok(overrides) => overrides,
        Err(message) => return usage(&message),
    };
    // The project of the file named, as for the default store.
    let resolution = match endpoint_project(args, workflow) {
        Ok(Some(project)) => match endpoints::resolve(&plan, &project, &overrides) {
            Ok(resolution) => resolution,
            Err(refused) => return refused_usage(refused),
        },
        Ok(None) => Resolution::default(),
        Err(message) => return usage(&message),
    };
    for warning in &resolution.warnings {
        eprintln!("warning: {warning}");
    }
    warn_unused_overrides(args, &overrides, [&resolution]);
    let dir = match store_dir(args.store.store.as_deref(), workflow) {
        Ok(dir) => dir,
        Err(message) => return usage(&message),
    };
    let store = match open_store(&dir) {
        Ok(store) => store,
        Err(message) => return usage(&message),
    };
    if let Err(message) = plans::remember(store.as_ref(), plan.id(), &loaded.bytes) {
        return usage(&message);
    }
    let printer = Printer::new(args.format);
    let executor = match build_executor(args, &printer, &resolution) {
        Ok(executor) => executor,
        Err(message) => return usage(&message),
    };
    warn_unrunnable(&executor, &plan);
    let started_from = workflow
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let context = Context {
        store,
        store_dir: &dir,
        source_dirs: vec![started_from.to_path_buf(), PathBuf::from(".")],
        printer,
        time: Time::new(args.virtual_time),
        detach: args.detach,
        interrupted,
        format: args.format,
    };
    let mut engine = match new_engine(&context, &plan, executor) {
        Ok(engine) => engine,
        Err(message) => return usage(&message),
    };
    let run = match engine.start_run(&trigger_id, payload) {
        Ok(run) => run,
        Err(error) => return usage(&format!("cannot start the run: {error}")),
    };
    let mut driven = vec![Driven {
        engine,
        plan,
        runs: vec![run],
    }];
    finish(drive(&context, &mut driven), &context)
}

fn resume_command(args: &RunArgs, interrupted: Arc<AtomicBool>) -> ExitCode {
    let dir = match existing_store_dir(args.store.store.as_deref()) {
        Ok(dir) => dir,
        Err(message) => return usage(&message),
    };
    let store = match open_store(&dir) {
        Ok(store) => store,
        Err(message) => return usage(&message),
    };
    let stored = match plans::stored(store.as_ref()) {
        Ok(plans) => plans,
        Err(message) => return usage(&message),
    };
    let printer = Printer::new(args.format);
    let context = Context {
        store,
        store_dir: &dir,
        source_dirs: vec![PathBuf::from(".")],
        printer,
        time: Time::new(args.virtual_time),
        detach: args.detach,
        interrupted,
        format: args.format,
    };
    let overrides = match Overrides::parse(&args.plugin_endpoints) {
        Ok(overrides) => overrides,
        Err(message) => return usage(&message),
    };
    // Without a file to start from, the project is the current directory's,
    // where the default store is looked for too.
    let project = match endpoint_project(args, Path::new(".")) {
        Ok(project) => project,
        Err(message) => return usage(&message),
    };
    let mut driven = Vec::new();
    let mut resolutions = Vec::new();
    for plan in stored {
        let plan = Arc::new(plan);
        // A plan whose endpoints cannot be resolved stops the command only
        // if it has runs to resume: old plans in the store may name plugins
        // this deployment no longer serves.
        let resolution = match &project {
            Some(project) => endpoints::resolve(&plan, project, &overrides),
            None => Ok(Resolution::default()),
        };
        let executor = match build_executor(
            args,
            &context.printer,
            resolution.as_ref().unwrap_or(&Resolution::default()),
        ) {
            Ok(executor) => executor,
            Err(message) => return usage(&message),
        };
        let unrunnable = executor.unrunnable(&plan);
        let mut engine = match new_engine(&context, &plan, executor) {
            Ok(engine) => engine,
            Err(message) => return usage(&message),
        };
        let runs = match engine.resume(Takeover::Unowned) {
            Ok(runs) => runs,
            Err(error) => {
                return usage(&format!(
                    "cannot resume runs of plan {}: {error}",
                    plan.id()
                ));
            }
        };
        if runs.is_empty() {
            continue;
        }
        let resolution = match resolution {
            Ok(resolution) => resolution,
            Err(refused) => {
                eprint!("{}", refused.diagnostics);
                return usage(&format!(
                    "cannot resume runs of plan {}: {}; after fixing it, `donmai run --resume` continues them",
                    plan.id(),
                    refused.message
                ));
            }
        };
        for warning in &resolution.warnings {
            eprintln!("warning: {warning}");
        }
        print_unrunnable(&unrunnable);
        resolutions.push(resolution);
        for run in &runs {
            let next = query::events(context.store.as_ref(), run)
                .ok()
                .and_then(|events| events.last().map(|e| e.seq + 1))
                .unwrap_or(0);
            context.printer.skip_until(run, next);
        }
        driven.push(Driven { engine, plan, runs });
    }
    let taken: usize = driven.iter().map(|d| d.runs.len()).sum();
    if taken > 0 {
        warn_unused_overrides(args, &overrides, &resolutions);
    }
    let unfinished = query::list_runs(context.store.as_ref())
        .map(|runs| runs.iter().filter(|r| !r.status.is_terminal()).count())
        .unwrap_or(taken);
    if context.format == OutputFormat::Human || taken == 0 {
        eprintln!(
            "resuming {taken} unfinished run{} from {}",
            if taken == 1 { "" } else { "s" },
            dir.display()
        );
    }
    if unfinished > taken {
        eprintln!(
            "note: {} unfinished run{} left alone: held by another live process, or of a plan this store does not keep",
            unfinished - taken,
            if unfinished - taken == 1 {
                " is"
            } else {
                "s are"
            }
        );
    }
    if taken == 0 {
        return ExitCode::SUCCESS;
    }
    context.printer.set_show_run(taken > 1);
    finish(drive(&context, &mut driven), &context)
}

fn list_or_none<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn open_store(dir: &Path) -> Result<Arc<HeedStore>, String> {
    HeedStore::open(dir)
        .map(Arc::new)
        .map_err(|e| format!("store {}: {e}", dir.display()))
}

fn build_executor(
    args: &RunArgs,
    printer: &Printer,
    endpoints: &Resolution,
) -> Result<RunExecutor, String> {
    RunExecutor::build(&ExecutorOptions {
        fixtures: args.fixtures.as_deref(),
        endpoints,
        log: printer.log_sink(),
    })
}

/// The project whose plugin manifests give endpoints, found around `near`;
/// `None` in a dry run, which calls no endpoint.
fn endpoint_project(args: &RunArgs, near: &Path) -> Result<Option<ProjectPlugins>, String> {
    if args.fixtures.is_some() {
        if !args.plugin_endpoints.is_empty() {
            eprintln!(
                "warning: --plugin-endpoint is not used with --fixtures: a dry run never reaches a real endpoint"
            );
        }
        return Ok(None);
    }
    ProjectPlugins::discover(near).map(Some)
}

fn refused_usage(refused: Refused) -> ExitCode {
    eprint!("{}", refused.diagnostics);
    usage(&refused.message)
}

fn warn_unused_overrides<'r>(
    args: &RunArgs,
    overrides: &Overrides,
    resolutions: impl IntoIterator<Item = &'r Resolution>,
) {
    if args.fixtures.is_some() {
        return;
    }
    for plugin in overrides.unused(resolutions) {
        eprintln!(
            "warning: --plugin-endpoint {plugin}=…: no verb the run calls belongs to `{plugin}`"
        );
    }
}

fn warn_unrunnable(executor: &RunExecutor, plan: &Plan) {
    print_unrunnable(&executor.unrunnable(plan));
}

fn print_unrunnable(verbs: &[String]) {
    for verb in verbs {
        let plugin = verb.split('@').next().unwrap_or(verb);
        eprintln!(
            "warning: nothing can run `{verb}` here; steps that call it will fail ({})",
            serve_hint(plugin)
        );
    }
}

fn new_engine(
    context: &Context<'_>,
    plan: &Arc<VerifiedPlan>,
    executor: RunExecutor,
) -> Result<Engine, String> {
    let config = EngineConfig {
        // This process drives the runs it started or resumed, nothing else:
        // runs of crashed processes are `--resume`'s to take.
        adopt_stale_runs: false,
        ..EngineConfig::default()
    };
    let store: Arc<dyn Store> = context.store.clone();
    let mut engine = Engine::with_config(
        plan.clone(),
        store,
        Arc::new(executor),
        context.time.clock.clone(),
        config,
    )
    .map_err(|e| e.to_string())?;
    let dirs: Vec<&Path> = context.source_dirs.iter().map(PathBuf::as_path).collect();
    engine.set_sources(PlanSources::find(plan, &dirs));
    engine.set_event_hook(Box::new(AuditHook {
        signer: signer_for(context.store_dir)?,
    }));
    let printer = context.printer.clone();
    engine.set_event_sink(Box::new(move |event| printer.print(event)));
    Ok(engine)
}

/// A run and the steps at which it waits for a signal.
type WaitingRun = (RunId, Vec<String>);

enum Outcome {
    /// Every run ended (or went to another process).
    Ended(Vec<(RunId, Ending)>),
    /// Only gates remain (`--detach`): these runs wait, with their gates.
    Detached(Vec<WaitingRun>),
    Interrupted(Vec<RunId>),
}

fn drive(context: &Context<'_>, driven: &mut [Driven]) -> Result<Outcome, String> {
    let mut endings: Vec<(RunId, Ending)> = Vec::new();
    loop {
        let mut next_timer: Option<u64> = None;
        for d in driven.iter_mut() {
            let idle = drive_engine(&mut d.engine)?;
            if let Some(due) = idle.next_timer_ms {
                next_timer = Some(next_timer.map_or(due, |t: u64| t.min(due)));
            }
        }
        collect_endings(context, driven, &mut endings, false)?;
        if driven.iter().all(|d| d.runs.is_empty()) {
            return Ok(Outcome::Ended(endings));
        }
        if context.interrupted.load(Ordering::SeqCst) {
            return Ok(Outcome::Interrupted(
                driven.iter().flat_map(|d| d.runs.clone()).collect(),
            ));
        }
        if context.detach
            && let Some(waiting) = only_gates_remain(context, driven)?
        {
            return Ok(Outcome::Detached(waiting));
        }
        let now = context.time.clock.now_ms();
        if let (Some(virtual_clock), Some(due)) = (&context.time.virtual_clock, next_timer) {
            if due > now {
                virtual_clock.set_ms(due);
            }
            continue;
        }
        let wait = match next_timer {
            Some(due) => Duration::from_millis(due.saturating_sub(now)).min(POLL),
            None => POLL,
        };
        sleep_unless_interrupted(wait, &context.interrupted);
        // Runs may have ended elsewhere while this process waited.
        collect_endings(context, driven, &mut endings, true)?;
        if driven.iter().all(|d| d.runs.is_empty()) {
            return Ok(Outcome::Ended(endings));
        }
    }
}

/// Drives one engine until it is idle. A conflict (another process changed
/// a run under it) is not an error of this command: the engine has reloaded
/// or dropped the run; driving goes on.
fn drive_engine(engine: &mut Engine) -> Result<donmai_runtime::engine::Idle, String> {
    let mut conflicts = 0;
    loop {
        match engine.drive_until_idle() {
            Ok(idle) => return Ok(idle),
            Err(EngineError::Conflict(_)) if conflicts < 100 => conflicts += 1,
            Err(error) => return Err(error.to_string()),
        }
    }
}

fn sleep_unless_interrupted(total: Duration, interrupted: &AtomicBool) {
    let mut left = total;
    while !left.is_zero() && !interrupted.load(Ordering::SeqCst) {
        let slice = left.min(SLEEP_SLICE);
        std::thread::sleep(slice);
        left -= slice;
    }
}

/// Moves the runs that ended — or that this process no longer holds — from
/// `driven` to `endings`, printing any of their events not printed yet.
/// With `check_store`, also runs the engine still holds but that ended in
/// the store (cancelled by another process while waiting).
fn collect_endings(
    context: &Context<'_>,
    driven: &mut [Driven],
    endings: &mut Vec<(RunId, Ending)>,
    check_store: bool,
) -> Result<(), String> {
    for d in driven.iter_mut() {
        let mut still = Vec::new();
        for run in std::mem::take(&mut d.runs) {
            if d.engine.is_active(&run) && !check_store {
                still.push(run);
                continue;
            }
            let info = query::run_info(context.store.as_ref(), &run).map_err(|e| e.to_string())?;
            let status = info.as_ref().map(|i| i.run.status);
            match status {
                Some(status) if status.is_terminal() => {
                    context.printer.catch_up(context.store.as_ref(), &run)?;
                    endings.push((run, Ending::Ended(status)));
                }
                _ if d.engine.is_active(&run) => still.push(run),
                _ => {
                    eprintln!("note: run {run} is now driven by another process");
                    endings.push((run, Ending::HandedOff));
                }
            }
        }
        d.runs = still;
    }
    Ok(())
}

/// With `--detach`: whether every run this process drives waits only on
/// gates for signals — nothing runs, retries or sleeps. Returns the runs
/// and their waiting gates when so.
fn only_gates_remain(
    context: &Context<'_>,
    driven: &[Driven],
) -> Result<Option<Vec<WaitingRun>>, String> {
    let mut waiting = Vec::new();
    let mut any_gate = false;
    for d in driven {
        for run in &d.runs {
            let Some(info) =
                query::run_info(context.store.as_ref(), run).map_err(|e| e.to_string())?
            else {
                return Ok(None);
            };
            match gates_of(&d.plan, &info) {
                Some(gates) => {
                    any_gate |= !gates.is_empty();
                    waiting.push((run.clone(), gates));
                }
                None => return Ok(None),
            }
        }
    }
    Ok(any_gate.then_some(waiting))
}

/// The signal gates a run waits on, or `None` when something else is still
/// open (a call, a retry's backoff, a timer or `core.wait`).
fn gates_of(plan: &Plan, info: &RunInfo) -> Option<Vec<String>> {
    let mut gates = Vec::new();
    for step in &info.steps {
        match step.status {
            status if status.is_terminal() || status == StepStatus::Pending => {}
            StepStatus::Waiting => match step_def(plan, &step.path).map(|d| &d.kind) {
                Some(StepKind::Gate { gate, .. }) if gate.gate_type != GateType::Timer => {
                    gates.push(step.step_id.clone());
                }
                _ => return None,
            },
            StepStatus::Running => match step_def(plan, &step.path).map(|d| &d.kind) {
                // A group or loop is "running" while its frame runs; its
                // own steps are listed too and decide.
                Some(StepKind::Group { .. } | StepKind::Loop { .. }) => {}
                _ => return None,
            },
            _ => return None,
        }
    }
    Some(gates)
}

/// The definition of the step instance at store path `path` (`4`, `2.1/0`:
/// one `{step}.{iteration}/` per enclosing group or loop frame).
fn step_def<'p>(plan: &'p Plan, path: &str) -> Option<&'p StepDef> {
    let mut level: LevelIx = 0;
    let mut segments = path.split('/').peekable();
    while let Some(segment) = segments.next() {
        let index: usize = segment.split('.').next()?.parse().ok()?;
        let def = plan.levels.get(level as usize)?.steps.get(index)?;
        if segments.peek().is_none() {
            return Some(def);
        }
        level = match def.kind {
            StepKind::Group { level } | StepKind::Loop { level, .. } => level,
            _ => return None,
        };
    }
    None
}

fn finish(outcome: Result<Outcome, String>, context: &Context<'_>) -> ExitCode {
    let resume_hint = format!(
        "donmai run --resume --store {}",
        shell_path(context.store_dir)
    );
    match outcome {
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!("the store keeps every committed step; continue with `{resume_hint}`");
            ExitCode::from(EXIT_USAGE)
        }
        Ok(Outcome::Interrupted(runs)) => {
            eprintln!(
                "interrupted: {} still unfinished ({}); continue with `{resume_hint}`",
                plural_runs(runs.len()),
                runs.iter()
                    .map(RunId::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Ok(Outcome::Detached(runs)) => {
            for (run, gates) in &runs {
                if gates.is_empty() {
                    continue;
                }
                eprintln!(
                    "detached: run {run} waits at {}; deliver with `donmai signal --store {} EVENT_TYPE --data JSON`, then continue with `{resume_hint}`",
                    gates.join(", "),
                    shell_path(context.store_dir)
                );
            }
            ExitCode::from(EXIT_OK)
        }
        Ok(Outcome::Ended(endings)) => {
            let failed = endings.iter().any(|(_, ending)| {
                matches!(
                    ending,
                    Ending::Ended(RunStatus::Failed | RunStatus::Cancelled)
                )
            });
            ExitCode::from(if failed { EXIT_RUN_FAILED } else { EXIT_OK })
        }
    }
}

fn plural_runs(n: usize) -> String {
    if n == 1 {
        "1 run is".into()
    } else {
        format!("{n} runs are")
    }
}

/// A path as a user would retype it (quoted when it has spaces).
fn shell_path(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@".contains(&b))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
