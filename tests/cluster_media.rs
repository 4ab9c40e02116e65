//! Cluster mode, video across nodes: the anchor publishes to the room's node; viewers on
//! every node get their video from their own node's SFU (each node's subscriber count),
//! each other node pulling the stream from the room's node once whatever its number of
//! viewers (one uplink per edge at the owner, one pull per edge), with the frames under
//! the same RTP timestamps on every node (the room's media clock, unchanged across the
//! hop). An edge's pull stops once its last viewer left (after `media.pull_linger_ms`).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::TestServer;
use common::media::{WAIT, go_live, ws_subscribe};
use common::redis::RedisServer;
use lockstep_load::rtc::Subscriber;

/// The RTP timestamps of the video frames a subscriber received.
fn frame_times(sub: &Subscriber) -> BTreeSet<u32> {
    sub.stats().frames.iter().map(|(ts, _)| *ts).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_on_every_node_get_the_same_frames_from_their_own_node() {
    let redis = RedisServer::start();
    let mut configs: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|name| redis.node_config(name))
        .collect();
    configs[2].media.pull_linger_ms = 300;
    let nodes: Vec<TestServer> = configs.into_iter().map(TestServer::start).collect();
    let mut anchor = nodes[0].open_room("tv").await;
    let (publisher, stop) = go_live(&nodes[0], &mut anchor, "tv").await;

    // Two players on the room's node A, three on B, two on C and a viewer on C's socket.
    let mut subs = Vec::new();
    for (node, count) in [(0, 2), (1, 3), (2, 2)] {
        for i in 0..count {
            let sub = Subscriber::whep(&nodes[node].url(""), "tv", None)
                .await
                .unwrap_or_else(|e| panic!("WHEP on node {node}: {e}"));
            if i == 0 {
                // The later viewers come once the node plays the stream, so they can
                // start from its relays' cached keyframe group.
                sub.wait_video(1, WAIT)
                    .await
                    .unwrap_or_else(|e| panic!("the first subscriber on node {node}: {e}"));
            }
            subs.push((node, sub));
        }
    }
    let (mut viewer, _) = nodes[2].join_viewer("tv", Some("vic")).await;
    subs.push((2, ws_subscribe(&mut viewer).await));
    for (node, sub) in &subs {
        sub.wait_video(100, WAIT)
            .await
            .unwrap_or_else(|e| panic!("a subscriber on node {node}: {e}"));
        sub.wait_audio(1, WAIT)
            .await
            .unwrap_or_else(|e| panic!("audio on node {node}: {e}"));
    }

    // Each node serves its own viewers; each edge pulls once.
    assert_eq!(
        nodes[0].metric("lockstep_media_subscribers").await as u64,
        2
    );
    assert_eq!(
        nodes[1].metric("lockstep_media_subscribers").await as u64,
        3
    );
    assert_eq!(
        nodes[2].metric("lockstep_media_subscribers").await as u64,
        3
    );
    assert_eq!(nodes[0].metric("lockstep_media_uplinks").await as u64, 2);
    assert_eq!(nodes[1].metric("lockstep_media_pulls").await as u64, 1);
    assert_eq!(nodes[2].metric("lockstep_media_pulls").await as u64, 1);
    assert_eq!(nodes[0].metric("lockstep_media_pulls").await as u64, 0);
    // Later viewers on an edge started from its relays' cached keyframe group.
    assert!(
        nodes[1]
            .metric("lockstep_media_keyframe_cache_hits_total")
            .await as u64
            >= 1
    );

    // The same frames under the same RTP timestamps everywhere: over the second every
    // subscriber was receiving, a frame the owner's player got is one every edge player
    // got under the same timestamp (a frame or two lost on loopback at most).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reference = frame_times(&subs[0].1);
    for (node, sub) in &subs[1..] {
        let theirs = frame_times(sub);
        let (from, to) = (
            *theirs.first().unwrap().max(reference.first().unwrap()),
            *theirs.last().unwrap().min(reference.last().unwrap()),
        );
        let expected: Vec<u32> = reference.range(from..=to).copied().collect();
        let missing = expected.iter().filter(|ts| !theirs.contains(ts)).count();
        assert!(
            expected.len() >= 20 && missing <= 2,
            "node {node}: {missing} of {} frames missing under the owner's timestamps",
            expected.len()
        );
    }
    assert!(
        publisher
            .keyframe_requests
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );

    // C's viewers leave: its pull stops, and A has one uplink left (B's).
    for (node, sub) in &subs {
        if *node == 2
            && let Some(location) = sub.location()
        {
            let status = reqwest::Client::new()
                .delete(nodes[2].url(location))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200, "ending a player's session on C");
            sub.close().await;
        }
    }
    drop(viewer);
    nodes[2]
        .wait_metric("lockstep_media_subscribers", 0.0)
        .await;
    nodes[2].wait_metric("lockstep_media_pulls", 0.0).await;
    nodes[0].wait_metric("lockstep_media_uplinks", 1.0).await;
    // B's viewers still get video.
    let before = subs[2].1.stats().video_packets;
    subs[2].1.wait_video(before + 50, WAIT).await.unwrap();
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_node_s_grant_opens_an_uplink() {
    let redis = RedisServer::start();
    let node = TestServer::start(redis.node_config("a"));
    let mut anchor = node.open_room("tv").await;
    let (_publisher, stop) = go_live(&node, &mut anchor, "tv").await;
    let offer = lockstep_load::rtc::publisher::sample_offer().await.unwrap();
    let ask = |token: Option<String>| {
        let mut req = reqwest::Client::new()
            .post(node.url("/internal/v1/uplink/tv"))
            .json(&serde_json::json!({ "sdp": offer }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(ask(None).await, 401);
    // A player asking a node for a room nobody runs gets the single server's answer.
    let nobody = reqwest::Client::new()
        .post(node.url("/whep/nobody"))
        .header("content-type", "application/sdp")
        .body(offer.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(nobody.status().as_u16(), 404);
    assert_eq!(ask(Some(node.viewer_token("vic"))).await, 403);
    assert_eq!(ask(Some(node.anchor_token("tv"))).await, 403);
    assert_eq!(node.metric("lockstep_media_uplinks").await as u64, 0);
    stop.cancel();
}

/// A join storm on an edge (each new viewer wants a keyframe to start on) reaches the
/// publisher as at most one request per layer per `media.keyframe_request_interval_ms`:
/// the edge folds its viewers' requests into its own upstream ones, and the owner folds
/// those with its own viewers'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyframe_storm_on_an_edge_reaches_the_publisher_throttled() {
    const VIEWERS: usize = 24;
    let redis = RedisServer::start();
    let nodes: Vec<TestServer> = ["a", "b"]
        .iter()
        .map(|name| TestServer::start(redis.node_config(name)))
        .collect();
    let interval = Duration::from_millis(nodes[1].config.media.keyframe_request_interval_ms);
    let mut anchor = nodes[0].open_room("tv").await;
    let (publisher, stop) = go_live(&nodes[0], &mut anchor, "tv").await;
    let first = Subscriber::whep(&nodes[1].url(""), "tv", None)
        .await
        .unwrap();
    first.wait_video(50, WAIT).await.unwrap();
    let asked = || {
        publisher
            .keyframe_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let (before, upstream_before) = (
        asked(),
        nodes[1]
            .metric("lockstep_media_keyframe_requests_total")
            .await as u64,
    );
    let started = Instant::now();
    let edge = nodes[1].url("");
    let joins = (0..VIEWERS).map(|_| Subscriber::whep(&edge, "tv", None));
    let storm: Vec<Subscriber> = futures_util::future::try_join_all(joins).await.unwrap();
    for sub in &storm {
        sub.wait_video(50, WAIT).await.unwrap();
        assert!(
            sub.stats().keyframes >= 1,
            "every viewer started on a keyframe"
        );
    }
    let elapsed = started.elapsed();
    let bound = (elapsed.as_secs_f64() / interval.as_secs_f64()).ceil() as u64 + 1;
    let reached = asked() - before;
    let upstream = nodes[1]
        .metric("lockstep_media_keyframe_requests_total")
        .await as u64
        - upstream_before;
    assert!(
        reached <= bound && upstream <= bound,
        "{VIEWERS} viewers joining over {elapsed:?}: {upstream} requests left the edge, \
         {reached} reached the publisher (at most {bound})"
    );
    stop.cancel();
}
