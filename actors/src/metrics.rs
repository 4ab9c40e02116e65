//! Prometheus metrics shared by the server and its actors. One registry per server
//! instance (not the global one), so several servers in one test process stay apart.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Counters and gauges exported on `/metrics`.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Open WebSocket connections (viewers and anchors).
    pub connections: IntGauge,
    /// Rooms whose actor is running.
    pub rooms: IntGauge,
    /// Text frames received from clients.
    pub frames_in: IntCounter,
    /// Frames queued to clients (a broadcast to N sessions counts N).
    pub frames_out: IntCounter,
    /// Time to push one broadcast into every session queue of a room.
    pub fanout_seconds: Histogram,
    /// How late a room's tick ran after it was due (its arbiter thread was busy).
    pub tick_lag_seconds: Histogram,
    /// Frames dropped because a session's queue overflowed.
    pub queue_drops: IntCounter,
    /// Sessions cut for not reading fast enough.
    pub slow_viewer_cuts: IntCounter,
    /// Client messages refused with an error frame.
    pub client_errors: IntCounter,
    /// Store commits (and recovery probes) that failed.
    pub store_failures: IntCounter,
    /// Jobs waiting for the store thread.
    pub store_queue: IntGauge,
    /// Group commits of sales' writes (each one transaction, one fsync).
    pub store_commits: IntCounter,
    /// Sales whose inventory actor is loaded.
    pub sales_loaded: IntGauge,
    /// Requests waiting for a sale's answer, over all sales.
    pub sale_pending: IntGauge,
    /// Panics contained by a supervising shell, by actor kind (`room`, `inventory`,
    /// `relay`, `ingest`); the actor was rebuilt, or the affected subscriber or offer
    /// dropped.
    pub actor_panics: IntCounterVec,
    /// Connections refused by a connection limit.
    pub connections_refused: IntCounter,
    /// Client TCP connections open (HTTP and WebSocket), as the connection limits count.
    pub tcp_connections: IntGauge,
    /// Sessions closed because the client sent nothing for the heartbeat timeout.
    pub heartbeat_timeouts: IntCounter,
    /// Cluster mode: messages this node could not publish to Redis, by reason
    /// (`queue_full`: more waiting than `cluster.publish_queue`; `redis_error`).
    pub cluster_publish_lost: IntCounterVec,
    /// Cluster mode: times this node lost its subscriptions (Redis restarted, or dropped
    /// the node for reading too slowly) and subscribed again; its sessions joined again
    /// and were sent a fresh snapshot, since messages published meanwhile were missed.
    pub cluster_resubscribes: IntCounter,
    /// What the archive (replay and analytics) had to drop, by what (`batch`: a room's
    /// second arrived while `archive.queue_depth` were waiting; `event`: a room had more
    /// than `room.archive_max_pending_events` events in one second; `point`: a replay
    /// reached `archive.max_points_per_replay`).
    pub archive_dropped: IntCounterVec,
    /// Archive transactions that failed (disk full, read-only file system).
    pub archive_failures: IntCounter,
    /// Per running room (the label set is bounded by `rooms.max_rooms`; a room's series
    /// leave when it ends): viewers online, comments and likes since it opened.
    pub room_online: IntGaugeVec,
    pub room_comments: IntGaugeVec,
    pub room_likes: IntGaugeVec,
}

