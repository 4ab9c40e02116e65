//! The archive in SQLite: its own file (`archive.path`, WAL), written by one thread that
//! takes rooms' batches from a bounded queue and applies every batch waiting in one
//! transaction; read by the HTTP API through short-lived connections of its own. It
//! also enforces the bounds: points and events per replay, downsampling of old replays,
//! and retention.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{ArchiveBatch, ArchiveJob as Job, Backlog, QueuedArchive, STAY_BOUNDS_SECS};
use crate::config::ArchiveConfig;
use crate::metrics::Metrics;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS replays (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    title TEXT NOT NULL,
    members_only INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    -- seconds per point: 1 while live, archive.downsample_secs once downsampled
    resolution_s INTEGER NOT NULL DEFAULT 1,
    points INTEGER NOT NULL DEFAULT 0,
    events INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS replays_by_room ON replays(room, id);
CREATE TABLE IF NOT EXISTS replay_events (
    replay_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (replay_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS replay_events_by_kind ON replay_events(replay_id, kind, seq);
CREATE TABLE IF NOT EXISTS replay_series (
    replay_id INTEGER NOT NULL,
    t INTEGER NOT NULL,
    online INTEGER NOT NULL,
    joins INTEGER NOT NULL,
    leaves INTEGER NOT NULL,
    comments INTEGER NOT NULL,
    likes INTEGER NOT NULL,
    PRIMARY KEY (replay_id, t)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replay_funnel (
    replay_id INTEGER NOT NULL,
    sale_id TEXT NOT NULL,
    shown INTEGER NOT NULL,
    clicked INTEGER NOT NULL,
    PRIMARY KEY (replay_id, sale_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replay_stays (
    replay_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    viewers INTEGER NOT NULL,
    PRIMARY KEY (replay_id, bucket)
) WITHOUT ROWID;
-- Sales a merchant opened for a replay's chapter (the chapter's sale may have ended).
CREATE TABLE IF NOT EXISTS replay_sales (
    replay_id INTEGER NOT NULL,
    sale_id TEXT NOT NULL,
    replay_sale_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (replay_id, sale_id)
) WITHOUT ROWID;
-- The anchor's edits of chapters; the chapters themselves come from the link events.
CREATE TABLE IF NOT EXISTS replay_chapter_edits (
    replay_id INTEGER NOT NULL,
    sale_id TEXT NOT NULL,
    title TEXT,
    hidden INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (replay_id, sale_id)
) WITHOUT ROWID;
";

/// Opens (creating if needed) the archive database.
pub fn open(path: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Opens the database and starts the writer thread; returns the rooms' handle to it.
/// A room's seconds wait at most `archive.queue_depth` deep (beyond, they are dropped
/// and counted); a run's start and end always get through.
pub fn start(cfg: &ArchiveConfig, metrics: &Metrics) -> rusqlite::Result<QueuedArchive> {
    let conn = open(&cfg.path)?;
    // Runs left open by a process that stopped without ending its rooms end at their
    // last second.
    conn.execute(
        "UPDATE replays SET ended_at = COALESCE(
            (SELECT MAX(t) * 1000 FROM replay_series WHERE replay_id = replays.id), started_at)
         WHERE ended_at IS NULL",
        [],
    )?;
    let (jobs, rx) = channel();
    let backlog = Backlog::new(cfg.queue_depth, metrics);
    let writer = Writer {
        conn,
        cfg: cfg.clone(),
        metrics: metrics.clone(),
        runs: HashMap::new(),
        backlog: backlog.clone(),
    };
    std::thread::Builder::new()
        .name("archive".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    Ok(QueuedArchive::new(backlog, move |job: Job| {
        jobs.send(job).is_ok()
    }))
}

/// A replay being written: its id and how much it holds.
struct Run {
    id: i64,
    points: usize,
    events: usize,
    next_seq: i64,
}

struct Writer {
    conn: Connection,
    cfg: ArchiveConfig,
    metrics: Metrics,
    runs: HashMap<String, Run>,
    /// Room seconds queued (shared with the handle, which bounds it).
    backlog: Backlog,
}

const MAINTAIN_EVERY: Duration = Duration::from_secs(600);

impl Writer {
    fn run(mut self, rx: Receiver<Job>) {
        let mut maintained: Option<Instant> = None;
        loop {
            if maintained.is_none_or(|at| at.elapsed() >= MAINTAIN_EVERY) {
                maintained = Some(Instant::now());
                if let Err(e) = self.maintain(crate::clock::now_ms()) {
                    self.failed(&e);
                }
            }
            let first = match rx.recv_timeout(MAINTAIN_EVERY) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut jobs = vec![first];
            jobs.extend(rx.try_iter().take(1024));
            if let Err(e) = self.apply(jobs) {
                self.failed(&e);
            }
        }
    }

    fn failed(&mut self, e: &rusqlite::Error) {
        self.metrics.archive_failures.inc();
        // What the cache believed may not have been committed: read it again.
        self.runs.clear();
        tracing::error!(error = %e, "archive write failed");
    }

    fn apply(&mut self, jobs: Vec<Job>) -> rusqlite::Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        for job in jobs {
            match job {
                Job::Started(run) => {
                    close_open_runs(&tx, &run.room, run.at)?;
                    tx.execute(
                        "INSERT INTO replays (room, title, members_only, started_at) VALUES (?, ?, ?, ?)",
                        params![run.room, run.title, run.members_only, run.at as i64],
                    )?;
                    let id = tx.last_insert_rowid();
                    self.runs.insert(
                        run.room,
                        Run {
                            id,
                            points: 0,
                            events: 0,
                            next_seq: 1,
                        },
                    );
                }
                Job::Append(room, batch) => {
                    self.backlog.taken();
                    let run = match self.runs.remove(&room) {
                        Some(run) => run,
                        None => find_or_open_run(&tx, &room, batch.at)?,
                    };
                    let run = append(&tx, &self.cfg, &self.metrics, run, &batch)?;
                    self.runs.insert(room, run);
                }
                Job::Ended(room, at, members_only) => {
                    self.runs.remove(&room);
                    tx.execute(
                        "UPDATE replays SET members_only = ? WHERE room = ? AND ended_at IS NULL",
                        params![members_only, room],
                    )?;
                    close_open_runs(&tx, &room, at)?;
                }
            }
        }
        tx.commit()
    }

    /// Downsamples replays that ended long ago and deletes those past retention.
    fn maintain(&mut self, now: u64) -> rusqlite::Result<()> {
        if self.cfg.retention_days > 0 {
            let cutoff = now.saturating_sub(self.cfg.retention_days * 86_400_000) as i64;
            let tx = self.conn.unchecked_transaction()?;
            for table in [
                "replay_events",
                "replay_series",
                "replay_funnel",
                "replay_stays",
                "replay_chapter_edits",
                "replay_sales",
            ] {
                tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE replay_id IN (SELECT id FROM replays WHERE ended_at < ?)"
                    ),
                    [cutoff],
                )?;
            }
            tx.execute("DELETE FROM replays WHERE ended_at < ?", [cutoff])?;
            tx.commit()?;
        }
        if self.cfg.downsample_after_hours > 0 && self.cfg.downsample_secs > 1 {
            let cutoff = now.saturating_sub(self.cfg.downsample_after_hours * 3_600_000) as i64;
            let due: Vec<i64> = {
                let mut stmt = self
                    .conn
                    .prepare("SELECT id FROM replays WHERE ended_at < ? AND resolution_s = 1")?;
                stmt.query_map([cutoff], |r| r.get(0))?
                    .collect::<Result<_, _>>()?
            };
            for id in due {
                downsample(&self.conn, id, self.cfg.downsample_secs as i64)?;
            }
        }
        Ok(())
    }
}

fn close_open_runs(conn: &Connection, room: &str, at: u64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE replays SET ended_at = MAX(?, started_at) WHERE room = ? AND ended_at IS NULL",
        params![at as i64, room],
    )?;
    Ok(())
}

/// The room's open replay (its start was not seen: the archive failed a transaction),
/// or a new one — members only until the room's end says otherwise, so a lost start
/// never opens a private room's replay to guests.
fn find_or_open_run(conn: &Connection, room: &str, at: u64) -> rusqlite::Result<Run> {
    let open: Option<(i64, i64, i64)> = conn
        .query_row(
            "SELECT id, points, events FROM replays WHERE room = ? AND ended_at IS NULL ORDER BY id DESC LIMIT 1",
            [room],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some((id, points, events)) = open {
        let next_seq: i64 = conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM replay_events WHERE replay_id = ?",
            [id],
            |r| r.get(0),
        )?;
        return Ok(Run {
            id,
            points: points as usize,
            events: events as usize,
            next_seq,
        });
    }
    conn.execute(
        "INSERT INTO replays (room, title, members_only, started_at) VALUES (?, ?, 1, ?)",
        params![room, room, at as i64],
    )?;
    Ok(Run {
        id: conn.last_insert_rowid(),
        points: 0,
        events: 0,
        next_seq: 1,
    })
}

fn append(
    conn: &Connection,
    cfg: &ArchiveConfig,
    metrics: &Metrics,
    mut run: Run,
    batch: &ArchiveBatch,
) -> rusqlite::Result<Run> {
    let dropped_before = batch.events_dropped;
    let mut dropped = dropped_before;
    metrics
        .archive_dropped
        .with_label_values(&["event"])
        .inc_by(dropped_before);
    {
        let mut insert = conn.prepare_cached(
            "INSERT INTO replay_events (replay_id, seq, at, kind, body) VALUES (?, ?, ?, ?, ?)",
        )?;
        for event in &batch.events {
            // The bound is for the chatter; links, sales and moderation always stay.
            if run.events >= cfg.max_events_per_replay && event.kind.is_chatter() {
                dropped += 1;
                metrics.archive_dropped.with_label_values(&["event"]).inc();
                continue;
            }
            let body = serde_json::to_string(event).unwrap_or_default();
            insert.execute(params![
                run.id,
                run.next_seq,
                event.at as i64,
                event.kind.name(),
                body
            ])?;
            run.next_seq += 1;
            run.events += 1;
        }
    }
    let t = (batch.at / 1000) as i64;
    let exists: bool = conn
        .prepare_cached("SELECT 1 FROM replay_series WHERE replay_id = ? AND t = ?")?
        .exists(params![run.id, t])?;
    if exists || run.points < cfg.max_points_per_replay {
        conn.prepare_cached(
            "INSERT INTO replay_series (replay_id, t, online, joins, leaves, comments, likes)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (replay_id, t) DO UPDATE SET online = excluded.online,
                joins = joins + excluded.joins, leaves = leaves + excluded.leaves,
                comments = comments + excluded.comments, likes = likes + excluded.likes",
        )?
        .execute(params![
            run.id,
            t,
            batch.online as i64,
            batch.joins as i64,
            batch.leaves as i64,
            batch.comments as i64,
            batch.likes as i64
        ])?;
        if !exists {
            run.points += 1;
        }
    } else {
        dropped += 1;
        metrics.archive_dropped.with_label_values(&["point"]).inc();
    }
    for f in &batch.funnel {
        conn.prepare_cached(
            "INSERT INTO replay_funnel (replay_id, sale_id, shown, clicked) VALUES (?, ?, ?, ?)
             ON CONFLICT (replay_id, sale_id) DO UPDATE SET shown = shown + excluded.shown,
                clicked = clicked + excluded.clicked",
        )?
        .execute(params![run.id, f.sale_id, f.shown as i64, f.clicked as i64])?;
    }
    for (bucket, &n) in batch.stays.iter().enumerate().filter(|(_, n)| **n > 0) {
        conn.prepare_cached(
            "INSERT INTO replay_stays (replay_id, bucket, viewers) VALUES (?, ?, ?)
             ON CONFLICT (replay_id, bucket) DO UPDATE SET viewers = viewers + excluded.viewers",
        )?
        .execute(params![run.id, bucket as i64, n as i64])?;
    }
    conn.prepare_cached(
        "UPDATE replays SET points = ?, events = ?, dropped = dropped + ? WHERE id = ?",
    )?
    .execute(params![
        run.points as i64,
        run.events as i64,
        dropped as i64,
        run.id
    ])?;
    Ok(run)
}

/// Replaces a replay's one-second points with `secs`-second points: counts add up, the
/// online count is the bucket's peak.
fn downsample(conn: &Connection, id: i64, secs: i64) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "CREATE TEMP TABLE IF NOT EXISTS downsampled AS SELECT * FROM replay_series WHERE 0",
        [],
    )?;
    tx.execute("DELETE FROM temp.downsampled", [])?;
    tx.execute(
        "INSERT INTO temp.downsampled SELECT replay_id, (t / ?1) * ?1, MAX(online), SUM(joins),
            SUM(leaves), SUM(comments), SUM(likes)
         FROM replay_series WHERE replay_id = ?2 GROUP BY t / ?1",
        params![secs, id],
    )?;
    tx.execute("DELETE FROM replay_series WHERE replay_id = ?", [id])?;
    tx.execute(
        "INSERT INTO replay_series SELECT * FROM temp.downsampled",
        [],
    )?;
    let points: i64 = tx.query_row(
        "SELECT COUNT(*) FROM replay_series WHERE replay_id = ?",
        [id],
        |r| r.get(0),
    )?;
    tx.execute(
        "UPDATE replays SET resolution_s = ?, points = ? WHERE id = ?",
        params![secs, points, id],
    )?;
    tx.commit()
}

