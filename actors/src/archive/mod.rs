//! The archive: what a room leaves behind for its replay and its analytics dashboard.
//!
//! While a room runs, its actor hands the archive one [`ArchiveBatch`] a second — the
//! timeline events since the last batch (comments with their text, likes, link drops,
//! sale states, moderation) and that second's counts (online, joins, leaves, comments,
//! likes, funnel steps, how long leaving viewers stayed). When the room ends, its
//! run becomes a **replay** with an id. [`sqlite`] keeps all of it in an SQLite file of
//! its own, written by one thread off the room's path; [`report`] and [`findings`]
//! turn it into what the replay page and the dashboard show.

pub mod findings;
pub mod report;
pub mod sqlite;

#[cfg(test)]
mod report_tests;

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::room::TimelineEvent;

/// Upper bounds (exclusive, in seconds) of the "how long viewers stayed" buckets; the
/// last bucket holds everyone who stayed longer than the last bound.
pub const STAY_BOUNDS_SECS: [u64; 7] = [10, 30, 60, 300, 900, 1800, 3600];

/// One second of a room, as its actor hands it over.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveBatch {
    /// Server time of the batch (ms since the Unix epoch).
    pub at: u64,
    /// Viewers in the room at `at`.
    pub online: u64,
    pub joins: u64,
    pub leaves: u64,
    pub comments: u64,
    pub likes: u64,
    /// Leaving viewers per stay bucket (see [`STAY_BOUNDS_SECS`]).
    pub stays: Vec<u64>,
    /// New funnel steps per sale.
    pub funnel: Vec<FunnelDelta>,
    /// Timeline events since the previous batch.
    pub events: Vec<TimelineEvent>,
    /// Events the room could not keep for this batch (`room.archive_max_pending_events`).
    pub events_dropped: u64,
}

/// Sessions that newly reported a product card shown or its Buy clicked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunnelDelta {
    pub sale_id: String,
    pub shown: u64,
    pub clicked: u64,
}

/// A room run began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStarted {
    pub room: String,
    pub title: String,
    /// Guests may not watch: the replay needs a token too.
    pub members_only: bool,
    pub at: u64,
}

/// What an archive's writer is handed.
#[derive(Debug)]
pub enum ArchiveJob {
    Started(RunStarted),
    Append(String, ArchiveBatch),
    /// The room ended at `.1`; `.2`: members only.
    Ended(String, u64, bool),
}

/// The room seconds waiting for an archive's writer, bounded by `archive.queue_depth`:
/// a second beyond the bound is dropped and counted
/// (`lockstep_archive_dropped_total{what="batch"}`). A run's start and end are never
/// bounded.
#[derive(Debug, Clone)]
pub struct Backlog {
    waiting: std::sync::Arc<AtomicUsize>,
    depth: usize,
    metrics: Metrics,
}

impl Backlog {
    pub fn new(depth: usize, metrics: &Metrics) -> Self {
        Self {
            waiting: std::sync::Arc::default(),
            depth: depth.max(1),
            metrics: metrics.clone(),
        }
    }

    /// Whether a room's second may be queued (then it counts as waiting).
    pub fn admit(&self) -> bool {
        if self.waiting.fetch_add(1, Ordering::AcqRel) < self.depth {
            return true;
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        self.metrics
            .archive_dropped
            .with_label_values(&["batch"])
            .inc();
        false
    }

    /// The writer took a queued second.
    pub fn taken(&self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }

    /// A job could not be queued: the writer has stopped.
    pub fn writer_gone(&self) {
        self.metrics.archive_failures.inc();
        tracing::error!("the archive writer has stopped; room records are lost");
    }
}

/// An archive's handle, whatever keeps it: jobs go to its writer (a thread, a task)
/// through `send`, which says whether the writer took them; room seconds wait at most
/// [`Backlog`]-deep.
pub struct QueuedArchive {
    send: Box<dyn Fn(ArchiveJob) -> bool + Send + Sync>,
    backlog: Backlog,
}

impl QueuedArchive {
    pub fn new(
        backlog: Backlog,
        send: impl Fn(ArchiveJob) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            send: Box::new(send),
            backlog,
        }
    }

    fn send(&self, job: ArchiveJob) {
        if !(self.send)(job) {
            self.backlog.writer_gone();
        }
    }
}

impl Archive for QueuedArchive {
    fn started(&self, run: RunStarted) {
        self.send(ArchiveJob::Started(run));
    }

    fn append(&self, room: &str, batch: ArchiveBatch) {
        if self.backlog.admit() {
            self.send(ArchiveJob::Append(room.to_owned(), batch));
        }
    }

    fn ended(&self, room: &str, at: u64, members_only: bool) {
        self.send(ArchiveJob::Ended(room.to_owned(), at, members_only));
    }
}

/// Where rooms hand their record. Calls never block the room: an implementation queues
/// them (bounded) and counts what it had to drop.
pub trait Archive: Send + Sync {
    fn started(&self, run: RunStarted);
    fn append(&self, room: &str, batch: ArchiveBatch);
    /// The room ended: its run becomes a finished replay. `members_only`: whether the
    /// room admitted guests at the end (its replay follows).
    fn ended(&self, room: &str, at: u64, members_only: bool);
}
