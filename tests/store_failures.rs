//! Storage failures under a buying storm, with real I/O: a database size budget that
//! fills, and a file system that fills up (a small tmpfs the test mounts). What
//! a buyer must be able to rely on: no answer says `accepted` unless the order is in the
//! database — retries of the same key included — the failing sale refuses with
//! `unavailable` while `/readyz` names it, and once the disk takes writes again the
//! sale rebuilds itself and takes orders again.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Client, TestServer, test_config};
use lockstep_protocol::{ErrorCode, OrderOutcome, ServerMsg};
use serde_json::json;

const BUYERS: usize = 20;
const ALLOTTED: u32 = 1_000_000;

/// What one buyer saw: accepted order ids, and how many answers were `unavailable`.
#[derive(Debug, Default)]
struct Seen {
    accepted: Vec<String>,
    unavailable: usize,
}

/// A buyer that sends each order twice (a client retrying with the same key a moment
/// later, before the first answer came), until `stop` is set or its socket ends.
async fn buyer(
    server: String,
    token: String,
    sale: String,
    name: String,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut client = Client::connect(&format!("{server}/ws/rooms/r1")).await;
    client
        .send(json!({"type":"join","protocol":1,"token":token}))
        .await;
    let mut seen = Seen::default();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{name}-k{i}");
        for retry in 0..2 {
            if retry == 1 {
                // The retry lands in a later decision batch than the first try.
                tokio::time::sleep(Duration::from_micros(200 + i % 7 * 300)).await;
            }
            let order = json!({"type":"order","sale_id":sale,"qty":1,"key":key,"id":i * 2 + retry});
            if client.try_send(order).await.is_err() {
                return seen;
            }
        }
        for _ in 0..2 {
            let answer = client
                .try_recv_until(|m| match m {
                    ServerMsg::OrderResult {
                        outcome, order_id, ..
                    } => Some(Ok((*outcome, order_id.clone()))),
                    ServerMsg::Error { name, .. } => Some(Err(*name)),
                    _ => None,
                })
                .await;
            match answer {
                Some(Ok((OrderOutcome::Accepted, Some(id)))) => seen.accepted.push(id),
                Some(Ok(other)) => panic!("{name}: unexpected outcome {other:?}"),
                Some(Err(ErrorCode::Unavailable)) => seen.unavailable += 1,
                Some(Err(code)) => panic!("{name}: unexpected error {code:?}"),
                None => return seen,
            }
        }
        i += 1;
    }
    seen
}

