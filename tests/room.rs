//! Rooms over real sockets: join and welcome, comment fan-out (and isolation between
//! rooms), like aggregation, the online count, and the room lifecycle.

mod common;

use common::{Ended, TestServer, test_config};
use lockstep_protocol::{Comment, RoomState, ServerMsg};
use serde_json::json;

fn tick_comments(msg: &ServerMsg) -> Option<Vec<Comment>> {
    match msg {
        ServerMsg::Tick { comments, .. } if !comments.is_empty() => Some(comments.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_gets_a_welcome_snapshot() {
    let server = TestServer::start(test_config());
    let mut anchor = server.open_room("r1").await;
    anchor
        .send(json!({"type":"control","cmd":"go_live","id":1}))
        .await;
    anchor
        .send(json!({"type":"control","cmd":"say","text":"welcome all","id":2}))
        .await;
    let said = anchor
        .recv_until(|m| match m {
            ServerMsg::Ack {
                id: Some(2),
                comment_id,
            } => Some(*comment_id),
            _ => None,
        })
        .await;
    anchor
        .send(json!({"type":"control","cmd":"pin","comment_id":said,"id":3}))
        .await;
    anchor
        .recv_until(|m| matches!(m, ServerMsg::Ack { id: Some(3), .. }).then_some(()))
        .await;

    let before = lockstep_actors::clock::now_ms();
    let (_viewer, welcome) = server.join_viewer("r1", Some("alice")).await;
    let ServerMsg::Welcome {
        protocol,
        room,
        you,
        server_time,
    } = welcome
    else {
        panic!("expected welcome, got {welcome:?}");
    };
    assert_eq!(protocol, 1);
    assert_eq!(room.title, "Room r1");
    assert_eq!(room.state, RoomState::Live);
    assert_eq!(room.online, 1);
    assert_eq!(room.recent_comments.len(), 1);
    assert_eq!(room.pinned.map(|c| c.text), Some("welcome all".to_string()));
    assert_eq!(you.user.as_deref(), Some("alice"));
    assert!(server_time >= before && server_time <= lockstep_actors::clock::now_ms());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comment_reaches_every_viewer_of_its_room_only() {
    let server = TestServer::start(test_config());
    let _a1 = server.open_room("r1").await;
    let mut a2 = server.open_room("r2").await;
    let mut r1_viewers = Vec::new();
    for i in 0..5 {
        r1_viewers.push(server.join_viewer("r1", Some(&format!("v{i}"))).await.0);
    }
    let (mut r2_viewer, _) = server.join_viewer("r2", Some("other")).await;

    r1_viewers[0]
        .send(json!({"type":"comment","text":"hello r1","id":7}))
        .await;
    let ack = r1_viewers[0]
        .recv_until(|m| match m {
            ServerMsg::Ack {
                id: Some(7),
                comment_id,
            } => Some(*comment_id),
            _ => None,
        })
        .await;
    for v in &mut r1_viewers {
        let comments = v.recv_until(tick_comments).await;
        assert_eq!(comments.len(), 1);
        assert_eq!(comments[0].text, "hello r1");
        assert_eq!(comments[0].user, "v0");
        assert_eq!(Some(comments[0].id), ack);
    }
    // r2's first comment frame carries only r2's marker, so r1's comment never reached it.
    a2.send(json!({"type":"control","cmd":"say","text":"marker"}))
        .await;
    let seen = r2_viewer.recv_until(tick_comments).await;
    assert_eq!(
        seen.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
        ["marker"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_likes_arrive_as_a_few_aggregated_frames() {
    let server = TestServer::start(test_config());
    let _anchor = server.open_room("r1").await;
    let (mut watcher, _) = server.join_viewer("r1", None).await;
    let mut likers = Vec::new();
    for _ in 0..20 {
        likers.push(server.join_viewer("r1", None).await.0);
    }
    let senders: Vec<_> = likers
        .into_iter()
        .map(|mut v| {
            tokio::spawn(async move {
                for _ in 0..50 {
                    v.send(json!({"type":"like"})).await;
                }
                v
            })
        })
        .collect();
    let (mut frames, mut summed, mut total) = (0u32, 0u64, 0u64);
    while total < 1000 {
        let tally = watcher
            .recv_until(|m| match m {
                ServerMsg::Tick { likes: Some(l), .. } => Some(*l),
                _ => None,
            })
            .await;
        frames += 1;
        summed += tally.delta;
        total = tally.total;
    }
    assert_eq!(total, 1000);
    assert_eq!(summed, 1000, "deltas add up to the total");
    assert!(
        frames < 100,
        "1,000 likes must be aggregated, got {frames} frames"
    );
    for s in senders {
        s.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_count_follows_joins_and_leaves() {
    let server = TestServer::start(test_config());
    let _anchor = server.open_room("r1").await;
    let (mut watcher, _) = server.join_viewer("r1", None).await;
    let online = |target: u64| {
        move |m: &ServerMsg| match m {
            ServerMsg::Tick {
                online: Some(n), ..
            } if *n == target => Some(()),
            _ => None,
        }
    };
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(server.join_viewer("r1", None).await.0);
    }
    watcher.recv_until(online(4)).await;
    for v in others.drain(..2) {
        v.close().await;
    }
    watcher.recv_until(online(2)).await;
    let snap: serde_json::Value = reqwest::get(server.url("/api/v1/rooms/r1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(snap["online"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_the_room_tells_viewers_and_releases_it() {
    let server = TestServer::start(test_config());
    let mut anchor = server.open_room("r1").await;
    let (mut viewer, _) = server.join_viewer("r1", Some("v")).await;
    anchor
        .send(json!({"type":"control","cmd":"go_live","id":1}))
        .await;
    viewer
        .recv_until(|m| {
            matches!(
                m,
                ServerMsg::RoomState {
                    state: RoomState::Live,
                    ..
                }
            )
            .then_some(())
        })
        .await;
    anchor
        .send(json!({"type":"control","cmd":"end","id":2}))
        .await;
    viewer
        .recv_until(|m| {
            matches!(
                m,
                ServerMsg::RoomState {
                    state: RoomState::Ended,
                    ..
                }
            )
            .then_some(())
        })
        .await;
    assert_eq!(viewer.ended().await, Ended::Closed(1000));
    assert_eq!(anchor.ended().await, Ended::Closed(1000));
    // The actor is released: the room is gone and a viewer naming it is refused.
    let deadline = std::time::Instant::now() + common::EVENT_TIMEOUT;
    while server.metric("lockstep_rooms").await != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "room actor was not released"
        );
        tokio::task::yield_now().await;
    }
    let (mut late, refused) = server.join_viewer("r1", None).await;
    assert_eq!(common::error_code(&refused), Some(300));
    assert_eq!(late.ended().await, Ended::Closed(4004));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchor_opens_a_room_over_http() {
    let server = TestServer::start(test_config());
    let http = reqwest::Client::new();
    let open = |token: String| {
        http.post(server.url("/api/v1/rooms"))
            .bearer_auth(token)
            .json(&json!({"id":"r9","title":"Sneaker drop"}))
            .send()
    };
    let refused = open(server.viewer_token("mallory")).await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["name"], "forbidden");
    assert_eq!(
        reqwest::get(server.url("/api/v1/rooms/r9"))
            .await
            .unwrap()
            .status(),
        404
    );

    let created = open(server.anchor_token("r9")).await.unwrap();
    assert_eq!(created.status(), 201);
    let again = open(server.anchor_token("r9")).await.unwrap();
    assert_eq!(again.status(), 200);
    let (_viewer, welcome) = server.join_viewer("r9", None).await;
    let ServerMsg::Welcome { room, .. } = welcome else {
        panic!("{welcome:?}")
    };
    assert_eq!(room.title, "Sneaker drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sockets_with_1001() {
    let server = TestServer::start(test_config());
    let _anchor = server.open_room("r1").await;
    let (mut viewer, _) = server.join_viewer("r1", None).await;
    let stopper = std::thread::spawn(move || server.stop());
    assert_eq!(viewer.ended().await, Ended::Closed(1001));
    stopper.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_may_refuse_anonymous_viewers() {
    let server = TestServer::start(test_config());
    let http = reqwest::Client::new();
    let resp = http
        .post(server.url("/api/v1/rooms"))
        .bearer_auth(server.anchor_token("members"))
        .json(&json!({"id":"members","allow_anonymous":false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let (mut anon, refused) = server.join_viewer("members", None).await;
    assert_eq!(common::error_code(&refused), Some(203));
    assert_eq!(anon.ended().await, Ended::Closed(4004));
    let (_member, welcome) = server.join_viewer("members", Some("m1")).await;
    assert!(matches!(welcome, ServerMsg::Welcome { .. }));
    // Its status (comments, who said them, the link on show) is not public either.
    let status = |token: Option<String>| {
        let mut request = http.get(server.url("/api/v1/rooms/members"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some(server.viewer_token("m1"))).await, 200);
    assert_eq!(status(Some(server.anchor_token("members"))).await, 200);
    assert_eq!(status(Some(server.anchor_token("elsewhere"))).await, 403);
    assert_eq!(status(Some(server.merchant_token("shop"))).await, 403);

    // The anchor can open the doors during the show.
    let mut anchor = server.open_room("members").await;
    anchor
        .send(json!({"type":"control","cmd":"allow_anonymous","allowed":true,"id":1}))
        .await;
    anchor
        .recv_until(|m| matches!(m, ServerMsg::Ack { id: Some(1), .. }).then_some(()))
        .await;
    let (_guest, welcome) = server.join_viewer("members", None).await;
    assert!(matches!(welcome, ServerMsg::Welcome { .. }), "{welcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_count_is_bounded() {
    let mut cfg = test_config();
    cfg.rooms.max_rooms = 2;
    let server = TestServer::start(cfg);
    let _a = server.open_room("a").await;
    let _b = server.open_room("b").await;
    let mut c = common::Client::connect(&server.ws_url("/ws/rooms/c/control")).await;
    c.send(json!({"type":"join","protocol":1,"token":server.anchor_token("c")}))
        .await;
    let (errors, ended) = c.errors_then_end().await;
    assert_eq!(errors, [303]);
    assert_eq!(ended, Ended::Closed(4004));
}
