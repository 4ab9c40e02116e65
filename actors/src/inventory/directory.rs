//! The sale directory: finds the inventory actor of a sale by id. Sales are started when
//! created, at startup (every sale that can still change: not ended, or holding
//! reservations), or on demand when an ended sale that retired from memory is asked
//! about. They outlive their room's live show — orders are confirmed and cancelled after
//! it — so they are not stopped with it.

use actix::prelude::*;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use lockstep_protocol::LinkCard;
use lockstep_runtime::ArbiterPool;

use super::actor::{Inventory, Wiring};
use super::model::SaleSummary;
use super::sink::{Gate, ReplySink};
use crate::clock::now_ms;
use crate::config::SalesConfig;
use crate::directory::RoomDirectory;
use crate::metrics::Metrics;
use crate::store::{LoadedSale, NewSale, SaleRecord, Storage, StoreError, StoredSale};
use crate::sync::plain::{Arc, OnceLock, Weak};

/// What sessions and rooms need to reach a sale.
#[derive(Clone)]
pub struct SaleHandle {
    pub addr: Addr<Inventory>,
    pub room: String,
    pub merchant: String,
    /// The product card (reveal time and remaining filled in when the link drops).
    pub card: Arc<LinkCard>,
    gate: Arc<Gate>,
}

impl SaleHandle {
    /// Admits a request (see [`Gate::admit`]): `None` when the sale is busy, in which
    /// case `sink` was already answered `unavailable`.
    pub fn admit<T>(&self, sink: ReplySink<T>) -> Option<ReplySink<T>> {
        self.gate.admit(sink)
    }
}

/// Maps sale ids to running inventory actors.
pub struct SaleDirectory {
    sales: DashMap<String, SaleHandle>,
    pool: ArbiterPool,
    store: Arc<dyn Storage>,
    cfg: Arc<SalesConfig>,
    metrics: Metrics,
    rooms: OnceLock<Weak<RoomDirectory>>,
    epochs: OnceLock<Epochs>,
}

/// The epoch this node owns a room under, `None` when another node runs it (cluster
/// mode). A sale runs only on its room's owner, and every write carries the epoch so a
/// shared store can refuse a deposed owner's.
pub type Epochs = Arc<dyn Fn(&str) -> Option<u64> + Send + Sync>;

/// A sale just created: running here, or on the node that owns its room (then its
/// summary as stored).
pub enum Created {
    Running(SaleHandle),
    Elsewhere(SaleSummary),
}

impl std::fmt::Debug for SaleDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaleDirectory")
            .field("sales", &self.sales.len())
            .finish()
    }
}

