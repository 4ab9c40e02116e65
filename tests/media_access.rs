//! Who may hold and end video sessions: WHIP/WHEP resources are unguessable and end
//! only for whoever started them (or the anchor); bans reach video; subscriber limits
//! hold across rooms and per address; offers that never connect give their slot back;
//! one negotiation at a time per socket.

mod common;

use std::time::Duration;

use common::media::{WAIT, go_live, media_notice, status_of};
use common::{TestServer, error_code, test_config};
use lockstep_load::rtc::Subscriber;
use lockstep_protocol::ServerMsg;
use serde_json::json;

fn name(body: &serde_json::Value) -> &str {
    body["name"].as_str().unwrap_or_default()
}

/// The session id at the end of a WHIP/WHEP `Location`.
fn session_id(location: &str) -> &str {
    location.rsplit('/').next().unwrap()
}

async fn delete(
    server: &TestServer,
    location: &str,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().delete(server.url(location));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    status_of(request.send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playback_sessions_are_unguessable_and_end_only_for_their_owner() {
    let server = TestServer::start(test_config());
    let mut anchor = server.open_room("r1").await;
    let (publisher, _stop) = go_live(&server, &mut anchor, "r1").await;
    let base = server.url("");
    let alice = server.viewer_token("alice");
    let bob = server.viewer_token("bob");
    let alices = Subscriber::whep(&base, "r1", Some(&alice)).await.unwrap();
    let guests = Subscriber::whep(&base, "r1", None).await.unwrap();
    let (a, g) = (
        alices.location().unwrap().to_owned(),
        guests.location().unwrap().to_owned(),
    );
    for location in [&a, &g, publisher.location()] {
        let id = session_id(location);
        assert_eq!(id.len(), 32, "128 random bits: {location}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{location}");
    }
    assert_ne!(session_id(&a), session_id(&g));
    // Counting up finds nothing.
    for n in 1..=3 {
        let (status, body) = delete(&server, &format!("/whep/r1/{n}"), None).await;
        assert_eq!((status, name(&body)), (404, "session_not_found"));
    }
    // Alice's session: not without a token, not with Bob's.
    let (status, body) = delete(&server, &a, None).await;
    assert_eq!((status, name(&body)), (401, "auth_required"), "{body}");
    let (status, body) = delete(&server, &a, Some(&bob)).await;
    assert_eq!((status, name(&body)), (403, "forbidden"), "{body}");
    let viewer_of_r2 = server.token(lockstep_protocol::Role::Viewer, "alice", Some("r2"));
    let (status, body) = delete(&server, &a, Some(&viewer_of_r2)).await;
    assert_eq!((status, name(&body)), (403, "forbidden"), "{body}");
    server.wait_metric("lockstep_media_subscribers", 2.0).await;
    assert_eq!(delete(&server, &a, Some(&alice)).await.0, 200);
    // A guest's session ends for whoever holds its URL.
    assert_eq!(delete(&server, &g, None).await.0, 200);
    server.wait_metric("lockstep_media_subscribers", 0.0).await;
    // The anchor may end anyone's.
    let bobs = Subscriber::whep(&base, "r1", Some(&bob)).await.unwrap();
    let anchor_token = server.anchor_token("r1");
    assert_eq!(
        delete(&server, bobs.location().unwrap(), Some(&anchor_token))
            .await
            .0,
        200
    );
    // WHIP sessions end only with the anchor's token.
    let (status, body) = delete(&server, publisher.location(), Some(&alice)).await;
    assert_eq!((status, name(&body)), (403, "forbidden"), "{body}");
    let (status, _) = delete(&server, publisher.location(), None).await;
    assert_eq!(status, 401);
    assert_eq!(
        delete(&server, publisher.location(), Some(&anchor_token))
            .await
            .0,
        200
    );
    assert!(
        !media_notice(&mut anchor).await.live,
        "the anchor's own token ends it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_reach_video_too() {
    let server = TestServer::start(test_config());
    let mut anchor = server.open_room("r1").await;
    let (_publisher, _stop) = go_live(&server, &mut anchor, "r1").await;
    let base = server.url("");
    let mallory = server.viewer_token("mallory");
    let playing = Subscriber::whep(&base, "r1", Some(&mallory)).await.unwrap();
    playing.wait_video(10, WAIT).await.unwrap();
    server.wait_metric("lockstep_media_subscribers", 1.0).await;
    anchor
        .send(json!({"type":"control","cmd":"ban","user":"mallory","id":5}))
        .await;
    anchor
        .recv_until(|m| matches!(m, ServerMsg::Ack { id: Some(5), .. }).then_some(()))
        .await;
    // The ban ends the WHEP session (there is no room socket to close) ...
    server.wait_metric("lockstep_media_subscribers", 0.0).await;
    // ... and refuses new ones, and the room's status.
    let again = Subscriber::whep(&base, "r1", Some(&mallory)).await;
    let err = again
        .err()
        .expect("a banned viewer cannot watch")
        .to_string();
    assert!(err.contains("403") && err.contains("banned"), "{err}");
    let status = reqwest::Client::new()
        .get(server.url("/api/v1/rooms/r1"))
        .bearer_auth(&mallory)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_limits_hold_per_address_and_offers_that_never_connect_give_slots_back() {
    let mut cfg = test_config();
    cfg.server.connection_limit_exempt = vec![];
    cfg.media.max_subscribers_per_ip = 2;
    cfg.media.connect_timeout_ms = 1_000;
    let server = TestServer::start(cfg);
    let mut anchor = server.open_room("r1").await;
    let (_publisher, _stop) = go_live(&server, &mut anchor, "r1").await;
    let base = server.url("");
    // Two offers answered but never completed: they hold both of this address's slots.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let sub = Subscriber::new().await.unwrap();
        let resp = reqwest::Client::new()
            .post(server.url("/whep/r1"))
            .header("content-type", "application/sdp")
            .body(sub.offer().to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        stalled.push(sub); // its answer is never applied: no ICE, no DTLS
    }
    let refused = Subscriber::whep(&base, "r1", None).await;
    let err = refused
        .err()
        .expect("a third from one address is refused")
        .to_string();
    assert!(err.contains("too_many_connections"), "{err}");
    // After media.connect_timeout_ms they are dropped and the address may watch again.
    let deadline = tokio::time::Instant::now() + WAIT;
    let admitted = loop {
        match Subscriber::whep(&base, "r1", None).await {
            Ok(sub) => break sub,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "slots never freed: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    admitted.wait_video(10, WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_wide_subscriber_limit_holds_across_rooms() {
    let mut cfg = test_config();
    cfg.media.max_subscribers_total = 1;
    let server = TestServer::start(cfg);
    let mut first_anchor = server.open_room("r1").await;
    let (_p1, _s1) = go_live(&server, &mut first_anchor, "r1").await;
    let mut second_anchor = server.open_room("r2").await;
    let (_p2, _s2) = go_live(&server, &mut second_anchor, "r2").await;
    let base = server.url("");
    let _watching = Subscriber::whep(&base, "r1", None).await.unwrap();
    let offer = Subscriber::new().await.unwrap().offer().to_owned();
    let (status, body) = status_of(
        reqwest::Client::new()
            .post(server.url("/whep/r2"))
            .header("content-type", "application/sdp")
            .body(offer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, name(&body)),
        (503, "too_many_subscribers"),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("media.max_subscribers_total")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_negotiates_one_offer_at_a_time() {
    let server = TestServer::start(test_config());
    let mut anchor = server.open_room("r1").await;
    let (_publisher, _stop) = go_live(&server, &mut anchor, "r1").await;
    let (mut viewer, _) = server.join_viewer("r1", None).await;
    let offer = Subscriber::new().await.unwrap().offer().to_owned();
    viewer
        .send_together(&[
            json!({"type":"rtc_offer","sdp":offer,"id":1}),
            json!({"type":"rtc_offer","sdp":offer,"id":2}),
        ])
        .await;
    let second = viewer
        .recv_until(|m| match m {
            ServerMsg::Error { id: Some(2), .. } => Some(error_code(m)),
            _ => None,
        })
        .await;
    assert_eq!(
        second,
        Some(400),
        "rate_limited while the first is negotiated"
    );
    let first = viewer
        .recv_until(|m| match m {
            ServerMsg::RtcAnswer { id: Some(1), .. } => Some(()),
            ServerMsg::Error {
                id: Some(1),
                message,
                ..
            } => panic!("first offer refused: {message}"),
            _ => None,
        })
        .await;
    assert_eq!(first, ());
}
