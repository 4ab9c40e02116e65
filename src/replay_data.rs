//! Reading what a replay is made of: on one process, its rows in the archive's SQLite
//! file and the orders of its sales in the store's (attached read-only), on a blocking
//! thread; in a cluster, the same from Redis. And its recording on this node (the WebM
//! and the description beside it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use actix_web::web;
use lockstep_cluster::archive::read::RedisReplays;
use lockstep_protocol::ErrorCode;

use crate::http::ApiError;

use lockstep_actors::archive::report::{
    ChapterOrders, MediaMap, OrderSecond, ReplayData, RtpAnchor, SaleTotals,
};
use lockstep_actors::archive::sqlite::{self, ReplayRow};
use lockstep_sfu::record::meta::{RecordingMeta, recordings_of};
use rusqlite::{Connection, params};

/// Where a server keeps what replays read.
#[derive(Debug, Clone)]
pub struct ArchiveFiles {
    /// The archive's SQLite file.
    pub db: String,
    /// The store's SQLite file (orders); `None` in cluster mode, where orders are in Redis.
    pub store_db: Option<String>,
    /// `media.recording_dir`.
    pub recordings: PathBuf,
}

/// A replay with everything read for it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub row: ReplayRow,
    pub data: ReplayData,
    pub media: MediaMap,
    pub recording: Option<(PathBuf, RecordingMeta)>,
    /// Chapter sale → the sale a merchant opened for it in this replay.
    pub replay_sales: HashMap<String, String>,
}

impl Loaded {
    /// The sale a buyer of the chapter of `sale_id` buys from: the one opened for the
    /// replay, if any, else the chapter's own.
    pub fn buying_sale<'a>(&'a self, sale_id: &'a str) -> &'a str {
        self.replay_sales
            .get(sale_id)
            .map_or(sale_id, String::as_str)
    }
}

impl ArchiveFiles {
    /// A connection to the archive, with the store attached as `store` when there is one.
    pub fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = sqlite::open(&self.db)?;
        if let Some(store) = self.store_db.as_deref().filter(|p| Path::new(p).exists()) {
            let uri = format!("file:{store}?mode=ro");
            conn.execute("ATTACH DATABASE ? AS store", [uri])?;
        }
        Ok(conn)
    }

    fn has_store(conn: &Connection) -> bool {
        conn.query_row(
            "SELECT 1 FROM pragma_database_list WHERE name = 'store'",
            [],
            |_| Ok(()),
        )
        .is_ok()
    }

    /// Loads replay `id`; `None` when there is none.
    pub fn load(&self, id: i64, now: u64) -> rusqlite::Result<Option<Loaded>> {
        let conn = self.connect()?;
        let Some(row) = sqlite::get_replay(&conn, id)? else {
            return Ok(None);
        };
        let links = sqlite::events_of_kind(&conn, id, "link")?;
        let mut sale_ids: Vec<String> = Vec::new();
        for sale in links.iter().filter_map(|l| l["sale_id"].as_str()) {
            if !sale_ids.iter().any(|s| s == sale) {
                sale_ids.push(sale.to_owned());
            }
        }
        let (sales, orders, replay_orders) = if Self::has_store(&conn) {
            (
                sale_totals(&conn, &sale_ids)?,
                order_seconds(&conn, &row, now)?,
                chapter_orders(&conn, id)?,
            )
        } else {
            (Vec::new(), Vec::new(), Vec::new())
        };
        let data = ReplayData {
            series: sqlite::series(&conn, id)?,
            links,
            sale_events: sqlite::events_of_kind(&conn, id, "sale")?,
            funnel: sqlite::funnel(&conn, id)?,
            stays: sqlite::stays(&conn, id)?,
            edits: sqlite::chapter_edits(&conn, id)?,
            sales,
            orders,
            replay_orders,
        };
        let recording = recording_in(&self.recordings, &row, now);
        let media = media_map(&row, recording.as_ref());
        Ok(Some(Loaded {
            replay_sales: sqlite::replay_sales(&conn, id)?,
            row,
            data,
            media,
            recording,
        }))
    }
}

/// The recording made on this node during `row`'s run of its room, if any.
fn recording_in(dir: &Path, row: &ReplayRow, now: u64) -> Option<(PathBuf, RecordingMeta)> {
    let end = row.ended_at.unwrap_or(now);
    recordings_of(dir, &row.room)
        .into_iter()
        .find(|(_, m)| m.started_at + 5_000 >= row.started_at && m.started_at <= end)
}

