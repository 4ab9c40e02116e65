//! Replays and analytics in cluster mode: a room runs on one node with viewers on
//! another; its record goes to the shared Redis, so once it ends every node serves its
//! replay (chapter, comments, likes), its dashboard's numbers (orders from the shared
//! store included) and its recording (streamed from the node that made it, byte ranges
//! included) — on a standalone Redis and on a Redis Cluster.

mod common;

use std::time::Duration;

use common::TestServer;
use common::redis::RedisServer;
use lockstep_protocol::{OrderOutcome, ServerMsg};
use serde_json::{Value, json};

async fn get(node: &TestServer, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(node.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    any_node_serves_the_replay_of_a_room_another_node_ran => any_node_serves_the_replay
);

async fn any_node_serves_the_replay(redis: RedisServer) {
    let nodes = [
        TestServer::start(redis.node_config("a")),
        TestServer::start(redis.node_config("b")),
    ];
    let sale = nodes[0]
        .create_sale("m1", "shop", 10, 10, json!({"per_buyer_limit": 2}))
        .await;
    let mut anchor = nodes[0].open_room("shop").await;
    // The anchor streams to the room's node, which records it.
    let (_publisher, stop) = common::media::go_live(&nodes[0], &mut anchor, "shop").await;
    // A viewer on the other node comments, likes and buys.
    let (mut viewer, _) = nodes[1].join_viewer("shop", Some("bea")).await;
    viewer
        .send(json!({"type":"comment","text":"from the edge","id":2}))
        .await;
    viewer
        .recv_until(|m| matches!(m, ServerMsg::Ack { id: Some(2), .. }).then_some(()))
        .await;
    viewer.send(json!({"type":"like","count":4})).await;
    // With video the link shows after the playout delay: order once it is revealed.
    let reveal_at = TestServer::drop_link(&mut anchor, &sale, 0).await;
    let wait = reveal_at.saturating_sub(lockstep_actors::clock::now_ms()) + 20;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    viewer
        .send(json!({"type":"order","sale_id":sale,"qty":2,"key":"k","id":3}))
        .await;
    viewer
        .recv_until(|m| match m {
            ServerMsg::OrderResult {
                id: Some(3),
                outcome,
                ..
            } => {
                assert_eq!(*outcome, OrderOutcome::Accepted);
                Some(())
            }
            _ => None,
        })
        .await;
    // Let the likes reach the owner and a second go to the archive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    anchor
        .send(json!({"type":"control","cmd":"end","id":4}))
        .await;
    stop.cancel();

    // The node that did not run the room serves its replay.
    let deadline = tokio::time::Instant::now() + common::EVENT_TIMEOUT;
    let id = loop {
        let (_, list) = get(&nodes[1], "/api/v1/replays?room=shop", None).await;
        if list["replays"][0]["state"] == "ended" {
            break list["replays"][0]["id"].as_i64().unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ended replay: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, replay) = get(&nodes[1], &format!("/api/v1/replays/{id}"), None).await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["title"], "Room shop");
    assert_eq!(replay["chapters"][0]["sale_id"], sale.as_str(), "{replay}");
    assert_eq!(replay["chapters"][0]["orders"], 1);
    assert_eq!(replay["chapters"][0]["units_sold"], 2);
    let (_, page) = get(&nodes[1], &format!("/api/v1/replays/{id}/events"), None).await;
    let events = page["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "comment" && e["text"] == "from the edge"),
        "{page}"
    );

    // The dashboard's numbers, from either node.
    for node in &nodes {
        let (status, report) = get(
            node,
            &format!("/api/v1/rooms/shop/analytics?replay={id}"),
            Some(&node.anchor_token("shop")),
        )
        .await;
        assert_eq!(status, 200, "{report}");
        let t = &report["totals"];
        assert_eq!(
            (
                t["comments"].as_u64(),
                t["likes"].as_u64(),
                t["orders"].as_u64(),
                t["units"].as_u64()
            ),
            (Some(1), Some(4), Some(1), Some(2)),
            "{t}"
        );
        assert_eq!(t["gmv_cents"], 5800);
    }

    // The recording comes through the other node too, with byte ranges.
    let replay = {
        let deadline = tokio::time::Instant::now() + common::EVENT_TIMEOUT;
        loop {
            let (_, replay) = get(&nodes[0], &format!("/api/v1/replays/{id}"), None).await;
            if replay["duration_ms"].as_u64() > Some(0) && replay["media_url"].is_string() {
                break replay;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no recording: {replay}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let media = replay["media_url"].as_str().unwrap();
    // Node b recorded nothing itself: the replay's times come from the node that did.
    let (_, elsewhere) = get(&nodes[1], &format!("/api/v1/replays/{id}"), None).await;
    for field in ["media_url", "media_start_at", "duration_ms", "keyframes_ms"] {
        assert_eq!(elsewhere[field], replay[field], "{field}");
    }
    let whole = reqwest::get(nodes[1].url(media)).await.unwrap();
    assert_eq!(whole.status(), 200);
    let bytes = whole.bytes().await.unwrap();
    assert_eq!(&bytes[..4], &[0x1a, 0x45, 0xdf, 0xa3], "a WebM (EBML) file");
    let ranged = reqwest::Client::new()
        .get(nodes[1].url(media))
        .header("Range", "bytes=10-59")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.headers()["content-range"].to_str().unwrap(),
        format!("bytes 10-59/{}", bytes.len())
    );
    assert_eq!(ranged.bytes().await.unwrap(), bytes.slice(10..60));

    // The anchor renames the chapter through the other node; everyone sees it.
    let resp = reqwest::Client::new()
        .patch(nodes[1].url(&format!("/api/v1/replays/{id}/chapters/{sale}")))
        .bearer_auth(nodes[1].anchor_token("shop"))
        .json(&json!({"title": "Linen shirt, white"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, replay) = get(&nodes[0], &format!("/api/v1/replays/{id}"), None).await;
    assert_eq!(replay["chapters"][0]["title"], "Linen shirt, white");
}
