//! The web pages, embedded in the binary so `lockstep serve` needs no files: the viewer
//! page at `/rooms/{room}`, the anchor page at `/rooms/{room}/anchor`, the dashboard at
//! `/rooms/{room}/dashboard`, a replay at `/replays/{id}`, and their static assets
//! (uPlot included) under `/static/`. Tokens travel in the URL fragment (`#token=…`), which
//! browsers never send to the server.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::http::ApiError;
use lockstep_protocol::{ErrorCode, RoomId};

const VIEWER_HTML: &str = include_str!("../web/viewer.html");
const ANCHOR_HTML: &str = include_str!("../web/anchor.html");
const REPLAY_HTML: &str = include_str!("../web/replay.html");
const DASHBOARD_HTML: &str = include_str!("../web/dashboard.html");
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../web/app.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/common.js"),
    ),
    (
        "viewer.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/viewer.js"),
    ),
    (
        "viewer-media.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/viewer-media.js"),
    ),
    (
        "viewer-sale.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/viewer-sale.js"),
    ),
    (
        "anchor.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/anchor.js"),
    ),
    (
        "anchor-publish.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/anchor-publish.js"),
    ),
    (
        "anchor-sales.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/anchor-sales.js"),
    ),
    (
        "anchor-moderation.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/anchor-moderation.js"),
    ),
    (
        "replay.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/replay.js"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/dashboard.js"),
    ),
    // uPlot, the dashboard's chart library (npm `uplot`, pinned in web/package.json).
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("../web/vendor/uPlot.min.css"),
    ),
];

fn html(body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// A page for a room that cannot exist is not found.
fn room_checked(room: &str) -> Result<(), ApiError> {
    RoomId::parse(room)
        .map(drop)
        .map_err(|e| ApiError::new(ErrorCode::NotFound, e.to_string()))
}

/// `GET /rooms/{room}`: the viewer page.
pub async fn viewer(room: web::Path<String>) -> Result<HttpResponse, ApiError> {
    room_checked(&room)?;
    Ok(html(VIEWER_HTML))
}

/// `GET /rooms/{room}/anchor`: the anchor page.
pub async fn anchor(room: web::Path<String>) -> Result<HttpResponse, ApiError> {
    room_checked(&room)?;
    Ok(html(ANCHOR_HTML))
}

/// `GET /rooms/{room}/dashboard`: the anchor's and merchants' analytics dashboard.
pub async fn dashboard(room: web::Path<String>) -> Result<HttpResponse, ApiError> {
    room_checked(&room)?;
    Ok(html(DASHBOARD_HTML))
}

/// `GET /replays/{id}`: a room's replay with its product chapters.
pub async fn replay(id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    id.parse::<i64>()
        .map_err(|_| ApiError::new(ErrorCode::NotFound, format!("no replay `{id}`")))?;
    Ok(html(REPLAY_HTML))
}

/// `GET /static/{file}`.
pub async fn asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file.as_str())
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no asset `{file}`")))?;
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(*body))
}
