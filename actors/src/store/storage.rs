//! The durable record as the rest of the server uses it — the catalogue behind the
//! merchant API, who may sell where, the sales and their orders — whatever keeps it. One
//! process keeps it in SQLite ([`Store`]); a cluster in the Redis its nodes share
//! (`lockstep-cluster`). Every operation is one atomic step of the backend.

use std::future::Future;
use std::pin::Pin;

use lockstep_protocol::LinkCard;

use super::{
    CatalogError, Grant, NewProduct, NewSale, OrderFilter, Product, SaleRecord, SaleWrites, Sku,
    StockChange, Store, StoreError, StoredSale,
};
use crate::inventory::model::Order;

/// What every storage operation returns.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>;

/// A stored sale ready to run: its state and orders, and the product card viewers see.
pub type LoadedSale = (StoredSale, LinkCard);

/// The durable record.
pub trait Storage: Send + Sync + 'static {
    fn create_product(&self, merchant: String, new: NewProduct, now: u64) -> StoreFuture<Product>;
    fn list_products(&self, merchant: String) -> StoreFuture<Vec<Product>>;
    fn get_product(&self, merchant: String, id: String) -> StoreFuture<Option<Product>>;
    fn get_sku(&self, merchant: String, id: String) -> StoreFuture<Sku>;
    fn change_stock(
        &self,
        merchant: String,
        sku: String,
        change: StockChange,
        now: u64,
    ) -> StoreFuture<Sku>;
    /// Creates a sale, its allotment taken from the SKU's free stock in the same step;
    /// returns it as recorded and ready to run.
    fn create_sale(
        &self,
        merchant: String,
        new: NewSale,
        now: u64,
    ) -> StoreFuture<(SaleRecord, LoadedSale)>;
    fn get_sale(&self, merchant: String, id: String) -> StoreFuture<Option<SaleRecord>>;
    fn list_orders(&self, merchant: String, filter: OrderFilter) -> StoreFuture<Vec<Order>>;
    fn get_order(&self, merchant: String, id: String) -> StoreFuture<Option<Order>>;
    fn grant(&self, room: String, merchant: String, now: u64) -> StoreFuture<Grant>;
    /// `false` when there was no grant.
    fn revoke(&self, room: String, merchant: String) -> StoreFuture<bool>;
    fn grants(&self, room: String) -> StoreFuture<Vec<Grant>>;
    /// One sale, to run it (`None`: no such sale).
    fn load_sale(&self, id: String) -> StoreFuture<Option<LoadedSale>>;
    /// Every sale that can still change (not ended, or holding reservations).
    fn live_sales(&self) -> StoreFuture<Vec<LoadedSale>>;
    /// Makes one flush of a sale durable; resolves once it is.
    fn write(&self, writes: SaleWrites) -> StoreFuture<()>;
    /// After a failed write: proves the backend takes writes again, then loads the sale.
    fn recover(&self, id: String) -> StoreFuture<Option<StoredSale>>;
    /// Sales whose last write failed and that have not been rebuilt (for `/readyz`).
    fn failing_sales(&self) -> Vec<String>;
    /// Whether the backend can still be used at all.
    fn is_running(&self) -> bool;

    /// From now on only writes of `epoch` or newer are taken for the sale (cluster mode:
    /// a new owner fences off the old before it loads the sale). One process has one
    /// writer: nothing to do.
    fn fence(&self, _sale: String, _epoch: u64) -> StoreFuture<()> {
        Box::pin(async { Ok(()) })
    }

    /// Makes the backend fail as a crashed store would (test hook).
    #[cfg(feature = "test-hooks")]
    fn panic_for_test(&self) -> StoreFuture<()> {
        Box::pin(async { Ok(()) })
    }
}

impl Storage for Store {
    fn create_product(&self, merchant: String, new: NewProduct, now: u64) -> StoreFuture<Product> {
        let store = self.clone();
        Box::pin(async move {
            store
                .call(move |tx| super::create_product(tx, &merchant, new, now))
                .await
        })
    }

    fn list_products(&self, merchant: String) -> StoreFuture<Vec<Product>> {
        let store = self.clone();
        Box::pin(async move {
            store
                .call(move |tx| super::list_products(tx, &merchant))
                .await
        })
    }

