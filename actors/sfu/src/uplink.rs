//! The owner's side of the cluster's media relay: each edge node that has viewers of
//! this room pulls the stream once, over one WebRTC connection (an uplink), and feeds
//! it to its own relays. An uplink carries every simulcast layer on a video track of its
//! own and the audio, each packet as the publisher sent it — its sequence numbers, its
//! payload — stamped with the room's media clock, so an edge's viewers get the frames
//! under the same RTP timestamps as the owner's. The [`Uplinks`] actor is one of the
//! ingest's packet sinks, like a relay shard; forwarding `try_send`s into each uplink's
//! bounded queue and never waits. An edge's keyframe request (PLI/FIR on a layer's
//! track) goes to the room, which throttles it toward the publisher like any other.
//! Loss between nodes is repaired by the connection's own NACK handling.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use actix::prelude::*;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

use crate::config::MediaConfig;
use crate::engine::{self, PeerEvent};
use crate::keyframe::KeyframeWanted;
use crate::layers::LayerId;
use crate::metrics::MediaMetrics;
use crate::packet::Deliver;
use crate::rtcp_tap::asks_for_keyframe;
use crate::subscriber::{local_track, payload_type};
use crate::{MediaError, MediaId};

/// An edge asks for the stream: answer its offer. The answer names the SSRC of each
/// layer's track (the empty layer: no simulcast) and of the audio.
#[derive(Message)]
#[rtype(result = "Result<UplinkAnswer, MediaError>")]
pub struct AddUplink {
    pub offer: String,
    pub video_codec: Option<RTCRtpCodec>,
    pub audio_codec: Option<RTCRtpCodec>,
}

/// What an edge needs to read an uplink (sent from node to node as JSON).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UplinkAnswer {
    /// The uplink's id, for the edge to end it.
    pub id: String,
    pub sdp: String,
    /// (SSRC, layer) of each video track.
    pub layers: Vec<(u32, LayerId)>,
    pub audio_ssrc: Option<u32>,
}

/// Ends one uplink (its edge went away) or, with `None`, every one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DropUplink(pub Option<MediaId>);

/// How many uplinks (edge nodes pulling) this room has.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountUplinks;

/// An uplink's writer ended.
#[derive(Message)]
#[rtype(result = "()")]
struct UplinkGone(MediaId);

/// How to stamp a packet for one of an uplink's tracks.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    track: usize,
    ssrc: u32,
    payload_type: u8,
}

struct Leg {
    queue: mpsc::Sender<(usize, rtp::Packet)>,
    video: HashMap<LayerId, Stamp>,
    audio: Option<Stamp>,
}

/// Every uplink of one room.
pub struct Uplinks {
    cfg: Arc<MediaConfig>,
    metrics: MediaMetrics,
    keyframes: Recipient<KeyframeWanted>,
    legs: HashMap<MediaId, Leg>,
    /// Video layers seen in the stream so far (an uplink gets a track for each).
    layers: BTreeSet<LayerId>,
}

impl Uplinks {
    pub(crate) fn new(
        cfg: Arc<MediaConfig>,
        metrics: MediaMetrics,
        keyframes: Recipient<KeyframeWanted>,
    ) -> Self {
        Self {
            cfg,
            metrics,
            keyframes,
            legs: HashMap::new(),
            layers: BTreeSet::new(),
        }
    }

    fn remove(&mut self, id: MediaId) {
        if self.legs.remove(&id).is_some() {
            self.metrics.uplinks.dec();
        }
    }
}

impl Actor for Uplinks {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.metrics.uplinks.sub(self.legs.len() as i64);
        self.legs.clear();
    }
}

impl Handler<Deliver> for Uplinks {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        let media = msg.0;
        if media.video && !self.layers.contains(&media.layer) {
            self.layers.insert(media.layer.clone());
        }
        for leg in self.legs.values() {
            let stamp = if media.video {
                leg.video.get(&media.layer)
            } else {
                leg.audio.as_ref()
            };
            let Some(stamp) = stamp else { continue };
            let mut header = media.packet.header.clone();
            header.ssrc = stamp.ssrc;
            header.payload_type = stamp.payload_type;
            header.timestamp = media.media_ts;
            header.extensions.clear();
            header.extension = false;
            header.extensions_padding = 0;
            let packet = rtp::Packet {
                header,
                payload: media.packet.payload.clone(),
            };
            if leg.queue.try_send((stamp.track, packet)).is_ok() {
                self.metrics.uplink_packets.inc();
            } else {
                self.metrics.uplink_dropped.inc();
            }
        }
    }
}

impl Handler<AddUplink> for Uplinks {
    type Result = ResponseActFuture<Self, Result<UplinkAnswer, MediaError>>;

    fn handle(&mut self, msg: AddUplink, ctx: &mut Context<Self>) -> Self::Result {
        let layers: Vec<LayerId> = self.layers.iter().cloned().collect();
        if layers.is_empty() || msg.video_codec.is_none() {
            return Box::pin(fut::ready(Err(MediaError::NotStreaming)));
        }
        let cfg = self.cfg.clone();
        let negotiation = actix_rt::spawn(async move {
            negotiate(&cfg, &msg.offer, &layers, msg.video_codec, msg.audio_codec).await
        });
        let me = ctx.address();
        let keyframes = self.keyframes.clone();
        let work = async move { negotiation.await.unwrap_or(Err(MediaError::Unprocessable)) };
        Box::pin(work.into_actor(self).map(move |result, this, _| {
            let (answer, link, video, audio) = result?;
            let id = MediaId::random();
            let (tx, rx) = mpsc::channel(this.cfg.subscriber_queue_packets.max(1) * 4);
            let layers: Vec<(u32, LayerId)> = video
                .iter()
                .map(|(layer, stamp)| (stamp.ssrc, layer.clone()))
                .collect();
            let audio_ssrc = audio.map(|s| s.ssrc);
            this.legs.insert(
                id,
                Leg {
                    queue: tx,
                    video,
                    audio,
                },
            );
            this.metrics.uplinks.inc();
            let connect_timeout = std::time::Duration::from_millis(this.cfg.connect_timeout_ms);
            actix_rt::spawn(write_loop(id, link, rx, keyframes, me, connect_timeout));
            Ok(UplinkAnswer {
                id: id.to_string(),
                sdp: answer,
                layers,
                audio_ssrc,
            })
        }))
    }
}

