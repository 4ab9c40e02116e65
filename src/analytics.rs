//! The dashboard's data: a room run's time series (1 s while live, downsampled later),
//! product chapters with their funnels, retention, totals and findings, as JSON or CSV.
//! For the room's anchor and the merchants its anchor granted.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use lockstep_actors::archive::report::analytics;
use lockstep_actors::clock::now_ms;
use lockstep_protocol::{ErrorCode, Role, RoomId};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::forward::NodeAsk;
use crate::http::{ApiError, ErrorBody, bearer};
use crate::replays::{load, replays};
use crate::state::AppState;

/// What to export.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsQuery {
    /// A replay (run) of the room; its latest when absent.
    pub replay: Option<i64>,
    /// `json` (default) or `csv` (the time series only).
    #[param(pattern = "^(json|csv)$")]
    pub format: Option<String>,
}

/// The anchor of `room`, or a merchant its anchor granted.
async fn may_read(req: &HttpRequest, state: &AppState, room: &str) -> Result<(), ApiError> {
    let token =
        bearer(req).ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "a token is required"))?;
    let claims = state.auth.verify(token)?;
    match (claims.role, claims.room.as_deref(), claims.merchant) {
        (Role::Anchor, Some(r), _) if r == room => Ok(()),
        (Role::Merchant, _, Some(merchant)) => {
            let grants = state.sales.store().grants(room.to_owned()).await?;
            if grants.iter().any(|g| g.merchant == merchant) {
                Ok(())
            } else {
                Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "this merchant does not sell in this room",
                ))
            }
        }
        _ => Err(ApiError::new(
            ErrorCode::Forbidden,
            "the room's anchor or a merchant selling in it may read its analytics",
        )),
    }
}

/// A room run's analytics: series, chapters and funnels, retention, totals, findings.
#[utoipa::path(get, path = "/api/v1/rooms/{id}/analytics", tag = "rooms",
    params(("id" = String, Path, description = "room id", pattern = "^[A-Za-z0-9_-]{1,64}$"), AnalyticsQuery),
    responses((status = 200, description = "the analytics (JSON), or the series as CSV with `format=csv`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("anchor" = []), ("merchant" = [])))]
pub async fn room_analytics(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<AnalyticsQuery>,
) -> Result<HttpResponse, ApiError> {
    let room = RoomId::parse(&id)
        .map_err(|e| ApiError::new(ErrorCode::NotFound, e.to_string()))?
        .to_string();
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::InvalidMessage,
                format!("format must be json or csv, not `{other}`"),
            ));
        }
    };
    may_read(&req, &state, &room).await?;
    let replay = match query.replay {
        Some(id) => id,
        None => replays(&state)?
            .list(&room, 1)
            .await?
            .first()
            .map(|r| r.id)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::ReplayNotFound,
                    format!("room {room} has no runs yet"),
                )
            })?,
    };
    let loaded = load(&state, replay).await?;
    if loaded.row.room != room {
        return Err(ApiError::new(
            ErrorCode::ReplayNotFound,
            format!("no replay {replay} in room {room}"),
        ));
    }
    // The node that recorded the run answers for it (this run: `latest` may differ there).
    let path = format!(
        "/api/v1/rooms/{room}/analytics?replay={replay}{}",
        if csv { "&format=csv" } else { "" }
    );
    if let Some(node) = crate::replays::recorded_elsewhere(&state, &req, &loaded).await?
        && let Ok(answer) =
            crate::forward::from_node(&state, &req, &node, NodeAsk::Json(Some(&path))).await
    {
        return Ok(answer);
    }
    let report = analytics(&loaded.row, &loaded.data, &loaded.media, now_ms());
    if csv {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{room}-analytics.csv\""),
            ))
            .body(lockstep_actors::archive::report::csv(&report.series)));
    }
    Ok(HttpResponse::Ok().json(report))
}
