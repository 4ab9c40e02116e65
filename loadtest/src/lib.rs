//! `lockstep-load` as a library: the pieces the load generator shares with the server's
//! tests, such as the linearizability checker for flash-sale histories.

// pub mod linearizability;
