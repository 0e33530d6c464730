//! `flowpack ui`: a read-only web UI over a flowpack store, served from the one binary.
//!
//! The server reads the store directly — the same records `show`, `logs` and the Client API
//! read ([`flowpack_runtime::inspect`]) — and answers a JSON API under `/api/` (docs/ui.md
//! specifies it) that the page uses and scripts can use too. The page's assets are compiled
//! into the binary ([`assets`]), so nothing but the store is needed at run time.
//!
//! - [`reader`] owns every store read and the bounded in-memory caches of what cannot change.
//! - [`api`] owns the routes and the JSON they answer.
//! - [`graph`] turns a flow and a run's tasks into the DAG the run page draws.
//! - [`preview`] says what an artifact's bytes are (text, JSON, CSV, image, pickle) without
//!   running any of it.
//!
//! Safety: it only answers GET; every path segment is checked as the name it stands for
//! before a key is made of it, so no URL reaches outside the store's layout; artifacts are
//! sent as attachments (or as images by their sniffed type) with `nosniff`, and every page
//! carries a Content-Security-Policy that allows only the server's own script.

pub mod api;
mod assets;
mod error;
pub mod graph;
pub mod preview;
pub mod reader;

use std::sync::Arc;

use flowpack_core::store::Store;

pub use error::UiError;
pub use reader::Limits;

/// Serves the UI of `store` on `listener` until `shutdown` completes.
pub async fn serve(
    store: Store,
    listener: tokio::net::TcpListener,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), UiError> {
    let reader = Arc::new(reader::Reader::new(store, limits));
    reader.clone().warm_in_background();
    let app = api::router(reader);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(UiError::Serve)
}
