//! Saying why a history is not linearizable: the deepest dead end the search reached,
//! described in terms of the history's own buyers, keys and order ids.

use super::*;

impl Search<'_> {
    /// Keeps the explanation of the deepest dead end seen so far.
    pub(super) fn note(&mut self, describe: impl FnOnce(&Self) -> String) {
        let depth = self.total - self.pending;
        if self.best.as_ref().is_none_or(|(d, _)| depth > *d) {
            let reason = describe(self);
            self.best = Some((depth, reason));
        }
    }

    pub(super) fn describe_op(&self, e: usize) -> String {
        format!(
            "op #{e} {:?} recorded {:?}",
            self.history[e].op, self.history[e].ret
        )
    }

    pub(super) fn describe_stuck(&self) -> String {
        let mut msg = self.prefix();
        let (cands, blocking) = self.candidates();
        if let Some(b) = blocking {
            let at = self.history[b].complete.unwrap_or_default();
            let _ = write!(
                msg,
                "; {} and must take effect before it completes at {at}",
                self.describe_op(b)
            );
            let moves = cands.iter().fold((0, 0), |(d, u), &e| {
                (d + self.movement(e).0, u + self.movement(e).1)
            });
            if !self.window_ok(b, moves) {
                msg.push_str(
                    ", but no op invoked before then can bring about a state giving that result",
                );
            }
        }
        let mut shown = 0;
        for &e in &cands {
            let (ans, _) = self.step(e);
            if self.rec[e].is_some_and(|r| r != ans) {
                if shown < 4 {
                    let _ = write!(
                        msg,
                        "; {} but the model answers {}",
                        self.describe_op(e),
                        self.show(ans)
                    );
                }
                shown += 1;
            }
        }
        match shown {
            0 => msg.push_str("; every op that fits here leads to a dead end"),
            1..=4 => {}
            _ => {
                let _ = write!(msg, "; and {} more mismatching ops", shown - 4);
            }
        }
        msg
    }

    pub(super) fn describe_prune(&self, p: Prune) -> String {
        let mut msg = self.prefix();
        let _ = match p {
            Prune::Need(c) => {
                let Crossing {
                    hi, down, event, ..
                } = self.crossings[c];
                let when = if down {
                    "just before it"
                } else {
                    "right after it"
                };
                let top = u64::from(self.remaining) + self.rise;
                write!(
                    msg,
                    "; then {}, which needs a stock of {hi} {when}, but the stock can rise to at most {top}",
                    self.describe_op(event)
                )
            }
            Prune::Buyer(e) => {
                let Act::Reserve { buyer, .. } = self.acts[e] else {
                    return msg;
                };
                let (active, limit) = (self.active[buyer], self.spec.per_buyer_limit);
                let want = if self.rec[e] == Some(Ans::LimitExceeded) {
                    "rise"
                } else {
                    "drop"
                };
                write!(
                    msg,
                    "; then {}, but its buyer's active quantity ({active}, limit {limit}) can no longer {want} enough for that",
                    self.describe_op(e)
                )
            }
            Prune::SoldOut(e) => {
                write!(
                    msg,
                    "; then {}, but the stock can no longer drop below its quantity",
                    self.describe_op(e)
                )
            }
            Prune::Levels => {
                let b = (0..self.cross.len())
                    .find(|&b| self.level_bad(b, self.cross[b], self.remaining))
                    .unwrap_or_default();
                let d = self.cross[b];
                let steps = if d >= 0 {
                    format!("down from {} to {b} {d}", b + 1)
                } else {
                    format!("up from {b} to {} {}", b + 1, -d)
                };
                let _ = write!(
                    msg,
                    "; the pending Accepted/Cancelled results cannot be chained: they step the stock {steps} more time(s) than back"
                );
                let covering = self
                    .needs
                    .iter()
                    .map(|&(_, c)| self.crossings[c])
                    .filter(|c| (c.lo..c.hi).contains(&b));
                for c in covering.take(4) {
                    let _ = write!(msg, "; {}", self.describe_op(c.event));
                }
                Ok(())
            }
        };
        msg
    }

    pub(super) fn prefix(&self) -> String {
        format!(
            "not linearizable: the longest consistent prefix linearizes {} of {} completed ops (remaining = {})",
            self.total - self.pending,
            self.total,
            self.remaining
        )
    }

    pub(super) fn show(&self, ans: Ans) -> String {
        match ans {
            Ans::Accepted { order, remaining } => {
                format!(
                    "Accepted {{ order_id: {:?}, remaining: {remaining} }}",
                    self.order_names[order as usize]
                )
            }
            Ans::DuplicateId => {
                "Accepted, but with an order id already used by another order".to_owned()
            }
            other => format!("{other:?}"),
        }
    }
}
