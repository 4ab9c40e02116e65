//! Which merchants may sell in which room. A room's anchor grants a merchant; a sale
//! can only be created in a room whose anchor granted its merchant. Grants are durable
//! (rooms are not), so they can be given before the show and outlive restarts.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use super::StoreError;

/// A merchant allowed to sell in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Grant {
    pub room: String,
    pub merchant: String,
    /// When the anchor granted it, ms since the Unix epoch.
    pub granted_at: u64,
}

/// Grants `merchant` the right to sell in `room` (idempotent: the first grant's time stays).
pub fn grant_merchant(
    tx: &Transaction<'_>,
    room: &str,
    merchant: &str,
    now: u64,
) -> Result<Grant, StoreError> {
    tx.execute(
        "INSERT INTO room_merchants (room, merchant, granted_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(room, merchant) DO NOTHING",
        params![room, merchant, now as i64],
    )?;
    let granted_at: i64 = tx.query_row(
        "SELECT granted_at FROM room_merchants WHERE room = ?1 AND merchant = ?2",
        params![room, merchant],
        |r| r.get(0),
    )?;
    Ok(Grant {
        room: room.to_owned(),
        merchant: merchant.to_owned(),
        granted_at: granted_at as u64,
    })
}

/// Withdraws a grant; false when there was none. Sales already created stay.
pub fn revoke_merchant(
    tx: &Transaction<'_>,
    room: &str,
    merchant: &str,
) -> Result<bool, StoreError> {
    let n = tx.execute(
        "DELETE FROM room_merchants WHERE room = ?1 AND merchant = ?2",
        params![room, merchant],
    )?;
    Ok(n > 0)
}

/// The merchants granted in `room`, by name.
pub fn list_grants(tx: &Transaction<'_>, room: &str) -> Result<Vec<Grant>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT merchant, granted_at FROM room_merchants WHERE room = ?1 ORDER BY merchant",
    )?;
    let rows = stmt.query_map([room], |r| {
        Ok(Grant {
            room: room.to_owned(),
            merchant: r.get(0)?,
            granted_at: r.get::<_, i64>(1)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Whether `merchant` may sell in `room`.
pub fn may_sell(tx: &Transaction<'_>, room: &str, merchant: &str) -> Result<bool, StoreError> {
    Ok(tx
        .query_row(
            "SELECT 1 FROM room_merchants WHERE room = ?1 AND merchant = ?2",
            params![room, merchant],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}