    fn get_product(&self, merchant: String, id: String) -> StoreFuture<Option<Product>> {
        let store = self.clone();
        Box::pin(async move {
            store
                .call(move |tx| super::get_product(tx, &merchant, &id))
                .await
        })
    }

    fn get_sku(&self, merchant: String, id: String) -> StoreFuture<Sku> {
        let store = self.clone();
        Box::pin(async move {
            store
                .call(move |tx| super::get_sku(tx, &merchant, &id))
                .await
        })
    }

    fn change_stock(
        &self,
        merchant: String,
        sku: String,
        change: StockChange,
        now: u64,
    ) -> StoreFuture<Sku> {
        let store = self.clone();
        Box::pin(async move {
            store
                .call(move |tx| super::change_stock(tx, &merchant, &sku, &change, now))
                .await
        })
    }

    fn create_sale(
        &self,
        merchant: String,
        new: NewSale,
        now: u64,
    ) -> StoreFuture<(SaleRecord, LoadedSale)> {
        let store = self.clone();
        Box::pin(async move {
            store
                .call(move |tx| {
                    let record = super::create_sale(tx, &merchant, &new, now)?;
                    let loaded = load(tx, &record.id)?.ok_or(CatalogError::Vanished("sale"))?;
                    Ok((record, loaded))
                })
                .await
        })
    }

    fn get_sale(&self, merchant: String, id: String) -> StoreFuture<Option<SaleRecord>> {
        let store = self.clone();
        Box::pin(async move {
            store
                .call(move |tx| super::get_sale(tx, &merchant, &id))
                .await
        })
    }

    fn list_orders(&self, merchant: String, filter: OrderFilter) -> StoreFuture<Vec<Order>> {
        let store = self.clone();
        Box::pin(async move {
            store
                .call(move |tx| super::list_orders(tx, &merchant, &filter))
                .await
        })
    }

    fn get_order(&self, merchant: String, id: String) -> StoreFuture<Option<Order>> {
        let store = self.clone();
        Box::pin(async move {
            store
                .call(move |tx| super::get_order(tx, &merchant, &id))
                .await
        })
    }

    fn grant(&self, room: String, merchant: String, now: u64) -> StoreFuture<Grant> {
        let store = self.clone();
        Box::pin(async move {
            store
                .call(move |tx| super::grant_merchant(tx, &room, &merchant, now))
                .await
        })
    }

    fn revoke(&self, room: String, merchant: String) -> StoreFuture<bool> {
        let store = self.clone();
        Box::pin(async move {
            store
                .call(move |tx| super::revoke_merchant(tx, &room, &merchant))
                .await
        })
    }

    fn grants(&self, room: String) -> StoreFuture<Vec<Grant>> {
        let store = self.clone();
        Box::pin(async move { store.call(move |tx| super::list_grants(tx, &room)).await })
    }

    fn load_sale(&self, id: String) -> StoreFuture<Option<LoadedSale>> {
        let store = self.clone();
        Box::pin(async move { store.call(move |tx| load(tx, &id)).await })
    }

    fn live_sales(&self) -> StoreFuture<Vec<LoadedSale>> {
        let store = self.clone();
        Box::pin(async move {
            store
                .call(|tx| {
                    let mut out = Vec::new();
                    for id in super::live_sale_ids(tx)? {
                        out.extend(load(tx, &id)?);
                    }
                    Ok(out)
                })
                .await
        })
    }

    fn write(&self, writes: SaleWrites) -> StoreFuture<()> {
        Box::pin(Store::write(self, writes))
    }

    fn recover(&self, id: String) -> StoreFuture<Option<StoredSale>> {
        let store = self.clone();
        Box::pin(async move { Store::recover(&store, &id).await })
    }

    fn failing_sales(&self) -> Vec<String> {
        Store::failing_sales(self)
    }

    fn is_running(&self) -> bool {
        Store::is_running(self)
    }

    #[cfg(feature = "test-hooks")]
    fn panic_for_test(&self) -> StoreFuture<()> {
        let store = self.clone();
        Box::pin(async move {
            Store::panic_for_test(&store).await;
            Ok(())
        })
    }
}

/// A stored sale and its product card, read in one transaction.
fn load(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<Option<LoadedSale>, StoreError> {
    match super::load_sale(tx, id)? {
        Some(sale) => Ok(super::link_card(tx, id)?.map(|card| (sale, card))),
        None => Ok(None),
    }
}
