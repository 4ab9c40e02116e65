//! Why a sale refused a request, in the sale's own terms, and the wire code each reason
//! is sent with ([`WireError`]).

use lockstep_protocol::{ErrorCode, WireError};

use super::model::OrderState;

/// A sale's refusal of a request (a reservation's refusals that buyers expect — sold
/// out, over the limit, not open yet — are outcomes, not errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaleError {
    /// No such sale in the room the request came from.
    #[error("no sale `{0}` in this room")]
    NotFound(String),
    /// No such order in this sale, or (for a buyer) not one of theirs.
    #[error("no order `{0}`")]
    OrderNotFound(String),
    /// The order cannot make this change from the state it is in.
    #[error("order is {}", .0.as_str())]
    OrderState(OrderState),
    /// The sale has ended; its link cannot be dropped.
    #[error("the sale has ended")]
    Ended,
    /// Closing a sale that has already ended.
    #[error("the sale has already ended")]
    AlreadyEnded,
    /// The sale cannot decide now (rebuilding after a failure, too many requests
    /// waiting, or it stopped): retry with the same key.
    #[error("{0}")]
    Unavailable(&'static str),
}

impl WireError for SaleError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(_) => ErrorCode::SaleNotFound,
            Self::OrderNotFound(_) => ErrorCode::OrderNotFound,
            Self::OrderState(_) => ErrorCode::InvalidOrderState,
            Self::Ended | Self::AlreadyEnded => ErrorCode::InvalidSaleState,
            Self::Unavailable(_) => ErrorCode::Unavailable,
        }
    }
}
