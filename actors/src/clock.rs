//! The server clock, for the actors: [`lockstep_runtime`]'s, the one place the server
//! reads the wall clock. Cores never call it: shells pass `now` in.

pub use lockstep_runtime::{now_ms, now_ms_f64};
