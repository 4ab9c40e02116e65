//! The media room: supervises one room's video. It starts the ingest actor of each
//! publisher (one at a time; a new WHIP session replaces the old) and the relays on the
//! arbiter pool, admits subscribers up to the cap and spreads them over the relays,
//! passes their keyframe requests to the ingest, and reports the stream going live or
//! away.
//!
//! Cluster mode: on the node that owns the room, the [`Uplinks`] actor sends the stream
//! to every edge node pulling it ([`OpenUplink`]). On an edge node, the room's media
//! comes from such a pull instead of a publisher ([`StartPull`], [`FinishPull`]): it
//! starts with the edge's first subscriber and stops `media.pull_linger_ms` after the
//! last one left.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use lockstep_runtime::ArbiterPool;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;

use crate::admission::{Admission, Ticket};
use crate::clock::FrameMark;
use crate::config::MediaConfig;
use crate::ingest::{
    AcceptAnswer, Ingest, IngestEvents, Negotiate, PrepareOffer, SourceGone, SourceReady,
    StopIngest,
};
use crate::keyframe::KeyframeWanted;
use crate::layers::LayerId;
use crate::layers::Preference;
use crate::metrics::MediaMetrics;
use crate::record::{Recorder, RecordingHealth};
use crate::relay::{
    AddSubscriber, DropSubscriber, Relay, RelayEvents, SetPreference, StopRelay, SubscriberLeft,
};
use crate::uplink::{AddUplink, CountUplinks, DropUplink, UplinkAnswer, Uplinks};
use crate::{MediaError, MediaId};

/// Called when a room's stream goes live (true) or away (false).
pub type LiveHook = Arc<dyn Fn(&str, bool) + Send + Sync>;

/// Called when an edge stops pulling a room's stream, with the room and the uplink's id
/// at the owner (so the owner ends it at once rather than when its connection times out).
pub type PullEndHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Called when an edge's pull of a room's stream broke (the owner died or its stream was
/// replaced) while the edge has viewers: the edge pulls again, from whichever node owns
/// the room now, and the viewers keep their connections meanwhile.
pub type PullLostHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What an edge's SFU tells the server about its pulls.
#[derive(Clone)]
pub struct PullHooks {
    pub ended: PullEndHook,
    pub lost: PullLostHook,
}

/// The anchor publishes: answer its offer.
#[derive(Message)]
#[rtype(result = "Result<(MediaId, String), MediaError>")]
pub struct Publish {
    pub offer: String,
}

/// The anchor's WHIP session ends.
#[derive(Message)]
#[rtype(result = "Result<(), MediaError>")]
pub struct Unpublish {
    pub publisher: MediaId,
}

/// A viewer subscribes: answer its offer.
#[derive(Message)]
#[rtype(result = "Result<(MediaId, String), MediaError>")]
pub struct Subscribe {
    pub offer: String,
    pub preference: Preference,
    /// The viewer's user id (token subject); `None` for a guest.
    pub owner: Option<String>,
    /// The address it came from, for the per-address limit (`None`: exempt).
    pub source: Option<IpAddr>,
}

/// Who asks to end a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The server itself (the viewer's socket closed, a newer offer replaced it).
    Server,
    /// The room's anchor.
    Anchor,
    /// A signed-in viewer.
    User(String),
    /// Someone without a token.
    Guest,
}

/// A subscriber leaves (its session closed or its WHEP resource was deleted). A
/// signed-in viewer's subscription ends only for that viewer, the anchor or the server;
/// a guest's for whoever holds its (unguessable) resource URL.
#[derive(Message)]
#[rtype(result = "Result<(), MediaError>")]
pub struct Unsubscribe {
    pub id: MediaId,
    pub caller: Caller,
}

/// A subscriber's layer preference changes.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct ChangeLayer {
    pub id: MediaId,
    pub preference: Preference,
}

