//! Each sale's writes reach Redis in the order its inventory actor handed them over, one
//! script call at a time: a sale's answers depend on every earlier flush being durable,
//! so a flush must not overtake the one before it, and once one fails the later ones are
//! refused (the sale is rebuilt from what Redis holds). Flushes that queue up while one is
//! in flight go together in the next call (group commit: the batch grows with the load).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lockstep_actors::store::{SaleWrites, StoreError};
use tokio::sync::{mpsc, oneshot};

use super::sales;
use crate::conn::RedisConn;

/// Most flushes merged into one script call.
const MAX_MERGED: usize = 64;
/// A sale's writer task ends after this long without a write.
const IDLE: Duration = Duration::from_secs(30);

type Answer = oneshot::Sender<Result<(), StoreError>>;
type Queue = mpsc::UnboundedSender<(SaleWrites, Answer)>;

/// The writer tasks of the sales being written, and the sales whose last write failed.
#[derive(Clone, Default)]
pub(super) struct Writers {
    queues: Arc<Mutex<HashMap<String, Queue>>>,
    failing: Arc<Mutex<BTreeSet<String>>>,
}

impl Writers {
    /// Queues `batch` behind the sale's earlier ones (at call time, so the order is the
    /// caller's); the answer comes once it is durable or refused.
    pub fn write(
        &self,
        conn: &RedisConn,
        replicas: u32,
        batch: SaleWrites,
    ) -> oneshot::Receiver<Result<(), StoreError>> {
        let (answer, answered) = oneshot::channel();
        let mut queues = lock(&self.queues);
        let sale = batch.sale_id.clone();
        let queue = queues.entry(sale.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(self.clone().run(sale, conn.clone(), replicas, rx));
            tx
        });
        // The task only ends after taking its queue out of the map under this lock.
        let _ = queue.send((batch, answer));
        answered
    }

    pub fn failing(&self) -> MutexGuard<'_, BTreeSet<String>> {
        lock(&self.failing)
    }

    async fn run(
        self,
        sale: String,
        mut conn: RedisConn,
        replicas: u32,
        mut rx: mpsc::UnboundedReceiver<(SaleWrites, Answer)>,
    ) {
        loop {
            let first = match tokio::time::timeout(IDLE, rx.recv()).await {
                Ok(Some(first)) => first,
                Ok(None) => return,
                Err(_) => {
                    // Idle: leave the map, unless a write came in meanwhile (writes are
                    // queued under the same lock, so none can arrive after this).
                    let mut queues = lock(&self.queues);
                    if rx.is_empty() {
                        queues.remove(&sale);
                        return;
                    }
                    continue;
                }
            };
            let mut group = vec![first];
            while group.len() < MAX_MERGED {
                let Ok(next) = rx.try_recv() else { break };
                group.push(next);
            }
            self.commit(&mut conn, replicas, group).await;
        }
    }

    /// Writes a group of flushes in order, merging those of one epoch into one call.
    async fn commit(&self, conn: &mut RedisConn, replicas: u32, group: Vec<(SaleWrites, Answer)>) {
        let mut group = group.into_iter().peekable();
        while let Some((mut merged, answer)) = group.next() {
            let mut answers = vec![answer];
            while let Some((next, _)) = group.peek()
                && next.epoch == merged.epoch
            {
                let (next, answer) = group.next().expect("peeked");
                merged.writes.extend(next.writes);
                answers.push(answer);
            }
            let result = self.commit_one(conn, replicas, &merged).await;
            for answer in answers {
                let _ = answer.send(result.as_ref().map(|_| ()).map_err(copy));
            }
        }
    }

    async fn commit_one(
        &self,
        conn: &mut RedisConn,
        replicas: u32,
        batch: &SaleWrites,
    ) -> Result<(), StoreError> {
        if self.failing().contains(&batch.sale_id) {
            return Err(StoreError::Commit(
                "an earlier write of this sale failed; it is being rebuilt".into(),
            ));
        }
        let mut result = sales::write(conn, batch).await;
        if result.is_ok() && replicas > 0 {
            result = sales::replicated(conn, replicas).await;
        }
        if result.is_err() {
            self.failing().insert(batch.sale_id.clone());
        }
        result
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only map and set operations happen under these locks; a poisoned one holds valid
    // data.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The same failure, for each flush of a merged call.
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Fenced => StoreError::Fenced,
        StoreError::Unreachable(m) => StoreError::Unreachable(m.clone()),
        other => StoreError::Commit(other.to_string()),
    }
}
