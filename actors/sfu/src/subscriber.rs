//! One subscriber's connection: negotiation (local tracks matching the publisher's
//! codecs, the answer, the negotiated payload types and playout-delay extension id) and
//! the writer task that drains the subscriber's bounded queue into its connection and
//! passes its keyframe requests and its end back to the relay.

use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp::extension::playout_delay_extension::PlayoutDelayExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::shared::marshal::Marshal;
use tokio::sync::mpsc;
use webrtc::media_stream::Track;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};
use webrtc::rtp_transceiver::RtpSender;

use crate::config::MediaConfig;
use crate::engine::{self, ABS_SEND_TIME_URI, PLAYOUT_DELAY_URI, PeerEvent};
use crate::layers::Feedback;
use crate::rtcp_tap::{asks_for_keyframe, loss_of, remb};
use crate::{MediaError, MediaId};

/// The subscriber's connection is up: start forwarding to it (writer → relay).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SubscriberReady {
    pub id: MediaId,
}

/// The subscriber asked for a keyframe, PLI or FIR (writer → relay).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SubscriberKeyframe {
    pub id: MediaId,
}

/// What the subscriber's receiver said about its video: a REMB, or the loss in a
/// receiver report (writer → relay).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SubscriberFeedback {
    pub id: MediaId,
    pub feedback: Feedback,
}

/// The subscriber's writer ended: its queue closed or its connection failed
/// (writer → relay).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SubscriberGone {
    pub id: MediaId,
}

/// Where a writer task reports to: its relay.
pub(crate) struct WriterEvents {
    pub ready: Recipient<SubscriberReady>,
    pub keyframe: Recipient<SubscriberKeyframe>,
    pub feedback: Recipient<SubscriberFeedback>,
    pub gone: Recipient<SubscriberGone>,
}

/// How the relay must stamp packets for one of this subscriber's tracks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutStream {
    pub ssrc: u32,
    pub payload_type: u8,
}

/// What the relay keeps to address a negotiated subscriber.
pub(crate) struct Negotiated {
    pub answer: String,
    pub video: Option<OutStream>,
    pub audio: Option<OutStream>,
    /// The playout-delay extension (id, encoded value), when the subscriber accepted it.
    pub playout_delay: Option<(u8, Bytes)>,
    /// The absolute-send-time extension's id, when the subscriber accepted it.
    pub abs_send_time: Option<u8>,
    pub link: Link,
}

/// The connection and its tracks, handed to the writer task.
pub(crate) struct Link {
    pc: Arc<dyn PeerConnection>,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    video: Option<Arc<TrackLocalStaticRTP>>,
    audio: Option<Arc<TrackLocalStaticRTP>>,
}

/// A packet for one subscriber, already rewritten.
pub(crate) struct Outgoing {
    pub video: bool,
    pub packet: rtp::Packet,
}

pub(crate) fn local_track(
    kind: RtpCodecKind,
    codec: &RTCRtpCodec,
    ssrc: u32,
) -> Arc<TrackLocalStaticRTP> {
    let label = if kind == RtpCodecKind::Video {
        "video"
    } else {
        "audio"
    };
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "lockstep".to_owned(),
        format!("{label}-{ssrc}"),
        label.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: codec.clone(),
            ..Default::default()
        }],
    )))
}

pub(crate) async fn payload_type(sender: &Arc<dyn RtpSender>, codec: &RTCRtpCodec) -> Option<u8> {
    let params = sender.get_parameters().await.ok()?;
    let codecs = &params.rtp_parameters.codecs;
    codecs
        .iter()
        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&codec.mime_type))
        .or(codecs.first())
        .map(|c| c.payload_type)
}

