//! Keyframe requests: subscribers' PLI/FIR reach the application through
//! [`crate::rtcp_tap::RtcpTap`], travel up the tree as [`KeyframeWanted`] (relay → media room → ingest),
//! and go to the publisher at most once per interval per layer, however many
//! subscribers ask (a thousand viewers joining must not make the anchor's encoder send
//! a thousand keyframes).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::Message;

use crate::layers::LayerId;

/// A subscriber wants a keyframe of this layer (relay → media room → ingest).
#[derive(Message)]
#[rtype(result = "()")]
pub struct KeyframeWanted {
    pub layer: LayerId,
}

/// What to do with a keyframe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeDecision {
    /// Send it now.
    Send,
    /// Too soon after the last one: send one request after this long (the caller
    /// schedules it and calls [`KeyframeThrottle::deferred_due`] then). A request is
    /// never dropped: a subscriber that asked just after a keyframe went by would
    /// otherwise wait for the next unrelated request, which may never come.
    Later(Duration),
    /// A deferred request for this stream is already scheduled; it covers this one.
    Pending,
}

/// Decides which keyframe requests go up to the publisher (pure; time is passed in):
/// at most one per stream per interval, the rest folded into one deferred request.
#[derive(Debug)]
pub struct KeyframeThrottle {
    interval: Duration,
    last_sent: HashMap<u32, Instant>,
    deferred: HashMap<u32, Instant>,
}

impl KeyframeThrottle {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_sent: HashMap::new(),
            deferred: HashMap::new(),
        }
    }

    /// A request for the publisher's stream `ssrc` arrived at `now`.
    pub fn request(&mut self, ssrc: u32, now: Instant) -> KeyframeDecision {
        if self.deferred.contains_key(&ssrc) {
            return KeyframeDecision::Pending;
        }
        match self.last_sent.get(&ssrc) {
            Some(at) if now.duration_since(*at) < self.interval => {
                let due = *at + self.interval;
                self.deferred.insert(ssrc, due);
                KeyframeDecision::Later(due - now)
            }
            _ => {
                self.last_sent.insert(ssrc, now);
                KeyframeDecision::Send
            }
        }
    }

    /// The deferred request for `ssrc` is due: records it as sent now.
    pub fn deferred_due(&mut self, ssrc: u32, now: Instant) {
        self.deferred.remove(&ssrc);
        self.last_sent.insert(ssrc, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use KeyframeDecision::*;

    #[test]
    fn at_most_one_request_per_interval_and_none_lost() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut throttle = KeyframeThrottle::new(Duration::from_secs(1));
        assert_eq!(throttle.request(1, t0), Send);
        assert_eq!(throttle.request(1, t0 + ms(10)), Later(ms(990)));
        assert_eq!(throttle.request(1, t0 + ms(500)), Pending);
        // Another layer has its own budget.
        assert_eq!(throttle.request(2, t0 + ms(10)), Send);
        throttle.deferred_due(1, t0 + ms(1000));
        assert_eq!(throttle.request(1, t0 + ms(1500)), Later(ms(500)));
        throttle.deferred_due(1, t0 + ms(2000));
        assert_eq!(throttle.request(1, t0 + ms(3000)), Send);
    }

    proptest::proptest! {
        /// Whatever the arrival pattern: requests sent (now or deferred) are spaced by
        /// the interval, and every request is covered by one sent at or after it.
        #[test]
        fn requests_are_spaced_and_every_one_is_answered(
            gaps in proptest::collection::vec(0u64..700, 1..200)
        ) {
            let interval = Duration::from_millis(1000);
            let mut throttle = KeyframeThrottle::new(interval);
            let mut now = Instant::now();
            let mut sent: Vec<Instant> = Vec::new();
            let mut due: Option<Instant> = None;
            let mut asked = Vec::new();
            for gap in gaps {
                now += Duration::from_millis(gap);
                if let Some(at) = due.filter(|at| *at <= now) {
                    throttle.deferred_due(7, at);
                    sent.push(at);
                    due = None;
                }
                asked.push(now);
                match throttle.request(7, now) {
                    Send => sent.push(now),
                    Later(d) => due = Some(now + d),
                    Pending => proptest::prop_assert!(due.is_some()),
                }
            }
            if let Some(at) = due {
                sent.push(at);
            }
            for pair in sent.windows(2) {
                proptest::prop_assert!(pair[1].duration_since(pair[0]) >= interval);
            }
            for at in asked {
                proptest::prop_assert!(sent.iter().any(|s| *s >= at), "a request went unanswered");
            }
        }
    }
}
