//! `lockstep-load` as a library: scenarios, the wire adapters (Lockstep, NATS WebSocket,
//! Socket.IO), mergeable reports, plots, and the linearizability checker for flash-sale
//! histories (also used by the server's own tests).

pub mod linearizability;
pub mod plot;
pub mod report;
pub mod scenario;
pub mod wire;
