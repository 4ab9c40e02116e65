//! The media room: supervises one room's video. It owns the publisher connection (one at
//! a time; a new WHIP session replaces the old), starts the relays on the arbiter pool,
//! admits subscribers up to the cap and spreads them over the relays, sends keyframe
//! requests up to the publisher (throttled per layer), and reports the stream going live
//! or away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

use crate::MediaError;
use crate::clock::FrameMark;
use crate::config::MediaConfig;
use crate::engine::{self, PeerEvent};
use crate::ingest::{self, IngestSinks};
use crate::keyframe::{KeyframeDecision, KeyframeThrottle};
use crate::layers::{LayerId, Preference};
use crate::metrics::MediaMetrics;
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

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct TrackOpened {
    pub publisher: u64,
    pub kind: RtpCodecKind,
    pub layer: LayerId,
    pub ssrc: u32,
    pub codec: RTCRtpCodec,
    pub track: Arc<dyn TrackRemote>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct TrackEnded {
    pub publisher: u64,
    pub kind: RtpCodecKind,
}

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct PublisherGone {
    pub publisher: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct KeyframeWanted {
    pub layer: LayerId,
}

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SubscriberLeft {
    pub id: u64,
}

struct Publisher {
    id: u64,
    pc: Arc<dyn PeerConnection>,
    /// Media sections the offer sends; live once each has opened (or video after a grace).
    expected: usize,
    video_codec: Option<RTCRtpCodec>,
    audio_codec: Option<RTCRtpCodec>,
    opened_kinds: usize,
    /// Video layers and where to send their keyframe requests.
    layers: HashMap<LayerId, (u32, Arc<dyn TrackRemote>)>,
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
    publisher: Option<Publisher>,
    live: bool,
    next_id: u64,
    subscribers: HashMap<u64, usize>,
    throttle: KeyframeThrottle,
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
        let throttle =
            KeyframeThrottle::new(Duration::from_millis(cfg.keyframe_request_interval_ms));
        Self {
            room,
            cfg,
            pool,
            metrics,
            on_live,
            latest_frame,
            relays: Vec::new(),
            publisher: None,
            live: false,
            next_id: 1,
            subscribers: HashMap::new(),
            throttle,
        }
    }

    fn set_live(&mut self, live: bool) {
        if self.live != live {
            self.live = live;
            (self.on_live)(&self.room, live);
            if live {
                self.metrics.publishers.inc();
            } else {
                self.metrics.publishers.dec();
            }
        }
    }

    /// Drops the publisher and every subscriber (their pages subscribe again when the
    /// stream is back).
    fn drop_publisher(&mut self) {
        if let Some(publisher) = self.publisher.take() {
            let pc = publisher.pc;
            actix_rt::spawn(async move {
                let _ = pc.close().await;
            });
        }
        for (id, shard) in self.subscribers.drain() {
            self.relays[shard].do_send(SubscriberGone { id });
        }
        *self.latest_frame.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.set_live(false);
    }

    fn layer_track(&self, layer: &LayerId) -> Option<(u32, Arc<dyn TrackRemote>)> {
        self.publisher
            .as_ref()
            .and_then(|p| p.layers.get(layer))
            .cloned()
    }

    fn send_pli(&self, ssrc: u32, track: Arc<dyn TrackRemote>) {
        self.metrics.keyframe_requests.inc();
        actix_rt::spawn(async move {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            };
            let _ = track.write_rtcp(vec![Box::new(pli)]).await;
        });
    }

    fn check_live(&mut self) {
        if let Some(p) = &self.publisher
            && p.opened_kinds >= p.expected
        {
            self.set_live(true);
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
        self.drop_publisher();
        for relay in &self.relays {
            relay.do_send(StopRelay);
        }
    }
}

/// Counts the media sections an offer sends (audio and video).
fn sending_sections(sdp: &str) -> usize {
    let mut count = 0;
    let mut current: Option<bool> = None; // Some(is media we count)
    let mut inactive = false;
    for line in sdp.lines() {
        if line.starts_with("m=") {
            if current == Some(true) && !inactive {
                count += 1;
            }
            current = Some(line.starts_with("m=audio") || line.starts_with("m=video"));
            inactive = false;
        } else if line.starts_with("a=recvonly") || line.starts_with("a=inactive") {
            inactive = true;
        }
    }
    if current == Some(true) && !inactive {
        count += 1;
    }
    count
}

impl Handler<Publish> for MediaRoom {
    type Result = ResponseActFuture<Self, Result<(u64, String), MediaError>>;

    fn handle(&mut self, msg: Publish, ctx: &mut Context<Self>) -> Self::Result {
        self.drop_publisher();
        let id = self.next_id;
        self.next_id += 1;
        let cfg = self.cfg.clone();
        let sinks = IngestSinks {
            room: ctx.address(),
            publisher: id,
            relays: Arc::new(self.relays.iter().map(|r| r.clone().recipient()).collect()),
            latest_frame: self.latest_frame.clone(),
            metrics: self.metrics.clone(),
        };
        let work = async move {
            let offer = engine::parse_offer(&msg.offer, &cfg)?;
            let expected = sending_sections(&msg.offer).min(2);
            if expected == 0 {
                return Err(MediaError::InvalidSdp(
                    "the offer sends no audio or video".into(),
                ));
            }
            let (pc, mut events) = engine::build_peer(&cfg).await?;
            let negotiated = async {
                engine::add_receivers(&pc).await?;
                engine::answer(&pc, &mut events, offer, &cfg).await
            }
            .await;
            let (answer, early) = match negotiated {
                Ok(v) => v,
                Err(e) => {
                    let _ = pc.close().await;
                    return Err(e);
                }
            };
            for track in early {
                actix_rt::spawn(ingest::run(track, sinks.clone()));
            }
            let room = sinks.room.clone();
            actix_rt::spawn(async move {
                while let Some(event) = events.recv().await {
                    match event {
                        PeerEvent::Track(track) => {
                            actix_rt::spawn(ingest::run(track, sinks.clone()));
                        }
                        PeerEvent::State(
                            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed,
                        ) => break,
                        _ => {}
                    }
                }
                room.do_send(PublisherGone { publisher: id });
            });
            Ok((pc, expected, answer))
        };
        Box::pin(work.into_actor(self).map(move |result, this, _| {
            let (pc, expected, answer) = result?;
            this.publisher = Some(Publisher {
                id,
                pc,
                expected,
                video_codec: None,
                audio_codec: None,
                opened_kinds: 0,
                layers: HashMap::new(),
            });
            tracing::info!(room = %this.room, publisher = id, "publisher connected");
            Ok((id, answer))
        }))
    }
}

impl Handler<Unpublish> for MediaRoom {
    type Result = Result<(), MediaError>;

    fn handle(&mut self, msg: Unpublish, _: &mut Context<Self>) -> Self::Result {
        match &self.publisher {
            Some(p) if p.id == msg.publisher => {
                self.drop_publisher();
                Ok(())
            }
            _ => Err(MediaError::SessionNotFound(
                "no such publishing session in this room".into(),
            )),
        }
    }
}

impl Handler<PublisherGone> for MediaRoom {
    type Result = ();

    fn handle(&mut self, msg: PublisherGone, _: &mut Context<Self>) {
        if self
            .publisher
            .as_ref()
            .is_some_and(|p| p.id == msg.publisher)
        {
            tracing::info!(room = %self.room, publisher = msg.publisher, "publisher gone");
            self.drop_publisher();
        }
    }
}

impl Handler<TrackOpened> for MediaRoom {
    type Result = ();

    fn handle(&mut self, msg: TrackOpened, ctx: &mut Context<Self>) {
        let Some(p) = self.publisher.as_mut().filter(|p| p.id == msg.publisher) else {
            return;
        };
        let slot = if msg.kind == RtpCodecKind::Video {
            p.layers.insert(msg.layer, (msg.ssrc, msg.track));
            &mut p.video_codec
        } else {
            &mut p.audio_codec
        };
        if slot.is_none() {
            *slot = Some(msg.codec);
            p.opened_kinds += 1;
        }
        self.check_live();
        if msg.kind == RtpCodecKind::Video && !self.live {
            // A publisher whose audio never starts still goes live, a little later.
            let publisher = msg.publisher;
            ctx.run_later(Duration::from_secs(2), move |this, _| {
                if this.publisher.as_ref().is_some_and(|p| p.id == publisher) {
                    this.set_live(true);
                }
            });
        }
    }
}

impl Handler<TrackEnded> for MediaRoom {
    type Result = ();

    fn handle(&mut self, msg: TrackEnded, _: &mut Context<Self>) {
        if msg.kind == RtpCodecKind::Video
            && self
                .publisher
                .as_ref()
                .is_some_and(|p| p.id == msg.publisher)
        {
            self.drop_publisher();
        }
    }
}

impl Handler<KeyframeWanted> for MediaRoom {
    type Result = ();

    fn handle(&mut self, msg: KeyframeWanted, ctx: &mut Context<Self>) {
        let Some((ssrc, track)) = self.layer_track(&msg.layer) else {
            return;
        };
        match self.throttle.request(ssrc, Instant::now()) {
            KeyframeDecision::Send => self.send_pli(ssrc, track),
            KeyframeDecision::Pending => {}
            KeyframeDecision::Later(wait) => {
                ctx.run_later(wait, move |this, _| {
                    this.throttle.deferred_due(ssrc, Instant::now());
                    // The layer may have gone meanwhile (publisher left or replaced).
                    if let Some((current, track)) = this.layer_track(&msg.layer)
                        && current == ssrc
                    {
                        this.send_pli(ssrc, track);
                    }
                });
            }
        }
    }
}

impl Handler<Subscribe> for MediaRoom {
    type Result = ResponseActFuture<Self, Result<(u64, String), MediaError>>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        let admitted = (|| {
            let p = self
                .publisher
                .as_ref()
                .filter(|_| self.live)
                .ok_or_else(|| MediaError::Unavailable("the anchor is not streaming".into()))?;
            if self.subscribers.len() >= self.cfg.max_subscribers_per_room {
                return Err(MediaError::TooManySubscribers(format!(
                    "this room's video has its maximum of {} subscribers (media.max_subscribers_per_room)",
                    self.cfg.max_subscribers_per_room
                )));
            }
            Ok((p.video_codec.clone(), p.audio_codec.clone()))
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

#[cfg(test)]
mod tests {
    #[test]
    fn counts_the_sections_an_offer_sends() {
        let offer = "v=0\r\nm=audio 9 UDP\r\na=sendonly\r\nm=video 9 UDP\r\na=sendonly\r\nm=application 9\r\n";
        assert_eq!(super::sending_sections(offer), 2);
        let recv = "v=0\r\nm=audio 9 UDP\r\na=recvonly\r\nm=video 9 UDP\r\na=sendonly\r\n";
        assert_eq!(super::sending_sections(recv), 1);
    }
}
