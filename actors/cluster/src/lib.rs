//! Cluster mode: many Lockstep processes — nodes — sharing one Redis serve the same rooms.
//!
//! Each room has one **owner** node, holding a lease in Redis with an epoch that only
//! grows (`lease.rs`): it runs the room's core, as a single process does. Every other
//! node with sessions in the room is an **edge** (`edge.rs`): its sessions join, speak
//! and leave through the edge, which forwards all of it up the room's up channel to the
//! owner (`owner.rs`). The owner encodes each broadcast once and publishes it once, on
//! the room's down channel (`broker.rs`); every edge forwards those bytes to its local
//! sessions unchanged — one Redis message per node per broadcast, never one per viewer.
//! Frames for one session and join answers travel the same channel, in order.
//!
//! Without `cluster.redis_url` none of this runs: a process is a cluster of one.

pub mod archive;
mod broker;
pub mod config;
pub mod conn;
mod edge;
pub mod envelope;
mod hub;
pub mod keys;
mod lease;
mod owner;
mod publisher;
pub mod storage;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use dashmap::DashMap;
use lockstep_actors::broker::Broker;
use lockstep_actors::directory::RoomDirectory;
use lockstep_actors::inventory::{Epochs, SaleDirectory};
use lockstep_actors::metrics::Metrics;
use lockstep_actors::room::{Durable, Room, RoomLink};
use lockstep_actors::store::Storage;
use lockstep_protocol::RoomId;

pub use config::ClusterConfig;
pub use lease::Claim;

use crate::broker::RedisBroker;
use crate::conn::{RedisConn, Topology};
use crate::edge::{EdgeRoom, EdgeWiring, LikeRules};
use crate::hub::Hub;
use crate::lease::Leases;
use crate::owner::{OwnerLink, OwnerWiring};
use crate::publisher::Publisher;
use crate::storage::RedisStorage;

/// Why the cluster could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cluster.node_id must be 1-64 characters without `|`")]
    BadNodeId,
    #[error(
        "the Redis at cluster.redis_url does not keep every write on disk ({0}); orders acknowledged there could be lost. Run it with `appendonly yes` and `appendfsync always`, or set cluster.allow_volatile_store = true to accept that"
    )]
    VolatileStore(String),
}

/// This node's membership of the cluster.
pub struct Cluster {
    node: String,
    cfg: ClusterConfig,
    metrics: Metrics,
    leases: Leases,
    hub: Hub,
    publisher: Publisher,
    broker: Arc<RedisBroker>,
    edges: Arc<DashMap<String, Addr<EdgeRoom>>>,
    /// Rooms this node owns: the link serving each to the other nodes, and its epoch.
    owned: Arc<DashMap<String, (Addr<OwnerLink>, u64)>>,
    storage: RedisStorage,
    /// The node's sales, which the rooms it owns run for buyers on other nodes.
    sales: std::sync::OnceLock<Arc<SaleDirectory>>,
    /// The node's rooms, where a room taken over from a silent owner is started.
    rooms: std::sync::OnceLock<Arc<RoomDirectory>>,
    /// Itself, for the callbacks its edges hold.
    this: std::sync::Weak<Cluster>,
    /// The placement locks (see [`Cluster::placing`]).
    stripes: (
        std::collections::hash_map::RandomState,
        Vec<tokio::sync::Mutex<()>>,
    ),
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).finish()
    }
}

