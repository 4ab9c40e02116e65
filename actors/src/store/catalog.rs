//! The merchant's catalogue in SQL: products, SKUs and their free stock, sales (which
//! take their allotment from a SKU's free stock atomically), and order queries. Every
//! function takes the merchant id and only ever sees that merchant's rows.

use std::collections::BTreeMap;

use lockstep_protocol::{ErrorCode, LinkCard, WireError};
use rand::Rng;
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::sales::order_from_row;
use crate::inventory::model::{Order, OrderState};
use crate::text::{has_disallowed, has_disallowed_in_multiline};

/// Highest price accepted, in cents (a billion in the currency's unit).
pub const MAX_PRICE_CENTS: u64 = 100_000_000_000;

/// Latest `end_at` accepted: the last millisecond of the year 9999.
pub const MAX_TIME_MS: u64 = 253_402_300_799_999;

/// Most units a SKU may account for: its free stock plus what its sales hold.
pub const MAX_UNITS: i64 = u32::MAX as i64;

/// Why the catalog refused a change (rolled back, nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The request breaks a rule of the catalog (the message says which).
    #[error("{0}")]
    Invalid(String),
    #[error("no sku `{0}`")]
    SkuNotFound(String),
    #[error("free stock is {stock}; it cannot go below 0")]
    BelowZero { stock: u32 },
    #[error("sku `{sku}` has {free} free units; the sale needs {needed}")]
    NotEnoughFree { sku: String, free: u32, needed: u32 },
    #[error(
        "merchant `{merchant}` may not sell in room `{room}`: its anchor grants that with PUT /api/v1/rooms/{room}/merchants/{merchant}"
    )]
    NotGranted { merchant: String, room: String },
    /// A row written in this transaction could not be read back (a bug).
    #[error("{0} vanished")]
    Vanished(&'static str),
}

impl WireError for CatalogError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::InvalidMessage,
            Self::SkuNotFound(_) => ErrorCode::SkuNotFound,
            Self::BelowZero { .. } | Self::NotEnoughFree { .. } => ErrorCode::InsufficientStock,
            Self::NotGranted { .. } => ErrorCode::Forbidden,
            Self::Vanished(_) => ErrorCode::Internal,
        }
    }
}

fn invalid(message: impl Into<String>) -> StoreError {
    CatalogError::Invalid(message.into()).into()
}

/// A fresh id: `prefix` and 64 random bits.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::rng().random::<u64>())
}

/// A question and answer shown with the product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Faq {
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 500,
            pattern = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub q: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 2000,
            pattern = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub a: String,
}

/// `POST /api/v1/products` body.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// 1-200 characters, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069][^\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub title: String,
    /// At most 5000 characters; line breaks and tabs are the only control characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 5000,
            pattern = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub description: String,
    /// List price in cents.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000_000_000u64))]
    pub price_cents: u64,
    /// Empty, or an http(s) URL.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 2048,
            pattern = "^(https?://[^\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*)?$"
        )
    )]
    pub image_url: String,
    /// 1-100 SKUs.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub skus: Vec<NewSku>,
    /// At most 20 entries.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 20))]
    pub faq: Vec<Faq>,
}

/// A SKU in a new product.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSku {
    /// E.g. `{"size":"M"}`: at most 20, names of 1-64 and values of at most 200
    /// characters, no control characters.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Initial free stock.
    #[serde(default)]
    pub stock: u32,
}

