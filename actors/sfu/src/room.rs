//! The media room: supervises one room's video. It starts the ingest actor of each
//! publisher (one at a time; a new WHIP session replaces the old) and the relays on the
//! arbiter pool, admits subscribers up to the cap and spreads them over the relays,
//! passes their keyframe requests to the ingest, and reports the stream going live or
//! away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;

use crate::MediaError;
use crate::clock::FrameMark;
use crate::config::MediaConfig;
use crate::layers::Preference;
use crate::metrics::MediaMetrics;
use crate::publisher::{KeyframeWanted, Negotiate, Publisher, StopPublisher};
use crate::relay::{AddSubscriber, Relay, SetPreference, StopRelay, SubscriberGone};

/// Called when a room's stream goes live (true) or away (false).
pub type LiveHook = Arc<dyn Fn(&str, bool) + Send + Sync>;

/// The anchor publishes: answer its offer.
#[derive(Message)]
#[rtype(result = "Result<(u64, String), MediaError>")]
pub struct Publish {
    pub offer: String,
}

/// The anchor's WHIP session ends.
#[derive(Message)]
#[rtype(result = "Result<(), MediaError>")]
pub struct Unpublish {
    pub publisher: u64,
}

/// A viewer subscribes: answer its offer.
#[derive(Message)]
#[rtype(result = "Result<(u64, String), MediaError>")]
pub struct Subscribe {
    pub offer: String,
    pub preference: Preference,
}

/// A subscriber leaves (its session closed or its WHEP resource was deleted).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Unsubscribe {
    pub id: u64,
}

/// A subscriber's layer preference changes.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct ChangeLayer {
    pub id: u64,
    pub preference: Preference,
}

/// The room ended: close everything and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// The publisher's stream is ready: every media section it offered has opened.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SourceReady {
    pub publisher: u64,
    pub video_codec: Option<RTCRtpCodec>,
    pub audio_codec: Option<RTCRtpCodec>,
}

/// The publisher's ingest stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SourceGone {
    pub publisher: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SubscriberLeft {
    pub id: u64,
}

/// The current publisher: its ingest actor, and its codecs once ready.
struct Source {
    id: u64,
    ingest: Addr<Publisher>,
    codecs: Option<(Option<RTCRtpCodec>, Option<RTCRtpCodec>)>,
}

/// One room's media supervisor.
pub struct MediaRoom {
    room: String,
    cfg: Arc<MediaConfig>,
    pool: Vec<ArbiterHandle>,
    metrics: MediaMetrics,
    on_live: LiveHook,
    latest_frame: Arc<Mutex<Option<FrameMark>>>,
    relays: Vec<Addr<Relay>>,
    source: Option<Source>,
    next_id: u64,
    subscribers: HashMap<u64, usize>,
}

impl MediaRoom {
    pub fn new(
        room: String,
        cfg: Arc<MediaConfig>,
        pool: Vec<ArbiterHandle>,
        metrics: MediaMetrics,
        on_live: LiveHook,
        latest_frame: Arc<Mutex<Option<FrameMark>>>,
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
            next_id: 1,
            subscribers: HashMap::new(),
        }
    }

    fn live(&self) -> bool {
        self.source.as_ref().is_some_and(|s| s.codecs.is_some())
    }

    /// Stops the publisher's ingest and drops every subscriber (their pages subscribe
    /// again when the stream is back).
    fn drop_source(&mut self) {
        let was_live = self.live();
        if let Some(source) = self.source.take() {
            source.ingest.do_send(StopPublisher);
        }
        for (id, shard) in self.subscribers.drain() {
            self.relays[shard].do_send(SubscriberGone { id });
        }
        *self.latest_frame.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if was_live {
            self.metrics.publishers.dec();
            (self.on_live)(&self.room, false);
        }
    }
}

impl Actor for MediaRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let room = ctx.address();
        for shard in 0..self.cfg.relay_shards.max(1) {
            let arbiter = &self.pool[shard % self.pool.len()];
            let (cfg, room, metrics) = (self.cfg.clone(), room.clone(), self.metrics.clone());
            self.relays.push(Relay::start_in_arbiter(arbiter, move |_| {
                Relay::new(cfg, room, metrics)
            }));
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.drop_source();
        for relay in &self.relays {
            relay.do_send(StopRelay);
        }
    }
}

