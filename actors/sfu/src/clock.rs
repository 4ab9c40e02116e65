//! The room's media clock (pure): every video layer's RTP timestamps mapped onto the
//! first layer's, so all subscribers see the same timestamp for the same frame whatever
//! layer they get, and the server time at which the latest frame arrived, which ties a
//! link's `reveal_at` to the frame on the anchor's screen.
//!
//! A layer is first matched by arrival (to the reference frame that arrived nearest its
//! first frame), so it is forwarded at once. That can be off by whole frames when one
//! layer's frames leave the encoder later than another's — a big keyframe under a busy
//! CPU — so as soon as the publisher's RTCP sender reports for both layers are in (they
//! tie each layer's RTP clock to one wall clock, exactly), the layer's offset is set from
//! them, once. Holding a layer back until its reports came instead made Chromium turn its
//! upper simulcast layers off.

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

/// A sender report: the publisher's wall clock (NTP, ms) at RTP timestamp `rtp`.
#[derive(Debug, Clone, Copy)]
struct Report {
    ntp_ms: f64,
    rtp: u32,
}

/// A layer's offset onto the reference timestamps, and whether reports gave it.
#[derive(Debug, Clone, Copy)]
struct Offset {
    ticks: u32,
    from_reports: bool,
}

/// A layer [`MediaClock::sender_report`] put on the clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Realigned {
    /// Reports gave it the offset it had (within a millisecond), or its first one.
    Aligned,
    /// Its arrival match was off: reports moved it by this many ms.
    Moved { by_ms: f64 },
}

/// Aligns layers and remembers the latest frame.
#[derive(Debug, Default)]
pub struct MediaClock {
    reference: Option<LayerId>,
    offsets: HashMap<LayerId, Offset>,
    last_ts: HashMap<LayerId, u32>,
    recent: VecDeque<FrameMark>,
    reports: HashMap<LayerId, Report>,
    matched_by_arrival: u64,
}

/// NTP timestamp (32.32 fixed point seconds) in ms.
fn ntp_ms(ntp: u64) -> f64 {
    (ntp >> 32) as f64 * 1000.0 + (ntp & 0xffff_ffff) as f64 * 1000.0 / 4_294_967_296.0
}

impl MediaClock {
    const RECENT_FRAMES: usize = 16;
    /// A layer's frame is matched to the reference frame that arrived closest to it,
    /// if within this.
    const MATCH_WINDOW_MS: u64 = 20;

