//! The replay API: a room's replays, one replay with its product chapters (current
//! stock and price included), its timeline for replaying comments and likes in sync,
//! its recording (with HTTP range requests, so players seek), and the anchor's edits of
//! chapters. Who may see a replay follows the room's rules: a members-only room's
//! replay needs a viewer token for the room (or its anchor's), and a user banned during
//! the room gets 403. Hidden chapters are shown only to the anchor.

use std::collections::HashSet;

use actix_web::{HttpRequest, HttpResponse, web};
use lockstep_actors::archive::report::{Chapter, Totals, analytics};
use lockstep_actors::archive::sqlite;
use lockstep_actors::clock::now_ms;
use lockstep_protocol::{ErrorCode, RoomId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Watcher;
use crate::forward::NodeAsk;
use crate::http::{ApiError, ErrorBody, bearer};
use crate::replay_data::{Loaded, Replays, blocking};
use crate::state::AppState;

/// Most replays one list returns.
const MAX_LIST: usize = 100;
/// Most events one page of a replay's timeline returns.
const MAX_EVENTS: usize = 5_000;
/// How long a media link handed out for a members-only replay stays valid.
const MEDIA_LINK_SECS: u64 = 6 * 3600;

pub(crate) fn replays(state: &AppState) -> Result<&Replays, ApiError> {
    state.archive.as_deref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "replays are off on this server (archive.enabled)",
        )
    })
}

fn not_found(id: i64) -> ApiError {
    ApiError::new(ErrorCode::ReplayNotFound, format!("no replay {id}"))
}

pub(crate) async fn load(state: &AppState, id: i64) -> Result<Loaded, ApiError> {
    replays(state)?
        .load(id, now_ms())
        .await?
        .ok_or_else(|| not_found(id))
}

/// Replay `id`'s row alone.
async fn replay_row(state: &AppState, id: i64) -> Result<sqlite::ReplayRow, ApiError> {
    replays(state)?.row(id).await?.ok_or_else(|| not_found(id))
}

/// Cluster mode: the node that recorded replay `loaded`, when this node holds no
/// recording of it and the request was not forwarded already. The replay's times (media
/// position 0, chapter positions) come from its recording, so that node answers.
pub(crate) async fn recorded_elsewhere(
    state: &AppState,
    req: &HttpRequest,
    loaded: &Loaded,
) -> Result<Option<String>, ApiError> {
    let Some(cluster) = &state.cluster else {
        return Ok(None);
    };
    if loaded.recording.is_some() || req.headers().contains_key(crate::forward::FORWARDED) {
        return Ok(None);
    }
    replays(state)?
        .recorded_elsewhere(loaded.row.id, cluster.node())
        .await
}

/// Users banned when the room's run ended (from its moderation events).
async fn banned(state: &AppState, id: i64) -> Result<HashSet<String>, ApiError> {
    let mut banned = HashSet::new();
    for e in replays(state)?.moderation(id).await? {
        let user = e["user"].as_str().unwrap_or_default().to_owned();
        match e["action"].as_str() {
            Some("banned") => banned.insert(user),
            Some("unbanned") => banned.remove(&user),
            _ => false,
        };
    }
    Ok(banned)
}

/// Who is asking about replay `row` of a room, or why they may not.
pub(crate) async fn watcher(
    state: &AppState,
    token: Option<&str>,
    room: &str,
    members_only: bool,
    id: i64,
) -> Result<Watcher, ApiError> {
    let watcher = state.auth.watcher(token, room)?;
    if members_only && watcher == Watcher::Guest {
        return Err(ApiError::new(
            ErrorCode::AuthRequired,
            "this room's replays need a token",
        ));
    }
    if let Watcher::Viewer(user) = &watcher
        && banned(state, id).await?.contains(user)
    {
        return Err(ApiError::new(ErrorCode::Banned, "banned from this room"));
    }
    Ok(watcher)
}

/// `?room=` of the list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The room whose replays to list.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub room: String,
}

/// One replay in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplaySummary {
    pub id: i64,
    pub room: String,
    pub title: String,
    /// `live` while the room runs, then `ended`.
    pub state: String,
    pub started_at: u64,
    pub ended_at: Option<u64>,
}

/// `GET /api/v1/replays?room=`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayList {
    pub replays: Vec<ReplaySummary>,
}

fn run_state(ended_at: Option<u64>) -> String {
    if ended_at.is_some() { "ended" } else { "live" }.to_owned()
}

