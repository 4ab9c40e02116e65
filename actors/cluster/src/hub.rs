//! This node's subscriptions: one RESP3 connection (one per shard on a Redis Cluster,
//! sharded pub/sub) whose pushed messages are routed, by channel, to the actor serving
//! that room here (in order: one routing task). The client reconnects and resubscribes
//! on its own; after a disconnection — Redis restarted, or dropped this node for reading
//! too slowly (its pub/sub output buffer limit) — the hub subscribes every route again
//! itself and, once Redis confirmed, tells every route, since messages may have been
//! missed meanwhile (an edge then joins its sessions again for a fresh snapshot).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::prelude::*;
use dashmap::DashMap;
use lockstep_actors::metrics::Metrics;
use prometheus::IntCounter;
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

impl Route {
    /// The route to actor `addr`.
    pub fn of<A>(addr: Addr<A>) -> Self
    where
        A: Actor + Handler<Delivered> + Handler<Reconnected>,
        A::Context: actix::dev::ToEnvelope<A, Delivered> + actix::dev::ToEnvelope<A, Reconnected>,
    {
        Self {
            delivered: addr.clone().recipient(),
            reconnected: addr.recipient(),
        }
    }
}

/// The node's subscription connection and its routes.
#[derive(Clone)]
pub struct Hub {
    conn: Subscriber,
    routes: Arc<DashMap<String, Route>>,
}

impl Hub {
    /// Connects and starts routing on the current runtime.
    pub async fn connect(topology: &Topology, metrics: &Metrics) -> redis::RedisResult<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = topology.subscriber(tx).await?;
        let routes = Arc::new(DashMap::new());
        let recovery = Recovery {
            conn: conn.clone(),
            routes: routes.clone(),
            running: Arc::new(AtomicBool::new(false)),
            requested: Arc::default(),
            count: metrics.cluster_resubscribes.clone(),
        };
        tokio::spawn(route(rx, routes.clone(), recovery.clone()));
        tokio::spawn(keep_alive(conn.clone(), recovery));
        Ok(Self { conn, routes })
    }

    /// Routes `channel` to `route` and subscribes to it; returns once Redis confirmed, so
    /// nothing published after that is missed.
    pub async fn subscribe(&self, channel: &str, route: Route) -> redis::RedisResult<()> {
        self.routes.insert(channel.to_owned(), route);
        self.conn.subscribe(channel).await
    }

    /// Stops routing `channel` to `route` and unsubscribes — unless the channel routes
    /// to someone else by now (a newer owner or edge of the room on this node), whose
    /// subscription stays.
    pub async fn unsubscribe(&self, channel: &str, route: &Route) -> redis::RedisResult<()> {
        let mine = self
            .routes
            .remove_if(channel, |_, current| current.delivered == route.delivered)
            .is_some();
        if mine {
            self.conn.unsubscribe(channel).await
        } else {
            Ok(())
        }
    }
}

/// Pings once a second: a dead connection is noticed, and the client keeps trying to
/// reconnect (and resubscribe) even when nothing else is being sent; a replaced Cluster
/// connection subscribes every route again.
async fn keep_alive(conn: Subscriber, recovery: Recovery) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        every.tick().await;
        if conn.ping().await {
            recovery.start();
        }
    }
}

/// Subscribing every route again after a disconnection, then telling them.
#[derive(Clone)]
struct Recovery {
    conn: Subscriber,
    routes: Arc<DashMap<String, Route>>,
    /// Whether a recovery is under way (a later disconnection makes it go round again).
    running: Arc<AtomicBool>,
    /// Disconnections reported so far.
    requested: Arc<std::sync::atomic::AtomicU64>,
    count: IntCounter,
}

impl Recovery {
    fn start(&self) {
        self.requested.fetch_add(1, Ordering::AcqRel);
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let handling = this.requested.load(Ordering::Acquire);
                this.resubscribe().await;
                this.count.inc();
                for route in this.routes.iter() {
                    route.reconnected.do_send(Reconnected);
                }
                if this.requested.load(Ordering::Acquire) != handling {
                    continue;
                }
                this.running.store(false, Ordering::Release);
                // A disconnection reported just now found the recovery still running:
                // go round again unless another recovery took it.
                if this.requested.load(Ordering::Acquire) == handling
                    || this.running.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            }
        });
    }

    /// Subscribes every route again until Redis confirmed them all.
    async fn resubscribe(&self) {
        let mut wait = Duration::from_millis(50);
        loop {
            let channels: Vec<String> = self.routes.iter().map(|r| r.key().clone()).collect();
            let mut all = true;
            for channel in &channels {
                all &= self.conn.subscribe(channel).await.is_ok();
            }
            if all {
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
    }
}

async fn route(
    mut rx: mpsc::UnboundedReceiver<PushInfo>,
    routes: Arc<DashMap<String, Route>>,
    recovery: Recovery,
) {
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
            PushKind::Disconnection => recovery.start(),
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
