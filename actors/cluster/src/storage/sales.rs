//! Sales in Redis: each sale's state (phase, released units, units given back, fence)
//! and its orders under the sale's own tag; a flush is one script that first checks the
//! writer's epoch against the sale's fence — a deposed owner's writes are refused — and
//! then records every order (also appending it to the sale's order stream) and the
//! sale's new state. Units an ended sale gives back reach the SKU's free stock in a
//! second, idempotent step, repeated whenever the sale is loaded.

use std::collections::BTreeMap;

use crate::conn::RedisConn;
use lockstep_actors::inventory::Write;
use lockstep_actors::inventory::model::{Order, OrderState, Phase, SaleRules};
use lockstep_actors::store::{OrderFilter, SaleRecord, SaleWrites, StoreError, StoredSale};
use lockstep_protocol::LinkCard;
use redis::Script;

use super::catalog::{self, RETURN_UNITS_SCRIPT, json};
use super::{keys, unreachable};

const WRITE: &str = r"
local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
local epoch = tonumber(ARGV[1])
if epoch < fence then return 0 end
if epoch > fence then redis.call('HSET', KEYS[1], 'fence', epoch) end
local i = 2
while i <= #ARGV do
  if ARGV[i] == 'o' then
    redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
    redis.call('XADD', KEYS[3], '*', 'order', ARGV[i + 2])
    i = i + 3
  else
    redis.call('HSET', KEYS[1], 'phase', ARGV[i + 1], 'released', ARGV[i + 2])
    redis.call('HINCRBY', KEYS[1], 'returned', ARGV[i + 3])
    if ARGV[i + 4] ~= '' then
      redis.call('HSET', KEYS[1], 'reveal_at', ARGV[i + 4], 'seed', ARGV[i + 5])
    end
    i = i + 6
  end
end
return 1
";
static WRITE_SCRIPT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(WRITE));

/// Raises a sale's fence to an epoch (a new owner does this before it loads the sale).
const FENCE: &str = r"
local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if tonumber(ARGV[1]) > fence then redis.call('HSET', KEYS[1], 'fence', ARGV[1]) end
return 1
";
static FENCE_SCRIPT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(FENCE));

/// A sale's state as stored.
struct State {
    phase: Phase,
    released: u32,
    returned: u64,
    /// Set once the link dropped, kept after the sale ends.
    revealed: Option<(u64, u64)>,
}

async fn state(conn: &mut RedisConn, sale: &str) -> Result<State, StoreError> {
    let fields: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(keys::sale_state(sale))
        .query_async(conn)
        .await
        .map_err(unreachable)?;
    Ok(State {
        phase: fields
            .get("phase")
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(Phase::Scheduled),
        released: fields
            .get("released")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        returned: fields
            .get("returned")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        revealed: fields
            .get("reveal_at")
            .and_then(|v| v.parse().ok())
            .zip(fields.get("seed").and_then(|v| v.parse().ok())),
    })
}

pub(super) async fn orders(conn: &mut RedisConn, sale: &str) -> Result<Vec<Order>, StoreError> {
    let values: Vec<String> = redis::cmd("HVALS")
        .arg(keys::sale_orders(sale))
        .query_async(conn)
        .await
        .map_err(unreachable)?;
    let mut orders: Vec<Order> = values
        .iter()
        .filter_map(|v| serde_json::from_str(v).ok())
        .collect();
    orders.sort_by_key(|o| o.seq);
    Ok(orders)
}

/// Gives the SKU what the sale recorded as returned and the catalogue has not applied.
async fn settle_returns(
    conn: &mut RedisConn,
    sale: &str,
    sku: &str,
    returned: u64,
) -> Result<(), StoreError> {
    if returned == 0 {
        return Ok(());
    }
    let _: i64 = RETURN_UNITS_SCRIPT
        .key(keys::returned(sale))
        .key(keys::sku(sku))
        .key(keys::moves(sku))
        .arg(returned)
        .arg(format!("returned by sale {sale}"))
        .arg(lockstep_runtime::now_ms())
        .invoke_async(conn)
        .await
        .map_err(unreachable)?;
    Ok(())
}