impl SaleDirectory {
    pub fn new(
        pool: ArbiterPool,
        store: Arc<dyn Storage>,
        cfg: SalesConfig,
        metrics: Metrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            sales: DashMap::new(),
            pool,
            store,
            cfg: Arc::new(cfg),
            metrics,
            rooms: OnceLock::new(),
            epochs: OnceLock::new(),
        })
    }

    /// Where sales send their stock updates (set once, before any sale starts).
    pub fn set_rooms(&self, rooms: &Arc<RoomDirectory>) {
        let _ = self.rooms.set(Arc::downgrade(rooms));
    }

    /// Where sales learn their room's ownership epoch (cluster mode; set once, before any
    /// sale starts). Without it every write carries epoch 0.
    pub fn set_epochs(&self, epochs: Epochs) {
        let _ = self.epochs.set(epochs);
    }

    /// The sale's running actor, if it is loaded.
    pub fn get(&self, sale_id: &str) -> Option<SaleHandle> {
        self.sales.get(sale_id).map(|h| h.clone())
    }

    /// The sale's actor, loading the sale from the database if it retired from memory.
    /// `None` when no such sale exists.
    pub async fn get_or_load(
        self: &Arc<Self>,
        sale_id: &str,
    ) -> Result<Option<SaleHandle>, StoreError> {
        if let Some(handle) = self.get(sale_id) {
            return Ok(Some(handle));
        }
        let Some(loaded) = self.store.load_sale(sale_id.to_owned()).await? else {
            return Ok(None);
        };
        self.run_here(loaded).await.map(Some)
    }

    /// Starts a loaded sale's actor on this node. In a cluster only the owner of the
    /// sale's room runs it, and only after fencing off any older owner and loading the
    /// sale again as it stands after the fence.
    async fn run_here(
        self: &Arc<Self>,
        (sale, card): LoadedSale,
    ) -> Result<SaleHandle, StoreError> {
        let Some(epochs) = self.epochs.get() else {
            return Ok(self.start(sale, card));
        };
        let epoch = epochs(&sale.room).ok_or_else(|| StoreError::NotHere(sale.room.clone()))?;
        let id = sale.rules.sale_id.clone();
        self.store.fence(id.clone(), epoch).await?;
        let (sale, card) = self
            .store
            .load_sale(id)
            .await?
            .ok_or(crate::store::CatalogError::Vanished("sale"))?;
        Ok(self.start(sale, card))
    }

    /// Creates a sale for `merchant` — its allotment leaves the SKU's free stock in the
    /// same transaction — and starts its actor.
    pub async fn create(
        self: &Arc<Self>,
        merchant: String,
        new: NewSale,
    ) -> Result<(SaleRecord, Created), StoreError> {
        let (record, loaded) = self.store.create_sale(merchant, new, now_ms()).await?;
        let summary = Inventory::core_of(&loaded.0, &self.cfg).summary();
        let created = match self.run_here(loaded).await {
            Ok(handle) => Created::Running(handle),
            Err(StoreError::NotHere(_)) => Created::Elsewhere(summary),
            Err(e) => return Err(e),
        };
        Ok((record, created))
    }

    /// A sale's summary as stored, for a node that does not run it.
    pub async fn stored_summary(&self, sale_id: &str) -> Result<Option<SaleSummary>, StoreError> {
        let loaded = self.store.load_sale(sale_id.to_owned()).await?;
        Ok(loaded.map(|(sale, _)| Inventory::core_of(&sale, &self.cfg).summary()))
    }

    /// Starts every sale that can still change (not ended, or holding reservations), at
    /// startup; ended ones load on demand. Returns how many started.
    pub async fn restore(self: &Arc<Self>) -> Result<usize, StoreError> {
        let stored = self.store.live_sales().await?;
        let count = stored.len();
        for (sale, card) in stored {
            self.start(sale, card);
        }
        Ok(count)
    }

    /// Cluster mode: starts every sale of `room` that can still change and is not running
    /// here yet, once this node runs the room (it opened or took it over). Returns how
    /// many started.
    pub async fn run_room(self: &Arc<Self>, room: &str) -> Result<usize, StoreError> {
        let mut started = 0;
        for (sale, card) in self.store.live_sales().await? {
            if sale.room == room && self.get(&sale.rules.sale_id).is_none() {
                self.run_here((sale, card)).await?;
                started += 1;
            }
        }
        Ok(started)
    }

    /// Stops every loaded sale of `room` here (cluster mode: another node owns it now).
    pub fn retire_room(&self, room: &str) {
        for sale in self.in_room(room) {
            sale.addr.do_send(super::actor::Retire);
        }
    }

    /// Every loaded sale of a room, oldest id first.
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

    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// Starts the inventory actor of a stored sale (new, restored or loaded on demand)
    /// and registers it; if another caller started it first, that one is returned.
    pub fn start(self: &Arc<Self>, sale: StoredSale, card: LinkCard) -> SaleHandle {
        let id = sale.rules.sale_id.clone();
        match self.sales.entry(id) {
            Entry::Occupied(e) if e.get().addr.connected() => e.get().clone(),
            Entry::Occupied(mut e) => {
                let handle = self.spawn(sale, card);
                e.insert(handle.clone());
                handle
            }
            Entry::Vacant(e) => e.insert(self.spawn(sale, card)).clone(),
        }
    }

    fn spawn(self: &Arc<Self>, sale: StoredSale, card: LinkCard) -> SaleHandle {
        let arbiter = self.pool.next();
        let core = Inventory::core_of(&sale, &self.cfg);
        let wiring = Wiring {
            cfg: self.cfg.clone(),
            store: self.store.clone(),
            rooms: self.rooms.get().cloned().unwrap_or_default(),
            sales: Arc::downgrade(self),
            metrics: self.metrics.clone(),
            room_id: sale.room.clone(),
            epochs: self.epochs.get().cloned(),
        };
        let addr = Inventory::start_in_arbiter(arbiter, move |_| Inventory::new(core, wiring));
        SaleHandle {
            addr,
            room: sale.room,
            merchant: sale.merchant,
            card: Arc::new(card),
            gate: Gate::new(
                self.cfg.max_pending_requests,
                self.metrics.sale_pending.clone(),
            ),
        }
    }

    /// Forgets a stopped sale's actor, unless the id already belongs to a newer one.
    pub(super) fn forget(&self, sale_id: &str, addr: &Addr<Inventory>) {
        self.sales.remove_if(sale_id, |_, h| &h.addr == addr);
    }

    /// Sales with a loaded actor.
    pub fn len(&self) -> usize {
        self.sales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sales.is_empty()
    }
}
