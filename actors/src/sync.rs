//! The loom facade: every shared-memory primitive the actors use comes from here, so a
//! `--cfg loom` build swaps in loom's model-checked versions and loom sees every access.
//! Code outside this module never imports `std::sync` primitives it shares across threads.
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