/// A replay's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayRow {
    pub id: i64,
    pub room: String,
    pub title: String,
    pub members_only: bool,
    pub started_at: u64,
    pub ended_at: Option<u64>,
    pub resolution_s: u64,
    /// Events and points the bounds (or a full queue) dropped.
    pub dropped: u64,
}

/// One point of a replay's time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeriesRow {
    /// Unix seconds.
    pub t: u64,
    pub online: u64,
    pub joins: u64,
    pub leaves: u64,
    pub comments: u64,
    pub likes: u64,
}

/// Funnel counts of one sale in a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunnelRow {
    pub sale_id: String,
    pub shown: u64,
    pub clicked: u64,
}

/// The anchor's edit of a chapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChapterEdit {
    pub sale_id: String,
    pub title: Option<String>,
    pub hidden: bool,
}

fn replay_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReplayRow> {
    Ok(ReplayRow {
        id: r.get(0)?,
        room: r.get(1)?,
        title: r.get(2)?,
        members_only: r.get(3)?,
        started_at: r.get::<_, i64>(4)? as u64,
        ended_at: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
        resolution_s: r.get::<_, i64>(6)? as u64,
        dropped: r.get::<_, i64>(7)? as u64,
    })
}

const REPLAY_COLUMNS: &str =
    "id, room, title, members_only, started_at, ended_at, resolution_s, dropped";

