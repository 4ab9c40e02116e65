//! The seam every room broadcast goes through on its way to the sessions that watch the
//! room. A room encodes each broadcast once and publishes it to its [`Broker`]; the
//! broker delivers it to this process's sessions of the room through the room's
//! [`Fanout`]. One node and many share this path: the in-process [`LocalBroker`] hands
//! the frame straight to the fan-out, in the room's own turn; a broker spanning
//! processes (cluster mode) also carries it to the other processes, whose copies of the
//! room deliver it to their sessions the same way.
//!
//! Replies to one session (acks, errors, the welcome) are not broadcasts: a session of
//! this process gets them in its queue directly; for a session on another process the
//! room hands them to [`Broker::send_to`].

use bytestring::ByteString;
use lockstep_protocol::CloseCode;

use crate::room::{Delivery, Durable, Fanout, SessionId};

/// Carries a room's encoded broadcasts to the sessions that watch it.
pub trait Broker: Send + Sync + 'static {
    /// Publishes `frame`, one encoded broadcast of `room`, and delivers it to this
    /// process's sessions of the room through `here`; returns what that delivery did
    /// (the room cuts the sessions it reports overflowing).
    fn publish(&self, room: &str, frame: &ByteString, here: &Fanout) -> Delivery;

    /// Delivers `frame` to `session` of `room`, a session that is not in this process
    /// (nothing happens when no process holds it any more).
    fn send_to(&self, room: &str, session: SessionId, frame: &ByteString);

    /// Closes `session` of `room` on whichever process holds it, or (`None`) every
    /// session of the room on other processes, with `code`.
    fn close(&self, room: &str, session: Option<SessionId>, code: CloseCode);

    /// Whether rooms should hand their durable state to [`Broker::checkpoint`].
    fn keeps_checkpoints(&self) -> bool {
        false
    }

    /// Keeps what `room` must not lose if its process dies (see [`Durable`]) where another
    /// process can rebuild the room from it. One process keeps nothing: the room dies
    /// with it.
    fn checkpoint(&self, _room: &str, _state: &Durable) {}
}

/// One process: every session of a room is in its fan-out, so publishing is delivering.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalBroker;

impl Broker for LocalBroker {
    fn publish(&self, _room: &str, frame: &ByteString, here: &Fanout) -> Delivery {
        here.broadcast(frame)
    }

    /// Every session is in this process: one not in the fan-out has left.
    fn send_to(&self, _room: &str, _session: SessionId, _frame: &ByteString) {}

    fn close(&self, _room: &str, _session: Option<SessionId>, _code: CloseCode) {}
}
