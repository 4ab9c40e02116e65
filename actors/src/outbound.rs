//! The bounded outbound queue between a room (many producers: room actors on any arbiter)
//! and one session's socket writer (the single consumer).
//!
//! Fan-out pushes the same shared frame bytes into every session's queue without waiting.
//! A session whose queue is full is *cut*: the queue flips to `Overflowed` once, drops what
//! it held, refuses everything after, and the writer closes the socket with
//! [`CloseCode::SlowConsumer`]. A slow viewer therefore costs the room one failed push,
//! never a wait. A graceful close (`close`) is delivered after the frames queued before it.
//!
//! Clock-sync requests do not wait in that queue: [`Outbound::push_time_sync`] puts them
//! beside it, the writer answers them before the frames waiting, and stamps the answer's
//! send time when it writes it — so a backlog of room frames does not make a client's
//! clock estimate wrong (an answer stamped early and sent late reads as a skewed clock).
//! WebSocket control frames the reader owes the client (a heartbeat ping, the pong to a
//! client's ping) wait beside it the same way ([`Outbound::push_control`]): only the
//! writer touches the socket, so they go through it, ahead of the room's frames.

use std::collections::VecDeque;

use bytestring::ByteString;
use lockstep_protocol::CloseCode;

use crate::sync::{Mutex, Notify};

/// Result of [`Outbound::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The frame will be written.
    Queued,
    /// The queue was full: this push cut the session. Reported exactly once per queue.
    Overflowed,
    /// The queue is closed, cut or its writer is gone; the frame was dropped.
    Closed,
}

/// What the writer should do next, from [`Outbound::drain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Frames were moved into the buffer (possibly none); keep going.
    Open,
    /// Write the frames moved into the buffer, then close with this code.
    Close(CloseCode),
}

#[derive(Debug)]
enum Status {
    Open,
    Closing(CloseCode),
    Done,
}

/// A `time_sync` waiting for its answer: the client's send time and when the server read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncRequest {
    pub t0: f64,
    pub t1: f64,
}

/// A WebSocket control frame for the writer to send ahead of the queued frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// A heartbeat ping (empty payload).
    Ping,
    /// The answer to a client's ping, carrying its payload.
    Pong(Vec<u8>),
}

#[derive(Debug)]
struct State {
    frames: VecDeque<ByteString>,
    syncs: Vec<SyncRequest>,
    controls: Vec<Control>,
    status: Status,
}

/// A bounded single-consumer frame queue with an explicit slow-consumer policy.
#[derive(Debug)]
pub struct Outbound {
    state: Mutex<State>,
    wake: Notify,
    capacity: usize,
}

impl Outbound {
    /// At most this many clock-sync requests wait unanswered; later ones are ignored (a
    /// client syncs with a handful of exchanges, one at a time).
    pub const MAX_WAITING_SYNCS: usize = 8;

    /// At most this many control frames wait unsent; later ones are dropped (a client
    /// that pings faster than it reads gets no more pongs, and a heartbeat ping
    /// only matters once).
    pub const MAX_WAITING_CONTROLS: usize = 8;

    /// A queue holding at most `capacity` frames (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                syncs: Vec::new(),
                controls: Vec::new(),
                status: Status::Open,
            }),
            wake: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    /// Queues a frame without waiting. See [`Push`] for the outcomes.
    pub fn push(&self, frame: ByteString) -> Push {
        let mut state = self.lock();
        if !matches!(state.status, Status::Open) {
            return Push::Closed;
        }
        if state.frames.len() >= self.capacity {
            state.frames.clear();
            state.status = Status::Closing(CloseCode::SlowConsumer);
            drop(state);
            self.wake.notify_one();
            return Push::Overflowed;
        }
        state.frames.push_back(frame);
        drop(state);
        self.wake.notify_one();
        Push::Queued
    }

    /// Queues a clock-sync request ahead of the frames. False (and ignored) when the
    /// queue is not open or [`Self::MAX_WAITING_SYNCS`] already wait.
    pub fn push_time_sync(&self, request: SyncRequest) -> bool {
        let mut state = self.lock();
        if !matches!(state.status, Status::Open) || state.syncs.len() >= Self::MAX_WAITING_SYNCS {
            return false;
        }
        state.syncs.push(request);
        drop(state);
        self.wake.notify_one();
        true
    }

    /// Moves the waiting clock-sync requests into `out` (the writer answers them first).
    pub fn take_time_syncs(&self, out: &mut Vec<SyncRequest>) {
        out.append(&mut self.lock().syncs);
    }

    /// Queues a control frame ahead of the frames. False (and dropped) when the queue
    /// is not open or [`Self::MAX_WAITING_CONTROLS`] already wait.
    pub fn push_control(&self, control: Control) -> bool {
        let mut state = self.lock();
        if !matches!(state.status, Status::Open)
            || state.controls.len() >= Self::MAX_WAITING_CONTROLS
        {
            return false;
        }
        state.controls.push(control);
        drop(state);
        self.wake.notify_one();
        true
    }

    /// Moves the waiting control frames into `out` (the writer sends them first).
    pub fn take_controls(&self, out: &mut Vec<Control>) {
        out.append(&mut self.lock().controls);
    }

    /// Asks the writer to close with `code` after the frames already queued.
    /// Has no effect if the queue is already closing or done.
    pub fn close(&self, code: CloseCode) {
        let mut state = self.lock();
        if matches!(state.status, Status::Open) {
            state.status = Status::Closing(code);
            drop(state);
            self.wake.notify_one();
        }
    }

    /// Marks the writer gone (socket closed): every later push returns [`Push::Closed`].
    pub fn finish(&self) {
        let mut state = self.lock();
        state.status = Status::Done;
        state.frames.clear();
        state.syncs.clear();
        state.controls.clear();
    }

    /// Moves every queued frame into `out`; tells the writer whether to close afterwards.
    pub fn drain(&self, out: &mut Vec<ByteString>) -> Drain {
        let mut state = self.lock();
        out.extend(state.frames.drain(..));
        match state.status {
            Status::Open => Drain::Open,
            Status::Closing(code) => Drain::Close(code),
            Status::Done => Drain::Close(CloseCode::GoingAway),
        }
    }

    /// True once the queue overflowed (the session is being cut as a slow consumer).
    pub fn is_cut(&self) -> bool {
        matches!(self.lock().status, Status::Closing(CloseCode::SlowConsumer))
    }

    /// Number of frames waiting.
    pub fn len(&self) -> usize {
        self.lock().frames.len()
    }

    /// True when no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves after a push or close since the last wait (or immediately if one is pending).
    #[cfg(not(lockstep_loom))]
    pub async fn wait(&self) {
        self.wake.notified().await;
    }

    /// Under loom: blocks the model thread until a push or close since the last wait.
    #[cfg(lockstep_loom)]
    pub fn wait_blocking(&self) {
        self.wake.wait();
    }

    fn lock(&self) -> crate::sync::MutexGuard<'_, State> {
        // A panic while holding this lock would be a bug in this module (no user code
        // runs under it); recover the data rather than poison every later push.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(all(test, not(lockstep_loom)))]
