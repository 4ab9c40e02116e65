//! One viewer or anchor connection: the pure per-connection rules ([`SessionCore`]).
//! The socket shell that drives it lives in the server crate, next to the WebSocket
//! library it wraps.

mod core;

pub use core::{Action, Endpoint, MediaRequest, SessionCore};
