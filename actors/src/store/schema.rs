//! The database schema, created on open. Units are conserved per sale:
//! `allotted = remaining + reserved + sold + released`, where reserved and sold are
//! the sums of the sale's reserved and confirmed orders.

use rusqlite::{Connection, OptionalExtension};

use crate::config::StoreConfig;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY,
    merchant TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    image_url TEXT NOT NULL,
    faq TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS products_by_merchant ON products(merchant, id);
CREATE TABLE IF NOT EXISTS skus (
    id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products(id),
    merchant TEXT NOT NULL,
    attributes TEXT NOT NULL,
    -- free stock: units not allotted to any sale
    stock INTEGER NOT NULL CHECK (stock >= 0)
);
CREATE TABLE IF NOT EXISTS stock_moves (
    id INTEGER PRIMARY KEY,
    sku_id TEXT NOT NULL,
    delta INTEGER NOT NULL,
    stock_after INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sales (
    id TEXT PRIMARY KEY,
    merchant TEXT NOT NULL,
    room TEXT NOT NULL,
    product_id TEXT NOT NULL,
    sku_id TEXT NOT NULL,
    allotted INTEGER NOT NULL,
    price_cents INTEGER NOT NULL,
    per_buyer_limit INTEGER NOT NULL,
    reservation_ttl_ms INTEGER NOT NULL,
    fair_window_ms INTEGER NOT NULL,
    end_at INTEGER,
    phase TEXT NOT NULL,
    reveal_at INTEGER,
    seed INTEGER,
    released INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sales_by_merchant ON sales(merchant, id);
-- merchants a room's anchor lets sell in the room
CREATE TABLE IF NOT EXISTS room_merchants (
    room TEXT NOT NULL,
    merchant TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (room, merchant)
);
-- written and deleted to prove the database takes writes again after a failure
CREATE TABLE IF NOT EXISTS store_probe (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    pad BLOB
);
";

pub fn migrate(conn: &mut Connection, cfg: &StoreConfig) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        if cfg.synchronous_full {
            "FULL"
        } else {
            "NORMAL"
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let cache_kib = i64::try_from(cfg.cache_mb.saturating_mul(1024)).unwrap_or(i64::MAX);
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    if cfg.checkpoint_interval_ms > 0 {
        // Checkpoints run on their own thread (store::checkpoint), not in a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    }
    // After a checkpoint lets the WAL start over, its file is cut back to this size.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(SCHEMA)?;
    if table_sql(conn, "orders")?.is_some() {
        add_order_source(conn)?;
        cluster_orders(conn)?;
    }
    conn.execute_batch(&orders_table("orders"))?;
    if cfg.max_size_mb > 0 {
        // The budget is in pages; a write that needs more fails with SQLITE_FULL, as on
        // a full disk.
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let bytes = i64::try_from(cfg.max_size_mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX);
        let pages = (bytes / page_size.max(1)).max(1);
        conn.pragma_update(None, "max_page_count", pages)?;
    }
    Ok(())
}

/// The orders table, named `name`. Rows are clustered by order id (`<sale>-<seq>`), so
/// the orders of one flush land on a few neighbouring pages of the table and of its
/// by-sale index. That a `(sale, buyer, key)` is decided once is the inventory core's
/// rule (one writer per sale, its keys rebuilt from these rows on recovery), not an
/// index: a unique index over buyers and keys put every order on a page of its own.
fn orders_table(name: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (
            id TEXT PRIMARY KEY NOT NULL,
            seq INTEGER NOT NULL,
            sale_id TEXT NOT NULL REFERENCES sales(id),
            buyer TEXT NOT NULL,
            qty INTEGER NOT NULL,
            key TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            remaining_after INTEGER NOT NULL,
            -- 'live' or 'replay'; a replay order names its replay and chapter
            source TEXT NOT NULL DEFAULT 'live',
            replay_id INTEGER,
            chapter INTEGER
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS orders_by_sale ON {name}(sale_id, seq);"
    )
}

const ORDER_COLUMNS: &str = "id, seq, sale_id, buyer, qty, key, state, created_at, expires_at, \
                             updated_at, remaining_after, source, replay_id, chapter";

fn table_sql(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get(0),
    )
    .optional()
}

/// Databases made with orders in rowid order (and a unique index over buyers and keys)
/// get the clustered table, rows copied, in one transaction.
fn cluster_orders(conn: &mut Connection) -> rusqlite::Result<()> {
    let clustered = table_sql(conn, "orders")?.is_some_and(|sql| sql.contains("WITHOUT ROWID"));
    if clustered {
        return Ok(());
    }
    let tx = conn.transaction()?;
    // The old table's index has the new one's name; it goes with the old table.
    tx.execute_batch(&format!(
        "DROP INDEX IF EXISTS orders_by_sale;
         {create}
         INSERT INTO orders_clustered ({ORDER_COLUMNS}) SELECT {ORDER_COLUMNS} FROM orders;
         DROP TABLE orders;
         ALTER TABLE orders_clustered RENAME TO orders;",
        create = orders_table("orders_clustered")
    ))?;
    tx.commit()
}

/// Databases made before orders knew their source get the columns (every old order was
/// placed in the live room).
fn add_order_source(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('orders') WHERE name = 'source'")?
        .exists([])?;
    if !has {
        // One transaction: all three columns, or none (and the next start tries again).
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE orders ADD COLUMN source TEXT NOT NULL DEFAULT 'live';
             ALTER TABLE orders ADD COLUMN replay_id INTEGER;
             ALTER TABLE orders ADD COLUMN chapter INTEGER;
             COMMIT;",
        )?;
    }
    Ok(())
}

/// Writes (and deletes again) a row of a few pages: succeeds only if the database can
/// take a write that needs room, so a full disk or a full size budget fails it.
pub fn probe_write(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO store_probe (at, pad) VALUES (?1, zeroblob(16384))",
        [crate::clock::now_ms() as i64],
    )?;
    tx.execute("DELETE FROM store_probe", [])?;
    Ok(())
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