/// Lists a room's replays, newest first (members-only ones need a token for the room).
#[utoipa::path(get, path = "/api/v1/replays", tag = "replays", params(ListQuery),
    responses((status = 200, body = ReplayList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security((), ("viewer" = []), ("anchor" = [])))]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let room = RoomId::parse(&query.room)
        .map_err(|e| ApiError::new(ErrorCode::InvalidMessage, e.to_string()))?
        .to_string();
    let watcher = state.auth.watcher(bearer(&req), &room)?;
    let rows = replays(&state)?.list(&room, MAX_LIST).await?;
    let replays = rows
        .into_iter()
        .filter(|r| !r.members_only || watcher != Watcher::Guest)
        .map(|r| ReplaySummary {
            id: r.id,
            room: r.room,
            title: r.title,
            state: run_state(r.ended_at),
            started_at: r.started_at,
            ended_at: r.ended_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(ReplayList { replays }))
}

/// A chapter's sale as it is now: the sale a merchant opened for the replay, if any,
/// else the one of the live.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CurrentSale {
    /// The sale to buy from.
    pub id: String,
    /// `scheduled`, `open`, `sold_out` or `ended`.
    pub state: String,
    pub remaining: u32,
    pub price_cents: u64,
}

/// A product chapter, with its sale as it is now (`null` when it cannot be found).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChapterView {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub chapter: Chapter,
    pub sale: Option<CurrentSale>,
}

/// `GET /api/v1/replays/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayView {
    pub id: i64,
    pub room: String,
    pub title: String,
    pub state: String,
    pub started_at: u64,
    pub ended_at: Option<u64>,
    pub duration_ms: u64,
    /// The recording, ready to use as a `<video>` source; `null` without one.
    pub media_url: Option<String>,
    /// Its container: `video/webm` (VP8 + Opus) or `video/mp4` (H.264 + Opus, from
    /// publishers such as OBS); `null` without a recording.
    pub media_type: Option<String>,
    /// Server time (ms) that media position 0 corresponds to: an event at time `at` is
    /// at media position `at - media_start_at`.
    pub media_start_at: u64,
    /// Media positions (ms) of the recording's keyframes.
    pub keyframes_ms: Vec<u64>,
    pub chapters: Vec<ChapterView>,
    pub stats: Totals,
}

async fn current_sale(state: &AppState, sale_id: &str) -> Option<CurrentSale> {
    let handle = state.sales.get_or_load(sale_id).await.ok()??;
    let summary = handle
        .addr
        .send(lockstep_actors::inventory::Summary)
        .await
        .ok()??;
    Some(CurrentSale {
        id: sale_id.to_owned(),
        state: serde_json::to_value(summary.state)
            .ok()?
            .as_str()?
            .to_owned(),
        remaining: summary.remaining,
        price_cents: handle.card.sale_price_cents,
    })
}

/// A replay: its chapters (with each sale's current stock and price), its recording's
/// URL, its time base and totals.
#[utoipa::path(get, path = "/api/v1/replays/{id}", tag = "replays",
    params(("id" = i64, Path, description = "replay id")),
    responses((status = 200, body = ReplayView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security((), ("viewer" = []), ("anchor" = [])))]
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let loaded = load(&state, id).await?;
    let row = &loaded.row;
    let watcher = watcher(&state, bearer(&req), &row.room, row.members_only, id).await?;
    if let Some(node) = recorded_elsewhere(&state, &req, &loaded).await?
        && let Ok(answer) =
            crate::forward::from_node(&state, &req, &node, NodeAsk::Json(None)).await
    {
        return Ok(answer);
    }
    // (That node is gone: the replay without its recording's times.)
    let report = analytics(row, &loaded.data, &loaded.media, now_ms());
    let is_anchor = matches!(watcher, Watcher::Anchor(_));
    let mut chapters = Vec::new();
    for chapter in report
        .chapters
        .into_iter()
        .filter(|c| is_anchor || !c.hidden)
    {
        let sale = current_sale(&state, loaded.buying_sale(&chapter.sale_id)).await;
        chapters.push(ChapterView { chapter, sale });
    }
    let media_url = loaded.recording.as_ref().map(|_| {
        let base = format!("/api/v1/replays/{id}/media");
        if row.members_only {
            format!(
                "{base}?access={}",
                state.auth.issue_media(id, MEDIA_LINK_SECS)
            )
        } else {
            base
        }
    });
    let media_type = loaded
        .recording
        .as_ref()
        .map(|(path, _)| media_type(path).to_owned());
    let (duration_ms, keyframes_ms) = match &loaded.recording {
        Some((_, meta)) => (meta.duration_ms, meta.keyframes_ms.clone()),
        None => (
            row.ended_at
                .unwrap_or_else(now_ms)
                .saturating_sub(row.started_at),
            Vec::new(),
        ),
    };
    Ok(HttpResponse::Ok().json(ReplayView {
        id,
        room: row.room.clone(),
        title: row.title.clone(),
        state: run_state(row.ended_at),
        started_at: row.started_at,
        ended_at: row.ended_at,
        duration_ms,
        media_url,
        media_type,
        media_start_at: loaded.media.start_at,
        keyframes_ms,
        chapters,
        stats: report.totals,
    }))
}

