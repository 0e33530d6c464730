//! The UI's errors, and how each becomes an HTTP answer: `{"error": "…"}` with a status
//! that says whose fault it is.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flowpack_core::package::PackageError;
use flowpack_core::store::StoreError;
use flowpack_runtime::RuntimeError;

/// What went wrong answering a request, or serving at all.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// A path segment or query value that is not the name it stands for.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing of that name in the store.
    #[error("{0}")]
    NotFound(String),
    /// Reading the store failed (store errors name the key, never credentials).
    #[error(transparent)]
    Store(Box<StoreError>),
    /// Reading a package failed.
    #[error(transparent)]
    Package(Box<PackageError>),
    /// Reading runs failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The HTTP server stopped with an error.
    #[error("the UI server failed: {0}")]
    Serve(#[source] std::io::Error),
}

impl UiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Runtime(RuntimeError::Invalid(_)) => {
                StatusCode::BAD_REQUEST
            }
            Self::NotFound(_) | Self::Runtime(RuntimeError::NotFound(_)) => StatusCode::NOT_FOUND,
            Self::Store(e) if e.is_not_found() => StatusCode::NOT_FOUND,
            Self::Runtime(RuntimeError::Store(e)) if e.is_not_found() => StatusCode::NOT_FOUND,
            Self::Package(e) => match &**e {
                PackageError::Missing { .. } => StatusCode::NOT_FOUND,
                PackageError::Store(e) if e.is_not_found() => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_GATEWAY,
            },
            Self::Store(_) | Self::Runtime(_) => StatusCode::BAD_GATEWAY,
            Self::Serve(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        Self::Store(Box::new(e))
    }
}

impl From<PackageError> for UiError {
    fn from(e: PackageError) -> Self {
        Self::Package(Box::new(e))
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!("{self}");
        }
        (status, Json(serde_json::json!({"error": self.to_string()}))).into_response()
    }
}
