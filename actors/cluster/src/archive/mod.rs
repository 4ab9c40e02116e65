//! The archive of a cluster's rooms in Redis: the same record a single process keeps in
//! SQLite (`lockstep_actors::archive`), kept where every node reads it, so a replay and
//! its dashboard are served by any node, and a room that moves to another node (a
//! failover) goes on writing the same run.
//!
//! Layout: replay ids from `lockstep:{replays}:next`; a room's replays in the sorted set
//! `lockstep:{replays}:room:<room>`; its open run in `lockstep:{replays}:open:<room>`.
//! Each replay's keys share the tag `{replay:<id>}`: `meta` (hash), `events` (list of
//! JSON, position = sequence), `kind:<link|sale|moderation>` (lists of those events),
//! `series:<online|joins|leaves|comments|likes>` (hashes by Unix second), `funnel`,
//! `stays`, `edits` (hashes). An ended run's keys expire after `archive.retention_days`.
//!
//! Writing ([`start`]): one task takes the rooms' batches from a queue bounded
//! like SQLite's (a run's start and end always get through) and writes each with one
//! pipeline. Reading: [`read`].

pub mod read;

use std::collections::HashMap;

use lockstep_actors::archive::{
    ArchiveBatch, ArchiveJob as Job, Backlog, QueuedArchive, RunStarted,
};
use lockstep_actors::config::ArchiveConfig;
use lockstep_actors::metrics::Metrics;
use redis::RedisResult;
use tokio::sync::mpsc;

use crate::conn::RedisConn;

/// Where the archive keeps things (see the module docs).
pub(crate) mod keys {
    pub fn next() -> &'static str {
        "lockstep:{replays}:next"
    }

    pub fn room(room: &str) -> String {
        format!("lockstep:{{replays}}:room:{room}")
    }

    pub fn open(room: &str) -> String {
        format!("lockstep:{{replays}}:open:{room}")
    }

    pub fn of(id: i64, what: &str) -> String {
        format!("lockstep:{{replay:{id}}}:{what}")
    }

    /// Kinds of event kept in lists of their own (few, and read for every replay).
    pub const KEPT_KINDS: [&str; 3] = ["link", "sale", "moderation"];
    pub const SERIES: [&str; 5] = ["online", "joins", "leaves", "comments", "likes"];

    /// Every key of replay `id`.
    pub fn all(id: i64) -> Vec<String> {
        let mut out: Vec<String> = ["meta", "events", "funnel", "stays", "edits"]
            .iter()
            .map(|w| of(id, w))
            .collect();
        out.extend(KEPT_KINDS.iter().map(|k| of(id, &format!("kind:{k}"))));
        out.extend(SERIES.iter().map(|s| of(id, &format!("series:{s}"))));
        out
    }
}

/// Starts the writing task (on the current Tokio runtime); returns the rooms' handle to
/// it. `node` is this node, where the runs it starts are recorded.
pub(crate) fn start(
    conn: RedisConn,
    node: String,
    cfg: &ArchiveConfig,
    metrics: &Metrics,
) -> QueuedArchive {
    let (jobs, rx) = mpsc::unbounded_channel();
    let backlog = Backlog::new(cfg.queue_depth, metrics);
    let writer = Writer {
        conn,
        node,
        cfg: cfg.clone(),
        metrics: metrics.clone(),
        runs: HashMap::new(),
        backlog: backlog.clone(),
    };
    tokio::spawn(writer.run(rx));
    QueuedArchive::new(backlog, move |job: Job| jobs.send(job).is_ok())
}

/// A run being written: its id and how much it holds.
struct Run {
    id: i64,
    points: usize,
    events: usize,
    last_t: Option<u64>,
}

