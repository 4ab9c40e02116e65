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
    /// Recordings being written.
    pub recordings: IntGauge,
    /// Packets left out of a recording because its recorder's queue was full.
    pub recording_dropped: IntCounter,
    /// Recordings stopped (or never started) early, by reason (`disk_full`,
    /// `write_failed`, `unsupported_codec`).
    pub recording_stopped: IntCounterVec,
    /// Edge nodes pulling a room's stream from this node (cluster mode).
    pub uplinks: IntGauge,
    /// Packets queued to edge nodes' uplinks.
    pub uplink_packets: IntCounter,
    /// Packets an uplink's full queue dropped.
    pub uplink_dropped: IntCounter,
    /// Rooms whose stream this node pulls from their owner (cluster mode).
    pub pulls: IntGauge,
    /// New subscribers started from a relay's cached keyframe group.
    pub keyframe_cache_hits: IntCounter,
    /// Simulcast layers put on the room's media clock, by how: `arrival` (first, by
    /// arrival), then by the publisher's sender reports: `reports` (they agreed within
    /// 1 ms) or `moved` (the arrival match was off and was corrected).
    pub layers_aligned: IntCounterVec,
    /// A subscriber's capacity estimate backed off, by what said so: `queue` (its send
    /// queue dropped packets), `loss` (its receiver reported over 10 % lost), `remb` (its
    /// receiver's REMB was below what it was sent).
    pub estimate_backoffs: IntCounterVec,
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
            recordings: gauge("media_recordings", "Recordings being written"),
            recording_dropped: counter(
                "media_recording_dropped_packets_total",
                "Packets left out of recordings (recorder queue full)",
            ),
            recording_stopped: IntCounterVec::new(
                prometheus::Opts::new(
                    "media_recordings_stopped_total",
                    "Recordings stopped early, by reason",
                ),
                &["reason"],
            )
            .unwrap(),
            uplinks: gauge(
                "media_uplinks",
                "Edge nodes pulling a stream from this node",
            ),
            uplink_packets: counter(
                "media_uplink_packets_total",
                "RTP packets queued to edge nodes' uplinks",
            ),
            uplink_dropped: counter(
                "media_uplink_dropped_packets_total",
                "Packets dropped for an edge node's uplink (its queue full)",
            ),
            pulls: gauge(
                "media_pulls",
                "Rooms whose stream this node pulls from their owner",
            ),
            keyframe_cache_hits: counter(
                "media_keyframe_cache_hits_total",
                "New subscribers started from a cached keyframe group",
            ),
            layers_aligned: IntCounterVec::new(
                prometheus::Opts::new(
                    "media_layers_aligned_total",
                    "Simulcast layers put on the media clock, by how",
                ),
                &["by"],
            )
            .unwrap(),
            estimate_backoffs: IntCounterVec::new(
                prometheus::Opts::new(
                    "media_estimate_backoffs_total",
                    "Subscribers' capacity estimates backed off, by what said so",
                ),
                &["by"],
            )
            .unwrap(),
        };
        for by in ["queue", "loss", "remb"] {
            m.estimate_backoffs.with_label_values(&[by]);
        }
        for reason in ["disk_full", "write_failed", "unsupported_codec"] {
            m.recording_stopped.with_label_values(&[reason]);
        }
        for by in ["reports", "arrival", "moved"] {
            m.layers_aligned.with_label_values(&[by]);
        }
        for c in [
            Box::new(m.publishers.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.subscribers.clone()),
            Box::new(m.packets_in.clone()),
            Box::new(m.packets_out.clone()),
            Box::new(m.packets_dropped.clone()),
            Box::new(m.keyframe_requests.clone()),
            Box::new(m.layer_switches.clone()),
            Box::new(m.recordings.clone()),
            Box::new(m.recording_dropped.clone()),
            Box::new(m.recording_stopped.clone()),
            Box::new(m.uplinks.clone()),
            Box::new(m.uplink_packets.clone()),
            Box::new(m.uplink_dropped.clone()),
            Box::new(m.pulls.clone()),
            Box::new(m.keyframe_cache_hits.clone()),
            Box::new(m.layers_aligned.clone()),
            Box::new(m.estimate_backoffs.clone()),
        ] {
            // Distinct constant names on a registry the server made for itself.
            registry.register(c).expect("media metric names are unique");
        }
        m
    }
}
