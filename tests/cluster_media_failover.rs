//! Video across an owner failover, with real server processes: the anchor publishes to
//! the room's node A; a player on node C — which has no viewer socket in the room, so it
//! does not take the room over — watches through C's own SFU. A is killed (`kill -9`);
//! B, which has a viewer in the room, takes it over after the lease; the anchor publishes
//! again (through C, forwarded to B). C notices its pull broke, pulls from B, and the
//! player gets video again on the connection it had: a freeze, not a reconnect.

mod common;

use std::time::{Duration, Instant};

use common::Client;
use common::media::WAIT;
use common::node::{LEASE_MS, Node};
use common::redis::RedisServer;
use lockstep::auth::{Auth, Claims, unix_now};
use lockstep_load::rtc::{PublishOptions, Publisher, Subscriber};
use lockstep_protocol::{Role, ServerMsg};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The tests here start three node processes each: one at a time, so a test's timing is
/// not another's load.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn token(role: Role, sub: &str, room: Option<&str>) -> String {
    Auth::new(&lockstep::Config::default().auth.secret).issue(&Claims {
        sub: sub.into(),
        role,
        room: room.map(Into::into),
        merchant: None,
        name: None,
        exp: unix_now() + 600,
    })
}

/// Publishes to `room` through `node` until the token fires.
async fn publish(node: &Node, room: &str) -> CancellationToken {
    let publisher = Publisher::connect(
        &node.url(""),
        room,
        &token(Role::Anchor, "anchor", Some(room)),
    )
    .await
    .expect("WHIP publish");
    let stop = CancellationToken::new();
    let until = stop.clone();
    tokio::spawn(async move {
        publisher
            .stream(&PublishOptions::default(), until.cancelled_owned())
            .await;
    });
    stop
}

/// Opens `room` on `node` with its anchor's control channel and goes live; the anchor's
/// socket (keep it: the room ends with it).
async fn live_room(node: &Node, room: &str) -> Client {
    let mut anchor = Client::connect(&node.ws(&format!("/ws/rooms/{room}/control"))).await;
    anchor
        .send(json!({"type":"join","protocol":1,"token":token(Role::Anchor, "anchor", Some(room))}))
        .await;
    assert!(matches!(anchor.recv().await, ServerMsg::Welcome { .. }));
    anchor
        .send(json!({"type":"control","cmd":"go_live","id":1}))
        .await;
    anchor
        .recv_until(|m| matches!(m, ServerMsg::Ack { id: Some(1), .. }).then_some(()))
        .await;
    anchor
}

