//! Publishing to Redis, in order: every message this node publishes (and every room
//! checkpoint) goes through one
//! bounded queue and one task, which sends whatever is waiting as one pipeline (on a Redis
//! Cluster, one pipeline per hash tag: a pipeline stays on one shard). A room's messages
//! therefore reach its channel in the order the room produced them, and a burst costs one
//! round trip, not one per message.

use std::collections::BTreeMap;

use lockstep_actors::metrics::Metrics;
use prometheus::IntCounter;

use tokio::sync::{mpsc, oneshot};

use crate::conn::{RedisConn, hash_tag};

/// Most messages sent in one pipeline.
const MAX_BATCH: usize = 512;

/// A command, the key it is about (its hash tag picks the shard), and who wants to know
/// whether Redis took it.
struct Queued {
    cmd: redis::Cmd,
    key: String,
    confirm: Option<oneshot::Sender<bool>>,
}

/// The handle the node's rooms and edges publish through; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<Queued>,
    publish: &'static str,
    /// Messages dropped because the queue was full.
    dropped: IntCounter,
}

impl Publisher {
    /// Starts the publishing task on the current runtime.
    pub fn start(conn: RedisConn, capacity: usize, metrics: &Metrics) -> Self {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        let lost = |reason| metrics.cluster_publish_lost.with_label_values(&[reason]);
        let publish = conn.publish_command();
        tokio::spawn(run(conn, rx, lost("redis_error")));
        Self {
            queue,
            publish,
            dropped: lost("queue_full"),
        }
    }

    /// Queues `payload` for `channel`; never waits. A full queue drops it (counted).
    pub fn publish(&self, channel: String, payload: Vec<u8>) {
        let mut cmd = redis::cmd(self.publish);
        cmd.arg(&channel).arg(payload);
        self.command(cmd, channel);
    }

    /// Queues any command about `key`, in order with the messages; never waits.
    pub fn command(&self, cmd: redis::Cmd, key: String) {
        let queued = Queued {
            cmd,
            key,
            confirm: None,
        };
        if self.queue.try_send(queued).is_err() {
            self.dropped.inc();
        }
    }

    /// [`Publisher::publish`], resolving to whether Redis took the message (`false` when
    /// it was dropped or Redis could not be reached).
    pub fn publish_confirmed(&self, channel: String, payload: Vec<u8>) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let mut cmd = redis::cmd(self.publish);
        cmd.arg(&channel).arg(payload);
        let queued = Queued {
            cmd,
            key: channel,
            confirm: Some(tx),
        };
        if let Err(
            mpsc::error::TrySendError::Full(refused) | mpsc::error::TrySendError::Closed(refused),
        ) = self.queue.try_send(queued)
        {
            self.dropped.inc();
            if let Some(tx) = refused.confirm {
                let _ = tx.send(false);
            }
        }
        rx
    }
}

async fn run(mut conn: RedisConn, mut rx: mpsc::Receiver<Queued>, failed: IntCounter) {
    let cluster = conn.is_cluster();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            let Ok(next) = rx.try_recv() else {
                break;
            };
            batch.push(next);
        }
        // One pipeline per shard on a Cluster (grouped by hash tag, order kept within
        // each), one for everything on a single server.
        let mut groups: BTreeMap<Vec<u8>, Vec<Queued>> = BTreeMap::new();
        for queued in batch {
            let group = if cluster {
                hash_tag(queued.key.as_bytes()).to_vec()
            } else {
                Vec::new()
            };
            groups.entry(group).or_default().push(queued);
        }
        for group in groups.into_values() {
            send(&mut conn, group, &failed).await;
        }
    }
}

async fn send(conn: &mut RedisConn, group: Vec<Queued>, failed: &IntCounter) {
    let mut pipe = redis::pipe();
    let count = group.len();
    let mut confirms = Vec::new();
    for queued in group {
        pipe.add_command(queued.cmd).ignore();
        confirms.extend(queued.confirm);
    }
    let taken = match pipe.query_async::<()>(conn).await {
        Ok(()) => true,
        Err(e) => {
            failed.inc_by(count as u64);
            tracing::warn!(error = %e, messages = count, "publishing to Redis failed");
            false
        }
    };
    for confirm in confirms {
        let _ = confirm.send(taken);
    }
}
