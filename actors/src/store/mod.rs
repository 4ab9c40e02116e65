//! The durable record: an embedded SQLite database (WAL) owned by one writer thread.
//!
//! Everything goes through [`Store`], a cheap handle that sends jobs to the thread over a
//! bounded queue (`store.queue_depth`). Sale writes use **group commit**: every write
//! batch that is waiting when the thread is free is applied in one transaction, and each
//! caller is told only after that transaction has committed (with `synchronous = FULL`,
//! after the fsync). Before committing, the thread yields its core once
//! (`store.yield_before_commit`): where the sales share that core, the writes they are
//! about to hand over join this commit instead of the next. WAL checkpoints run on a
//! thread of their own ([`checkpoint`]), not inside a commit. Other jobs (merchant API
//! reads and writes) run one transaction each, in arrival order, so a job never sees a
//! state older than a write acknowledged before it was sent.
//!
//! **Failures.** When a commit fails (disk full, read-only file system, the size budget
//! `store.max_size_mb`), every sale in that batch is marked *failing*: its later writes
//! are refused without touching the database, so no answer that depends on the lost
//! decisions can ever be acknowledged. A failing sale rebuilds itself with
//! [`Store::recover`], which first proves the database takes writes again; until then
//! `/readyz` names it. A panic on the store thread ends the process (exit code 70): the
//! database is the truth, and a supervisor restarting the server rebuilds every sale
//! from it, so nothing acknowledged is lost and nothing hangs.

mod catalog;
mod checkpoint;
mod grants;
mod sales;
mod schema;
mod storage;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use lockstep_protocol::{ErrorCode, WireError};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

pub use catalog::{
    CatalogError, Faq, MAX_UNITS, NewProduct, NewSale, NewSku, OrderFilter, Product, SaleRecord,
    Sku, StockChange, change_stock, create_product, create_sale, get_order, get_product, get_sale,
    get_sku, link_card, list_orders, list_products, new_id,
};
pub use grants::{Grant, grant_merchant, list_grants, may_sell, revoke_merchant};
pub use sales::{StoredSale, live_sale_ids, load_sale};
pub use storage::{LoadedSale, Storage, StoreFuture};

use crate::config::StoreConfig;
use crate::inventory::Write;
use crate::metrics::Metrics;
use crate::sync::plain::{Arc, AtomicUsize, Mutex, MutexGuard, Ordering};

/// Exit code of a process whose store thread panicked.
pub const STORE_PANIC_EXIT_CODE: i32 = 70;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("the store thread has stopped")]
    Stopped,
    #[error("the store is busy ({0} jobs waiting); retry")]
    Busy(usize),
    #[error("commit failed: {0}")]
    Commit(String),
    /// The catalog refused the change inside a transaction (rolled back).
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A shared store (cluster mode) could not be reached or failed the step.
    #[error("the store cannot be reached: {0}")]
    Unreachable(String),
    /// A newer owner of the sale's room has written the sale: this node's writes are
    /// refused (fencing), and it no longer runs the sale.
    #[error("a newer owner of the room has taken this sale over")]
    Fenced,
    /// Cluster mode: the sale runs on the node that owns its room, not on this one.
    #[error("sale runs on the node that owns room `{0}`; ask there, or retry")]
    NotHere(String),
}

impl WireError for StoreError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Catalog(e) => e.code(),
            Self::Db(_)
            | Self::Stopped
            | Self::Busy(_)
            | Self::Commit(_)
            | Self::Unreachable(_)
            | Self::Fenced
            | Self::NotHere(_) => ErrorCode::Unavailable,
        }
    }

    /// A failing database's own words stay in the log.
    fn public_message(&self) -> String {
        match self {
            Self::Catalog(_) | Self::Busy(_) | Self::Fenced | Self::NotHere(_) => self.to_string(),
            Self::Db(_) | Self::Stopped | Self::Commit(_) | Self::Unreachable(_) => {
                "storage failure; nothing changed, retry later".into()
            }
        }
    }
}

/// The writes of one sale's flush.
#[derive(Debug, Clone)]
pub struct SaleWrites {
    pub sale_id: String,
    pub writes: Vec<Write>,
    /// The epoch of the room's owner that decided them (cluster mode; 0 in one process).
    /// A shared store refuses writes from an owner older than one that wrote before.
    pub epoch: u64,
}

type Call = Box<dyn FnOnce(&mut Connection) + Send>;
type Done = oneshot::Sender<Result<(), String>>;

enum Job {
    Writes(SaleWrites, Done),
    Call(Call),
    Recover(String, oneshot::Sender<Result<Option<StoredSale>, String>>),
    #[cfg(feature = "test-hooks")]
    Panic,
}

/// What the store thread shares with the rest of the server.
#[derive(Debug, Default)]
struct Shared {
    /// Sales whose last commit failed and that have not been rebuilt since.
    failing: Mutex<BTreeSet<String>>,
}