/// Where media position 0 is in server time, and the recording's clock anchors.
fn media_map(row: &ReplayRow, recording: Option<&(PathBuf, RecordingMeta)>) -> MediaMap {
    match recording {
        Some((_, meta)) => MediaMap {
            start_at: meta.started_at + meta.playout_delay_ms,
            anchors: meta
                .anchors
                .iter()
                .map(|a| RtpAnchor {
                    media_ms: a.media_ms,
                    rtp: a.rtp,
                })
                .collect(),
        },
        None => MediaMap {
            start_at: row.started_at,
            anchors: Vec::new(),
        },
    }
}

/// Per sale: orders placed live, with the units still held or paid, the units paid
/// and the takings (cancelled and expired orders count as orders, not as units).
fn sale_totals(conn: &Connection, sale_ids: &[String]) -> rusqlite::Result<Vec<SaleTotals>> {
    let mut stmt = conn.prepare(
        "SELECT COUNT(*),
                COALESCE(SUM(o.qty) FILTER (WHERE o.state IN ('reserved', 'confirmed')), 0),
                COALESCE(SUM(o.qty) FILTER (WHERE o.state = 'confirmed'), 0),
                COALESCE(SUM(o.qty * s.price_cents) FILTER (WHERE o.state IN ('reserved', 'confirmed')), 0)
         FROM store.orders o JOIN store.sales s ON s.id = o.sale_id
         WHERE o.sale_id = ?1 AND o.source = 'live'",
    )?;
    sale_ids
        .iter()
        .map(|sale| {
            stmt.query_row(params![sale], |r| {
                Ok(SaleTotals {
                    sale_id: sale.clone(),
                    orders: r.get::<_, i64>(0)? as u64,
                    units: r.get::<_, i64>(1)? as u64,
                    paid: r.get::<_, i64>(2)? as u64,
                    gmv_cents: r.get::<_, i64>(3)? as u64,
                })
            })
        })
        .collect()
}

/// Orders placed from replay `id`, per chapter (to whichever sale the chapter sold from).
fn chapter_orders(conn: &Connection, id: i64) -> rusqlite::Result<Vec<ChapterOrders>> {
    let mut stmt = conn.prepare(
        "SELECT chapter, COUNT(*), COALESCE(SUM(qty), 0) FROM store.orders
         WHERE source = 'replay' AND replay_id = ?1 GROUP BY chapter",
    )?;
    stmt.query_map([id], |r| {
        Ok(ChapterOrders {
            chapter: r.get(0)?,
            orders: r.get::<_, i64>(1)? as u64,
            units: r.get::<_, i64>(2)? as u64,
        })
    })?
    .collect()
}

/// Orders placed in the live room during the run, per second.
fn order_seconds(
    conn: &Connection,
    row: &ReplayRow,
    now: u64,
) -> rusqlite::Result<Vec<OrderSecond>> {
    let mut stmt = conn.prepare(
        "SELECT o.created_at / 1000, COUNT(*),
                COALESCE(SUM(o.qty) FILTER (WHERE o.state IN ('reserved', 'confirmed')), 0),
                COALESCE(SUM(o.qty * s.price_cents) FILTER (WHERE o.state IN ('reserved', 'confirmed')), 0)
         FROM store.orders o JOIN store.sales s ON s.id = o.sale_id
         WHERE s.room = ?1 AND o.source = 'live' AND o.created_at BETWEEN ?2 AND ?3
         GROUP BY o.created_at / 1000 ORDER BY 1",
    )?;
    let end = row.ended_at.unwrap_or(now);
    stmt.query_map(params![row.room, row.started_at as i64, end as i64], |r| {
        Ok(OrderSecond {
            t: r.get::<_, i64>(0)? as u64,
            orders: r.get::<_, i64>(1)? as u64,
            units: r.get::<_, i64>(2)? as u64,
            gmv_cents: r.get::<_, i64>(3)? as u64,
        })
    })?
    .collect()
}

/// Where a server reads replays: its own SQLite archive (one process), or the cluster's
/// Redis (any node reads every room's), with this node's recordings either way.
#[derive(Clone)]
pub enum Replays {
    Local(ArchiveFiles),
    Shared {
        redis: RedisReplays,
        recordings: PathBuf,
    },
}

impl std::fmt::Debug for Replays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Local(_) => "Replays::Local",
            Self::Shared { .. } => "Replays::Shared",
        })
    }
}

