//! Opening a database made by an earlier version: orders kept in rowid order, with a
//! unique index over buyers and keys and without the source columns, come back whole
//! in the clustered table.

use rusqlite::{Connection, params};

use super::{SCHEMA, migrate, table_sql};
use crate::config::StoreConfig;
use crate::store::sales::load_sale;

/// The orders table as the first versions made it.
const ROWID_ORDERS: &str = "
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
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
    UNIQUE (sale_id, buyer, key)
);
CREATE INDEX orders_by_sale ON orders(sale_id, seq);";

fn old_database() -> Connection {
    let conn = Connection::open(crate::store::tests::scratch_db()).unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(ROWID_ORDERS).unwrap();
    conn.execute(
        "INSERT INTO sales (id, merchant, room, product_id, sku_id, allotted, price_cents,
                            per_buyer_limit, reservation_ttl_ms, fair_window_ms, phase, reveal_at, seed, created_at)
         VALUES ('s1', 'm', 'r', 'p', 'k', 10, 100, 2, 60000, 0, 'open', 1, 7, 0)",
        [],
    )
    .unwrap();
    for seq in 1..=12u32 {
        conn.execute(
            "INSERT INTO orders (id, seq, sale_id, buyer, qty, key, state, created_at,
                                 expires_at, updated_at, remaining_after)
             VALUES (?1, ?2, 's1', ?3, 1, ?4, 'reserved', 0, 60000, 0, ?5)",
            params![
                format!("s1-{seq}"),
                seq,
                format!("b{}", seq % 5),
                format!("k{seq}"),
                12 - seq
            ],
        )
        .unwrap();
    }
    conn
}

#[test]
fn orders_of_an_old_database_come_back_whole_and_clustered() {
    let mut conn = old_database();
    migrate(&mut conn, &StoreConfig::default()).unwrap();
    let sql = table_sql(&conn, "orders").unwrap().unwrap();
    assert!(sql.contains("WITHOUT ROWID"), "{sql}");
    let tx = conn.transaction().unwrap();
    let sale = load_sale(&tx, "s1").unwrap().unwrap();
    let seqs: Vec<u64> = sale.orders.iter().map(|o| o.seq).collect();
    assert_eq!(
        seqs,
        (1..=12).collect::<Vec<_>>(),
        "every order, in sale order"
    );
    let tenth = &sale.orders[9];
    assert_eq!(
        (tenth.id.as_str(), tenth.buyer.as_str(), tenth.key.as_str()),
        ("s1-10", "b0", "k10")
    );
    assert!(
        sale.orders
            .iter()
            .all(|o| o.remaining_after == 12 - o.seq as u32)
    );
    assert_eq!(
        sale.orders[0].source,
        Default::default(),
        "old orders were live"
    );
    tx.commit().unwrap();

    // Opening it again changes nothing, and the by-sale index is there.
    migrate(&mut conn, &StoreConfig::default()).unwrap();
    let count: i64 = conn
        .query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 12);
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(indexes.iter().any(|i| i == "orders_by_sale"), "{indexes:?}");
}
