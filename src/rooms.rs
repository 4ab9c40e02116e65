//! The room API: opening a room (its anchor), reading its status (anyone who may watch
//! it: a private room's status needs a token, a banned viewer gets none), listing its
//! sales (its anchor), and the merchants allowed to sell in it (its anchor grants them).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use lockstep_actors::clock::now_ms;
use lockstep_actors::directory::RoomOptions;
use lockstep_actors::room::{Snapshot, ViewAs};
use lockstep_actors::store::Grant;
use lockstep_protocol::{ErrorCode, RoomId, RoomSnapshot};
use serde::{Deserialize, Serialize};

use crate::auth::Watcher;
use crate::http::{ApiError, ErrorBody, bearer};
use crate::state::AppState;

/// `POST /api/v1/rooms` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRoom {
    pub id: String,
    #[serde(default)]
    pub title: Option<String>,
    /// Whether viewers without a token may join (default: `room.allow_anonymous`).
    #[serde(default)]
    pub allow_anonymous: Option<bool>,
}

/// The longest room title kept, in characters (control characters are removed).
pub const MAX_TITLE_CHARS: usize = 200;

/// Opens a room (anchor token for that room). 201 when created, 200 when already open.
#[utoipa::path(post, path = "/api/v1/rooms", tag = "rooms", request_body = OpenRoom,
    responses((status = 201, description = "the room's snapshot"), (status = 200, description = "already open: its snapshot"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 408, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("anchor" = [])))]
pub async fn open_room(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<OpenRoom>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let id = RoomId::parse(&body.id)?;
    state.auth.anchor_of(bearer(&req), id.as_str())?;
    let options = RoomOptions {
        title: body
            .title
            .map(|t| lockstep_actors::text::clean_label(&t, MAX_TITLE_CHARS))
            .filter(|t| !t.is_empty()),
        allow_anonymous: body.allow_anonymous,
    };
    let opened = state.open_room(&id, &options).await?;
    let Some(addr) = opened.here else {
        // Open on another node of the cluster: its snapshot, as that node gives it.
        let path = format!("/api/v1/rooms/{id}");
        return crate::forward::to_owner_as(
            &state,
            &req,
            ("GET", &path),
            Default::default(),
            id.as_str(),
        )
        .await
        .unwrap_or_else(|| {
            Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("room `{id}` moved between nodes while opening; retry"),
            ))
        });
    };
    let created = opened.created;
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

/// The room's snapshot for whoever sent `req`, if they may watch it.
pub async fn snapshot_for(
    state: &AppState,
    req: &HttpRequest,
    room: &str,
) -> Result<(Watcher, RoomSnapshot), ApiError> {
    let watcher = state.auth.watcher(bearer(req), room)?;
    let not_found = || ApiError::new(ErrorCode::RoomNotFound, format!("no open room `{room}`"));
    let addr = state.directory.get(room).ok_or_else(not_found)?;
    let snapshot = match &watcher {
        Watcher::Anchor(_) => addr.send(Snapshot).await.map_err(|_| not_found())?,
        other => addr
            .send(ViewAs {
                user: other.user().map(str::to_owned),
            })
            .await
            .map_err(|_| not_found())??,
    };
    Ok((watcher, snapshot))
}

/// `GET /api/v1/rooms/{id}`: the room's snapshot, for those who may watch it.
#[utoipa::path(get, path = "/api/v1/rooms/{id}", tag = "rooms",
    params(("id" = String, Path, description = "room id")),
    responses((status = 200, description = "the room's snapshot"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security((), ("viewer" = [])))]
pub async fn get_room(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(answer) = crate::forward::to_owner(&state, &req, Default::default(), &path).await {
        return answer;
    }
    let (_, snapshot) = snapshot_for(&state, &req, &path).await?;
    Ok(HttpResponse::Ok().json(snapshot))
}

