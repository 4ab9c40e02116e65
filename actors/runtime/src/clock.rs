//! The one place the server reads the wall clock. Pure cores never call it: their shells
//! pass `now` in.

use std::time::{SystemTime, UNIX_EPOCH};

/// Server time in ms since the Unix epoch — the clock of every `at`, `reveal_at` and
/// `server_time` on the wire.
pub fn now_ms() -> u64 {
    now_ms_f64() as u64
}

/// Server time in ms since the Unix epoch, with sub-millisecond precision (clock sync).
pub fn now_ms_f64() -> f64 {
    // A clock before 1970 would be a misconfigured host; report 0 rather than panic.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_readings_are_the_same_clock() {
        let (a, b) = (super::now_ms(), super::now_ms_f64());
        assert!(b >= a as f64 && b - (a as f64) < 1_000.0, "{a} {b}");
        assert!(a > 1_700_000_000_000, "ms since the Unix epoch");
    }
}
