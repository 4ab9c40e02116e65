//! The latest keyframe group of each simulcast layer — the packets from the start of the
//! last keyframe on — kept by each relay so a new viewer starts at once: it is sent the
//! group (the keyframe and what followed it) as soon as its connection is up, instead of
//! waiting for a keyframe asked of the publisher (through an edge's and the owner's
//! throttles in a cluster). The group's frames go out squeezed in time
//! ([`fast_start_times`]): one RTP tick apart, ending at the latest frame's own
//! timestamp, so the viewer decodes them at once and shows the latest, and its playout
//! clock is set by live frames — replayed at their old timestamps, a second-old burst
//! would shift that viewer's playout against everyone else's. Only a live layer's group
//! is replayed: one whose latest packet is older than [`GopCache::MAX_AGE`] (the
//! publisher paused that layer) would set the viewer's playout clock by a stale frame,
//! and every live frame after it would look late to the player, which then shows them
//! early, out of step with the room. Bounded: a group longer than `media.keyframe_cache_packets`
//! is dropped until the next keyframe (a publisher that sends keyframes only on request
//! has no cache then, and its new viewers ask as before).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::layers::LayerId;
use crate::packet::MediaPacket;

/// Per layer, the packets since its latest keyframe started.
#[derive(Debug, Default)]
pub struct GopCache {
    max_packets: usize,
    layers: HashMap<LayerId, Group>,
}

#[derive(Debug)]
struct Group {
    packets: Vec<Arc<MediaPacket>>,
    /// When its latest packet came.
    last_at: Instant,
}

impl Group {
    fn live(&self, now: Instant) -> Option<&[Arc<MediaPacket>]> {
        (!self.packets.is_empty()
            && now.saturating_duration_since(self.last_at) <= GopCache::MAX_AGE)
            .then_some(self.packets.as_slice())
    }
}

impl GopCache {
    /// A group whose latest packet is older than this is not replayed (its layer paused).
    pub const MAX_AGE: Duration = Duration::from_millis(250);

    /// A cache of at most `max_packets` per layer (0: no cache).
    pub fn new(max_packets: usize) -> Self {
        Self {
            max_packets,
            layers: HashMap::new(),
        }
    }

    /// Takes one forwarded packet, arrived at `now`.
    pub fn push(&mut self, packet: &Arc<MediaPacket>, now: Instant) {
        if !packet.video || self.max_packets == 0 {
            return;
        }
        let group = self
            .layers
            .entry(packet.layer.clone())
            .or_insert_with(|| Group {
                packets: Vec::new(),
                last_at: now,
            });
        group.last_at = now;
        let packets = &mut group.packets;
        if packet.keyframe {
            packets.clear();
            packets.push(packet.clone());
        } else if !packets.is_empty() {
            if packets.len() >= self.max_packets {
                // Too long a group to replay: none until the next keyframe.
                packets.clear();
            } else {
                packets.push(packet.clone());
            }
        }
    }

    /// A layer with a live group, if any (before the relay knows the layers' rates).
    pub fn any_layer(&self, now: Instant) -> Option<LayerId> {
        self.layers
            .iter()
            .filter(|(_, group)| group.live(now).is_some())
            .map(|(layer, _)| layer.clone())
            .max()
    }

    /// The latest keyframe group of `layer` if its layer is live at `now` (else empty).
    pub fn group(&self, layer: &LayerId, now: Instant) -> &[Arc<MediaPacket>] {
        self.layers
            .get(layer)
            .and_then(|g| g.live(now))
            .unwrap_or(&[])
    }
}

