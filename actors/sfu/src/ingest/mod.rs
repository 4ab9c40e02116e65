//! The ingest actor, one per publisher (the anchor's WHIP session): owns the publisher's
//! connection and its track tasks ([`track`]), learns the codecs and simulcast
//! layers as tracks open, tells its media room when the stream is ready (every media
//! section it offered has opened) or gone (connection failed or closed, video ended),
//! and sends keyframe requests up to the publisher — at most one per layer per interval,
//! later ones folded into one deferred request.
//!
//! On an edge node (cluster mode) the same actor pulls the room's stream from the node
//! that owns the room instead: it makes the offer ([`PrepareOffer`]), the server carries
//! it to the owner, and the owner's answer ([`AcceptAnswer`]) names each layer's track;
//! from there it is an ingest like any other, its keyframe requests going upstream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

use crate::clock::FrameMark;
use crate::config::MediaConfig;
use crate::engine::{self, PeerEvent};
use crate::keyframe::{KeyframeDecision, KeyframeThrottle, KeyframeWanted};
use crate::layers::LayerId;
use crate::metrics::MediaMetrics;
use crate::packet::Deliver;
use crate::record::Recorder;
use crate::{MediaError, MediaId};

mod track;

use track::{TrackEnded, TrackOpened, TrackSinks};

/// Answers the publisher's offer (on this actor's arbiter, where its connection lives).
#[derive(Message)]
#[rtype(result = "Result<String, MediaError>")]
pub(crate) struct Negotiate {
    pub offer: String,
}

/// The publisher's stream is ready: every media section it offered has opened
/// (ingest → media room).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SourceReady {
    pub publisher: MediaId,
    pub video_codec: Option<RTCRtpCodec>,
    pub audio_codec: Option<RTCRtpCodec>,
}

/// The publisher's ingest stopped (ingest → media room).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SourceGone {
    pub publisher: MediaId,
}

/// Where the ingest reports to: its media room.
pub(crate) struct IngestEvents {
    pub ready: Recipient<SourceReady>,
    pub gone: Recipient<SourceGone>,
}

/// An edge's offer to pull the room's stream from its owner (see the module docs).
#[derive(Message)]
#[rtype(result = "Result<String, MediaError>")]
pub(crate) struct PrepareOffer;

/// The owner's answer to [`PrepareOffer`]'s offer: the SDP and the SSRC of each video
/// layer's track.
#[derive(Message)]
#[rtype(result = "Result<(), MediaError>")]
pub(crate) struct AcceptAnswer {
    pub sdp: String,
    pub layers: Vec<(u32, LayerId)>,
    pub audio: bool,
}

/// The connection failed or closed.
#[derive(Message)]
#[rtype(result = "()")]
struct ConnectionEnded;

/// One publisher's ingest.
pub(crate) struct Ingest {
    id: MediaId,
    room: IngestEvents,
    cfg: Arc<MediaConfig>,
    relays: Arc<Vec<Recipient<Deliver>>>,
    latest_frame: Arc<Mutex<Option<FrameMark>>>,
    metrics: MediaMetrics,
    pc: Option<Arc<dyn PeerConnection>>,
    /// Media sections the offer sends; ready once each has opened (or video after a grace).
    expected: usize,
    video_codec: Option<RTCRtpCodec>,
    audio_codec: Option<RTCRtpCodec>,
    ready: bool,
    /// Video layers and where to send their keyframe requests.
    layers: HashMap<LayerId, (u32, Arc<dyn TrackRemote>)>,
    throttle: KeyframeThrottle,
    recorder: Option<Recorder>,
    /// A pull's connection events, between its offer and the owner's answer.
    pull_events: Option<tokio::sync::mpsc::UnboundedReceiver<PeerEvent>>,
}

impl Ingest {
    pub(crate) fn new(
        id: MediaId,
        room: IngestEvents,
        cfg: Arc<MediaConfig>,
        relays: Arc<Vec<Recipient<Deliver>>>,
        latest_frame: Arc<Mutex<Option<FrameMark>>>,
        metrics: MediaMetrics,
    ) -> Self {
        let throttle =
            KeyframeThrottle::new(Duration::from_millis(cfg.keyframe_request_interval_ms));
        Self {
            id,
            room,
            cfg,
            relays,
            latest_frame,
            metrics,
            pc: None,
            expected: 0,
            video_codec: None,
            audio_codec: None,
            ready: false,
            layers: HashMap::new(),
            throttle,
            recorder: None,
            pull_events: None,
        }
    }

