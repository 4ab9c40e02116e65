//! loom models of the outbound queue: room threads push while a session's writer drains.
//! Run with `RUSTFLAGS="--cfg lockstep_loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p lockstep-actors --test loom_outbound`
//! (the project's own cfg: under `--cfg loom` tokio compiles out what actix-rt needs).
#![cfg(lockstep_loom)]

use bytestring::ByteString;
use lockstep_actors::outbound::{Control, Drain, Outbound, Push, SyncRequest};
use lockstep_actors::sync::Arc;
use lockstep_protocol::CloseCode;
use loom::thread;

/// The writer's loop under loom: drain, and when nothing came, block until woken.
/// A lost wake-up leaves it blocked forever, which loom reports as a deadlock.
fn drain_until(
    q: &Outbound,
    mut done: impl FnMut(&[ByteString], Option<CloseCode>) -> bool,
) -> (Vec<ByteString>, Option<CloseCode>) {
    let mut got = Vec::new();
    loop {
        let mut batch = Vec::new();
        let drain = q.drain(&mut batch);
        let closed = match drain {
            Drain::Close(code) => Some(code),
            Drain::Open => None,
        };
        let progressed = !batch.is_empty();
        got.extend(batch);
        if done(&got, closed) || closed.is_some() {
            return (got, closed);
        }
        if !progressed {
            q.wait_blocking();
        }
    }
}

#[test]
fn concurrent_pushes_are_delivered_once_in_order() {
    loom::model(|| {
        let q = Arc::new(Outbound::new(8));
        let producers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || {
                    for i in 0..2 {
                        assert_eq!(q.push(ByteString::from(format!("{p}{i}"))), Push::Queued);
                    }
                })
            })
            .collect();
        let (got, closed) = drain_until(&q, |got, _| got.len() == 4);
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(closed, None);
        let mut seen: Vec<&str> = got.iter().map(|f| &**f).collect();
        let a: Vec<&str> = seen
            .iter()
            .copied()
            .filter(|f| f.starts_with('a'))
            .collect();
        let b: Vec<&str> = seen
            .iter()
            .copied()
            .filter(|f| f.starts_with('b'))
            .collect();
        assert_eq!(a, ["a0", "a1"], "per-producer order kept");
        assert_eq!(b, ["b0", "b1"], "per-producer order kept");
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 4, "nothing lost or duplicated");
    });
}

#[test]
fn overflow_is_reported_exactly_once_and_ends_the_queue() {
    loom::model(|| {
        let q = Arc::new(Outbound::new(1));
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || {
                    (0..2)
                        .map(|i| q.push(ByteString::from(format!("{p}{i}"))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let (got, closed) = drain_until(&q, |got, _| got.len() == 4);
        let outcomes: Vec<Push> = producers
            .into_iter()
            .flat_map(|p| p.join().unwrap())
            .collect();
        let overflows = outcomes.iter().filter(|o| **o == Push::Overflowed).count();
        assert!(overflows <= 1, "a queue is cut at most once: {outcomes:?}");
        if overflows == 1 {
            // The writer learns of the cut (possibly after the frames it already took).
            let closed = closed.or_else(|| {
                let mut rest = Vec::new();
                match q.drain(&mut rest) {
                    Drain::Close(code) => Some(code),
                    Drain::Open => None,
                }
            });
            assert_eq!(closed, Some(CloseCode::SlowConsumer));
        } else {
            assert_eq!(got.len(), 4, "without a cut every frame arrives");
        }
        let queued = outcomes.iter().filter(|o| **o == Push::Queued).count();
        assert!(got.len() <= queued, "only accepted frames are written");
    });
}

#[test]
fn frames_queued_before_close_are_written_before_it() {
    loom::model(|| {
        let q = Arc::new(Outbound::new(4));
        let pusher = {
            let q = q.clone();
            thread::spawn(move || q.push(ByteString::from("last words")))
        };
        let closer = {
            let q = q.clone();
            thread::spawn(move || q.close(CloseCode::RoomEnded))
        };
        let (got, closed) = drain_until(&q, |_, closed| closed.is_some());
        let pushed = pusher.join().unwrap();
        closer.join().unwrap();
        assert_eq!(closed, Some(CloseCode::RoomEnded));
        match pushed {
            Push::Queued => assert_eq!(got.len(), 1, "an accepted frame precedes the close"),
            Push::Closed => assert!(got.is_empty()),
            Push::Overflowed => unreachable!("capacity 4 cannot overflow with one frame"),
        }
    });
}

/// One thread pushes a frame while another runs `side` (a push into one of the writer's
/// other lanes: controls, clock syncs); the writer loops as `write_loop` does — controls,
/// syncs, then frames at each wake-up, blocking when nothing came — until it has the
/// frame and one item from the side lane. A lost wake-up leaves it blocked: a deadlock
/// to loom. Returns the controls and syncs it took.
fn beside_a_frame(
    side: impl FnOnce(&Outbound) + Send + 'static,
) -> (Vec<Control>, Vec<SyncRequest>) {
    let q = Arc::new(Outbound::new(8));
    let frames = {
        let q = q.clone();
        thread::spawn(move || {
            assert_eq!(q.push(ByteString::from("f")), Push::Queued);
        })
    };
    let other = {
        let q = q.clone();
        thread::spawn(move || side(&q))
    };
    let (mut controls, mut syncs, mut got) = (Vec::new(), Vec::new(), Vec::new());
    while controls.len() + syncs.len() == 0 || got.is_empty() {
        let before = (controls.len() + syncs.len(), got.len());
        q.take_controls(&mut controls);
        q.take_time_syncs(&mut syncs);
        assert_eq!(q.drain(&mut got), Drain::Open);
        if (controls.len() + syncs.len(), got.len()) == before {
            q.wait_blocking();
        }
    }
    frames.join().unwrap();
    other.join().unwrap();
    assert_eq!(got, vec![ByteString::from("f")]);
    (controls, syncs)
}

/// A clock-sync request pushed while a frame is pushed from another thread is taken by
/// the writer, and neither push loses the writer's wake-up.
#[test]
fn a_time_sync_beside_frames_is_never_lost() {
    loom::model(|| {
        let sync = SyncRequest { t0: 1.0, t1: 2.0 };
        let (controls, syncs) = beside_a_frame(move |q| assert!(q.push_time_sync(sync)));
        assert!(controls.is_empty());
        assert_eq!(syncs, vec![sync]);
    });
}

/// A control frame (a heartbeat ping, a pong) pushed by the reader while a room pushes a
/// frame reaches the writer; neither push loses the writer's wake-up.
#[test]
fn a_control_frame_beside_frames_is_never_lost() {
    loom::model(|| {
        let (controls, syncs) = beside_a_frame(|q| assert!(q.push_control(Control::Pong(vec![7]))));
        assert_eq!(controls, vec![Control::Pong(vec![7])]);
        assert!(syncs.is_empty());
    });
}
