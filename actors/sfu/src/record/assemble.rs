//! Reassembles one simulcast layer's frames (VP8 or H.264) from its RTP packets, as
//! they come (a little reordering is fine): a frame is complete with its first packet,
//! its last (marker bit) and every sequence number between. The first packet is the one
//! after the previous frame's last, or one that can only start a frame (VP8: the start
//! of partition 0; H.264: the start of a keyframe, which is where a stream is picked up
//! after a loss). A frame that cannot complete — a packet lost, or dropped by the
//! recorder's full queue — is given up once later frames are waiting, and frames are
//! then skipped until the next keyframe, so the recording never holds a frame that
//! references a missing one. H.264 comes out as length-prefixed NAL units (the MP4
//! sample format), depacketized by the `rtc` crate (single NAL units, STAP-A, FU-A).

use std::collections::BTreeMap;

use crate::codec::{VideoCodec, h264_starts_keyframe, vp8_descriptor_len};
use bytes::{Bytes, BytesMut};
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;

/// Frames held waiting for a missing packet before the oldest is given up.
const MAX_WAITING_FRAMES: usize = 4;

/// A reassembled frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// On the room's media clock (90 kHz).
    pub media_ts: u32,
    pub keyframe: bool,
    pub data: Bytes,
}

#[derive(Debug, Default)]
struct Parts {
    /// By sequence number: (payload, can only start a frame, marker).
    packets: BTreeMap<u16, (Bytes, bool, bool)>,
}

impl Parts {
    /// The sequence number of the marker packet, if it came.
    fn tail(&self) -> Option<u16> {
        self.packets.iter().find(|(_, p)| p.2).map(|(&seq, _)| seq)
    }

    /// The packets from head to marker, in order, when all are here; `after` is the
    /// previous frame's marker packet.
    fn complete(&self, after: Option<u16>) -> Option<Vec<&Bytes>> {
        let follows = after
            .map(|seq| seq.wrapping_add(1))
            .filter(|seq| self.packets.contains_key(seq));
        let head = follows.or_else(|| self.packets.iter().find(|(_, p)| p.1).map(|(&s, _)| s))?;
        let tail = self.tail()?;
        let count = usize::from(tail.wrapping_sub(head)) + 1;
        if count > self.packets.len() {
            return None;
        }
        (0..count)
            .map(|i| self.packets.get(&head.wrapping_add(i as u16)).map(|p| &p.0))
            .collect()
    }
}

/// One layer's frame reassembly.
#[derive(Debug)]
pub struct FrameAssembler {
    codec: VideoCodec,
    /// Frames in the order their first packet arrived.
    waiting: Vec<(u32, Parts)>,
    need_keyframe: bool,
    /// The timestamp of the last frame completed or given up: a packet of it or of an
    /// earlier frame (a duplicate, a late retransmission) is ignored.
    done_ts: Option<u32>,
    /// The marker packet of the last frame completed or given up, when known.
    last_tail: Option<u16>,
    /// Frames given up (a packet never came).
    pub lost_frames: u64,
}

impl FrameAssembler {
    /// An assembler for `codec`'s RTP payload format (VP8 or H.264).
    pub fn new(codec: VideoCodec) -> Self {
        Self {
            codec,
            waiting: Vec::new(),
            need_keyframe: true,
            done_ts: None,
            last_tail: None,
            lost_frames: 0,
        }
    }

    /// Takes one packet; returns the frames it completed, in order.
    pub fn push(&mut self, media_ts: u32, seq: u16, marker: bool, payload: Bytes) -> Vec<Frame> {
        if self
            .done_ts
            .is_some_and(|done| media_ts.wrapping_sub(done) as i32 <= 0)
        {
            return Vec::new();
        }
        let head = match self.codec {
            VideoCodec::H264 => h264_starts_keyframe(&payload),
            _ => starts_partition_zero(&payload),
        };
        match self.waiting.iter_mut().find(|(ts, _)| *ts == media_ts) {
            Some((_, parts)) => {
                parts.packets.insert(seq, (payload, head, marker));
            }
            None => {
                let mut parts = Parts::default();
                parts.packets.insert(seq, (payload, head, marker));
                self.waiting.push((media_ts, parts));
            }
        }
        self.drain()
    }