impl NewProduct {
    /// Checks every field; the message says which one is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > 200 {
            return Err("title must be 1-200 characters".into());
        }
        if has_disallowed(title) {
            return Err("title must not contain control characters".into());
        }
        if self.description.chars().count() > 5000 {
            return Err("description must be at most 5000 characters".into());
        }
        if has_disallowed_in_multiline(&self.description) {
            return Err(
                "description must not contain control characters (line breaks and tabs are fine)"
                    .into(),
            );
        }
        check_price(self.price_cents)?;
        if self.image_url.len() > 2048 {
            return Err("image_url must be at most 2048 bytes".into());
        }
        if !(self.image_url.is_empty()
            || self.image_url.starts_with("https://")
            || self.image_url.starts_with("http://"))
            || has_disallowed(&self.image_url)
        {
            return Err("image_url must be empty or an http(s) URL".into());
        }
        if self.skus.is_empty() || self.skus.len() > 100 {
            return Err("a product needs 1-100 skus".into());
        }
        for sku in &self.skus {
            if sku.attributes.len() > 20 {
                return Err("a sku has at most 20 attributes".into());
            }
            if sku.attributes.iter().any(|(k, v)| {
                k.is_empty()
                    || k.chars().count() > 64
                    || v.chars().count() > 200
                    || has_disallowed(k)
                    || has_disallowed(v)
            }) {
                return Err(
                    "sku attributes need names of 1-64 and values of at most 200 characters, without control characters"
                        .into(),
                );
            }
        }
        if self.faq.len() > 20 {
            return Err("at most 20 faq entries".into());
        }
        if self.faq.iter().any(|f| {
            f.q.chars().count() > 500
                || f.a.chars().count() > 2000
                || has_disallowed_in_multiline(&f.q)
                || has_disallowed_in_multiline(&f.a)
        }) {
            return Err(
                "a faq entry has a question of at most 500 and an answer of at most 2000 characters, without control characters"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A product with its SKUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Product {
    pub id: String,
    pub title: String,
    pub description: String,
    pub price_cents: u64,
    pub image_url: String,
    pub faq: Vec<Faq>,
    pub skus: Vec<Sku>,
    pub created_at: u64,
}

/// A SKU and its free stock (units not allotted to any sale).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sku {
    pub id: String,
    pub product_id: String,
    pub attributes: BTreeMap<String, String>,
    pub stock: u32,
}

/// A stock change: set the free stock to `stock`, or move it by `delta`; always with a
/// reason, recorded in the stock history.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StockChange {
    #[serde(default)]
    pub stock: Option<u32>,
    #[serde(default)]
    pub delta: Option<i64>,
    /// 1-500 characters, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 500,
            pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069][^\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$"
        )
    )]
    pub reason: String,
}

impl StockChange {
    /// The change's reason, trimmed, or why it is not acceptable.
    pub fn reason(&self) -> Result<&str, StoreError> {
        let reason = self.reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(invalid("reason must be 1-500 characters"));
        }
        if has_disallowed(reason) {
            return Err(invalid("reason must not contain control characters"));
        }
        Ok(reason)
    }
}

/// `POST /api/v1/sales` body: a SKU offered in a room.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSale {
    /// A room whose anchor granted this merchant (1-64 of `[A-Za-z0-9_-]`).
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{1,64}$"))]
    pub room: String,
    pub sku_id: String,
    /// Units taken from the SKU's free stock.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub allotted: u32,
    /// Price in this sale, in cents.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000_000_000u64))]
    pub price_cents: u64,
    /// Most units one buyer may hold (default 1).
    #[serde(default = "one")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub per_buyer_limit: u32,
    /// Unpaid reservations expire after this many seconds (default 300).
    #[serde(default = "five_minutes")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86_400))]
    pub reservation_ttl_secs: u64,
    /// Fair window in ms after the reveal (default 0 = first come, first served).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 10_000))]
    pub fair_window_ms: u64,
    /// The sale ends by itself at this time (ms since the Unix epoch).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 253_402_300_799_999u64))]
    pub end_at: Option<u64>,
}

fn one() -> u32 {
    1
}

fn five_minutes() -> u64 {
    300
}

fn check_price(cents: u64) -> Result<(), String> {
    if !(1..=MAX_PRICE_CENTS).contains(&cents) {
        return Err(format!("price_cents must be 1-{MAX_PRICE_CENTS}"));
    }
    Ok(())
}

impl NewSale {
    pub fn validate(&self) -> Result<(), String> {
        if self.allotted == 0 {
            return Err("allotted must be at least 1".into());
        }
        check_price(self.price_cents)?;
        if self.end_at.is_some_and(|t| t > MAX_TIME_MS) {
            return Err(format!(
                "end_at must be at most {MAX_TIME_MS} (ms since the Unix epoch)"
            ));
        }
        if self.per_buyer_limit == 0 {
            return Err("per_buyer_limit must be at least 1".into());
        }
        if !(1..=86_400).contains(&self.reservation_ttl_secs) {
            return Err("reservation_ttl_secs must be 1-86400".into());
        }
        if self.fair_window_ms > 10_000 {
            return Err("fair_window_ms must be at most 10000".into());
        }
        Ok(())
    }
}

