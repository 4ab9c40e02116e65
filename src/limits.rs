//! Connection limits, counted per accepted TCP connection: at most
//! `server.max_connections` open at once in the whole process and at most
//! `server.max_connections_per_ip` from one address (addresses in
//! `server.connection_limit_exempt` are not counted per address). Every connection gets
//! a [`ConnSlot`] when accepted; a connection over a limit is answered 503
//! `too_many_connections` on its first request and closed. A slot is released when its
//! connection closes (the slot lives in the connection's data).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// The process-wide connection counts and their limits.
#[derive(Debug)]
pub struct ConnLimits {
    max_total: usize,
    max_per_ip: usize,
    exempt: Vec<IpNet>,
    counts: Mutex<Counts>,
    refused: prometheus::IntCounter,
    open: prometheus::IntGauge,
}

/// A connection's place under the limits, kept for as long as the connection is open.
#[derive(Debug)]
pub struct ConnSlot {
    /// Why the connection was refused, if it was.
    pub refusal: Option<String>,
    limits: Arc<ConnLimits>,
    counted_ip: Option<IpAddr>,
}

impl ConnLimits {
    /// `exempt` must hold valid CIDR networks (checked with the configuration).
    pub fn new(
        max_total: usize,
        max_per_ip: usize,
        exempt: &[String],
        refused: prometheus::IntCounter,
        open: prometheus::IntGauge,
    ) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            exempt: exempt.iter().filter_map(|n| n.parse().ok()).collect(),
            counts: Mutex::default(),
            refused,
            open,
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Only counting happens under this lock.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether per-address limits skip `ip`.
    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.exempt.iter().any(|net| net.contains(&ip))
    }

    /// The address to count per-address limits against, or `None` when exempt.
    pub fn counted(&self, ip: Option<IpAddr>) -> Option<IpAddr> {
        ip.map(canonical).filter(|ip| !self.is_exempt(*ip))
    }

    /// Takes a slot for a new connection from `peer`.
    pub fn admit(self: &Arc<Self>, peer: Option<IpAddr>) -> ConnSlot {
        let ip = self.counted(peer);
        let mut counts = self.counts();
        let refusal = if counts.total >= self.max_total {
            Some(format!(
                "the server holds its maximum of {} connections (server.max_connections)",
                self.max_total
            ))
        } else if let Some(ip) = ip
            && self.max_per_ip > 0
            && counts.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip
        {
            Some(format!(
                "{ip} holds its maximum of {} connections (server.max_connections_per_ip)",
                self.max_per_ip
            ))
        } else {
            None
        };
        if refusal.is_some() {
            self.refused.inc();
            return ConnSlot {
                refusal,
                limits: self.clone(),
                counted_ip: None,
            };
        }
        counts.total += 1;
        self.open.set(counts.total as i64);
        if let Some(ip) = ip {
            *counts.per_ip.entry(ip).or_default() += 1;
        }
        ConnSlot {
            refusal: None,
            limits: self.clone(),
            counted_ip: ip,
        }
    }

    /// Connections holding a slot now.
    #[cfg(test)]
    pub fn open_now(&self) -> usize {
        self.counts().total
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if self.refusal.is_some() {
            return;
        }
        let mut counts = self.limits.counts();
        counts.total -= 1;
        self.limits.open.set(counts.total as i64);
        if let Some(ip) = self.counted_ip
            && let Some(n) = counts.per_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_ip: usize) -> Arc<ConnLimits> {
        let counter = prometheus::IntCounter::new("r", "r").unwrap();
        let gauge = prometheus::IntGauge::new("o", "o").unwrap();
        ConnLimits::new(total, per_ip, &["127.0.0.0/8".into()], counter, gauge)
    }

    #[test]
    fn per_address_and_total_limits_and_release() {
        let l = limits(3, 2);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let first = l.admit(Some(a));
        let _second = l.admit(Some(a));
        assert!(l.admit(Some(a)).refusal.is_some(), "third from one address");
        let exempt = l.admit(Some("127.0.0.1".parse().unwrap()));
        assert!(
            exempt.refusal.is_none(),
            "loopback is exempt from the per-address limit"
        );
        assert!(l.admit(None).refusal.is_some(), "the total is full");
        drop(first);
        assert_eq!(l.open_now(), 2);
        assert!(
            l.admit(Some(a)).refusal.is_none(),
            "a closed connection frees its slot"
        );
    }

    #[test]
    fn mapped_addresses_count_as_ipv4() {
        let l = limits(10, 1);
        let _v4 = l.admit(Some("192.0.2.9".parse().unwrap()));
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        assert!(l.admit(Some(mapped)).refusal.is_some());
        assert!(l.is_exempt("::ffff:127.0.0.1".parse().unwrap()));
    }
}
