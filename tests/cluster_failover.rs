//! Owner failover and fencing with real server processes sharing a real Redis. A room
//! runs on node A while buyers on nodes B and C order without pause; A is killed with
//! SIGKILL (or frozen with SIGSTOP until its lease lapses, then resumed). The buyers'
//! sockets stay up, another node serves the room within the lease plus a margin, every
//! order a buyer saw accepted is in Redis, units are conserved, and the history —
//! orders whose answers were lost counted as unknown — is linearizable. A resumed
//! owner's writes are refused: nothing is acknowledged twice, nothing oversold.

mod common;

use std::time::{Duration, Instant};

use common::Client;
use common::node::Node;
use common::redis::RedisServer;
use lockstep::auth::{Auth, Claims, unix_now};
use lockstep_load::linearizability::{Event, Op, Ret, SaleSpec, check};
use lockstep_protocol::{OrderOutcome, Role, ServerMsg};
use serde_json::{Value, json};

use common::node::LEASE_MS;
const ALLOTTED: u32 = 1_000_000;
const LIMIT: u32 = 1_000_000;

fn token(role: Role, sub: &str, room: Option<&str>, merchant: Option<&str>) -> String {
    Auth::new(&lockstep::Config::default().auth.secret).issue(&Claims {
        sub: sub.into(),
        role,
        room: room.map(Into::into),
        merchant: merchant.map(Into::into),
        name: None,
        exp: unix_now() + 600,
    })
}

