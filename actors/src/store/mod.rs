//! The durable record: an embedded SQLite database (WAL) owned by one writer thread.
//!
//! Everything goes through [`Store`], a cheap handle that sends jobs to the thread.
//! Sale writes use **group commit**: every write batch that is waiting when the thread
//! is free is applied in one transaction, and each caller is told only after that
//! transaction has committed (with `synchronous = FULL`, after the fsync). Other jobs
//! (merchant API reads and writes) run one transaction each, in arrival order, so a job
//! never sees a state older than a write acknowledged before it was sent.

mod catalog;
mod sales;
mod schema;

use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

pub use catalog::{
    Faq, NewProduct, NewSale, NewSku, OrderFilter, Product, SaleRecord, Sku, StockChange,
    change_stock, create_product, create_sale, get_order, get_product, get_sale, get_sku,
    link_card, list_orders, list_products,
};
pub use sales::{StoredSale, load_sale, sale_ids};

use crate::inventory::Write;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("the store thread has stopped")]
    Stopped,
    #[error("commit failed: {0}")]
    Commit(String),
    /// A domain refusal raised inside a transaction (rolled back).
    #[error("{1}")]
    Refused(lockstep_protocol::ErrorCode, String),
}

/// The writes of one sale's flush.
#[derive(Debug, Clone)]
pub struct SaleWrites {
    pub sale_id: String,
    pub writes: Vec<Write>,
}

type Call = Box<dyn FnOnce(&mut Connection) + Send>;

enum Job {
    Writes(SaleWrites, oneshot::Sender<Result<(), String>>),
    Call(Call),
}

/// Handle to the store thread.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and starts the writer thread.
    /// `synchronous_full`: fsync every commit (durable across power loss); otherwise
    /// `NORMAL` (durable across a process crash, not a power loss).
    pub fn open(path: &Path, synchronous_full: bool) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut conn = Connection::open(path)?;
        schema::migrate(&mut conn, synchronous_full)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("lockstep-store".into())
            .spawn(move || run(conn, rx))
            .map_err(|_| StoreError::Stopped)?;
        Ok(Self { tx })
    }

    /// Makes `writes` durable; resolves after the transaction holding them committed.
    pub async fn write(&self, writes: SaleWrites) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job::Writes(writes, done))
            .map_err(|_| StoreError::Stopped)?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Commit(e)),
            Err(_) => Err(StoreError::Stopped),
        }
    }

    /// Runs `f` in its own transaction on the store thread.
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
        self.tx
            .send(Job::Call(job))
            .map_err(|_| StoreError::Stopped)?;
        wait.await.map_err(|_| StoreError::Stopped)?
    }
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<(SaleWrites, oneshot::Sender<Result<(), String>>)> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Writes(writes, done) => batch.push((writes, done)),
                Job::Call(call) => {
                    commit_batch(&mut conn, &mut batch);
                    call(&mut conn);
                }
            }
            next = rx.try_recv().ok();
        }
        commit_batch(&mut conn, &mut batch);
    }
}

/// Applies every waiting write batch in one transaction and tells each caller.
fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<(SaleWrites, oneshot::Sender<Result<(), String>>)>,
) {
    if batch.is_empty() {
        return;
    }
    let result = (|| -> rusqlite::Result<()> {
        let tx = conn.transaction()?;
        for (writes, _) in batch.iter() {
            sales::apply(&tx, writes)?;
        }
        tx.commit()
    })();
    if let Err(e) = &result {
        tracing::error!(error = %e, "store commit failed");
    }
    for (_, done) in batch.drain(..) {
        let _ = done.send(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
    }
}
