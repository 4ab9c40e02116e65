//! `[cluster]`: whether this process is a node of a cluster, and how it behaves in one.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The Redis the nodes share, e.g. `redis://127.0.0.1:6379`, or a comma-separated
    /// list of a Redis Cluster's seed nodes (a single URL of a Cluster node works too:
    /// the node reports `cluster_enabled`). Empty: one process, no Redis (the default).
    pub redis_url: String,
    /// This node's name in the cluster; empty: a random one at startup.
    pub node_id: String,
    /// How long a room's ownership lasts without renewal; the owner renews it every third.
    pub lease_ms: u64,
    /// How often a node tells a room's owner it still serves the room.
    pub alive_interval_ms: u64,
    /// A node not heard from for this long has left: the owner drops its sessions.
    pub node_timeout_ms: u64,
    /// How long a session on one node waits for the owner to answer its join.
    pub join_timeout_ms: u64,
    /// Messages waiting to be published to Redis before new ones are dropped.
    pub publish_queue: usize,
    /// Orders are stored in this Redis: at startup a node refuses to run on one that does
    /// not keep every write on disk (`appendonly yes`, `appendfsync always`) unless this
    /// is true (tests, demos).
    pub allow_volatile_store: bool,
    /// Replicas that must have each sale write before its buyers are answered (`WAIT`);
    /// 0: the primary's disk is enough.
    pub inventory_replicas: u32,
    /// Where the other nodes reach this node's HTTP API (e.g. `http://10.0.0.5:8080`),
    /// to forward requests about rooms it runs; empty: `http://` + the bound address,
    /// which must then be a concrete one (not 0.0.0.0).
    pub advertise_url: String,
    /// Video for viewers on a node that does not run their room comes from this node's
    /// own SFU, which pulls the room's stream once from the room's node (so a room's
    /// video grows with the nodes); false: from the room's node's SFU directly.
    pub edge_media: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            node_id: String::new(),
            lease_ms: 10_000,
            alive_interval_ms: 1_000,
            node_timeout_ms: 5_000,
            join_timeout_ms: 5_000,
            publish_queue: 100_000,
            allow_volatile_store: false,
            inventory_replicas: 0,
            advertise_url: String::new(),
            edge_media: true,
        }
    }
}

impl ClusterConfig {
    /// Whether this process is a node of a cluster.
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }
}