/// A sale as the merchant created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SaleRecord {
    pub id: String,
    pub room: String,
    pub product_id: String,
    pub sku_id: String,
    pub allotted: u32,
    pub price_cents: u64,
    pub per_buyer_limit: u32,
    pub reservation_ttl_ms: u64,
    pub fair_window_ms: u64,
    pub end_at: Option<u64>,
    /// Seed of the fair window's random order, once the link dropped (for audit).
    pub seed: Option<u64>,
    pub reveal_at: Option<u64>,
    pub created_at: u64,
}

/// Filters for listing orders; pages are ordered by order id.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct OrderFilter {
    pub sale_id: Option<String>,
    pub state: Option<OrderState>,
    pub buyer: Option<String>,
    /// Return orders with an id after this one (the previous page's `next`).
    pub after: Option<String>,
    /// Page size, 1-500 (default 100).
    pub limit: Option<u32>,
}

pub fn create_product(
    tx: &Transaction<'_>,
    merchant: &str,
    new: NewProduct,
    now: u64,
) -> Result<Product, StoreError> {
    new.validate().map_err(invalid)?;
    let id = new_id("p");
    let faq = serde_json::to_string(&new.faq).expect("faq serializes");
    tx.execute(
        "INSERT INTO products (id, merchant, title, description, price_cents, image_url, faq, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![id, merchant, new.title.trim(), new.description, new.price_cents as i64, new.image_url, faq, now as i64],
    )?;
    for sku in &new.skus {
        let sku_id = new_id("sku");
        let attributes = serde_json::to_string(&sku.attributes).expect("attributes serialize");
        tx.execute(
            "INSERT INTO skus (id, product_id, merchant, attributes, stock) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![sku_id, id, merchant, attributes, sku.stock],
        )?;
        record_move(tx, &sku_id, i64::from(sku.stock), "initial stock", now)?;
    }
    get_product(tx, merchant, &id)?.ok_or_else(|| CatalogError::Vanished("product").into())
}

pub fn get_product(
    tx: &Transaction<'_>,
    merchant: &str,
    id: &str,
) -> Result<Option<Product>, StoreError> {
    let product = tx
        .query_row(
            "SELECT id, title, description, price_cents, image_url, faq, created_at
             FROM products WHERE id = ?1 AND merchant = ?2",
            params![id, merchant],
            |r| {
                let faq: String = r.get(5)?;
                Ok(Product {
                    id: r.get(0)?,
                    title: r.get(1)?,
                    description: r.get(2)?,
                    price_cents: r.get::<_, i64>(3)? as u64,
                    image_url: r.get(4)?,
                    faq: serde_json::from_str(&faq).unwrap_or_default(),
                    skus: Vec::new(),
                    created_at: r.get::<_, i64>(6)? as u64,
                })
            },
        )
        .optional()?;
    let Some(mut product) = product else {
        return Ok(None);
    };
    let mut stmt = tx.prepare_cached(
        "SELECT id, product_id, attributes, stock FROM skus WHERE product_id = ?1 ORDER BY rowid",
    )?;
    product.skus = stmt
        .query_map([id], sku_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(product))
}

