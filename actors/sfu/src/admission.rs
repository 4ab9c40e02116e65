//! Admission of video subscribers across every room: at most
//! `media.max_subscribers_total` at once, and at most `media.max_subscribers_per_ip`
//! from one address. A subscriber holds a [`Ticket`] from its offer until it is gone
//! (whatever the path: unsubscribed, its connection failed, the room ended); dropping
//! the ticket gives the slot back, so no path can leak one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::MediaError;

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// The server-wide subscriber counts.
#[derive(Debug)]
pub struct Admission {
    counts: Mutex<Counts>,
    max_total: usize,
    max_per_ip: usize,
}

/// One admitted subscriber; its slot is released on drop.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    source: Option<IpAddr>,
}

impl Admission {
    /// `max_per_ip` 0 means no per-address limit.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            counts: Mutex::default(),
            max_total,
            max_per_ip,
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Only counting happens under this lock; a poisoned one still holds valid counts.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a subscriber from `source` (`None`: an address exempt from the per-address
    /// limit), or says which limit is full.
    pub fn admit(self: &Arc<Self>, source: Option<IpAddr>) -> Result<Ticket, MediaError> {
        let mut counts = self.counts();
        if counts.total >= self.max_total {
            return Err(MediaError::ServerFull(self.max_total));
        }
        if let Some(ip) = source {
            let from_ip = counts.per_ip.entry(ip).or_default();
            if self.max_per_ip > 0 && *from_ip >= self.max_per_ip {
                return Err(MediaError::TooManyFromAddress {
                    ip,
                    max: self.max_per_ip,
                });
            }
            *from_ip += 1;
        }
        counts.total += 1;
        Ok(Ticket {
            admission: self.clone(),
            source,
        })
    }

    /// Subscribers admitted now.
    pub fn total(&self) -> usize {
        self.counts().total
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        counts.total -= 1;
        if let Some(ip) = self.source
            && let Some(n) = counts.per_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_and_dropped_tickets_free_their_slots() {
        let a = Admission::new(3, 2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t1 = a.admit(Some(ip)).unwrap();
        let _t2 = a.admit(Some(ip)).unwrap();
        assert!(matches!(
            a.admit(Some(ip)),
            Err(MediaError::TooManyFromAddress { .. })
        ));
        let _t3 = a.admit(Some(other)).unwrap();
        assert!(matches!(a.admit(None), Err(MediaError::ServerFull(_))));
        drop(t1);
        assert_eq!(a.total(), 2);
        let _t4 = a.admit(Some(ip)).unwrap();
        assert!(
            a.counts().per_ip.len() <= 2,
            "no entry left behind per address"
        );
    }
}
