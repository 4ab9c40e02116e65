//! Flash-sale inventory: one actor per sale around a pure, linearizable core, and the
//! directory that finds a sale's actor.

mod actor;
mod core;
mod directory;
pub mod model;

pub use actor::{
    Cancel, CloseSale, Confirm, Inventory, ReplySink, Reserve, Reveal, Summary, reply_channel,
};
pub use core::{Effect, InventoryCore, MAX_KEY_BYTES, Reply, ReserveReply, Write};
pub use directory::{SaleDirectory, SaleHandle};

#[cfg(test)]
mod core_tests;