/// A page of the timeline.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events after this position (the previous page's `next`); from the start if absent.
    #[param(minimum = 0)]
    pub after: Option<i64>,
}

/// `GET /api/v1/replays/{id}/events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Timeline events in order: `{at, kind, ...}` (comments with their text, likes per
    /// tick, link drops, sale states, pins, moderation).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next: Option<i64>,
}

/// The replay's timeline, for replaying comments and likes in sync with the video.
#[utoipa::path(get, path = "/api/v1/replays/{id}/events", tag = "replays",
    params(("id" = i64, Path, description = "replay id"), EventsQuery),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security((), ("viewer" = []), ("anchor" = [])))]
pub async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let row = replay_row(&state, id).await?;
    watcher(&state, bearer(&req), &row.room, row.members_only, id).await?;
    let after = query.after.unwrap_or(0).max(0);
    let page = replays(&state)?.events_after(id, after, MAX_EVENTS).await?;
    let next = (page.len() == MAX_EVENTS)
        .then(|| page.last().map(|(seq, _)| *seq))
        .flatten();
    let events = page.into_iter().map(|(_, e)| e).collect();
    Ok(HttpResponse::Ok().json(EventPage { events, next }))
}

/// `?access=` of the media URL.
#[derive(Debug, Deserialize, IntoParams)]
pub struct MediaQuery {
    /// The grant the replay's `media_url` carries (members-only rooms).
    pub access: Option<String>,
}

/// A recording file's bytes (in the OpenAPI document).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct RecordingFile(#[allow(dead_code)] Vec<u8>);

/// The MIME type of a recording file: WebM for VP8, MP4 for H.264.
fn media_type(path: &std::path::Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("mp4") => "video/mp4",
        _ => "video/webm",
    }
}

/// The recording (WebM with VP8 + Opus, or fragmented MP4 with H.264 + Opus), with HTTP
/// range requests.
#[utoipa::path(get, path = "/api/v1/replays/{id}/media", tag = "replays",
    params(("id" = i64, Path, description = "replay id"), MediaQuery),
    responses((status = 200, description = "the recording", content((RecordingFile = "video/webm"), (RecordingFile = "video/mp4"))),
        (status = 206, description = "the requested range", content((RecordingFile = "video/webm"), (RecordingFile = "video/mp4"))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 416, description = "range not satisfiable"), (status = 503, body = ErrorBody)),
    security((), ("viewer" = []), ("anchor" = [])))]
pub async fn media(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<MediaQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let row = replay_row(&state, id).await?;
    let recording = replays(&state)?.recording_of(&row, now_ms()).await?;
    // A grant from the replay's `media_url` (given only to whoever may watch it), or a
    // token like the replay's own.
    let granted = query
        .access
        .as_deref()
        .is_some_and(|grant| state.auth.media_grant(grant) == Some(id));
    if !granted {
        watcher(&state, bearer(&req), &row.room, row.members_only, id).await?;
    }
    let Some((path, _)) = recording else {
        // Cluster mode: the node that ran the room holds its recording.
        if let Some(cluster) = &state.cluster
            && let Some(node) = replays(&state)?
                .recorded_elsewhere(id, cluster.node())
                .await?
            && !req.headers().contains_key(crate::forward::FORWARDED)
        {
            return crate::forward::from_node(&state, &req, &node, NodeAsk::Media).await;
        }
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("replay {id} has no recording"),
        ));
    };
    let file = actix_files::NamedFile::open_async(&path)
        .await
        .map_err(|_| ApiError::new(ErrorCode::NotFound, format!("replay {id} has no recording")))?
        .set_content_type(media_type(&path).parse().expect("a valid MIME type"))
        .use_etag(true)
        .use_last_modified(true);
    Ok(file.into_response(&req))
}

/// The anchor's edit of a chapter.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChapterEditBody {
    /// A new title (1-200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// Hide the chapter from viewers (or show it again).
    pub hidden: Option<bool>,
}

/// Renames or hides one of the replay's chapters (the room's anchor).
#[utoipa::path(patch, path = "/api/v1/replays/{id}/chapters/{sale_id}", tag = "replays",
    params(("id" = i64, Path, description = "replay id"), ("sale_id" = String, Path, description = "the chapter's sale")),
    request_body = ChapterEditBody,
    responses((status = 200, description = "the chapter as edited"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 408, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("anchor" = [])))]
