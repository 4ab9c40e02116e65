//! `lockstep-load` as a library: scenarios, the wire adapters (Lockstep, NATS WebSocket,
//! Socket.IO), Lockstep frames typed by the protocol crate, mergeable reports, plots, and the linearizability checker for flash-sale
//! histories (also used by the server's own tests), and WebRTC publisher/subscriber
//! clients for the SFU.

pub mod frames;
pub mod linearizability;
pub mod plot;
pub mod report;
pub mod rtc;
pub mod scenario;
pub mod wire;
