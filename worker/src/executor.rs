//! The verb executor `donmai run` hands the engine: the builtin `core@1`
//! verbs, `--fixtures` when given, and plugins served over HTTP at the
//! endpoints [`crate::endpoints`] resolved for the plan.
//!
//! A verb nothing can run fails its step with kind `no_executor`; the
//! message says how to give it an executor, and `run` warns before starting
//! about every verb of the plan in that situation.

use crate::endpoints::Resolution;
use donmai_runtime::exec::core::is_core;
use donmai_runtime::exec::{
    CompositeExecutor, CoreExecutor, ExecError, Fixtures, HttpClient, HttpPluginExecutor, VerbCall,
    VerbExecutor, VerbOutcome, error_kind,
};
use donmai_runtime::plan::model::{Plan, VerbKind, VerbRef};
use std::path::Path;

/// What a run's executor is made of.
pub struct ExecutorOptions<'a> {
    pub fixtures: Option<&'a Path>,
    /// The plan's plugin endpoints (ignored with fixtures: a dry run never
    /// reaches a real endpoint).
    pub endpoints: &'a Resolution,
    pub log: donmai_runtime::exec::core::LogSink,
}

pub struct RunExecutor {
    inner: CompositeExecutor,
    has_fixtures: bool,
    http: HttpPluginExecutor,
}

impl RunExecutor {
    pub fn build(options: &ExecutorOptions<'_>) -> Result<RunExecutor, String> {
        let core = CoreExecutor::new(HttpClient::new()).with_log_sink(options.log.clone());
        let mut inner = CompositeExecutor::new(core);
        let mut has_fixtures = false;
        if let Some(path) = options.fixtures {
            let fixtures = Fixtures::load(path).map_err(|errors| {
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
            inner = inner.with_fixtures(fixtures);
            has_fixtures = true;
        }
        let mut http = HttpPluginExecutor::new(HttpClient::new());
        for (pin, endpoint) in &options.endpoints.endpoints {
            http = http.with_plugin_endpoint(pin.clone(), endpoint.clone());
        }
        inner = inner.with_http_plugins(http.clone());
        Ok(RunExecutor {
            inner,
            has_fixtures,
            http,
        })
    }

    /// Whether a call of `verb` has somewhere to go.
    fn can_run(&self, verb: &VerbRef) -> bool {
        is_core(verb) || self.has_fixtures || self.http.endpoint_for(verb).is_some()
    }

    /// The verbs of `plan` that nothing can run, qualified, for a warning
    /// before the run starts (they may sit on branches the run never takes).
    pub fn unrunnable(&self, plan: &Plan) -> Vec<String> {
        let mut names: Vec<String> = plan
            .verbs
            .iter()
            // A gate verb waits for a signal; it needs an executor only
            // when a fixture answers it in a dry run.
            .filter(|verb| !self.can_run(verb) && verb.kind != VerbKind::Gate)
            .map(VerbRef::qualified)
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// How to give `plugin`'s verbs an executor, for messages.
pub fn serve_hint(plugin: &str) -> String {
    format!(
        "give recorded answers with --fixtures FILE (a dry run), or serve plugin `{plugin}` over HTTP: `endpoint:` in its manifest, or --plugin-endpoint {plugin}=URL"
    )
}

impl VerbExecutor for RunExecutor {
    fn execute(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError> {
        self.inner.execute(call).map_err(|mut error| {
            if error.kind == error_kind::NO_EXECUTOR {
                error.message = format!(
                    "nothing can run `{}`: {}",
                    call.qualified,
                    serve_hint(&call.verb.plugin)
                );
            }
            error
        })
    }

    fn is_inline(&self, verb: &VerbRef) -> bool {
        self.inner.is_inline(verb)
    }

    fn resolve_gate(&self, call: &VerbCall<'_>) -> Option<Result<VerbOutcome, ExecError>> {
        self.inner.resolve_gate(call)
    }
}
