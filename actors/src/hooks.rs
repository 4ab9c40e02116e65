//! Fault injection for tests, compiled only with the `test-hooks` feature (enabled by
//! the workspace's own tests, never in a release build). A test arms a target such as
//! `room:r1`, `sale:<id>` or `relay:r1`; the next time that actor handles an input it
//! panics inside its supervised section, as a bug would.

use crate::sync::plain::Mutex;
use std::collections::BTreeSet;

static ARMED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Arms `target`: its next supervised input panics (once).
pub fn arm(target: &str) {
    ARMED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(target.to_owned());
}

/// Panics if `target` is armed, disarming it.
pub fn maybe_panic(target: &str) {
    let fired = ARMED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(target);
    if fired {
        panic!("injected panic in {target} (test hook)");
    }
}
