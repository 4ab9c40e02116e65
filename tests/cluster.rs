//! Cluster mode against a real Redis: three nodes serve one room. The room runs on the
//! node its anchor opened it on; viewers on any node see every broadcast exactly once,
//! their comments, likes and presence reach the room, and an anchor connected to any
//! node moderates it — a ban closes the banned user's sockets on every node.

mod common;

use common::redis::RedisServer;
use common::{Client, Ended, TestServer};
use lockstep_actors::metrics::Metrics;
use lockstep_protocol::{Comment, RoomState, ServerMsg};
use serde_json::json;

/// Three nodes of one cluster on `redis`.
fn nodes(redis: &RedisServer) -> Vec<TestServer> {
    redis.three_nodes()
}

async fn ack(client: &mut Client, id: u64) {
    client
        .recv_until(|m| match m {
            ServerMsg::Ack { id: Some(i), .. } if *i == id => Some(()),
            ServerMsg::Error {
                id: Some(i),
                message,
                ..
            } if *i == id => panic!("request {id} refused: {message}"),
            _ => None,
        })
        .await
}

/// Reads until a tick carries comments; returns their texts.
async fn comments(client: &mut Client) -> Vec<String> {
    client
        .recv_until(|m| match m {
            ServerMsg::Tick { comments, .. } if !comments.is_empty() => {
                Some(comments.iter().map(|c: &Comment| c.text.clone()).collect())
            }
            _ => None,
        })
        .await
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_comment_from_one_node_reaches_every_viewer_on_every_node_once => a_comment_from_one_node_reaches_every_viewer_on_every_node_once
);

async fn a_comment_from_one_node_reaches_every_viewer_on_every_node_once(redis: RedisServer) {
    let nodes = nodes(&redis);
    let mut anchor = nodes[0].open_room("big").await;
    let _other_room_anchor = nodes[2].open_room("other").await;
    let mut viewers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for v in 0..2 {
            let (client, welcome) = node.join_viewer("big", Some(&format!("v{i}{v}"))).await;
            assert!(matches!(welcome, ServerMsg::Welcome { .. }), "{welcome:?}");
            viewers.push(client);
        }
    }
    let (mut elsewhere, _) = nodes[1].join_viewer("other", Some("x")).await;
    viewers[2]
        .send(json!({"type":"comment","text":"hello from b","id":1}))
        .await;
    ack(&mut viewers[2], 1).await;
    for viewer in viewers.iter_mut() {
        assert_eq!(comments(viewer).await, ["hello from b"]);
    }
    assert_eq!(comments(&mut anchor).await, ["hello from b"]);
    // Once: a second comment is the next one every viewer sees.
    viewers[4]
        .send(json!({"type":"comment","text":"and from c","id":2}))
        .await;
    for viewer in viewers.iter_mut() {
        assert_eq!(comments(viewer).await, ["and from c"]);
    }
    // The other room heard none of it.
    elsewhere
        .send(json!({"type":"comment","text":"other room","id":3}))
        .await;
    assert_eq!(comments(&mut elsewhere).await, ["other room"]);
    if redis.is_cluster() {
        a_rooms_traffic_stays_on_its_shard(&redis, "big");
    }
}

/// A listener on a room's up channel (standalone Redis only: plain SUBSCRIBE), counting
/// the like messages that went up one by one and the per-tick tallies.
struct UpChannel {
    counts: Option<std::sync::Arc<std::sync::Mutex<(u64, u64)>>>,
}

impl UpChannel {
    fn watch(redis: &RedisServer, room: &str) -> Self {
        if redis.is_cluster() {
            return Self { counts: None };
        }
        let counts = std::sync::Arc::new(std::sync::Mutex::new((0, 0)));
        let mut conn = redis.each_server().remove(0);
        let channel = format!("lockstep:{{room:{room}}}:up");
        let (subscribed, ready) = std::sync::mpsc::channel();
        let seen = counts.clone();
        std::thread::spawn(move || {
            let mut pubsub = conn.as_pubsub();
            pubsub.subscribe(&channel).unwrap();
            subscribed.send(()).unwrap();
            while let Ok(message) = pubsub.get_message() {
                let payload: Vec<u8> = message.get_payload().unwrap_or_default();
                let text = String::from_utf8_lossy(&payload);
                let mut seen = seen.lock().unwrap();
                if text.contains("\"Likes\"") {
                    seen.1 += 1;
                } else if text.contains("\"Like\"") {
                    seen.0 += 1;
                }
            }
        });
        ready.recv().unwrap();
        Self {
            counts: Some(counts),
        }
    }