/// Runs a storm until at least `min_unavailable` refusals were seen (the failure hit),
/// or `until_accepted` accepted orders (no failure expected); returns what was seen.
async fn storm(server: &TestServer, sale: &str, tag: &str, want: Want) -> Seen {
    let stop = Arc::new(AtomicBool::new(false));
    let buyers: Vec<_> = (0..BUYERS)
        .map(|n| {
            let name = format!("{tag}-b{n}");
            tokio::spawn(buyer(
                server.ws_url(""),
                server.viewer_token(&name),
                sale.to_owned(),
                name,
                stop.clone(),
            ))
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let failures = server.metric("lockstep_store_failures_total").await;
        let orders = server.metric("lockstep_frames_in_total").await;
        let done = match want {
            Want::Failures(before) => failures > before,
            Want::Frames(n) => orders >= n,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "{tag}: the storm did not reach its goal"
        );
        if done {
            break;
        }
    }
    // Let the buyers see the refusals for a moment, then stop them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Seen::default();
    for b in buyers {
        let seen = b.await.unwrap();
        all.accepted.extend(seen.accepted);
        all.unavailable += seen.unavailable;
    }
    all
}

#[derive(Clone, Copy)]
enum Want {
    /// Until `lockstep_store_failures_total` passes this.
    Failures(f64),
    /// Until the server received this many frames in total.
    Frames(f64),
}

/// Every accepted order id is a row of the database file.
fn assert_all_stored(db: &str, accepted: &[String], tag: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    for id in accepted {
        let found: i64 = conn
            .query_row("SELECT COUNT(*) FROM orders WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            found, 1,
            "{tag}: order {id} was acked but is not in the database"
        );
    }
}

async fn open_sale(server: &TestServer) -> String {
    let _anchor = server.open_room("r1").await;
    let sale = server
        .create_sale(
            "m1",
            "r1",
            ALLOTTED,
            ALLOTTED,
            json!({"per_buyer_limit": ALLOTTED}),
        )
        .await;
    let mut anchor = server.open_room("r1").await;
    TestServer::drop_link(&mut anchor, &sale, 0).await;
    sale
}

fn fast_recovery(cfg: &mut lockstep::Config) {
    cfg.sales.recovery_backoff_initial_ms = 50;
    cfg.sales.recovery_backoff_max_ms = 200;
    cfg.sales.max_orders_per_buyer = u32::MAX;
    cfg.session.msg_rate_per_sec = 100_000.0;
    cfg.session.msg_burst = 100_000;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_budget_never_acks_what_it_could_not_store() {
    let mut cfg = test_config();
    fast_recovery(&mut cfg);
    cfg.store.max_size_mb = 1;
    // Slow to retry, so the failing state can be seen from outside.
    cfg.sales.recovery_backoff_initial_ms = 3_000;
    cfg.sales.recovery_backoff_max_ms = 3_000;
    let db = cfg.store.path.clone();
    let server = TestServer::start(cfg);
    let sale = open_sale(&server).await;
    let seen = storm(&server, &sale, "budget", Want::Failures(0.0)).await;
    assert!(
        !seen.accepted.is_empty(),
        "orders were taken before the budget filled"
    );
    assert!(seen.unavailable > 0, "buyers were told to retry");
    assert_all_stored(&db, &seen.accepted, "budget");
    // While the sale waits to rebuild, /readyz says which sale is failing.
    let (status, body) = server.readyz().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains(&sale), "{body}");
}

/// A small tmpfs, unmounted on drop; `None` (with a message) where mounting is not
/// allowed.
struct Tmpfs {
    dir: std::path::PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!(
            "lockstep-tmpfs-{}-{}",
            std::process::id(),
            lockstep_actors::clock::now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Self { dir }),
            Ok(out) => {
                eprintln!(
                    "skipping: cannot mount a tmpfs here ({})",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipping: cannot run mount ({e})");
                None
            }
        }
    }

    /// Fills the file system with a filler file, leaving about `leave` bytes free.
    fn fill(&self, leave: u64) -> std::path::PathBuf {
        let filler = self.dir.join("filler");
        let take = free_bytes(&self.dir).saturating_sub(leave);
        std::fs::write(&filler, vec![0u8; take as usize]).unwrap();
        filler
    }
}

/// Free bytes on the file system holding `dir` (from `df`).
fn free_bytes(dir: &std::path::Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_no_acked_order_and_the_sale_recovers() {
    // Room enough, once the filler is gone, for the WAL to reach SQLite's checkpoint
    // size (1,000 pages) and more.
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let mut cfg = test_config();
    fast_recovery(&mut cfg);
    let db = fs.dir.join("lockstep.db").to_string_lossy().into_owned();
    cfg.store.path = db.clone();
    let server = TestServer::start(cfg);
    let sale = open_sale(&server).await;
    assert_eq!(server.readyz().await.0, 200);

    // The disk fills during the storm.
    let filler = fs.fill(256 * 1024);
    let full = storm(&server, &sale, "full", Want::Failures(0.0)).await;
    assert!(full.unavailable > 0, "buyers were told to retry");
    assert_all_stored(&db, &full.accepted, "disk full");
    let body = server.wait_readyz(503).await;
    assert!(body.to_string().contains(&sale), "{body}");

    // Space comes back: the sale rebuilds itself from the database and sells again.
    std::fs::remove_file(&filler).unwrap();
    server.wait_readyz(200).await;
    let frames = server.metric("lockstep_frames_in_total").await;
    let after = storm(&server, &sale, "after", Want::Frames(frames + 200.0)).await;
    assert!(!after.accepted.is_empty(), "orders are accepted again");
    assert_all_stored(&db, &after.accepted, "after recovery");

    // Units are conserved through all of it.
    server.wait_readyz(200).await;
    let (status, view) = server
        .merchant_get("m1", &format!("/api/v1/sales/{sale}"))
        .await;
    assert_eq!(status, 200, "{view}");
    let s = &view["summary"];
    let units: u64 = ["remaining", "reserved", "sold", "released"]
        .iter()
        .map(|k| s[k].as_u64().unwrap())
        .sum();
    assert_eq!(units, u64::from(ALLOTTED), "{s}");
    server.stop();
}