/// A WHEP player on `node` once the stream is live there, with its first video.
async fn play(node: &Node, room: &str) -> Subscriber {
    let deadline = Instant::now() + WAIT;
    let player = loop {
        // The stream goes live a moment after the publisher connects.
        match Subscriber::whep(&node.url(""), room, None).await {
            Ok(p) => break p,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no WHEP on port {}: {e}",
                    node.port
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    player.wait_video(100, WAIT).await.unwrap();
    player
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_player_keeps_its_connection_across_an_owner_failover() {
    let _one = ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    // Connections to a dead node are noticed within ~2 s.
    let env = [
        ("LOCKSTEP_MEDIA__ICE_DISCONNECTED_TIMEOUT_MS", "500"),
        ("LOCKSTEP_MEDIA__ICE_FAILED_TIMEOUT_MS", "1500"),
        ("LOCKSTEP_MEDIA__RECORD", "false"),
    ];
    let a = Node::start_with(&redis, "a", &env).await;
    let b = Node::start_with(&redis, "b", &env).await;
    let c = Node::start_with(&redis, "c", &env).await;
    let room = "tv";
    let _anchor = live_room(&a, room).await;
    let first = publish(&a, room).await;
    // B has a viewer in the room (it takes the room over); C only a player.
    let mut watcher = Client::connect(&b.ws(&format!("/ws/rooms/{room}"))).await;
    watcher
        .send(json!({"type":"join","protocol":1,"token":token(Role::Viewer, "vic", None)}))
        .await;
    assert!(matches!(watcher.recv().await, ServerMsg::Welcome { .. }));
    let player = play(&c, room).await;

    a.signal("-KILL");
    let killed = Instant::now();
    first.cancel();
    // The anchor publishes again once B runs the room (WHIP through C reaches B).
    let deadline = killed + Duration::from_millis(4 * LEASE_MS) + WAIT;
    let second = loop {
        match Publisher::connect(&c.url(""), room, &token(Role::Anchor, "anchor", Some(room))).await
        {
            Ok(publisher) => {
                let stop = CancellationToken::new();
                let until = stop.clone();
                tokio::spawn(async move {
                    publisher
                        .stream(&PublishOptions::default(), until.cancelled_owned())
                        .await;
                });
                break stop;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the anchor could not publish again: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let republished = killed.elapsed();
    // The same player, on the same connection, gets video again.
    let before = player.stats();
    player
        .wait_video(before.video_packets + 100, WAIT)
        .await
        .expect("the edge's player got video again without reconnecting");
    let frames = player.stats().frames;
    let killed_us = lockstep_load::rtc::synthetic::now_us() - killed.elapsed().as_micros() as u64;
    let last_before = frames.iter().rev().find(|f| f.1 < killed_us).map(|f| f.1);
    let first_after = frames.iter().find(|f| f.1 > killed_us).map(|f| f.1);
    let freeze_ms = match (last_before, first_after) {
        (Some(x), Some(y)) => (y - x) / 1000,
        _ => 0,
    };
    println!(
        "owner killed; the anchor published again after {republished:?}; the edge player's video froze {freeze_ms} ms"
    );
    assert!(first_after.is_some(), "no frame after the failover");
    assert!(
        player.stats().keyframes >= 2,
        "it started again on a keyframe"
    );
    second.cancel();
}

/// The longest gap (ms) between two video frames a player received.
fn longest_gap_ms(player: &Subscriber) -> u64 {
    let frames = player.stats().frames;
    frames
        .windows(2)
        .map(|w| w[1].1.saturating_sub(w[0].1) / 1000)
        .max()
        .unwrap_or(0)
}

/// A stalled edge (its process frozen with `SIGSTOP` for two seconds) loses packets for
/// that edge only: the players on the owner and on the other edge get every packet,
/// without a gap, while the frozen edge's player sees one; once the edge resumes its
/// player gets video again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_edge_loses_packets_for_that_edge_only() {
    let _one = ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    let env = [("LOCKSTEP_MEDIA__RECORD", "false")];
    let a = Node::start_with(&redis, "a", &env).await;
    let b = Node::start_with(&redis, "b", &env).await;
    let c = Node::start_with(&redis, "c", &env).await;
    let room = "tv";
    let _anchor = live_room(&a, room).await;
    let stream = publish(&a, room).await;
    let mut players = Vec::new();
    for node in [&a, &b, &c] {
        players.push(play(node, room).await);
    }
    let lost_before: Vec<u64> = players.iter().map(|p| p.stats().lost).collect();
    b.signal("-STOP");
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.signal("-CONT");
    let resumed = players[1].stats().video_packets;
    players[1]
        .wait_video(resumed + 50, WAIT)
        .await
        .expect("the stalled edge's player gets video again");
    for (i, name) in [(0, "owner"), (2, "other edge")] {
        assert_eq!(
            players[i].stats().lost,
            lost_before[i],
            "the {name}'s player lost packets while another edge stalled"
        );
        assert!(
            longest_gap_ms(&players[i]) < 500,
            "the {name}'s player had a {} ms gap",
            longest_gap_ms(&players[i])
        );
    }
    assert!(
        longest_gap_ms(&players[1]) >= 1500,
        "the stalled edge's player saw no gap ({} ms)",
        longest_gap_ms(&players[1])
    );
    stream.cancel();
}
