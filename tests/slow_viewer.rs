//! A viewer that stops reading is cut with 4001 while everyone else keeps receiving.

mod common;

use common::{Ended, TestServer, test_config};
use futures_util::SinkExt;
use lockstep_protocol::ServerMsg;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// The anchor says `count` comments of `text`, each once the previous one reached
/// `pacer`, so every comment travels in its own frame (the anchor's own copies are read
/// and dropped).
async fn say_paced(anchor: common::Client, pacer: &mut common::Client, count: usize, text: &str) {
    let (mut anchor_tx, _acks) = anchor.split_acks();
    for i in 0..count {
        let say = json!({"type":"control","cmd":"say","text":format!("{i} {text}")});
        anchor_tx
            .send(Message::text(say.to_string()))
            .await
            .unwrap();
        let prefix = format!("{i} ");
        pacer
            .recv_until(|m| match m {
                ServerMsg::Tick { comments, .. }
                    if comments.iter().any(|c| c.text.starts_with(&prefix)) =>
                {
                    Some(())
                }
                _ => None,
            })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_viewer_is_cut_and_others_keep_receiving() {
    let mut cfg = test_config();
    cfg.session.outbound_queue_frames = 8;
    cfg.room.tick_ms = 5;
    cfg.server.socket_send_buffer_bytes = 16 * 1024;
    cfg.session.msg_rate_per_sec = 10_000.0;
    cfg.session.msg_burst = 10_000;
    cfg.session.close_grace_ms = 30_000;
    cfg.room.comment_max_chars = 4000;
    cfg.session.max_frame_bytes = 16 * 1024;
    let server = TestServer::start(cfg);
    let anchor = server.open_room("r1").await;
    // The slow viewer joins, then never reads while the room talks.
    let mut slow =
        common::Client::connect_small_buffer(server.addr, &server.ws_url("/ws/rooms/r1")).await;
    slow.send(json!({"type":"join","protocol":1,"token":server.viewer_token("slow")}))
        .await;
    assert!(matches!(slow.recv().await, ServerMsg::Welcome { .. }));
    let (mut pacer, _) = server.join_viewer("r1", Some("pacer")).await;
    let mut fast = Vec::new();
    for i in 0..3 {
        fast.push(server.join_viewer("r1", Some(&format!("fast{i}"))).await.0);
    }
    const SAYS: usize = 300;
    let text = "x".repeat(3000);
    let readers: Vec<_> = fast
        .into_iter()
        .map(|mut v| {
            tokio::spawn(async move {
                let mut seen = 0;
                while seen < SAYS {
                    seen += v
                        .recv_until(|m| match m {
                            ServerMsg::Tick { comments, .. } if !comments.is_empty() => {
                                Some(comments.len())
                            }
                            _ => None,
                        })
                        .await;
                }
                seen
            })
        })
        .collect();
    // The anchor keeps reading (it receives the broadcasts too). Each comment is sent once
    // the previous one reached the pacer, so every comment travels in its own frame and
    // the slow viewer's backlog grows frame by frame.
    say_paced(anchor, &mut pacer, SAYS, &text).await;
    for r in readers {
        assert_eq!(r.await.unwrap(), SAYS, "a fast viewer missed comments");
    }
    // Reading again, the slow viewer finds the close that cut it.
    assert_eq!(slow.ended().await, Ended::Closed(4001));
    assert_eq!(server.metric("lockstep_slow_viewer_cuts_total").await, 1.0);
    assert!(server.metric("lockstep_queue_drops_total").await >= 1.0);
}

/// A viewer behind on reading still gets its clock-sync answer ahead of the room's frames
/// waiting for it, stamped when it was written — a clock estimate made during a busy
/// moment is not skewed by the backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_sync_answers_overtake_a_backlog() {
    let mut cfg = test_config();
    cfg.session.outbound_queue_frames = 1_000;
    cfg.room.tick_ms = 5;
    cfg.server.socket_send_buffer_bytes = 16 * 1024;
    cfg.session.msg_rate_per_sec = 10_000.0;
    cfg.session.msg_burst = 10_000;
    cfg.room.comment_max_chars = 4000;
    cfg.session.max_frame_bytes = 16 * 1024;
    cfg.session.close_grace_ms = 30_000;
    let server = TestServer::start(cfg);
    let anchor = server.open_room("r1").await;
    let mut behind =
        common::Client::connect_small_buffer(server.addr, &server.ws_url("/ws/rooms/r1")).await;
    behind
        .send(json!({"type":"join","protocol":1,"token":server.viewer_token("behind")}))
        .await;
    assert!(matches!(behind.recv().await, ServerMsg::Welcome { .. }));
    let (mut pacer, _) = server.join_viewer("r1", Some("pacer")).await;
    // 300 frames of 3 KB each are sent to `behind`, which does not read: far more than
    // its socket buffers hold, so most of them wait in its queue.
    const SAYS: usize = 300;
    let text = "x".repeat(3000);
    say_paced(anchor, &mut pacer, SAYS, &text).await;
    behind.send(json!({"type":"time_sync","t0":1.0})).await;
    let mut comments_before = 0;
    let (t1, t2) = loop {
        match behind.recv().await {
            ServerMsg::TimeSync { t0, t1, t2 } => {
                assert_eq!(t0, 1.0);
                break (t1, t2);
            }
            ServerMsg::Tick { comments, .. } => comments_before += comments.len(),
            _ => {}
        }
    };
    assert!(
        comments_before < SAYS / 2,
        "the answer waited behind {comments_before} of {SAYS} queued comments"
    );
    assert!(t2 >= t1, "answered at {t2} before it was read at {t1}");
    // The backlog is still delivered, in full, after the answer.
    let mut rest = comments_before;
    while rest < SAYS {
        if let ServerMsg::Tick { comments, .. } = behind.recv().await {
            rest += comments.len();
        }
    }
    assert_eq!(rest, SAYS);
}
