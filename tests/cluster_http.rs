//! Cluster mode over HTTP: a request about a room that another node runs — its snapshot,
//! its sales, an anchor opening it, a merchant closing its sale or confirming an order,
//! the anchor's WHIP and, with `cluster.edge_media` off, a player's WHEP — is answered by
//! any node, which forwards it to the room's node; the video then flows from that node's
//! SFU. Concurrent openings of a room on one node keep one owner under one epoch.

mod common;

use common::TestServer;
use common::media::{WAIT, go_live, ws_subscribe};
use common::redis::RedisServer;
use lockstep_load::rtc::Subscriber;
use lockstep_protocol::{OrderOutcome, ServerMsg};
use serde_json::{Value, json};

fn nodes(redis: &RedisServer) -> Vec<TestServer> {
    redis.three_nodes()
}

async fn get(node: &TestServer, path: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(node.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    any_node_answers_for_a_room_another_node_runs => any_node_answers_for_a_room_another_node_runs
);

async fn any_node_answers_for_a_room_another_node_runs(redis: RedisServer) {
    let nodes = nodes(&redis);
    let mut anchor = nodes[0].open_room("shop").await;
    let token = nodes[1].anchor_token("shop");

    // The snapshot, from a node that only forwards.
    let (status, snapshot) = get(&nodes[1], "/api/v1/rooms/shop", &token).await;
    assert_eq!(status, 200, "{snapshot}");
    assert_eq!(snapshot["title"], "Room shop", "{snapshot}");
    // The anchor opening it again through another node finds it open.
    let resp = reqwest::Client::new()
        .post(nodes[2].url("/api/v1/rooms"))
        .bearer_auth(&token)
        .json(&json!({"id":"shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // A sale created through one node is listed by another, as its room's node sees it.
    let sale = nodes[1]
        .create_sale("m1", "shop", 10, 10, json!({"per_buyer_limit": 5}))
        .await;
    let (status, sales) = get(&nodes[2], "/api/v1/rooms/shop/sales", &token).await;
    assert_eq!(status, 200, "{sales}");
    assert_eq!(sales["sales"][0]["id"], sale.as_str(), "{sales}");

    // A buyer on a third node reserves; the merchant confirms and closes elsewhere.
    TestServer::drop_link(&mut anchor, &sale, 0).await;
    let (mut buyer, _) = nodes[2].join_viewer("shop", Some("bea")).await;
    buyer
        .send(json!({"type":"order","sale_id":sale,"qty":2,"key":"k1","id":5}))
        .await;
    let order = buyer
        .recv_until(|m| match m {
            ServerMsg::OrderResult {
                id: Some(5),
                outcome,
                order_id,
                ..
            } => {
                assert_eq!(*outcome, OrderOutcome::Accepted);
                order_id.clone()
            }
            _ => None,
        })
        .await;
    let (status, paid) = nodes[1]
        .merchant_post("m1", &format!("/api/v1/orders/{order}/confirm"), json!({}))
        .await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["state"], "confirmed", "{paid}");
    let (status, closed) = nodes[2]
        .merchant_post("m1", &format!("/api/v1/sales/{sale}/close"), json!({}))
        .await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["summary"]["state"], "ended", "{closed}");
}

/// With `cluster.edge_media` off, video for every viewer flows from the room's node
/// (with it on, the default, each node serves its own viewers: tests/cluster_media.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_edge_media_video_played_through_other_nodes_flows_from_the_rooms_node() {
    let redis = RedisServer::start();
    let nodes: Vec<TestServer> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let mut cfg = redis.node_config(name);
            cfg.cluster.edge_media = false;
            TestServer::start(cfg)
        })
        .collect();
    let mut anchor = nodes[0].open_room("tv").await;
    // The anchor's WHIP goes to node B, the player's WHEP to node C: both are signalled
    // through their node and answered by the room's node A, whose SFU carries the media.
    let (_publisher, stop) = go_live(&nodes[1], &mut anchor, "tv").await;
    let player = Subscriber::whep(&nodes[2].url(""), "tv", None)
        .await
        .expect("WHEP through another node");
    assert!(player.location().unwrap().starts_with("/whep/tv/"));
    player.wait_video(100, WAIT).await.unwrap();
    let stats = player.stats();
    assert!(stats.keyframes >= 1, "{stats:?}");
    player.wait_audio(1, WAIT).await.unwrap();
    let metrics = |node: &TestServer| {
        let url = node.url("/metrics");
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    // The subscriber is on A's SFU, none on B's or C's.
    let subscribers = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("lockstep_media_subscribers "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(subscribers(&metrics(&nodes[0]).await), 1);
    assert_eq!(subscribers(&metrics(&nodes[2]).await), 0);

    // A viewer on node B subscribes over its own socket: the offer goes to A as WHEP.
    let (mut viewer, _) = nodes[1].join_viewer("tv", Some("vic")).await;
    let on_socket = ws_subscribe(&mut viewer).await;
    on_socket.wait_video(100, WAIT).await.unwrap();
    assert_eq!(subscribers(&metrics(&nodes[0]).await), 2);
    assert_eq!(subscribers(&metrics(&nodes[1]).await), 0);
    // Choosing a layer needs the room's own node: a clear refusal.
    viewer
        .send(json!({"type":"rtc_layer","layer":"low","id":8}))
        .await;
    viewer
        .recv_until(|m| matches!(m, ServerMsg::Error { id: Some(8), .. }).then_some(()))
        .await;
    // Closing it ends the subscription on A.
    viewer.send(json!({"type":"rtc_close","id":9})).await;
    viewer
        .recv_until(|m| matches!(m, ServerMsg::Ack { id: Some(9), .. }).then_some(()))
        .await;
    let deadline = std::time::Instant::now() + WAIT;
    while subscribers(&metrics(&nodes[0]).await) != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the socket's subscription stayed on A"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_openings_on_one_node_keep_one_owner_and_epoch() {
    let redis = RedisServer::start();
    let nodes = nodes(&redis);
    let token = nodes[0].anchor_token("busy");
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let (url, token) = (nodes[0].url("/api/v1/rooms"), token.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"id":"busy"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for open in opens {
        assert!([200, 201].contains(&open.await.unwrap()));
    }
    let mut conn = redis.each_server().remove(0);
    let epoch: u64 = redis::cmd("GET")
        .arg("lockstep:{room:busy}:epoch")
        .query(&mut conn)
        .unwrap();
    assert_eq!(epoch, 1, "one opening, one epoch");
}
