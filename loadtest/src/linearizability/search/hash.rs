//! The search's memo keys: a configuration hashes to the XOR of 128-bit hashes of its
//! components (stock, linearized ops, orders, idempotency answers), so one step updates
//! the hash in O(1); the memo table uses them as they are ([`PreHashed`]).

use std::hash::Hasher;

use super::model::{Ans, Order};

/// Hasher for keys that are already uniformly distributed hashes.
#[derive(Default)]
pub(super) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64);
    }
}

pub(super) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 128-bit hash of one state component; a configuration hashes to the XOR of its components.
pub(super) fn comp(tag: u64, a: u64, b: u64) -> u128 {
    let lo = mix(mix(mix(tag) ^ a) ^ b);
    let hi = mix(mix(mix(tag ^ 0x5BD1_E995_3C6E_F372) ^ a.rotate_left(23)) ^ b.rotate_left(41));
    (u128::from(hi) << 64) | u128::from(lo)
}

pub(super) const T_REM: u64 = 1;
pub(super) const T_LIN: u64 = 2;
pub(super) const T_ORDER: u64 = 3; // + status
pub(super) const T_IDEM: u64 = 8; // + kind of stored result

pub(super) fn order_comp(order: usize, o: &Order) -> u128 {
    comp(
        T_ORDER + o.status as u64,
        order as u64,
        ((o.pair as u64) << 32) | u64::from(o.qty),
    )
}

pub(super) fn idem_comp(pair: usize, ans: Ans) -> u128 {
    match ans {
        Ans::Accepted { order, remaining } => comp(
            T_IDEM,
            pair as u64,
            (u64::from(order) << 32) | u64::from(remaining),
        ),
        Ans::SoldOut => comp(T_IDEM + 1, pair as u64, 0),
        _ => comp(T_IDEM + 2, pair as u64, 0),
    }
}