/// The replays of `room`, newest first (at most `limit`).
pub fn list_replays(
    conn: &Connection,
    room: &str,
    limit: usize,
) -> rusqlite::Result<Vec<ReplayRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {REPLAY_COLUMNS} FROM replays WHERE room = ? ORDER BY id DESC LIMIT ?"
    ))?;
    stmt.query_map(params![room, limit as i64], replay_row)?
        .collect()
}

pub fn get_replay(conn: &Connection, id: i64) -> rusqlite::Result<Option<ReplayRow>> {
    conn.query_row(
        &format!("SELECT {REPLAY_COLUMNS} FROM replays WHERE id = ?"),
        [id],
        replay_row,
    )
    .optional()
}

/// Up to `limit` events of a replay after position `after`, in order, with their
/// positions.
pub fn events_after(
    conn: &Connection,
    id: i64,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<(i64, serde_json::Value)>> {
    let mut stmt = conn.prepare(
        "SELECT seq, body FROM replay_events WHERE replay_id = ? AND seq > ? ORDER BY seq LIMIT ?",
    )?;
    let rows = stmt.query_map(params![id, after, limit as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, body) = row?;
        if let Ok(value) = serde_json::from_str(&body) {
            out.push((seq, value));
        }
    }
    Ok(out)
}

/// Events of one kind (`link`, `sale`, ...) of a replay, in order.
pub fn events_of_kind(
    conn: &Connection,
    id: i64,
    kind: &str,
) -> rusqlite::Result<Vec<serde_json::Value>> {
    let mut stmt = conn
        .prepare("SELECT body FROM replay_events WHERE replay_id = ? AND kind = ? ORDER BY seq")?;
    let rows = stmt.query_map(params![id, kind], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for body in rows {
        if let Ok(value) = serde_json::from_str(&body?) {
            out.push(value);
        }
    }
    Ok(out)
}

pub fn series(conn: &Connection, id: i64) -> rusqlite::Result<Vec<SeriesRow>> {
    let mut stmt = conn.prepare(
        "SELECT t, online, joins, leaves, comments, likes FROM replay_series WHERE replay_id = ? ORDER BY t",
    )?;
    stmt.query_map([id], |r| {
        Ok(SeriesRow {
            t: r.get::<_, i64>(0)? as u64,
            online: r.get::<_, i64>(1)? as u64,
            joins: r.get::<_, i64>(2)? as u64,
            leaves: r.get::<_, i64>(3)? as u64,
            comments: r.get::<_, i64>(4)? as u64,
            likes: r.get::<_, i64>(5)? as u64,
        })
    })?
    .collect()
}

pub fn funnel(conn: &Connection, id: i64) -> rusqlite::Result<Vec<FunnelRow>> {
    let mut stmt =
        conn.prepare("SELECT sale_id, shown, clicked FROM replay_funnel WHERE replay_id = ?")?;
    stmt.query_map([id], |r| {
        Ok(FunnelRow {
            sale_id: r.get(0)?,
            shown: r.get::<_, i64>(1)? as u64,
            clicked: r.get::<_, i64>(2)? as u64,
        })
    })?
    .collect()
}

/// Leaving viewers per stay bucket (`STAY_BOUNDS_SECS.len() + 1` entries).
pub fn stays(conn: &Connection, id: i64) -> rusqlite::Result<Vec<u64>> {
    let mut out = vec![0; STAY_BOUNDS_SECS.len() + 1];
    let mut stmt = conn.prepare("SELECT bucket, viewers FROM replay_stays WHERE replay_id = ?")?;
    for row in stmt.query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
        let (bucket, n) = row?;
        if let Some(slot) = out.get_mut(bucket as usize) {
            *slot = n as u64;
        }
    }
    Ok(out)
}

pub fn chapter_edits(conn: &Connection, id: i64) -> rusqlite::Result<Vec<ChapterEdit>> {
    let mut stmt = conn
        .prepare("SELECT sale_id, title, hidden FROM replay_chapter_edits WHERE replay_id = ?")?;
    stmt.query_map([id], |r| {
        Ok(ChapterEdit {
            sale_id: r.get(0)?,
            title: r.get(1)?,
            hidden: r.get(2)?,
        })
    })?
    .collect()
}

/// Records the anchor's edit of a chapter (`None` leaves that part as it was).
pub fn edit_chapter(
    conn: &Connection,
    id: i64,
    sale_id: &str,
    title: Option<&str>,
    hidden: Option<bool>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO replay_chapter_edits (replay_id, sale_id, title, hidden) VALUES (?1, ?2, ?3, COALESCE(?4, 0))
         ON CONFLICT (replay_id, sale_id) DO UPDATE SET title = COALESCE(?3, title),
            hidden = COALESCE(?4, hidden)",
        params![id, sale_id, title, hidden],
    )?;
    Ok(())
}

