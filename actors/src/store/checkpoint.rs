//! WAL checkpoints off the commit path. SQLite's automatic checkpoint runs inside the
//! commit that crosses its threshold, so one batch of buyers would wait for pages to be
//! copied back into the database file. The store's writer turns it off
//! (`wal_autocheckpoint = 0`) and this thread, on a connection of its own, runs a
//! `PASSIVE` checkpoint every `store.checkpoint_interval_ms`: it copies what it can
//! without blocking the writer, which keeps committing meanwhile. It stops, after a last
//! checkpoint, when the last handle of the [`Store`](super::Store) that started it is
//! dropped.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

/// Keeps the checkpoint thread running; dropping it stops the thread.
#[derive(Debug)]
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` every `interval`.
    pub(super) fn spawn(path: PathBuf, interval: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("lockstep-checkpoint".into())
            .spawn(move || run(&path, interval, &stopped))?;
        Ok(Self { _stop: stop })
    }
}

fn run(path: &PathBuf, interval: Duration, stopped: &mpsc::Receiver<()>) {
    let conn = match Connection::open(path) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::error!(error = %e, "the checkpoint thread cannot open the database; the WAL will grow");
            return;
        }
    };
    let _ = conn.busy_timeout(Duration::from_millis(100));
    loop {
        let last = match stopped.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        };
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        match done {
            Ok((frames, copied)) => tracing::trace!(frames, copied, "checkpoint"),
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint failed; retrying at the next interval")
            }
        }
        if last {
            return;
        }
    }
}