    /// Every packet also goes to `recorder` (the room's recording), if any.
    pub(crate) fn with_recorder(mut self, recorder: Option<Recorder>) -> Self {
        self.recorder = recorder;
        self
    }

    fn announce_ready(&mut self) {
        if !self.ready {
            self.ready = true;
            self.room.ready.do_send(SourceReady {
                publisher: self.id,
                video_codec: self.video_codec.clone(),
                audio_codec: self.audio_codec.clone(),
            });
        }
    }

    /// Every media section the offer sends has opened (known once negotiated).
    fn all_opened(&self) -> bool {
        let opened =
            usize::from(self.video_codec.is_some()) + usize::from(self.audio_codec.is_some());
        self.expected > 0 && opened >= self.expected
    }

    fn sinks(&self, ctx: &Context<Self>) -> TrackSinks {
        let me = ctx.address();
        TrackSinks {
            opened: me.clone().recipient(),
            ended: me.recipient(),
            relays: self.relays.clone(),
            latest_frame: self.latest_frame.clone(),
            metrics: self.metrics.clone(),
            recorder: self.recorder.clone(),
            relayed: None,
            source: self.id,
        }
    }

    /// Gives up on a stream whose media does not start within the connect timeout.
    fn expect_media(&self, ctx: &mut Context<Self>) {
        let connect_timeout = Duration::from_millis(self.cfg.connect_timeout_ms);
        ctx.run_later(connect_timeout, |this, ctx| {
            if !this.ready {
                tracing::info!(publisher = %this.id, "publisher's media did not start in time");
                ctx.stop();
            }
        });
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
}

impl Actor for Ingest {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(pc) = self.pc.take() {
            actix_rt::spawn(async move {
                let _ = pc.close().await;
            });
        }
        self.room.gone.do_send(SourceGone { publisher: self.id });
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

impl Handler<Negotiate> for Ingest {
    type Result = ResponseActFuture<Self, Result<String, MediaError>>;

    fn handle(&mut self, msg: Negotiate, ctx: &mut Context<Self>) -> Self::Result {
        let cfg = self.cfg.clone();
        let me = ctx.address();
        let sinks = self.sinks(ctx);
        let negotiation = actix_rt::spawn(async move {
            let offer = engine::parse_offer(&msg.offer, &cfg)?;
            let expected = sending_sections(&msg.offer).min(2);
            if expected == 0 {
                return Err(MediaError::NothingSent);
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
                actix_rt::spawn(track::run(track, sinks.clone()));
            }
            actix_rt::spawn(run_events(events, sinks, me));
            Ok((pc, expected, answer))
        });
        // The negotiation is its own task, so a panic inside webrtc-rs (parsing or
        // applying the offer) ends that task only and comes back as an error.
        let panics = self.metrics.actor_panics.clone();
        let work = async move {
            negotiation.await.unwrap_or_else(|e| {
                if e.is_panic() {
                    panics.with_label_values(&["ingest"]).inc();
                }
                Err(MediaError::Unprocessable)
            })
        };
        Box::pin(
            work.into_actor(self)
                .map(move |result, this, ctx| match result {
                    Ok((pc, expected, answer)) => {
                        this.pc = Some(pc);
                        this.expected = expected;
                        if this.all_opened() {
                            this.announce_ready();
                        }
                        // A publisher whose media never starts must not hold the room's stream.
                        this.expect_media(ctx);
                        Ok(answer)
                    }
                    Err(e) => {
                        ctx.stop();
                        Err(e)
                    }
                }),
        )
    }
}

/// Runs a connection's events: a task per track, until the connection ends.
async fn run_events(
    mut events: tokio::sync::mpsc::UnboundedReceiver<PeerEvent>,
    sinks: TrackSinks,
    ingest: Addr<Ingest>,
) {
    while let Some(event) = events.recv().await {
        match event {
            PeerEvent::Track(track) => {
                actix_rt::spawn(track::run(track, sinks.clone()));
            }
            PeerEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) => {
                break;
            }
            _ => {}
        }
    }
    ingest.do_send(ConnectionEnded);
}

impl Handler<PrepareOffer> for Ingest {
    type Result = ResponseActFuture<Self, Result<String, MediaError>>;

