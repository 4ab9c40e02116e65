//! Durability under `kill -9` and under a panic on the store thread: the real server
//! binary takes a buying storm, is killed at a random moment (or its store thread
//! panics, which must end the process rather than leave every sale hanging), and every
//! order a buyer saw accepted must be in the database; after a restart, units are
//! conserved (reserved + sold + remaining + released == allotted).
//!
//! `CRASH_ROUNDS` sets the number of kill -9 rounds (default 3);
//! `bench/crash_loop.sh` runs 20.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Client, temp_db_path};
use lockstep::auth::{Auth, Claims, unix_now};
use lockstep_protocol::{OrderOutcome, Role, ServerMsg};
use rand::Rng;
use serde_json::{Value, json};

/// Enough that every storm of up to ~300 ms never sells out (each round must be able to
/// accept orders), for as many rounds as `bench/crash_loop.sh` runs.
const ALLOTTED: u32 = 2_000_000;
const BUYERS: usize = 100;

struct Node {
    child: Child,
    port: u16,
    config: std::path::PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Node {
    fn write_config(db: &str) -> (std::path::PathBuf, u16) {
        let port = free_port();
        let path = std::path::PathBuf::from(format!("{db}.toml"));
        std::fs::write(
            &path,
            format!("[server]\nbind = \"127.0.0.1:{port}\"\nlog = \"warn\"\n[store]\npath = \"{db}\"\n[session]\nmsg_rate_per_sec = 10000.0\nmsg_burst = 10000\n[sales]\nmax_orders_per_buyer = 4294967295\n"),
        )
        .unwrap();
        (path, port)
    }

    async fn start(config: std::path::PathBuf, port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server binary");
        let node = Self {
            child,
            port,
            config,
        };
        let deadline = std::time::Instant::now() + common::EVENT_TIMEOUT;
        while reqwest::get(node.url("/healthz")).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "server did not come up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        node
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix: no shutdown path runs.
        self.child.wait().unwrap();
    }

    /// Waits for the process to end by itself; its exit code.
    async fn exited(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + common::EVENT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not exit after its store thread panicked"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Never leave a server behind when an assertion fails mid-test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

async fn post(node: &Node, path: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(node.url(path))
        .bearer_auth(token(Role::Merchant, "m1", None, Some("m1")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

/// One buyer: orders one unit after another with fresh keys until the socket dies.
/// Returns the ids of the orders it saw accepted.
async fn buyer(
    port: u16,
    sale: String,
    n: usize,
    first_ack: tokio::sync::mpsc::UnboundedSender<()>,
) -> Vec<String> {
    // The fault may strike before this buyer got in: then it acknowledged nothing.
    let Some(mut client) =
        Client::try_connect(&format!("ws://127.0.0.1:{port}/ws/rooms/crash")).await
    else {
        return Vec::new();
    };
    client.send(json!({"type":"join","protocol":1,"token":token(Role::Viewer, &format!("b{n}"), None, None)})).await;
    let mut acked = Vec::new();
    for i in 0.. {
        if client
            .try_send(json!({"type":"order","sale_id":sale,"qty":1,"key":format!("k{i}"),"id":i}))
            .await
            .is_err()
        {
            break;
        }
        match client
            .try_recv_until(|m| match m {
                ServerMsg::OrderResult {
                    outcome, order_id, ..
                } => Some((*outcome, order_id.clone())),
                _ => None,
            })
            .await
        {
            Some((OrderOutcome::Accepted, Some(id))) => {
                if acked.is_empty() {
                    let _ = first_ack.send(());
                }
                acked.push(id);
            }
            Some(_) => {}
            None => break,
        }
    }
    acked
}

/// How a round ends the server.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill9,
    StorePanic,
}

/// A node with one open sale in room `crash`; returns the node and the sale id.
async fn node_with_sale() -> (Node, String, String) {
    let db = temp_db_path();
    let (config, port) = Node::write_config(&db);
    let node = Node::start(config, port).await;
    let product = post(
        &node,
        "/api/v1/products",
        json!({"title":"Drop","price_cents":100,"skus":[{"stock":ALLOTTED}]}),
    )
    .await;
    let sku = product["skus"][0]["id"].as_str().unwrap().to_owned();
    let granted = reqwest::Client::new()
        .put(node.url("/api/v1/rooms/crash/merchants/m1"))
        .bearer_auth(token(Role::Anchor, "host", Some("crash"), None))
        .send()
        .await
        .unwrap();
    assert!(granted.status().is_success());
    let sale = post(&node, "/api/v1/sales", json!({"room":"crash","sku_id":sku,"allotted":ALLOTTED,"price_cents":100,"per_buyer_limit":ALLOTTED})).await;
    let sale = sale["sale"]["id"].as_str().unwrap().to_owned();
    let mut anchor =
        Client::connect(&format!("ws://127.0.0.1:{port}/ws/rooms/crash/control")).await;
    anchor.send(json!({"type":"join","protocol":1,"token":token(Role::Anchor, "host", Some("crash"), None)})).await;
    anchor.recv().await;
    common::TestServer::drop_link(&mut anchor, &sale, 0).await;
    (node, sale, db)
}

/// One round: a storm, the fault at a random point once orders flow, then every acked
/// order must be in the database, and after a restart every unit is accounted for.
async fn round(
    node: &mut Node,
    sale: &str,
    db: &str,
    round: usize,
    fault: Fault,
    all_acked: &mut Vec<String>,
) {
    let (first_ack, mut acks) = tokio::sync::mpsc::unbounded_channel();
    let storm: Vec<_> = (0..BUYERS)
        .map(|n| {
            tokio::spawn(buyer(
                node.port,
                sale.to_owned(),
                round * BUYERS + n,
                first_ack.clone(),
            ))
        })
        .collect();
    tokio::time::timeout(common::EVENT_TIMEOUT, acks.recv())
        .await
        .unwrap_or_else(|_| panic!("round {round}: no order was accepted"));
    let after = rand::rng().random_range(0..300);
    tokio::time::sleep(Duration::from_millis(after)).await;
    match fault {
        Fault::Kill9 => node.kill9(),
        Fault::StorePanic => {
            let armed = reqwest::Client::new()
                .post(node.url("/__test__/panic/store"))
                .send()
                .await;
            // The request may die with the process; the exit code is what counts.
            if let Ok(resp) = armed {
                assert_ne!(resp.status(), 404, "the test hooks are not compiled in");
            }
            assert_eq!(
                node.exited().await,
                Some(lockstep_actors::store::STORE_PANIC_EXIT_CODE),
                "a store panic ends the process with its exit code"
            );
        }
    }
    let mut acked = Vec::new();
    for b in storm {
        acked.extend(b.await.unwrap());
    }
    assert!(
        !acked.is_empty(),
        "round {round}: the storm ran before the fault ({after} ms)"
    );
    // Every acked order is in the database file, as the dead process left it.
    let conn = rusqlite::Connection::open(db).unwrap();
    let stored: i64 = conn
        .query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    for id in &acked {
        let found: i64 = conn
            .query_row("SELECT COUNT(*) FROM orders WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            found, 1,
            "round {round}: acked order {id} lost after {fault:?} at {after} ms"
        );
    }
    all_acked.extend(acked);
    assert!(stored as usize >= all_acked.len());
    drop(conn);

    *node = Node::start(node.config.clone(), node.port).await;
    // Rooms are live state: the anchor reopens the room after the restart (the sale's
    // reveal is durable and needs no new drop).
    let reopened = reqwest::Client::new()
        .post(node.url("/api/v1/rooms"))
        .bearer_auth(token(Role::Anchor, "host", Some("crash"), None))
        .json(&json!({"id":"crash"}))
        .send()
        .await
        .unwrap();
    assert!(reopened.status().is_success());
    let view: Value = reqwest::Client::new()
        .get(node.url(&format!("/api/v1/sales/{sale}")))
        .bearer_auth(token(Role::Merchant, "m1", None, Some("m1")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = &view["summary"];
    let units = ["remaining", "reserved", "sold", "released"].map(|k| s[k].as_u64().unwrap());
    assert_eq!(
        units.iter().sum::<u64>(),
        u64::from(ALLOTTED),
        "round {round}: units conserved: {s}"
    );
    assert_eq!(
        units[1], stored as u64,
        "round {round}: every stored order holds its unit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_orders_survive_kill_9_at_random_points() {
    let rounds: usize = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let (mut node, sale, db) = node_with_sale().await;
    let mut all_acked = Vec::new();
    for r in 0..rounds {
        round(&mut node, &sale, &db, r, Fault::Kill9, &mut all_acked).await;
        eprintln!(
            "round {r}: {} acked orders so far, all in the database",
            all_acked.len()
        );
    }
    node.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_panic_ends_the_process_and_a_restart_loses_nothing_acked() {
    let (mut node, sale, db) = node_with_sale().await;
    let mut all_acked = Vec::new();
    round(&mut node, &sale, &db, 0, Fault::StorePanic, &mut all_acked).await;
    node.kill9();
}