/// Handle to the store thread.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Job>,
    /// Sale writes that found the queue full and wait for room (see [`Store::write`]).
    writes_waiting: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    metrics: Metrics,
    depth: usize,
    /// Stops the checkpoint thread when the last handle is dropped.
    _checkpointer: Option<Arc<checkpoint::Checkpointer>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating if needed) the database `cfg.path` and starts the writer thread.
    pub fn open(cfg: &StoreConfig, metrics: &Metrics) -> Result<Self, StoreError> {
        let path = Path::new(&cfg.path);
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut conn = Connection::open(path)?;
        schema::migrate(&mut conn, cfg)?;
        let depth = cfg.queue_depth.max(1);
        let (tx, rx) = mpsc::channel(depth);
        let shared = Arc::new(Shared::default());
        let thread = Worker {
            conn,
            rx,
            shared: shared.clone(),
            metrics: metrics.clone(),
            batch: Vec::new(),
            yield_before_commit: cfg.yield_before_commit,
        };
        std::thread::Builder::new()
            .name("lockstep-store".into())
            .spawn(move || thread.run())
            .map_err(|_| StoreError::Stopped)?;
        let checkpointer = match cfg.checkpoint_interval_ms {
            0 => None,
            ms => Some(Arc::new(
                checkpoint::Checkpointer::spawn(path.to_owned(), Duration::from_millis(ms))
                    .map_err(|_| StoreError::Stopped)?,
            )),
        };
        Ok(Self {
            tx,
            writes_waiting: Arc::new(AtomicUsize::new(0)),
            shared,
            metrics: metrics.clone(),
            depth,
            _checkpointer: checkpointer,
        })
    }

    /// Makes `writes` durable; the future resolves after the transaction holding them
    /// committed. The writes are queued for the store thread by this call, not when the
    /// future is first polled, so a sale that flushes part-way through a burst has the
    /// store committing that part while it decides the rest.
    ///
    /// When the queue is full the future waits for room (the callers, sale actors, bound
    /// their own requests), and so does every write made while one waits: the queue
    /// serves its waiters in the order they first poll, which for one sale's actor is
    /// call order, so a sale's writes commit in the order it made them. A later write
    /// must never slip into room freed before an earlier one got its turn.
    pub fn write(
        &self,
        writes: SaleWrites,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let (done, wait) = oneshot::channel();
        let job = Job::Writes(writes, done);
        let queued = if self.writes_waiting.load(Ordering::Acquire) > 0 {
            Ok(Some(job))
        } else {
            match self.tx.try_send(job) {
                Ok(()) => {
                    self.metrics.store_queue.inc();
                    Ok(None)
                }
                Err(mpsc::error::TrySendError::Full(job)) => Ok(Some(job)),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(StoreError::Stopped),
            }
        };
        let waiting = match &queued {
            Ok(Some(_)) => Some(WaitingWrite::new(self.clone())),
            _ => None,
        };
        async move {
            if let (Some(job), Some(waiting)) = (queued?, waiting) {
                waiting.store.send(job).await?;
            }
            match wait.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(StoreError::Commit(e)),
                Err(_) => Err(StoreError::Stopped),
            }
        }
    }

    /// Runs `f` in its own transaction on the store thread. Refused with
    /// [`StoreError::Busy`] when the queue is full.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (done, wait) = oneshot::channel();
        let job: Call = Box::new(move |conn: &mut Connection| {
            let result = conn.transaction().map_err(StoreError::from).and_then(|tx| {
                let value = f(&tx)?;
                tx.commit()?;
                Ok(value)
            });
            let _ = done.send(result);
        });
        self.tx.try_send(Job::Call(job)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Busy(self.depth),
            mpsc::error::TrySendError::Closed(_) => StoreError::Stopped,
        })?;
        self.metrics.store_queue.inc();
        wait.await.map_err(|_| StoreError::Stopped)?
    }

    /// Rebuilds a sale after a failure: proves the database takes a write again, then
    /// loads the sale as stored and clears its failing mark (in that order, on the store
    /// thread, so every write sent before this call has already been refused).
    pub async fn recover(&self, sale_id: &str) -> Result<Option<StoredSale>, StoreError> {
        let (done, wait) = oneshot::channel();
        self.send(Job::Recover(sale_id.to_owned(), done)).await?;
        match wait.await {
            Ok(result) => result.map_err(StoreError::Commit),
            Err(_) => Err(StoreError::Stopped),
        }
    }

    /// Sales that failed to commit and have not been rebuilt yet, for `/readyz`.
    pub fn failing_sales(&self) -> Vec<String> {
        lock(&self.shared.failing).iter().cloned().collect()
    }

    /// Whether the store thread still runs.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Makes the store thread panic (test hook: the process must exit, not hang).
    #[cfg(feature = "test-hooks")]
    pub async fn panic_for_test(&self) {
        let _ = self.send(Job::Panic).await;
    }

    async fn send(&self, job: Job) -> Result<(), StoreError> {
        self.tx.send(job).await.map_err(|_| StoreError::Stopped)?;
        self.metrics.store_queue.inc();
        Ok(())
    }
}

