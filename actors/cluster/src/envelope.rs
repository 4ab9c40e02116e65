//! What nodes say to each other about one room, on its two channels. *Down* (owner →
//! every node serving the room): the room's encoded broadcasts, frames for one session,
//! closes, and join answers — one channel, so a session's welcome is never overtaken by
//! the broadcasts after it. *Up* (any node → owner): joins, leaves, inputs and liveness.
//!
//! Everything down is stamped with the epoch of the owner that sent it: an edge that knows
//! a newer owner drops what a deposed one still says (fencing, as the store does for
//! sales).
//!
//! A broadcast is the hot case: it travels as a tag byte, the 8-byte epoch and the frame's
//! bytes as the owner encoded them, and an edge hands those bytes to its sessions
//! unchanged. The rest is JSON after the tag byte and the epoch.

use bytestring::ByteString;
use lockstep_actors::inventory::BuyerRequest;
use lockstep_actors::room::{Identity, RoomError, RoomInput, SessionId};
use lockstep_protocol::CloseCode;
use serde::{Deserialize, Serialize};

/// Owner → nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Down {
    /// A broadcast: every session of the room.
    Frame(ByteString),
    /// A frame for one session.
    To {
        session: SessionId,
        frame: ByteString,
    },
    /// Close one session, or (`None`) every session of the room.
    Close {
        session: Option<SessionId>,
        code: CloseCode,
    },
    /// The answer to a join.
    Joined {
        session: SessionId,
        result: Result<(), RoomError>,
    },
    /// The owner is alive and runs the room under `epoch` (every
    /// `cluster.alive_interval_ms`, and at once when a node takes a room over: a higher
    /// epoch tells the edges to join their sessions again).
    Owner { epoch: u64 },
}

/// Nodes → owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Up {
    Join {
        node: String,
        session: SessionId,
        identity: Identity,
    },
    Leave {
        session: SessionId,
    },
    Input {
        session: SessionId,
        input: RoomInput,
    },
    /// The node still serves the room (sent every `cluster.alive_interval_ms`).
    Alive {
        node: String,
    },
    /// Likes the node's joined sessions tapped since its last report (once per room tick
    /// at most, however many viewers tapped).
    Likes {
        count: u64,
    },
    /// An order or cancel of a session on that node; the answer comes down as a frame
    /// for the session.
    Buy {
        session: SessionId,
        buyer: String,
        request: BuyerRequest,
    },
}

#[derive(Serialize, Deserialize)]
enum DownJson {
    Close {
        session: Option<SessionId>,
        code: CloseCode,
    },
    Joined {
        session: SessionId,
        result: Result<(), RoomError>,
    },
    Owner {
        epoch: u64,
    },
}

const FRAME: u8 = b'F';
const TO: u8 = b'T';
const JSON: u8 = b'J';

/// Why bytes on a room channel are not an envelope.
#[derive(Debug, thiserror::Error)]
#[error("not a cluster envelope: {0}")]
pub struct BadEnvelope(String);

impl Down {
    /// The envelope as the owner running the room under `epoch` sends it.
    pub fn encode(&self, epoch: u64) -> Vec<u8> {
        let stamped = |tag: u8, capacity: usize| {
            let mut out = Vec::with_capacity(9 + capacity);
            out.push(tag);
            out.extend_from_slice(&epoch.to_be_bytes());
            out
        };
        match self {
            Down::Frame(frame) => {
                let mut out = stamped(FRAME, frame.len());
                out.extend_from_slice(frame.as_bytes());
                out
            }
            Down::To { session, frame } => {
                let mut out = stamped(TO, 8 + frame.len());
                out.extend_from_slice(&session.0.to_be_bytes());
                out.extend_from_slice(frame.as_bytes());
                out
            }
            other => {
                let body = match other {
                    Down::Close { session, code } => DownJson::Close {
                        session: *session,
                        code: *code,
                    },
                    Down::Joined { session, result } => DownJson::Joined {
                        session: *session,
                        result: result.clone(),
                    },
                    Down::Owner { epoch } => DownJson::Owner { epoch: *epoch },
                    Down::Frame(_) | Down::To { .. } => unreachable!("encoded above"),
                };
                let mut out = stamped(JSON, 64);
                // Plain data: serializing cannot fail.
                serde_json::to_writer(&mut out, &body).expect("envelopes serialize");
                out
            }
        }
    }

