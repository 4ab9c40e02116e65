//! Bad input over real sockets: every case gets its documented error or close code, the
//! server keeps serving, and the room's state is untouched.

mod common;

use common::{Client, Ended, TestServer, error_code, test_config};
use lockstep::auth::{Auth, Claims};
use lockstep_protocol::{Role, ServerMsg};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn room_state(server: &TestServer) -> serde_json::Value {
    let mut snap: serde_json::Value = reqwest::get(server.url("/api/v1/rooms/r1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    snap.as_object_mut().unwrap().remove("online");
    snap
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_error_frames_and_the_socket_survives() {
    let server = TestServer::start(test_config());
    let _anchor = server.open_room("r1").await;
    let before = room_state(&server).await;
    let (mut v, _) = server.join_viewer("r1", Some("v")).await;
    let cases = [
        ("{not json", 100),
        ("[1,2]", 102),
        (r#"{"text":"no type"}"#, 102),
        (r#"{"type":"teleport"}"#, 101),
        (r#"{"type":"comment"}"#, 102),
        (r#"{"type":"comment","text":42}"#, 102),
        (r#"{"type":"like","count":"many"}"#, 102),
        (r#"{"type":"like","count":100000}"#, 102),
        (r#"{"type":"control","cmd":"end"}"#, 202),
        (r#"{"type":"join","protocol":1}"#, 106),
        // Malformed video requests are `invalid_message` like any other type.
        (r#"{"type":"rtc_offer","layer":"low","id":1}"#, 102),
        (r#"{"type":"rtc_layer"}"#, 102),
        // NUL, other controls and bidi overrides never reach other viewers.
        (r#"{"type":"comment","text":"nul\u0000byte"}"#, 102),
        (r#"{"type":"comment","text":"bell\u0007"}"#, 102),
        (r#"{"type":"comment","text":"gpj.\u202eexe"}"#, 102),
    ];
    for (frame, code) in cases {
        v.send_raw(Message::text(frame)).await;
        let reply = v.recv_until(|m| error_code(m).map(|_| m.clone())).await;
        assert_eq!(error_code(&reply), Some(code), "frame {frame}");
    }
    v.send(json!({"type":"ping","id":99})).await;
    v.recv_until(|m| matches!(m, ServerMsg::Pong { id: Some(99) }).then_some(()))
        .await;
    assert_eq!(room_state(&server).await, before, "room state untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_names_and_titles_lose_control_characters() {
    let server = TestServer::start(test_config());
    let mut anchor = Client::connect(&server.ws_url("/ws/rooms/r1/control")).await;
    anchor
        .send(json!({"type":"join","protocol":1,"token":server.anchor_token("r1"),"title":"Spring\u{0} drop\u{202e}"}))
        .await;
    let ServerMsg::Welcome { room, .. } = anchor.recv().await else {
        panic!("anchor refused")
    };
    assert_eq!(room.title, "Spring drop");
    let token = server.auth_issue(Claims {
        sub: "v1".into(),
        role: Role::Viewer,
        room: None,
        merchant: None,
        name: Some("Eve\u{202E}\u{0}lyn".into()),
        exp: lockstep::auth::unix_now() + 60,
    });
    let mut viewer = Client::connect(&server.ws_url("/ws/rooms/r1")).await;
    viewer
        .send(json!({"type":"join","protocol":1,"token":token}))
        .await;
    let ServerMsg::Welcome { you, .. } = viewer.recv().await else {
        panic!("viewer refused")
    };
    assert_eq!(you.name, "Evelyn");
    // A token whose subject carries a control character is not accepted at all.
    let bad = server.auth_issue(Claims {
        sub: "v\u{0}1".into(),
        role: Role::Viewer,
        room: None,
        merchant: None,
        name: None,
        exp: lockstep::auth::unix_now() + 60,
    });
    let mut refused = Client::connect(&server.ws_url("/ws/rooms/r1")).await;
    refused
        .send(json!({"type":"join","protocol":1,"token":bad}))
        .await;
    assert_eq!(error_code(&refused.recv().await), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_with_1009() {
    let mut cfg = test_config();
    cfg.session.max_frame_bytes = 1024;
    let server = TestServer::start(cfg);
    let _anchor = server.open_room("r1").await;
    let (mut v, _) = server.join_viewer("r1", Some("v")).await;
    v.send(json!({"type":"comment","text":"x".repeat(2000)}))
        .await;
    assert_eq!(v.ended().await, Ended::Closed(1009));
    let (_other, welcome) = server.join_viewer("r1", Some("w")).await;
    let ServerMsg::Welcome { room, .. } = welcome else {
        panic!("{welcome:?}")
    };
    assert!(room.recent_comments.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frame_closes_with_1003() {
    let server = TestServer::start(test_config());
    let _anchor = server.open_room("r1").await;
    let (mut v, _) = server.join_viewer("r1", None).await;
    v.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    let (errors, ended) = v.errors_then_end().await;
    assert_eq!(errors, [104]);
    assert_eq!(ended, Ended::Closed(1003));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_is_refused_then_cut_with_1008() {
    let mut cfg = test_config();
    cfg.session.msg_rate_per_sec = 10.0;
    cfg.session.msg_burst = 10;
    cfg.session.flood_strikes = 30;
    let server = TestServer::start(cfg);
    let _anchor = server.open_room("r1").await;
    let before = room_state(&server).await;
    let (mut v, _) = server.join_viewer("r1", Some("flooder")).await;
    for _ in 0..200 {
        v.send(json!({"type":"like"})).await;
    }
    let (errors, ended) = v.errors_then_end().await;
    assert!(
        errors.contains(&400),
        "rate_limited errors before the cut: {errors:?}"
    );
    assert!(
        errors.len() <= 5,
        "errors are not amplified: {}",
        errors.len()
    );
    assert_eq!(ended, Ended::Closed(1008));
    let after = room_state(&server).await;
    assert!(
        after["likes"].as_u64().unwrap() <= 10,
        "only the burst was accepted: {after}"
    );
    assert_eq!(after["recent_comments"], before["recent_comments"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_versions_are_refused() {
    let server = TestServer::start(test_config());
    let _anchor = server.open_room("r1").await;
    let expired = Auth::new(&server.config.auth.secret).issue(&Claims {
        sub: "v".into(),
        role: Role::Viewer,
        room: None,
        merchant: None,
        name: None,
        exp: lockstep::auth::unix_now() - 10,
    });
    let forged = Auth::new("not-the-secret").issue(&Claims {
        sub: "v".into(),
        role: Role::Viewer,
        room: None,
        merchant: None,
        name: None,
        exp: lockstep::auth::unix_now() + 600,
    });
    let cases = [
        (
            json!({"type":"join","protocol":1,"token":expired}),
            "r1",
            201,
        ),
        (
            json!({"type":"join","protocol":1,"token":forged}),
            "r1",
            200,
        ),
        (
            json!({"type":"join","protocol":1,"token":"a.b.c"}),
            "r1",
            200,
        ),
        (
            json!({"type":"join","protocol":1,"token":server.anchor_token("r1")}),
            "r1",
            202,
        ),
        (
            json!({"type":"join","protocol":1,"token":server.token(Role::Viewer, "v", Some("r2"))}),
            "r1",
            202,
        ),
        (json!({"type":"join","protocol":99}), "r1", 103),
        (json!({"type":"join","protocol":1}), "unknown-room", 300),
    ];
    for (join, room, code) in cases {
        let mut c = Client::connect(&server.ws_url(&format!("/ws/rooms/{room}"))).await;
        c.send(join.clone()).await;
        let (errors, ended) = c.errors_then_end().await;
        assert_eq!(errors, [code], "join {join}");
        assert_eq!(ended, Ended::Closed(4004));
    }
    // A viewer naming an unknown room never creates it.
    assert_eq!(
        reqwest::get(server.url("/api/v1/rooms/unknown-room"))
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_is_closed_after_join_timeout() {
    let mut cfg = test_config();
    cfg.session.join_timeout_ms = 200;
    let server = TestServer::start(cfg);
    let mut c = Client::connect(&server.ws_url("/ws/rooms/r1")).await;
    let (errors, ended) = c.errors_then_end().await;
    assert_eq!(errors, [105]);
    assert_eq!(ended, Ended::Closed(1008));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bad_input_gets_json_errors() {
    let server = TestServer::start(test_config());
    let http = reqwest::Client::new();
    let token = server.anchor_token("r1");
    let post = |body: String| {
        http.post(server.url("/api/v1/rooms"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        ("{oops".to_string(), 400, "malformed_json"),
        (r#"{"title":"no id"}"#.to_string(), 400, "invalid_message"),
        (r#"{"id":"bad id!"}"#.to_string(), 400, "invalid_message"),
        (
            format!(r#"{{"id":"r1","title":"{}"}}"#, "x".repeat(100_000)),
            413,
            "too_large",
        ),
    ];
    for (body, status, name) in cases {
        let resp = post(body).await.unwrap();
        assert_eq!(resp.status(), status);
        let err: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(err["name"], name);
        assert!(err["code"].is_u64() && err["message"].is_string());
    }
    let unknown = reqwest::get(server.url("/nope")).await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        reqwest::get(server.url("/api/v1/rooms/r1"))
            .await
            .unwrap()
            .status(),
        404,
        "nothing was created"
    );
    assert_eq!(
        reqwest::get(server.url("/healthz")).await.unwrap().status(),
        200
    );
}

/// A WebSocket handshake the server cannot serve is answered with the coded JSON error
/// (and the security headers) the routes give, and the server keeps serving sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_that_cannot_be_served_get_coded_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(test_config());
    // A browser's handshake, read to the end: a refusal closes the connection.
    let refused = |path: &'static str| async move {
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            server.addr
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        socket.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        (head.to_ascii_lowercase(), body.to_owned())
    };
    for (path, status, name) in [
        ("/ws/rooms/bad%20room!", 400, "invalid_message"),
        ("/ws/rooms/r1/elsewhere", 404, "not_found"),
        ("/ws/elsewhere", 404, "not_found"),
    ] {
        let (head, body) = refused(path).await;
        assert!(
            head.starts_with(&format!("http/1.1 {status} ")),
            "{path}: {head}"
        );
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{path}: {head}"
        );
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["name"], name, "{path}");
        assert!(body["code"].is_u64() && body["message"].is_string());
    }
    // Without the upgrade headers, the session path says what the handshake lacks.
    let plain = reqwest::get(server.url("/ws/rooms/r1")).await.unwrap();
    assert_eq!(plain.status(), 400);
    // And a well-formed handshake still opens a session.
    let _anchor = server.open_room("r1").await;
    let (mut viewer, _) = server.join_viewer("r1", Some("after")).await;
    viewer.send(json!({"type":"time_sync","t0":1.0})).await;
    viewer
        .recv_until(|m| matches!(m, ServerMsg::TimeSync { .. }).then_some(()))
        .await;
}