/// A user was banned from the room: their subscriptions end.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UserBanned {
    pub user: String,
}

/// An edge node asks for the room's stream (this node owns the room).
#[derive(Message)]
#[rtype(result = "Result<UplinkAnswer, MediaError>")]
pub struct OpenUplink {
    pub offer: String,
}

/// Edge nodes pulling the room's stream from this node.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Uplinked;

/// Starts pulling the room's stream from its owner (this node is an edge): the offer to
/// carry to the owner, or `None` when the stream is here already (pulled or published).
#[derive(Message)]
#[rtype(result = "Result<Option<(MediaId, String)>, MediaError>")]
pub struct StartPull;

/// The owner's answer to a pull's offer.
#[derive(Message)]
#[rtype(result = "Result<(), MediaError>")]
pub struct FinishPull {
    pub id: MediaId,
    /// The uplink's id at the owner.
    pub uplink: String,
    pub sdp: String,
    pub layers: Vec<(u32, LayerId)>,
    pub audio: bool,
}

/// A pull's offer found no owner to answer it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PullFailed {
    pub id: MediaId,
}

/// Ends one edge's uplink (this node owns the room).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseUplink {
    pub id: MediaId,
}

/// Resolves once the room's stream is live here (at once if it is).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WhenLive;

/// The room ended: close everything and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// An admitted subscriber: its relay shard, its owner, and its admission slot.
struct Admitted {
    shard: usize,
    owner: Option<String>,
    _ticket: Ticket,
}

/// The current publisher: its ingest actor, and its codecs once ready.
struct Source {
    id: MediaId,
    ingest: Addr<Ingest>,
    codecs: Option<(Option<RTCRtpCodec>, Option<RTCRtpCodec>)>,
    /// Pulled from the room's owner (cluster mode), not published here.
    pulled: bool,
    /// A pull's uplink id at the owner, once answered.
    uplink: Option<String>,
}

/// One room's media supervisor.
pub struct MediaRoom {
    room: String,
    cfg: Arc<MediaConfig>,
    pool: ArbiterPool,
    metrics: MediaMetrics,
    on_live: LiveHook,
    latest_frame: Arc<Mutex<Option<FrameMark>>>,
    relays: Vec<Addr<Relay>>,
    source: Option<Source>,
    subscribers: HashMap<MediaId, Admitted>,
    admission: Arc<Admission>,
    recording: Arc<RecordingHealth>,
    /// Started with the room's first publisher; closed when the room's media stops.
    recorder: Option<Recorder>,
    /// Sends the stream to edge nodes (cluster mode).
    uplinks: Option<Addr<Uplinks>>,
    /// Waiting for the stream to be live here.
    waiters: Vec<tokio::sync::oneshot::Sender<()>>,
    pull_hooks: Option<PullHooks>,
    /// A pull broke: its viewers are kept while the stream is pulled again.
    resuming: bool,
}

impl MediaRoom {
    pub fn new(
        room: String,
        cfg: Arc<MediaConfig>,
        pool: ArbiterPool,
        metrics: MediaMetrics,
        on_live: LiveHook,
        latest_frame: Arc<Mutex<Option<FrameMark>>>,
        admission: Arc<Admission>,
    ) -> Self {
        Self {
            room,
            cfg,
            pool,
            metrics,
            on_live,
            latest_frame,
            relays: Vec::new(),
            source: None,
            subscribers: HashMap::new(),
            admission,
            recording: Arc::default(),
            recorder: None,
            uplinks: None,
            waiters: Vec::new(),
            pull_hooks: None,
            resuming: false,
        }
    }

    /// Tells `hooks` when a pull of this room ends or breaks.
    pub fn with_pull_hooks(mut self, hooks: Option<PullHooks>) -> Self {
        self.pull_hooks = hooks;
        self
    }

    pub fn with_recording(mut self, recording: Arc<RecordingHealth>) -> Self {
        self.recording = recording;
        self
    }

