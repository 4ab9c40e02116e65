//! The flash sale over real sockets: the link drop, ordering before and after the reveal,
//! idempotent retries, reservation expiry, closing, and a restart from the database.

mod common;

use common::{Client, TestServer, error_code, test_config};
use lockstep_protocol::{OrderOutcome, SaleState, ServerMsg};
use serde_json::json;

fn order_result(m: &ServerMsg) -> Option<(OrderOutcome, Option<String>, Option<u32>)> {
    match m {
        ServerMsg::OrderResult {
            outcome,
            order_id,
            remaining,
            ..
        } => Some((*outcome, order_id.clone(), *remaining)),
        _ => None,
    }
}

async fn wait_until(at_ms: u64) {
    let now = lockstep_actors::clock::now_ms();
    if at_ms > now {
        tokio::time::sleep(std::time::Duration::from_millis(at_ms - now)).await;
    }
}

/// Room r1 with a sale of 10 units at most 2 per buyer, the link dropped and the sale
/// open: the sale id, the anchor and buyer alice (joined before the drop).
async fn open_sale_to_alice(server: &TestServer) -> (String, Client, Client) {
    let sale = server
        .create_sale("m1", "r1", 10, 10, json!({"per_buyer_limit": 2}))
        .await;
    let mut anchor = server.open_room("r1").await;
    let (alice, _) = server.join_viewer("r1", Some("alice")).await;
    let reveal_at = TestServer::drop_link(&mut anchor, &sale, 0).await;
    wait_until(reveal_at).await;
    (sale, anchor, alice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_reaches_every_viewer_with_one_reveal_time_and_orders_wait_for_it() {
    let server = TestServer::start(test_config());
    let sale = server
        .create_sale("m1", "r1", 10, 5, json!({"per_buyer_limit": 5}))
        .await;
    let mut anchor = server.open_room("r1").await;
    let mut viewers = Vec::new();
    for i in 0..5 {
        viewers.push(server.join_viewer("r1", Some(&format!("v{i}"))).await.0);
    }
    let reveal_at = TestServer::drop_link(&mut anchor, &sale, 1_500).await;
    for v in &mut viewers {
        let link = v
            .recv_until(|m| match m {
                ServerMsg::Link { link } => Some(link.clone()),
                _ => None,
            })
            .await;
        assert_eq!(
            link.reveal_at, reveal_at,
            "every viewer gets the same reveal time"
        );
        assert_eq!(
            (
                link.sale_id.as_str(),
                link.title.as_str(),
                link.sale_price_cents
            ),
            (sale.as_str(), "Linen shirt", 2900)
        );
        assert!(
            lockstep_actors::clock::now_ms() < reveal_at,
            "the card arrives before the reveal"
        );
    }
    // Before the reveal: refused, and the key is not used up.
    viewers[0]
        .send(json!({"type":"order","sale_id":sale,"qty":1,"key":"a","id":1}))
        .await;
    assert_eq!(
        viewers[0].recv_until(order_result).await.0,
        OrderOutcome::NotOpen
    );
    // A late joiner gets the link in its welcome snapshot.
    let (_late, welcome) = server.join_viewer("r1", Some("late")).await;
    let ServerMsg::Welcome { room, .. } = welcome else {
        panic!("{welcome:?}")
    };
    assert_eq!(room.link.map(|l| l.reveal_at), Some(reveal_at));
    wait_until(reveal_at).await;
    viewers[0]
        .send(json!({"type":"order","sale_id":sale,"qty":2,"key":"a","id":2}))
        .await;
    let (outcome, order_id, remaining) = viewers[0].recv_until(order_result).await;
    assert_eq!((outcome, remaining), (OrderOutcome::Accepted, Some(3)));
    assert!(order_id.is_some());
    // Everyone sees the stock move, coalesced into a tick.
    viewers[1]
        .recv_until(|m| match m {
            ServerMsg::Tick { sales, .. } => {
                sales.get(&sale).filter(|s| s.remaining == 3).map(|_| ())
            }
            _ => None,
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_idempotent_and_limits_hold_across_orders() {
    let server = TestServer::start(test_config());
    let (sale, _anchor, mut v) = open_sale_to_alice(&server).await;
    let mut order = async |key: &str, qty: u32| {
        v.send(json!({"type":"order","sale_id":sale,"qty":qty,"key":key}))
            .await;
        v.recv_until(order_result).await
    };
    let first = order("k1", 1).await;
    assert_eq!(first.0, OrderOutcome::Accepted);
    assert_eq!(
        order("k1", 1).await,
        first,
        "a retry returns the first result"
    );
    assert_eq!(
        order("k1", 2).await.0,
        OrderOutcome::Invalid,
        "same key, other qty"
    );
    assert_eq!(order("k2", 1).await.0, OrderOutcome::Accepted);
    assert_eq!(
        order("k3", 1).await.0,
        OrderOutcome::LimitExceeded,
        "limit holds across orders"
    );
    // 2 held + 4294967295 wraps to 1 in unchecked u32 arithmetic, under the limit.
    assert_eq!(
        order("k4", u32::MAX).await.0,
        OrderOutcome::LimitExceeded,
        "no quantity wraps around the limit"
    );
    let (status, view) = server
        .merchant_get("m1", &format!("/api/v1/sales/{sale}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(view["summary"]["reserved"], 2);
    assert_eq!(view["summary"]["remaining"], 8);
    assert_eq!(view["summary"]["buyers"], 1);
}

/// Requests a session sends together reach the sale in the order sent, orders and
/// cancels alike (they travel batched with other sessions' requests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyers_pipelined_requests_are_decided_in_the_order_sent() {
    let server = TestServer::start(test_config());
    let (sale, _anchor, mut v) = open_sale_to_alice(&server).await;
    let order =
        |key: &str, id: u64| json!({"type":"order","sale_id":sale,"qty":1,"key":key,"id":id});
    v.send_together(
        &(1..=5)
            .map(|i| order(&format!("p{i}"), i))
            .collect::<Vec<_>>(),
    )
    .await;
    let mut decided = std::collections::BTreeMap::new();
    while decided.len() < 5 {
        let (key, outcome, order_id) = v
            .recv_until(|m| match m {
                ServerMsg::OrderResult {
                    key,
                    outcome,
                    order_id,
                    ..
                } => Some((key.clone(), *outcome, order_id.clone())),
                _ => None,
            })
            .await;
        decided.insert(key, (outcome, order_id));
    }
    let outcomes: Vec<_> = decided.values().map(|(outcome, _)| *outcome).collect();
    assert_eq!(
        outcomes,
        [
            OrderOutcome::Accepted,
            OrderOutcome::Accepted,
            OrderOutcome::LimitExceeded,
            OrderOutcome::LimitExceeded,
            OrderOutcome::LimitExceeded
        ],
        "the first two orders sent take the limit: {decided:?}"
    );
    // A cancel sent before an order frees the unit that order needs.
    let first = decided["p1"]
        .1
        .clone()
        .expect("an accepted order has an id");
    v.send_together(&[
        json!({"type":"cancel_order","order_id":first,"id":6}),
        order("p6", 7),
    ])
    .await;
    let outcome = v
        .recv_until(|m| match m {
            ServerMsg::OrderResult { key, outcome, .. } if key == "p6" => Some(*outcome),
            _ => None,
        })
        .await;
    assert_eq!(
        outcome,
        OrderOutcome::Accepted,
        "the cancel was decided first"
    );
}

/// After a sell-out, refusals and repeats of a decided key are answered without a
/// store commit: they write nothing and wait for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_after_a_sell_out_cost_the_store_nothing() {
    let server = TestServer::start(test_config());
    let sale = server.create_sale("m1", "r1", 1, 1, json!({})).await;
    let mut anchor = server.open_room("r1").await;
    let (mut winner, _) = server.join_viewer("r1", Some("winner")).await;
    let mut others = Vec::new();
    for i in 0..20 {
        others.push(server.join_viewer("r1", Some(&format!("v{i}"))).await.0);
    }
    let reveal_at = TestServer::drop_link(&mut anchor, &sale, 0).await;
    wait_until(reveal_at).await;
    let order = json!({"type":"order","sale_id":sale,"qty":1,"key":"k"});
    winner.send(order.clone()).await;
    let won = winner.recv_until(order_result).await;
    assert_eq!(won.0, OrderOutcome::Accepted);
    let commits = server.metric("lockstep_store_commits_total").await;
    assert!(commits >= 1.0, "the accepted order was committed");
    for v in &mut others {
        v.send(order.clone()).await;
    }
    for v in &mut others {
        assert_eq!(v.recv_until(order_result).await.0, OrderOutcome::SoldOut);
    }
    winner.send(order).await;
    assert_eq!(
        winner.recv_until(order_result).await,
        won,
        "a repeat gets the first answer"
    );
    assert_eq!(
        server.metric("lockstep_store_commits_total").await,
        commits,
        "refusals and repeats made store commits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_reservation_returns_its_unit() {
    let server = TestServer::start(test_config());
    let sale = server
        .create_sale("m1", "r1", 1, 1, json!({"reservation_ttl_secs": 1}))
        .await;
    let mut anchor = server.open_room("r1").await;
    let (mut a, _) = server.join_viewer("r1", Some("a")).await;
    let (mut b, _) = server.join_viewer("r1", Some("b")).await;
    let reveal_at = TestServer::drop_link(&mut anchor, &sale, 0).await;
    wait_until(reveal_at).await;
    a.send(json!({"type":"order","sale_id":sale,"key":"x"}))
        .await;
    assert_eq!(a.recv_until(order_result).await.0, OrderOutcome::Accepted);
    b.recv_until(|m| {
        matches!(
            m,
            ServerMsg::Sale {
                state: SaleState::SoldOut,
                ..
            }
        )
        .then_some(())
    })
    .await;
    b.send(json!({"type":"order","sale_id":sale,"key":"y"}))
        .await;
    assert_eq!(b.recv_until(order_result).await.0, OrderOutcome::SoldOut);
    // The unpaid reservation expires: the room hears the unit is back.
    b.recv_until(|m| {
        matches!(
            m,
            ServerMsg::Sale {
                state: SaleState::Open,
                remaining: 1,
                ..
            }
        )
        .then_some(())
    })
    .await;
    b.send(json!({"type":"order","sale_id":sale,"key":"z"}))
        .await;
    assert_eq!(b.recv_until(order_result).await.0, OrderOutcome::Accepted);
    let (_, orders) = server
        .merchant_get(
            "m1",
            &format!("/api/v1/orders?sale_id={sale}&state=expired"),
        )
        .await;
    assert_eq!(orders["orders"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_viewers_cannot_order_and_foreign_sales_are_unknown() {
    let server = TestServer::start(test_config());
    let other = server.create_sale("m1", "r2", 5, 5, json!({})).await;
    let _anchor = server.open_room("r1").await;
    let (mut anon, _) = server.join_viewer("r1", None).await;
    anon.send(json!({"type":"order","sale_id":other,"key":"k","id":1}))
        .await;
    assert_eq!(
        error_code(&anon.recv_until(|m| error_code(m).map(|_| m.clone())).await),
        Some(203)
    );
    let (mut v, _) = server.join_viewer("r1", Some("v")).await;
    v.send(json!({"type":"order","sale_id":other,"key":"k","id":2}))
        .await;
    assert_eq!(
        error_code(&v.recv_until(|m| error_code(m).map(|_| m.clone())).await),
        Some(306)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_sale_ends_it_for_everyone_and_returns_stock() {
    let server = TestServer::start(test_config());
    let sale = server
        .create_sale("m1", "r1", 10, 6, json!({"per_buyer_limit": 2}))
        .await;
    let (_, view) = server
        .merchant_get("m1", &format!("/api/v1/sales/{sale}"))
        .await;
    let sku = view["sale"]["sku_id"].as_str().unwrap().to_owned();
    assert_eq!(
        server
            .merchant_get("m1", &format!("/api/v1/skus/{sku}"))
            .await
            .1["stock"],
        4,
        "allotment left the free stock"
    );
    let mut anchor = server.open_room("r1").await;
    let (mut v, _) = server.join_viewer("r1", Some("v")).await;
    let reveal_at = TestServer::drop_link(&mut anchor, &sale, 0).await;
    wait_until(reveal_at).await;
    v.send(json!({"type":"order","sale_id":sale,"qty":2,"key":"k"}))
        .await;
    let (_, order_id, _) = v.recv_until(order_result).await;
    anchor
        .send(json!({"type":"control","cmd":"close_sale","sale_id":sale,"id":5}))
        .await;
    anchor
        .recv_until(|m| matches!(m, ServerMsg::Ack { id: Some(5), .. }).then_some(()))
        .await;
    v.recv_until(|m| {
        matches!(
            m,
            ServerMsg::Sale {
                state: SaleState::Ended,
                ..
            }
        )
        .then_some(())
    })
    .await;
    v.send(json!({"type":"order","sale_id":sale,"key":"late"}))
        .await;
    assert_eq!(v.recv_until(order_result).await.0, OrderOutcome::Closed);
    assert_eq!(
        server
            .merchant_get("m1", &format!("/api/v1/skus/{sku}"))
            .await
            .1["stock"],
        8,
        "4 unsold units returned"
    );
    // The reservation outlives the sale; cancelling it returns its units too.
    let (status, _) = server
        .merchant_post(
            "m1",
            &format!("/api/v1/orders/{}/cancel", order_id.unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        server
            .merchant_get("m1", &format!("/api/v1/skus/{sku}"))
            .await
            .1["stock"],
        10
    );
    let (_, view) = server
        .merchant_get("m1", &format!("/api/v1/sales/{sale}"))
        .await;
    assert_eq!(view["summary"]["released"], 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rebuilds_sales_orders_and_keys_from_the_database() {
    let cfg = test_config();
    let server = TestServer::start(cfg.clone());
    let sale = server
        .create_sale("m1", "r1", 10, 5, json!({"per_buyer_limit": 3}))
        .await;
    let mut anchor = server.open_room("r1").await;
    let (mut v, _) = server.join_viewer("r1", Some("alice")).await;
    let reveal_at = TestServer::drop_link(&mut anchor, &sale, 0).await;
    wait_until(reveal_at).await;
    v.send(json!({"type":"order","sale_id":sale,"qty":2,"key":"k1"}))
        .await;
    let first = v.recv_until(order_result).await;
    drop((anchor, v));
    server.stop();

    let server = TestServer::start(cfg);
    let (status, view) = server
        .merchant_get("m1", &format!("/api/v1/sales/{sale}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            view["summary"]["reserved"].as_u64(),
            view["summary"]["remaining"].as_u64()
        ),
        (Some(2), Some(3))
    );
    assert_eq!(
        view["summary"]["state"], "open",
        "the reveal survived the restart"
    );
    let _anchor = server.open_room("r1").await;
    let (mut v, _) = server.join_viewer("r1", Some("alice")).await;
    v.send(json!({"type":"order","sale_id":sale,"qty":2,"key":"k1"}))
        .await;
    assert_eq!(
        v.recv_until(order_result).await,
        first,
        "the idempotency key survived"
    );
    v.send(json!({"type":"order","sale_id":sale,"qty":2,"key":"k2"}))
        .await;
    assert_eq!(
        v.recv_until(order_result).await.0,
        OrderOutcome::LimitExceeded,
        "so did the buyer's limit"
    );
}
