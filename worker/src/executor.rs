//! The verb executor `donmai run` hands the engine: the builtin `core@1`
//! verbs, `--fixtures` when given, and plugins served over HTTP at the
//! `--plugin-endpoint` URLs (plugin manifests name no endpoint yet).
//!
//! A verb nothing can run fails its step with kind `no_executor`; the
//! message says how to give it an executor, and `run` warns before starting
//! about every verb of the plan in that situation.

use donmai_runtime::exec::core::is_core;
use donmai_runtime::exec::{
    CompositeExecutor, CoreExecutor, ExecError, Fixtures, HttpClient, HttpPluginExecutor, VerbCall,
    VerbExecutor, VerbOutcome, error_kind,
};
use donmai_runtime::plan::model::{Plan, VerbKind, VerbRef};
use std::path::Path;

/// Options shared by `run` and `run --resume`.
pub struct ExecutorOptions<'a> {
    pub fixtures: Option<&'a Path>,
    pub plugin_endpoints: &'a [String],
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
        for spec in options.plugin_endpoints {
            let (plugin, url) = parse_endpoint(spec)?;
            http = http.with_endpoint(plugin, url);
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

/// `linear=http://…` or `linear@1=http://…`.
fn parse_endpoint(spec: &str) -> Result<(String, String), String> {
    let bad = || {
        format!(
            "--plugin-endpoint `{spec}`: expected PLUGIN=URL or PLUGIN@MAJOR=URL, e.g. linear=http://127.0.0.1:8080/verbs"
        )
    };
    let (plugin, url) = spec.split_once('=').ok_or_else(bad)?;
    let (name, major) = match plugin.split_once('@') {
        Some((name, major)) => (name, Some(major)),
        None => (plugin, None),
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    let major_ok = major.is_none_or(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()));
    if !name_ok || !major_ok {
        return Err(bad());
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "--plugin-endpoint `{spec}`: the URL must start with http:// or https://"
        ));
    }
    Ok((plugin.to_string(), url.to_string()))
}

impl VerbExecutor for RunExecutor {
    fn execute(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError> {
        self.inner.execute(call).map_err(|mut error| {
            if error.kind == error_kind::NO_EXECUTOR {
                error.message = format!(
                    "nothing can run `{}`: give recorded answers with --fixtures FILE (a dry run), or serve plugin `{}` with --plugin-endpoint {}=URL",
                    call.qualified, call.verb.plugin, call.verb.plugin
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

#[cfg(test)]
mod tests {
    use super::parse_endpoint;

    #[test]
    fn endpoints_parse_and_refuse() {
        assert_eq!(
            parse_endpoint("linear=http://127.0.0.1:9/v").unwrap(),
            ("linear".into(), "http://127.0.0.1:9/v".into())
        );
        assert_eq!(parse_endpoint("linear@2=https://x").unwrap().0, "linear@2");
        for bad in [
            "linear",
            "=http://x",
            "Linear=http://x",
            "linear@=http://x",
            "linear=ftp://x",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }
}