    /// Drops one subscriber from its relay (its admission slot is released with it).
    fn drop_subscriber(&mut self, id: MediaId) -> bool {
        match self.subscribers.remove(&id) {
            Some(admitted) => {
                self.relays[admitted.shard].do_send(DropSubscriber { id });
                true
            }
            None => false,
        }
    }

    fn live(&self) -> bool {
        self.source.as_ref().is_some_and(|s| s.codecs.is_some())
    }

    /// A pulled stream nobody here watches any more stops after the linger.
    fn linger(&self, ctx: &mut Context<Self>) {
        if !self.subscribers.is_empty() || !self.source.as_ref().is_some_and(|s| s.pulled) {
            return;
        }
        let linger = std::time::Duration::from_millis(self.cfg.pull_linger_ms);
        ctx.run_later(linger, |this, _| {
            if this.subscribers.is_empty() && this.source.as_ref().is_some_and(|s| s.pulled) {
                tracing::info!(room = %this.room, "no subscriber left: stopping the pull");
                this.drop_source();
            }
        });
    }

    /// Stops the publisher's ingest and drops every subscriber (their pages subscribe
    /// again when the stream is back).
    fn drop_source(&mut self) {
        let was_live = self.live();
        let pulled = self.source.as_ref().is_some_and(|s| s.pulled);
        if let Some(source) = self.source.take() {
            source.ingest.do_send(StopIngest);
            if let (Some(uplink), Some(hooks)) = (&source.uplink, &self.pull_hooks) {
                (hooks.ended)(&self.room, uplink);
            }
        }
        for (id, admitted) in self.subscribers.drain() {
            self.relays[admitted.shard].do_send(DropSubscriber { id });
        }
        if let Some(uplinks) = &self.uplinks {
            uplinks.do_send(DropUplink(None));
        }
        *self.latest_frame.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if pulled {
            self.metrics.pulls.dec();
        } else if was_live {
            self.metrics.publishers.dec();
            (self.on_live)(&self.room, false);
        }
    }
}

impl Actor for MediaRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let room = ctx.address();
        let events = RelayEvents {
            left: room.clone().recipient(),
            keyframes: room.recipient(),
        };
        let (cfg, metrics, keyframes) = (
            self.cfg.clone(),
            self.metrics.clone(),
            ctx.address().recipient(),
        );
        self.uplinks = Some(Uplinks::start_in_arbiter(self.pool.next(), move |_| {
            Uplinks::new(cfg, metrics, keyframes)
        }));
        for _shard in 0..self.cfg.relay_shards.max(1) {
            let arbiter = self.pool.next();
            let (cfg, events, metrics) = (self.cfg.clone(), events.clone(), self.metrics.clone());
            self.relays.push(Relay::start_in_arbiter(arbiter, move |_| {
                Relay::new(cfg, events, metrics)
            }));
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.drop_source();
        for relay in &self.relays {
            relay.do_send(StopRelay);
        }
        if let Some(uplinks) = self.uplinks.take() {
            uplinks.do_send(DropUplink(None));
        }
    }
}

impl Handler<Publish> for MediaRoom {
    type Result = ResponseActFuture<Self, Result<(MediaId, String), MediaError>>;

    fn handle(&mut self, msg: Publish, ctx: &mut Context<Self>) -> Self::Result {
        self.drop_source();
        let id = MediaId::random();
        let room = ctx.address();
        match &self.recorder {
            Some(recorder) => recorder.new_source(),
            None => {
                self.recorder = Recorder::start(
                    &self.room,
                    &self.cfg,
                    &self.metrics,
                    room.clone().recipient(),
                    self.recording.clone(),
                );
            }
        }
        let ingest = self
            .new_ingest(id, room)
            .with_recorder(self.recorder.clone())
            .start();
        self.source = Some(Source {
            id,
            ingest: ingest.clone(),
            codecs: None,
            pulled: false,
            uplink: None,
        });
        let request = ingest.send(Negotiate { offer: msg.offer });
        Box::pin(request.into_actor(self).map(move |result, this, _| {
            let answer = result
                .map_err(|_| MediaError::Stopped("ingest"))
                .and_then(|r| r)?;
            tracing::info!(room = %this.room, publisher = %id, "publisher connected");
            Ok((id, answer))
        }))
    }
}