/// The sale a merchant opened for the chapter of `sale_id` in replay `id` (the latest
/// replaces an earlier one).
pub fn set_replay_sale(
    conn: &Connection,
    id: i64,
    sale_id: &str,
    replay_sale_id: &str,
    now: u64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO replay_sales (replay_id, sale_id, replay_sale_id, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (replay_id, sale_id) DO UPDATE SET replay_sale_id = excluded.replay_sale_id,
            created_at = excluded.created_at",
        params![id, sale_id, replay_sale_id, now as i64],
    )?;
    Ok(())
}

/// Chapter sale → the sale opened for it in replay `id`.
pub fn replay_sales(
    conn: &Connection,
    id: i64,
) -> rusqlite::Result<std::collections::HashMap<String, String>> {
    let mut stmt =
        conn.prepare("SELECT sale_id, replay_sale_id FROM replay_sales WHERE replay_id = ?")?;
    stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{ArchiveBatch, RunStarted};

    fn writer(name: &str, cfg: ArchiveConfig) -> Writer {
        let dir = std::env::temp_dir().join(format!("lockstep-archive-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.db"));
        let _ = std::fs::remove_file(&path);
        Writer {
            conn: open(path.to_str().unwrap()).unwrap(),
            cfg,
            metrics: Metrics::new(),
            runs: HashMap::new(),
            backlog: Backlog::new(usize::MAX, &Metrics::new()),
        }
    }

    fn second(at: u64, online: u64) -> ArchiveBatch {
        ArchiveBatch {
            at,
            online,
            joins: 1,
            leaves: 0,
            comments: 2,
            likes: 3,
            stays: vec![0; STAY_BOUNDS_SECS.len() + 1],
            funnel: Vec::new(),
            events: Vec::new(),
            events_dropped: 0,
        }
    }

    /// A run of `room` from `start` (ms) for `secs` seconds, ended; returns its id.
    fn run(w: &mut Writer, room: &str, start: u64, secs: u64) -> i64 {
        let mut jobs = vec![Job::Started(RunStarted {
            room: room.into(),
            title: room.into(),
            members_only: false,
            at: start,
        })];
        for s in 0..secs {
            assert!(w.backlog.admit());
            jobs.push(Job::Append(
                room.into(),
                second(start + s * 1000, 10 + s % 7),
            ));
        }
        jobs.push(Job::Ended(room.into(), start + secs * 1000, false));
        w.apply(jobs).unwrap();
        list_replays(&w.conn, room, 1).unwrap()[0].id
    }

    const HOUR: u64 = 3_600_000;

    #[test]
    fn old_runs_are_downsampled_keeping_their_counts_then_deleted() {
        let cfg = ArchiveConfig {
            downsample_after_hours: 24,
            downsample_secs: 10,
            retention_days: 30,
            ..ArchiveConfig::default()
        };
        let mut w = writer("maintain", cfg);
        let t0 = 1_000 * HOUR;
        let old = run(&mut w, "old", t0, 95);
        let recent = run(&mut w, "recent", t0 + 20 * 24 * HOUR, 95);
        let before = series(&w.conn, old).unwrap();
        assert_eq!(before.len(), 95);

        // A day and a bit later: the old run is kept at 10 s a point, nothing lost.
        w.maintain(t0 + 25 * HOUR).unwrap();
        let after = series(&w.conn, old).unwrap();
        assert_eq!(after.len(), 10);
        assert!(after.iter().all(|p| p.t % 10 == 0));
        let sum = |s: &[SeriesRow], f: fn(&SeriesRow) -> u64| s.iter().map(f).sum::<u64>();
        assert_eq!(sum(&after, |p| p.comments), sum(&before, |p| p.comments));
        assert_eq!(sum(&after, |p| p.joins), 95);
        assert_eq!(after[0].online, 16, "a point keeps its peak");
        assert_eq!(get_replay(&w.conn, old).unwrap().unwrap().resolution_s, 10);
        assert_eq!(
            series(&w.conn, recent).unwrap().len(),
            95,
            "the recent run untouched"
        );

        // Past retention: the old run and all its rows go, the recent one stays.
        w.maintain(t0 + 31 * 24 * HOUR).unwrap();
        assert_eq!(get_replay(&w.conn, old).unwrap(), None);
        assert!(series(&w.conn, old).unwrap().is_empty());
        assert!(get_replay(&w.conn, recent).unwrap().is_some());
    }

    #[test]
    fn a_run_stops_taking_points_at_its_bound_and_counts_what_it_dropped() {
        let cfg = ArchiveConfig {
            max_points_per_replay: 30,
            ..ArchiveConfig::default()
        };
        let mut w = writer("bounded", cfg);
        let id = run(&mut w, "r", 1_000 * HOUR, 50);
        assert_eq!(series(&w.conn, id).unwrap().len(), 30);
        assert_eq!(get_replay(&w.conn, id).unwrap().unwrap().dropped, 20);
        assert_eq!(
            w.metrics
                .archive_dropped
                .with_label_values(&["point"])
                .get(),
            20
        );
    }
}
