//! SFU counters, registered on the server's Prometheus registry.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

/// Counters and gauges of the media side, exported on `/metrics`.
#[derive(Debug, Clone)]
pub struct MediaMetrics {
    /// Publishers connected (rooms with a live stream).
    pub publishers: IntGauge,
    /// Subscribers connected (WebSocket and WHEP).
    pub subscribers: IntGauge,
    /// RTP packets received from publishers.
    pub packets_in: IntCounter,
    /// RTP packets queued to subscribers.
    pub packets_out: IntCounter,
    /// RTP packets dropped because a subscriber's queue was full.
    pub packets_dropped: IntCounter,
    /// Keyframe requests sent to publishers (after throttling).
    pub keyframe_requests: IntCounter,
    /// Simulcast layer switches completed.
    pub layer_switches: IntCounter,
    /// Panics contained, by actor kind (the server's shared counter; the SFU counts
    /// `relay`).
    pub actor_panics: IntCounterVec,
}

impl MediaMetrics {
    /// Creates the metrics and registers them on `registry`; `actor_panics` is the
    /// server's counter, already registered.
    pub fn new(registry: &Registry, actor_panics: &IntCounterVec) -> Self {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).unwrap();
        let counter = |name: &str, help: &str| IntCounter::new(name, help).unwrap();
        let m = Self {
            publishers: gauge("media_publishers", "Publishers connected"),
            subscribers: gauge("media_subscribers", "Subscribers connected"),
            packets_in: counter("media_packets_in_total", "RTP packets from publishers"),
            packets_out: counter(
                "media_packets_out_total",
                "RTP packets queued to subscribers",
            ),
            packets_dropped: counter(
                "media_packets_dropped_total",
                "RTP packets dropped for slow subscribers",
            ),
            keyframe_requests: counter(
                "media_keyframe_requests_total",
                "Keyframe requests sent to publishers",
            ),
            layer_switches: counter("media_layer_switches_total", "Simulcast layer switches"),
            actor_panics: actor_panics.clone(),
        };
        for c in [
            Box::new(m.publishers.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.subscribers.clone()),
            Box::new(m.packets_in.clone()),
            Box::new(m.packets_out.clone()),
            Box::new(m.packets_dropped.clone()),
            Box::new(m.keyframe_requests.clone()),
            Box::new(m.layer_switches.clone()),
        ] {
            // Distinct constant names on a registry the server made for itself.
            registry.register(c).expect("media metric names are unique");
        }
        m
    }
}
