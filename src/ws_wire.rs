//! The WebSocket wire format a session needs beyond decoding one frame (which is
//! actix-http's codec): the header of a frame the server sends (RFC 6455 §5.2; server
//! frames are never masked), the I/O slices of a batch of frames still to be written
//! (each header beside its payload, so the shared payload bytes are never copied), and
//! the joining of a fragmented client message back into one, bounded by the frame limit.
//! Pure: the socket work is in `ws_socket`.

use std::io::IoSlice;

use actix_http::ws::{Item, ProtocolError};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

/// The opcodes the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Text = 0x1,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

/// The header of one unmasked, final frame: 2, 4 or 10 bytes.
#[derive(Debug, Clone, Copy)]
pub struct FrameHead {
    bytes: [u8; 10],
    len: u8,
}

impl FrameHead {
    pub fn new(op: OpCode, payload_len: usize) -> Self {
        let mut bytes = [0u8; 10];
        bytes[0] = 0x80 | op as u8;
        let len = if payload_len < 126 {
            bytes[1] = payload_len as u8;
            2
        } else if let Ok(short) = u16::try_from(payload_len) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
            10
        };
        Self { bytes, len }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// One frame to write: its header and its payload (shared, never copied).
pub struct OutFrame {
    pub head: FrameHead,
    pub payload: Bytes,
}

impl OutFrame {
    pub fn new(op: OpCode, payload: Bytes) -> Self {
        Self {
            head: FrameHead::new(op, payload.len()),
            payload,
        }
    }

    /// Header and payload together.
    pub fn len(&self) -> usize {
        self.head.as_bytes().len() + self.payload.len()
    }
}

/// At most this many slices go to one vectored write (32 frames; the slices live on the
/// stack of the call that writes, so a batch needs no allocation).
pub const MAX_SLICES: usize = 64;

/// Fills `out` with the slices of `frames` not yet written, when the first `done` bytes
/// of them were, up to byte `limit` of the batch; returns how many (empty parts skipped).
pub fn pending_slices<'a>(
    frames: &'a [OutFrame],
    done: usize,
    limit: usize,
    out: &mut [IoSlice<'a>; MAX_SLICES],
) -> usize {
    let mut count = 0;
    let mut start = 0;
    for frame in frames {
        for part in [frame.head.as_bytes(), &frame.payload[..]] {
            let end = start + part.len();
            if end > done && start < limit && count < MAX_SLICES {
                let from = done.saturating_sub(start);
                let to = part.len().min(limit - start);
                if from < to {
                    out[count] = IoSlice::new(&part[from..to]);
                    count += 1;
                }
            }
            start = end;
        }
    }
    count
}

/// Where a write that has sent `done` bytes of `frames` may stop and leave the stream
/// well formed: `done` itself between frames, else the end of the frame begun.
pub fn stop_point(frames: &[OutFrame], done: usize) -> usize {
    let mut end = 0;
    for frame in frames {
        if end >= done {
            return end;
        }
        end += frame.len();
    }
    end
}

/// The payload of a close frame: the code, then the reason (cut to fit a control frame's
/// 125 bytes on a character boundary).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    payload
}

/// A whole message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    Text(ByteString),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    Close,
}

/// Joins a fragmented message's frames, refusing one larger than `max` bytes in all.
#[derive(Debug)]
pub struct Joiner {
    max: usize,
    kind: Option<Kind>,
    parts: BytesMut,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Binary,
}

