//! What a room needs from its video, whatever carries it: the latest frame of the
//! anchor's stream (to tie a link drop to the anchor's media clock), the common playout
//! delay, and a call when the room ends. The SFU implements [`RoomMedia`]; the room
//! never depends on it directly.

/// A room's view of its video.
pub trait RoomMedia: Send + Sync + 'static {
    /// The latest frame of the room's stream: (RTP timestamp on the room's media clock,
    /// server ms when it arrived). `None` when the anchor is not streaming.
    fn latest_frame(&self, room: &str) -> Option<(u32, u64)>;
    /// The playout delay every subscriber is driven to, in ms.
    fn playout_delay_ms(&self) -> u64;
    /// The room ended: stop its video.
    fn room_ended(&self, room: &str);
    /// `user` was banned from the room: end their video subscriptions.
    fn user_banned(&self, room: &str, user: &str);
}

/// A frame older than this no longer says what is on the anchor's screen.
const STALE_FRAME_MS: u64 = 1_000;
/// Video RTP ticks per ms (90 kHz).
const TICKS_PER_MS: u64 = 90;

/// When a link dropped at `now` with `countdown` shows (`reveal_at`, server ms) and, with
/// video, the RTP timestamp of the frame it shows on.
///
/// The anchor presses "drop" while a frame is on their screen; that frame reaches the
/// server at about the moment the command does (both travel the anchor's uplink), so
/// the latest frame to arrive stands for it. Viewers display a frame `playout_delay`
/// after it arrives, so the frame captured `countdown` later — when the anchor says
/// "link!" — is on every viewer's screen at `arrived + countdown + playout_delay`.
/// Without video (or with a stale frame) the link shows at `now + countdown` (at least
/// 1 ms after `now`).
pub fn reveal_time(
    now: u64,
    countdown: u64,
    latest_frame: Option<(u32, u64)>,
    playout_delay: u64,
) -> (u64, Option<u32>) {
    match latest_frame {
        Some((ts, arrived)) if now.saturating_sub(arrived) <= STALE_FRAME_MS => {
            let reveal_at = (arrived + countdown + playout_delay).max(now + 1);
            let captured_after = reveal_at - arrived - playout_delay.min(reveal_at - arrived);
            let ticks = captured_after.wrapping_mul(TICKS_PER_MS) as u32;
            (reveal_at, Some(ts.wrapping_add(ticks)))
        }
        // Never `now` itself, even with no countdown: as with video, the reveal is ahead.
        _ => ((now + countdown).max(now + 1), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_video_the_countdown_runs_from_now() {
        assert_eq!(reveal_time(10_000, 3_000, None, 300), (13_000, None));
        // A frame from two seconds ago says nothing about the anchor's screen now.
        assert_eq!(
            reveal_time(10_000, 3_000, Some((5, 8_000)), 300),
            (13_000, None)
        );
    }

    #[test]
    fn with_video_the_link_lands_on_the_frame_captured_a_countdown_later() {
        // Latest frame arrived 20 ms ago with timestamp 90_000.
        let (reveal_at, rtp) = reveal_time(10_000, 3_000, Some((90_000, 9_980)), 300);
        assert_eq!(reveal_at, 9_980 + 3_000 + 300);
        assert_eq!(rtp, Some(90_000 + 3_000 * 90));
    }

    #[test]
    fn the_timestamp_wraps_like_rtp() {
        let (_, rtp) = reveal_time(10_000, 1_000, Some((u32::MAX - 10, 10_000)), 0);
        assert_eq!(rtp, Some((u32::MAX - 10).wrapping_add(90_000)));
    }

    proptest::proptest! {
        #[test]
        fn the_reveal_is_never_in_the_past_and_never_before_the_countdown_allows(
            now in 1_000u64..1_000_000_000,
            countdown in 0u64..10_000,
            age in 0u64..2_000,
            delay in 0u64..2_000,
        ) {
            let frame = Some((1u32, now - age.min(now)));
            let (reveal_at, _) = reveal_time(now, countdown, frame, delay);
            proptest::prop_assert!(reveal_at > now);
            // At most a stale-frame's age earlier than a plain countdown from now.
            proptest::prop_assert!(reveal_at + STALE_FRAME_MS >= now + countdown);
        }
    }
}
