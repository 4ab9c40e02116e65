//! Publishing to Redis, in order: every message this node publishes (and every room
//! checkpoint) goes through one
//! bounded queue and one task, which sends whatever is waiting as one pipeline. A room's
//! messages therefore reach its channel in the order the room produced them, and a burst
//! costs one round trip, not one per message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};

/// Most messages sent in one pipeline.
const MAX_BATCH: usize = 512;

/// A command, and who wants to know whether Redis took it.
type Queued = (redis::Cmd, Option<oneshot::Sender<bool>>);

/// The handle the node's rooms and edges publish through; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<Queued>,
    dropped: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Publisher {
    /// Starts the publishing task on the current runtime.
    pub fn start(conn: ConnectionManager, capacity: usize) -> Self {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        let failed = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(conn, rx, failed.clone()));
        Self {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
            failed,
        }
    }

    /// Queues `payload` for `channel`; never waits. A full queue drops it (counted).
    pub fn publish(&self, channel: String, payload: Vec<u8>) {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(payload);
        self.command(cmd);
    }

    /// Queues any command, in order with the messages; never waits.
    pub fn command(&self, cmd: redis::Cmd) {
        if self.queue.try_send((cmd, None)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// [`Publisher::publish`], resolving to whether Redis took the message (`false` when
    /// it was dropped or Redis could not be reached).
    pub fn publish_confirmed(&self, channel: String, payload: Vec<u8>) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(payload);
        if let Err(
            mpsc::error::TrySendError::Full((_, Some(tx)))
            | mpsc::error::TrySendError::Closed((_, Some(tx))),
        ) = self.queue.try_send((cmd, Some(tx)))
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(false);
        }
        rx
    }

    /// Messages dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Messages lost because Redis refused or could not be reached.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

async fn run(mut conn: ConnectionManager, mut rx: mpsc::Receiver<Queued>, failed: Arc<AtomicU64>) {
    while let Some((first, confirm)) = rx.recv().await {
        let mut pipe = redis::pipe();
        let mut count = 1;
        let mut confirms: Vec<oneshot::Sender<bool>> = confirm.into_iter().collect();
        pipe.add_command(first).ignore();
        while count < MAX_BATCH {
            let Ok((next, confirm)) = rx.try_recv() else {
                break;
            };
            pipe.add_command(next).ignore();
            confirms.extend(confirm);
            count += 1;
        }
        let taken = match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => true,
            Err(e) => {
                failed.fetch_add(count as u64, Ordering::Relaxed);
                tracing::warn!(error = %e, messages = count, "publishing to Redis failed");
                false
            }
        };
        for confirm in confirms {
            let _ = confirm.send(taken);
        }
    }
}