impl Cluster {
    /// Joins the cluster on `cfg.redis_url` (its background tasks run on the current
    /// runtime).
    pub async fn connect(
        cfg: &ClusterConfig,
        metrics: &Metrics,
    ) -> Result<Arc<Self>, ClusterError> {
        let node = if cfg.node_id.is_empty() {
            format!("n-{:016x}", rand::random::<u64>())
        } else {
            cfg.node_id.clone()
        };
        if node.is_empty() || node.len() > 64 || node.contains('|') {
            return Err(ClusterError::BadNodeId);
        }
        let topology = Topology::discover(&cfg.redis_url).await?;
        let conn = topology.connect().await?;
        let storage_conn = conn.clone();
        if !cfg.allow_volatile_store {
            check_persistence(&mut conn.clone()).await?;
        }
        let hub = Hub::connect(&topology, metrics).await?;
        let publisher = Publisher::start(conn.clone(), cfg.publish_queue, metrics);
        let owned: Arc<DashMap<String, (Addr<OwnerLink>, u64)>> = Arc::new(DashMap::new());
        Ok(Arc::new_cyclic(|this| Self {
            leases: Leases::new(conn, node.clone(), cfg.lease_ms),
            broker: Arc::new(RedisBroker::new(publisher.clone(), epochs_of(&owned))),
            node,
            cfg: cfg.clone(),
            metrics: metrics.clone(),
            hub,
            publisher,
            edges: Arc::new(DashMap::new()),
            owned,
            storage: RedisStorage::new(storage_conn, cfg.inventory_replicas),
            sales: std::sync::OnceLock::new(),
            rooms: std::sync::OnceLock::new(),
            this: this.clone(),
            stripes: (
                std::collections::hash_map::RandomState::new(),
                (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            ),
        }))
    }

    /// Whether viewers of a room this node does not run get their video from this node's
    /// own SFU (`cluster.edge_media`).
    pub fn edge_media(&self) -> bool {
        self.cfg.edge_media
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Tells the other nodes where this node answers HTTP (`url`), for as long as it runs:
    /// kept in Redis with an expiry, renewed every alive interval.
    pub fn advertise(&self, url: String) {
        let (mut conn, key) = (self.leases.conn(), keys::node_url(&self.node));
        let every = Duration::from_millis(self.cfg.alive_interval_ms.max(1));
        let ttl = self.cfg.node_timeout_ms.max(every.as_millis() as u64 * 3);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let set: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(&key)
                    .arg(&url)
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = set {
                    tracing::warn!(error = %e, "advertising this node's address failed");
                }
            }
        });
    }

    /// The node running `room` and where it answers HTTP (`None` when it has not said, or
    /// no longer does), when another node runs it.
    pub async fn owner_url(
        &self,
        room: &str,
    ) -> Result<Option<(String, Option<String>)>, ClusterError> {
        let Some((node, _)) = self.leases.owner(room).await? else {
            return Ok(None);
        };
        if node == self.node {
            return Ok(None);
        }
        let url: Option<String> = redis::cmd("GET")
            .arg(keys::node_url(&node))
            .query_async(&mut self.leases.conn())
            .await?;
        Ok(Some((node, url)))
    }

    /// Where node `node` answers HTTP, if it said (and is alive).
    pub async fn node_url(&self, node: &str) -> Result<Option<String>, ClusterError> {
        Ok(redis::cmd("GET")
            .arg(keys::node_url(node))
            .query_async(&mut self.leases.conn())
            .await?)
    }

    /// The broker the rooms this node owns publish through.
    pub fn broker(&self) -> Arc<dyn Broker> {
        self.broker.clone()
    }

    /// Takes the room for this node when nobody owns it, or says who does.
    ///
    /// Hold [`Cluster::placing`] around claiming and starting the room, so that this
    /// node's own concurrent openings see the room running.
    pub async fn claim(&self, room: &str) -> Result<Claim, ClusterError> {
        let running = self
            .rooms
            .get()
            .is_some_and(|rooms| rooms.get(room).is_some());
        Ok(self.leases.claim(room, running).await?)
    }

    /// This node's lock on placing `room` (claiming it, starting it here): one placement
    /// of a room at a time (locks are striped: a few rooms share each).
    pub async fn placing(&self, room: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::BuildHasher;
        let stripe = self.stripes.0.hash_one(room) as usize % self.stripes.1.len();
        self.stripes.1[stripe].lock().await
    }

    /// What the room's last owner left of it (its durable state), unless it ended.
    pub async fn checkpoint(&self, room: &str) -> Result<Option<Durable>, ClusterError> {
        let checkpoint: Option<String> = redis::cmd("HGET")
            .arg(keys::checkpoint(room))
            .arg("state")
            .query_async(&mut self.leases.conn())
            .await?;
        Ok(checkpoint
            .and_then(|c| serde_json::from_str::<Durable>(&c).ok())
            .filter(|d| d.state != lockstep_protocol::RoomState::Ended)
            .map(|mut d| {
                // The video ran on the old owner's SFU: it is away until republished.
                d.media.live = false;
                d
            }))
    }

    /// Serves `room`, which this node owns under `epoch` and runs as `addr`, to the other
    /// nodes (once; later calls for the same running room do nothing).
    pub fn serve_owned(&self, room: &str, epoch: u64, addr: Addr<Room>) {
        if self
            .owned
            .get(room)
            .is_some_and(|e| e.0.connected() && e.1 == epoch)
        {
            return;
        }
        let Some(sales) = self.sales.get().cloned() else {
            tracing::error!(
                room,
                "the cluster has no sale directory; not serving the room"
            );
            return;
        };
        let room_sales = sales.clone();
        let wiring = OwnerWiring {
            epochs: epochs_of(&self.owned),
            alive_every: Duration::from_millis(self.cfg.alive_interval_ms.max(1)),
            sales,
            hub: self.hub.clone(),
            publisher: self.publisher.clone(),
            leases: self.leases.clone(),
            node_timeout: Duration::from_millis(self.cfg.node_timeout_ms.max(1)),
            renew_every: Duration::from_millis((self.cfg.lease_ms / 3).max(1)),
        };
        let link = OwnerLink::new(room.to_owned(), epoch, addr, wiring).start();
        self.owned.insert(room.to_owned(), (link, epoch));
        // The room's sales run where the room runs: start those created while no node
        // (or another one) ran it, so their reservations expire and their end comes.
        let room = room.to_owned();
        actix_rt::spawn(async move {
            if let Err(e) = room_sales.run_room(&room).await {
                tracing::warn!(room, error = %e, "starting the room's sales failed");
            }
        });
    }

    /// The node's sale and room directories (set once at startup, before rooms open).
    pub fn set_directories(&self, sales: Arc<SaleDirectory>, rooms: Arc<RoomDirectory>) {
        let _ = self.sales.set(sales);
        let _ = self.rooms.set(rooms);
    }

    /// Takes `room` over if its lease lapsed (its owner died or stalled): runs it here
    /// from the checkpoint its last owner left, under the next epoch. Its edges — this
    /// node's included — then join their sessions to it.
    pub async fn take_over(&self, room: &str) -> Result<(), ClusterError> {
        let Some(rooms) = self.rooms.get() else {
            return Ok(());
        };
        let Ok(id) = RoomId::parse(room) else {
            return Ok(());
        };
        let _placing = self.placing(room).await;
        if rooms.get(room).is_some() {
            return Ok(());
        }
        let Claim::Owner { epoch } = self.claim(room).await? else {
            return Ok(());
        };
        let durable = self.checkpoint(room).await?;
        tracing::warn!(
            room,
            epoch,
            from_checkpoint = durable.is_some(),
            "took the room over"
        );
        let addr = rooms.adopt(&id, durable);
        self.serve_owned(room, epoch, addr);
        Ok(())
    }

    /// The store the nodes share (catalogue, sales, orders), in Redis.
    pub fn storage(&self) -> Arc<dyn Storage> {
        Arc::new(self.storage.clone())
    }

    /// Where this node's rooms hand their record (replay, analytics): the shared Redis.
    pub fn archive(
        &self,
        cfg: &lockstep_actors::config::ArchiveConfig,
        metrics: &Metrics,
    ) -> Arc<dyn lockstep_actors::archive::Archive> {
        Arc::new(archive::start(
            self.storage.conn(),
            self.node.clone(),
            cfg,
            metrics,
        ))
    }

    /// Every room's replays, as any node reads them.
    pub fn replays(&self) -> archive::read::RedisReplays {
        archive::read::RedisReplays::new(self.storage.conn(), self.storage.clone())
    }

    /// The epoch under which this node runs a room, `None` for rooms it does not own:
    /// sales run only on their room's owner and stamp their writes with it.
    pub fn epochs(&self) -> Epochs {
        epochs_of(&self.owned)
    }

    /// This node's edge of `room`, started if needed; `None` when no node owns the room
    /// (it is not open).
    pub async fn edge(&self, room: &str) -> Result<Option<RoomLink>, ClusterError> {
        if let Some(edge) = self.edges.get(room).filter(|e| e.connected()) {
            return Ok(Some(link(&edge)));
        }
        let Some((owner, epoch)) = self.leases.owner(room).await? else {
            return Ok(None);
        };
        // This node holds the lease of a room it does not run (it restarted within the
        // lease): it runs the room again at once, under the next epoch.
        if owner == self.node
            && let Some(rooms) = self.rooms.get()
        {
            self.take_over(room).await?;
            return Ok(rooms.get(room).map(Into::into));
        }
        let start = || {
            let edges = self.edges.clone();
            let this = self.this.clone();
            let likes = self.rooms.get().map_or(
                LikeRules {
                    max_per_msg: 0,
                    every: Duration::from_millis(100),
                },
                |rooms| LikeRules {
                    max_per_msg: rooms.config().like_max_per_msg,
                    every: Duration::from_millis(rooms.config().tick_ms.max(1)),
                },
            );
            let wiring = EdgeWiring {
                node: self.node.clone(),
                metrics: self.metrics.clone(),
                likes,
                hub: self.hub.clone(),
                publisher: self.publisher.clone(),
                alive_every: Duration::from_millis(self.cfg.alive_interval_ms.max(1)),
                join_timeout: Duration::from_millis(self.cfg.join_timeout_ms.max(1)),
                owner_timeout: Duration::from_millis(
                    self.cfg.lease_ms + self.cfg.alive_interval_ms,
                ),
                take_over: Arc::new(move |room: String| {
                    if let Some(cluster) = this.upgrade() {
                        actix_rt::spawn(async move {
                            if let Err(e) = cluster.take_over(&room).await {
                                tracing::warn!(room, error = %e, "taking the room over failed");
                            }
                        });
                    }
                }),
                on_stop: Box::new(move |room, addr| {
                    edges.remove_if(room, |_, current| current == addr);
                }),
            };
            EdgeRoom::new(room.to_owned(), epoch, wiring).start()
        };
        let entry = self
            .edges
            .entry(room.to_owned())
            .and_modify(|e| {
                if !e.connected() {
                    *e = start();
                }
            })
            .or_insert_with(start)
            .clone();
        Ok(Some(link(&entry)))
    }
}

