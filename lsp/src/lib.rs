//! `donmai-lsp`: the language server editors use to write donmai workflows.
//!
//! It owns no checking logic. Every answer comes from the compiler's
//! analysis (`donmai_compiler`), so an editor shows exactly what `donmaic
//! check` reports in CI. This crate owns the protocol: document sync, the
//! analysis thread and its caches, and the conversion between byte offsets
//! and LSP positions.

pub mod analysis;
pub mod convert;
pub mod documents;
pub mod editing;
pub mod navigation;
pub mod server;
pub mod transport;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tower_lsp_server::LspService;

use analysis::{Publish, Shared};
use server::Backend;

/// Serves one client over `input`/`output` until it exits. Returns
/// whether the session ended properly (`shutdown` before `exit`), which
/// decides the exit status the protocol asks for.
pub async fn serve<I, O>(input: I, output: O) -> std::io::Result<bool>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    let shared = Arc::new(Shared::new());
    let (publish_tx, mut publish_rx) = tokio::sync::mpsc::unbounded_channel::<Publish>();
    let jobs = analysis::spawn(shared.clone(), publish_tx)?;
    let (service, socket) = LspService::new(|client| {
        let publisher = client.clone();
        // One task publishes in the order results were computed.
        tokio::spawn(async move {
            while let Some(publish) = publish_rx.recv().await {
                publisher
                    .publish_diagnostics(publish.uri, publish.diagnostics, publish.version)
                    .await;
            }
        });
        Backend::new(client, shared.clone(), jobs)
    });
    transport::serve(input, output, service, socket).await?;
    Ok(shared.shutdown_requested())
}