mod tests {
    use super::*;

    fn frame(s: &str) -> ByteString {
        ByteString::from(s)
    }

    #[test]
    fn delivers_in_order_then_closes() {
        let q = Outbound::new(4);
        assert_eq!(q.push(frame("a")), Push::Queued);
        assert_eq!(q.push(frame("b")), Push::Queued);
        q.close(CloseCode::RoomEnded);
        assert_eq!(q.push(frame("c")), Push::Closed);
        let mut out = Vec::new();
        assert_eq!(q.drain(&mut out), Drain::Close(CloseCode::RoomEnded));
        assert_eq!(out, vec![frame("a"), frame("b")]);
    }

    #[test]
    fn overflow_cuts_once_and_drops_backlog() {
        let q = Outbound::new(2);
        assert_eq!(q.push(frame("a")), Push::Queued);
        assert_eq!(q.push(frame("b")), Push::Queued);
        assert_eq!(q.push(frame("c")), Push::Overflowed);
        assert_eq!(q.push(frame("d")), Push::Closed);
        let mut out = Vec::new();
        assert_eq!(q.drain(&mut out), Drain::Close(CloseCode::SlowConsumer));
        assert!(out.is_empty());
    }

    #[test]
    fn finished_queue_refuses_pushes() {
        let q = Outbound::new(2);
        q.finish();
        assert_eq!(q.push(frame("a")), Push::Closed);
    }

    #[test]
    fn time_syncs_wait_beside_the_frames_and_are_bounded() {
        let q = Outbound::new(4);
        q.push(frame("a"));
        let sync = |t0| SyncRequest { t0, t1: 1.0 };
        for i in 0..Outbound::MAX_WAITING_SYNCS {
            assert!(q.push_time_sync(sync(i as f64)));
        }
        assert!(!q.push_time_sync(sync(99.0)));
        let mut syncs = Vec::new();
        q.take_time_syncs(&mut syncs);
        assert_eq!(syncs.len(), Outbound::MAX_WAITING_SYNCS);
        assert_eq!(syncs[0], sync(0.0));
        // The frames are still there, in order, after the syncs were taken.
        let mut out = Vec::new();
        assert_eq!(q.drain(&mut out), Drain::Open);
        assert_eq!(out, vec![frame("a")]);
        q.close(CloseCode::RoomEnded);
        assert!(!q.push_time_sync(sync(1.0)));
    }

    #[test]
    fn control_frames_wait_beside_the_frames_and_are_bounded() {
        let q = Outbound::new(4);
        q.push(frame("a"));
        assert!(q.push_control(Control::Pong(b"x".to_vec())));
        for _ in 1..Outbound::MAX_WAITING_CONTROLS {
            assert!(q.push_control(Control::Ping));
        }
        assert!(!q.push_control(Control::Ping));
        let mut controls = Vec::new();
        q.take_controls(&mut controls);
        assert_eq!(controls.len(), Outbound::MAX_WAITING_CONTROLS);
        assert_eq!(controls[0], Control::Pong(b"x".to_vec()));
        let mut out = Vec::new();
        assert_eq!(q.drain(&mut out), Drain::Open);
        assert_eq!(out, vec![frame("a")]);
        q.close(CloseCode::RoomEnded);
        assert!(!q.push_control(Control::Ping));
    }

    #[tokio::test]
    async fn wake_before_wait_is_not_lost() {
        let q = Outbound::new(2);
        q.push(frame("a"));
        tokio::time::timeout(std::time::Duration::from_secs(5), q.wait())
            .await
            .expect("a push before wait leaves a permit");
    }
}
