//! The executor `donmai run` uses: one router over the others.
//!
//! Routing, first rule that applies:
//! 1. a fixture that matches the call (when fixtures are given) answers it,
//!    so a dry run can stand in for `core.http.request` too;
//! 2. `core@1` verbs run as builtins;
//! 3. with fixtures given, any other verb fails with `no_fixture`: a dry run
//!    never reaches a real endpoint by accident;
//! 4. otherwise the plugin major's HTTP endpoint, if the caller configured
//!    one ([`HttpPluginExecutor`]: `donmai run` takes it from the plugin's
//!    manifest or `--plugin-endpoint`; a plan never names one).

use super::core::{CoreExecutor, is_core};
use super::fixtures::Fixtures;
use super::http::HttpPluginExecutor;
use super::{ExecError, VerbCall, VerbExecutor, VerbOutcome, error_kind};
use crate::plan::model::VerbRef;

#[derive(Clone, Default)]
pub struct CompositeExecutor {
    core: CoreExecutor,
    fixtures: Option<Fixtures>,
    http: Option<HttpPluginExecutor>,
}

impl CompositeExecutor {
    pub fn new(core: CoreExecutor) -> CompositeExecutor {
        CompositeExecutor {
            core,
            fixtures: None,
            http: None,
        }
    }

    pub fn with_fixtures(mut self, fixtures: Fixtures) -> CompositeExecutor {
        self.fixtures = Some(fixtures);
        self
    }

    pub fn with_http_plugins(mut self, http: HttpPluginExecutor) -> CompositeExecutor {
        self.http = Some(http);
        self
    }
}

impl VerbExecutor for CompositeExecutor {
    fn execute(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError> {
        if let Some(fixtures) = &self.fixtures
            && fixtures.find(call).is_some()
        {
            return fixtures.execute(call);
        }
        if is_core(call.verb) {
            return self.core.execute(call);
        }
        if let Some(fixtures) = &self.fixtures {
            return fixtures.execute(call);
        }
        match &self.http {
            Some(http) if http.endpoint_for(call.verb).is_some() => http.execute(call),
            _ => Err(ExecError::new(
                error_kind::NO_EXECUTOR,
                format!(
                    "nothing can run `{}`: plugin `{}@{}` has no HTTP endpoint and no fixtures were given",
                    call.qualified, call.verb.plugin, call.verb.major
                ),
            )),
        }
    }

    fn is_inline(&self, verb: &VerbRef) -> bool {
        if is_core(verb) {
            // A fixture may answer a core verb, but only a verb that is
            // inline either way can skip the intent record.
            return self.core.is_inline(verb);
        }
        self.fixtures.is_some()
    }

    fn resolve_gate(&self, call: &VerbCall<'_>) -> Option<Result<VerbOutcome, ExecError>> {
        self.fixtures.as_ref()?.resolve_gate(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{SideEffect, VerbKind};
    use donmai_stdlib::value::Value;

    fn verb(plugin: &str, name: &str) -> VerbRef {
        VerbRef {
            plugin: plugin.into(),
            major: 1,
            verb: name.into(),
            kind: VerbKind::Action,
            side_effect: SideEffect::ReadOnly,
            required_inputs: vec![],
            route_by: None,
            route_cases: Vec::new(),
            handles: vec![],
            events: vec![],
            idempotency_key: None,
        }
    }

    fn run(
        executor: &CompositeExecutor,
        verb: &VerbRef,
        input: serde_json::Value,
    ) -> Result<VerbOutcome, ExecError> {
        let qualified = verb.qualified();
        let input = Value::from_json(&input);
        executor.execute(&VerbCall {
            verb,
            qualified: &qualified,
            input: &input,
            idempotency_key: "k",
            attempt: 1,
            timeout_ms: None,
            run_id: "r",
            step_id: "s",
        })
    }

    #[test]
    fn routes_fixture_then_core_then_refuses() {
        let fixtures = Fixtures::parse(
            "f.yaml",
            "fixtures:\n  - verb: core@1:core.http.request\n    output: {status: 200}\n",
        )
        .unwrap();
        let executor = CompositeExecutor::default().with_fixtures(fixtures);
        let http = verb("core", "core.http.request");
        let out = run(&executor, &http, serde_json::json!({"url": "http://x"})).unwrap();
        assert_eq!(out.output.to_json(), serde_json::json!({"status": 200}));

        let set = verb("core", "core.set");
        let out = run(&executor, &set, serde_json::json!({"values": {"a": 1}})).unwrap();
        assert_eq!(out.output.to_json(), serde_json::json!({"a": 1}));

        let linear = verb("linear", "linear.issue.get");
        let err = run(&executor, &linear, serde_json::json!({})).unwrap_err();
        assert_eq!(err.kind, error_kind::NO_FIXTURE);

        let bare = CompositeExecutor::default();
        let err = run(&bare, &linear, serde_json::json!({})).unwrap_err();
        assert_eq!(err.kind, error_kind::NO_EXECUTOR);
        assert!(err.message.contains("linear@1:linear.issue.get"));
        assert!(bare.is_inline(&set));
        assert!(!bare.is_inline(&http));
        assert!(!bare.is_inline(&linear));
    }
}
