//! This node's subscriptions: one RESP3 connection (one per shard on a Redis Cluster,
//! sharded pub/sub) whose pushed messages are routed, by channel, to the actor serving
//! that room here (in order: one routing task). The client reconnects and resubscribes
//! on its own; after a disconnection — Redis restarted, or dropped this node for reading
//! too slowly (its pub/sub output buffer limit) — every route is told, since messages may
//! have been missed meanwhile.

use std::sync::Arc;

use actix::prelude::*;
use dashmap::DashMap;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use crate::conn::{Subscriber, Topology};

/// A message published on a channel this route serves.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Delivered(pub Vec<u8>);

/// The subscription connection dropped; messages may have been lost before it came back.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconnected;

/// Where one channel's messages go.
#[derive(Clone)]
pub struct Route {
    pub delivered: Recipient<Delivered>,
    pub reconnected: Recipient<Reconnected>,
}

/// The node's subscription connection and its routes.
#[derive(Clone)]
pub struct Hub {
    conn: Subscriber,
    routes: Arc<DashMap<String, Route>>,
}

impl Hub {
    /// Connects and starts routing on the current runtime.
    pub async fn connect(topology: &Topology) -> redis::RedisResult<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = topology.subscriber(tx).await?;
        let routes = Arc::new(DashMap::new());
        tokio::spawn(route(rx, routes.clone()));
        tokio::spawn(keep_alive(conn.clone()));
        Ok(Self { conn, routes })
    }

    /// Routes `channel` to `route` and subscribes to it; returns once Redis confirmed, so
    /// nothing published after that is missed.
    pub async fn subscribe(&self, channel: &str, route: Route) -> redis::RedisResult<()> {
        self.routes.insert(channel.to_owned(), route);
        self.conn.subscribe(channel).await
    }

    /// Stops routing `channel` and unsubscribes.
    pub async fn unsubscribe(&self, channel: &str) -> redis::RedisResult<()> {
        self.routes.remove(channel);
        self.conn.unsubscribe(channel).await
    }
}

/// Pings once a second: a dead connection is noticed, and the manager keeps trying to
/// reconnect (and resubscribe) even when nothing else is being sent.
async fn keep_alive(conn: Subscriber) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        every.tick().await;
        conn.ping().await;
    }
}

async fn route(mut rx: mpsc::UnboundedReceiver<PushInfo>, routes: Arc<DashMap<String, Route>>) {
    while let Some(push) = rx.recv().await {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                let [channel, payload] = push.data.as_slice() else {
                    continue;
                };
                let (Some(channel), Some(payload)) = (bytes(channel), bytes(payload)) else {
                    continue;
                };
                let Ok(channel) = std::str::from_utf8(channel) else {
                    continue;
                };
                if let Some(route) = routes.get(channel) {
                    route.delivered.do_send(Delivered(payload.to_vec()));
                }
            }
            PushKind::Disconnection => {
                for route in routes.iter() {
                    route.reconnected.do_send(Reconnected);
                }
            }
            _ => {}
        }
    }
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}
