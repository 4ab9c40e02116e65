//! The store's failure rule with a real SQLite file whose size budget runs out: once a
//! sale's commit failed, a later batch of that sale — even one with nothing to write,
//! which only orders answers behind the failed one — fails too, until the sale is
//! rebuilt; other sales are not affected.

use super::*;
use crate::inventory::model::{Order, OrderState};

/// A fresh database file's path in the store tests' scratch directory.
pub(super) fn scratch_db() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("lockstep-store-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!(
        "{}-{}.db",
        std::process::id(),
        rand::random::<u64>()
    ))
}

fn store(budget_mb: u64) -> Store {
    let path = scratch_db();
    let cfg = StoreConfig {
        path: path.to_string_lossy().into_owned(),
        max_size_mb: budget_mb,
        ..StoreConfig::default()
    };
    Store::open(&cfg, &Metrics::new()).unwrap()
}

async fn sale(store: &Store, room: &str) -> String {
    let room = room.to_owned();
    store
        .call(move |tx| {
            grant_merchant(tx, &room, "m", 0)?;
            let product = create_product(
                tx,
                "m",
                NewProduct {
                    title: "t".into(),
                    description: String::new(),
                    price_cents: 1,
                    image_url: String::new(),
                    skus: vec![NewSku {
                        attributes: Default::default(),
                        stock: 1_000_000,
                    }],
                    faq: vec![],
                },
                0,
            )?;
            let new = NewSale {
                room,
                sku_id: product.skus[0].id.clone(),
                allotted: 1_000_000,
                price_cents: 1,
                per_buyer_limit: 1,
                reservation_ttl_secs: 60,
                fair_window_ms: 0,
                end_at: None,
            };
            Ok(create_sale(tx, "m", &new, 0)?.id)
        })
        .await
        .unwrap()
}

fn orders(sale: &str, from: u64, n: u64) -> SaleWrites {
    SaleWrites {
        epoch: 0,
        sale_id: sale.to_owned(),
        writes: (from..from + n)
            .map(|seq| {
                Write::Order(Order {
                    id: format!("{sale}-{seq}"),
                    seq,
                    sale_id: sale.to_owned(),
                    buyer: format!("buyer-{seq}"),
                    qty: 1,
                    key: format!("key-{seq}-{}", "k".repeat(100)),
                    state: OrderState::Reserved,
                    created_at: 0,
                    expires_at: 0,
                    updated_at: 0,
                    remaining_after: 0,
                    source: Default::default(),
                    replay: None,
                })
            })
            .collect(),
    }
}

#[tokio::test]
async fn after_a_failed_commit_no_later_batch_of_that_sale_succeeds() {
    let store = store(1);
    let (filler, victim) = (sale(&store, "r1").await, sale(&store, "r2").await);
    // Fill the budget with the filler sale's orders.
    let mut seq = 1;
    loop {
        if store.write(orders(&filler, seq, 500)).await.is_err() {
            break;
        }
        seq += 500;
        assert!(seq < 1_000_000, "the budget never filled");
    }
    // The victim's batch (four times the filler's last, which did not fit) needs room
    // and fails; an empty batch of the same sale sent
    // right behind it (a retry answered from memory) must fail too, while another
    // sale's empty batch commits.
    let (failed, behind, other) = tokio::join!(
        store.write(orders(&victim, 1, 2_000)),
        async {
            tokio::task::yield_now().await;
            store.call(|_| Ok(())).await.unwrap(); // the failed batch commits first
            store.write(orders(&victim, 2_001, 0)).await
        },
        async {
            tokio::task::yield_now().await;
            store.call(|_| Ok(())).await.unwrap();
            store.write(orders("nobody", 0, 0)).await
        },
    );
    assert!(failed.is_err());
    assert!(
        behind.is_err(),
        "an empty batch behind a failed one must not pass for durable"
    );
    assert!(other.is_ok(), "other sales are not failing");
    let failing = store.failing_sales();
    assert!(
        failing.contains(&victim) && failing.contains(&filler),
        "{failing:?}"
    );
}

