//! The media directory: the media room of each room id, started on the arbiter pool
//! when its anchor first publishes, stopped when the room ends. It is the SFU's one
//! entry point for the HTTP (WHIP/WHEP) and WebSocket layers.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use dashmap::DashMap;
use lockstep_runtime::ArbiterPool;

use crate::admission::Admission;
use crate::clock::FrameMark;
use crate::config::MediaConfig;
use crate::layers::Preference;
use crate::metrics::MediaMetrics;
use crate::record::RecordingHealth;
use crate::room::{
    Caller, ChangeLayer, CloseUplink, FinishPull, LiveHook, MediaRoom, OpenUplink, Publish,
    PullFailed, PullHooks, Shutdown, StartPull, Subscribe, Unpublish, Unsubscribe, Uplinked,
    UserBanned, WhenLive,
};
use crate::uplink::UplinkAnswer;
use crate::{MediaError, MediaId};

struct Entry {
    addr: Addr<MediaRoom>,
    latest_frame: Arc<Mutex<Option<FrameMark>>>,
}

/// Every room's media, by room id.
pub struct MediaDirectory {
    cfg: Arc<MediaConfig>,
    pool: ArbiterPool,
    rooms: DashMap<String, Entry>,
    metrics: MediaMetrics,
    on_live: LiveHook,
    admission: Arc<Admission>,
    recording: Arc<RecordingHealth>,
    pull_hooks: std::sync::OnceLock<PullHooks>,
}

impl std::fmt::Debug for MediaDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaDirectory")
            .field("rooms", &self.rooms.len())
            .finish()
    }
}

impl MediaDirectory {
    /// `on_live(room, live)` is called whenever a room's stream goes live or away.
    pub fn new(
        cfg: MediaConfig,
        pool: ArbiterPool,
        metrics: MediaMetrics,
        on_live: LiveHook,
    ) -> Arc<Self> {
        let admission = Admission::new(cfg.max_subscribers_total, cfg.max_subscribers_per_ip);
        Arc::new(Self {
            admission,
            cfg: Arc::new(cfg),
            pool,
            rooms: DashMap::new(),
            metrics,
            on_live,
            recording: Arc::new(RecordingHealth::default()),
            pull_hooks: std::sync::OnceLock::new(),
        })
    }

    /// Cluster mode: what to do when this node stops pulling a room's stream, or its
    /// pull breaks while it has viewers (set once, at start).
    pub fn on_pulls(&self, hooks: PullHooks) {
        let _ = self.pull_hooks.set(hooks);
    }

    /// Recordings in progress and those that stopped early.
    pub fn recording(&self) -> &Arc<RecordingHealth> {
        &self.recording
    }

    /// Applies recording retention (`media.recording_max_age_hours`,
    /// `media.recording_max_total_mb`) now; returns the recordings deleted.
    pub fn enforce_retention(&self, now: u64) -> Vec<std::path::PathBuf> {
        crate::record::meta::enforce_retention(
            std::path::Path::new(&self.cfg.recording_dir),
            self.cfg.recording_max_age_hours * 3_600_000,
            self.cfg.recording_max_total_mb * 1024 * 1024,
            now,
            &self.recording.active(),
        )
    }

    pub fn config(&self) -> &MediaConfig {
        &self.cfg
    }

    fn room(&self, room: &str) -> Option<Addr<MediaRoom>> {
        self.rooms
            .get(room)
            .map(|e| e.addr.clone())
            .filter(|a| a.connected())
    }

    fn room_or_start(&self, room: &str) -> Addr<MediaRoom> {
        if let Some(addr) = self.room(room) {
            return addr;
        }
        let mut entry = self
            .rooms
            .entry(room.to_owned())
            .or_insert_with(|| self.start(room));
        if !entry.addr.connected() {
            *entry = self.start(room);
        }
        entry.addr.clone()
    }

    fn start(&self, room: &str) -> Entry {
        let latest_frame = Arc::new(Mutex::new(None));
        let hook = self.on_live.clone();
        let (id, cfg, metrics, frames) = (
            room.to_owned(),
            self.cfg.clone(),
            self.metrics.clone(),
            latest_frame.clone(),
        );
        let pool = self.pool.clone();
        let admission = self.admission.clone();
        let recording = self.recording.clone();
        let pull_hooks = self.pull_hooks.get().cloned();
        let addr = MediaRoom::start_in_arbiter(self.pool.next(), move |_| {
            MediaRoom::new(id, cfg, pool, metrics, hook, frames, admission)
                .with_recording(recording)
                .with_pull_hooks(pull_hooks)
        });
        Entry { addr, latest_frame }
    }