pub fn list_products(tx: &Transaction<'_>, merchant: &str) -> Result<Vec<Product>, StoreError> {
    let ids: Vec<String> = tx
        .prepare_cached("SELECT id FROM products WHERE merchant = ?1 ORDER BY created_at, id")?
        .query_map([merchant], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.iter()
        .filter_map(|id| get_product(tx, merchant, id).transpose())
        .collect()
}

fn sku_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Sku> {
    let attributes: String = r.get(2)?;
    Ok(Sku {
        id: r.get(0)?,
        product_id: r.get(1)?,
        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
        stock: r.get(3)?,
    })
}

pub fn get_sku(tx: &Transaction<'_>, merchant: &str, id: &str) -> Result<Sku, StoreError> {
    tx.query_row(
        "SELECT id, product_id, attributes, stock FROM skus WHERE id = ?1 AND merchant = ?2",
        params![id, merchant],
        sku_from_row,
    )
    .optional()?
    .ok_or_else(|| CatalogError::SkuNotFound(id.to_owned()).into())
}

/// Sets or moves a SKU's free stock. Units allotted to sales are not part of it, so no
/// change here can touch what is reserved or sold; the free stock never goes below 0.
pub fn change_stock(
    tx: &Transaction<'_>,
    merchant: &str,
    sku_id: &str,
    change: &StockChange,
    now: u64,
) -> Result<Sku, StoreError> {
    let reason = change.reason()?;
    let sku = get_sku(tx, merchant, sku_id)?;
    let too_large = || {
        invalid(format!(
            "free stock plus the units held by sales must stay at most {MAX_UNITS}"
        ))
    };
    let target = match (change.stock, change.delta) {
        (Some(stock), None) => i64::from(stock),
        (None, Some(delta)) => i64::from(sku.stock)
            .checked_add(delta)
            .ok_or_else(too_large)?,
        _ => {
            return Err(invalid("give exactly one of `stock` or `delta`"));
        }
    };
    if target < 0 {
        return Err(CatalogError::BelowZero { stock: sku.stock }.into());
    }
    // Units held by sales come back to the free stock when the sales end; the total must
    // fit, so a return can never overflow the column.
    let held = units_held_by_sales(tx, sku_id)?;
    if target
        .checked_add(held)
        .is_none_or(|total| total > MAX_UNITS)
    {
        return Err(too_large());
    }
    let target = u32::try_from(target).map_err(|_| too_large())?;
    tx.execute(
        "UPDATE skus SET stock = ?1 WHERE id = ?2",
        params![target, sku_id],
    )?;
    record_move(
        tx,
        sku_id,
        i64::from(target) - i64::from(sku.stock),
        reason,
        now,
    )?;
    get_sku(tx, merchant, sku_id)
}

/// Units the SKU's sales took from its free stock and may still return.
fn units_held_by_sales(tx: &Transaction<'_>, sku_id: &str) -> rusqlite::Result<i64> {
    tx.query_row(
        "SELECT COALESCE(SUM(allotted - released), 0) FROM sales WHERE sku_id = ?1",
        [sku_id],
        |r| r.get(0),
    )
}

fn record_move(
    tx: &Transaction<'_>,
    sku_id: &str,
    delta: i64,
    reason: &str,
    now: u64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO stock_moves (sku_id, delta, stock_after, reason, at)
         VALUES (?1, ?2, (SELECT stock FROM skus WHERE id = ?1), ?3, ?4)",
        params![sku_id, delta, reason, now as i64],
    )?;
    Ok(())
}

/// Creates a sale, taking its allotment from the SKU's free stock in the same transaction.
pub fn create_sale(
    tx: &Transaction<'_>,
    merchant: &str,
    new: &NewSale,
    now: u64,
) -> Result<SaleRecord, StoreError> {
    new.validate().map_err(invalid)?;
    if !super::may_sell(tx, &new.room, merchant)? {
        return Err(CatalogError::NotGranted {
            merchant: merchant.to_owned(),
            room: new.room.clone(),
        }
        .into());
    }
    let sku = get_sku(tx, merchant, &new.sku_id)?;
    if sku.stock < new.allotted {
        return Err(CatalogError::NotEnoughFree {
            sku: sku.id,
            free: sku.stock,
            needed: new.allotted,
        }
        .into());
    }
    let id = new_id("sale");
    tx.execute(
        "UPDATE skus SET stock = stock - ?1 WHERE id = ?2",
        params![new.allotted, sku.id],
    )?;
    record_move(
        tx,
        &sku.id,
        -i64::from(new.allotted),
        &format!("allotted to sale {id}"),
        now,
    )?;
    tx.execute(
        "INSERT INTO sales (id, merchant, room, product_id, sku_id, allotted, price_cents, per_buyer_limit,
                            reservation_ttl_ms, fair_window_ms, end_at, phase, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'scheduled', ?12)",
        params![
            id,
            merchant,
            new.room,
            sku.product_id,
            sku.id,
            new.allotted,
            new.price_cents as i64,
            new.per_buyer_limit,
            (new.reservation_ttl_secs * 1000) as i64,
            new.fair_window_ms as i64,
            new.end_at.map(|v| v as i64),
            now as i64
        ],
    )?;
    get_sale(tx, merchant, &id)?.ok_or_else(|| CatalogError::Vanished("sale").into())
}