impl Joiner {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            kind: None,
            parts: BytesMut::new(),
        }
    }

    /// Takes one fragment; a whole message once its last fragment arrived.
    pub fn push(&mut self, item: Item) -> Result<Option<Message>, ProtocolError> {
        let (bytes, last) = match item {
            Item::FirstText(bytes) => (self.start(Kind::Text, bytes)?, false),
            Item::FirstBinary(bytes) => (self.start(Kind::Binary, bytes)?, false),
            Item::Continue(bytes) => (bytes, false),
            Item::Last(bytes) => (bytes, true),
        };
        let Some(kind) = self.kind else {
            return Err(ProtocolError::ContinuationNotStarted);
        };
        if self.parts.len() + bytes.len() > self.max {
            return Err(ProtocolError::Overflow);
        }
        self.parts.extend_from_slice(&bytes);
        if !last {
            return Ok(None);
        }
        self.kind = None;
        let whole = std::mem::take(&mut self.parts).freeze();
        Ok(Some(match kind {
            Kind::Binary => Message::Binary(whole),
            Kind::Text => Message::Text(ByteString::try_from(whole).map_err(|e| {
                ProtocolError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })?),
        }))
    }

    /// Whether a fragmented message is under way (a new data frame then is an error).
    pub fn in_progress(&self) -> bool {
        self.kind.is_some()
    }

    fn start(&mut self, kind: Kind, bytes: Bytes) -> Result<Bytes, ProtocolError> {
        if self.kind.is_some() {
            return Err(ProtocolError::ContinuationStarted);
        }
        self.kind = Some(kind);
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_codec::Decoder;
    use actix_http::ws::{Codec, Frame};
    use proptest::prelude::*;

    /// Decodes what the server wrote as a client would (unmasked frames).
    fn decode(wire: &[u8]) -> Vec<Frame> {
        let mut codec = Codec::new().client_mode().max_size(1 << 20);
        let mut buf = BytesMut::from(wire);
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
        assert!(buf.is_empty(), "bytes left after the last frame");
        frames
    }

    fn slices_of(frames: &[OutFrame], done: usize, limit: usize) -> Vec<Vec<u8>> {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let count = pending_slices(frames, done, limit, &mut slices);
        slices[..count].iter().map(|s| s.to_vec()).collect()
    }

    fn write_all(frames: &[OutFrame], step: usize) -> Vec<u8> {
        let total: usize = frames.iter().map(OutFrame::len).sum();
        let mut wire = Vec::new();
        while wire.len() < total {
            let slices = slices_of(frames, wire.len(), total);
            // A short write: at most `step` bytes were taken.
            let mut room = step;
            for slice in &slices {
                let n = slice.len().min(room);
                wire.extend_from_slice(&slice[..n]);
                room -= n;
                if room == 0 {
                    break;
                }
            }
        }
        wire
    }

    proptest! {
        /// Whatever the payload sizes and however short each write, a client decodes
        /// exactly the frames sent, in order.
        #[test]
        fn frames_written_in_pieces_decode_whole(
            sizes in proptest::collection::vec(
                prop_oneof![0usize..130, 65_530usize..65_540, Just(70_000usize)], 1..40),
            step in 1usize..100_000,
        ) {
            let payloads: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| vec![b'a' + i as u8; n])
                .collect();
            let frames: Vec<OutFrame> = payloads
                .iter()
                .map(|p| OutFrame::new(OpCode::Text, Bytes::from(p.clone())))
                .collect();
            let decoded = decode(&write_all(&frames, step));
            prop_assert_eq!(decoded.len(), payloads.len());
            for (frame, payload) in decoded.into_iter().zip(&payloads) {
                prop_assert_eq!(frame, Frame::Text(Bytes::from(payload.clone())));
            }
        }
    }

    #[test]
    fn a_stopped_batch_ends_with_the_frame_in_flight() {
        let frames = [
            OutFrame::new(OpCode::Text, Bytes::from(vec![1u8; 10])),
            OutFrame::new(OpCode::Text, Bytes::from(vec![2u8; 300])),
        ];
        assert_eq!(stop_point(&frames, 0), 0);
        assert_eq!(stop_point(&frames, 5), 12);
        assert_eq!(stop_point(&frames, 12), 12);
        assert_eq!(stop_point(&frames, 13), 12 + 4 + 300);
        assert_eq!(stop_point(&frames, 12 + 4 + 300), 12 + 4 + 300);
        let rest: usize = slices_of(&frames, 5, 12).iter().map(Vec::len).sum();
        assert_eq!(rest, 7, "only the first frame's remaining bytes");
    }

    #[test]
    fn control_frames_decode_as_sent() {
        let close = close_payload(4001, "slow consumer");
        let frames = [
            OutFrame::new(OpCode::Ping, Bytes::new()),
            OutFrame::new(OpCode::Pong, Bytes::from_static(b"hi")),
            OutFrame::new(OpCode::Close, Bytes::from(close)),
        ];
        let total = frames.iter().map(OutFrame::len).sum();
        let wire: Vec<u8> = slices_of(&frames, 0, total).concat();
        let decoded = decode(&wire);
        assert_eq!(decoded[0], Frame::Ping(Bytes::new()));
        assert_eq!(decoded[1], Frame::Pong(Bytes::from_static(b"hi")));
        let Frame::Close(Some(reason)) = &decoded[2] else {
            panic!("not a close: {:?}", decoded[2]);
        };
        assert_eq!(u16::from(reason.code), 4001);
        assert_eq!(reason.description.as_deref(), Some("slow consumer"));
    }

    #[test]
    fn a_long_close_reason_is_cut_on_a_character_boundary() {
        let payload = close_payload(1000, &"é".repeat(100));
        assert!(payload.len() <= 125);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }

    #[test]
    fn fragments_join_into_one_message_within_the_limit() {
        let mut joiner = Joiner::new(10);
        let b = Bytes::from_static;
        assert_eq!(joiner.push(Item::FirstText(b(b"hel"))).unwrap(), None);
        assert!(joiner.in_progress());
        assert_eq!(joiner.push(Item::Continue(b(b"lo "))).unwrap(), None);
        assert_eq!(
            joiner.push(Item::Last(b(b"you"))).unwrap(),
            Some(Message::Text(ByteString::from_static("hello you")))
        );
        assert!(!joiner.in_progress());
        joiner.push(Item::FirstBinary(b(b"0123456"))).unwrap();
        assert!(matches!(
            joiner.push(Item::Last(b(b"7890"))),
            Err(ProtocolError::Overflow)
        ));
    }

    #[test]
    fn fragments_out_of_order_or_not_utf8_are_protocol_errors() {
        let b = Bytes::from_static;
        assert!(matches!(
            Joiner::new(10).push(Item::Continue(b(b"x"))),
            Err(ProtocolError::ContinuationNotStarted)
        ));
        let mut joiner = Joiner::new(10);
        joiner.push(Item::FirstText(b(b"x"))).unwrap();
        assert!(matches!(
            joiner.push(Item::FirstText(b(b"y"))),
            Err(ProtocolError::ContinuationStarted)
        ));
        let mut joiner = Joiner::new(10);
        joiner.push(Item::FirstText(b(&[0xC3]))).unwrap();
        assert!(matches!(
            joiner.push(Item::Last(b(&[0x28]))),
            Err(ProtocolError::Io(_))
        ));
    }
}