/// Builds the subscriber's connection on the current arbiter and answers its offer.
pub(crate) async fn negotiate(
    cfg: &MediaConfig,
    offer_sdp: &str,
    video_codec: Option<RTCRtpCodec>,
    audio_codec: Option<RTCRtpCodec>,
) -> Result<Negotiated, MediaError> {
    let offer = engine::parse_offer(offer_sdp, cfg)?;
    let (pc, mut events) = engine::build_peer(cfg).await?;
    let result = async {
        let mut senders = Vec::new();
        let mut tracks = [None, None];
        for (slot, kind, codec) in [
            (0, RtpCodecKind::Video, &video_codec),
            (1, RtpCodecKind::Audio, &audio_codec),
        ] {
            let Some(codec) = codec else { continue };
            let ssrc = rand::random::<u32>();
            let track = local_track(kind, codec, ssrc);
            let sender = pc
                .add_track(track.clone() as Arc<dyn TrackLocal>)
                .await
                .map_err(MediaError::engine)?;
            senders.push((slot, sender, codec.clone(), ssrc));
            tracks[slot] = Some(track);
        }
        let (answer, _) = engine::answer(&pc, &mut events, offer, cfg).await?;
        let mut streams = [None, None];
        let mut playout_delay = None;
        let mut abs_send_time = None;
        for (slot, sender, codec, ssrc) in &senders {
            let Some(pt) = payload_type(sender, codec).await else {
                continue;
            };
            streams[*slot] = Some(OutStream {
                ssrc: *ssrc,
                payload_type: pt,
            });
            if *slot == 0
                && let Ok(params) = sender.get_parameters().await
            {
                let extensions = &params.rtp_parameters.header_extensions;
                if let Some(ext) = extensions.iter().find(|e| e.uri == PLAYOUT_DELAY_URI) {
                    let units = (cfg.playout_delay_ms / 10).min(0x0fff);
                    let value = PlayoutDelayExtension::new(units, units);
                    if let Ok(bytes) = value.marshal() {
                        playout_delay = Some((ext.id as u8, bytes.freeze()));
                    }
                }
                abs_send_time = extensions
                    .iter()
                    .find(|e| e.uri == ABS_SEND_TIME_URI)
                    .map(|e| e.id as u8);
            }
        }
        let [video, audio] = tracks;
        Ok(Negotiated {
            answer,
            video: streams[0],
            audio: streams[1],
            playout_delay,
            abs_send_time,
            link: Link {
                pc: pc.clone(),
                events,
                video,
                audio,
            },
        })
    }
    .await;
    if result.is_err() {
        let _ = pc.close().await;
    }
    result
}

/// Drains the queue into the connection until the queue closes (the relay dropped the
/// subscriber) or the connection fails; then closes the connection. Tells the relay when
/// the connection is up; a connection not up within `connect_timeout` (an offer whose
/// sender never completed ICE and DTLS) is dropped, freeing its slot.
pub(crate) async fn write_loop(
    id: MediaId,
    link: Link,
    mut queue: mpsc::Receiver<Outgoing>,
    relay: WriterEvents,
    connect_timeout: std::time::Duration,
) {
    let Link {
        pc,
        mut events,
        video,
        audio,
    } = link;
    let feedback = video.clone();
    let (asker, reporter) = (relay.keyframe.clone(), relay.feedback.clone());
    let requests = async move {
        if let Some(track) = feedback {
            let ssrc = track.ssrcs().await.first().copied().unwrap_or_default();
            while let Some(event) = track.poll().await {
                let TrackLocalEvent::OnRtcpPacket(packets) = event else {
                    continue;
                };
                if packets.iter().any(|p| asks_for_keyframe(p.as_ref())) {
                    asker.do_send(SubscriberKeyframe { id });
                }
                let remb_bps = packets.iter().find_map(|p| remb(p.as_ref()));
                let loss = packets
                    .iter()
                    .filter_map(|p| loss_of(p.as_ref(), ssrc))
                    .reduce(f64::max);
                let feedback = Feedback { remb_bps, loss };
                if feedback != Feedback::default() {
                    reporter.do_send(SubscriberFeedback { id, feedback });
                }
            }
        }
        std::future::pending::<()>().await
    };
    tokio::pin!(requests);
    let connect_deadline = tokio::time::sleep(connect_timeout);
    tokio::pin!(connect_deadline);
    let mut connected = false;
    let ended = loop {
        tokio::select! {
            () = &mut connect_deadline, if !connected => break "its connection was not up in time",
            next = queue.recv() => {
                let Some(out) = next else { break "the relay dropped it" };
                let track = if out.video { &video } else { &audio };
                if let Some(track) = track
                    && let Err(e) = track.write_rtp(out.packet).await
                {
                    tracing::info!(subscriber = %id, error = %e, "writing to a subscriber failed");
                    break "a write failed";
                }
            }
            event = events.recv() => match event {
                Some(PeerEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)) | None => break "its connection failed or closed",
                // Media flows once DTLS is up: only then does the relay start this
                // subscriber (on a keyframe), so nothing is written into the void.
                Some(PeerEvent::State(RTCPeerConnectionState::Connected)) => {
                    connected = true;
                    relay.ready.do_send(SubscriberReady { id });
                }
                Some(_) => {}
            },
            _ = &mut requests => {}
        }
    };
    tracing::info!(subscriber = %id, reason = ended, "a subscriber's writer ended");
    let _ = pc.close().await;
    // Tell the relay, in case the end came from the connection side.
    relay.gone.do_send(SubscriberGone { id });
}