    fn drain(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some((ts, parts)) = self.waiting.first() {
            if let Some(payloads) = parts.complete(self.last_tail) {
                let frame = match self.codec {
                    VideoCodec::H264 => depacketize_h264(*ts, &payloads),
                    _ => depacketize(*ts, &payloads),
                };
                self.last_tail = parts.tail();
                self.done_ts = Some(*ts);
                self.waiting.remove(0);
                if let Some(frame) = frame
                    && (frame.keyframe || !self.need_keyframe)
                {
                    self.need_keyframe = false;
                    out.push(frame);
                }
                continue;
            }
            if self.waiting.len() > MAX_WAITING_FRAMES {
                self.last_tail = parts.tail();
                self.done_ts = Some(*ts);
                self.waiting.remove(0);
                if !self.need_keyframe {
                    self.lost_frames += 1;
                }
                self.need_keyframe = true;
                continue;
            }
            break;
        }
        out
    }

    /// Whether frames are being skipped until a keyframe comes.
    pub fn needs_keyframe(&self) -> bool {
        self.need_keyframe
    }
}

/// VP8 payload descriptor (RFC 7741): S bit set and partition index 0.
fn starts_partition_zero(payload: &[u8]) -> bool {
    payload
        .first()
        .is_some_and(|b| b & 0x10 != 0 && b & 0x07 == 0)
}

/// The frame: each packet's bitstream after its payload descriptor, in order.
fn depacketize(media_ts: u32, payloads: &[&Bytes]) -> Option<Frame> {
    let mut data = BytesMut::new();
    for payload in payloads {
        data.extend_from_slice(&payload[vp8_descriptor_len(payload)?..]);
    }
    let data = data.freeze();
    let keyframe = data.first().is_some_and(|b| b & 0x01 == 0);
    Some(Frame {
        media_ts,
        keyframe,
        data,
    })
}

/// The H.264 frame as length-prefixed NAL units; a keyframe holds an IDR slice.
fn depacketize_h264(media_ts: u32, payloads: &[&Bytes]) -> Option<Frame> {
    let mut depacketizer = H264Packet::default();
    depacketizer.is_avc = true;
    let mut data = BytesMut::new();
    for payload in payloads {
        data.extend_from_slice(&depacketizer.depacketize(payload).ok()?);
    }
    let data = data.freeze();
    let keyframe =
        super::h264::nal_units(&data).any(|nal| nal.first().is_some_and(|b| b & 0x1f == 5));
    (!data.is_empty()).then_some(Frame {
        media_ts,
        keyframe,
        data,
    })
}