    /// The envelope and the epoch of the owner that sent it.
    pub fn decode(bytes: &[u8]) -> Result<(u64, Self), BadEnvelope> {
        let text = |b: &[u8]| {
            ByteString::try_from(b.to_vec()).map_err(|_| BadEnvelope("a frame is not UTF-8".into()))
        };
        let (&tag, rest) = bytes
            .split_first()
            .ok_or_else(|| BadEnvelope("empty".into()))?;
        let (epoch, rest) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| BadEnvelope("no epoch".into()))?;
        let epoch = u64::from_be_bytes(*epoch);
        let down = match tag {
            FRAME => Down::Frame(text(rest)?),
            TO if rest.len() >= 8 => {
                let (id, frame) = rest.split_at(8);
                let session = SessionId(u64::from_be_bytes(id.try_into().expect("8 bytes")));
                Down::To {
                    session,
                    frame: text(frame)?,
                }
            }
            JSON => match serde_json::from_slice(rest) {
                Ok(DownJson::Close { session, code }) => Down::Close { session, code },
                Ok(DownJson::Joined { session, result }) => Down::Joined { session, result },
                Ok(DownJson::Owner { epoch }) => Down::Owner { epoch },
                Err(e) => return Err(BadEnvelope(e.to_string())),
            },
            _ => return Err(BadEnvelope("unknown tag".into())),
        };
        Ok((epoch, down))
    }
}

impl Up {
    pub fn encode(&self) -> Vec<u8> {
        json(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, BadEnvelope> {
        match bytes.split_first() {
            Some((&JSON, body)) => {
                serde_json::from_slice(body).map_err(|e| BadEnvelope(e.to_string()))
            }
            _ => Err(BadEnvelope("unknown tag".into())),
        }
    }
}

fn json(value: &impl Serialize) -> Vec<u8> {
    // Plain data: serializing cannot fail.
    let mut out = vec![JSON];
    serde_json::to_writer(&mut out, value).expect("envelopes serialize");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_protocol::{ControlCmd, Role};
    use proptest::prelude::*;

    fn identity() -> Identity {
        Identity {
            user: Some("u1".into()),
            name: "Una".into(),
            role: Role::Viewer,
        }
    }

    proptest! {
        #[test]
        fn frames_round_trip_byte_for_byte(text in any::<String>(), session: u64, epoch: u64) {
            let frame = ByteString::from(text);
            for down in [Down::Frame(frame.clone()), Down::To { session: SessionId(session), frame }] {
                prop_assert_eq!(Down::decode(&down.encode(epoch)).unwrap(), (epoch, down));
            }
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Down::decode(&bytes);
            let _ = Up::decode(&bytes);
        }
    }

    #[test]
    fn every_other_envelope_round_trips() {
        let downs = [
            Down::Close {
                session: None,
                code: CloseCode::RoomEnded,
            },
            Down::Close {
                session: Some(SessionId(3)),
                code: CloseCode::Banned,
            },
            Down::Joined {
                session: SessionId(4),
                result: Ok(()),
            },
            Down::Joined {
                session: SessionId(5),
                result: Err(RoomError::Banned),
            },
        ];
        for down in downs {
            assert_eq!(Down::decode(&down.encode(9)).unwrap(), (9, down));
        }
        let ups = [
            Up::Join {
                node: "n1".into(),
                session: SessionId(1),
                identity: identity(),
            },
            Up::Leave {
                session: SessionId(1),
            },
            Up::Input {
                session: SessionId(1),
                input: RoomInput::Control {
                    cmd: ControlCmd::GoLive,
                    id: Some(7),
                },
            },
            Up::Alive { node: "n2".into() },
            Up::Likes { count: 250 },
        ];
        for up in ups {
            assert_eq!(Up::decode(&up.encode()).unwrap(), up);
        }
    }

    #[test]
    fn a_broadcast_is_the_frame_behind_a_tag_and_the_epoch() {
        let frame = ByteString::from(r#"{"type":"tick","at":1}"#);
        let bytes = Down::Frame(frame.clone()).encode(3);
        assert_eq!(&bytes[1..9], &3u64.to_be_bytes());
        assert_eq!(&bytes[9..], frame.as_bytes());
    }
}
