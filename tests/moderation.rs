//! The anchor's control channel over real sockets: mute, ban (with comment clearing),
//! slow mode, and refusal of anyone who is not this room's anchor.

mod common;

use common::{Ended, TestServer, error_code, test_config};
use lockstep_protocol::{ModerationAction, Role, ServerMsg};
use serde_json::json;

async fn ack(client: &mut common::Client, id: u64) {
    client
        .recv_until(|m| match m {
            ServerMsg::Ack { id: Some(i), .. } if *i == id => Some(()),
            ServerMsg::Error {
                id: Some(i),
                message,
                ..
            } if *i == id => panic!("command {id} refused: {message}"),
            _ => None,
        })
        .await
}

async fn reply_to(client: &mut common::Client, id: u64) -> ServerMsg {
    client
        .recv_until(|m| match m {
            ServerMsg::Ack { id: Some(i), .. } | ServerMsg::Error { id: Some(i), .. }
                if *i == id =>
            {
                Some(m.clone())
            }
            _ => None,
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muted_viewer_cannot_comment_until_unmuted() {
    let server = TestServer::start(test_config());
    let mut anchor = server.open_room("r1").await;
    let (mut bob, _) = server.join_viewer("r1", Some("bob")).await;
    anchor
        .send(json!({"type":"control","cmd":"mute","user":"bob","seconds":600,"id":1}))
        .await;
    ack(&mut anchor, 1).await;
    let until = bob
        .recv_until(|m| match m {
            ServerMsg::Moderation {
                action: ModerationAction::Muted,
                until,
                ..
            } => Some(*until),
            _ => None,
        })
        .await;
    assert!(until.is_some());
    bob.send(json!({"type":"comment","text":"hello?","id":2}))
        .await;
    assert_eq!(error_code(&reply_to(&mut bob, 2).await), Some(402));

    anchor
        .send(json!({"type":"control","cmd":"unmute","user":"bob","id":3}))
        .await;
    ack(&mut anchor, 3).await;
    bob.send(json!({"type":"comment","text":"thanks","id":4}))
        .await;
    assert!(matches!(
        reply_to(&mut bob, 4).await,
        ServerMsg::Ack {
            comment_id: Some(_),
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ban_kicks_clears_and_blocks_rejoin() {
    let server = TestServer::start(test_config());
    let mut anchor = server.open_room("r1").await;
    let (mut troll, _) = server.join_viewer("r1", Some("troll")).await;
    let (mut fan, _) = server.join_viewer("r1", Some("fan")).await;
    troll
        .send(json!({"type":"comment","text":"spam spam","id":1}))
        .await;
    reply_to(&mut troll, 1).await;

    anchor
        .send(json!({"type":"control","cmd":"ban","user":"troll","clear_comments":true,"id":2}))
        .await;
    ack(&mut anchor, 2).await;
    assert_eq!(troll.ended().await, Ended::Closed(4003));
    fan.recv_until(|m| {
        matches!(m, ServerMsg::Moderation { action: ModerationAction::CommentsCleared, user, .. } if user == "troll").then_some(())
    })
    .await;
    let (mut again, refused) = server.join_viewer("r1", Some("troll")).await;
    assert_eq!(error_code(&refused), Some(403));
    assert_eq!(again.ended().await, Ended::Closed(4004));
    let (_late, welcome) = server.join_viewer("r1", Some("late")).await;
    let ServerMsg::Welcome { room, .. } = welcome else {
        panic!("{welcome:?}")
    };
    assert!(
        room.recent_comments.iter().all(|c| c.user != "troll"),
        "banned viewer's comments cleared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_mode_limits_each_viewer() {
    let server = TestServer::start(test_config());
    let mut anchor = server.open_room("r1").await;
    let (mut v, _) = server.join_viewer("r1", Some("v")).await;
    anchor
        .send(json!({"type":"control","cmd":"slow_mode","seconds":30,"id":1}))
        .await;
    ack(&mut anchor, 1).await;
    v.recv_until(|m| matches!(m, ServerMsg::SlowMode { seconds: 30 }).then_some(()))
        .await;
    v.send(json!({"type":"comment","text":"one","id":2})).await;
    assert!(matches!(reply_to(&mut v, 2).await, ServerMsg::Ack { .. }));
    v.send(json!({"type":"comment","text":"two","id":3})).await;
    let refused = reply_to(&mut v, 3).await;
    assert_eq!(error_code(&refused), Some(401));
    assert!(matches!(refused, ServerMsg::Error { retry_after_ms: Some(ms), .. } if ms > 25_000));
    anchor
        .send(json!({"type":"control","cmd":"slow_mode","seconds":0,"id":4}))
        .await;
    ack(&mut anchor, 4).await;
    v.send(json!({"type":"comment","text":"three","id":5}))
        .await;
    assert!(matches!(reply_to(&mut v, 5).await, ServerMsg::Ack { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_channel_refuses_non_anchor_tokens() {
    let server = TestServer::start(test_config());
    let _real = server.open_room("r1").await;
    let cases = [
        (Some(server.viewer_token("mallory")), 202),
        (Some(server.anchor_token("other-room")), 202),
        (Some(server.token(Role::Merchant, "m1", Some("r1"))), 202),
        (None, 200),
        (Some("garbage".to_string()), 200),
    ];
    for (token, code) in cases {
        let mut c = common::Client::connect(&server.ws_url("/ws/rooms/r1/control")).await;
        let mut join = json!({"type":"join","protocol":1});
        if let Some(t) = token {
            join["token"] = json!(t);
        }
        c.send(join).await;
        let (errors, ended) = c.errors_then_end().await;
        assert_eq!(errors, [code]);
        assert_eq!(ended, Ended::Closed(4004));
    }
    // A refused control join never creates a room either.
    let mut c = common::Client::connect(&server.ws_url("/ws/rooms/nope/control")).await;
    c.send(json!({"type":"join","protocol":1,"token":server.viewer_token("x")}))
        .await;
    c.errors_then_end().await;
    assert_eq!(
        reqwest::get(server.url("/api/v1/rooms/nope"))
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_viewers_like_but_cannot_comment() {
    let server = TestServer::start(test_config());
    let _anchor = server.open_room("r1").await;
    let (mut anon, _) = server.join_viewer("r1", None).await;
    anon.send(json!({"type":"comment","text":"hi","id":1}))
        .await;
    assert_eq!(error_code(&reply_to(&mut anon, 1).await), Some(203));
    anon.send(json!({"type":"like","count":5})).await;
    anon.recv_until(|m| {
        matches!(m, ServerMsg::Tick { likes: Some(l), .. } if l.total == 5).then_some(())
    })
    .await;
}
