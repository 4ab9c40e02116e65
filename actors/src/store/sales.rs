//! Applying a sale's writes, and loading sales back for a restart.

use rusqlite::{OptionalExtension, Transaction, params};

use super::SaleWrites;
use crate::clock::now_ms;
use crate::inventory::Write;
use crate::inventory::model::{Order, OrderSource, OrderState, Phase, ReplayRef, SaleRules};

pub(super) fn apply(tx: &Transaction<'_>, writes: &SaleWrites) -> rusqlite::Result<()> {
    for write in &writes.writes {
        match write {
            Write::Order(o) => {
                tx.prepare_cached(
                    "INSERT INTO orders (id, seq, sale_id, buyer, qty, key, state, created_at, expires_at, updated_at, remaining_after, source, replay_id, chapter)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                     ON CONFLICT(id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                )?
                .execute(params![
                    o.id,
                    o.seq as i64,
                    o.sale_id,
                    o.buyer,
                    o.qty,
                    o.key,
                    o.state.as_str(),
                    o.created_at as i64,
                    o.expires_at as i64,
                    o.updated_at as i64,
                    o.remaining_after,
                    o.source.as_str(),
                    o.replay.map(|r| r.replay_id),
                    o.replay.map(|r| r.chapter)
                ])?;
            }
            Write::Sale {
                phase,
                released,
                returned,
            } => {
                let (name, reveal_at, seed) = phase_columns(*phase);
                tx.prepare_cached("UPDATE sales SET phase = ?1, reveal_at = COALESCE(?2, reveal_at), seed = COALESCE(?3, seed), released = ?4 WHERE id = ?5")?
                    .execute(params![name, reveal_at, seed, released, writes.sale_id])?;
                if *returned > 0 {
                    let sku: String = tx.query_row(
                        "SELECT sku_id FROM sales WHERE id = ?1",
                        [&writes.sale_id],
                        |r| r.get(0),
                    )?;
                    tx.execute(
                        "UPDATE skus SET stock = stock + ?1 WHERE id = ?2",
                        params![returned, sku],
                    )?;
                    tx.execute(
                        "INSERT INTO stock_moves (sku_id, delta, stock_after, reason, at)
                         VALUES (?1, ?2, (SELECT stock FROM skus WHERE id = ?1), ?3, ?4)",
                        params![
                            sku,
                            returned,
                            format!("returned by sale {}", writes.sale_id),
                            now_ms() as i64
                        ],
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn phase_columns(phase: Phase) -> (&'static str, Option<i64>, Option<i64>) {
    match phase {
        Phase::Scheduled => ("scheduled", None, None),
        // The seed is stored as its bit pattern; SQLite integers are signed.
        Phase::Open { reveal_at, seed } => ("open", Some(reveal_at as i64), Some(seed as i64)),
        Phase::Ended => ("ended", None, None),
    }
}

/// Everything needed to restart one sale's inventory.
#[derive(Debug, Clone)]
pub struct StoredSale {
    pub rules: SaleRules,
    pub room: String,
    pub merchant: String,
    pub sku_id: String,
    pub product_id: String,
    pub price_cents: u64,
    pub phase: Phase,
    pub released: u32,
    pub orders: Vec<Order>,
}

/// Loads one sale with all its orders.
pub fn load_sale(tx: &Transaction<'_>, sale_id: &str) -> rusqlite::Result<Option<StoredSale>> {
    let sale = tx
        .query_row(
            "SELECT id, room, merchant, sku_id, product_id, allotted, price_cents, per_buyer_limit,
                    reservation_ttl_ms, fair_window_ms, end_at, phase, reveal_at, seed, released
             FROM sales WHERE id = ?1",
            [sale_id],
            |r| {
                let phase: String = r.get(11)?;
                let phase = match phase.as_str() {
                    "open" => Phase::Open {
                        reveal_at: r.get::<_, i64>(12)? as u64,
                        seed: r.get::<_, i64>(13)? as u64,
                    },
                    "ended" => Phase::Ended,
                    _ => Phase::Scheduled,
                };
                Ok(StoredSale {
                    rules: SaleRules {
                        sale_id: r.get(0)?,
                        allotted: r.get(5)?,
                        per_buyer_limit: r.get(7)?,
                        reservation_ttl_ms: r.get::<_, i64>(8)? as u64,
                        fair_window_ms: r.get::<_, i64>(9)? as u64,
                        end_at: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
                    },
                    room: r.get(1)?,
                    merchant: r.get(2)?,
                    sku_id: r.get(3)?,
                    product_id: r.get(4)?,
                    price_cents: r.get::<_, i64>(6)? as u64,
                    phase,
                    released: r.get(14)?,
                    orders: Vec::new(),
                })
            },
        )
        .optional()?;
    let Some(mut sale) = sale else {
        return Ok(None);
    };
    let mut stmt = tx.prepare_cached(
        "SELECT id, seq, sale_id, buyer, qty, key, state, created_at, expires_at, updated_at, remaining_after, source, replay_id, chapter
         FROM orders WHERE sale_id = ?1 ORDER BY seq",
    )?;
    sale.orders = stmt
        .query_map([sale_id], order_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(sale))
}

/// Ids of the sales to run at startup: every sale that has not ended, and ended sales
/// still holding reservations (they expire or get confirmed). Other ended sales are
/// loaded on demand.
pub fn live_sale_ids(tx: &Transaction<'_>) -> rusqlite::Result<Vec<String>> {
    let mut stmt = tx.prepare(
        "SELECT id FROM sales s
         WHERE s.phase != 'ended'
            OR EXISTS (SELECT 1 FROM orders o WHERE o.sale_id = s.id AND o.state = 'reserved')
         ORDER BY created_at",
    )?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

pub(super) fn order_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Order> {
    let state: String = r.get(6)?;
    Ok(Order {
        id: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        sale_id: r.get(2)?,
        buyer: r.get(3)?,
        qty: r.get(4)?,
        key: r.get(5)?,
        state: OrderState::parse(&state).unwrap_or(OrderState::Cancelled),
        created_at: r.get::<_, i64>(7)? as u64,
        expires_at: r.get::<_, i64>(8)? as u64,
        updated_at: r.get::<_, i64>(9)? as u64,
        remaining_after: r.get(10)?,
        source: OrderSource::parse(&r.get::<_, String>(11)?),
        replay: match (r.get::<_, Option<i64>>(12)?, r.get::<_, Option<u32>>(13)?) {
            (Some(replay_id), Some(chapter)) => Some(ReplayRef { replay_id, chapter }),
            _ => None,
        },
    })
}
