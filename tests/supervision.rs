//! Supervision: a panic inside a room's or a sale's core (injected through a test-only
//! hook) is contained by its actor's shell. The room restarts with its settings and
//! moderation and closes its sockets with 1012 so pages reconnect; the sale rebuilds
//! from the database, answering what it had not made durable with `unavailable`, and no
//! acknowledged order is lost. Both are counted in `lockstep_actor_panics_total`.

mod common;

use common::{Ended, TestServer, test_config};
use lockstep_protocol::{ErrorCode, OrderOutcome, RoomState, ServerMsg};
use serde_json::json;

async fn arm(server: &TestServer, target: &str) {
    let resp = reqwest::Client::new()
        .post(server.url(&format!("/__test__/panic/{target}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "test hooks are compiled into test builds"
    );
}

async fn panics(server: &TestServer, actor: &str) -> f64 {
    server
        .metric(&format!("lockstep_actor_panics_total{{actor=\"{actor}\"}}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_room_restarts_with_its_state_and_moderation() {
    let server = TestServer::start(test_config());
    // The hooks are armed process-wide: a room id no other test here uses.
    let mut anchor = server.open_room("restarting").await;
    anchor
        .send(json!({"type":"control","cmd":"go_live","id":1}))
        .await;
    anchor
        .send(json!({"type":"control","cmd":"ban","user":"mallory","id":2}))
        .await;
    anchor
        .recv_until(|m| matches!(m, ServerMsg::Ack { id: Some(2), .. }).then_some(()))
        .await;
    let (mut viewer, _) = server.join_viewer("restarting", Some("alice")).await;
    arm(&server, "room:restarting").await;
    viewer
        .send(json!({"type":"comment","text":"this one trips the hook","id":7}))
        .await;
    // Every socket of the room is closed with 1012 ("restarting; reconnect") ...
    assert_eq!(viewer.ended().await, Ended::Closed(1012));
    assert_eq!(anchor.ended().await, Ended::Closed(1012));
    assert_eq!(panics(&server, "room").await, 1.0);
    // ... and the room is still open, still live, and mallory is still banned.
    let (mut back, welcome) = server.join_viewer("restarting", Some("alice")).await;
    let ServerMsg::Welcome { room, .. } = welcome else {
        panic!("rejoin refused: {welcome:?}")
    };
    assert_eq!(room.state, RoomState::Live);
    let (_, refused) = server.join_viewer("restarting", Some("mallory")).await;
    assert!(
        matches!(
            refused,
            ServerMsg::Error {
                name: ErrorCode::Banned,
                ..
            }
        ),
        "{refused:?}"
    );
    back.send(json!({"type":"comment","text":"after the restart","id":8}))
        .await;
    back.recv_until(|m| matches!(m, ServerMsg::Ack { id: Some(8), .. }).then_some(()))
        .await;
}

fn result(m: &ServerMsg) -> Option<Result<(OrderOutcome, Option<String>), ErrorCode>> {
    match m {
        ServerMsg::OrderResult {
            outcome, order_id, ..
        } => Some(Ok((*outcome, order_id.clone()))),
        ServerMsg::Error { name, .. } => Some(Err(*name)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_sale_rebuilds_from_the_database_and_loses_nothing_acked() {
    let mut cfg = test_config();
    cfg.sales.recovery_backoff_initial_ms = 50;
    let server = TestServer::start(cfg);
    let sale = server
        .create_sale("m1", "r1", 10, 10, json!({"per_buyer_limit": 5}))
        .await;
    let mut anchor = server.open_room("r1").await;
    TestServer::drop_link(&mut anchor, &sale, 0).await;
    let (mut buyer, _) = server.join_viewer("r1", Some("bob")).await;
    buyer
        .send(json!({"type":"order","sale_id":sale,"qty":2,"key":"k1"}))
        .await;
    let Ok((OrderOutcome::Accepted, Some(first))) = buyer.recv_until(result).await else {
        panic!("first order refused")
    };
    arm(&server, &format!("sale:{sale}")).await;
    buyer
        .send(json!({"type":"order","sale_id":sale,"qty":1,"key":"k2"}))
        .await;
    assert_eq!(
        buyer.recv_until(result).await,
        Err(ErrorCode::Unavailable),
        "the request the core panicked on is not answered as if decided"
    );
    assert_eq!(panics(&server, "inventory").await, 1.0);
    // Retrying with the same key succeeds once the sale is rebuilt; the acked order is
    // still there and still counts against the limit.
    let deadline = tokio::time::Instant::now() + common::EVENT_TIMEOUT;
    loop {
        buyer
            .send(json!({"type":"order","sale_id":sale,"qty":1,"key":"k2"}))
            .await;
        match buyer.recv_until(result).await {
            Ok((OrderOutcome::Accepted, Some(_))) => break,
            Err(ErrorCode::Unavailable) => {
                assert!(tokio::time::Instant::now() < deadline, "never rebuilt");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The first order answers its key as before, and every acked unit still counts.
    buyer
        .send(json!({"type":"order","sale_id":sale,"qty":2,"key":"k1"}))
        .await;
    assert_eq!(
        buyer.recv_until(result).await,
        Ok((OrderOutcome::Accepted, Some(first)))
    );
    buyer
        .send(json!({"type":"order","sale_id":sale,"qty":3,"key":"k3"}))
        .await;
    assert_eq!(
        buyer.recv_until(result).await.map(|(o, _)| o),
        Ok(OrderOutcome::LimitExceeded),
        "2 + 1 held, 3 more would pass the limit of 5"
    );
    let (_, view) = server
        .merchant_get("m1", &format!("/api/v1/sales/{sale}"))
        .await;
    assert_eq!(view["summary"]["reserved"], 3, "{view}");
}