impl Handler<Unpublish> for MediaRoom {
    type Result = Result<(), MediaError>;

    fn handle(&mut self, msg: Unpublish, _: &mut Context<Self>) -> Self::Result {
        match &self.source {
            Some(s) if s.id == msg.publisher => {
                self.drop_source();
                Ok(())
            }
            _ => Err(MediaError::NoPublisher),
        }
    }
}

impl Handler<SourceReady> for MediaRoom {
    type Result = ();

    fn handle(&mut self, msg: SourceReady, _: &mut Context<Self>) {
        let Some(source) = self.source.as_mut().filter(|s| s.id == msg.publisher) else {
            return;
        };
        if source.codecs.is_none() {
            source.codecs = Some((msg.video_codec, msg.audio_codec));
            if source.pulled {
                self.metrics.pulls.inc();
                if std::mem::take(&mut self.resuming) {
                    // Each relay carries its subscribers over to the new source at its
                    // first packet (their numbering goes on; video from a keyframe).
                    tracing::info!(room = %self.room, "the pull is back: its viewers go on");
                }
            } else {
                self.metrics.publishers.inc();
                (self.on_live)(&self.room, true);
            }
            for waiter in self.waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

impl MediaRoom {
    /// An ingest (a publisher's, or a pull's) reporting to this room and handing every
    /// packet to its relays and uplinks.
    fn new_ingest(&self, id: MediaId, room: Addr<Self>) -> Ingest {
        Ingest::new(
            id,
            IngestEvents {
                ready: room.clone().recipient(),
                gone: room.recipient(),
            },
            self.cfg.clone(),
            Arc::new(self.sinks()),
            self.latest_frame.clone(),
            self.metrics.clone(),
        )
    }

    /// Where an ingest hands each packet: every relay shard and the uplinks.
    fn sinks(&self) -> Vec<Recipient<crate::packet::Deliver>> {
        let mut sinks: Vec<_> = self.relays.iter().map(|r| r.clone().recipient()).collect();
        if let Some(uplinks) = &self.uplinks {
            sinks.push(uplinks.clone().recipient());
        }
        sinks
    }
}

impl Handler<OpenUplink> for MediaRoom {
    type Result = ResponseFuture<Result<UplinkAnswer, MediaError>>;

    fn handle(&mut self, msg: OpenUplink, _: &mut Context<Self>) -> Self::Result {
        let codecs = self
            .source
            .as_ref()
            .filter(|s| !s.pulled)
            .and_then(|s| s.codecs.clone());
        let (Some((video_codec, audio_codec)), Some(uplinks)) = (codecs, self.uplinks.clone())
        else {
            return Box::pin(async { Err(MediaError::NotStreaming) });
        };
        Box::pin(async move {
            uplinks
                .send(AddUplink {
                    offer: msg.offer,
                    video_codec,
                    audio_codec,
                })
                .await
                .map_err(|_| MediaError::Stopped("uplinks"))?
        })
    }
}

impl Handler<CloseUplink> for MediaRoom {
    type Result = ();

    fn handle(&mut self, msg: CloseUplink, _: &mut Context<Self>) {
        if let Some(uplinks) = &self.uplinks {
            uplinks.do_send(DropUplink(Some(msg.id)));
        }
    }
}

impl Handler<Uplinked> for MediaRoom {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: Uplinked, _: &mut Context<Self>) -> Self::Result {
        let uplinks = self.uplinks.clone();
        Box::pin(async move {
            match uplinks {
                Some(u) => u.send(CountUplinks).await.unwrap_or(0),
                None => 0,
            }
        })
    }
}

impl Handler<StartPull> for MediaRoom {
    type Result = ResponseActFuture<Self, Result<Option<(MediaId, String)>, MediaError>>;

    fn handle(&mut self, _: StartPull, ctx: &mut Context<Self>) -> Self::Result {
        if self.source.is_some() {
            return Box::pin(fut::ready(Ok(None)));
        }
        let id = MediaId::random();
        let room = ctx.address();
        let ingest = self.new_ingest(id, room).start();
        self.source = Some(Source {
            id,
            ingest: ingest.clone(),
            codecs: None,
            pulled: true,
            uplink: None,
        });
        tracing::info!(room = %self.room, "pulling the stream from the room's owner");
        let request = ingest.send(PrepareOffer);
        Box::pin(request.into_actor(self).map(move |result, this, _| {
            let offer = result
                .map_err(|_| MediaError::Stopped("ingest"))
                .and_then(|r| r);
            match offer {
                Ok(sdp) => Ok(Some((id, sdp))),
                Err(e) => {
                    if this.source.as_ref().is_some_and(|s| s.id == id) {
                        this.source = None;
                    }
                    Err(e)
                }
            }
        }))
    }
}

impl Handler<FinishPull> for MediaRoom {
    type Result = ResponseFuture<Result<(), MediaError>>;

    fn handle(&mut self, msg: FinishPull, _: &mut Context<Self>) -> Self::Result {
        let Some(source) = self.source.as_mut().filter(|s| s.id == msg.id && s.pulled) else {
            return Box::pin(async { Err(MediaError::NotStreaming) });
        };
        source.uplink = Some(msg.uplink);
        let ingest = source.ingest.clone();
        Box::pin(async move {
            ingest
                .send(AcceptAnswer {
                    sdp: msg.sdp,
                    layers: msg.layers,
                    audio: msg.audio,
                })
                .await
                .map_err(|_| MediaError::Stopped("ingest"))?
        })
    }
}

impl Handler<PullFailed> for MediaRoom {
    type Result = ();

    fn handle(&mut self, msg: PullFailed, _: &mut Context<Self>) {
        if self.source.as_ref().is_none_or(|s| s.id != msg.id) {
            return;
        }
        if self.resuming {
            // Pulling again after a break: the viewers wait for the next attempt.
            if let Some(source) = self.source.take() {
                source.ingest.do_send(StopIngest);
            }
        } else {
            self.drop_source();
        }
    }
}

impl Handler<WhenLive> for MediaRoom {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: WhenLive, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.live() {
            let _ = tx.send(());
        } else {
            self.waiters.push(tx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<SourceGone> for MediaRoom {
    type Result = ();

    fn handle(&mut self, msg: SourceGone, ctx: &mut Context<Self>) {
        let Some(source) = self.source.as_ref().filter(|s| s.id == msg.publisher) else {
            return;
        };
        let lost = self.pull_hooks.as_ref().map(|h| h.lost.clone());
        match lost {
            Some(lost) if source.pulled && !self.subscribers.is_empty() => {
                // Keep the viewers; pull again from whoever owns the room now.
                tracing::info!(room = %self.room, "the pull broke: pulling again");
                if source.codecs.is_some() {
                    self.metrics.pulls.dec();
                }
                self.source = None;
                self.resuming = true;
                lost(&self.room);
                let wait = std::time::Duration::from_millis(2 * self.cfg.connect_timeout_ms);
                ctx.run_later(wait, |this, _| {
                    if this.resuming && !this.live() {
                        tracing::info!(room = %this.room, "the pull did not come back: dropping its viewers");
                        this.resuming = false;
                        this.drop_source();
                    }
                });
            }
            _ => {
                tracing::info!(room = %self.room, publisher = %msg.publisher, "publisher gone");
                self.drop_source();
            }
        }
    }
}

impl Handler<KeyframeWanted> for MediaRoom {
    type Result = ();

    fn handle(&mut self, msg: KeyframeWanted, _: &mut Context<Self>) {
        if let Some(source) = &self.source {
            source.ingest.do_send(msg);
        }
    }
}

impl Handler<Subscribe> for MediaRoom {
    type Result = ResponseActFuture<Self, Result<(MediaId, String), MediaError>>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        let admitted = (|| {
            let codecs = self
                .source
                .as_ref()
                .and_then(|s| s.codecs.clone())
                .ok_or(MediaError::NotStreaming)?;
            if self.subscribers.len() >= self.cfg.max_subscribers_per_room {
                return Err(MediaError::RoomFull(self.cfg.max_subscribers_per_room));
            }
            let ticket = self.admission.admit(msg.source)?;
            Ok((codecs, ticket))
        })();
        let ((video_codec, audio_codec), ticket) = match admitted {
            Ok(admitted) => admitted,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let id = MediaId::random();
        // The least loaded shard.
        let shard = (0..self.relays.len())
            .min_by_key(|s| self.subscribers.values().filter(|v| v.shard == *s).count())
            .unwrap_or(0);
        self.subscribers.insert(
            id,
            Admitted {
                shard,
                owner: msg.owner,
                _ticket: ticket,
            },
        );
        let request = self.relays[shard].send(AddSubscriber {
            id,
            offer: msg.offer,
            preference: msg.preference,
            video_codec,
            audio_codec,
        });
        Box::pin(request.into_actor(self).map(move |result, this, _| {
            let answer = result
                .map_err(|_| MediaError::Stopped("relay"))
                .and_then(|r| r);
            if answer.is_err() {
                this.subscribers.remove(&id);
            }
            answer.map(|a| (id, a))
        }))
    }
}

impl Handler<Unsubscribe> for MediaRoom {
    type Result = Result<(), MediaError>;

    fn handle(&mut self, msg: Unsubscribe, ctx: &mut Context<Self>) -> Self::Result {
        let Some(admitted) = self.subscribers.get(&msg.id) else {
            return Err(MediaError::NoSubscriber);
        };
        match (&admitted.owner, &msg.caller) {
            (_, Caller::Server | Caller::Anchor) | (None, _) => {}
            (Some(owner), Caller::User(user)) if owner == user => {}
            (Some(_), Caller::User(_)) => {
                return Err(MediaError::NotYours);
            }
            (Some(_), Caller::Guest) => {
                return Err(MediaError::OwnerTokenNeeded);
            }
        }
        self.drop_subscriber(msg.id);
        self.linger(ctx);
        Ok(())
    }
}

impl Handler<UserBanned> for MediaRoom {
    type Result = ();

    fn handle(&mut self, msg: UserBanned, _: &mut Context<Self>) {
        let theirs: Vec<MediaId> = self
            .subscribers
            .iter()
            .filter(|(_, a)| a.owner.as_deref() == Some(msg.user.as_str()))
            .map(|(id, _)| *id)
            .collect();
        for id in theirs {
            self.drop_subscriber(id);
        }
    }
}

impl Handler<SubscriberLeft> for MediaRoom {
    type Result = ();

    fn handle(&mut self, msg: SubscriberLeft, ctx: &mut Context<Self>) {
        self.subscribers.remove(&msg.id);
        self.linger(ctx);
    }
}

impl Handler<ChangeLayer> for MediaRoom {
    type Result = bool;

    fn handle(&mut self, msg: ChangeLayer, _: &mut Context<Self>) -> bool {
        match self.subscribers.get(&msg.id) {
            Some(admitted) => {
                self.relays[admitted.shard].do_send(SetPreference {
                    id: msg.id,
                    preference: msg.preference,
                });
                true
            }
            None => false,
        }
    }
}

impl Handler<Shutdown> for MediaRoom {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
