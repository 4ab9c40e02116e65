//! Dead and hostile connections: a half-open socket is closed by the heartbeat and stops
//! counting as online; a client flooding pings without reading is cut like any flood;
//! slow request heads and bodies time out; connection limits hold per process and per
//! address, answering with a coded error and freeing slots as connections close.

mod common;

use std::time::Duration;

use common::{Client, Ended, TestServer, test_config};
use futures_util::SinkExt;
use lockstep_protocol::ServerMsg;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

async fn online(server: &TestServer) -> u64 {
    let room: Value = reqwest::get(server.url("/api/v1/rooms/r1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    room["online"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_closed_by_the_heartbeat_and_leaves_the_room() {
    let mut cfg = test_config();
    cfg.session.heartbeat_interval_ms = 100;
    cfg.session.heartbeat_timeout_ms = 600;
    let server = TestServer::start(cfg);
    let anchor = server.open_room("r1").await;
    // The anchor keeps reading (and so answers pings); the viewer goes silent after its
    // welcome, like a phone that dropped off the network without a FIN.
    let (_anchor_tx, _acks) = anchor.split_acks();
    let (mut silent, _) = server.join_viewer("r1", Some("silent")).await;
    assert_eq!(online(&server).await, 1);
    let deadline = tokio::time::Instant::now() + common::EVENT_TIMEOUT;
    while server.metric("lockstep_heartbeat_timeouts_total").await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "never timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(online(&server).await, 0, "a dead socket is not online");
    assert_eq!(silent.ended().await, Ended::Closed(4002));
    // The anchor, which answered every ping, is still there.
    assert_eq!(
        server.metric("lockstep_heartbeat_timeouts_total").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_from_a_client_that_never_reads_is_cut() {
    let mut cfg = test_config();
    cfg.session.msg_rate_per_sec = 5.0;
    cfg.session.msg_burst = 5;
    cfg.session.flood_strikes = 20;
    let server = TestServer::start(cfg);
    let _anchor = server.open_room("r1").await;
    let mut flooder =
        Client::connect_small_buffer(server.addr, &server.ws_url("/ws/rooms/r1")).await;
    flooder.send(json!({"type":"join","protocol":1})).await;
    for i in 0..500u32 {
        if flooder
            .try_send_raw(Message::Ping(i.to_be_bytes().to_vec().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let (_, ended) = flooder.errors_then_end().await;
    assert_eq!(
        ended,
        Ended::Closed(1008),
        "pings count against the rate limit"
    );
}

/// Sends `request` on a fresh connection and returns what came back (until the server
/// closes or `wait` passes).
async fn raw(server: &TestServer, request: &[u8], wait: Duration) -> String {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_bodies_time_out() {
    let mut cfg = test_config();
    cfg.server.request_head_timeout_ms = 300;
    cfg.server.body_read_timeout_ms = 300;
    let server = TestServer::start(cfg);
    let merchant = server.merchant_token("m1");
    let started = std::time::Instant::now();
    let body = raw(
        &server,
        format!(
            "POST /api/v1/products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {merchant}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"title\":"
        )
        .as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(body.starts_with("HTTP/1.1 408"), "{body}");
    assert!(body.contains("\"request_timeout\""), "{body}");
    assert!(started.elapsed() < Duration::from_secs(4));
    let head = raw(
        &server,
        b"GET /healthz HTTP/1.1\r\nHost:",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 408"),
        "an unfinished head is dropped: {head}"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
}

/// Opens idle connections that hold their slots.
async fn hold(server: &TestServer, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        // A complete request keeps it a live keep-alive connection.
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(tcp);
    }
    held
}

async fn refused_with(server: &TestServer) -> String {
    raw(
        server,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_wide_connection_limit_holds_and_frees_slots() {
    let mut cfg = test_config();
    cfg.server.max_connections = 4;
    cfg.server.keep_alive_secs = 30;
    let server = TestServer::start(cfg);
    let mut held = hold(&server, 4).await;
    let refused = refused_with(&server).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("too_many_connections"), "{refused}");
    assert!(refused.contains("server.max_connections"), "{refused}");
    assert!(
        refused.to_lowercase().contains("connection: close"),
        "{refused}"
    );
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + common::EVENT_TIMEOUT;
    loop {
        let again = refused_with(&server).await;
        if again.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot never freed: {again}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Free every slot first: the metrics request needs one too, and the connection that
    // just got its 200 is closed by the server only once it notices the client left.
    drop(held);
    let deadline = tokio::time::Instant::now() + common::EVENT_TIMEOUT;
    while !matches!(reqwest::get(server.url("/metrics")).await, Ok(r) if r.status() == 200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no slot for /metrics"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.metric("lockstep_connections_refused_total").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_may_hold_only_its_share() {
    let mut cfg = test_config();
    cfg.server.connection_limit_exempt = vec![];
    cfg.server.max_connections_per_ip = 3;
    let server = TestServer::start(cfg);
    let _held = hold(&server, 3).await;
    let refused = refused_with(&server).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.contains("server.max_connections_per_ip"),
        "{refused}"
    );
    // WebSocket upgrades count the same way.
    let ws = tokio_tungstenite::connect_async(server.ws_url("/ws/rooms/r1")).await;
    assert!(
        ws.is_err(),
        "a fourth connection from one address is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_client_survives_the_heartbeat() {
    let mut cfg = test_config();
    cfg.session.heartbeat_interval_ms = 50;
    cfg.session.heartbeat_timeout_ms = 300;
    let server = TestServer::start(cfg);
    let (mut anchor, _acks) = server.open_room("r1").await.split_acks();
    let (mut viewer, _) = server.join_viewer("r1", Some("v")).await;
    // Well past the timeout, a client that reads (and so answers pings) is still served.
    for i in 0..10 {
        let say = json!({"type":"control","cmd":"say","text":format!("still here {i}"),"id":i});
        anchor.send(Message::text(say.to_string())).await.unwrap();
        viewer
            .recv_until(|m| match m {
                ServerMsg::Tick { comments, .. } if !comments.is_empty() => Some(()),
                _ => None,
            })
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server.metric("lockstep_heartbeat_timeouts_total").await,
        0.0
    );
}