async fn http(method: reqwest::Method, node: &Node, path: &str, token: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .request(method, node.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

/// Opens room `room` on `node` (its anchor), creates a sale of it through `merchant_node`,
/// drops its link; returns the anchor's socket and the sale id.
async fn room_with_sale(node: &Node, merchant_node: &Node, room: &str) -> (Client, String) {
    let mut anchor = Client::connect(&node.ws(&format!("/ws/rooms/{room}/control"))).await;
    anchor
        .send(json!({"type":"join","protocol":1,"token":token(Role::Anchor, "anchor", Some(room), None)}))
        .await;
    assert!(matches!(anchor.recv().await, ServerMsg::Welcome { .. }));
    let anchor_token = token(Role::Anchor, "anchor", Some(room), None);
    http(
        reqwest::Method::PUT,
        merchant_node,
        &format!("/api/v1/rooms/{room}/merchants/m1"),
        &anchor_token,
        json!({}),
    )
    .await;
    let merchant = token(Role::Merchant, "m1", None, Some("m1"));
    let product = http(
        reqwest::Method::POST,
        merchant_node,
        "/api/v1/products",
        &merchant,
        json!({"title":"t","price_cents":100,"skus":[{"stock":ALLOTTED}]}),
    )
    .await;
    let sku = product["skus"][0]["id"].as_str().unwrap();
    let sale = http(
        reqwest::Method::POST,
        merchant_node,
        "/api/v1/sales",
        &merchant,
        json!({"room":room,"sku_id":sku,"allotted":ALLOTTED,"price_cents":100,"per_buyer_limit":LIMIT}),
    )
    .await;
    let sale = sale["sale"]["id"].as_str().unwrap().to_owned();
    anchor
        .send(json!({"type":"control","cmd":"drop_link","sale_id":sale,"countdown_ms":0,"id":1}))
        .await;
    anchor
        .recv_until(|m| matches!(m, ServerMsg::Ack { id: Some(1), .. }).then_some(()))
        .await;
    (anchor, sale)
}

/// A buyer ordering one unit after another with fresh keys until `until`; orders without
/// an answer within two seconds are unknown outcomes.
async fn buyer(
    node_ws: String,
    room: String,
    sale: String,
    n: usize,
    start: Instant,
    until: Instant,
) -> (Vec<Event>, bool) {
    let name = format!("b{n}");
    let mut client = Client::connect(&format!("{node_ws}/ws/rooms/{room}")).await;
    client
        .send(json!({"type":"join","protocol":1,"token":token(Role::Viewer, &name, None, None)}))
        .await;
    assert!(matches!(client.recv().await, ServerMsg::Welcome { .. }));
    let mut events = Vec::new();
    let mut id = 0u64;
    while Instant::now() < until {
        id += 1;
        let key = format!("k{id}");
        let invoke = start.elapsed().as_nanos() as u64;
        if client
            .try_send(json!({"type":"order","sale_id":sale,"qty":1,"key":key,"id":id}))
            .await
            .is_err()
        {
            return (events, false);
        }
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            client.try_recv_until(|m| match m {
                ServerMsg::OrderResult {
                    id: Some(i),
                    outcome,
                    order_id,
                    remaining,
                    ..
                } if *i == id => Some(Some((*outcome, order_id.clone(), *remaining))),
                // Refused while the room moves (`unavailable`): an unknown outcome.
                ServerMsg::Error { id: Some(i), .. } if *i == id => Some(None),
                _ => None,
            }),
        )
        .await;
        let op = Op::Reserve {
            buyer: name.clone(),
            qty: 1,
            key,
        };
        match answer {
            Ok(Some(Some((OrderOutcome::Accepted, Some(order_id), Some(remaining))))) => events
                .push(Event {
                    op,
                    invoke,
                    complete: Some(start.elapsed().as_nanos() as u64),
                    ret: Ret::Accepted {
                        order_id,
                        remaining,
                    },
                }),
            Ok(Some(Some((outcome, _, _)))) => panic!("unexpected outcome {outcome:?}"),
            Ok(None) => return (events, false),
            Ok(Some(None)) | Err(_) => events.push(Event {
                op,
                invoke,
                complete: None,
                ret: Ret::Unknown,
            }),
        }
    }
    (events, true)
}

async fn storm(
    nodes: &[&Node],
    room: &str,
    sale: &str,
    start: Instant,
    until: Instant,
) -> Vec<tokio::task::JoinHandle<(Vec<Event>, bool)>> {
    (0..20)
        .map(|n| {
            let ws = format!("ws://127.0.0.1:{}", nodes[n % nodes.len()].port);
            tokio::spawn(buyer(ws, room.to_owned(), sale.to_owned(), n, start, until))
        })
        .collect()
}

/// Every accepted order is stored; units are conserved; the history is linearizable.
async fn verify(node: &Node, sale: &str, history: &[Event]) {
    let merchant = token(Role::Merchant, "m1", None, Some("m1"));
    let mut stored = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/api/v1/orders?sale_id={sale}&limit=500&after={a}"),
            None => format!("/api/v1/orders?sale_id={sale}&limit=500"),
        };
        let page = http(reqwest::Method::GET, node, &path, &merchant, Value::Null).await;
        let orders = page["orders"].as_array().unwrap().clone();
        stored.extend(orders.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    for e in history {
        if let Ret::Accepted { order_id, .. } = &e.ret {
            assert!(
                stored.contains(order_id),
                "acknowledged order {order_id} is not in Redis"
            );
        }
    }
    let view = http(
        reqwest::Method::GET,
        node,
        &format!("/api/v1/sales/{sale}"),
        &merchant,
        Value::Null,
    )
    .await;
    let s = &view["summary"];
    let units = ["remaining", "reserved", "sold", "released"]
        .iter()
        .map(|k| s[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(units, u64::from(ALLOTTED), "units conserved: {s}");
    check(
        &SaleSpec {
            allotted: ALLOTTED,
            per_buyer_limit: LIMIT,
        },
        history,
    )
    .unwrap_or_else(|v| panic!("history not linearizable: {}", v.reason));
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_killed_owners_room_moves_and_keeps_every_acknowledged_order => a_killed_owners_room_moves_and_keeps_every_acknowledged_order
);

async fn a_killed_owners_room_moves_and_keeps_every_acknowledged_order(redis: RedisServer) {
    let a = Node::start(&redis, "node-a").await;
    let b = Node::start(&redis, "node-b").await;
    let c = Node::start(&redis, "node-c").await;
    let (_anchor, sale) = room_with_sale(&a, &b, "fo").await;
    let start = Instant::now();
    let until = Instant::now() + Duration::from_secs(3) + Duration::from_millis(3 * LEASE_MS);
    let buyers = storm(&[&b, &c], "fo", &sale, start, until).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = start.elapsed();
    drop(a); // SIGKILL: no shutdown path runs.
    let mut history = Vec::new();
    for buyer in buyers {
        let (events, still_connected) = buyer.await.unwrap();
        assert!(
            still_connected,
            "a buyer on a surviving node lost its socket"
        );
        history.extend(events);
    }
    // When the room was served again: the first order answered after the kill.
    let served_again = history
        .iter()
        .filter(|e| e.complete.is_some() && e.invoke > killed_at.as_nanos() as u64)
        .map(|e| e.complete.unwrap())
        .min()
        .expect("orders were answered after the owner died");
    let failover = Duration::from_nanos(served_again) - killed_at;
    println!("failover: {failover:?} (lease {LEASE_MS} ms)");
    assert!(
        failover < Duration::from_millis(2 * LEASE_MS + 2_000),
        "{failover:?}"
    );
    verify(&b, &sale, &history).await;
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_frozen_owner_resumed_after_a_takeover_acknowledges_nothing => a_frozen_owner_resumed_after_a_takeover_acknowledges_nothing
);

async fn a_frozen_owner_resumed_after_a_takeover_acknowledges_nothing(redis: RedisServer) {
    let a = Node::start(&redis, "node-a").await;
    let b = Node::start(&redis, "node-b").await;
    let c = Node::start(&redis, "node-c").await;
    let (_anchor, sale) = room_with_sale(&a, &b, "fence").await;
    let start = Instant::now();
    let until = Instant::now() + Duration::from_secs(3) + Duration::from_millis(3 * LEASE_MS);
    let buyers = storm(&[&b, &c], "fence", &sale, start, until).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.signal("-STOP");
    tokio::time::sleep(Duration::from_millis(2 * LEASE_MS + 1_000)).await;
    // Taken over meanwhile; the old owner wakes with its sales still in memory.
    a.signal("-CONT");
    let mut history = Vec::new();
    for buyer in buyers {
        let (events, still_connected) = buyer.await.unwrap();
        assert!(
            still_connected,
            "a buyer on a surviving node lost its socket"
        );
        history.extend(events);
    }
    // No order id was acknowledged twice.
    let mut ids = std::collections::HashSet::new();
    for e in &history {
        if let Ret::Accepted { order_id, .. } = &e.ret {
            assert!(
                ids.insert(order_id.clone()),
                "order {order_id} acknowledged twice"
            );
        }
    }
    verify(&b, &sale, &history).await;
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_restarted_owner_brings_its_room_back_as_it_left_it => a_restarted_owner_brings_its_room_back_as_it_left_it
);

/// The owner dies and comes back (same node id) before its lease lapses: the anchor's
/// reopening runs the room under a new epoch, from the checkpoint its last run left —
/// a user banned before the crash is still banned.
async fn a_restarted_owner_brings_its_room_back_as_it_left_it(redis: RedisServer) {
    let room = "comeback";
    let anchor_token = token(Role::Anchor, "anchor", Some(room), None);
    let open = |node: &Node| {
        let url = node.ws(&format!("/ws/rooms/{room}/control"));
        let anchor_token = anchor_token.clone();
        async move {
            let mut anchor = Client::connect(&url).await;
            anchor
                .send(json!({"type":"join","protocol":1,"token":anchor_token}))
                .await;
            assert!(matches!(anchor.recv().await, ServerMsg::Welcome { .. }));
            anchor
        }
    };
    let mut a = Node::start(&redis, "node-a").await;
    let mut anchor = open(&a).await;
    anchor
        .send(json!({"type":"control","cmd":"ban","user":"mallory","id":1}))
        .await;
    anchor
        .recv_until(|m| matches!(m, ServerMsg::Ack { id: Some(1), .. }).then_some(()))
        .await;
    // The ban is in the room's checkpoint (kept every 250 ms) before the crash.
    let mut conn = lockstep_cluster::conn::Topology::discover(&redis.url())
        .await
        .unwrap()
        .connect()
        .await
        .unwrap();
    let checkpoint = format!("lockstep:{{room:{room}}}:checkpoint");
    let deadline = Instant::now() + common::EVENT_TIMEOUT;
    loop {
        let state: Option<String> = redis::cmd("HGET")
            .arg(&checkpoint)
            .arg("state")
            .query_async(&mut conn)
            .await
            .unwrap();
        if state.is_some_and(|s| s.contains("mallory")) {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint with the ban");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let owner = |conn: &mut lockstep_cluster::conn::RedisConn| {
        let mut conn = conn.clone();
        async move {
            let value: String = redis::cmd("GET")
                .arg(format!("lockstep:{{room:{room}}}:owner"))
                .query_async(&mut conn)
                .await
                .unwrap();
            value
        }
    };
    assert_eq!(owner(&mut conn).await, "node-a|1");

    a.signal("-KILL");
    let _ = a.child.wait();
    a = Node::start(&redis, "node-a").await;
    let _anchor = open(&a).await;
    assert_eq!(owner(&mut conn).await, "node-a|2", "a new run, a new epoch");
    let mut mallory = Client::connect(&a.ws(&format!("/ws/rooms/{room}"))).await;
    mallory
        .send(
            json!({"type":"join","protocol":1,"token":token(Role::Viewer, "mallory", None, None)}),
        )
        .await;
    let refused = mallory.recv().await;
    assert!(
        matches!(&refused, ServerMsg::Error { message, .. } if message.contains("banned")),
        "{refused:?}"
    );
}
