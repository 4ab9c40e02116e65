//! A Redis outage under a cluster room: while the shared Redis is down, viewers on every
//! node keep their sockets, and a request that cannot reach the room's owner — an order,
//! a comment — is refused `unavailable` at once (never decided without durable
//! storage); when Redis returns, the nodes resubscribe and the room works again.

mod common;

use std::time::Duration;

use common::redis::RedisServer;
use common::{Client, TestServer};
use lockstep_protocol::{ErrorCode, ServerMsg};
use serde_json::json;

fn node(redis: &RedisServer, name: &str) -> TestServer {
    let mut cfg = redis.node_config(name);
    // Long enough that nobody takes the room over during the outage.
    cfg.cluster.lease_ms = 60_000;
    TestServer::start(cfg)
}

/// The answer to request `id`: its name if refused, `None` if accepted.
async fn answer(client: &mut Client, id: u64) -> Option<ErrorCode> {
    client
        .recv_until(|m| match m {
            ServerMsg::Ack { id: Some(i), .. } | ServerMsg::OrderResult { id: Some(i), .. }
                if *i == id =>
            {
                Some(None)
            }
            ServerMsg::Error {
                id: Some(i), name, ..
            } if *i == id => Some(Some(*name)),
            _ => None,
        })
        .await
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    requests_are_refused_while_redis_is_away_and_the_room_resumes_after => requests_are_refused_while_redis_is_away_and_the_room_resumes_after
);

async fn requests_are_refused_while_redis_is_away_and_the_room_resumes_after(
    mut redis: RedisServer,
) {
    let a = node(&redis, "a");
    let b = node(&redis, "b");
    let _anchor = a.open_room("out").await;
    let sale = b.create_sale("m1", "out", 10, 10, json!({})).await;
    let (mut watcher, _) = a.join_viewer("out", Some("watcher")).await;
    let (mut viewer, _) = b.join_viewer("out", Some("alice")).await;
    viewer
        .send(json!({"type":"comment","text":"before","id":1}))
        .await;
    assert_eq!(answer(&mut viewer, 1).await, None);

    redis.kill();
    viewer
        .send(json!({"type":"comment","text":"during","id":2}))
        .await;
    assert_eq!(answer(&mut viewer, 2).await, Some(ErrorCode::Unavailable));
    viewer
        .send(json!({"type":"order","sale_id":sale,"qty":1,"key":"k","id":3}))
        .await;
    assert_eq!(answer(&mut viewer, 3).await, Some(ErrorCode::Unavailable));
    // The sockets are still up: a ping is answered.
    viewer.send(json!({"type":"ping","id":4})).await;
    viewer
        .recv_until(|m| matches!(m, ServerMsg::Pong { id: Some(4) }).then_some(()))
        .await;

    redis.restart();
    // Once the nodes are back on Redis, comments flow from one node to the other again.
    // A request sent before the owner has resubscribed is lost (publish/subscribe keeps
    // nothing for an absent subscriber): like a client, retry after a while.
    let mut id = 10;
    loop {
        id += 1;
        assert!(id < 40, "the room did not come back");
        viewer
            .send(json!({"type":"comment","text":format!("after {id}"),"id":id}))
            .await;
        match tokio::time::timeout(Duration::from_secs(2), answer(&mut viewer, id)).await {
            Ok(None) => break,
            Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(_) => {}
        }
    }
    let text = format!("after {id}");
    watcher
        .recv_until(|m| match m {
            ServerMsg::Tick { comments, .. } if comments.iter().any(|c| c.text == text) => Some(()),
            _ => None,
        })
        .await;
}
