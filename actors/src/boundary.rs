//! The panic boundary an actor runs its pure core in: a panic inside one input is caught
//! here, so the actor rebuilds its core instead of dying with its mailbox. With the
//! `test-hooks` feature a test can make the next input of a named boundary panic (see
//! `hooks.rs`).

/// Runs `input` on `core`; `None` when it panicked (the core may be half-changed: the
/// caller rebuilds it). `name` names the boundary for injected faults, e.g.
/// `room:<id>`; it is only called when those are compiled in.
pub(crate) fn contain<C, R>(
    core: &mut C,
    name: impl FnOnce(&C) -> String,
    input: impl FnOnce(&mut C) -> R,
) -> Option<R> {
    #[cfg(feature = "test-hooks")]
    let name = name(core);
    #[cfg(not(feature = "test-hooks"))]
    drop(name);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        #[cfg(feature = "test-hooks")]
        crate::hooks::maybe_panic(&name);
        input(core)
    }))
    .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_is_contained_and_reported() {
        let mut n = 1;
        assert_eq!(super::contain(&mut n, |_| "t".into(), |n| *n + 1), Some(2));
        let panicked = super::contain(&mut n, |_| "t".into(), |_| -> u32 { panic!("bug") });
        assert_eq!(panicked, None);
    }
}
