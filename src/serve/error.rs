//! Errors of the server: [`ServeError`] for what stops it from starting, [`ApiError`] for a
//! request answered with an HTTP error in OpenAI's JSON shape
//! (`{"error": {"message", "type", "code", ..}}`). Must not panic on any input.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("loading the base model: {0}")]
    Model(#[from] crate::runtime::models::error::ModelError),
    #[error("reading the tokenizer: {0}")]
    Tokenizer(String),
    #[error("the chat template of the base model does not compile: {0}")]
    ChatTemplate(String),
    #[error("{0}")]
    Load(String),
    #[error("adapter `{name}`: {message}")]
    Adapter { name: String, message: String },
    #[error("`{0}` is served twice: every adapter needs its own name, different from the base")]
    DuplicateName(String),
    #[error("cannot listen on {addr}: {message}")]
    Bind { addr: String, message: String },
    #[error("the server failed: {0}")]
    Io(String),
    #[error("{arch} models cannot be served yet: per-request decoding exists for llama, mistral and qwen2")]
    Unsupported { arch: String },
}

/// An HTTP error answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    /// OpenAI's `type`: `invalid_request_error`, `not_found_error`, `rate_limit_error`,
    /// `server_error`.
    pub kind: &'static str,
    /// A short machine-readable code (`model_not_found`, `max_tokens_too_large`, ..).
    pub code: &'static str,
    pub message: String,
    /// For an unknown model: the names that are served.
    pub models: Option<Vec<String>>,
}

impl ApiError {
    /// 400 with `code` and `message`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code,
            message: message.into(),
            models: None,
        }
    }

    /// 404 for a `model` that is neither the base nor a known adapter.
    pub fn unknown_model(name: &str, served: Vec<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "not_found_error",
            code: "model_not_found",
            message: format!(
                "the model `{name}` is not served; served models: {}",
                served.join(", ")
            ),
            models: Some(served),
        }
    }

    /// 429 when the queue is full.
    pub fn queue_full(limit: usize) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "rate_limit_error",
            code: "queue_full",
            message: format!("{limit} requests are already waiting; retry later"),
            models: None,
        }
    }

    /// 503 while the server is shutting down.
    pub fn shutting_down() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            code: "shutting_down",
            message: "the server is shutting down".into(),
            models: None,
        }
    }

    /// 500 for a failure inside the model or the server.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            code: "internal_error",
            message: message.into(),
            models: None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({
            "message": self.message,
            "type": self.kind,
            "param": null,
            "code": self.code,
        });
        if let Some(models) = &self.models {
            error["models"] = json!(models);
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
