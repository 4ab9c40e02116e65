//! What every HTTP handler shares: the API error (always JSON `{code, name, message}`
//! with the matching HTTP status), extractor error mapping, reading bodies within the
//! size and time limits, the bearer token, metrics, and the not-found fallback.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::StreamExt;
use lockstep_protocol::{ErrorCode, WireError};
use serde::Serialize;

use crate::state::AppState;

/// An API error: the wire code plus a message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The HTTP edge of every component error: its wire code and public message. Detail a
/// component keeps from clients (a database's own words) goes to the log here.
impl<E: WireError> From<E> for ApiError {
    fn from(e: E) -> Self {
        let message = e.public_message();
        if message != e.to_string() {
            tracing::error!(error = %e, "internal failure");
        }
        Self {
            code: e.code(),
            message,
        }
    }
}

/// Every API error: a stable number, its name, and a human-readable message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable numeric code (see docs/protocol.md).
    pub code: u16,
    /// Stable name, e.g. `sale_not_found`.
    #[schema(value_type = String)]
    pub name: ErrorCode,
    pub message: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorBody {
            code: self.code.code(),
            name: self.code,
            message: self.message.clone(),
        })
    }
}

/// Turns actix's JSON extractor failures into API errors.
pub fn json_error(err: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match &err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::new(
            ErrorCode::TooLarge,
            format!("request body too large: {err}"),
        ),
        E::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "expected Content-Type: application/json",
        ),
        E::Payload(p) if crate::middleware::is_timeout(p) => {
            ApiError::new(ErrorCode::RequestTimeout, p.to_string())
        }
        E::Deserialize(e) if e.is_syntax() || e.is_eof() => {
            ApiError::new(ErrorCode::MalformedJson, format!("not valid JSON: {e}"))
        }
        _ => ApiError::new(ErrorCode::InvalidMessage, err.to_string()),
    };
    api.into()
}

/// Turns path parameter parse failures into API errors.
pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::NotFound, format!("bad path: {err}")).into()
}

/// Turns query-string parse failures into API errors.
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::InvalidMessage, format!("bad query: {err}")).into()
}

/// Reads a request body of at most `limit` bytes (the body deadline applies).
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            if crate::middleware::is_timeout(&e) {
                ApiError::new(ErrorCode::RequestTimeout, e.to_string())
            } else {
                ApiError::new(ErrorCode::InvalidMessage, format!("reading the body: {e}"))
            }
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                ErrorCode::TooLarge,
                format!(
                    "request body too large: the limit is {limit} bytes (server.max_body_bytes)"
                ),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

/// Any route not matched.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::NotFound, "no such endpoint"))
}
