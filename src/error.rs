//! Every failure that crosses the HTTP boundary, and its one mapping to a status and a JSON body.
//!
//! Expected conditions inside the hub (no subscribers, a full queue, a replay gap) are values, not
//! errors; only what a client must be told about lives here. The wire shape is always
//! `{"error":{"code":"…","message":"…"}}`, and `status()`/`code()` below are the single place where
//! a failure gets its status and stable code.

use bytes::Bytes;
use http::StatusCode;

use crate::auth::TokenError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is well-formed HTTP but its content is not acceptable.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// 401 on the API-key endpoints.
    #[error("missing or invalid API key (send Authorization: Bearer <api key>)")]
    InvalidApiKey,
    /// 401 on the stream endpoint.
    #[error("{0}")]
    InvalidToken(#[from] TokenError),
    #[error("origin {0:?} is not allowed")]
    OriginNotAllowed(String),
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method not allowed; allowed: {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive within {secs} s")]
    BodyTimeout { secs: u64 },
    #[error(
        "Content-Type must be application/json (with curl: -H 'Content-Type: application/json')"
    )]
    UnsupportedMediaType,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 with a stable code, e.g. `invalid("invalid_channel", "…")`.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::InvalidApiKey | ApiError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { code, .. } => code,
            ApiError::InvalidApiKey => "invalid_api_key",
            ApiError::InvalidToken(TokenError::Expired) => "token_expired",
            ApiError::InvalidToken(_) => "invalid_token",
            ApiError::OriginNotAllowed(_) => "origin_not_allowed",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::BodyTimeout { .. } => "body_timeout",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The JSON body: `{"error":{"code":"…","message":"…"}}`.
    pub fn body(&self) -> Bytes {
        let v = serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}});
        Bytes::from(v.to_string())
    }
}
