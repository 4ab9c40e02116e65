//! The one place actors read the wall clock. Cores never call this: shells pass `now` in.

use std::time::{SystemTime, UNIX_EPOCH};

/// Server time in ms since the Unix epoch.
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