/// Runs `f` on a blocking thread against the SQLite archive.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(f)
        .await
        .map_err(|_| ApiError::new(ErrorCode::Unavailable, "the archive did not answer; retry"))?
        .map_err(|e| {
            tracing::error!(error = %e, "reading the archive");
            ApiError::new(ErrorCode::Unavailable, "the archive cannot be read; retry")
        })
}

impl Replays {
    pub async fn list(&self, room: &str, limit: usize) -> Result<Vec<ReplayRow>, ApiError> {
        match self {
            Self::Local(files) => {
                let (files, room) = (files.clone(), room.to_owned());
                blocking(move || sqlite::list_replays(&files.connect()?, &room, limit)).await
            }
            Self::Shared { redis, .. } => Ok(redis.list(room, limit).await?),
        }
    }

    pub async fn row(&self, id: i64) -> Result<Option<ReplayRow>, ApiError> {
        match self {
            Self::Local(files) => {
                let files = files.clone();
                blocking(move || sqlite::get_replay(&files.connect()?, id)).await
            }
            Self::Shared { redis, .. } => Ok(redis.row(id).await?),
        }
    }

    fn recordings(&self) -> &Path {
        match self {
            Self::Local(files) => &files.recordings,
            Self::Shared { recordings, .. } => recordings,
        }
    }

    /// The recording of `row`'s run on this node, if any (read off the async threads).
    pub async fn recording_of(
        &self,
        row: &ReplayRow,
        now: u64,
    ) -> Result<Option<(PathBuf, RecordingMeta)>, ApiError> {
        let (dir, row) = (self.recordings().to_owned(), row.clone());
        blocking(move || Ok(recording_in(&dir, &row, now))).await
    }

    /// Replay `id` with everything read for it; `None` when there is none.
    pub async fn load(&self, id: i64, now: u64) -> Result<Option<Loaded>, ApiError> {
        match self {
            Self::Local(files) => {
                let files = files.clone();
                blocking(move || files.load(id, now)).await
            }
            Self::Shared { redis, recordings } => {
                let Some(row) = redis.row(id).await? else {
                    return Ok(None);
                };
                let data = redis.data(&row, now).await?;
                let (dir, lookup) = (recordings.clone(), row.clone());
                let recording = blocking(move || Ok(recording_in(&dir, &lookup, now))).await?;
                Ok(Some(Loaded {
                    media: media_map(&row, recording.as_ref()),
                    row,
                    data,
                    recording,
                    replay_sales: HashMap::new(),
                }))
            }
        }
    }

    /// Up to `limit` events after position `after`, with their positions.
    pub async fn events_after(
        &self,
        id: i64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, serde_json::Value)>, ApiError> {
        match self {
            Self::Local(files) => {
                let files = files.clone();
                blocking(move || sqlite::events_after(&files.connect()?, id, after, limit)).await
            }
            Self::Shared { redis, .. } => Ok(redis.events_after(id, after, limit).await?),
        }
    }

    /// Cluster mode: the node holding replay `id`'s recording, when it is another node.
    pub async fn recorded_elsewhere(
        &self,
        id: i64,
        this_node: &str,
    ) -> Result<Option<String>, ApiError> {
        match self {
            Self::Local(_) => Ok(None),
            Self::Shared { redis, .. } => {
                Ok(redis.node_of(id).await?.filter(|node| node != this_node))
            }
        }
    }

    /// The moderation events of replay `id`.
    pub async fn moderation(&self, id: i64) -> Result<Vec<serde_json::Value>, ApiError> {
        match self {
            Self::Local(files) => {
                let files = files.clone();
                blocking(move || sqlite::events_of_kind(&files.connect()?, id, "moderation")).await
            }
            Self::Shared { redis, .. } => Ok(redis.events_of_kind(id, "moderation").await?),
        }
    }

    pub async fn edit_chapter(
        &self,
        id: i64,
        sale_id: &str,
        title: Option<String>,
        hidden: Option<bool>,
    ) -> Result<(), ApiError> {
        match self {
            Self::Local(files) => {
                let (files, sale_id) = (files.clone(), sale_id.to_owned());
                blocking(move || {
                    sqlite::edit_chapter(&files.connect()?, id, &sale_id, title.as_deref(), hidden)
                })
                .await
            }
            Self::Shared { redis, .. } => Ok(redis
                .edit_chapter(id, sale_id, title.as_deref(), hidden)
                .await?),
        }
    }
}
