//! The cluster's broker: a room's owner delivers each broadcast to its own sessions
//! through the room's fan-out, as one node does, and publishes it once to the room's
//! down channel, where every other node serving the room picks it up. Frames and closes
//! for sessions of other nodes go the same way, in the same order.

use bytestring::ByteString;
use lockstep_actors::broker::Broker;
use lockstep_actors::inventory::Epochs;
use lockstep_actors::room::{Delivery, Durable, Fanout, SessionId};
use lockstep_protocol::CloseCode;

use crate::envelope::Down;
use crate::keys;
use crate::publisher::Publisher;

/// Keeps a checkpoint unless one of a newer owner is there (fencing).
const CHECKPOINT: &str = r"
local e = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if tonumber(ARGV[1]) < e then return 0 end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'state', ARGV[2])
return 1
";

/// Publishes a room's broadcasts and remote frames to its down channel, and keeps its
/// checkpoints.
pub struct RedisBroker {
    publisher: Publisher,
    epochs: Epochs,
}

impl RedisBroker {
    pub fn new(publisher: Publisher, epochs: Epochs) -> Self {
        Self { publisher, epochs }
    }

    /// Publishes `envelope` stamped with this node's epoch for the room; a node that no
    /// longer owns the room says nothing.
    fn down(&self, room: &str, envelope: &Down) {
        if let Some(epoch) = (self.epochs)(room) {
            self.publisher
                .publish(keys::down(room), envelope.encode(epoch));
        }
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

    fn keeps_checkpoints(&self) -> bool {
        true
    }

    fn checkpoint(&self, room: &str, state: &Durable) {
        // A node that no longer owns the room keeps nothing of it.
        let Some(epoch) = (self.epochs)(room) else {
            return;
        };
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CHECKPOINT)
            .arg(1)
            .arg(keys::checkpoint(room))
            .arg(epoch)
            .arg(serde_json::to_string(state).expect("room state serializes"));
        self.publisher.command(cmd, keys::checkpoint(room));
    }
}
