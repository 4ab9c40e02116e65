//! Where a recording's frames sit on its time axis: each track's RTP clock unwrapped
//! past the 32-bit wrap and placed from the media position of its first timestamp.

/// One track's RTP clock on the recording's time axis: timestamps are unwrapped step by
/// step (each step is read as a signed 32-bit difference), so a recording runs past
/// the 32-bit wrap (13 hours at 90 kHz) without a jump.
#[derive(Debug, Clone, Copy)]
pub(super) struct TrackClock {
    /// Media position of the first timestamp seen.
    base_ms: u64,
    last_ts: u32,
    /// Clock ticks since the first timestamp.
    ticks: i64,
    ticks_per_ms: i64,
}

impl TrackClock {
    pub(super) fn new(base_ms: u64, ts: u32, ticks_per_ms: i64) -> Self {
        Self {
            base_ms,
            last_ts: ts,
            ticks: 0,
            ticks_per_ms,
        }
    }

    /// The media position of `ts`; `None` before position 0.
    pub(super) fn ms(&mut self, ts: u32) -> Option<u64> {
        self.ticks += i64::from(ts.wrapping_sub(self.last_ts) as i32);
        self.last_ts = ts;
        self.base_ms
            .checked_add_signed(self.ticks.div_euclid(self.ticks_per_ms))
    }
}

/// One publisher session's clocks on the recording's time axis.
#[derive(Default)]
pub(super) struct SourceClock {
    /// Video (the room's 90 kHz media clock), from the session's first recorded frame.
    pub(super) video: Option<TrackClock>,
    /// Audio (48 kHz Opus), from the session's first audio packet.
    pub(super) audio: Option<TrackClock>,
}

#[cfg(test)]
mod tests {
    use super::TrackClock;

    #[test]
    fn a_track_clock_runs_on_past_the_32_bit_wrap() {
        // Start 10 s before the wrap; step 20 hours of 90 kHz ticks, one second at a time.
        let mut clock = TrackClock::new(500, u32::MAX - 900_000, 90);
        let mut ts = u32::MAX - 900_000;
        for second in 1..=20 * 3600u64 {
            ts = ts.wrapping_add(90_000);
            assert_eq!(clock.ms(ts), Some(500 + second * 1000));
        }
        // A frame that arrives a little late still lands where it belongs.
        assert_eq!(
            clock.ms(ts.wrapping_sub(9_000)),
            Some(500 + 20 * 3600 * 1000 - 100)
        );
        let mut early = TrackClock::new(0, 1_000, 48);
        assert_eq!(early.ms(1_000 - 480), None, "before position 0");
    }
}
