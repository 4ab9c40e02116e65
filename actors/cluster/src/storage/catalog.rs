//! The catalogue in Redis: products and SKUs, stock changes with their history, sale
//! records, grants. Every step that reads and changes more than one key is one script,
//! so it is atomic; every key is under the `{catalog}` tag (see `keys.rs`).

use std::collections::BTreeMap;

use crate::conn::RedisConn;
use lockstep_actors::store::{
    CatalogError, Faq, Grant, MAX_UNITS, NewProduct, NewSale, Product, SaleRecord, Sku,
    StockChange, StoreError, new_id,
};
use redis::Script;
use serde::{Deserialize, Serialize};

use super::{keys, unreachable};

/// A product as stored (its SKUs are stored apart, with their stock).
#[derive(Serialize, Deserialize)]
pub(super) struct ProductDoc {
    pub merchant: String,
    pub id: String,
    pub title: String,
    pub description: String,
    pub price_cents: u64,
    pub image_url: String,
    pub faq: Vec<Faq>,
    pub sku_ids: Vec<String>,
    pub created_at: u64,
}

/// A sale's record as stored (phase, seed and reveal time live with the sale's state).
#[derive(Serialize, Deserialize)]
pub(super) struct SaleDoc {
    pub merchant: String,
    pub record: SaleRecord,
}

const CHANGE_STOCK: &str = r"
if redis.call('HGET', KEYS[1], 'merchant') ~= ARGV[1] then return {'nosku'} end
local stock = tonumber(redis.call('HGET', KEYS[1], 'stock'))
local held = tonumber(redis.call('HGET', KEYS[1], 'held') or '0')
local target
if ARGV[2] == 'set' then target = tonumber(ARGV[3]) else target = stock + tonumber(ARGV[3]) end
if target < 0 then return {'below', tostring(stock)} end
if target + held > tonumber(ARGV[6]) then return {'toolarge'} end
redis.call('HSET', KEYS[1], 'stock', target)
redis.call('RPUSH', KEYS[2], cjson.encode({delta = target - stock, stock_after = target, reason = ARGV[4], at = tonumber(ARGV[5])}))
return {'ok'}
";
static CHANGE_STOCK_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(CHANGE_STOCK));

const CREATE_SALE: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {'nogrant'} end
if redis.call('HGET', KEYS[2], 'merchant') ~= ARGV[1] then return {'nosku'} end
local stock = tonumber(redis.call('HGET', KEYS[2], 'stock'))
local need = tonumber(ARGV[2])
if stock < need then return {'short', tostring(stock)} end
redis.call('HSET', KEYS[2], 'stock', stock - need)
redis.call('HINCRBY', KEYS[2], 'held', need)
redis.call('RPUSH', KEYS[3], cjson.encode({delta = -need, stock_after = stock - need, reason = ARGV[6], at = tonumber(ARGV[4])}))
redis.call('SET', KEYS[4], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[5])
redis.call('SADD', KEYS[6], ARGV[5])
return {'ok'}
";
static CREATE_SALE_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(CREATE_SALE));

/// Gives a sale's returned units back to its SKU, up to the total the sale recorded;
/// running it again changes nothing.
pub(super) const RETURN_UNITS: &str = r"
local done = tonumber(redis.call('GET', KEYS[1]) or '0')
local target = tonumber(ARGV[1])
if target <= done then return 0 end
local delta = target - done
redis.call('SET', KEYS[1], target)
local stock = redis.call('HINCRBY', KEYS[2], 'stock', delta)
redis.call('HINCRBY', KEYS[2], 'held', -delta)
redis.call('RPUSH', KEYS[3], cjson.encode({delta = delta, stock_after = stock, reason = ARGV[2], at = tonumber(ARGV[3])}))
return delta
";
pub(super) static RETURN_UNITS_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(RETURN_UNITS));

