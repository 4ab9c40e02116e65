//! State that must stay bounded however long the server runs: ended sales leave memory
//! (and are loaded again on demand, and not at startup), one sale's waiting requests are
//! capped, a reserve → cancel loop stops at the per-buyer order cap.

mod common;

use common::{TestServer, test_config};
use lockstep_protocol::{ErrorCode, OrderOutcome, ServerMsg};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_sales_leave_memory_and_come_back_on_demand() {
    let mut cfg = test_config();
    cfg.sales.retire_after_secs = 0;
    cfg.sales.tick_ms = 20;
    let server = TestServer::start(cfg.clone());
    let ended = server.create_sale("m1", "r1", 5, 5, json!({})).await;
    let open = server.create_sale("m1", "r1", 5, 5, json!({})).await;
    server.wait_metric("lockstep_sales_loaded", 2.0).await;
    let (status, _) = server
        .merchant_post("m1", &format!("/api/v1/sales/{ended}/close"), json!({}))
        .await;
    assert_eq!(status, 200);
    // The ended sale, with nothing reserved, retires; the open one stays.
    server.wait_metric("lockstep_sales_loaded", 1.0).await;
    // Asked about, it is loaded from the database with everything it had.
    let (status, view) = server
        .merchant_get("m1", &format!("/api/v1/sales/{ended}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(view["summary"]["state"], "ended");
    assert_eq!(view["summary"]["released"], 5);
    // An order on it is answered by the sale itself (loaded again on demand).
    let _anchor = server.open_room("r1").await;
    let (mut buyer, _) = server.join_viewer("r1", Some("late")).await;
    buyer
        .send(json!({"type":"order","sale_id":ended,"qty":1,"key":"k"}))
        .await;
    let outcome = buyer
        .recv_until(|m| match m {
            ServerMsg::OrderResult { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .await;
    assert_eq!(outcome, OrderOutcome::Closed);
    server.stop();

    // After a restart only the sale that can still change is loaded.
    let server = TestServer::start(cfg);
    server.wait_readyz(200).await;
    server.wait_metric("lockstep_sales_loaded", 1.0).await;
    let (status, _) = server
        .merchant_get("m1", &format!("/api/v1/sales/{open}"))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sale_takes_at_most_its_share_of_waiting_requests() {
    let mut cfg = test_config();
    cfg.sales.max_pending_requests = 1;
    cfg.session.msg_burst = 1_000;
    let server = TestServer::start(cfg);
    let sale = server
        .create_sale("m1", "r1", 100, 100, json!({"per_buyer_limit": 100}))
        .await;
    let mut anchor = server.open_room("r1").await;
    TestServer::drop_link(&mut anchor, &sale, 0).await;
    let (mut buyer, _) = server.join_viewer("r1", Some("eager")).await;
    let orders: Vec<_> = (0..30)
        .map(|i| json!({"type":"order","sale_id":sale,"qty":1,"key":format!("k{i}"),"id":i}))
        .collect();
    buyer.send_together(&orders).await;
    let (mut accepted, mut busy) = (0, 0);
    for _ in 0..30 {
        let answer = buyer
            .recv_until(|m| match m {
                ServerMsg::OrderResult { outcome, .. } => Some(Ok(*outcome)),
                ServerMsg::Error { name, message, .. } => Some(Err((*name, message.clone()))),
                _ => None,
            })
            .await;
        match answer {
            Ok(OrderOutcome::Accepted) => accepted += 1,
            Err((ErrorCode::Unavailable, message)) => {
                assert!(message.contains("busy"), "{message}");
                busy += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        accepted >= 1 && busy >= 1,
        "accepted {accepted}, busy {busy}"
    );
    assert_eq!(accepted + busy, 30, "every request was answered");
    server
        .wait_metric("lockstep_sale_pending_requests", 0.0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserve_cancel_loop_stops_at_the_order_cap() {
    let mut cfg = test_config();
    cfg.sales.max_orders_per_buyer = 5;
    let server = TestServer::start(cfg);
    let sale = server.create_sale("m1", "r1", 10, 10, json!({})).await;
    let mut anchor = server.open_room("r1").await;
    TestServer::drop_link(&mut anchor, &sale, 0).await;
    let (mut buyer, _) = server.join_viewer("r1", Some("looper")).await;
    let mut last = None;
    for i in 0..6 {
        buyer
            .send(json!({"type":"order","sale_id":sale,"qty":1,"key":format!("k{i}")}))
            .await;
        let (outcome, order) = buyer
            .recv_until(|m| match m {
                ServerMsg::OrderResult {
                    outcome, order_id, ..
                } => Some((*outcome, order_id.clone())),
                _ => None,
            })
            .await;
        last = Some(outcome);
        if let Some(order) = order {
            buyer
                .send(json!({"type":"cancel_order","order_id":order,"id":100 + i}))
                .await;
            buyer
                .recv_until(|m| matches!(m, ServerMsg::Ack { .. }).then_some(()))
                .await;
        }
    }
    assert_eq!(last, Some(OrderOutcome::LimitExceeded));
    let (_, view) = server
        .merchant_get("m1", &format!("/api/v1/sales/{sale}"))
        .await;
    assert_eq!(view["summary"]["orders"], 5, "no sixth order was stored");
}
