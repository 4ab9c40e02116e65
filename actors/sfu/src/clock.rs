//! The room's media clock (pure): every video layer's RTP timestamps mapped onto the
//! first layer's, so all subscribers see the same timestamp for the same frame whatever
//! layer they get, and the server time at which the latest frame arrived, which ties a
//! link's `reveal_at` to the frame on the anchor's screen.

use std::collections::{HashMap, VecDeque};

use crate::layers::LayerId;

/// Video RTP clock rate (every video codec in WebRTC uses 90 kHz).
pub const VIDEO_CLOCK_HZ: u64 = 90_000;

/// A frame start: its RTP timestamp and when its first packet arrived (server ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMark {
    pub rtp_ts: u32,
    pub arrived_ms: u64,
}

/// Aligns layers and remembers the latest frame.
#[derive(Debug, Default)]
pub struct MediaClock {
    reference: Option<LayerId>,
    offsets: HashMap<LayerId, u32>,
    last_ts: HashMap<LayerId, u32>,
    recent: VecDeque<FrameMark>,
}

impl MediaClock {
    const RECENT_FRAMES: usize = 16;
    /// A layer's frame is matched to the reference frame that arrived closest to it,
    /// if within this.
    const MATCH_WINDOW_MS: u64 = 20;

    /// One video packet of `layer` with timestamp `ts`, arrived at `now_ms`. Returns
    /// the timestamp in the reference layer's time base, or `None` while the layer is
    /// not aligned yet (its packets are then not forwarded).
    pub fn packet(&mut self, layer: &LayerId, ts: u32, now_ms: u64) -> Option<u32> {
        let reference = self.reference.get_or_insert_with(|| layer.clone()).clone();
        let new_frame = self.last_ts.insert(layer.clone(), ts) != Some(ts);
        if *layer == reference {
            if new_frame {
                if self.recent.len() == Self::RECENT_FRAMES {
                    self.recent.pop_front();
                }
                self.recent.push_back(FrameMark {
                    rtp_ts: ts,
                    arrived_ms: now_ms,
                });
            }
            return Some(ts);
        }
        if let Some(offset) = self.offsets.get(layer) {
            return Some(ts.wrapping_add(*offset));
        }
        if !new_frame {
            return None;
        }
        let nearest = self
            .recent
            .iter()
            .min_by_key(|mark| mark.arrived_ms.abs_diff(now_ms))?;
        if nearest.arrived_ms.abs_diff(now_ms) > Self::MATCH_WINDOW_MS {
            return None;
        }
        let offset = nearest.rtp_ts.wrapping_sub(ts);
        self.offsets.insert(layer.clone(), offset);
        Some(nearest.rtp_ts)
    }

    /// The latest reference frame.
    pub fn latest(&self) -> Option<FrameMark> {
        self.recent.back().copied()
    }

    /// Forgets everything (the publisher left).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_map_onto_the_reference_timestamps() {
        let mut clock = MediaClock::default();
        let high: LayerId = "high".into();
        let low: LayerId = "low".into();
        // Reference frames every 33 ms, 3000 ticks apart.
        assert_eq!(clock.packet(&high, 1_000, 100), Some(1_000));
        assert_eq!(clock.packet(&high, 1_000, 101), Some(1_000));
        // The low layer's frame of the same instant, with its own random base.
        assert_eq!(clock.packet(&low, 4_000_000_000, 102), Some(1_000));
        assert_eq!(clock.packet(&high, 4_000, 133), Some(4_000));
        assert_eq!(
            clock.packet(&low, 4_000_003_000, 134),
            Some(4_000),
            "the offset holds for later frames"
        );
        assert_eq!(
            clock.latest(),
            Some(FrameMark {
                rtp_ts: 4_000,
                arrived_ms: 133
            })
        );
    }

    #[test]
    fn an_unmatched_layer_waits() {
        let mut clock = MediaClock::default();
        assert_eq!(clock.packet(&"a".into(), 10, 1_000), Some(10));
        assert_eq!(clock.packet(&"b".into(), 77, 1_500), None);
        assert_eq!(clock.packet(&"a".into(), 3_010, 1_533), Some(3_010));
        assert_eq!(clock.packet(&"b".into(), 3_077, 1_535), Some(3_010));
        clock.reset();
        assert_eq!(clock.latest(), None);
    }
}
