//! The seam every room broadcast goes through on its way to the sessions that watch the
//! room. A room encodes each broadcast once and publishes it to its [`Broker`]; the
//! broker delivers it to this process's sessions of the room through the room's
//! [`Fanout`]. One node and many share this path: the in-process [`LocalBroker`] hands
//! the frame straight to the fan-out, in the room's own turn; a broker spanning
//! processes (cluster mode) also carries it to the other processes, whose copies of the
//! room deliver it to their sessions the same way.
//!
//! Replies to one session (acks, errors, the welcome) are not broadcasts: they go to that
//! session's queue directly, wherever the session lives.

use bytestring::ByteString;

use crate::room::{Delivery, Fanout};

/// Carries a room's encoded broadcasts to the sessions that watch it.
pub trait Broker: Send + Sync + 'static {
    /// Publishes `frame`, one encoded broadcast of `room`, and delivers it to this
    /// process's sessions of the room through `here`; returns what that delivery did
    /// (the room cuts the sessions it reports overflowing).
    fn publish(&self, room: &str, frame: &ByteString, here: &Fanout) -> Delivery;
}

/// One process: every session of a room is in its fan-out, so publishing is delivering.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalBroker;

impl Broker for LocalBroker {
    fn publish(&self, _room: &str, frame: &ByteString, here: &Fanout) -> Delivery {
        here.broadcast(frame)
    }
}
