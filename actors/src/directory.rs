//! The room directory: finds the actor of a room by id, starts rooms when their anchor
//! opens them, and spreads rooms over a pool of arbiters (threads) so one hot room never
//! blocks the others. It never creates a room because a viewer named an unknown id.

use std::time::Duration;

use actix::prelude::*;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use lockstep_protocol::RoomId;
use lockstep_runtime::ArbiterPool;

use crate::archive::{Archive, RunStarted};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::config::RoomConfig;
use crate::inventory::SaleDirectory;
use crate::media::RoomMedia;
use crate::metrics::Metrics;
use crate::room::{Durable, Room, RoomCore, RoomError};
use crate::sync::plain::{Arc, AtomicU64, OnceLock, Ordering};

/// Settings an anchor may give when opening a room.
#[derive(Debug, Clone, Default)]
pub struct RoomOptions {
    /// Defaults to the room id.
    pub title: Option<String>,
    /// Defaults to `room.allow_anonymous`.
    pub allow_anonymous: Option<bool>,
}

/// Maps room ids to running room actors.
pub struct RoomDirectory {
    rooms: DashMap<String, Addr<Room>>,
    pool: ArbiterPool,
    next_seed: AtomicU64,
    cfg: Arc<RoomConfig>,
    sales: Option<Arc<SaleDirectory>>,
    metrics: Metrics,
    max_rooms: usize,
    media: OnceLock<Arc<dyn RoomMedia>>,
    archive: OnceLock<Arc<dyn Archive>>,
    broker: Arc<dyn Broker>,
}

impl RoomDirectory {
    /// The rooms' settings.
    pub fn config(&self) -> &RoomConfig {
        &self.cfg
    }
}

impl std::fmt::Debug for RoomDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomDirectory")
            .field("rooms", &self.rooms.len())
            .finish()
    }
}

impl RoomDirectory {
    /// A directory starting rooms round-robin on `pool`, whose broadcasts go through
    /// `broker`.
    pub fn new(
        cfg: RoomConfig,
        pool: ArbiterPool,
        broker: Arc<dyn Broker>,
        sales: Option<Arc<SaleDirectory>>,
        metrics: Metrics,
        max_rooms: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            rooms: DashMap::new(),
            pool,
            next_seed: AtomicU64::new(now_ms()),
            cfg: Arc::new(cfg),
            sales,
            metrics,
            max_rooms,
            media: OnceLock::new(),
            archive: OnceLock::new(),
            broker,
        })
    }

    /// Gives rooms their video (set once, before rooms open).
    pub fn set_media(&self, media: Arc<dyn RoomMedia>) {
        let _ = self.media.set(media);
    }

    /// Where rooms started from now on hand their record (replay and analytics).
    pub fn set_archive(&self, archive: Arc<dyn Archive>) {
        let _ = self.archive.set(archive);
    }

    /// The running room with this id, if any.
    pub fn get(&self, id: &str) -> Option<Addr<Room>> {
        self.rooms
            .get(id)
            .map(|a| a.clone())
            .filter(|a| a.connected())
    }

    /// Opens a room for its anchor, or returns the one already running (whose settings
    /// stay as they are). The flag is true when this call created the room.
    pub fn open(
        self: &Arc<Self>,
        id: &RoomId,
        options: &RoomOptions,
    ) -> Result<(Addr<Room>, bool), RoomError> {
        let id = id.as_str();
        if let Some(addr) = self.get(id) {
            return Ok((addr, false));
        }
        if self.rooms.len() >= self.max_rooms {
            return Err(RoomError::TooManyRooms(self.max_rooms));
        }
        match self.rooms.entry(id.to_owned()) {
            Entry::Occupied(mut e) if !e.get().connected() => {
                let addr = self.start_room(id, options);
                e.insert(addr.clone());
                Ok((addr, true))
            }
            Entry::Occupied(e) => Ok((e.get().clone(), false)),
            Entry::Vacant(e) => {
                let addr = self.start_room(id, options);
                e.insert(addr.clone());
                Ok((addr, true))
            }
        }
    }

    /// Cluster mode: runs room `id`, which this node just took over, from the state its
    /// previous owner left (`None`: it left none; the room starts afresh). Replaces any
    /// stopped actor of the id.
    pub fn adopt(self: &Arc<Self>, id: &RoomId, durable: Option<Durable>) -> Addr<Room> {
        let seed = self.next_seed.fetch_add(1, Ordering::Relaxed);
        let core = match durable {
            Some(durable) => {
                RoomCore::from_durable(id.to_string(), self.cfg.clone(), now_ms(), seed, durable)
            }
            None => RoomCore::new(
                id.to_string(),
                id.to_string(),
                self.cfg.clone(),
                now_ms(),
                seed,
            ),
        };
        let addr = self.start_core(core);
        self.rooms.insert(id.to_string(), addr.clone());
        addr
    }

    fn start_room(self: &Arc<Self>, id: &str, options: &RoomOptions) -> Addr<Room> {
        let mut core = RoomCore::new(
            id.to_owned(),
            options.title.clone().unwrap_or_else(|| id.to_owned()),
            self.cfg.clone(),
            now_ms(),
            self.next_seed.fetch_add(1, Ordering::Relaxed),
        );
        if let Some(allowed) = options.allow_anonymous {
            core.set_allow_anonymous(allowed);
        }
        if let Some(archive) = self.archive.get() {
            archive.started(RunStarted {
                room: id.to_owned(),
                title: core.title().to_owned(),
                members_only: !core.allows_anonymous(),
                at: now_ms(),
            });
        }
        self.start_core(core)
    }

    fn start_core(self: &Arc<Self>, core: RoomCore) -> Addr<Room> {
        let arbiter = self.pool.next();
        let id = core.id().to_owned();
        let weak = Arc::downgrade(self);
        let metrics = self.metrics.clone();
        let sales = self.sales.clone();
        let media = self.media.get().cloned();
        let broker = self.broker.clone();
        let archive = self.archive.get().cloned();
        let tick = Duration::from_millis(self.cfg.tick_ms.max(1));
        tracing::info!(room = %id, "room opened");
        Room::start_in_arbiter(arbiter, move |_| {
            Room::new(core, weak, sales, media, broker, metrics, tick).with_archive(archive)
        })
    }

    /// Forgets a stopped room, unless the id already belongs to a newer actor.
    pub(crate) fn release(&self, id: &str, addr: &Addr<Room>) {
        if self
            .rooms
            .remove_if(id, |_, current| current == addr)
            .is_some()
        {
            tracing::info!(room = id, "room released");
        }
    }

    /// Number of rooms with a running actor.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}
