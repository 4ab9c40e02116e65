//! The loom facade: every shared-memory primitive the actors use comes from here. The
//! ones at the top level are *modelled*: a `--cfg lockstep_loom` build swaps in loom's
//! model-checked versions, so loom sees every access (the session queues of
//! `outbound.rs` use only these). [`plain`] holds the ones loom cannot model — loom has
//! no `Weak` or `OnceLock` — the same `std` types in every build, for the directories
//! and wiring no loom model covers. Code outside this module never imports `std::sync`,
//! so which accesses loom checks is visible at every import.
//!
//! The switch is `--cfg lockstep_loom`, not the conventional `--cfg loom`: tokio reads
//! `cfg(loom)` too and compiles out its `net` and `signal` modules under it, which breaks
//! actix-rt. A cfg of our own swaps only our primitives.

#[cfg(not(lockstep_loom))]
pub use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(lockstep_loom)]
pub use loom::sync::{Arc, Mutex, MutexGuard};

/// Wakes the one task that drains a queue. Outside loom it is tokio's `Notify`
/// (a stored permit survives a wake that comes before the wait). Under loom it is loom's
/// `Notify`, which has the same stored-permit semantics but blocks a model thread, so a
/// lost wake-up shows up as a deadlock in the model.
#[cfg(not(lockstep_loom))]
pub use tokio::sync::Notify;

#[cfg(lockstep_loom)]
#[derive(Debug, Default)]
pub struct Notify(loom::sync::Notify);

#[cfg(lockstep_loom)]
impl Notify {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn notify_one(&self) {
        self.0.notify();
    }

    /// Blocks the model thread until a permit is available, then takes it.
    pub fn wait(&self) {
        self.0.wait();
    }
}

/// Primitives loom does not model: `std`'s, in every build. For the room and sale
/// directories, configuration shared read-only, and the store's bookkeeping.
pub mod plain {
    pub use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    pub use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak, mpsc};
}