    /// The latest frame of the room's stream (reference layer), if it is live.
    pub fn latest_frame(&self, room: &str) -> Option<FrameMark> {
        let entry = self.rooms.get(room)?;
        *entry.latest_frame.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Video subscribers admitted across every room (negotiating ones included).
    pub fn subscribers(&self) -> usize {
        self.admission.total()
    }

    /// The anchor publishes (WHIP): returns the session id and the SDP answer.
    pub async fn publish(
        &self,
        room: &str,
        offer: String,
    ) -> Result<(MediaId, String), MediaError> {
        if !self.cfg.enabled {
            return Err(MediaError::Disabled);
        }
        let addr = self.room_or_start(room);
        addr.send(Publish { offer })
            .await
            .map_err(|_| MediaError::Stopped("media room"))?
    }

    /// Ends the anchor's WHIP session.
    pub async fn unpublish(&self, room: &str, publisher: MediaId) -> Result<(), MediaError> {
        let addr = self.room(room).ok_or(MediaError::NoPublisher)?;
        addr.send(Unpublish { publisher })
            .await
            .map_err(|_| MediaError::Stopped("media room"))?
    }

    /// A viewer subscribes: returns the subscriber id and the SDP answer. `owner` is the
    /// viewer's user id (`None` for a guest), `source` its address for the per-address
    /// limit (`None` when exempt).
    pub async fn subscribe(
        &self,
        room: &str,
        offer: String,
        preference: Preference,
        owner: Option<String>,
        source: Option<IpAddr>,
    ) -> Result<(MediaId, String), MediaError> {
        if !self.cfg.enabled {
            return Err(MediaError::NotStreaming);
        }
        let addr = self.room(room).ok_or(MediaError::NotStreaming)?;
        addr.send(Subscribe {
            offer,
            preference,
            owner,
            source,
        })
        .await
        .map_err(|_| MediaError::Stopped("media room"))?
    }

    /// A subscriber leaves, if `caller` may end it.
    pub async fn unsubscribe(
        &self,
        room: &str,
        id: MediaId,
        caller: Caller,
    ) -> Result<(), MediaError> {
        let addr = self.room(room).ok_or(MediaError::NoSubscriber)?;
        addr.send(Unsubscribe { id, caller })
            .await
            .map_err(|_| MediaError::Stopped("media room"))?
    }

    /// The server ends a subscription (its socket closed), without waiting.
    pub fn unsubscribe_later(&self, room: &str, id: MediaId) {
        if let Some(addr) = self.room(room) {
            addr.do_send(Unsubscribe {
                id,
                caller: Caller::Server,
            });
        }
    }

    /// A user was banned from `room`: their subscriptions end.
    pub fn user_banned(&self, room: &str, user: &str) {
        if let Some(addr) = self.room(room) {
            addr.do_send(UserBanned {
                user: user.to_owned(),
            });
        }
    }

    /// Changes a subscriber's layer preference. False when there is no such subscriber.
    pub async fn change_layer(&self, room: &str, id: MediaId, preference: Preference) -> bool {
        match self.room(room) {
            Some(addr) => addr
                .send(ChangeLayer { id, preference })
                .await
                .unwrap_or(false),
            None => false,
        }
    }

    /// Cluster mode, on the node that owns `room`: an edge node pulls its stream.
    pub async fn open_uplink(&self, room: &str, offer: String) -> Result<UplinkAnswer, MediaError> {
        let addr = self.room(room).ok_or(MediaError::NotStreaming)?;
        addr.send(OpenUplink { offer })
            .await
            .map_err(|_| MediaError::Stopped("media room"))?
    }

    /// Ends an edge's uplink of `room` (the edge stopped pulling).
    pub fn close_uplink(&self, room: &str, id: MediaId) {
        if let Some(addr) = self.room(room) {
            addr.do_send(CloseUplink { id });
        }
    }

    /// Edge nodes pulling `room`'s stream from this node.
    pub async fn uplinks(&self, room: &str) -> usize {
        match self.room(room) {
            Some(addr) => addr.send(Uplinked).await.unwrap_or(0),
            None => 0,
        }
    }

    /// Cluster mode, on an edge node: makes sure `room`'s stream is pulled here from the
    /// node that owns it, once whatever the number of subscribers; `owner` carries the
    /// pull's offer there and brings back the answer. Returns once the stream is live
    /// here (or `media.connect_timeout_ms` passed).
    pub async fn ensure_pulled<F, Fut>(&self, room: &str, owner: F) -> Result<(), MediaError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<UplinkAnswer, MediaError>>,
    {
        if !self.cfg.enabled {
            return Err(MediaError::NotStreaming);
        }
        let addr = self.room_or_start(room);
        let stopped = |_| MediaError::Stopped("media room");
        if let Some((id, offer)) = addr.send(StartPull).await.map_err(stopped)?? {
            match owner(offer).await {
                Ok(answer) => {
                    let finished = addr
                        .send(FinishPull {
                            id,
                            uplink: answer.id,
                            sdp: answer.sdp,
                            layers: answer.layers,
                            audio: answer.audio_ssrc.is_some(),
                        })
                        .await
                        .map_err(stopped)?;
                    if let Err(e) = finished {
                        addr.do_send(PullFailed { id });
                        return Err(e);
                    }
                }
                Err(e) => {
                    addr.do_send(PullFailed { id });
                    return Err(e);
                }
            }
        }
        let wait = std::time::Duration::from_millis(self.cfg.connect_timeout_ms);
        tokio::time::timeout(wait, addr.send(WhenLive))
            .await
            .map_err(|_| MediaError::Upstream("its media did not start in time".into()))?
            .map_err(stopped)
    }

    /// The room ended: stop its media (publisher, relays, subscribers).
    pub fn end_room(&self, room: &str) {
        if let Some((_, entry)) = self.rooms.remove(room) {
            entry.addr.do_send(Shutdown);
        }
    }
}
