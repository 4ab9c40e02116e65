//! Flash-sale inventory: one actor per sale around a pure, linearizable core, the sinks
//! its answers go through, and the directory that finds (or loads) a sale's actor.

mod actor;
mod batch;
mod client_keyed;
mod core;
mod directory;
mod error;
pub mod model;
mod requests;
mod sink;

pub use actor::{Cancel, CloseSale, Confirm, Inventory, Reserve, Retire, Reveal, Summary};
pub use core::{
    CoreLimits, Effect, InventoryCore, MAX_KEY_BYTES, Reply, ReserveReply, Revealed, Write,
};
pub use directory::{Created, Epochs, SaleDirectory, SaleHandle};
pub use error::SaleError;
pub use requests::{Answerer, Buy, BuyerRequest, OutsideOrder};
pub use sink::{Answer, Gate, Permit, ReplySink, reply_channel};

#[cfg(test)]
mod core_tests;
