//! A live room: its pure core, the comment and timeline rules it uses, its fan-out list,
//! and the actor shell that runs it.

mod actor;
mod comments;
mod control;
mod core;
mod error;
mod fanout;
mod recovery;
mod tally;
mod timeline;

pub use actor::{
    Inbound, Join, Leave, NodeLikes, Room, RoomInput, RoomLink, SaleUpdate, SetMedia, Snapshot,
    StepDown, ViewAs,
};
pub use core::{Identity, Output, RoomCore, SessionId};
pub use error::RoomError;
pub use fanout::{Delivery, Fanout};
pub use recovery::Durable;
pub use timeline::{OnlinePoint, TimelineEvent, TimelineKind};

#[cfg(test)]
mod core_tests;