/// The sale with its state and orders, and its product card (returns settled first).
pub(super) async fn load(
    conn: &mut RedisConn,
    id: &str,
) -> Result<Option<(StoredSale, LinkCard)>, StoreError> {
    let Some(doc) = catalog::sale_doc(conn, id).await? else {
        return Ok(None);
    };
    let state = state(conn, id).await?;
    settle_returns(conn, id, &doc.record.sku_id, state.returned).await?;
    let orders = orders(conn, id).await?;
    let product = catalog::product_doc(conn, &doc.record.product_id).await?;
    let sku = catalog::sku_of(conn, &doc.record.sku_id).await?;
    let (Some(product), Some((_, sku))) = (product, sku) else {
        return Ok(None);
    };
    let r = &doc.record;
    let card = LinkCard {
        sale_id: r.id.clone(),
        product_id: product.id.clone(),
        sku_id: sku.id.clone(),
        title: product.title.clone(),
        description: product.description.clone(),
        image_url: product.image_url.clone(),
        attributes: sku.attributes.clone(),
        price_cents: product.price_cents,
        sale_price_cents: r.price_cents,
        allotted: r.allotted,
        per_buyer_limit: r.per_buyer_limit,
        reveal_at: 0,
        reveal_rtp: None,
        remaining: 0,
    };
    let sale = StoredSale {
        rules: SaleRules {
            sale_id: r.id.clone(),
            allotted: r.allotted,
            per_buyer_limit: r.per_buyer_limit,
            reservation_ttl_ms: r.reservation_ttl_ms,
            fair_window_ms: r.fair_window_ms,
            end_at: r.end_at,
        },
        room: r.room.clone(),
        merchant: doc.merchant.clone(),
        sku_id: r.sku_id.clone(),
        product_id: r.product_id.clone(),
        price_cents: r.price_cents,
        phase: state.phase,
        released: state.released,
        orders,
    };
    Ok(Some((sale, card)))
}

/// Every sale that can still change: not ended, or holding reservations.
pub(super) async fn live(conn: &mut RedisConn) -> Result<Vec<(StoredSale, LinkCard)>, StoreError> {
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys::all_sales())
        .query_async(conn)
        .await
        .map_err(unreachable)?;
    let mut out = Vec::new();
    for id in ids {
        if let Some((sale, card)) = load(conn, &id).await?
            && (sale.phase != Phase::Ended
                || sale.orders.iter().any(|o| o.state == OrderState::Reserved))
        {
            out.push((sale, card));
        }
    }
    out.sort_by(|a, b| a.0.rules.sale_id.cmp(&b.0.rules.sale_id));
    Ok(out)
}

/// One flush of a sale, fenced by the writer's epoch.
pub(super) async fn write(conn: &mut RedisConn, batch: &SaleWrites) -> Result<(), StoreError> {
    let sale = &batch.sale_id;
    let write = &*WRITE_SCRIPT;
    let mut script = write.prepare_invoke();
    script
        .key(keys::sale_state(sale))
        .key(keys::sale_orders(sale))
        .key(keys::order_stream(sale))
        .arg(batch.epoch);
    let mut returns = false;
    for write in &batch.writes {
        match write {
            Write::Order(order) => {
                script.arg("o").arg(&order.id).arg(json(order));
            }
            Write::Sale {
                phase,
                released,
                returned,
            } => {
                returns |= *returned > 0;
                // The reveal time and seed stay once the sale ends (for audit).
                let (reveal_at, seed) = match phase {
                    Phase::Open { reveal_at, seed } => (reveal_at.to_string(), seed.to_string()),
                    _ => (String::new(), String::new()),
                };
                script
                    .arg("s")
                    .arg(json(phase))
                    .arg(*released)
                    .arg(*returned)
                    .arg(reveal_at)
                    .arg(seed);
            }
        }
    }
    let written: u8 = script.invoke_async(conn).await.map_err(unreachable)?;
    if written == 0 {
        return Err(StoreError::Fenced);
    }
    if returns && let Some(doc) = catalog::sale_doc(conn, sale).await? {
        let total = state(conn, sale).await?.returned;
        settle_returns(conn, sale, &doc.record.sku_id, total).await?;
    }
    Ok(())
}

