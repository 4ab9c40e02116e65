//! How a sale answers: every request carries a [`ReplySink`] that is called exactly once
//! — with the decision once it is durable, or, if the request is dropped unanswered (the
//! actor stopped, the sale is being rebuilt), with `unavailable` so the caller retries.
//! A sink may hold a [`Permit`] of the sale's admission [`Gate`], released with it, so
//! the number of requests waiting for one sale is bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lockstep_protocol::ErrorCode;
use tokio::sync::oneshot;

use super::core::Reply;

/// The answer given to a request nobody decided.
pub fn unavailable(message: &str) -> Reply {
    Reply::Closed(Err((ErrorCode::Unavailable, message.to_owned())))
}

/// Called once with the answer to a request.
pub struct ReplySink {
    answer: Option<Box<dyn FnOnce(Reply) + Send>>,
    _permit: Option<Permit>,
}

impl ReplySink {
    pub fn new(answer: impl FnOnce(Reply) + Send + 'static) -> Self {
        Self {
            answer: Some(Box::new(answer)),
            _permit: None,
        }
    }

    /// Answers the request.
    pub fn send(mut self, reply: Reply) {
        if let Some(answer) = self.answer.take() {
            answer(reply);
        }
    }
}

impl Drop for ReplySink {
    fn drop(&mut self) {
        if let Some(answer) = self.answer.take() {
            answer(unavailable(
                "the sale did not answer; retry with the same key",
            ));
        }
    }
}

/// A sink that hands the reply to a oneshot channel, for callers that await it.
pub fn reply_channel() -> (ReplySink, oneshot::Receiver<Reply>) {
    let (tx, rx) = oneshot::channel();
    (ReplySink::new(move |r| drop(tx.send(r))), rx)
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
    pub fn admit(self: &Arc<Self>, mut sink: ReplySink) -> Option<ReplySink> {
        let admitted = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            sink.send(unavailable(
                "the sale is busy; retry shortly with the same key",
            ));
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

    fn code(reply: &Reply) -> Option<ErrorCode> {
        match reply {
            Reply::Closed(Err((code, _))) => Some(*code),
            _ => None,
        }
    }

    #[test]
    fn a_dropped_sink_answers_unavailable() {
        let (sink, mut rx) = reply_channel();
        drop(sink);
        assert_eq!(code(&rx.try_recv().unwrap()), Some(ErrorCode::Unavailable));
    }

    #[test]
    fn the_gate_admits_up_to_its_bound_and_frees_on_answer() {
        let gate = Gate::new(2, prometheus::IntGauge::new("g", "g").unwrap());
        let (a, _ra) = reply_channel();
        let (b, _rb) = reply_channel();
        let (c, mut rc) = reply_channel();
        let a = gate.admit(a).unwrap();
        let _b = gate.admit(b).unwrap();
        assert!(gate.admit(c).is_none());
        assert_eq!(code(&rc.try_recv().unwrap()), Some(ErrorCode::Unavailable));
        a.send(Reply::Closed(Ok(())));
        assert_eq!(gate.pending(), 1);
        let (d, _rd) = reply_channel();
        assert!(gate.admit(d).is_some());
    }
}