fn epochs_of(owned: &Arc<DashMap<String, (Addr<OwnerLink>, u64)>>) -> Epochs {
    let owned = owned.clone();
    Arc::new(move |room: &str| owned.get(room).filter(|e| e.0.connected()).map(|e| e.1))
}

fn link(edge: &Addr<EdgeRoom>) -> RoomLink {
    RoomLink {
        join: edge.clone().recipient(),
        inbound: edge.clone().recipient(),
        leave: edge.clone().recipient(),
        buy: Some(edge.clone().recipient()),
    }
}

/// Refuses a Redis that could lose acknowledged writes (every primary of a Cluster is
/// asked).
async fn check_persistence(conn: &mut RedisConn) -> Result<(), ClusterError> {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("GET").arg("append*");
    let answers = conn
        .on_every_primary(cmd)
        .await
        .map_err(|e| ClusterError::VolatileStore(format!("its settings cannot be read: {e}")))?;
    for answer in answers {
        let settings: std::collections::HashMap<String, String> = redis::from_redis_value(answer)
            .map_err(|e| {
            ClusterError::VolatileStore(format!("its settings cannot be read: {e}"))
        })?;
        let get = |name: &str| settings.get(name).cloned().unwrap_or_default();
        let (appendonly, fsync) = (get("appendonly"), get("appendfsync"));
        if appendonly != "yes" || fsync != "always" {
            return Err(ClusterError::VolatileStore(format!(
                "appendonly {appendonly}, appendfsync {fsync}"
            )));
        }
    }
    Ok(())
}
