//! The sale directory: finds the inventory actor of a sale by id. Sales are registered
//! when created or, at startup, rebuilt from the store. They outlive their room's live
//! show — orders are confirmed and cancelled after it — so they are not stopped with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::prelude::*;
use dashmap::DashMap;
use lockstep_protocol::LinkCard;

use super::actor::Inventory;
use super::core::InventoryCore;
use crate::directory::RoomDirectory;
use crate::store::{Store, StoredSale};

/// What sessions and rooms need to reach a sale.
#[derive(Clone)]
pub struct SaleHandle {
    pub addr: Addr<Inventory>,
    pub room: String,
    pub merchant: String,
    /// The product card (reveal time and remaining filled in when the link drops).
    pub card: Arc<LinkCard>,
}

/// Maps sale ids to running inventory actors.
pub struct SaleDirectory {
    sales: DashMap<String, SaleHandle>,
    pool: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    store: Store,
}

impl std::fmt::Debug for SaleDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaleDirectory")
            .field("sales", &self.sales.len())
            .finish()
    }
}

impl SaleDirectory {
    pub fn new(pool: Vec<ArbiterHandle>, store: Store) -> Arc<Self> {
        assert!(
            !pool.is_empty(),
            "the sale directory needs at least one arbiter"
        );
        Arc::new(Self {
            sales: DashMap::new(),
            pool,
            next_arbiter: AtomicUsize::new(0),
            store,
        })
    }

    pub fn get(&self, sale_id: &str) -> Option<SaleHandle> {
        self.sales.get(sale_id).map(|h| h.clone())
    }

    /// Every running sale of a room, oldest id first.
    pub fn in_room(&self, room: &str) -> Vec<SaleHandle> {
        let mut sales: Vec<SaleHandle> = self
            .sales
            .iter()
            .filter(|h| h.room == room)
            .map(|h| h.clone())
            .collect();
        sales.sort_by(|a, b| a.card.sale_id.cmp(&b.card.sale_id));
        sales
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Starts the inventory actor of a stored sale (new or restored) and registers it.
    pub fn start(
        &self,
        sale: StoredSale,
        card: LinkCard,
        rooms: &Arc<RoomDirectory>,
    ) -> SaleHandle {
        let arbiter =
            &self.pool[self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.pool.len()];
        let core =
            InventoryCore::restore(sale.rules.clone(), sale.phase, sale.released, sale.orders);
        let (store, weak, room) = (self.store.clone(), Arc::downgrade(rooms), sale.room.clone());
        let addr =
            Inventory::start_in_arbiter(arbiter, move |_| Inventory::new(core, store, weak, room));
        let handle = SaleHandle {
            addr,
            room: sale.room,
            merchant: sale.merchant,
            card: Arc::new(card),
        };
        self.sales.insert(sale.rules.sale_id, handle.clone());
        handle
    }

    pub fn len(&self) -> usize {
        self.sales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sales.is_empty()
    }
}
