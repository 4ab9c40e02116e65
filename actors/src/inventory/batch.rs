//! Buyers' requests batched per thread: what one event-loop thread's sessions ask of a
//! sale while that thread works through its ready tasks goes to the sale's actor as one
//! message, sent by a task queued behind them. One message and at most one wake-up of
//! the sale's thread per pass, instead of one per request: on a shared core each wake-up
//! was a switch between threads. A session's requests keep their order (one buffer per
//! sale, appended in the order they are made); the sale decides them one by one as if
//! they had come separately.

use std::cell::RefCell;

use actix::prelude::*;

use super::actor::{Cancel, Inventory, Reserve};

/// A buyer's request as the sale's actor handles it.
pub enum BuyerCall {
    Reserve(Reserve),
    Cancel(Cancel),
}

/// The requests one thread gathered for one sale, in the order they were made.
#[derive(Message)]
#[rtype(result = "()")]
pub struct BuyerCalls(pub Vec<BuyerCall>);

thread_local! {
    /// Per sale, the requests waiting for this thread's next send.
    static WAITING: RefCell<Vec<(Addr<Inventory>, Vec<BuyerCall>)>> =
        const { RefCell::new(Vec::new()) };
}

/// Queues `call` for `sale`, to go with every other request this thread makes before the
/// send task runs. Outside an event loop (no arbiter on this thread) it is sent at once.
pub fn send(sale: &Addr<Inventory>, call: BuyerCall) {
    if actix_rt::Arbiter::try_current().is_none() {
        return sale.do_send(BuyerCalls(vec![call]));
    }
    let first = WAITING.with_borrow_mut(|waiting| {
        let first = waiting.is_empty();
        match waiting.iter_mut().find(|(addr, _)| addr == sale) {
            Some((_, calls)) => calls.push(call),
            None => waiting.push((sale.clone(), vec![call])),
        }
        first
    });
    if first {
        // Queued behind the tasks already ready on this thread, so it sends what they add.
        actix_rt::spawn(async { send_waiting() });
    }
}

fn send_waiting() {
    for (sale, calls) in WAITING.with_borrow_mut(std::mem::take) {
        sale.do_send(BuyerCalls(calls));
    }
}