impl Metrics {
    /// Creates the metrics in a fresh registry.
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("lockstep".into()), None).expect("a constant, valid prefix");
        let connections = IntGauge::new("connections", "Open WebSocket connections").unwrap();
        let rooms = IntGauge::new("rooms", "Rooms with a running actor").unwrap();
        let frames_in = IntCounter::new("frames_in_total", "Frames received").unwrap();
        let frames_out = IntCounter::new("frames_out_total", "Frames queued to clients").unwrap();
        let fanout_seconds = Histogram::with_opts(
            HistogramOpts::new("fanout_seconds", "Time to queue one broadcast to a room").buckets(
                vec![
                    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.05,
                ],
            ),
        )
        .unwrap();
        let tick_lag_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "room_tick_lag_seconds",
                "How late a room's tick ran after it was due",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]),
        )
        .unwrap();
        let queue_drops =
            IntCounter::new("queue_drops_total", "Frames dropped by overflowing queues").unwrap();
        let slow_viewer_cuts =
            IntCounter::new("slow_viewer_cuts_total", "Sessions cut as slow consumers").unwrap();
        let client_errors =
            IntCounter::new("client_errors_total", "Client messages refused").unwrap();
        let store_failures =
            IntCounter::new("store_failures_total", "Store commits that failed").unwrap();
        let store_queue = IntGauge::new("store_queue_depth", "Jobs waiting for the store").unwrap();
        let store_commits =
            IntCounter::new("store_commits_total", "Group commits of sales' writes").unwrap();
        let sales_loaded = IntGauge::new("sales_loaded", "Sales with a loaded actor").unwrap();
        let sale_pending =
            IntGauge::new("sale_pending_requests", "Requests waiting for a sale").unwrap();
        let actor_panics = IntCounterVec::new(
            Opts::new("actor_panics_total", "Panics contained by a supervisor"),
            &["actor"],
        )
        .unwrap();
        let connections_refused = IntCounter::new(
            "connections_refused_total",
            "Connections refused by a connection limit",
        )
        .unwrap();
        let tcp_connections =
            IntGauge::new("tcp_connections", "Client TCP connections open").unwrap();
        let heartbeat_timeouts = IntCounter::new(
            "heartbeat_timeouts_total",
            "Sessions closed after the heartbeat timeout",
        )
        .unwrap();
        let cluster_publish_lost = IntCounterVec::new(
            Opts::new(
                "cluster_publish_lost_total",
                "Messages a cluster node could not publish to Redis",
            ),
            &["reason"],
        )
        .unwrap();
        for reason in ["queue_full", "redis_error"] {
            cluster_publish_lost.with_label_values(&[reason]);
        }
        let cluster_resubscribes = IntCounter::new(
            "cluster_resubscribes_total",
            "Times a cluster node lost its Redis subscriptions and subscribed again",
        )
        .unwrap();
        let archive_dropped = IntCounterVec::new(
            Opts::new(
                "archive_dropped_total",
                "Room records the archive had to drop",
            ),
            &["what"],
        )
        .unwrap();
        for what in ["batch", "event", "point"] {
            archive_dropped.with_label_values(&[what]);
        }
        let archive_failures =
            IntCounter::new("archive_failures_total", "Archive transactions that failed").unwrap();
        let room_gauge =
            |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["room"]).unwrap();
        let room_online = room_gauge("room_online", "Viewers online in a running room");
        let room_comments = room_gauge("room_comments", "Comments posted in a running room");
        let room_likes = room_gauge("room_likes", "Likes in a running room");
        for actor in ["room", "inventory", "relay", "ingest"] {
            // Export every kind at 0 from the start, so a first panic shows as a change.
            actor_panics.with_label_values(&[actor]);
        }
        // Names are constants and distinct, so registration cannot collide.
        for c in [
            Box::new(connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rooms.clone()),
            Box::new(frames_in.clone()),
            Box::new(frames_out.clone()),
            Box::new(fanout_seconds.clone()),
            Box::new(tick_lag_seconds.clone()),
            Box::new(queue_drops.clone()),
            Box::new(slow_viewer_cuts.clone()),
            Box::new(client_errors.clone()),
            Box::new(store_failures.clone()),
            Box::new(store_queue.clone()),
            Box::new(store_commits.clone()),
            Box::new(sales_loaded.clone()),
            Box::new(sale_pending.clone()),
            Box::new(actor_panics.clone()),
            Box::new(connections_refused.clone()),
            Box::new(tcp_connections.clone()),
            Box::new(heartbeat_timeouts.clone()),
            Box::new(cluster_publish_lost.clone()),
            Box::new(cluster_resubscribes.clone()),
            Box::new(archive_dropped.clone()),
            Box::new(archive_failures.clone()),
            Box::new(room_online.clone()),
            Box::new(room_comments.clone()),
            Box::new(room_likes.clone()),
        ] {
            registry.register(c).expect("metric names are distinct");
        }
        Self {
            registry,
            connections,
            rooms,
            frames_in,
            frames_out,
            fanout_seconds,
            tick_lag_seconds,
            queue_drops,
            slow_viewer_cuts,
            client_errors,
            store_failures,
            store_queue,
            store_commits,
            sales_loaded,
            sale_pending,
            actor_panics,
            connections_refused,
            tcp_connections,
            heartbeat_timeouts,
            cluster_publish_lost,
            cluster_resubscribes,
            archive_dropped,
            archive_failures,
            room_online,
            room_comments,
            room_likes,
        }
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let encoder = prometheus::TextEncoder::new();
        // Encoding to a String only fails on a fmt error, which String never returns.
        encoder
            .encode_utf8(&self.registry.gather(), &mut out)
            .expect("encoding to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
