//! What the actor crates (rooms and sales, the SFU) share at run time, and nothing else:
//! the server clock every time in the protocol is read from, and the pool of arbiters
//! actors are spread over. Neither crate depends on the other; both depend on this.

mod clock;
mod pool;

pub use clock::{now_ms, now_ms_f64};
pub use pool::ArbiterPool;
