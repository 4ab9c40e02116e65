//! The SFU over real sockets: a webrtc-rs publisher on WHIP, subscribers on the viewer
//! WebSocket and on WHEP, all over loopback UDP. What a viewer would notice: video and
//! audio arrive, every subscriber gets the same frames, the stream's going live and away
//! is announced, a link drop lands on the media clock, bad requests get clear errors,
//! and nothing is left behind when people leave.

mod common;

use std::time::Duration;

use common::media::{WAIT, go_live, go_live_publisher_only, media_notice, status_of, ws_subscribe};
use common::{TestServer, error_code, test_config};
use lockstep_load::rtc::Subscriber;
use lockstep_protocol::ServerMsg;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_on_websocket_and_whep_receive_the_anchors_stream() {
    let server = TestServer::start(test_config());
    let mut anchor = server.open_room("r1").await;
    let (mut viewer, welcome) = server.join_viewer("r1", None).await;
    let ServerMsg::Welcome { room, .. } = welcome else {
        panic!("welcome expected, got {welcome:?}")
    };
    assert!(!room.media.live, "no stream before the anchor publishes");
    let (publisher, stop) = go_live(&server, &mut anchor, "r1").await;
    let live = media_notice(&mut viewer).await;
    assert!(live.live, "viewers are told the stream is live");
    assert_eq!(live.playout_delay_ms, server.config.media.playout_delay_ms);

    let ws_sub = ws_subscribe(&mut viewer).await;
    let whep_sub = Subscriber::whep(&server.url(""), "r1", None)
        .await
        .expect("WHEP subscribe");
    assert!(whep_sub.location().unwrap().starts_with("/whep/r1/"));
    ws_sub.wait_video(300, WAIT).await.unwrap();
    whep_sub.wait_video(300, WAIT).await.unwrap();
    // Latency of live packets only: a new subscriber first gets the latest keyframe
    // group, sent when it connected and carrying the older send times of its frames.
    let now = lockstep_load::rtc::synthetic::now_us();
    for sub in [&ws_sub, &whep_sub] {
        sub.set_window(now, u64::MAX);
        let seen = sub.stats().video_packets;
        sub.wait_video(seen + 100, WAIT).await.unwrap();
    }
    let (a, b) = (ws_sub.stats(), whep_sub.stats());
    for s in [&a, &b] {
        assert!(s.audio_packets > 10, "audio arrives: {s:?}");
        assert!(s.keyframes >= 1, "a new subscriber starts on a keyframe");
        assert_eq!(s.lost, 0, "no packet lost on loopback");
        assert!(
            s.latency.summary_ms().p99 < 200.0,
            "forwarding latency {:?}",
            s.latency.summary_ms()
        );
    }
    // The same frames carry the same RTP timestamps for every subscriber.
    let b_frames: Vec<u32> = b.frames.iter().map(|f| f.0).collect();
    let common = a.frames.iter().filter(|f| b_frames.contains(&f.0)).count();
    assert!(
        common > 20,
        "both subscribers saw the same frames under one clock"
    );
    assert!(
        publisher
            .keyframe_requests
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1,
        "a new subscriber's keyframe request reached the publisher"
    );
    assert_eq!(server.metric("lockstep_media_subscribers").await, 2.0);

    // The anchor stops: every viewer is told; subscriptions are dropped.
    stop.cancel();
    assert_eq!(publisher.stop().await.unwrap(), 200);
    assert!(!media_notice(&mut viewer).await.live);
    server.wait_metric("lockstep_media_subscribers", 0.0).await;
    server.wait_metric("lockstep_media_publishers", 0.0).await;
}

async fn whip(
    server: &TestServer,
    room: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .post(server.url(&format!("/whip/{room}")))
        .header("content-type", content_type)
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    status_of(request.send().await.unwrap()).await
}

