//! Decisions per second of the inventory core alone: one sale, many buyers, no I/O.
//! `cargo bench -p lockstep-actors --bench inventory_core`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lockstep_actors::inventory::InventoryCore;
use lockstep_actors::inventory::model::SaleRules;

const ORDERS: u64 = 10_000;

fn sale(allotted: u32) -> InventoryCore {
    let mut core = InventoryCore::new(SaleRules {
        sale_id: "bench".into(),
        allotted,
        per_buyer_limit: 1,
        reservation_ttl_ms: 300_000,
        fair_window_ms: 0,
        end_at: None,
    });
    core.reveal(0, 0, 1);
    core.drain_effects().for_each(drop);
    core
}

fn keys() -> Vec<(String, String)> {
    (0..ORDERS)
        .map(|i| (format!("buyer-{i}"), format!("key-{i}")))
        .collect()
}

/// Every buyer reserves one unit of a fresh sale of `allotted` units.
fn run_orders(b: &mut criterion::Bencher<'_>, keys: &[(String, String)], allotted: u32) {
    b.iter_batched(
        || sale(allotted),
        |mut core| {
            for (req, (buyer, key)) in keys.iter().enumerate() {
                core.reserve(1, req as u64, buyer, 1, key);
                core.drain_effects().for_each(drop);
            }
            core
        },
        BatchSize::LargeInput,
    )
}

fn bench(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("inventory_core");
    group.throughput(Throughput::Elements(ORDERS));
    // Every request accepted (stock for all): the full path, order record and writes.
    group.bench_function("reserve_accepted", |b| run_orders(b, &keys, ORDERS as u32));
    // A flash sale's usual case: 100 units, everyone else sold out.
    group.bench_function("reserve_100_units_10k_buyers", |b| {
        run_orders(b, &keys, 100)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