/// One sale of a room, as the anchor page lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoomSale {
    pub id: String,
    pub title: String,
    pub sku_id: String,
    #[schema(value_type = String)]
    pub state: lockstep_protocol::SaleState,
    pub allotted: u32,
    pub remaining: u32,
    pub orders: u32,
    pub price_cents: u64,
    pub sale_price_cents: u64,
    pub image_url: String,
}

/// The room's sales.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoomSales {
    pub sales: Vec<RoomSale>,
}

/// `GET /api/v1/rooms/{id}/sales`: the room's loaded sales (ended sales that retired
/// from memory are not listed), for its anchor.
#[utoipa::path(get, path = "/api/v1/rooms/{id}/sales", tag = "rooms",
    params(("id" = String, Path, description = "room id")),
    responses((status = 200, body = RoomSales), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("anchor" = [])))]
pub async fn room_sales(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let room = path.into_inner();
    state.auth.anchor_of(bearer(&req), &room)?;
    if let Some(answer) = crate::forward::to_owner(&state, &req, Default::default(), &room).await {
        return answer;
    }
    let mut sales = Vec::new();
    for handle in state.sales.in_room(&room) {
        let Ok(Some(summary)) = handle.addr.send(lockstep_actors::inventory::Summary).await else {
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
    Ok(HttpResponse::Ok().json(RoomSales { sales }))
}

/// The merchants allowed to sell in a room.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Grants {
    pub merchants: Vec<Grant>,
}

/// The room and merchant of a grant path, once the caller proved to be the room's anchor.
fn grant_path(
    req: &HttpRequest,
    state: &AppState,
    path: web::Path<(String, String)>,
) -> Result<(String, String), ApiError> {
    let (room, merchant) = path.into_inner();
    RoomId::parse(&room)?;
    state.auth.anchor_of(bearer(req), &room)?;
    if !(1..=crate::auth::MAX_ID_BYTES).contains(&merchant.len())
        || lockstep_actors::text::has_disallowed(&merchant)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidMessage,
            "merchant ids are 1-128 bytes without control characters",
        ));
    }
    Ok((room, merchant))
}

/// `GET /api/v1/rooms/{id}/merchants`: who may sell in the room.
#[utoipa::path(get, path = "/api/v1/rooms/{id}/merchants", tag = "rooms",
    params(("id" = String, Path, description = "room id")),
    responses((status = 200, body = Grants), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("anchor" = [])))]
pub async fn list_merchants(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let room = path.into_inner();
    RoomId::parse(&room)?;
    state.auth.anchor_of(bearer(&req), &room)?;
    let merchants = state.sales.store().grants(room).await?;
    Ok(HttpResponse::Ok().json(Grants { merchants }))
}

/// `PUT /api/v1/rooms/{id}/merchants/{merchant}`: the anchor lets a merchant sell in the
/// room (idempotent). Grants are durable; rooms need not be open.
#[utoipa::path(put, path = "/api/v1/rooms/{id}/merchants/{merchant}", tag = "rooms",
    params(("id" = String, Path, description = "room id"), ("merchant" = String, Path, description = "merchant id")),
    responses((status = 200, body = Grant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("anchor" = [])))]
pub async fn grant_merchant(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (room, merchant) = grant_path(&req, &state, path)?;
    let grant = state.sales.store().grant(room, merchant, now_ms()).await?;
    Ok(HttpResponse::Ok().json(grant))
}

/// `DELETE /api/v1/rooms/{id}/merchants/{merchant}`: withdraws a grant; the merchant's
/// sales already created stay.
#[utoipa::path(delete, path = "/api/v1/rooms/{id}/merchants/{merchant}", tag = "rooms",
    params(("id" = String, Path, description = "room id"), ("merchant" = String, Path, description = "merchant id")),
    responses((status = 204, description = "withdrawn"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("anchor" = [])))]
pub async fn revoke_merchant(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (room, merchant) = grant_path(&req, &state, path)?;
    let name = merchant.clone();
    let revoked = state.sales.store().revoke(room, merchant).await?;
    if revoked {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::new(
            ErrorCode::NotFound,
            format!("merchant `{name}` has no grant in this room"),
        ))
    }
}
