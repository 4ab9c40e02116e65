//! The arbiters (event-loop threads) actors run on, handed out round robin so rooms,
//! sales and media relays spread over every core. Clones share one rotation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_rt::ArbiterHandle;

/// A fixed set of arbiters with a shared round-robin cursor.
#[derive(Debug, Clone)]
pub struct ArbiterPool {
    arbiters: Arc<[ArbiterHandle]>,
    next: Arc<AtomicUsize>,
}

impl ArbiterPool {
    /// A pool over `arbiters` (at least one).
    pub fn new(arbiters: Vec<ArbiterHandle>) -> Self {
        assert!(!arbiters.is_empty(), "an arbiter pool needs an arbiter");
        Self {
            arbiters: arbiters.into(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The arbiter the next actor starts on.
    pub fn next(&self) -> &ArbiterHandle {
        &self.arbiters[self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len()]
    }

    pub fn len(&self) -> usize {
        self.arbiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.arbiters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_rotation_over_every_arbiter() {
        let system = actix_rt::System::new();
        system.block_on(async {
            let arbiters: Vec<_> = (0..3).map(|_| actix_rt::Arbiter::new()).collect();
            let pool = ArbiterPool::new(arbiters.iter().map(|a| a.handle()).collect());
            let other = pool.clone();
            let picks: Vec<ArbiterHandle> = (0..6)
                .map(|i| {
                    if i % 2 == 0 {
                        pool.next()
                    } else {
                        other.next()
                    }
                    .clone()
                })
                .collect();
            for (i, arbiter) in arbiters.iter().enumerate() {
                let handle = arbiter.handle();
                let times = picks.iter().filter(|p| same(p, &handle)).count();
                assert_eq!(times, 2, "arbiter {i}");
            }
            for a in arbiters {
                a.stop();
            }
        });
    }

    /// Whether two handles are the same arbiter (a handle has no equality of its own).
    fn same(a: &ArbiterHandle, b: &ArbiterHandle) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        let id_of = |h: &ArbiterHandle| {
            let tx = tx.clone();
            h.spawn_fn(move || tx.send(std::thread::current().id()).unwrap());
        };
        id_of(a);
        id_of(b);
        rx.recv().unwrap() == rx.recv().unwrap()
    }
}