/// The timestamps to send a group's packets with: its frames one tick apart, the last
/// frame at its own timestamp (so the live frames after it follow on).
pub fn fast_start_times(group: &[Arc<MediaPacket>]) -> Vec<u32> {
    let Some(last) = group.last() else {
        return Vec::new();
    };
    // Frames (distinct timestamps, in order) after each packet's own.
    let mut later = 0u32;
    let mut out = vec![0; group.len()];
    for i in (0..group.len()).rev() {
        if i + 1 < group.len() && group[i].media_ts != group[i + 1].media_ts {
            later += 1;
        }
        out[i] = last.media_ts.wrapping_sub(later);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp;

    static SOURCE: std::sync::LazyLock<crate::MediaId> =
        std::sync::LazyLock::new(crate::MediaId::random);

    fn packet(layer: &str, seq: u16, keyframe: bool, video: bool) -> Arc<MediaPacket> {
        Arc::new(MediaPacket {
            video,
            layer: layer.into(),
            keyframe,
            media_ts: u32::from(seq),
            source: *SOURCE,
            packet: rtp::Packet {
                header: rtp::header::Header {
                    sequence_number: seq,
                    ..Default::default()
                },
                payload: Default::default(),
            },
        })
    }

    fn seqs(cache: &GopCache, layer: &str) -> Vec<u16> {
        cache
            .group(&layer.into(), Instant::now())
            .iter()
            .map(|p| p.packet.header.sequence_number)
            .collect()
    }

    #[test]
    fn keeps_each_layer_from_its_latest_keyframe() {
        let mut cache = GopCache::new(100);
        for (layer, seq, key) in [
            ("h", 1, false),
            ("h", 2, true),
            ("l", 50, true),
            ("h", 3, false),
            ("l", 51, false),
            ("h", 4, true),
            ("h", 5, false),
        ] {
            cache.push(&packet(layer, seq, key, true), Instant::now());
        }
        cache.push(&packet("h", 99, false, false), Instant::now()); // audio is not cached
        assert_eq!(seqs(&cache, "h"), [4, 5]);
        assert_eq!(seqs(&cache, "l"), [50, 51]);
        assert_eq!(cache.any_layer(Instant::now()), Some("l".into()));
        assert!(seqs(&cache, "m").is_empty());
    }

    #[test]
    fn a_paused_layers_group_is_not_replayed() {
        let mut cache = GopCache::new(100);
        let t0 = Instant::now();
        cache.push(&packet("h", 1, true, true), t0);
        cache.push(&packet("l", 50, true, true), t0);
        // The low layer goes on; the high one pauses.
        let later = t0 + GopCache::MAX_AGE + Duration::from_millis(10);
        cache.push(&packet("l", 51, false, true), later);
        assert!(cache.group(&"h".into(), later).is_empty());
        assert_eq!(cache.group(&"l".into(), later).len(), 2);
        assert_eq!(cache.any_layer(later), Some("l".into()));
        assert_eq!(cache.group(&"h".into(), t0).len(), 1);
    }

    #[test]
    fn a_group_goes_out_squeezed_up_to_its_latest_frame() {
        let group: Vec<_> = [
            (1, 9_000),
            (2, 9_000),
            (3, 12_000),
            (4, 15_000),
            (5, 15_000),
        ]
        .into_iter()
        .map(|(seq, ts)| {
            let mut p = packet("h", seq, seq == 1, true);
            Arc::get_mut(&mut p).unwrap().media_ts = ts;
            p
        })
        .collect();
        assert_eq!(
            fast_start_times(&group),
            [14_998, 14_998, 14_999, 15_000, 15_000]
        );
        assert!(fast_start_times(&[]).is_empty());
    }

    #[test]
    fn a_group_over_the_bound_is_dropped_until_the_next_keyframe() {
        let mut cache = GopCache::new(3);
        let now = Instant::now();
        cache.push(&packet("h", 1, true, true), now);
        cache.push(&packet("h", 2, false, true), now);
        cache.push(&packet("h", 3, false, true), now);
        assert_eq!(seqs(&cache, "h"), [1, 2, 3]);
        cache.push(&packet("h", 4, false, true), now);
        assert!(seqs(&cache, "h").is_empty());
        cache.push(&packet("h", 5, false, true), now);
        assert!(seqs(&cache, "h").is_empty(), "no keyframe yet");
        cache.push(&packet("h", 6, true, true), now);
        assert_eq!(seqs(&cache, "h"), [6]);
        let mut off = GopCache::new(0);
        off.push(&packet("h", 1, true, true), now);
        assert!(seqs(&off, "h").is_empty());
    }
}