#[tokio::test]
async fn recovery_reloads_the_sale_and_clears_the_mark() {
    let store = store(0);
    let id = sale(&store, "r1").await;
    store.write(orders(&id, 1, 3)).await.unwrap();
    lock(&store.shared.failing).insert(id.clone());
    assert!(store.write(orders(&id, 4, 0)).await.is_err());
    let rebuilt = store.recover(&id).await.unwrap().unwrap();
    assert_eq!(rebuilt.orders.len(), 3, "the sale as stored");
    assert!(store.failing_sales().is_empty());
    assert!(store.write(orders(&id, 4, 1)).await.is_ok());
}

/// Holds the store thread in a job until `release` is sent; returns once it is held.
async fn hold_store_thread(
    store: &Store,
) -> (
    crate::sync::plain::mpsc::Sender<()>,
    tokio::task::JoinHandle<Result<(), StoreError>>,
) {
    let (release, held) = crate::sync::plain::mpsc::channel::<()>();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let blocker = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .call(move |_| {
                    let _ = started_tx.send(());
                    let _ = held.recv();
                    Ok(())
                })
                .await
        })
    };
    started.await.unwrap();
    (release, blocker)
}

#[tokio::test]
async fn a_full_job_queue_refuses_calls_instead_of_growing() {
    let cfg = StoreConfig {
        path: scratch_db().to_string_lossy().into_owned(),
        queue_depth: 2,
        ..StoreConfig::default()
    };
    let store = Store::open(&cfg, &Metrics::new()).unwrap();
    let (release, blocker) = hold_store_thread(&store).await;
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.call(|_| Ok(())).await })
        })
        .collect();
    tokio::task::yield_now().await;
    // Wait until both are in the queue.
    while store.tx.capacity() > 0 {
        tokio::task::yield_now().await;
    }
    assert!(matches!(
        store.call(|_| Ok(())).await,
        Err(StoreError::Busy(2))
    ));
    release.send(()).unwrap();
    blocker.await.unwrap().unwrap();
    for q in queued {
        q.await.unwrap().unwrap();
    }
    assert!(
        store.call(|_| Ok(())).await.is_ok(),
        "room again once drained"
    );
}

/// Order 1 of `sale`, in `state`.
fn order_in(sale: &str, state: OrderState) -> SaleWrites {
    let mut batch = orders(sale, 1, 1);
    if let Some(Write::Order(order)) = batch.writes.first_mut() {
        order.state = state;
    }
    batch
}

#[tokio::test]
async fn a_sales_writes_commit_in_call_order_when_the_queue_was_full() {
    let cfg = StoreConfig {
        path: scratch_db().to_string_lossy().into_owned(),
        queue_depth: 1,
        ..StoreConfig::default()
    };
    let store = Store::open(&cfg, &Metrics::new()).unwrap();
    let id = sale(&store, "r1").await;
    // Hold the store thread in a job, and fill the queue behind it.
    let (release, blocker) = hold_store_thread(&store).await;
    let filler = store.write(orders(&id, 100, 1));
    // The first write finds the queue full; then room is made before the second is made.
    let first = store.write(order_in(&id, OrderState::Reserved));
    release.send(()).unwrap();
    blocker.await.unwrap().unwrap();
    while store.tx.capacity() == 0 {
        tokio::task::yield_now().await;
    }
    let second = store.write(order_in(&id, OrderState::Confirmed));
    // The actor polls its flushes in the order it made them.
    let (filled, first, second) = tokio::join!(filler, first, second);
    for written in [filled, first, second] {
        written.unwrap();
    }
    let state = store
        .call(move |tx| Ok(get_order(tx, "m", &format!("{id}-1"))?.map(|o| o.state)))
        .await
        .unwrap();
    assert_eq!(
        state,
        Some(OrderState::Confirmed),
        "the second write committed after the first"
    );
}