/// Waits until `replicas` replicas have every write made so far (at most a second).
pub(super) async fn replicated(conn: &mut RedisConn, replicas: u32) -> Result<(), StoreError> {
    let acked: u32 = redis::cmd("WAIT")
        .arg(replicas)
        .arg(1_000)
        .query_async(conn)
        .await
        .map_err(unreachable)?;
    if acked < replicas {
        return Err(StoreError::Commit(format!(
            "{acked} of {replicas} replicas took the write in time"
        )));
    }
    Ok(())
}

/// Raises the sale's fence to `epoch`: from now on only that owner (or a newer one) may
/// write it.
pub(super) async fn fence(conn: &mut RedisConn, sale: &str, epoch: u64) -> Result<(), StoreError> {
    let _: u8 = FENCE_SCRIPT
        .key(keys::sale_state(sale))
        .arg(epoch)
        .invoke_async(conn)
        .await
        .map_err(unreachable)?;
    Ok(())
}

/// The merchant's sale record, with the reveal time and seed once the link dropped.
pub(super) async fn record(
    conn: &mut RedisConn,
    merchant: &str,
    id: &str,
) -> Result<Option<SaleRecord>, StoreError> {
    let Some(doc) = catalog::sale_doc(conn, id).await? else {
        return Ok(None);
    };
    if doc.merchant != merchant {
        return Ok(None);
    }
    let mut record = doc.record;
    if let Some((reveal_at, seed)) = state(conn, id).await?.revealed {
        record.reveal_at = Some(reveal_at);
        record.seed = Some(seed);
    }
    Ok(Some(record))
}

pub(super) async fn list_orders(
    conn: &mut RedisConn,
    merchant: &str,
    filter: &OrderFilter,
) -> Result<Vec<Order>, StoreError> {
    let limit = filter.limit.unwrap_or(100).clamp(1, 500) as usize;
    let sales: Vec<String> = match &filter.sale_id {
        Some(id) => vec![id.clone()],
        None => redis::cmd("ZRANGE")
            .arg(keys::merchant_sales(merchant))
            .arg(0)
            .arg(-1)
            .query_async(conn)
            .await
            .map_err(unreachable)?,
    };
    let mut out = Vec::new();
    for sale in sales {
        if catalog::sale_doc(conn, &sale)
            .await?
            .is_none_or(|d| d.merchant != merchant)
        {
            continue;
        }
        out.extend(orders(conn, &sale).await?.into_iter().filter(|o| {
            filter.state.is_none_or(|s| o.state == s)
                && filter.buyer.as_ref().is_none_or(|b| &o.buyer == b)
                && filter
                    .after
                    .as_ref()
                    .is_none_or(|a| o.id.as_str() > a.as_str())
        }));
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out.truncate(limit);
    Ok(out)
}

pub(super) async fn get_order(
    conn: &mut RedisConn,
    merchant: &str,
    id: &str,
) -> Result<Option<Order>, StoreError> {
    let Some(sale) = lockstep_actors::inventory::model::sale_of_order(id) else {
        return Ok(None);
    };
    if catalog::sale_doc(conn, sale)
        .await?
        .is_none_or(|d| d.merchant != merchant)
    {
        return Ok(None);
    }
    let text: Option<String> = redis::cmd("HGET")
        .arg(keys::sale_orders(sale))
        .arg(id)
        .query_async(conn)
        .await
        .map_err(unreachable)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}
