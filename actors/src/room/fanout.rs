//! The room's list of session queues and the broadcast loop over it.
//!
//! A broadcast is encoded once by the caller; here the same `ByteString` (a shared,
//! reference-counted buffer) is pushed into every queue. Pushing never waits: a full queue
//! cuts that session (see [`crate::outbound`]). The list is a dense `Vec` so the loop is a
//! linear scan; an index map makes removal O(1) by swap-remove.

use std::collections::HashMap;

use bytestring::ByteString;

use super::core::SessionId;
use crate::outbound::{Outbound, Push};
use crate::sync::Arc;

#[derive(Debug, Default)]
pub struct Fanout {
    sessions: Vec<(SessionId, Arc<Outbound>)>,
    index: HashMap<SessionId, usize>,
}

/// What one broadcast did.
#[derive(Debug, Default)]
pub struct Delivery {
    pub queued: u64,
    /// Sessions this broadcast cut; the caller removes them from the room.
    pub cut: Vec<SessionId>,
}

impl Fanout {
    pub fn add(&mut self, session: SessionId, queue: Arc<Outbound>) {
        if let Some(&i) = self.index.get(&session) {
            self.sessions[i].1 = queue;
            return;
        }
        self.index.insert(session, self.sessions.len());
        self.sessions.push((session, queue));
    }

    pub fn remove(&mut self, session: SessionId) -> Option<Arc<Outbound>> {
        let i = self.index.remove(&session)?;
        let (_, queue) = self.sessions.swap_remove(i);
        if let Some((moved, _)) = self.sessions.get(i) {
            self.index.insert(*moved, i);
        }
        Some(queue)
    }

    pub fn get(&self, session: SessionId) -> Option<&Arc<Outbound>> {
        self.index.get(&session).map(|&i| &self.sessions[i].1)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Pushes `frame` to every session.
    pub fn broadcast(&self, frame: &ByteString) -> Delivery {
        let mut delivery = Delivery::default();
        for (session, queue) in &self.sessions {
            match queue.push(frame.clone()) {
                Push::Queued => delivery.queued += 1,
                Push::Overflowed => delivery.cut.push(*session),
                Push::Closed => {}
            }
        }
        delivery
    }

    /// Drains the list, returning every queue (for closing them all).
    pub fn take_all(&mut self) -> Vec<(SessionId, Arc<Outbound>)> {
        self.index.clear();
        std::mem::take(&mut self.sessions)
    }
}

#[cfg(all(test, not(lockstep_loom)))]
mod tests {
    use super::*;

    #[test]
    fn swap_remove_keeps_index_consistent() {
        let mut f = Fanout::default();
        let queues: Vec<_> = (0..4).map(|_| Arc::new(Outbound::new(4))).collect();
        for (i, q) in queues.iter().enumerate() {
            f.add(SessionId(i as u64), q.clone());
        }
        assert!(f.remove(SessionId(0)).is_some());
        assert!(f.remove(SessionId(0)).is_none());
        assert!(Arc::ptr_eq(f.get(SessionId(3)).unwrap(), &queues[3]));
        let d = f.broadcast(&ByteString::from("x"));
        assert_eq!(d.queued, 3);
        assert_eq!(queues[0].len(), 0);
        assert_eq!(queues[1].len(), 1);
    }

    #[test]
    fn broadcast_reports_cut_sessions_once() {
        let mut f = Fanout::default();
        let slow = Arc::new(Outbound::new(1));
        let fast = Arc::new(Outbound::new(8));
        f.add(SessionId(1), slow);
        f.add(SessionId(2), fast.clone());
        let frame = ByteString::from("x");
        assert!(f.broadcast(&frame).cut.is_empty());
        assert_eq!(f.broadcast(&frame).cut, vec![SessionId(1)]);
        assert!(f.broadcast(&frame).cut.is_empty());
        assert_eq!(fast.len(), 3);
    }
}