    fn handle(&mut self, _: PrepareOffer, _: &mut Context<Self>) -> Self::Result {
        let cfg = self.cfg.clone();
        let offering = actix_rt::spawn(async move {
            let (pc, mut events) = engine::build_peer(&cfg).await?;
            match engine::pull_offer(&pc, &mut events, &cfg).await {
                Ok(sdp) => Ok((pc, events, sdp)),
                Err(e) => {
                    let _ = pc.close().await;
                    Err(e)
                }
            }
        });
        let work = async move { offering.await.unwrap_or(Err(MediaError::Unprocessable)) };
        Box::pin(work.into_actor(self).map(|result, this, ctx| match result {
            Ok((pc, events, sdp)) => {
                this.pc = Some(pc);
                this.pull_events = Some(events);
                this.expect_media(ctx);
                Ok(sdp)
            }
            Err(e) => {
                ctx.stop();
                Err(e)
            }
        }))
    }
}

impl Handler<AcceptAnswer> for Ingest {
    type Result = ResponseActFuture<Self, Result<(), MediaError>>;

    fn handle(&mut self, msg: AcceptAnswer, ctx: &mut Context<Self>) -> Self::Result {
        let (Some(pc), Some(events)) = (self.pc.clone(), self.pull_events.take()) else {
            return Box::pin(fut::ready(Err(MediaError::NotStreaming)));
        };
        let mut sinks = self.sinks(ctx);
        sinks.relayed = Some(Arc::new(msg.layers.into_iter().collect()));
        self.expected = 1 + usize::from(msg.audio);
        let me = ctx.address();
        let applying = actix_rt::spawn(async move {
            let answer = webrtc::peer_connection::RTCSessionDescription::answer(msg.sdp)
                .map_err(|e| MediaError::Unparsable(e.to_string()))?;
            pc.set_remote_description(answer)
                .await
                .map_err(|e| MediaError::NotApplicable(e.to_string()))?;
            actix_rt::spawn(run_events(events, sinks, me));
            Ok(())
        });
        let work = async move { applying.await.unwrap_or(Err(MediaError::Unprocessable)) };
        Box::pin(work.into_actor(self).map(|result, _, ctx| {
            if result.is_err() {
                ctx.stop();
            }
            result
        }))
    }
}

impl Handler<TrackOpened> for Ingest {
    type Result = ();

    fn handle(&mut self, msg: TrackOpened, ctx: &mut Context<Self>) {
        let slot = if msg.kind == RtpCodecKind::Video {
            self.layers.insert(msg.layer, (msg.ssrc, msg.track));
            &mut self.video_codec
        } else {
            &mut self.audio_codec
        };
        if slot.is_none() {
            *slot = Some(msg.codec);
        }
        if self.all_opened() {
            self.announce_ready();
        } else if msg.kind == RtpCodecKind::Video {
            // A publisher whose audio never starts still goes live, a little later.
            ctx.run_later(Duration::from_secs(2), |this, _| this.announce_ready());
        }
    }
}

impl Handler<TrackEnded> for Ingest {
    type Result = ();

    fn handle(&mut self, msg: TrackEnded, ctx: &mut Context<Self>) {
        if msg.kind == RtpCodecKind::Video {
            ctx.stop();
        }
    }
}

impl Handler<ConnectionEnded> for Ingest {
    type Result = ();

    fn handle(&mut self, _: ConnectionEnded, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<KeyframeWanted> for Ingest {
    type Result = ();

    fn handle(&mut self, msg: KeyframeWanted, ctx: &mut Context<Self>) {
        let Some((ssrc, track)) = self.layers.get(&msg.layer).cloned() else {
            return;
        };
        match self.throttle.request(ssrc, Instant::now()) {
            KeyframeDecision::Send => self.send_pli(ssrc, track),
            KeyframeDecision::Pending => {}
            KeyframeDecision::Later(wait) => {
                ctx.run_later(wait, move |this, _| {
                    this.throttle.deferred_due(ssrc, Instant::now());
                    this.send_pli(ssrc, track);
                });
            }
        }
    }
}

/// Stops the ingest (the session was deleted, replaced, or the room ended).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopIngest;

impl Handler<StopIngest> for Ingest {
    type Result = ();

    fn handle(&mut self, _: StopIngest, ctx: &mut Context<Self>) {
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
