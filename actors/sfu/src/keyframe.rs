//! Keyframe requests: subscribers' PLI/FIR reach the application through a small
//! interceptor, and go up to the publisher at most once per interval per layer, however
//! many subscribers ask (a thousand viewers joining must not make the anchor's encoder
//! send a thousand keyframes).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Decides which keyframe requests go up to the publisher (pure; time is passed in).
#[derive(Debug)]
pub struct KeyframeThrottle {
    interval: Duration,
    last_sent: HashMap<u32, Instant>,
}

impl KeyframeThrottle {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_sent: HashMap::new(),
        }
    }

    /// Whether a request for the publisher's stream `ssrc` should be sent now; records
    /// it when so.
    pub fn allow(&mut self, ssrc: u32, now: Instant) -> bool {
        match self.last_sent.get(&ssrc) {
            Some(at) if now.duration_since(*at) < self.interval => false,
            _ => {
                self.last_sent.insert(ssrc, now);
                true
            }
        }
    }
}

/// Passes inbound PLI and FIR to the application (the SFU relays them upstream) and
/// leaves every other inbound RTCP packet to the interceptors before it.
#[derive(Default)]
pub struct KeyframeRequestTap {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

fn asks_for_keyframe(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let requests: Vec<_> = packets
                .iter()
                .filter(|p| asks_for_keyframe(p.as_ref()))
                .cloned()
                .collect();
            if requests.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.writes.pop_front()
    }
}

impl Interceptor for KeyframeRequestTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_request_per_interval_per_stream() {
        let t0 = Instant::now();
        let mut throttle = KeyframeThrottle::new(Duration::from_secs(1));
        assert!(throttle.allow(1, t0));
        assert!(!throttle.allow(1, t0 + Duration::from_millis(10)));
        assert!(!throttle.allow(1, t0 + Duration::from_millis(999)));
        // Another layer has its own budget.
        assert!(throttle.allow(2, t0 + Duration::from_millis(10)));
        assert!(throttle.allow(1, t0 + Duration::from_millis(1000)));
        assert!(!throttle.allow(1, t0 + Duration::from_millis(1500)));
    }

    proptest::proptest! {
        #[test]
        fn allowed_requests_are_spaced_by_the_interval(
            gaps in proptest::collection::vec(0u64..700, 1..200)
        ) {
            let t0 = Instant::now();
            let mut throttle = KeyframeThrottle::new(Duration::from_millis(1000));
            let mut now = t0;
            let mut sent = Vec::new();
            for gap in gaps {
                now += Duration::from_millis(gap);
                if throttle.allow(7, now) {
                    sent.push(now);
                }
            }
            proptest::prop_assert!(!sent.is_empty());
            for pair in sent.windows(2) {
                proptest::prop_assert!(pair[1].duration_since(pair[0]) >= Duration::from_millis(1000));
            }
        }
    }
}