impl Handler<UplinkGone> for Uplinks {
    type Result = ();

    fn handle(&mut self, msg: UplinkGone, _: &mut Context<Self>) {
        self.remove(msg.0);
    }
}

impl Handler<DropUplink> for Uplinks {
    type Result = ();

    fn handle(&mut self, msg: DropUplink, _: &mut Context<Self>) {
        match msg.0 {
            Some(id) => self.remove(id),
            None => {
                self.metrics.uplinks.sub(self.legs.len() as i64);
                self.legs.clear();
            }
        }
    }
}

impl Handler<CountUplinks> for Uplinks {
    type Result = usize;

    fn handle(&mut self, _: CountUplinks, _: &mut Context<Self>) -> usize {
        self.legs.len()
    }
}

/// An uplink's connection and its tracks (video tracks by layer, then the audio).
struct Link {
    pc: Arc<dyn PeerConnection>,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    tracks: Vec<(Option<LayerId>, Arc<TrackLocalStaticRTP>)>,
}

type Negotiated = (String, Link, HashMap<LayerId, Stamp>, Option<Stamp>);

/// Builds the uplink's connection (a video track per layer, the audio) and answers the
/// edge's offer.
async fn negotiate(
    cfg: &MediaConfig,
    offer_sdp: &str,
    layers: &[LayerId],
    video_codec: Option<RTCRtpCodec>,
    audio_codec: Option<RTCRtpCodec>,
) -> Result<Negotiated, MediaError> {
    let offer = engine::parse_offer(offer_sdp, cfg)?;
    let (pc, mut events) = engine::build_peer(cfg).await?;
    let result = async {
        let mut wanted: Vec<(Option<LayerId>, RtpCodecKind, RTCRtpCodec)> = Vec::new();
        if let Some(codec) = &video_codec {
            for layer in layers {
                wanted.push((Some(layer.clone()), RtpCodecKind::Video, codec.clone()));
            }
        }
        if let Some(codec) = &audio_codec {
            wanted.push((None, RtpCodecKind::Audio, codec.clone()));
        }
        let mut added = Vec::new();
        for (layer, kind, codec) in wanted {
            let ssrc = rand::random::<u32>();
            let track = local_track(kind, &codec, ssrc);
            let sender = pc
                .add_track(track.clone() as Arc<dyn TrackLocal>)
                .await
                .map_err(MediaError::engine)?;
            added.push((layer, track, sender, codec, ssrc));
        }
        let (answer, _) = engine::answer(&pc, &mut events, offer, cfg).await?;
        let (mut video, mut audio, mut tracks) = (HashMap::new(), None, Vec::new());
        for (layer, track, sender, codec, ssrc) in added {
            let Some(payload_type) = payload_type(&sender, &codec).await else {
                continue;
            };
            let stamp = Stamp {
                track: tracks.len(),
                ssrc,
                payload_type,
            };
            match &layer {
                Some(layer) => {
                    video.insert(layer.clone(), stamp);
                }
                None => audio = Some(stamp),
            }
            tracks.push((layer, track));
        }
        if video.is_empty() {
            return Err(MediaError::NotStreaming);
        }
        Ok((
            answer,
            Link {
                pc: pc.clone(),
                events,
                tracks,
            },
            video,
            audio,
        ))
    }
    .await;
    if result.is_err() {
        let _ = pc.close().await;
    }
    result
}

/// Drains the uplink's queue into its tracks until the queue closes or the connection
/// fails; passes the edge's keyframe requests to the room.
async fn write_loop(
    id: MediaId,
    link: Link,
    mut queue: mpsc::Receiver<(usize, rtp::Packet)>,
    keyframes: Recipient<KeyframeWanted>,
    uplinks: Addr<Uplinks>,
    connect_timeout: std::time::Duration,
) {
    let Link {
        pc,
        mut events,
        tracks,
    } = link;
    for (layer, track) in &tracks {
        let (Some(layer), track) = (layer.clone(), track.clone()) else {
            continue;
        };
        let keyframes = keyframes.clone();
        actix_rt::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackLocalEvent::OnRtcpPacket(packets) = event
                    && packets.iter().any(|p| asks_for_keyframe(p.as_ref()))
                {
                    keyframes.do_send(KeyframeWanted {
                        layer: layer.clone(),
                    });
                }
            }
        });
    }
    let connect_deadline = tokio::time::sleep(connect_timeout);
    tokio::pin!(connect_deadline);
    let mut connected = false;
    loop {
        tokio::select! {
            () = &mut connect_deadline, if !connected => break,
            next = queue.recv() => {
                let Some((track, packet)) = next else { break };
                if connected
                    && let Some((_, track)) = tracks.get(track)
                    && track.write_rtp(packet).await.is_err()
                {
                    break;
                }
            }
            event = events.recv() => match event {
                Some(PeerEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)) | None => break,
                Some(PeerEvent::State(RTCPeerConnectionState::Connected)) => connected = true,
                Some(_) => {}
            },
        }
    }
    let _ = pc.close().await;
    uplinks.do_send(UplinkGone(id));
}
