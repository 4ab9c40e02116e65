//! Prometheus metrics shared by the server and its actors. One registry per server
//! instance (not the global one), so several servers in one test process stay apart.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

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
    /// Frames dropped because a session's queue overflowed.
    pub queue_drops: IntCounter,
    /// Sessions cut for not reading fast enough.
    pub slow_viewer_cuts: IntCounter,
    /// Client messages refused with an error frame.
    pub client_errors: IntCounter,
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
        let queue_drops =
            IntCounter::new("queue_drops_total", "Frames dropped by overflowing queues").unwrap();
        let slow_viewer_cuts =
            IntCounter::new("slow_viewer_cuts_total", "Sessions cut as slow consumers").unwrap();
        let client_errors =
            IntCounter::new("client_errors_total", "Client messages refused").unwrap();
        // Names are constants and distinct, so registration cannot collide.
        for c in [
            Box::new(connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rooms.clone()),
            Box::new(frames_in.clone()),
            Box::new(frames_out.clone()),
            Box::new(fanout_seconds.clone()),
            Box::new(queue_drops.clone()),
            Box::new(slow_viewer_cuts.clone()),
            Box::new(client_errors.clone()),
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
            queue_drops,
            slow_viewer_cuts,
            client_errors,
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