pub async fn edit_chapter(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(i64, String)>,
    body: web::Json<ChapterEditBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, sale_id) = path.into_inner();
    let body = body.into_inner();
    let title = match body.title {
        Some(t) => {
            let t = lockstep_actors::text::clean_label(&t, crate::rooms::MAX_TITLE_CHARS);
            if t.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::InvalidMessage,
                    "title must not be empty",
                ));
            }
            Some(t)
        }
        None => None,
    };
    let loaded = load(&state, id).await?;
    state.auth.anchor_of(bearer(&req), &loaded.row.room)?;
    let report = analytics(&loaded.row, &loaded.data, &loaded.media, now_ms());
    if !report.chapters.iter().any(|c| c.sale_id == sale_id) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("replay {id} has no chapter for sale `{sale_id}`"),
        ));
    }
    let replays = replays(&state)?;
    replays
        .edit_chapter(id, &sale_id, title, body.hidden)
        .await?;
    let edited = load(&state, id).await?;
    let edited = analytics(&edited.row, &edited.data, &edited.media, now_ms())
        .chapters
        .into_iter()
        .find(|c| c.sale_id == sale_id)
        .ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok().json(edited))
}

/// A sale a merchant opens for a replay's chapter (after the live's sale ended).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaySaleBody {
    /// Units taken from the SKU's free stock.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub allotted: u32,
    /// Price in cents (default: the live sale's).
    #[schema(minimum = 1, maximum = 100_000_000_000u64)]
    pub price_cents: Option<u64>,
    /// Most units one buyer may hold (default 1).
    #[schema(minimum = 1)]
    pub per_buyer_limit: Option<u32>,
    /// The sale ends by itself at this time (ms since the Unix epoch).
    #[schema(maximum = 253_402_300_799_999u64)]
    pub end_at: Option<u64>,
}

/// Opens a sale of the chapter's product for the replay's viewers (the merchant who
/// sold it live): the same SKU and room, open at once, no link drop. The chapter's card
/// then sells from it, and its orders carry `source: replay`.
#[utoipa::path(post, path = "/api/v1/replays/{id}/chapters/{sale_id}/sale", tag = "replays",
    params(("id" = i64, Path, description = "replay id"), ("sale_id" = String, Path, description = "the chapter's (live) sale")),
    request_body = ReplaySaleBody,
    responses((status = 201, body = crate::merchant::SaleView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 408, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("merchant" = [])))]
pub async fn open_replay_sale(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(i64, String)>,
    body: web::Json<ReplaySaleBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, sale_id) = path.into_inner();
    let merchant = crate::merchant::merchant_of(&req, &state)?;
    let body = body.into_inner();
    if state.cluster.is_some() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "replay sales are not available in cluster mode yet",
        ));
    }
    let loaded = load(&state, id).await?;
    let report = analytics(&loaded.row, &loaded.data, &loaded.media, now_ms());
    if !report.chapters.iter().any(|c| c.sale_id == sale_id) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("replay {id} has no chapter for sale `{sale_id}`"),
        ));
    }
    let live = state
        .sales
        .store()
        .get_sale(merchant.clone(), sale_id.clone())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::SaleNotFound, format!("no sale `{sale_id}`")))?;
    if let Some(open) = loaded.replay_sales.get(&sale_id)
        && current_sale(&state, open)
            .await
            .is_some_and(|s| s.state == "open" || s.state == "scheduled")
    {
        return Err(ApiError::new(
            ErrorCode::InvalidSaleState,
            format!("replay sale `{open}` of this chapter is still open; close it first"),
        ));
    }
    let new = lockstep_actors::store::NewSale {
        room: live.room,
        sku_id: live.sku_id,
        allotted: body.allotted,
        price_cents: body.price_cents.unwrap_or(live.price_cents),
        per_buyer_limit: body.per_buyer_limit.unwrap_or(1),
        reservation_ttl_secs: (live.reservation_ttl_ms / 1000).max(1),
        fair_window_ms: 0,
        end_at: body.end_at,
    };
    new.validate()
        .map_err(|m| ApiError::new(ErrorCode::InvalidMessage, m))?;
    let (record, created) = state.sales.create(merchant, new).await?;
    let lockstep_actors::inventory::Created::Running(handle) = created else {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "the sale runs on another node",
        ));
    };
    let (reply, revealed) = lockstep_actors::inventory::reply_channel();
    handle.addr.do_send(lockstep_actors::inventory::Reveal {
        reveal_at: now_ms(),
        seed: rand::random(),
        reply,
    });
    revealed.await?;
    let Replays::Local(files) = replays(&state)? else {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "replay sales are not available in cluster mode yet",
        ));
    };
    let (files, live_sale, replay_sale) = (files.clone(), sale_id, record.id.clone());
    blocking(move || {
        sqlite::set_replay_sale(&files.connect()?, id, &live_sale, &replay_sale, now_ms())
    })
    .await?;
    let summary = crate::merchant::summary(&handle).await?;
    Ok(HttpResponse::Created().json(crate::merchant::SaleView {
        sale: record,
        summary,
    }))
}