struct Writer {
    conn: RedisConn,
    /// This node: where the rooms it runs are recorded.
    node: String,
    cfg: ArchiveConfig,
    metrics: Metrics,
    runs: HashMap<String, Run>,
    backlog: Backlog,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        while let Some(job) = rx.recv().await {
            let done = match job {
                Job::Started(run) => self.started(run).await,
                Job::Append(room, batch) => {
                    self.backlog.taken();
                    self.append(room, batch).await
                }
                Job::Ended(room, at, members_only) => self.ended(&room, at, members_only).await,
            };
            if let Err(e) = done {
                self.metrics.archive_failures.inc();
                // What the cache believed may not have been written: read it again.
                self.runs.clear();
                tracing::error!(error = %e, "archive write to Redis failed");
            }
        }
    }

    async fn open_run(
        &mut self,
        room: &str,
        title: &str,
        members_only: bool,
        at: u64,
    ) -> RedisResult<Run> {
        let id: i64 = redis::cmd("INCR")
            .arg(keys::next())
            .query_async(&mut self.conn)
            .await?;
        redis::pipe()
            .cmd("HSET")
            .arg(keys::of(id, "meta"))
            .arg(&[
                ("room", room.to_owned()),
                ("title", title.to_owned()),
                ("members_only", u8::from(members_only).to_string()),
                ("started_at", at.to_string()),
                ("node", self.node.clone()),
                ("resolution_s", "1".to_owned()),
                ("dropped", "0".to_owned()),
            ])
            .ignore()
            .query_async::<()>(&mut self.conn)
            .await?;
        redis::pipe()
            .cmd("ZADD")
            .arg(keys::room(room))
            .arg(at)
            .arg(id)
            .ignore()
            .cmd("SET")
            .arg(keys::open(room))
            .arg(id)
            .ignore()
            .query_async::<()>(&mut self.conn)
            .await?;
        Ok(Run {
            id,
            points: 0,
            events: 0,
            last_t: None,
        })
    }

    async fn started(&mut self, run: RunStarted) -> RedisResult<()> {
        // A run this room left open (its node stopped) ends where the new one starts.
        self.close_open(&run.room, run.at, None).await?;
        let opened = self
            .open_run(&run.room, &run.title, run.members_only, run.at)
            .await?;
        self.runs.insert(run.room, opened);
        Ok(())
    }

    /// The room's open run (another node may have started it: the room moved here), or
    /// a new one — members only until the room's end says otherwise.
    async fn run_of(&mut self, room: &str, at: u64) -> RedisResult<Run> {
        // The room's open run as Redis has it: another node may have ended it, or started
        // the next one, since this node last wrote (the room moved away and back).
        let open: Option<i64> = redis::cmd("GET")
            .arg(keys::open(room))
            .query_async(&mut self.conn)
            .await?;
        let cached = self.runs.remove(room);
        if let Some(run) = cached.filter(|run| Some(run.id) == open) {
            return Ok(run);
        }
        if let Some(id) = open {
            let (points, events): (usize, usize) = redis::pipe()
                .cmd("HLEN")
                .arg(keys::of(id, "series:online"))
                .cmd("LLEN")
                .arg(keys::of(id, "events"))
                .query_async(&mut self.conn)
                .await?;
            return Ok(Run {
                id,
                points,
                events,
                last_t: None,
            });
        }
        self.open_run(room, room, true, at).await
    }

    async fn append(&mut self, room: String, batch: ArchiveBatch) -> RedisResult<()> {
        let mut run = self.run_of(&room, batch.at).await?;
        let id = run.id;
        let mut pipe = redis::pipe();
        let mut dropped = batch.events_dropped;
        self.metrics
            .archive_dropped
            .with_label_values(&["event"])
            .inc_by(batch.events_dropped);
        for event in &batch.events {
            if run.events >= self.cfg.max_events_per_replay && event.kind.is_chatter() {
                dropped += 1;
                self.metrics
                    .archive_dropped
                    .with_label_values(&["event"])
                    .inc();
                continue;
            }
            let body = serde_json::to_string(event).unwrap_or_default();
            pipe.cmd("RPUSH")
                .arg(keys::of(id, "events"))
                .arg(&body)
                .ignore();
            let kind = event.kind.name();
            if keys::KEPT_KINDS.contains(&kind) {
                pipe.cmd("RPUSH")
                    .arg(keys::of(id, &format!("kind:{kind}")))
                    .arg(&body)
                    .ignore();
            }
            run.events += 1;
        }
        let t = batch.at / 1000;
        let new_second = match run.last_t {
            Some(last) => last != t,
            None => {
                !redis::cmd("HEXISTS")
                    .arg(keys::of(id, "series:online"))
                    .arg(t)
                    .query_async::<bool>(&mut self.conn)
                    .await?
            }
        };
        if !new_second || run.points < self.cfg.max_points_per_replay {
            pipe.cmd("HSET")
                .arg(keys::of(id, "series:online"))
                .arg(t)
                .arg(batch.online)
                .ignore();
            for (name, n) in [
                ("joins", batch.joins),
                ("leaves", batch.leaves),
                ("comments", batch.comments),
                ("likes", batch.likes),
            ] {
                if n > 0 {
                    pipe.cmd("HINCRBY")
                        .arg(keys::of(id, &format!("series:{name}")))
                        .arg(t)
                        .arg(n)
                        .ignore();
                }
            }
            if new_second {
                run.points += 1;
                run.last_t = Some(t);
            }
        } else {
            dropped += 1;
            self.metrics
                .archive_dropped
                .with_label_values(&["point"])
                .inc();
        }
        for f in &batch.funnel {
            for (step, n) in [("shown", f.shown), ("clicked", f.clicked)] {
                if n > 0 {
                    pipe.cmd("HINCRBY")
                        .arg(keys::of(id, "funnel"))
                        .arg(format!("{}|{step}", f.sale_id))
                        .arg(n)
                        .ignore();
                }
            }
        }
        for (bucket, &n) in batch.stays.iter().enumerate().filter(|(_, n)| **n > 0) {
            pipe.cmd("HINCRBY")
                .arg(keys::of(id, "stays"))
                .arg(bucket)
                .arg(n)
                .ignore();
        }
        pipe.cmd("HSET")
            .arg(keys::of(id, "meta"))
            .arg("last_at")
            .arg(batch.at)
            .ignore();
        if dropped > 0 {
            pipe.cmd("HINCRBY")
                .arg(keys::of(id, "meta"))
                .arg("dropped")
                .arg(dropped)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn).await?;
        self.runs.insert(room, run);
        Ok(())
    }

    async fn ended(&mut self, room: &str, at: u64, members_only: bool) -> RedisResult<()> {
        self.runs.remove(room);
        self.close_open(room, at, Some(members_only)).await
    }

    /// Ends the room's open run, if any, at `at`; its keys then expire after retention.
    async fn close_open(
        &mut self,
        room: &str,
        at: u64,
        members_only: Option<bool>,
    ) -> RedisResult<()> {
        let open: Option<i64> = redis::cmd("GET")
            .arg(keys::open(room))
            .query_async(&mut self.conn)
            .await?;
        let Some(id) = open else {
            return Ok(());
        };
        let mut pipe = redis::pipe();
        pipe.cmd("HSET")
            .arg(keys::of(id, "meta"))
            .arg("ended_at")
            .arg(at)
            .ignore();
        if let Some(members_only) = members_only {
            pipe.cmd("HSET")
                .arg(keys::of(id, "meta"))
                .arg("members_only")
                .arg(u8::from(members_only))
                .ignore();
        }
        if self.cfg.retention_days > 0 {
            for key in keys::all(id) {
                pipe.cmd("EXPIRE")
                    .arg(key)
                    .arg(self.cfg.retention_days * 86_400)
                    .ignore();
            }
        }
        pipe.query_async::<()>(&mut self.conn).await?;
        let mut index = redis::pipe();
        index.cmd("DEL").arg(keys::open(room)).ignore();
        if self.cfg.retention_days > 0 {
            // Runs past retention leave the room's index (their keys have expired).
            let cutoff = at.saturating_sub(self.cfg.retention_days * 86_400_000);
            index
                .cmd("ZREMRANGEBYSCORE")
                .arg(keys::room(room))
                .arg("-inf")
                .arg(format!("({cutoff}"))
                .ignore();
        }
        index.query_async::<()>(&mut self.conn).await
    }
}
