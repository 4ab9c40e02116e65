//! The loom facade: every shared-memory primitive the actors use comes from here, so a
//! `--cfg loom` build swaps in loom's model-checked versions and loom sees every access.
//! Code outside this module never imports `std::sync` primitives it shares across threads.

#[cfg(not(loom))]
pub use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(loom)]
pub use loom::sync::{Arc, Mutex, MutexGuard};

/// Wakes the one task that drains a queue. Outside loom it is tokio's `Notify`
/// (a stored permit survives a wake that comes before the wait). Under loom the consumer
/// in a model polls instead of awaiting, so the stand-in only records that a wake happened.
#[cfg(not(loom))]
pub use tokio::sync::Notify;

#[cfg(loom)]
#[derive(Debug, Default)]
pub struct Notify {
    permit: loom::sync::atomic::AtomicBool,
}

#[cfg(loom)]
impl Notify {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn notify_one(&self) {
        self.permit
            .store(true, loom::sync::atomic::Ordering::Release);
    }

    /// Takes the stored permit, as a woken `notified().await` would.
    pub fn take_permit(&self) -> bool {
        self.permit
            .swap(false, loom::sync::atomic::Ordering::Acquire)
    }
}
