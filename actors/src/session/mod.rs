//! One viewer or anchor connection: the pure per-connection rules ([`SessionCore`]) —
//! the join policy, the message rate, which messages each endpoint takes. The socket
//! shell that drives it lives in the server crate, next to the WebSocket library it
//! wraps.

mod core;
mod error;
mod join;

pub use core::{Action, Endpoint, MediaRequest, SessionCore};
pub use error::SessionError;
pub use join::{AccessError, Bearer, JoinError, TokenError};