    /// (like messages sent up one by one, tallies), once the tallies arrived.
    fn likes(&self) -> Option<(u64, u64)> {
        self.counts.as_ref().map(|c| *c.lock().unwrap())
    }
}

/// On a Redis Cluster the room's channels are sharded: subscribed on exactly one
/// primary (the one its hash tag names), and nothing was sent with plain `PUBLISH`, which
/// a Cluster copies to every node.
fn a_rooms_traffic_stays_on_its_shard(redis: &RedisServer, room: &str) {
    let down = format!("lockstep:{{room:{room}}}:down");
    let mut holders = 0;
    for mut server in redis.each_server() {
        let sharded: Vec<String> = redis::cmd("PUBSUB")
            .arg("SHARDCHANNELS")
            .query(&mut server)
            .unwrap();
        holders += usize::from(sharded.contains(&down));
        let plain: Vec<String> = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .query(&mut server)
            .unwrap();
        assert!(plain.is_empty(), "plain channels on a Cluster: {plain:?}");
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut server)
            .unwrap();
        assert!(!stats.contains("cmdstat_publish:"), "{stats}");
    }
    assert_eq!(
        holders, 1,
        "{down} should be subscribed on exactly one shard"
    );
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    likes_and_presence_add_up_across_nodes => likes_and_presence_add_up_across_nodes
);

async fn likes_and_presence_add_up_across_nodes(redis: RedisServer) {
    let nodes = nodes(&redis);
    let mut anchor = nodes[0].open_room("r").await;
    let mut viewers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for v in 0..3 {
            viewers.push(node.join_viewer("r", Some(&format!("u{i}{v}"))).await.0);
        }
    }
    // Online is every node's viewers together.
    anchor
        .recv_until(|m| match m {
            ServerMsg::Tick {
                online: Some(9), ..
            } => Some(()),
            _ => None,
        })
        .await;
    // 3,000 likes spread over the nodes' viewers, in messages of 10: 200 of the 300
    // messages on the two edge nodes, which add them up and report once per room tick.
    let up = UpChannel::watch(&redis, "r");
    let mut sent = 0;
    'send: loop {
        for viewer in viewers.iter_mut() {
            if sent == 3_000 {
                break 'send;
            }
            viewer.send(json!({"type":"like","count":10})).await;
            sent += 10;
        }
    }
    let total = anchor
        .recv_until(|m| match m {
            ServerMsg::Tick { likes: Some(l), .. } if l.total >= 3_000 => Some(l.total),
            _ => None,
        })
        .await;
    assert_eq!(total, 3_000);
    if let Some((single, tallies)) = up.likes() {
        assert_eq!(single, 0, "like messages went up one by one");
        assert!(
            (1..200).contains(&tallies),
            "{tallies} tallies for 200 edge like messages"
        );
    }
    // A viewer leaving an edge node is gone from the count.
    viewers.pop().unwrap().close().await;
    anchor
        .recv_until(|m| match m {
            ServerMsg::Tick {
                online: Some(8), ..
            } => Some(()),
            _ => None,
        })
        .await;
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    an_anchor_on_any_node_moderates_the_room_everywhere => an_anchor_on_any_node_moderates_the_room_everywhere
);

async fn an_anchor_on_any_node_moderates_the_room_everywhere(redis: RedisServer) {
    let nodes = nodes(&redis);
    let _opener = nodes[0].open_room("m").await;
    // The anchor's control channel on another node than the room's.
    let mut anchor = nodes[1].open_room("m").await;
    let (mut mallory_a, _) = nodes[0].join_viewer("m", Some("mallory")).await;
    let (mut mallory_c, _) = nodes[2].join_viewer("m", Some("mallory")).await;
    let (mut alice, _) = nodes[2].join_viewer("m", Some("alice")).await;
    anchor
        .send(json!({"type":"control","cmd":"go_live","id":1}))
        .await;
    ack(&mut anchor, 1).await;
    alice
        .recv_until(|m| match m {
            ServerMsg::RoomState {
                state: RoomState::Live,
                ..
            } => Some(()),
            _ => None,
        })
        .await;
    anchor
        .send(json!({"type":"control","cmd":"slow_mode","seconds":30,"id":2}))
        .await;
    ack(&mut anchor, 2).await;
    alice
        .recv_until(|m| matches!(m, ServerMsg::SlowMode { seconds: 30 }).then_some(()))
        .await;
    anchor
        .send(json!({"type":"control","cmd":"ban","user":"mallory","id":3}))
        .await;
    ack(&mut anchor, 3).await;
    // Mallory's sockets on both nodes are closed with 4003.
    assert_eq!(mallory_a.ended().await, Ended::Closed(4003));
    assert_eq!(mallory_c.ended().await, Ended::Closed(4003));
    let (mut again, refused) = nodes[1].join_viewer("m", Some("mallory")).await;
    assert!(
        matches!(refused, ServerMsg::Error { code: 403, .. }),
        "{refused:?}"
    );
    assert_eq!(again.ended().await, Ended::Closed(4004));
    // Ending the room from the edge closes everyone, on every node.
    anchor
        .send(json!({"type":"control","cmd":"end","id":4}))
        .await;
    assert_eq!(alice.ended().await, Ended::Closed(1000));
}

