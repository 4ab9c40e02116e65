//! Flash-sale wire types: the product link card viewers see, order outcomes and sale
//! states.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The product link the anchor drops: shown by every client at `reveal_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkCard {
    pub sale_id: String,
    pub product_id: String,
    pub sku_id: String,
    pub title: String,
    pub description: String,
    pub image_url: String,
    /// SKU attributes, e.g. `{"size":"M","color":"red"}`.
    pub attributes: BTreeMap<String, String>,
    /// List price, in cents.
    pub price_cents: u64,
    /// Price in this sale, in cents.
    pub sale_price_cents: u64,
    /// Units offered in this sale.
    pub allotted: u32,
    /// Most units one buyer may hold across their orders.
    pub per_buyer_limit: u32,
    /// Server time (ms since the Unix epoch) at which clients show the link and the
    /// inventory starts taking orders.
    pub reveal_at: u64,
    /// When the room has video: the RTP timestamp (90 kHz, as every subscriber receives
    /// it) of the frame on which the link appears, i.e. the frame captured `countdown`
    /// after the one on the anchor's screen when the link was dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reveal_rtp: Option<u32>,
    /// Units still available when this card was sent.
    pub remaining: u32,
}

/// How a sale stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleState {
    /// Created; its link has not been dropped yet.
    Scheduled,
    /// Link dropped; orders are taken from `reveal_at`.
    Open,
    /// No unit left; units may come back from cancelled or expired reservations.
    SoldOut,
    /// Closed for good (anchor, merchant or end time); unsold units went back to stock.
    Ended,
}

/// Result of an order request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderOutcome {
    /// Units reserved for the buyer; pay (confirm) before the reservation expires.
    Accepted,
    /// Not enough units left.
    SoldOut,
    /// The buyer's per-buyer limit would be exceeded.
    LimitExceeded,
    /// The link has not been revealed yet (before `reveal_at`).
    NotOpen,
    /// The sale has ended.
    Closed,
    /// The request itself is wrong (quantity, key reused with other parameters, ...).
    Invalid,
}

/// The stock of one sale, carried in `tick` frames when it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleStock {
    pub remaining: u32,
}
