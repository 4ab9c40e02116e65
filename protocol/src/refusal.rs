//! How a server component's error becomes a refusal on the wire. Each component keeps
//! its own error enum, in its own terms, and states its wire code here by implementing
//! [`WireError`]; each edge then has one function that turns any of them into what it
//! sends: [`ServerMsg::refusal`] on a WebSocket, the HTTP API's error body (with
//! [`ErrorCode::http_status`]) over HTTP.

use crate::{ErrorCode, ServerMsg};

/// An error a client is told about.
pub trait WireError: std::fmt::Display {
    /// The stable code the client sees.
    fn code(&self) -> ErrorCode;

    /// For refusals a client may retry (rate limits, slow mode, mutes): ms until a retry
    /// can succeed.
    fn retry_after_ms(&self) -> Option<u64> {
        None
    }

    /// The message the client sees. The display text by default; a component whose
    /// errors can carry internal detail (a database message) shows a plain one instead
    /// and leaves the detail to its log.
    fn public_message(&self) -> String {
        self.to_string()
    }
}

impl ServerMsg {
    /// The `error` frame refusing request `id` because of `error`.
    pub fn refusal(id: Option<u64>, error: &dyn WireError) -> Self {
        let code = error.code();
        ServerMsg::Error {
            id,
            code: code.code(),
            name: code,
            message: error.public_message(),
            retry_after_ms: error.retry_after_ms(),
        }
    }
}
