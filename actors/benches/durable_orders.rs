//! Durable accepted orders per second end to end on one sale: requests go through the
//! inventory actor's mailbox, decisions are group-committed to SQLite (WAL,
//! synchronous = FULL, fsync per commit) and each buyer is answered only after its order
//! is durable. Prints throughput, latency percentiles, the commits, and the ratio to the
//! previous run with the same arguments.
//! `cargo bench -p lockstep-actors --bench durable_orders -- [CONCURRENT] [ORDERS]
//! [CACHE_MB] [CHECKPOINT_MS]` (the last two default to `store.cache_mb` and
//! `store.checkpoint_interval_ms`; `2 0` is SQLite's own cache and automatic checkpoints).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use hdrhistogram::Histogram;
use lockstep_actors::config::{SalesConfig, StoreConfig};
use lockstep_actors::directory::RoomDirectory;
use lockstep_actors::inventory::{Reserve, Reveal, SaleDirectory, reply_channel};
use lockstep_actors::metrics::Metrics;
use lockstep_actors::store::{self, NewProduct, NewSale, NewSku, Store};
use lockstep_protocol::OrderOutcome;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let concurrent = args.first().copied().unwrap_or(2_000) as usize;
    let orders = args.get(1).copied().unwrap_or(200_000);
    let defaults = StoreConfig::default();
    let cache_mb = args.get(2).copied().unwrap_or(defaults.cache_mb);
    let checkpoint_ms = args
        .get(3)
        .copied()
        .unwrap_or(defaults.checkpoint_interval_ms);
    actix_rt::System::new().block_on(run(concurrent, orders, cache_mb, checkpoint_ms));
}

async fn run(concurrent: usize, orders: u64, cache_mb: u64, checkpoint_ms: u64) {
    let dir = std::env::temp_dir().join(format!("lockstep-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let metrics = Metrics::new();
    let store_cfg = StoreConfig {
        path: dir.join("bench.db").to_string_lossy().into_owned(),
        cache_mb,
        checkpoint_interval_ms: checkpoint_ms,
        ..StoreConfig::default()
    };
    let store = Store::open(&store_cfg, &metrics).unwrap();
    let commits = metrics.store_commits.clone();
    let (sale, card) = store
        .call(move |tx| {
            store::grant_merchant(tx, "bench", "m", 0)?;
            let product = lockstep_actors::store::create_product(
                tx,
                "m",
                NewProduct {
                    title: "bench".into(),
                    description: String::new(),
                    price_cents: 1,
                    image_url: String::new(),
                    skus: vec![NewSku {
                        attributes: Default::default(),
                        stock: orders as u32,
                    }],
                    faq: vec![],
                },
                0,
            )?;
            let new = NewSale {
                room: "bench".into(),
                sku_id: product.skus[0].id.clone(),
                allotted: orders as u32,
                price_cents: 1,
                per_buyer_limit: 1,
                reservation_ttl_secs: 86_400,
                fair_window_ms: 0,
                end_at: None,
            };
            let id = lockstep_actors::store::create_sale(tx, "m", &new, 0)?.id;
            Ok((
                store::load_sale(tx, &id)?.expect("just created"),
                store::link_card(tx, &id)?.expect("just created"),
            ))
        })
        .await
        .unwrap();
    let pool = lockstep_runtime::ArbiterPool::new(vec![actix_rt::Arbiter::current()]);
    let sales = SaleDirectory::new(
        pool.clone(),
        std::sync::Arc::new(store),
        SalesConfig {
            max_pending_requests: concurrent * 2,
            ..SalesConfig::default()
        },
        metrics.clone(),
    );
    let broker = std::sync::Arc::new(lockstep_actors::broker::LocalBroker);
    let rooms = RoomDirectory::new(Default::default(), pool, broker, None, metrics, 1);
    sales.set_rooms(&rooms);
    let inventory = sales.start(sale, card).addr;
    let (reply, revealed) = reply_channel();
    inventory.do_send(Reveal {
        reveal_at: 0,
        seed: 1,
        reply,
    });
    assert!(revealed.await.is_ok(), "the link drops");

    let per_client = orders / concurrent as u64;
    let commits_before = commits.get();
    // One histogram for all buyers (they run on this thread): one per buyer cost the
    // bench more than the sale did.
    let latencies = Rc::new(RefCell::new(Histogram::<u64>::new(3).unwrap()));
    let started = Instant::now();
    let clients: Vec<_> = (0..concurrent)
        .map(|c| {
            let inventory = inventory.clone();
            let latencies = latencies.clone();
            actix_rt::spawn(async move {
                for i in 0..per_client {
                    let (reply, answer) = reply_channel();
                    let sent = Instant::now();
                    inventory.do_send(Reserve {
                        buyer: format!("b{c}-{i}"),
                        qty: 1,
                        key: "k".into(),
                        origin: Default::default(),
                        reply,
                    });
                    let reply = answer.await.expect("the sale answers");
                    assert_eq!(reply.outcome, OrderOutcome::Accepted, "{reply:?}");
                    latencies
                        .borrow_mut()
                        .record(sent.elapsed().as_micros() as u64)
                        .unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let all = latencies.borrow();
    let elapsed = started.elapsed().as_secs_f64();
    let rate = per_client as f64 * concurrent as f64 / elapsed;
    let key = format!("{concurrent}-{orders}-{cache_mb}-{checkpoint_ms}");
    let commits = commits.get() - commits_before;
    let done = per_client * concurrent as u64;
    println!(
        "durable_orders: {done} accepted orders, {concurrent} concurrent buyers, cache {cache_mb} MiB, checkpoints {}, {:.0} orders/s, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms, {commits} commits ({:.0} orders each)",
        if checkpoint_ms == 0 {
            "in the commit".to_owned()
        } else {
            format!("every {checkpoint_ms} ms off the commit path")
        },
        rate,
        all.value_at_quantile(0.50) as f64 / 1000.0,
        all.value_at_quantile(0.99) as f64 / 1000.0,
        all.max() as f64 / 1000.0,
        done as f64 / commits.max(1) as f64,
    );
    match previous_rate(&key, rate) {
        Some(before) => println!(
            "durable_orders: {:.2}x the previous run with these arguments ({before:.0} orders/s)",
            rate / before
        ),
        None => println!("durable_orders: no previous run with these arguments to compare with"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The rate of the last run with the same arguments (kept in cargo's scratch dir for
/// benchmarks), and this one's kept for the next.
fn previous_rate(key: &str, rate: f64) -> Option<f64> {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("durable_orders-{key}.last"));
    let previous = std::fs::read_to_string(&path)
        .ok()
        .and_then(|kept| kept.trim().parse().ok());
    let _ = std::fs::write(&path, rate.to_string());
    previous
}