pub(super) async fn create_product(
    conn: &mut RedisConn,
    merchant: String,
    new: NewProduct,
    now: u64,
) -> Result<Product, StoreError> {
    new.validate()
        .map_err(|m| StoreError::from(CatalogError::Invalid(m)))?;
    let id = new_id("p");
    let mut pipe = redis::pipe();
    pipe.atomic();
    let mut skus = Vec::new();
    for sku in &new.skus {
        let sku_id = new_id("sku");
        let attributes = serde_json::to_string(&sku.attributes).expect("attributes serialize");
        pipe.hset_multiple(
            keys::sku(&sku_id),
            &[
                ("merchant", merchant.clone()),
                ("product_id", id.clone()),
                ("attributes", attributes),
                ("stock", sku.stock.to_string()),
                ("held", "0".to_owned()),
            ],
        )
        .ignore();
        let first = serde_json::json!({"delta": sku.stock, "stock_after": sku.stock, "reason": "initial stock", "at": now});
        pipe.rpush(keys::moves(&sku_id), first.to_string()).ignore();
        skus.push(Sku {
            id: sku_id,
            product_id: id.clone(),
            attributes: sku.attributes.clone(),
            stock: sku.stock,
        });
    }
    let doc = ProductDoc {
        merchant: merchant.clone(),
        id: id.clone(),
        title: new.title.trim().to_owned(),
        description: new.description,
        price_cents: new.price_cents,
        image_url: new.image_url,
        faq: new.faq,
        sku_ids: skus.iter().map(|s| s.id.clone()).collect(),
        created_at: now,
    };
    pipe.set(keys::product(&id), json(&doc)).ignore();
    pipe.zadd(keys::merchant_products(&merchant), &id, now)
        .ignore();
    pipe.query_async::<()>(conn).await.map_err(unreachable)?;
    Ok(product_of(doc, skus))
}

fn product_of(doc: ProductDoc, skus: Vec<Sku>) -> Product {
    Product {
        id: doc.id,
        title: doc.title,
        description: doc.description,
        price_cents: doc.price_cents,
        image_url: doc.image_url,
        faq: doc.faq,
        skus,
        created_at: doc.created_at,
    }
}

pub(super) async fn product_doc(
    conn: &mut RedisConn,
    id: &str,
) -> Result<Option<ProductDoc>, StoreError> {
    let text: Option<String> = redis::cmd("GET")
        .arg(keys::product(id))
        .query_async(conn)
        .await
        .map_err(unreachable)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// A SKU as stored: its merchant and the SKU.
pub(super) async fn sku_of(
    conn: &mut RedisConn,
    id: &str,
) -> Result<Option<(String, Sku)>, StoreError> {
    let fields: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(keys::sku(id))
        .query_async(conn)
        .await
        .map_err(unreachable)?;
    let (Some(merchant), Some(product_id), Some(stock)) = (
        fields.get("merchant"),
        fields.get("product_id"),
        fields.get("stock").and_then(|s| s.parse().ok()),
    ) else {
        return Ok(None);
    };
    let attributes = fields
        .get("attributes")
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default();
    Ok(Some((
        merchant.clone(),
        Sku {
            id: id.to_owned(),
            product_id: product_id.clone(),
            attributes,
            stock,
        },
    )))
}

pub(super) async fn get_product(
    conn: &mut RedisConn,
    merchant: &str,
    id: &str,
) -> Result<Option<Product>, StoreError> {
    let Some(doc) = product_doc(conn, id)
        .await?
        .filter(|d| d.merchant == merchant)
    else {
        return Ok(None);
    };
    let mut skus = Vec::new();
    for sku_id in &doc.sku_ids {
        if let Some((_, sku)) = sku_of(conn, sku_id).await? {
            skus.push(sku);
        }
    }
    Ok(Some(product_of(doc, skus)))
}

pub(super) async fn list_products(
    conn: &mut RedisConn,
    merchant: &str,
) -> Result<Vec<Product>, StoreError> {
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys::merchant_products(merchant))
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .map_err(unreachable)?;
    let mut out = Vec::new();
    for id in ids {
        out.extend(get_product(conn, merchant, &id).await?);
    }
    Ok(out)
}

pub(super) async fn get_sku(
    conn: &mut RedisConn,
    merchant: &str,
    id: &str,
) -> Result<Sku, StoreError> {
    match sku_of(conn, id).await? {
        Some((owner, sku)) if owner == merchant => Ok(sku),
        _ => Err(CatalogError::SkuNotFound(id.to_owned()).into()),
    }
}

pub(super) async fn change_stock(
    conn: &mut RedisConn,
    merchant: &str,
    sku: &str,
    change: &StockChange,
    now: u64,
) -> Result<Sku, StoreError> {
    let reason = change.reason()?;
    let too_large = || {
        StoreError::from(CatalogError::Invalid(format!(
            "free stock plus the units held by sales must stay at most {MAX_UNITS}"
        )))
    };
    let (mode, value) = match (change.stock, change.delta) {
        (Some(stock), None) => ("set", i64::from(stock)),
        // Lua numbers are doubles: a delta past the unit range is refused here.
        (None, Some(delta)) if delta.abs() <= 2 * MAX_UNITS => ("delta", delta),
        (None, Some(_)) => return Err(too_large()),
        _ => {
            return Err(
                CatalogError::Invalid("give exactly one of `stock` or `delta`".into()).into(),
            );
        }
    };
    let answer: Vec<String> = CHANGE_STOCK_SCRIPT
        .key(keys::sku(sku))
        .key(keys::moves(sku))
        .arg(merchant)
        .arg(mode)
        .arg(value)
        .arg(reason)
        .arg(now)
        .arg(MAX_UNITS)
        .invoke_async(conn)
        .await
        .map_err(unreachable)?;
    match answer.first().map(String::as_str) {
        Some("ok") => get_sku(conn, merchant, sku).await,
        Some("below") => Err(CatalogError::BelowZero {
            stock: answer.get(1).and_then(|s| s.parse().ok()).unwrap_or(0),
        }
        .into()),
        Some("toolarge") => Err(too_large()),
        _ => Err(CatalogError::SkuNotFound(sku.to_owned()).into()),
    }
}

