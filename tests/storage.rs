//! The durable record behind its one interface, run the same way against both backends:
//! SQLite (one process) and the Redis a cluster shares. Catalogue rules, grants, sale
//! creation taking its allotment, a sale's writes and what loads back, units an ended
//! sale returns; and, for the shared store, fencing: a deposed owner's writes are refused.

mod common;

use std::sync::Arc;

use common::redis::RedisServer;
use lockstep_actors::config::StoreConfig;
use lockstep_actors::inventory::Write;
use lockstep_actors::inventory::model::{Order, OrderSource, OrderState, Phase, ReplayRef};
use lockstep_actors::metrics::Metrics;
use lockstep_actors::store::{
    CatalogError, NewProduct, NewSale, NewSku, OrderFilter, SaleWrites, StockChange, Storage,
    Store, StoreError,
};
use lockstep_cluster::conn::Topology;
use lockstep_cluster::storage::RedisStorage;

fn sqlite() -> Arc<dyn Storage> {
    let cfg = StoreConfig {
        path: common::temp_db_path(),
        ..StoreConfig::default()
    };
    Arc::new(Store::open(&cfg, &Metrics::new()).unwrap())
}

async fn redis(server: &RedisServer) -> Arc<dyn Storage> {
    let topology = Topology::discover(&server.url()).await.unwrap();
    Arc::new(RedisStorage::new(topology.connect().await.unwrap(), 0))
}

fn product(stock: u32) -> NewProduct {
    NewProduct {
        title: "Linen shirt".into(),
        description: "soft".into(),
        price_cents: 4_900,
        image_url: String::new(),
        skus: vec![NewSku {
            attributes: [("size".to_owned(), "M".to_owned())].into(),
            stock,
        }],
        faq: vec![],
    }
}

fn sale(room: &str, sku: &str, allotted: u32) -> NewSale {
    NewSale {
        room: room.into(),
        sku_id: sku.into(),
        allotted,
        price_cents: 2_900,
        per_buyer_limit: 2,
        reservation_ttl_secs: 60,
        fair_window_ms: 0,
        end_at: None,
    }
}

/// An order; the second of a sale was placed from a replay.
fn order(sale: &str, seq: u64, state: OrderState) -> Order {
    let from_replay = seq == 2;
    Order {
        id: format!("{sale}-{seq}"),
        seq,
        sale_id: sale.into(),
        buyer: format!("buyer{seq}"),
        qty: 1,
        key: format!("k{seq}"),
        state,
        created_at: seq,
        expires_at: 60_000,
        updated_at: seq,
        remaining_after: 10 - seq as u32,
        source: if from_replay {
            OrderSource::Replay
        } else {
            OrderSource::Live
        },
        replay: from_replay.then_some(ReplayRef {
            replay_id: 7,
            chapter: 2,
        }),
    }
}

fn catalog(e: StoreError) -> CatalogError {
    match e {
        StoreError::Catalog(c) => c,
        other => panic!("expected a catalogue refusal, got {other:?}"),
    }
}

