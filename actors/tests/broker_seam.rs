//! Every room broadcast reaches sessions through the room directory's broker: a broker
//! that counts what it publishes, around the in-process one, sees each broadcast frame a
//! viewer receives, and replies to one session never go through it.
#![cfg(not(lockstep_loom))]

use std::sync::Mutex;
use std::time::Duration;

use bytestring::ByteString;
use lockstep_actors::broker::{Broker, LocalBroker};
use lockstep_actors::config::RoomConfig;
use lockstep_actors::directory::{RoomDirectory, RoomOptions};
use lockstep_actors::metrics::Metrics;
use lockstep_actors::outbound::Outbound;
use lockstep_actors::room::{Delivery, Fanout, Identity, Inbound, Join, RoomInput, SessionId};
use lockstep_actors::sync::Arc;
use lockstep_protocol::{CloseCode, ControlCmd, Role, RoomId, ServerMsg};
use lockstep_runtime::ArbiterPool;

/// Records every frame published, then delivers it as the in-process broker does.
#[derive(Default)]
struct Recording {
    published: Mutex<Vec<(String, ByteString)>>,
}

impl Broker for Recording {
    fn publish(&self, room: &str, frame: &ByteString, here: &Fanout) -> Delivery {
        let mut published = self.published.lock().unwrap();
        published.push((room.to_owned(), frame.clone()));
        LocalBroker.publish(room, frame, here)
    }

    fn send_to(&self, room: &str, session: SessionId, frame: &ByteString) {
        LocalBroker.send_to(room, session, frame)
    }

    fn close(&self, room: &str, session: Option<SessionId>, code: CloseCode) {
        LocalBroker.close(room, session, code)
    }
}

fn identity(user: &str, role: Role) -> Identity {
    Identity {
        user: Some(user.into()),
        name: user.into(),
        role,
    }
}

/// The frames in `queue` once `until` holds for them (or after five seconds).
async fn frames(queue: &Outbound, until: impl Fn(&[ServerMsg]) -> bool) -> Vec<ServerMsg> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut batch = Vec::new();
        queue.drain(&mut batch);
        got.extend(batch.iter().map(|f| serde_json::from_str(f).unwrap()));
        if until(&got) || tokio::time::Instant::now() > deadline {
            return got;
        }
        let _ = tokio::time::timeout_at(deadline, queue.wait()).await;
    }
}

#[actix_rt::test]
async fn every_broadcast_goes_through_the_broker_and_replies_do_not() {
    let broker = std::sync::Arc::new(Recording::default());
    let rooms = RoomDirectory::new(
        RoomConfig::default(),
        ArbiterPool::new(vec![actix_rt::Arbiter::current()]),
        broker.clone(),
        None,
        Metrics::new(),
        10,
    );
    let id = RoomId::parse("seam").unwrap();
    let (room, _) = rooms.open(&id, &RoomOptions::default()).unwrap();
    let (anchor, viewer) = (Arc::new(Outbound::new(64)), Arc::new(Outbound::new(64)));
    for (session, who, queue) in [
        (1, identity("anchor", Role::Anchor), &anchor),
        (2, identity("viewer", Role::Viewer), &viewer),
    ] {
        let join = Join {
            session: SessionId(session),
            identity: who,
            outbound: Some(queue.clone()),
        };
        room.send(join).await.unwrap().unwrap();
    }
    for (session, input) in [
        (
            1,
            RoomInput::Control {
                cmd: ControlCmd::GoLive,
                id: Some(1),
            },
        ),
        (
            2,
            RoomInput::Comment {
                text: "hello".into(),
                id: Some(2),
            },
        ),
    ] {
        let session = SessionId(session);
        room.send(Inbound { session, input }).await.unwrap();
    }
    let seen = frames(&viewer, |got| {
        got.iter()
            .any(|m| matches!(m, ServerMsg::Tick { comments, .. } if !comments.is_empty()))
    })
    .await;
    let published = broker.published.lock().unwrap().clone();
    assert!(published.iter().all(|(room, _)| room == "seam"));
    let published: Vec<ServerMsg> = published
        .iter()
        .map(|(_, f)| serde_json::from_str(f).unwrap())
        .collect();
    let broadcasts: Vec<&ServerMsg> = seen
        .iter()
        .filter(|m| !matches!(m, ServerMsg::Welcome { .. } | ServerMsg::Ack { .. }))
        .collect();
    assert!(
        broadcasts
            .iter()
            .any(|m| matches!(m, ServerMsg::RoomState { .. })),
        "{seen:?}"
    );
    assert!(
        broadcasts
            .iter()
            .any(|m| matches!(m, ServerMsg::Tick { .. })),
        "{seen:?}"
    );
    for m in &broadcasts {
        assert!(
            published.contains(m),
            "{m:?} reached the viewer without the broker"
        );
    }
    assert!(
        !published
            .iter()
            .any(|m| matches!(m, ServerMsg::Welcome { .. } | ServerMsg::Ack { .. })),
        "replies to one session are not broadcasts: {published:?}"
    );
}
