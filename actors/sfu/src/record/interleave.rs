//! Puts a recording's audio and video frames on one time line for a container writer:
//! frames are held for a short reorder window (audio and video arrive on their own
//! schedules) and come out in time order, with timestamps that never go back across
//! tracks and never repeat within one (a layer switch's keyframe carries the timestamp
//! of the frame it replaces: it moves 1 ms on). Both writers (WebM, MP4) use it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use bytes::Bytes;

/// Frames are held this long (ms of media time) so the other track's can slot in.
pub const REORDER_MS: u64 = 400;

/// A frame on the recording's time line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timed {
    pub ms: u64,
    pub video: bool,
    pub keyframe: bool,
    pub data: Bytes,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    ms: u64,
    /// Arrival order: frames of the same time keep it.
    order: u64,
    frame: Timed,
}

/// The reorder window and the timestamps already given out.
#[derive(Debug, Default)]
pub struct Interleaver {
    pending: BinaryHeap<Reverse<Pending>>,
    order: u64,
    newest_ms: u64,
    last_ms: u64,
    last_video_ms: Option<u64>,
    last_audio_ms: Option<u64>,
}

impl Interleaver {
    /// Takes a frame at media time `frame.ms`.
    pub fn push(&mut self, frame: Timed) {
        self.order += 1;
        self.newest_ms = self.newest_ms.max(frame.ms);
        self.pending.push(Reverse(Pending {
            ms: frame.ms,
            order: self.order,
            frame,
        }));
    }

    /// The next frame out of the reorder window, if any.
    pub fn next_ready(&mut self) -> Option<Timed> {
        self.next_until(self.newest_ms.saturating_sub(REORDER_MS))
    }

    /// The next frame still held, whatever its time (the recording is closing).
    pub fn next_any(&mut self) -> Option<Timed> {
        self.next_until(u64::MAX)
    }

    /// The last timestamp given out.
    pub fn last_ms(&self) -> u64 {
        self.last_ms
    }

    fn next_until(&mut self, until: u64) -> Option<Timed> {
        if self.pending.peek().is_none_or(|p| p.0.ms > until) {
            return None;
        }
        let Reverse(Pending { mut frame, .. }) = self.pending.pop()?;
        let track_last = if frame.video {
            &mut self.last_video_ms
        } else {
            &mut self.last_audio_ms
        };
        let mut ms = frame.ms.max(self.last_ms);
        if let Some(last) = *track_last
            && ms <= last
        {
            ms = last + 1;
        }
        *track_last = Some(ms);
        self.last_ms = ms;
        frame.ms = ms;
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(ms: u64, video: bool) -> Timed {
        Timed {
            ms,
            video,
            keyframe: false,
            data: Bytes::new(),
        }
    }

    fn all(i: &mut Interleaver) -> Vec<(u64, bool)> {
        std::iter::from_fn(|| i.next_any())
            .map(|f| (f.ms, f.video))
            .collect()
    }

    #[test]
    fn late_audio_slots_in_before_video_written_after_it() {
        let mut i = Interleaver::default();
        i.push(frame(1_000, true));
        i.push(frame(1_033, true));
        assert_eq!(i.next_ready(), None, "held inside the window");
        i.push(frame(1_010, false));
        i.push(frame(1_500, true));
        let ready: Vec<u64> = std::iter::from_fn(|| i.next_ready())
            .map(|f| f.ms)
            .collect();
        assert_eq!(ready, [1_000, 1_010, 1_033]);
        assert_eq!(all(&mut i), [(1_500, true)]);
    }

    #[test]
    fn a_repeated_video_timestamp_moves_one_ms_on() {
        let mut i = Interleaver::default();
        for ms in [0, 33, 66, 66, 100] {
            i.push(frame(ms, true));
        }
        let times: Vec<u64> = all(&mut i).into_iter().map(|f| f.0).collect();
        assert_eq!(times, [0, 33, 66, 67, 100]);
    }

    proptest! {
        /// Whatever the arrival order, timestamps never go back across tracks and never
        /// repeat within one, and no frame is lost.
        #[test]
        fn output_is_ordered_and_complete(input in proptest::collection::vec((0u64..5_000, any::<bool>()), 0..200)) {
            let mut i = Interleaver::default();
            let mut out = Vec::new();
            for &(ms, video) in &input {
                i.push(frame(ms, video));
                out.extend(std::iter::from_fn(|| i.next_ready()).map(|f| (f.ms, f.video)));
            }
            out.extend(all(&mut i));
            prop_assert_eq!(out.len(), input.len());
            for pair in out.windows(2) {
                prop_assert!(pair[0].0 <= pair[1].0);
                if pair[0].1 == pair[1].1 {
                    prop_assert!(pair[0].0 < pair[1].0);
                }
            }
            let mut per_track: Vec<_> = out.iter().filter(|f| f.1).map(|f| f.0).collect();
            let before = per_track.len();
            per_track.dedup();
            prop_assert_eq!(per_track.len(), before);
        }
    }
}