impl Handler<Publish> for MediaRoom {
    type Result = ResponseActFuture<Self, Result<(u64, String), MediaError>>;

    fn handle(&mut self, msg: Publish, ctx: &mut Context<Self>) -> Self::Result {
        self.drop_source();
        let id = self.next_id;
        self.next_id += 1;
        let relays = Arc::new(self.relays.iter().map(|r| r.clone().recipient()).collect());
        let ingest = Publisher::new(
            id,
            ctx.address(),
            self.cfg.clone(),
            relays,
            self.latest_frame.clone(),
            self.metrics.clone(),
        )
        .start();
        self.source = Some(Source {
            id,
            ingest: ingest.clone(),
            codecs: None,
        });
        let request = ingest.send(Negotiate { offer: msg.offer });
        Box::pin(request.into_actor(self).map(move |result, this, _| {
            let answer = result
                .map_err(|_| MediaError::Internal("the ingest stopped".into()))
                .and_then(|r| r)?;
            tracing::info!(room = %this.room, publisher = id, "publisher connected");
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
            _ => Err(MediaError::SessionNotFound(
                "no such publishing session in this room".into(),
            )),
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
            self.metrics.publishers.inc();
            (self.on_live)(&self.room, true);
        }
    }
}

impl Handler<SourceGone> for MediaRoom {
    type Result = ();

    fn handle(&mut self, msg: SourceGone, _: &mut Context<Self>) {
        if self.source.as_ref().is_some_and(|s| s.id == msg.publisher) {
            tracing::info!(room = %self.room, publisher = msg.publisher, "publisher gone");
            self.drop_source();
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
    type Result = ResponseActFuture<Self, Result<(u64, String), MediaError>>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        let admitted = (|| {
            let codecs = self
                .source
                .as_ref()
                .and_then(|s| s.codecs.clone())
                .ok_or_else(|| MediaError::Unavailable("the anchor is not streaming".into()))?;
            if self.subscribers.len() >= self.cfg.max_subscribers_per_room {
                return Err(MediaError::TooManySubscribers(format!(
                    "this room's video has its maximum of {} subscribers (media.max_subscribers_per_room)",
                    self.cfg.max_subscribers_per_room
                )));
            }
            Ok(codecs)
        })();
        let (video_codec, audio_codec) = match admitted {
            Ok(codecs) => codecs,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let id = self.next_id;
        self.next_id += 1;
        // The least loaded shard.
        let shard = (0..self.relays.len())
            .min_by_key(|s| self.subscribers.values().filter(|v| *v == s).count())
            .unwrap_or(0);
        self.subscribers.insert(id, shard);
        let request = self.relays[shard].send(AddSubscriber {
            id,
            offer: msg.offer,
            preference: msg.preference,
            video_codec,
            audio_codec,
        });
        Box::pin(request.into_actor(self).map(move |result, this, _| {
            let answer = result
                .map_err(|_| MediaError::Internal("the relay stopped".into()))
                .and_then(|r| r);
            if answer.is_err() {
                this.subscribers.remove(&id);
            }
            answer.map(|a| (id, a))
        }))
    }
}

impl Handler<Unsubscribe> for MediaRoom {
    type Result = bool;

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) -> bool {
        match self.subscribers.remove(&msg.id) {
            Some(shard) => {
                self.relays[shard].do_send(SubscriberGone { id: msg.id });
                true
            }
            None => false,
        }
    }
}

impl Handler<SubscriberLeft> for MediaRoom {
    type Result = ();

    fn handle(&mut self, msg: SubscriberLeft, _: &mut Context<Self>) {
        self.subscribers.remove(&msg.id);
    }
}

impl Handler<ChangeLayer> for MediaRoom {
    type Result = bool;

    fn handle(&mut self, msg: ChangeLayer, _: &mut Context<Self>) -> bool {
        match self.subscribers.get(&msg.id) {
            Some(shard) => {
                self.relays[*shard].do_send(SetPreference {
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