pub(super) async fn create_sale(
    conn: &mut RedisConn,
    merchant: &str,
    new: &NewSale,
    now: u64,
) -> Result<SaleRecord, StoreError> {
    new.validate()
        .map_err(|m| StoreError::from(CatalogError::Invalid(m)))?;
    let (_, sku) = sku_of(conn, &new.sku_id)
        .await?
        .filter(|(owner, _)| owner == merchant)
        .ok_or_else(|| CatalogError::SkuNotFound(new.sku_id.clone()))?;
    let id = new_id("sale");
    let record = SaleRecord {
        id: id.clone(),
        room: new.room.clone(),
        product_id: sku.product_id.clone(),
        sku_id: sku.id.clone(),
        allotted: new.allotted,
        price_cents: new.price_cents,
        per_buyer_limit: new.per_buyer_limit,
        reservation_ttl_ms: new.reservation_ttl_secs * 1000,
        fair_window_ms: new.fair_window_ms,
        end_at: new.end_at,
        seed: None,
        reveal_at: None,
        created_at: now,
    };
    let doc = SaleDoc {
        merchant: merchant.to_owned(),
        record: record.clone(),
    };
    let answer: Vec<String> = CREATE_SALE_SCRIPT
        .key(keys::grants(&new.room))
        .key(keys::sku(&sku.id))
        .key(keys::moves(&sku.id))
        .key(keys::sale(&id))
        .key(keys::merchant_sales(merchant))
        .key(keys::all_sales())
        .arg(merchant)
        .arg(new.allotted)
        .arg(json(&doc))
        .arg(now)
        .arg(&id)
        .arg(format!("allotted to sale {id}"))
        .invoke_async(conn)
        .await
        .map_err(unreachable)?;
    match answer.first().map(String::as_str) {
        Some("ok") => Ok(record),
        Some("nogrant") => Err(CatalogError::NotGranted {
            merchant: merchant.to_owned(),
            room: new.room.clone(),
        }
        .into()),
        Some("short") => Err(CatalogError::NotEnoughFree {
            sku: sku.id,
            free: answer.get(1).and_then(|s| s.parse().ok()).unwrap_or(0),
            needed: new.allotted,
        }
        .into()),
        _ => Err(CatalogError::SkuNotFound(new.sku_id.clone()).into()),
    }
}

pub(super) async fn sale_doc(
    conn: &mut RedisConn,
    id: &str,
) -> Result<Option<SaleDoc>, StoreError> {
    let text: Option<String> = redis::cmd("GET")
        .arg(keys::sale(id))
        .query_async(conn)
        .await
        .map_err(unreachable)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

pub(super) async fn grant(
    conn: &mut RedisConn,
    room: &str,
    merchant: &str,
    now: u64,
) -> Result<Grant, StoreError> {
    let (_, granted_at): (u8, u64) = redis::pipe()
        .atomic()
        .hset_nx(keys::grants(room), merchant, now)
        .hget(keys::grants(room), merchant)
        .query_async(conn)
        .await
        .map_err(unreachable)?;
    Ok(Grant {
        room: room.to_owned(),
        merchant: merchant.to_owned(),
        granted_at,
    })
}

pub(super) async fn revoke(
    conn: &mut RedisConn,
    room: &str,
    merchant: &str,
) -> Result<bool, StoreError> {
    let removed: u32 = redis::cmd("HDEL")
        .arg(keys::grants(room))
        .arg(merchant)
        .query_async(conn)
        .await
        .map_err(unreachable)?;
    Ok(removed > 0)
}

pub(super) async fn grants(conn: &mut RedisConn, room: &str) -> Result<Vec<Grant>, StoreError> {
    let all: BTreeMap<String, u64> = redis::cmd("HGETALL")
        .arg(keys::grants(room))
        .query_async(conn)
        .await
        .map_err(unreachable)?;
    Ok(all
        .into_iter()
        .map(|(merchant, granted_at)| Grant {
            room: room.to_owned(),
            merchant,
            granted_at,
        })
        .collect())
}

pub(super) fn json(value: &impl Serialize) -> String {
    // Plain records: serializing cannot fail.
    serde_json::to_string(value).expect("records serialize")
}
