//! The shared store of a cluster: the same [`Storage`] the single process keeps in
//! SQLite, kept in the Redis the nodes share, so whichever node runs a room can load its
//! sales and every node's merchant API sees one catalogue. Layout in `keys.rs`.

mod catalog;
mod keys;
mod sales;
mod writer;

use crate::conn::RedisConn;
use lockstep_actors::inventory::model::Order;
use lockstep_actors::store::{
    Grant, LoadedSale, NewProduct, NewSale, OrderFilter, Product, SaleRecord, SaleWrites, Sku,
    StockChange, Storage, StoreError, StoreFuture, StoredSale,
};

fn unreachable(e: redis::RedisError) -> StoreError {
    StoreError::Unreachable(e.to_string())
}

/// The catalogue, grants, sales and orders in Redis.
#[derive(Clone)]
pub struct RedisStorage {
    conn: RedisConn,
    /// Replicas that must have a sale write before it counts as durable.
    replicas: u32,
    /// Each sale's writes in order; the sales whose last write failed (their later writes
    /// are refused until rebuilt).
    writers: writer::Writers,
}

impl RedisStorage {
    pub fn new(conn: RedisConn, replicas: u32) -> Self {
        Self {
            conn,
            replicas,
            writers: writer::Writers::default(),
        }
    }
}

impl RedisStorage {
    /// A connection to the shared Redis.
    pub(crate) fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// Every order of a sale and its price in cents (0 when the sale is unknown), for
    /// the replay's numbers.
    pub async fn orders_and_price(&self, sale: &str) -> Result<(Vec<Order>, u64), StoreError> {
        let mut conn = self.conn.clone();
        let price = catalog::sale_doc(&mut conn, sale)
            .await?
            .map_or(0, |doc| doc.record.price_cents);
        Ok((sales::orders(&mut conn, sale).await?, price))
    }
}

impl Storage for RedisStorage {
    fn create_product(&self, merchant: String, new: NewProduct, now: u64) -> StoreFuture<Product> {
        let mut conn = self.conn.clone();
        Box::pin(async move { catalog::create_product(&mut conn, merchant, new, now).await })
    }

    fn list_products(&self, merchant: String) -> StoreFuture<Vec<Product>> {
        let mut conn = self.conn.clone();
        Box::pin(async move { catalog::list_products(&mut conn, &merchant).await })
    }

    fn get_product(&self, merchant: String, id: String) -> StoreFuture<Option<Product>> {
        let mut conn = self.conn.clone();
        Box::pin(async move { catalog::get_product(&mut conn, &merchant, &id).await })
    }

    fn get_sku(&self, merchant: String, id: String) -> StoreFuture<Sku> {
        let mut conn = self.conn.clone();
        Box::pin(async move { catalog::get_sku(&mut conn, &merchant, &id).await })
    }

    fn change_stock(
        &self,
        merchant: String,
        sku: String,
        change: StockChange,
        now: u64,
    ) -> StoreFuture<Sku> {
        let mut conn = self.conn.clone();
        Box::pin(
            async move { catalog::change_stock(&mut conn, &merchant, &sku, &change, now).await },
        )
    }

    fn create_sale(
        &self,
        merchant: String,
        new: NewSale,
        now: u64,
    ) -> StoreFuture<(SaleRecord, LoadedSale)> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let record = catalog::create_sale(&mut conn, &merchant, &new, now).await?;
            let loaded = sales::load(&mut conn, &record.id)
                .await?
                .ok_or(lockstep_actors::store::CatalogError::Vanished("sale"))?;
            Ok((record, loaded))
        })
    }

    fn get_sale(&self, merchant: String, id: String) -> StoreFuture<Option<SaleRecord>> {
        let mut conn = self.conn.clone();
        Box::pin(async move { sales::record(&mut conn, &merchant, &id).await })
    }

    fn list_orders(&self, merchant: String, filter: OrderFilter) -> StoreFuture<Vec<Order>> {
        let mut conn = self.conn.clone();
        Box::pin(async move { sales::list_orders(&mut conn, &merchant, &filter).await })
    }

    fn get_order(&self, merchant: String, id: String) -> StoreFuture<Option<Order>> {
        let mut conn = self.conn.clone();
        Box::pin(async move { sales::get_order(&mut conn, &merchant, &id).await })
    }

    fn grant(&self, room: String, merchant: String, now: u64) -> StoreFuture<Grant> {
        let mut conn = self.conn.clone();
        Box::pin(async move { catalog::grant(&mut conn, &room, &merchant, now).await })
    }

    fn revoke(&self, room: String, merchant: String) -> StoreFuture<bool> {
        let mut conn = self.conn.clone();
        Box::pin(async move { catalog::revoke(&mut conn, &room, &merchant).await })
    }

    fn grants(&self, room: String) -> StoreFuture<Vec<Grant>> {
        let mut conn = self.conn.clone();
        Box::pin(async move { catalog::grants(&mut conn, &room).await })
    }

    fn load_sale(&self, id: String) -> StoreFuture<Option<LoadedSale>> {
        let mut conn = self.conn.clone();
        Box::pin(async move { sales::load(&mut conn, &id).await })
    }

    fn live_sales(&self) -> StoreFuture<Vec<LoadedSale>> {
        let mut conn = self.conn.clone();
        Box::pin(async move { sales::live(&mut conn).await })
    }

    fn write(&self, writes: SaleWrites) -> StoreFuture<()> {
        let answered = self.writers.write(&self.conn, self.replicas, writes);
        Box::pin(async move { answered.await.unwrap_or(Err(StoreError::Stopped)) })
    }

    fn recover(&self, id: String) -> StoreFuture<Option<StoredSale>> {
        let mut conn = self.conn.clone();
        let this = self.clone();
        Box::pin(async move {
            // Proves Redis answers before the sale is rebuilt from it.
            let _: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(unreachable)?;
            let loaded = sales::load(&mut conn, &id).await?;
            this.writers.failing().remove(&id);
            Ok(loaded.map(|(sale, _)| sale))
        })
    }

    fn failing_sales(&self) -> Vec<String> {
        self.writers.failing().iter().cloned().collect()
    }

    fn is_running(&self) -> bool {
        true
    }

    fn fence(&self, sale: String, epoch: u64) -> StoreFuture<()> {
        let mut conn = self.conn.clone();
        Box::pin(async move { sales::fence(&mut conn, &sale, epoch).await })
    }
}