/// The whole behaviour, against one backend.
async fn the_record_behaves(store: Arc<dyn Storage>) {
    let p = store
        .create_product("m".into(), product(100), 1)
        .await
        .unwrap();
    let sku = p.skus[0].id.clone();
    assert_eq!(
        store.get_product("m".into(), p.id.clone()).await.unwrap(),
        Some(p.clone())
    );
    assert_eq!(
        store
            .get_product("other".into(), p.id.clone())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.list_products("m".into()).await.unwrap(),
        vec![p.clone()]
    );
    let change = |stock: Option<u32>, delta: Option<i64>| StockChange {
        stock,
        delta,
        reason: "count".into(),
    };
    assert_eq!(
        store
            .change_stock("m".into(), sku.clone(), change(None, Some(-30)), 2)
            .await
            .unwrap()
            .stock,
        70
    );
    assert_eq!(
        catalog(
            store
                .change_stock("m".into(), sku.clone(), change(None, Some(-71)), 3)
                .await
                .unwrap_err()
        ),
        CatalogError::BelowZero { stock: 70 }
    );
    assert!(matches!(
        catalog(
            store
                .get_sku("other".into(), sku.clone())
                .await
                .unwrap_err()
        ),
        CatalogError::SkuNotFound(_)
    ));
    // Selling needs the room's grant, and takes the allotment from the free stock.
    assert!(matches!(
        catalog(
            store
                .create_sale("m".into(), sale("r1", &sku, 10), 4)
                .await
                .unwrap_err()
        ),
        CatalogError::NotGranted { .. }
    ));
    store.grant("r1".into(), "m".into(), 5).await.unwrap();
    assert_eq!(store.grants("r1".into()).await.unwrap()[0].merchant, "m");
    assert!(matches!(
        catalog(
            store
                .create_sale("m".into(), sale("r1", &sku, 71), 6)
                .await
                .unwrap_err()
        ),
        CatalogError::NotEnoughFree {
            free: 70,
            needed: 71,
            ..
        }
    ));
    let (record, (stored, card)) = store
        .create_sale("m".into(), sale("r1", &sku, 10), 7)
        .await
        .unwrap();
    assert_eq!(
        store.get_sku("m".into(), sku.clone()).await.unwrap().stock,
        60
    );
    assert_eq!((stored.phase, stored.orders.len()), (Phase::Scheduled, 0));
    assert_eq!(
        (card.title.as_str(), card.sale_price_cents),
        ("Linen shirt", 2_900)
    );
    // A flush: two orders and the reveal; then one order cancelled and the sale ended,
    // returning its two unsold units... all of which load back.
    let id = record.id.clone();
    let open = Phase::Open {
        reveal_at: 100,
        seed: 9,
    };
    store
        .write(SaleWrites {
            sale_id: id.clone(),
            epoch: 1,
            writes: vec![
                Write::Sale {
                    phase: open,
                    released: 0,
                    returned: 0,
                },
                Write::Order(order(&id, 1, OrderState::Reserved)),
                Write::Order(order(&id, 2, OrderState::Reserved)),
            ],
        })
        .await
        .unwrap();
    store
        .write(SaleWrites {
            sale_id: id.clone(),
            epoch: 1,
            writes: vec![
                Write::Order(order(&id, 2, OrderState::Cancelled)),
                Write::Sale {
                    phase: Phase::Ended,
                    released: 9,
                    returned: 9,
                },
            ],
        })
        .await
        .unwrap();
    let (loaded, _) = store.load_sale(id.clone()).await.unwrap().unwrap();
    assert_eq!((loaded.phase, loaded.released), (Phase::Ended, 9));
    let states: Vec<_> = loaded.orders.iter().map(|o| (o.seq, o.state)).collect();
    assert_eq!(
        states,
        [(1, OrderState::Reserved), (2, OrderState::Cancelled)]
    );
    let sources: Vec<_> = loaded.orders.iter().map(|o| (o.source, o.replay)).collect();
    assert_eq!(
        sources,
        [
            (OrderSource::Live, None),
            (
                OrderSource::Replay,
                Some(ReplayRef {
                    replay_id: 7,
                    chapter: 2
                })
            )
        ],
        "where an order came from survives the store"
    );
    assert_eq!(
        store.get_sku("m".into(), sku.clone()).await.unwrap().stock,
        69,
        "units came back"
    );
    assert_eq!(
        store
            .get_sale("m".into(), id.clone())
            .await
            .unwrap()
            .unwrap()
            .reveal_at,
        Some(100),
        "the reveal time stays after the end"
    );
    let filter = OrderFilter {
        state: Some(OrderState::Reserved),
        ..OrderFilter::default()
    };
    let reserved = store.list_orders("m".into(), filter).await.unwrap();
    assert_eq!(reserved.iter().map(|o| o.seq).collect::<Vec<_>>(), [1]);
    assert_eq!(
        store
            .get_order("other".into(), format!("{id}-1"))
            .await
            .unwrap(),
        None
    );
    // Ended but still holding a reservation: it is live until that settles.
    assert_eq!(store.live_sales().await.unwrap().len(), 1);
    store
        .write(SaleWrites {
            sale_id: id.clone(),
            epoch: 1,
            writes: vec![Write::Order(order(&id, 1, OrderState::Confirmed))],
        })
        .await
        .unwrap();
    assert!(store.live_sales().await.unwrap().is_empty());
    assert!(store.revoke("r1".into(), "m".into()).await.unwrap());
    assert!(!store.revoke("r1".into(), "m".into()).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_the_record() {
    the_record_behaves(sqlite()).await;
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    redis_keeps_the_same_record => redis_keeps_the_same_record
);

async fn redis_keeps_the_same_record(server: RedisServer) {
    the_record_behaves(redis(&server).await).await;
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_deposed_owners_writes_are_refused => a_deposed_owners_writes_are_refused
);

async fn a_deposed_owners_writes_are_refused(server: RedisServer) {
    let store = redis(&server).await;
    let p = store
        .create_product("m".into(), product(10), 1)
        .await
        .unwrap();
    store.grant("r".into(), "m".into(), 1).await.unwrap();
    let (record, _) = store
        .create_sale("m".into(), sale("r", &p.skus[0].id, 5), 1)
        .await
        .unwrap();
    let write = |epoch: u64, seq: u64| SaleWrites {
        sale_id: record.id.clone(),
        epoch,
        writes: vec![Write::Order(order(&record.id, seq, OrderState::Reserved))],
    };
    store.write(write(1, 1)).await.unwrap();
    // A new owner (epoch 2) fences the sale before loading it ...
    store.fence(record.id.clone(), 2).await.unwrap();
    // ... so the old owner's next write is refused and nothing of it is stored.
    assert!(matches!(
        store.write(write(1, 2)).await,
        Err(StoreError::Fenced)
    ));
    let redis = redis(&server).await;
    let (loaded, _) = redis.load_sale(record.id.clone()).await.unwrap().unwrap();
    assert_eq!(loaded.orders.len(), 1);
    redis.write(write(2, 2)).await.unwrap();
    assert!(matches!(
        redis.write(write(1, 3)).await,
        Err(StoreError::Fenced)
    ));
}

against_redis!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    no_write_of_a_sale_lands_after_one_that_failed => no_write_of_a_sale_lands_after_one_that_failed
);

/// A sale's answers depend on every earlier flush: the flushes handed over together land
/// in order, and once one fails the ones behind it are refused, not written.
async fn no_write_of_a_sale_lands_after_one_that_failed(server: RedisServer) {
    let store = redis(&server).await;
    let p = store
        .create_product("m".into(), product(10), 1)
        .await
        .unwrap();
    store.grant("r".into(), "m".into(), 1).await.unwrap();
    let (record, _) = store
        .create_sale("m".into(), sale("r", &p.skus[0].id, 5), 1)
        .await
        .unwrap();
    let write = |epoch: u64, seq: u64| SaleWrites {
        sale_id: record.id.clone(),
        epoch,
        writes: vec![Write::Order(order(&record.id, seq, OrderState::Reserved))],
    };
    store.fence(record.id.clone(), 5).await.unwrap();
    // Handed over back to back, before either is awaited: the first is refused (a stale
    // epoch), so the second must not be written.
    let first = store.write(write(1, 1));
    let second = store.write(write(5, 2));
    let (first, second) = tokio::join!(first, second);
    assert!(matches!(first, Err(StoreError::Fenced)), "{first:?}");
    assert!(second.is_err(), "a write behind a failed one was accepted");
    let (loaded, _) = redis(&server)
        .await
        .load_sale(record.id.clone())
        .await
        .unwrap()
        .unwrap();
    assert!(loaded.orders.is_empty(), "{:?}", loaded.orders);
}
