//! The HTTP API: opening rooms, reading a room's status, health and metrics.
//! Every error is JSON `{code, name, message}` with the matching HTTP status.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use lockstep_actors::directory::RoomOptions;
use lockstep_actors::room::Snapshot;
use lockstep_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::state::{AppState, valid_room_id};

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

impl From<lockstep_actors::store::StoreError> for ApiError {
    fn from(e: lockstep_actors::store::StoreError) -> Self {
        match e {
            lockstep_actors::store::StoreError::Refused(code, message) => Self { code, message },
            other => {
                tracing::error!(error = %other, "store failure");
                Self::new(ErrorCode::Internal, "storage failure; nothing changed")
            }
        }
    }
}

impl From<(ErrorCode, String)> for ApiError {
    fn from((code, message): (ErrorCode, String)) -> Self {
        Self { code, message }
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
            ErrorCode::InvalidMessage,
            "expected Content-Type: application/json",
        ),
        E::Deserialize(e) if e.is_syntax() || e.is_eof() => {
            ApiError::new(ErrorCode::MalformedJson, format!("not valid JSON: {e}"))
        }
        _ => ApiError::new(ErrorCode::InvalidMessage, err.to_string()),
    };
    api.into()
}

/// Turns query-string parse failures into API errors.
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::InvalidMessage, format!("bad query: {err}")).into()
}

pub fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// `POST /api/v1/rooms` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRoom {
    pub id: String,
    #[serde(default)]
    pub title: Option<String>,
    /// Whether viewers without a token may join (default: `room.allow_anonymous`).
    #[serde(default)]
    pub allow_anonymous: Option<bool>,
}

/// Opens a room (anchor token for that room). 201 when created, 200 when already open.
pub async fn open_room(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<OpenRoom>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if !valid_room_id(&body.id) {
        return Err(ApiError::new(
            ErrorCode::InvalidMessage,
            "room id must be 1-64 of [A-Za-z0-9_-]",
        ));
    }
    state.auth.anchor_of(bearer(&req), &body.id)?;
    let options = RoomOptions {
        title: body.title,
        allow_anonymous: body.allow_anonymous,
    };
    let (addr, created) = state.directory.open(&body.id, &options)?;
    let snapshot = addr
        .send(Snapshot)
        .await
        .map_err(|_| ApiError::new(ErrorCode::RoomEnded, "the room ended while opening"))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(snapshot))
}

/// `GET /api/v1/rooms/{id}`: the room's public snapshot.
pub async fn get_room(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let not_found = || ApiError::new(ErrorCode::RoomNotFound, format!("no open room `{id}`"));
    let addr = state.directory.get(&id).ok_or_else(not_found)?;
    let snapshot = addr.send(Snapshot).await.map_err(|_| not_found())?;
    Ok(HttpResponse::Ok().json(snapshot))
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
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

/// One sale of a room, as the anchor page lists it.
#[derive(Debug, Serialize)]
pub struct RoomSale {
    pub id: String,
    pub title: String,
    pub sku_id: String,
    pub state: lockstep_protocol::SaleState,
    pub allotted: u32,
    pub remaining: u32,
    pub orders: u32,
    pub price_cents: u64,
    pub sale_price_cents: u64,
    pub image_url: String,
}

/// `GET /api/v1/rooms/{id}/sales`: the room's sales, for its anchor.
pub async fn room_sales(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let room = path.into_inner();
    state.auth.anchor_of(bearer(&req), &room)?;
    let mut sales = Vec::new();
    for handle in state.sales.in_room(&room) {
        let Ok(summary) = handle.addr.send(lockstep_actors::inventory::Summary).await else {
            continue;
        };
        let card = &handle.card;
        sales.push(RoomSale {
            id: card.sale_id.clone(),
            title: card.title.clone(),
            sku_id: card.sku_id.clone(),
            state: summary.state,
            allotted: summary.allotted,
            remaining: summary.remaining,
            orders: summary.orders,
            price_cents: card.price_cents,
            sale_price_cents: card.sale_price_cents,
            image_url: card.image_url.clone(),
        });
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "sales": sales })))
}