/// Width and height of a VP8 keyframe (its uncompressed header, RFC 6386 9.1).
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let height = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    (width > 0 && height > 0).then_some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keyframe header for 640×360, then filler.
    fn keyframe_bytes() -> Vec<u8> {
        let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&640u16.to_le_bytes());
        f.extend_from_slice(&360u16.to_le_bytes());
        f.extend_from_slice(&[7; 20]);
        f
    }

    /// RTP payloads of one frame: a one-byte descriptor (S on the first) + a slice.
    fn packets(frame: &[u8], chunk: usize) -> Vec<Bytes> {
        frame
            .chunks(chunk)
            .enumerate()
            .map(|(i, c)| {
                let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
                p.extend_from_slice(c);
                Bytes::from(p)
            })
            .collect()
    }

    fn feed(a: &mut FrameAssembler, ts: u32, first_seq: u16, payloads: &[Bytes]) -> Vec<Frame> {
        let last = payloads.len() - 1;
        let mut out = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            out.extend(a.push(ts, first_seq.wrapping_add(i as u16), i == last, p.clone()));
        }
        out
    }

    #[test]
    fn a_frame_split_over_packets_comes_back_whole_even_out_of_order() {
        let key = keyframe_bytes();
        let mut parts = packets(&key, 7);
        parts.swap(1, 2);
        let mut a = FrameAssembler::new(VideoCodec::Vp8);
        let mut out = Vec::new();
        let n = parts.len();
        for (i, p) in parts.iter().enumerate() {
            let seq = match i {
                1 => 65535u16.wrapping_add(3),
                2 => 65535u16.wrapping_add(2),
                _ => 65535u16.wrapping_add(i as u16 + 1),
            };
            let marker = seq == 65535u16.wrapping_add(n as u16);
            out.extend(a.push(9000, seq, marker, p.clone()));
        }
        assert_eq!(out.len(), 1);
        assert!(out[0].keyframe);
        assert_eq!(out[0].data.as_ref(), key.as_slice());
        assert_eq!(vp8_keyframe_size(&out[0].data), Some((640, 360)));
    }

    #[test]
    fn frames_wait_for_a_keyframe_and_a_loss_waits_for_the_next() {
        let mut a = FrameAssembler::new(VideoCodec::Vp8);
        let delta = [0x01u8, 5, 5, 5, 5];
        assert!(
            feed(&mut a, 1, 1, &packets(&delta, 3)).is_empty(),
            "no keyframe yet"
        );
        let key = feed(&mut a, 2, 10, &packets(&keyframe_bytes(), 9));
        assert_eq!(key.len(), 1);
        assert_eq!(feed(&mut a, 3, 20, &packets(&delta, 3)).len(), 1);
        // A frame loses its second packet: it and the frames after it are skipped.
        let lossy = packets(&delta, 2);
        a.push(4, 30, false, lossy[0].clone());
        a.push(4, 32, true, lossy[2].clone());
        let mut later = Vec::new();
        for ts in 5..12 {
            later.extend(feed(&mut a, ts, 40 + ts as u16 * 3, &packets(&delta, 3)));
        }
        assert!(later.is_empty(), "{later:?}");
        assert!(a.needs_keyframe());
        assert_eq!(a.lost_frames, 1);
        let key = feed(&mut a, 20, 200, &packets(&keyframe_bytes(), 9));
        assert_eq!(key.len(), 1);
        assert!(key[0].keyframe);
    }

    #[test]
    fn a_late_copy_of_a_written_frame_changes_nothing() {
        let mut a = FrameAssembler::new(VideoCodec::Vp8);
        let key = packets(&keyframe_bytes(), 9);
        assert_eq!(feed(&mut a, 100, 1, &key).len(), 1);
        // A retransmission of the keyframe's first packet arrives after it was written.
        assert!(a.push(100, 1, false, key[0].clone()).is_empty());
        let delta = [0x01u8, 5, 5, 5, 5];
        assert_eq!(feed(&mut a, 103, 10, &packets(&delta, 3)).len(), 1);
        assert!(!a.needs_keyframe());
        assert_eq!(a.lost_frames, 0);
    }

    #[test]
    fn sizes_come_only_from_keyframes() {
        assert_eq!(vp8_keyframe_size(&keyframe_bytes()), Some((640, 360)));
        assert_eq!(
            vp8_keyframe_size(&[0x01, 0, 0, 0x9d, 0x01, 0x2a, 1, 0, 1, 0]),
            None
        );
        assert_eq!(vp8_keyframe_size(&[0x00; 4]), None);
    }

    /// An H.264 access unit (Annex B) packetized by the `rtc` crate's payloader, as a
    /// webrtc-rs publisher sends it: (sequence offset, marker, payload).
    fn h264_packets(nals: &[&[u8]], mtu: usize) -> Vec<Bytes> {
        use rtc::rtp::codec::h264::H264Payloader;
        use rtc::rtp::packetizer::Payloader;
        let annex_b: Vec<u8> = nals
            .iter()
            .flat_map(|nal| [&[0, 0, 0, 1][..], nal].concat())
            .collect();
        H264Payloader::default()
            .payload(mtu, &Bytes::from(annex_b))
            .unwrap()
    }

    fn length_prefixed(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|nal| [&(nal.len() as u32).to_be_bytes()[..], nal].concat())
            .collect()
    }

    fn slice(kind: u8, len: usize) -> Vec<u8> {
        let mut nal = vec![0x60 | kind];
        nal.extend((0..len).map(|i| (i % 251) as u8 + 1));
        nal
    }

    use super::super::h264::tests::{PPS, SPS_640X360};

    #[test]
    fn an_h264_keyframe_comes_back_as_length_prefixed_units_with_its_parameter_sets() {
        let idr = slice(5, 3_000);
        let packets = h264_packets(&[SPS_640X360, PPS, &idr], 1_000);
        assert!(packets.len() >= 4, "a STAP-A and FU-A fragments");
        let mut a = FrameAssembler::new(VideoCodec::H264);
        // Out of order: the second and third packets swap.
        let order = [0usize, 2, 1, 3, 4, 5];
        let mut out = Vec::new();
        for &i in order.iter().filter(|&&i| i < packets.len()) {
            out.extend(a.push(
                900,
                100 + i as u16,
                i == packets.len() - 1,
                packets[i].clone(),
            ));
        }
        assert_eq!(out.len(), 1);
        assert!(out[0].keyframe);
        assert_eq!(
            out[0].data.as_ref(),
            length_prefixed(&[SPS_640X360, PPS, &idr]).as_slice()
        );
        // The next frame starts right after: a delta frame in fragments.
        let delta = slice(1, 2_500);
        let next = feed(
            &mut a,
            3_900,
            100 + packets.len() as u16,
            &h264_packets(&[&delta], 1_000),
        );
        assert_eq!(next.len(), 1);
        assert!(!next[0].keyframe);
        assert_eq!(next[0].data.as_ref(), length_prefixed(&[&delta]).as_slice());
    }

    #[test]
    fn an_h264_stream_picked_up_mid_way_or_after_a_loss_resumes_at_a_keyframe() {
        let mut a = FrameAssembler::new(VideoCodec::H264);
        let delta = h264_packets(&[&slice(1, 2_500)], 1_000);
        let key = h264_packets(&[SPS_640X360, PPS, &slice(5, 3_000)], 1_000);
        let mut seq = 7u16;
        let mut send = |a: &mut FrameAssembler, ts: u32, packets: &[Bytes], skip: Option<usize>| {
            let last = packets.len() - 1;
            let mut out = Vec::new();
            for (i, p) in packets.iter().enumerate() {
                if Some(i) != skip {
                    out.extend(a.push(ts, seq, i == last, p.clone()));
                }
                seq = seq.wrapping_add(1);
            }
            out
        };
        // Joined mid-stream: delta frames wait for a keyframe, and are not losses.
        for ts in 0..6 {
            assert!(send(&mut a, ts * 3_000, &delta, None).is_empty());
        }
        assert_eq!(send(&mut a, 18_000, &key, None).len(), 1);
        assert_eq!(a.lost_frames, 0);
        assert_eq!(send(&mut a, 21_000, &delta, None).len(), 1);
        // A delta frame loses its middle fragment: it and what follows are skipped...
        assert!(send(&mut a, 24_000, &delta, Some(1)).is_empty());
        let mut later = Vec::new();
        for ts in 9..15 {
            later.extend(send(&mut a, ts * 3_000, &delta, None));
        }
        assert!(later.is_empty(), "{later:?}");
        assert_eq!(a.lost_frames, 1);
        // ...until the next keyframe.
        let resumed = send(&mut a, 60_000, &key, None);
        assert_eq!(resumed.len(), 1);
        assert!(resumed[0].keyframe);
        assert_eq!(send(&mut a, 63_000, &delta, None).len(), 1);
    }
}
