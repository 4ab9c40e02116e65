//! What the SFU must know about a payload without decoding it: whether an RTP packet
//! starts a keyframe (VP8, H.264), so a subscriber joins or switches layers on one.

/// Video codecs the SFU can switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
    /// Any other codec: forwarded, but no keyframe detection (switches wait for none).
    Other,
}

impl VideoCodec {
    /// The codec named by a MIME type such as `video/VP8`.
    pub fn from_mime(mime: &str) -> Self {
        let lower = mime.to_ascii_lowercase();
        match lower.as_str() {
            "video/vp8" => Self::Vp8,
            "video/h264" => Self::H264,
            _ => Self::Other,
        }
    }

    /// Whether this payload is the first packet of a keyframe.
    pub fn starts_keyframe(self, payload: &[u8]) -> bool {
        match self {
            Self::Vp8 => vp8_starts_keyframe(payload),
            Self::H264 => h264_starts_keyframe(payload),
            Self::Other => true,
        }
    }
}

/// VP8 (RFC 7741): the payload descriptor, then the VP8 header whose P bit is 0 on a
/// keyframe. Only the start of partition 0 (S = 1, PID = 0) carries that header.
pub fn vp8_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let start = first & 0x10 != 0;
    let partition = first & 0x07;
    if !start || partition != 0 {
        return false;
    }
    vp8_descriptor_len(payload)
        .and_then(|at| payload.get(at))
        .is_some_and(|header| header & 0x01 == 0)
}

/// Length of a VP8 RTP payload descriptor (RFC 7741 4.2): what comes before the VP8
/// bitstream. `None` when the payload ends inside it.
pub fn vp8_descriptor_len(payload: &[u8]) -> Option<usize> {
    let first = *payload.first()?;
    let mut at = 1;
    if first & 0x80 != 0 {
        let ext = *payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            // PictureID: one byte, or two when its M bit is set.
            let pid = *payload.get(at)?;
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    (at <= payload.len()).then_some(at)
}

/// H.264 (RFC 6184): an IDR slice (type 5) or an SPS (type 7) in a single NAL unit,
/// the first unit of a STAP-A, or the start fragment of an FU-A.
pub fn h264_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        5 | 7 => true,
        24 => {
            // STAP-A: [header][size:2][nal]...; look at every aggregated unit.
            let mut at = 1;
            while at + 2 < payload.len() {
                let size = u16::from_be_bytes([payload[at], payload[at + 1]]) as usize;
                let nal = payload[at + 2] & 0x1f;
                if nal == 5 || nal == 7 {
                    return true;
                }
                at += 2 + size;
            }
            false
        }
        28 => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && matches!(fu & 0x1f, 5 | 7)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_and_interframe() {
        // S=1, PID=0, no extension; VP8 header P bit 0 → keyframe.
        assert!(vp8_starts_keyframe(&[0x10, 0x00, 0x9d]));
        // P bit 1 → interframe.
        assert!(!vp8_starts_keyframe(&[0x10, 0x01, 0x9d]));
        // Not the start of a partition.
        assert!(!vp8_starts_keyframe(&[0x00, 0x00]));
        // Extended with a two-byte PictureID, TL0PICIDX and KEYIDX.
        assert!(vp8_starts_keyframe(&[
            0x90, 0xe0, 0x81, 0x23, 0x05, 0x20, 0x50
        ]));
        assert!(!vp8_starts_keyframe(&[
            0x90, 0xe0, 0x81, 0x23, 0x05, 0x20, 0x51
        ]));
        // One-byte PictureID.
        assert!(vp8_starts_keyframe(&[0x90, 0x80, 0x12, 0x00]));
        // Truncated input is never a keyframe, never a panic.
        assert!(!vp8_starts_keyframe(&[]));
        assert!(!vp8_starts_keyframe(&[0x90, 0x80]));
    }

    #[test]
    fn h264_keyframes() {
        assert!(h264_starts_keyframe(&[0x65, 0x88])); // IDR
        assert!(h264_starts_keyframe(&[0x67, 0x42])); // SPS
        assert!(!h264_starts_keyframe(&[0x41, 0x9a])); // non-IDR slice
        // STAP-A holding SPS.
        assert!(h264_starts_keyframe(&[0x78, 0x00, 0x02, 0x67, 0x42]));
        assert!(!h264_starts_keyframe(&[0x78, 0x00, 0x02, 0x41, 0x42]));
        // FU-A start of an IDR; a middle fragment is not a start.
        assert!(h264_starts_keyframe(&[0x7c, 0x85, 0x00]));
        assert!(!h264_starts_keyframe(&[0x7c, 0x05, 0x00]));
        assert!(!h264_starts_keyframe(&[]));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_payloads(bytes in proptest::collection::vec(0u8.., 0..40)) {
            let _ = vp8_starts_keyframe(&bytes);
            let _ = h264_starts_keyframe(&bytes);
        }
    }
}
