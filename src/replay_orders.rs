//! Buying from a replay: `POST /api/v1/sales/{id}/orders` with a viewer token. The sale
//! must be a chapter of the named replay and still take orders (or be a sale the
//! merchant opened for the replay); the order goes through the sale's inventory actor
//! like any other and carries `source: replay`, the replay and the chapter, so the
//! merchant sees what the replay earned.

use actix_web::{HttpRequest, HttpResponse, web};
use lockstep_actors::archive::report::analytics;
use lockstep_actors::clock::now_ms;
use lockstep_actors::inventory::model::{OrderOrigin, OrderSource, ReplayRef};
use lockstep_actors::inventory::{OutsideOrder, reply_channel};
use lockstep_protocol::{ErrorCode, OrderOutcome};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Watcher;
use crate::http::{ApiError, ErrorBody, bearer};
use crate::replays::{load, watcher};
use crate::state::AppState;

/// An order from a replay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayOrderBody {
    /// Units (default 1).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default = "one")]
    pub qty: u32,
    /// Idempotency key (1-128 bytes): a retry with the same key gets the first answer.
    #[schema(min_length = 1, max_length = 128)]
    pub key: String,
    /// Must be `replay`.
    pub source: Option<String>,
    /// The replay the buyer watched.
    pub replay_id: i64,
    /// The chapter (1-based) whose card the buyer pressed Buy on.
    #[schema(minimum = 1)]
    pub chapter: u32,
}

fn one() -> u32 {
    1
}

/// The sale's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayOrderResult {
    #[schema(value_type = String)]
    pub outcome: OrderOutcome,
    pub order_id: Option<String>,
    pub remaining: u32,
    pub expires_at: Option<u64>,
    pub message: Option<String>,
}

/// Orders from a replay's chapter (viewer token). 201 when units were reserved; 200 with
/// the outcome (`sold_out`, `closed`, `limit_exceeded`, ...) when not.
#[utoipa::path(post, path = "/api/v1/sales/{id}/orders", tag = "replays", request_body = ReplayOrderBody,
    params(("id" = String, Path, description = "sale id")),
    responses((status = 201, body = ReplayOrderResult), (status = 200, body = ReplayOrderResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 408, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("viewer" = [])))]
pub async fn order(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<ReplayOrderBody>,
) -> Result<HttpResponse, ApiError> {
    let sale_id = id.into_inner();
    let body = body.into_inner();
    if body.source.as_deref().is_some_and(|s| s != "replay") {
        return Err(ApiError::new(
            ErrorCode::InvalidMessage,
            "source must be `replay` (live orders go over the room's socket)",
        ));
    }
    if bearer(&req).is_none() {
        return Err(ApiError::new(
            ErrorCode::AuthRequired,
            "buying needs a viewer token",
        ));
    }
    let loaded = load(&state, body.replay_id).await?;
    let row = &loaded.row;
    let buyer = match watcher(&state, bearer(&req), &row.room, row.members_only, row.id).await? {
        Watcher::Viewer(user) => user,
        Watcher::Anchor(_) | Watcher::Guest => {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "buying needs a viewer token",
            ));
        }
    };
    let report = analytics(row, &loaded.data, &loaded.media, now_ms());
    let chapter = report
        .chapters
        .iter()
        .find(|c| c.index == body.chapter as usize && !c.hidden)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("replay {} has no chapter {}", row.id, body.chapter),
            )
        })?;
    if loaded.buying_sale(&chapter.sale_id) != sale_id {
        return Err(ApiError::new(
            ErrorCode::SaleNotFound,
            format!(
                "chapter {} of replay {} is not sale `{sale_id}`",
                body.chapter, row.id
            ),
        ));
    }
    let (reply, answer) = reply_channel();
    state.sales.reserve_from(
        &row.room,
        OutsideOrder {
            sale_id,
            buyer,
            qty: body.qty,
            key: body.key,
            origin: OrderOrigin {
                source: OrderSource::Replay,
                replay: Some(ReplayRef {
                    replay_id: row.id,
                    chapter: body.chapter,
                }),
            },
        },
        reply,
    );
    let reply = answer.await?;
    let status = if reply.outcome == OrderOutcome::Accepted {
        actix_web::http::StatusCode::CREATED
    } else {
        actix_web::http::StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(ReplayOrderResult {
        outcome: reply.outcome,
        order_id: reply.order_id,
        remaining: reply.remaining,
        expires_at: reply.expires_at,
        message: reply.message,
    }))
}
