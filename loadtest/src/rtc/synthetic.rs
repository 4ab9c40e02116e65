//! The synthetic video stream: VP8-shaped RTP payloads (a valid payload descriptor and
//! keyframe bit, so the SFU's keyframe detection works on them, and on keyframes the
//! VP8 uncompressed header with a start code and a size, as a recorder reads it)
//! carrying a marker, the sender's clock and the frame number.

/// Marks a synthetic payload.
const MAGIC: &[u8; 4] = b"LKST";

/// The size synthetic keyframes announce.
pub const WIDTH: u16 = 1280;
pub const HEIGHT: u16 = 720;

/// A VP8 keyframe's uncompressed header (RFC 6386 9.1): the frame tag (P = 0, shown),
/// the start code and the size.
fn keyframe_header() -> [u8; 10] {
    let [w0, w1] = WIDTH.to_le_bytes();
    let [h0, h1] = HEIGHT.to_le_bytes();
    [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, w0, w1, h0, h1]
}

/// One frame split into RTP payloads of at most `mtu` bytes.
pub fn frame_payloads(
    frame: u64,
    keyframe: bool,
    frame_bytes: usize,
    mtu: usize,
    sent_us: u64,
) -> Vec<Vec<u8>> {
    let packets = frame_bytes.div_ceil(mtu).max(1);
    (0..packets)
        .map(|i| {
            let mut p = Vec::with_capacity(mtu);
            if i == 0 {
                p.push(0x10); // S = 1, partition 0
                if keyframe {
                    p.extend_from_slice(&keyframe_header());
                } else {
                    p.push(0x01); // VP8 header: P bit
                }
            } else {
                p.push(0x00);
            }
            p.extend_from_slice(MAGIC);
            p.extend_from_slice(&sent_us.to_be_bytes());
            p.extend_from_slice(&frame.to_be_bytes());
            let size = if i + 1 == packets {
                frame_bytes - mtu * (packets - 1)
            } else {
                mtu
            };
            p.resize(size.max(p.len()), 0xab);
            p
        })
        .collect()
}

/// An audio payload (Opus-sized) with the same marker and clock.
pub fn audio_payload(sent_us: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(80);
    p.push(0x00);
    p.extend_from_slice(MAGIC);
    p.extend_from_slice(&sent_us.to_be_bytes());
    p.extend_from_slice(&0u64.to_be_bytes());
    p.resize(80, 0xcd);
    p
}

/// The send time (µs since the epoch) and frame number a synthetic payload carries.
pub fn parse(payload: &[u8]) -> Option<(u64, u64)> {
    let at = [1usize, 2, 11]
        .into_iter()
        .find(|&at| payload.get(at..at + 4) == Some(MAGIC.as_slice()))?;
    let sent = u64::from_be_bytes(payload.get(at + 4..at + 12)?.try_into().ok()?);
    let frame = u64::from_be_bytes(payload.get(at + 12..at + 20)?.try_into().ok()?);
    Some((sent, frame))
}

/// What a publisher sent, by the send time its payloads carry, so a measuring window
/// counts the same packets on both sides (sent in the window, and received carrying a
/// send time in the window) whenever they arrive.
#[derive(Debug, Default)]
pub struct SendLog(std::sync::Mutex<Vec<(u64, u64)>>);

impl SendLog {
    /// `packets` were sent carrying send time `sent_us`.
    pub fn record(&self, sent_us: u64, packets: u64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((sent_us, packets));
    }

    /// Packets sent with a send time in `[start_us, end_us)`.
    pub fn between(&self, start_us: u64, end_us: u64) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(at, _)| (start_us..end_us).contains(at))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    crate::wire::now_ns() / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_look_like_vp8() {
        let payloads = frame_payloads(7, true, 3000, 1200, 123_456);
        assert_eq!(payloads.len(), 3);
        assert_eq!(payloads.iter().map(Vec::len).sum::<usize>(), 3000);
        assert!(crate::rtc::peer::vp8_starts_keyframe(
            &payloads[0].clone().into()
        ));
        assert!(!crate::rtc::peer::vp8_starts_keyframe(
            &payloads[1].clone().into()
        ));
        for p in &payloads {
            assert_eq!(parse(p), Some((123_456, 7)));
        }
        let inter = frame_payloads(8, false, 500, 1200, 1);
        assert!(!crate::rtc::peer::vp8_starts_keyframe(
            &inter[0].clone().into()
        ));
        assert_eq!(parse(&audio_payload(99)), Some((99, 0)));
        assert_eq!(parse(b"nothing"), None);
    }
}