#[actix_rt::test]
async fn a_node_refuses_a_redis_that_could_lose_orders() {
    let volatile = RedisServer::start_volatile();
    let cfg = lockstep_cluster::ClusterConfig {
        redis_url: volatile.url(),
        ..Default::default()
    };
    let refused = lockstep_cluster::Cluster::connect(&cfg, &Metrics::new())
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert!(message.contains("appendfsync always"), "{message}");
    let allowed = lockstep_cluster::ClusterConfig {
        allow_volatile_store: true,
        ..cfg
    };
    assert!(
        lockstep_cluster::Cluster::connect(&allowed, &Metrics::new())
            .await
            .is_ok()
    );
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    viewers_of_a_node_that_lost_its_subscriptions_get_a_fresh_snapshot => viewers_of_a_node_that_lost_its_subscriptions_get_a_fresh_snapshot
);

/// Redis closes a subscriber whose output buffer overflows (a node reading too slowly),
/// and everything published to it meanwhile is gone. Killing the subscribers is the same
/// event: the nodes subscribe again, the viewers keep their sockets and are sent a fresh
/// welcome (the room as it is now), and the room flows again.
async fn viewers_of_a_node_that_lost_its_subscriptions_get_a_fresh_snapshot(redis: RedisServer) {
    let nodes = nodes(&redis);
    let mut anchor = nodes[0].open_room("gap").await;
    let (mut viewer, _) = nodes[1].join_viewer("gap", Some("v1")).await;
    let mut killed = 0;
    for mut server in redis.each_server() {
        let n: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query(&mut server)
            .unwrap();
        killed += n;
    }
    assert!(killed >= 2, "both nodes' subscribers: {killed}");
    viewer
        .recv_until(|m| matches!(m, ServerMsg::Welcome { .. }).then_some(()))
        .await;
    viewer
        .send(json!({"type":"comment","text":"after the gap","id":1}))
        .await;
    ack(&mut viewer, 1).await;
    assert_eq!(comments(&mut anchor).await, ["after the gap"]);
    let metrics = reqwest::get(nodes[1].url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let resubscribes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lockstep_cluster_resubscribes_total "))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(resubscribes >= 1, "{metrics}");
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    an_edge_ignores_what_a_deposed_owner_still_says => an_edge_ignores_what_a_deposed_owner_still_says
);

/// Everything an owner sends down carries its epoch: once an edge knows the room's owner,
/// a frame stamped with an older epoch (a deposed owner that has not noticed yet) is
/// dropped, one stamped with the current epoch is delivered.
async fn an_edge_ignores_what_a_deposed_owner_still_says(redis: RedisServer) {
    use lockstep_cluster::envelope::Down;
    let nodes = nodes(&redis);
    let _anchor = nodes[0].open_room("fenced").await;
    let (mut viewer, _) = nodes[1].join_viewer("fenced", Some("v1")).await;
    let mut conn = lockstep_cluster::conn::Topology::discover(&redis.url())
        .await
        .unwrap()
        .connect()
        .await
        .unwrap();
    let channel = "lockstep:{room:fenced}:down";
    for (epoch, id) in [(0, 77), (1, 78)] {
        let frame = format!(r#"{{"type":"pong","id":{id}}}"#);
        let _: u64 = redis::cmd(conn.publish_command())
            .arg(channel)
            .arg(Down::Frame(frame.into()).encode(epoch))
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let first = viewer
        .recv_until(|m| match m {
            ServerMsg::Pong { id } => Some(*id),
            _ => None,
        })
        .await;
    assert_eq!(first, Some(78), "the stale owner's frame was delivered");
}
