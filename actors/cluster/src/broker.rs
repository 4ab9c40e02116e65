//! The cluster's broker: a room's owner delivers each broadcast to its own sessions
//! through the room's fan-out, as one node does, and publishes it once to the room's
//! down channel, where every other node serving the room picks it up. Frames and closes
//! for sessions of other nodes go the same way, in the same order.

use bytestring::ByteString;
use lockstep_actors::broker::Broker;
use lockstep_actors::room::{Delivery, Fanout, SessionId};
use lockstep_protocol::CloseCode;

use crate::envelope::Down;
use crate::keys;
use crate::publisher::Publisher;

/// Publishes a room's broadcasts and remote frames to its down channel.
pub struct RedisBroker {
    publisher: Publisher,
}

impl RedisBroker {
    pub fn new(publisher: Publisher) -> Self {
        Self { publisher }
    }

    fn down(&self, room: &str, envelope: &Down) {
        self.publisher.publish(keys::down(room), envelope.encode());
    }
}

impl Broker for RedisBroker {
    fn publish(&self, room: &str, frame: &ByteString, here: &Fanout) -> Delivery {
        let delivery = here.broadcast(frame);
        self.down(room, &Down::Frame(frame.clone()));
        delivery
    }

    fn send_to(&self, room: &str, session: SessionId, frame: &ByteString) {
        let frame = frame.clone();
        self.down(room, &Down::To { session, frame });
    }

    fn close(&self, room: &str, session: Option<SessionId>, code: CloseCode) {
        self.down(room, &Down::Close { session, code });
    }
}