fn name(body: &serde_json::Value) -> &str {
    body["name"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_media_requests_get_clear_errors() {
    let mut cfg = test_config();
    cfg.media.max_subscribers_per_room = 1;
    let server = TestServer::start(cfg);
    let anchor_token = server.anchor_token("r1");
    let offer = Subscriber::new().await.unwrap().offer().to_owned();
    let sdp = "application/sdp";

    let (status, body) = whip(&server, "r1", Some(&anchor_token), sdp, &offer).await;
    assert_eq!((status, name(&body)), (404, "room_not_found"));
    let mut anchor = server.open_room("r1").await;
    let (status, body) = whip(&server, "r1", Some(&anchor_token), sdp, &offer).await;
    assert_eq!((status, name(&body)), (409, "room_not_live"), "{body}");
    anchor.send(json!({"type":"control","cmd":"go_live"})).await;
    anchor
        .recv_until(|m| matches!(m, ServerMsg::RoomState { .. }).then_some(()))
        .await;
    let (status, body) = whip(&server, "r1", None, sdp, &offer).await;
    assert_eq!((status, name(&body)), (401, "unauthorized"));
    let viewer_token = server.viewer_token("v1");
    let (status, body) = whip(&server, "r1", Some(&viewer_token), sdp, &offer).await;
    assert_eq!((status, name(&body)), (403, "forbidden"));
    let (status, body) = whip(&server, "r1", Some(&anchor_token), "text/plain", &offer).await;
    assert_eq!((status, name(&body)), (415, "unsupported_media_type"));
    let (status, body) = whip(&server, "r1", Some(&anchor_token), sdp, "hello").await;
    assert_eq!((status, name(&body)), (400, "invalid_sdp"));
    // A receive-only offer publishes nothing.
    let (status, body) = whip(&server, "r1", Some(&anchor_token), sdp, &offer).await;
    assert_eq!((status, name(&body)), (400, "invalid_sdp"), "{body}");

    // Nothing to watch yet.
    let watch = |body: String| {
        reqwest::Client::new()
            .post(server.url("/whep/r1"))
            .header("content-type", sdp)
            .body(body)
            .send()
    };
    let (status, body) = status_of(watch(offer.clone()).await.unwrap()).await;
    assert_eq!((status, name(&body)), (409, "media_unavailable"));
    let (mut viewer, _) = server.join_viewer("r1", Some("v1")).await;
    viewer
        .send(json!({"type":"rtc_offer","sdp":offer,"id":1}))
        .await;
    let err = viewer.recv_until(error_code).await;
    assert_eq!(err, 315, "media_unavailable over the WebSocket too");
    viewer
        .send(json!({"type":"rtc_offer","sdp":offer,"layer":"ultra","id":2}))
        .await;
    assert_eq!(viewer.recv_until(error_code).await, 102);
    viewer
        .send(json!({"type":"rtc_layer","layer":"low","id":3}))
        .await;
    assert_eq!(
        viewer.recv_until(error_code).await,
        317,
        "no subscription to change"
    );

    // With a stream: the cap holds, and unknown sessions are 404.
    let (_publisher, _stop) = go_live_publisher_only(&server, "r1").await;
    assert!(media_notice(&mut viewer).await.live, "the stream went live");
    let first = Subscriber::whep(&server.url(""), "r1", None).await;
    assert!(
        first.is_ok(),
        "the first subscriber is admitted: {:?}",
        first.as_ref().err()
    );
    let (status, body) = status_of(
        watch(Subscriber::new().await.unwrap().offer().to_owned())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, name(&body)),
        (503, "too_many_subscribers"),
        "{body}"
    );
    let (status, body) = status_of(watch("v=0 garbage".into()).await.unwrap()).await;
    assert_eq!(
        (status, name(&body)),
        (503, "too_many_subscribers"),
        "the cap is checked first: {body}"
    );
    let delete = |path: &str| {
        reqwest::Client::new()
            .delete(server.url(path))
            .bearer_auth(&anchor_token)
            .send()
    };
    let (status, body) = status_of(delete("/whip/r1/999").await.unwrap()).await;
    assert_eq!((status, name(&body)), (404, "session_not_found"));
    let (status, body) = status_of(delete("/whep/r1/not-a-number").await.unwrap()).await;
    assert_eq!((status, name(&body)), (404, "session_not_found"));
    // No trickle ICE: a PATCH with candidates is refused, saying why.
    let patch = reqwest::Client::new()
        .patch(server.url("/whip/r1/1"))
        .bearer_auth(&anchor_token)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body("a=candidate:1 1 udp 1 127.0.0.1 9 typ host")
        .send()
        .await
        .unwrap();
    assert_eq!(patch.headers()["allow"], "POST, DELETE");
    let (status, body) = status_of(patch).await;
    assert_eq!((status, name(&body)), (405, "method_not_allowed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leavers_are_cleaned_up_and_the_room_end_stops_its_video() {
    let mut cfg = test_config();
    // A vanished peer is noticed by ICE consent timing out; keep that short here.
    cfg.media.ice_disconnected_timeout_ms = 500;
    cfg.media.ice_failed_timeout_ms = 2_000;
    let server = TestServer::start(cfg);
    let udp_before = udp_sockets();
    let mut anchor = server.open_room("r1").await;
    let (mut watcher, _) = server.join_viewer("r1", None).await;
    let (publisher, _stop) = go_live(&server, &mut anchor, "r1").await;
    assert!(media_notice(&mut watcher).await.live);
    let (mut viewer, _) = server.join_viewer("r1", None).await;
    let ws_sub = ws_subscribe(&mut viewer).await;
    let whep_sub = Subscriber::whep(&server.url(""), "r1", None).await.unwrap();
    ws_sub.wait_video(30, WAIT).await.unwrap();
    server.wait_metric("lockstep_media_subscribers", 2.0).await;

    // The viewer's socket closes: its subscription goes with it.
    viewer.close().await;
    server.wait_metric("lockstep_media_subscribers", 1.0).await;
    // A WHEP player deletes its resource.
    let location = whep_sub.location().unwrap().to_owned();
    let status = reqwest::Client::new()
        .delete(server.url(&location))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    server.wait_metric("lockstep_media_subscribers", 0.0).await;

    // The publisher vanishes without a DELETE: viewers are told the stream is away.
    publisher.vanish().await;
    assert!(!media_notice(&mut watcher).await.live);
    server.wait_metric("lockstep_media_publishers", 0.0).await;

    // It comes back; then the room ends and takes the video with it.
    let (second, _stop) = go_live_publisher_only(&server, "r1").await;
    assert!(media_notice(&mut watcher).await.live);
    let sub = Subscriber::whep(&server.url(""), "r1", None).await.unwrap();
    sub.wait_video(10, WAIT).await.unwrap();
    anchor.send(json!({"type":"control","cmd":"end"})).await;
    server.wait_metric("lockstep_media_publishers", 0.0).await;
    server.wait_metric("lockstep_media_subscribers", 0.0).await;

    // Every peer connection's UDP socket is gone: the server's (which this test shares a
    // process with) as well as the clients' once they close.
    for s in [&ws_sub, &whep_sub, &sub] {
        s.close().await;
    }
    second.vanish().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while udp_sockets() > udp_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} UDP sockets still open (had {udp_before})",
            udp_sockets()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// UDP sockets this process holds (its fds that are sockets listed in /proc/net/udp*).
fn udp_sockets() -> usize {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/self/net/udp", "/proc/self/net/udp6"] {
        for line in std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            if let Some(inode) = line.split_whitespace().nth(9) {
                inodes.insert(inode.to_owned());
            }
        }
    }
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .filter(|inode| inodes.contains(inode))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_dropped_while_streaming_lands_on_the_media_clock() {
    let server = TestServer::start(test_config());
    let sale = server.create_sale("m1", "r1", 10, 5, json!({})).await;
    let mut anchor = server.open_room("r1").await;
    let (_publisher, _stop) = go_live(&server, &mut anchor, "r1").await;
    let (mut viewer, _) = server.join_viewer("r1", Some("v1")).await;
    let sub = ws_subscribe(&mut viewer).await;
    sub.wait_video(60, WAIT).await.unwrap();
    let countdown = 1_000;
    let pressed = lockstep_actors::clock::now_ms();
    anchor
        .send(json!({"type":"control","cmd":"drop_link","sale_id":sale,"countdown_ms":countdown}))
        .await;
    let card = viewer
        .recv_until(|m| match m {
            ServerMsg::Link { link } => Some(link.clone()),
            _ => None,
        })
        .await;
    let delay = u64::from(server.config.media.playout_delay_ms);
    let reveal_rtp = card
        .reveal_rtp
        .expect("a link dropped during a stream names its frame");
    // The latest frame is at most a few frame intervals old when the anchor presses.
    assert!(
        card.reveal_at + 150 >= pressed + countdown + delay,
        "reveal {} pressed {pressed}",
        card.reveal_at
    );
    assert!(card.reveal_at <= lockstep_actors::clock::now_ms() + countdown + delay);
    // The frame the link names arrives `playout_delay` before `reveal_at`: displayed
    // `playout_delay` after arriving, it is on screen when the link appears.
    let deadline = tokio::time::Instant::now() + WAIT;
    let arrived_us = loop {
        let frames = sub.stats().frames;
        if let Some((_, at)) = frames
            .iter()
            .find(|(ts, _)| ts.wrapping_sub(reveal_rtp) < u32::MAX / 2)
        {
            break *at;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the linked frame never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let expected_ms = (card.reveal_at - delay) as i64;
    let error = (arrived_us / 1000) as i64 - expected_ms;
    assert!(
        error.abs() < 100,
        "the linked frame arrived {error} ms off its slot"
    );
}