/// A sale write waiting for room in the queue, counted in `Store::writes_waiting` from
/// its call until it is queued (or dropped).
struct WaitingWrite {
    store: Store,
}

impl WaitingWrite {
    fn new(store: Store) -> Self {
        store.writes_waiting.fetch_add(1, Ordering::AcqRel);
        Self { store }
    }
}

impl Drop for WaitingWrite {
    fn drop(&mut self) {
        self.store.writes_waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; a poisoned one still holds valid data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The store thread's state.
struct Worker {
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    shared: Arc<Shared>,
    metrics: Metrics,
    batch: Vec<(SaleWrites, Done)>,
    /// `store.yield_before_commit`.
    yield_before_commit: bool,
}

impl Worker {
    fn run(mut self) {
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.serve()));
        if served.is_err() {
            // The panic message was printed by the panic hook. Whatever the connection's
            // state now, the database file is the truth: exit so a supervisor restarts
            // the server, which rebuilds every sale from it. Acked orders are committed.
            tracing::error!(
                code = STORE_PANIC_EXIT_CODE,
                "the store thread panicked; exiting so the server restarts from its database"
            );
            std::process::exit(STORE_PANIC_EXIT_CODE);
        }
    }

    fn serve(&mut self) {
        while let Some(first) = self.rx.blocking_recv() {
            let mut next = Some(first);
            let mut yielded = !self.yield_before_commit;
            loop {
                while let Some(job) = next.take() {
                    self.take(job);
                    next = self.rx.try_recv().ok();
                }
                if yielded || self.batch.is_empty() {
                    break;
                }
                // On a core shared with the sales, they are about to hand over more
                // writes: let them run once, and those writes join this commit.
                yielded = true;
                std::thread::yield_now();
                next = self.rx.try_recv().ok();
                if next.is_none() {
                    break;
                }
            }
            self.commit_batch();
        }
    }

    /// Files a write batch for the next commit, or runs another job (after committing
    /// what is filed, so it sees every write sent before it).
    fn take(&mut self, job: Job) {
        self.metrics.store_queue.dec();
        match job {
            Job::Writes(writes, done) => self.batch.push((writes, done)),
            Job::Call(call) => {
                self.commit_batch();
                call(&mut self.conn);
            }
            Job::Recover(sale_id, done) => {
                self.commit_batch();
                let _ = done.send(self.recover(&sale_id));
            }
            #[cfg(feature = "test-hooks")]
            Job::Panic => panic!("store thread panic (test hook)"),
        }
    }

    /// Applies every waiting write batch in one transaction and tells each caller.
    /// Batches of failing sales are refused without touching the database.
    fn commit_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let (refused, batch): (Vec<_>, Vec<_>) = {
            let failing = lock(&self.shared.failing);
            std::mem::take(&mut self.batch)
                .into_iter()
                .partition(|(writes, _)| failing.contains(&writes.sale_id))
        };
        for (_, done) in refused {
            let _ = done.send(Err(
                "an earlier write of this sale failed; it is being rebuilt".into(),
            ));
        }
        if batch.is_empty() {
            return;
        }
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            for (writes, _) in &batch {
                sales::apply(&tx, writes)?;
            }
            tx.commit()
        })();
        if result.is_ok() {
            self.metrics.store_commits.inc();
        }
        if let Err(e) = &result {
            self.metrics.store_failures.inc();
            let mut failing = lock(&self.shared.failing);
            failing.extend(batch.iter().map(|(w, _)| w.sale_id.clone()));
            tracing::error!(error = %e, sales = ?failing, "store commit failed; those sales refuse orders until rebuilt");
        }
        for (_, done) in batch {
            let _ = done.send(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
    }

    fn recover(&mut self, sale_id: &str) -> Result<Option<StoredSale>, String> {
        let probe = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            schema::probe_write(&tx)?;
            tx.commit()
        })();
        if let Err(e) = probe {
            self.metrics.store_failures.inc();
            return Err(format!("the database does not take writes yet: {e}"));
        }
        let loaded = (|| -> rusqlite::Result<Option<StoredSale>> {
            let tx = self.conn.transaction()?;
            let sale = load_sale(&tx, sale_id)?;
            tx.commit()?;
            Ok(sale)
        })()
        .map_err(|e| format!("reloading the sale: {e}"))?;
        lock(&self.shared.failing).remove(sale_id);
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests;