pub fn get_sale(
    tx: &Transaction<'_>,
    merchant: &str,
    id: &str,
) -> Result<Option<SaleRecord>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT id, room, product_id, sku_id, allotted, price_cents, per_buyer_limit, reservation_ttl_ms,
                    fair_window_ms, end_at, seed, reveal_at, created_at
             FROM sales WHERE id = ?1 AND merchant = ?2",
            params![id, merchant],
            |r| {
                Ok(SaleRecord {
                    id: r.get(0)?,
                    room: r.get(1)?,
                    product_id: r.get(2)?,
                    sku_id: r.get(3)?,
                    allotted: r.get(4)?,
                    price_cents: r.get::<_, i64>(5)? as u64,
                    per_buyer_limit: r.get(6)?,
                    reservation_ttl_ms: r.get::<_, i64>(7)? as u64,
                    fair_window_ms: r.get::<_, i64>(8)? as u64,
                    end_at: r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
                    seed: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
                    reveal_at: r.get::<_, Option<i64>>(11)?.map(|v| v as u64),
                    created_at: r.get::<_, i64>(12)? as u64,
                })
            },
        )
        .optional()?)
}

/// The product card of a sale (reveal time and remaining are filled in at the drop).
pub fn link_card(tx: &Transaction<'_>, sale_id: &str) -> Result<Option<LinkCard>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT s.id, p.id, k.id, p.title, p.description, p.image_url, k.attributes, p.price_cents,
                    s.price_cents, s.allotted, s.per_buyer_limit
             FROM sales s JOIN skus k ON k.id = s.sku_id JOIN products p ON p.id = s.product_id
             WHERE s.id = ?1",
            [sale_id],
            |r| {
                let attributes: String = r.get(6)?;
                Ok(LinkCard {
                    reveal_rtp: None,
                    sale_id: r.get(0)?,
                    product_id: r.get(1)?,
                    sku_id: r.get(2)?,
                    title: r.get(3)?,
                    description: r.get(4)?,
                    image_url: r.get(5)?,
                    attributes: serde_json::from_str(&attributes).unwrap_or_default(),
                    price_cents: r.get::<_, i64>(7)? as u64,
                    sale_price_cents: r.get::<_, i64>(8)? as u64,
                    allotted: r.get(9)?,
                    per_buyer_limit: r.get(10)?,
                    reveal_at: 0,
                    remaining: 0,
                })
            },
        )
        .optional()?)
}

pub fn list_orders(
    tx: &Transaction<'_>,
    merchant: &str,
    filter: &OrderFilter,
) -> Result<Vec<Order>, StoreError> {
    let limit = filter.limit.unwrap_or(100).clamp(1, 500);
    let mut stmt = tx.prepare_cached(
        "SELECT o.id, o.seq, o.sale_id, o.buyer, o.qty, o.key, o.state, o.created_at, o.expires_at, o.updated_at, o.remaining_after, o.source, o.replay_id, o.chapter
         FROM orders o JOIN sales s ON s.id = o.sale_id
         WHERE s.merchant = ?1
           AND (?2 IS NULL OR o.sale_id = ?2)
           AND (?3 IS NULL OR o.state = ?3)
           AND (?4 IS NULL OR o.buyer = ?4)
           AND (?5 IS NULL OR o.id > ?5)
         ORDER BY o.id LIMIT ?6",
    )?;
    let rows = stmt.query_map(
        params![
            merchant,
            filter.sale_id,
            filter.state.map(OrderState::as_str),
            filter.buyer,
            filter.after,
            limit
        ],
        order_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get_order(
    tx: &Transaction<'_>,
    merchant: &str,
    id: &str,
) -> Result<Option<Order>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT o.id, o.seq, o.sale_id, o.buyer, o.qty, o.key, o.state, o.created_at, o.expires_at, o.updated_at, o.remaining_after, o.source, o.replay_id, o.chapter
             FROM orders o JOIN sales s ON s.id = o.sale_id WHERE o.id = ?1 AND s.merchant = ?2",
            params![id, merchant],
            order_from_row,
        )
        .optional()?)
}
