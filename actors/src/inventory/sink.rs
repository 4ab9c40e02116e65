//! How a sale answers: every request carries a [`ReplySink`] that is called exactly once
//! — with the decision once it is durable, or, if the request is dropped unanswered (the
//! actor stopped, the sale is being rebuilt), with `unavailable` so the caller retries.
//! A sink may hold a [`Permit`] of the sale's admission [`Gate`], released with it, so
//! the number of requests waiting for one sale is bounded.

use std::future::Future;

use tokio::sync::oneshot;

use super::error::SaleError;
use crate::sync::plain::{Arc, AtomicUsize, Ordering};

/// What a request of type `T`'s sink is called with.
pub type Answer<T> = Result<T, SaleError>;

/// Called once with the answer to a request whose successful answer is a `T`.
pub struct ReplySink<T> {
    answer: Option<Box<dyn FnOnce(Answer<T>) + Send>>,
    _permit: Option<Permit>,
}

impl<T> ReplySink<T> {
    pub fn new(answer: impl FnOnce(Answer<T>) + Send + 'static) -> Self {
        Self {
            answer: Some(Box::new(answer)),
            _permit: None,
        }
    }

    /// Answers the request.
    pub fn send(mut self, answer: Answer<T>) {
        if let Some(call) = self.answer.take() {
            call(answer);
        }
    }

    /// Answers that the sale cannot decide now; the caller retries with the same key.
    pub fn unavailable(self, why: &'static str) {
        self.send(Err(SaleError::Unavailable(why)));
    }
}

impl<T> Drop for ReplySink<T> {
    fn drop(&mut self) {
        if let Some(call) = self.answer.take() {
            call(Err(SaleError::Unavailable(
                "the sale did not answer; retry with the same key",
            )));
        }
    }
}

/// A sink that hands the answer to a future, for callers that await it. The future
/// always resolves: a sink that is dropped unanswered answers `unavailable`.
pub fn reply_channel<T: Send + 'static>() -> (ReplySink<T>, impl Future<Output = Answer<T>>) {
    let (tx, rx) = oneshot::channel();
    let answer = async move {
        rx.await.unwrap_or(Err(SaleError::Unavailable(
            "the sale did not answer; retry with the same key",
        )))
    };
    (ReplySink::new(move |r| drop(tx.send(r))), answer)
}

/// Bounds the requests waiting for one sale (`sales.max_pending_requests`).
#[derive(Debug)]
pub struct Gate {
    pending: AtomicUsize,
    max: usize,
    gauge: prometheus::IntGauge,
}

impl Gate {
    pub fn new(max: usize, gauge: prometheus::IntGauge) -> Arc<Self> {
        Arc::new(Self {
            pending: AtomicUsize::new(0),
            max: max.max(1),
            gauge,
        })
    }

    /// Lets `sink` in, holding a permit until it is answered; or answers it at once with
    /// `unavailable` when the sale already has its maximum of requests waiting.
    pub fn admit<T>(self: &Arc<Self>, mut sink: ReplySink<T>) -> Option<ReplySink<T>> {
        let admitted = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            sink.unavailable("the sale is busy; retry shortly with the same key");
            return None;
        }
        self.gauge.inc();
        sink._permit = Some(Permit(self.clone()));
        Some(sink)
    }

    /// Requests admitted and not answered yet.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}

/// One admitted request; released when its sink is answered or dropped.
#[derive(Debug)]
pub struct Permit(Arc<Gate>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
        self.0.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable<T>(answer: Answer<T>) -> bool {
        matches!(answer, Err(SaleError::Unavailable(_)))
    }

    #[tokio::test]
    async fn a_dropped_sink_answers_unavailable() {
        let (sink, answer) = reply_channel::<()>();
        drop(sink);
        assert!(unavailable(answer.await));
    }

    #[tokio::test]
    async fn the_gate_admits_up_to_its_bound_and_frees_on_answer() {
        let gate = Gate::new(2, prometheus::IntGauge::new("g", "g").unwrap());
        let (a, _ra) = reply_channel::<()>();
        let (b, _rb) = reply_channel::<()>();
        let (c, rc) = reply_channel::<()>();
        let a = gate.admit(a).unwrap();
        let _b = gate.admit(b).unwrap();
        assert!(gate.admit(c).is_none());
        assert!(unavailable(rc.await));
        a.send(Ok(()));
        assert_eq!(gate.pending(), 1);
        let (d, _rd) = reply_channel::<()>();
        assert!(gate.admit(d).is_some());
    }
}
