//! The records a sale is made of: its rules, its phase and its orders. Shared by the
//! inventory core, the store and the HTTP API.

use lockstep_protocol::SaleState;
use serde::{Deserialize, Serialize};

/// What the merchant fixed when creating the sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleRules {
    pub sale_id: String,
    /// Units taken from the SKU's stock for this sale.
    pub allotted: u32,
    /// Most units one buyer may hold (reserved + confirmed) at once.
    pub per_buyer_limit: u32,
    /// An unpaid reservation expires after this long and its units return.
    pub reservation_ttl_ms: u64,
    /// Requests arriving within this long after `reveal_at` are served in random order.
    pub fair_window_ms: u64,
    /// The sale ends by itself at this time, if set (ms since the Unix epoch).
    pub end_at: Option<u64>,
}

/// The id of a sale's `seq`-th order: `<sale id>-<seq>`, so an order id names its sale.
pub fn order_id(sale_id: &str, seq: u64) -> String {
    format!("{sale_id}-{seq}")
}

/// The sale an order id belongs to (`None`: not an order id).
pub fn sale_of_order(order_id: &str) -> Option<&str> {
    let (sale, seq) = order_id.rsplit_once('-')?;
    (!sale.is_empty() && seq.parse::<u64>().is_ok()).then_some(sale)
}

/// Where the sale is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    Scheduled,
    /// Revealed at `reveal_at`; `seed` orders the fair window (recorded for audit).
    Open {
        reveal_at: u64,
        seed: u64,
    },
    Ended,
}

/// The life of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Units held for the buyer until `expires_at`.
    Reserved,
    /// Paid.
    Confirmed,
    Cancelled,
    /// Not paid in time.
    Expired,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "reserved" => Self::Reserved,
            "confirmed" => Self::Confirmed,
            "cancelled" => Self::Cancelled,
            "expired" => Self::Expired,
            _ => return None,
        })
    }

    /// Reserved and confirmed orders hold units and count toward the buyer's limit.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Reserved | Self::Confirmed)
    }
}

/// One order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Order {
    pub id: String,
    /// Position in the sale's decision order (1, 2, ...).
    pub seq: u64,
    pub sale_id: String,
    pub buyer: String,
    pub qty: u32,
    /// The buyer's idempotency key.
    pub key: String,
    pub state: OrderState,
    pub created_at: u64,
    pub expires_at: u64,
    pub updated_at: u64,
    /// Units the sale had left right after this order was accepted (its answer).
    pub remaining_after: u32,
    /// Where the buyer ordered: the live room or its replay.
    #[serde(default)]
    pub source: OrderSource,
    /// For an order from a replay: which replay and chapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayRef>,
}

/// Where an order was placed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderSource {
    /// In the live room (its socket).
    #[default]
    Live,
    /// From the room's replay.
    Replay,
}

impl OrderSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Replay => "replay",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "replay" {
            Self::Replay
        } else {
            Self::Live
        }
    }
}

/// The replay and chapter an order came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplayRef {
    pub replay_id: i64,
    /// The chapter's 1-based index.
    pub chapter: u32,
}

/// Where a reservation request was placed, carried onto its order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderOrigin {
    pub source: OrderSource,
    pub replay: Option<ReplayRef>,
}

/// Counts of a sale, for the merchant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SaleSummary {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: SaleState,
    pub allotted: u32,
    /// Units still on sale.
    pub remaining: u32,
    /// Units held by unpaid reservations.
    pub reserved: u32,
    /// Units paid for.
    pub sold: u32,
    /// Units returned to the SKU's stock (unsold at the end, or released after it).
    pub released: u32,
    /// Distinct buyers holding units.
    pub buyers: u32,
    /// Orders ever accepted.
    pub orders: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn an_order_id_names_its_sale(sale in "[a-z0-9_-]{1,40}", seq: u64) {
            let id = order_id(&sale, seq);
            prop_assert_eq!(sale_of_order(&id), Some(sale.as_str()));
        }
    }

    #[test]
    fn other_strings_name_no_sale() {
        for bad in ["", "nosale", "-3", "sale-", "sale-x", "sale-1.5"] {
            assert_eq!(sale_of_order(bad), None, "{bad}");
        }
    }
}