    /// A sender report for `layer`: its RTP timestamp `rtp` was the publisher's wall
    /// clock `ntp` (NTP format). Returns the layers it put on the clock.
    pub fn sender_report(
        &mut self,
        layer: &LayerId,
        ntp: u64,
        rtp: u32,
    ) -> Vec<(LayerId, Realigned)> {
        self.reports.insert(
            layer.clone(),
            Report {
                ntp_ms: ntp_ms(ntp),
                rtp,
            },
        );
        let Some(reference) = self.reference.clone() else {
            return Vec::new();
        };
        let layers: Vec<LayerId> = if *layer == reference {
            self.reports.keys().cloned().collect()
        } else {
            vec![layer.clone()]
        };
        let mut changed = Vec::new();
        for other in layers.iter().filter(|l| **l != reference) {
            if self.offsets.get(other).is_some_and(|o| o.from_reports) {
                continue;
            }
            let (Some(base), Some(report)) =
                (self.reports.get(&reference), self.reports.get(other))
            else {
                continue;
            };
            // The reference layer's timestamp at the instant of this layer's report.
            let elapsed_ticks =
                ((report.ntp_ms - base.ntp_ms) * VIDEO_CLOCK_HZ as f64 / 1000.0).round() as i64;
            let reference_ts = base.rtp.wrapping_add(elapsed_ticks as u32);
            let ticks = reference_ts.wrapping_sub(report.rtp);
            let moved = self.offsets.get(other).map(|old| {
                f64::from(ticks.wrapping_sub(old.ticks) as i32) * 1000.0 / VIDEO_CLOCK_HZ as f64
            });
            self.offsets.insert(
                other.clone(),
                Offset {
                    ticks,
                    from_reports: true,
                },
            );
            changed.push((
                other.clone(),
                match moved {
                    Some(by_ms) if by_ms.abs() >= 1.0 => Realigned::Moved { by_ms },
                    _ => Realigned::Aligned,
                },
            ));
        }
        changed
    }

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
            return Some(ts.wrapping_add(offset.ticks));
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
        let ticks = nearest.rtp_ts.wrapping_sub(ts);
        self.offsets.insert(
            layer.clone(),
            Offset {
                ticks,
                from_reports: false,
            },
        );
        self.matched_by_arrival += 1;
        Some(nearest.rtp_ts)
    }

    /// Layers matched by arrival so far (no sender reports in time).
    pub fn matched_by_arrival(&self) -> u64 {
        self.matched_by_arrival
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

    /// NTP timestamp of `ms` after an arbitrary epoch.
    fn ntp(ms: f64) -> u64 {
        let secs = (ms / 1000.0).floor();
        ((secs as u64 + 3_900_000_000) << 32) + ((ms / 1000.0 - secs) * 4_294_967_296.0) as u64
    }

    #[test]
    fn layers_map_onto_the_reference_timestamps_by_sender_reports() {
        let mut clock = MediaClock::default();
        let low: LayerId = "low".into();
        let high: LayerId = "high".into();
        // Reference frames every 33 ms (3000 ticks). The high layer's frames of the same
        // instants carry their own random base (4_000_000_000 at the low layer's 1_000)
        // and leave the encoder one frame late, next to the low layer's next frame.
        assert_eq!(clock.packet(&low, 1_000, 100), Some(1_000));
        assert_eq!(clock.packet(&low, 4_000, 133), Some(4_000));
        assert_eq!(
            clock.packet(&high, 4_000_000_000, 134),
            Some(4_000),
            "matched by arrival, a frame off"
        );
        assert_eq!(clock.matched_by_arrival(), 1);
        // Reports of both, at different instants, on one wall clock.
        assert_eq!(clock.sender_report(&low, ntp(10_000.0), 1_000), vec![]);
        match clock.sender_report(&high, ntp(10_100.0), 4_000_009_000)[..] {
            [(ref layer, Realigned::Moved { by_ms })] if *layer == high => {
                assert!((by_ms + 33.33).abs() < 0.01, "{by_ms}")
            }
            ref other => panic!("not moved: {other:?}"),
        }
        assert_eq!(clock.packet(&high, 4_000_003_000, 167), Some(4_000));
        // Later reports leave the offset alone.
        assert_eq!(
            clock.sender_report(&high, ntp(11_000.0), 4_000_090_000),
            vec![]
        );
        assert_eq!(clock.packet(&high, 4_000_006_000, 200), Some(7_000));
        assert_eq!(
            clock.latest(),
            Some(FrameMark {
                rtp_ts: 4_000,
                arrived_ms: 133
            })
        );
    }

    #[test]
    fn reports_that_agree_with_the_arrival_match_keep_it() {
        let mut clock = MediaClock::default();
        let (a, b): (LayerId, LayerId) = ("a".into(), "b".into());
        assert_eq!(clock.packet(&a, 10, 1_000), Some(10));
        assert_eq!(clock.packet(&b, 77, 1_002), Some(10));
        // Both reports name the same instant: a's 6_010 is b's 6_077, as matched.
        clock.sender_report(&b, ntp(5_000.0), 6_077);
        assert_eq!(
            clock.sender_report(&a, ntp(5_000.0), 6_010),
            vec![(b.clone(), Realigned::Aligned)]
        );
        assert_eq!(clock.packet(&b, 3_077, 1_035), Some(3_010));
        clock.reset();
        assert_eq!(clock.latest(), None);
    }

    #[test]
    fn an_unmatched_layer_waits() {
        let mut clock = MediaClock::default();
        assert_eq!(clock.packet(&"a".into(), 10, 1_000), Some(10));
        assert_eq!(
            clock.packet(&"b".into(), 77, 1_500),
            None,
            "no reference frame near"
        );
        assert_eq!(clock.packet(&"a".into(), 3_010, 1_533), Some(3_010));
        assert_eq!(clock.packet(&"b".into(), 3_077, 1_535), Some(3_010));
    }
}
