//! Building peer connections the way every SFU connection needs them: default codecs
//! and interceptors (NACK, reports, TWCC), the playout-delay header extension, the
//! keyframe-request tap, mDNS off, bounded ICE timeouts, ICE on the configured address;
//! and non-trickle negotiation (an answer carries every candidate).

use std::sync::Arc;
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Slot;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpHeaderExtensionCapability, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateType,
    RTCIceGatheringState, RTCPeerConnectionState, Registry, SettingEngineBuilder,
};

use crate::MediaError;
use crate::config::MediaConfig;

/// The playout-delay RTP header extension (min/max delay the receiver should use).
pub const PLAYOUT_DELAY_URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
/// The absolute-send-time RTP header extension: when the SFU sent each video packet. A
/// receiver that estimates its bandwidth itself (REMB, e.g. aiortc) needs it.
pub const ABS_SEND_TIME_URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";

/// What a peer connection reports to its owner.
pub enum PeerEvent {
    Gathered,
    State(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
}

/// Forwards a connection's events into a channel its owner reads.
struct EventSink(mpsc::UnboundedSender<PeerEvent>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for EventSink {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.0.send(PeerEvent::Gathered);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.0.send(PeerEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.0.send(PeerEvent::Track(track));
    }
}

/// A new connection and the stream of its events.
pub async fn build_peer(
    cfg: &MediaConfig,
) -> Result<(Arc<dyn PeerConnection>, mpsc::UnboundedReceiver<PeerEvent>), MediaError> {
    let mut media = MediaEngine::default();
    media
        .register_default_codecs()
        .map_err(MediaError::engine)?;
    for uri in [PLAYOUT_DELAY_URI, ABS_SEND_TIME_URI] {
        media
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: uri.to_owned(),
                },
                RtpCodecKind::Video,
                Some(RTCRtpTransceiverDirection::Sendonly),
            )
            .map_err(MediaError::engine)?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut media)
        .map_err(MediaError::engine)?
        .with(Slot::from(14_000), crate::rtcp_tap::RtcpTap::default());
    let mut settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(true)
        .with_ice_timeouts(
            Some(Duration::from_millis(cfg.ice_disconnected_timeout_ms)),
            Some(Duration::from_millis(cfg.ice_failed_timeout_ms)),
            Some(Duration::from_millis(
                (cfg.ice_disconnected_timeout_ms / 3).max(200),
            )),
        );
    if !cfg.public_ip.is_empty() {
        settings =
            settings.with_nat_1to1_ips(vec![cfg.public_ip.clone()], RTCIceCandidateType::Host);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings.build())
        .with_handler(Arc::new(EventSink(tx)))
        .with_udp_addrs(vec![format!("{}:0", cfg.udp_bind)])
        .build()
        .await
        .map_err(MediaError::engine)?;
    Ok((Arc::new(pc), rx))
}

/// Adds one receive-only audio and one receive-only video transceiver (a publisher's
/// answerer, or a subscriber's offer).
pub async fn add_receivers(pc: &Arc<dyn PeerConnection>) -> Result<(), MediaError> {
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .map_err(MediaError::engine)?;
    }
    Ok(())
}

/// How many video layers an edge's pull offers to receive (simulcast has at most three).
pub const PULLED_VIDEO_LAYERS: usize = 3;

/// An edge's offer to pull a room's stream: receive-only video transceivers, one per
/// layer the owner may send, and one for the audio; waits until it carries every local
/// candidate.
pub async fn pull_offer(
    pc: &Arc<dyn PeerConnection>,
    events: &mut mpsc::UnboundedReceiver<PeerEvent>,
    cfg: &MediaConfig,
) -> Result<String, MediaError> {
    let kinds = std::iter::repeat_n(RtpCodecKind::Video, PULLED_VIDEO_LAYERS)
        .chain(std::iter::once(RtpCodecKind::Audio));
    for kind in kinds {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .map_err(MediaError::engine)?;
    }
    let offer = pc.create_offer(None).await.map_err(MediaError::engine)?;
    pc.set_local_description(offer)
        .await
        .map_err(MediaError::engine)?;
    wait_gathered(events, cfg).await?;
    let local = pc
        .local_description()
        .await
        .ok_or_else(|| MediaError::engine("no local description after offering"))?;
    Ok(local.sdp)
}

/// Waits until every local candidate is gathered (`media.negotiation_timeout_ms` at
/// most); returns the tracks that opened meanwhile.
async fn wait_gathered(
    events: &mut mpsc::UnboundedReceiver<PeerEvent>,
    cfg: &MediaConfig,
) -> Result<Vec<Arc<dyn TrackRemote>>, MediaError> {
    let mut early_tracks = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_millis(cfg.negotiation_timeout_ms));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(PeerEvent::Gathered) => return Ok(early_tracks),
                Some(PeerEvent::Track(track)) => early_tracks.push(track),
                Some(PeerEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)) | None => {
                    return Err(MediaError::ClosedWhileGathering);
                }
                Some(PeerEvent::State(_)) => {}
            },
            _ = &mut deadline => return Err(MediaError::GatheringTimedOut),
        }
    }
}

/// Parses an SDP offer, with a clear error for anything that is not one.
pub fn parse_offer(sdp: &str, cfg: &MediaConfig) -> Result<RTCSessionDescription, MediaError> {
    if sdp.len() > cfg.max_sdp_bytes {
        return Err(MediaError::OfferTooLarge {
            bytes: sdp.len(),
            max: cfg.max_sdp_bytes,
        });
    }
    if !sdp.starts_with("v=0") || !sdp.contains("m=") {
        return Err(MediaError::NotAnOffer);
    }
    RTCSessionDescription::offer(sdp.to_owned()).map_err(|e| MediaError::Unparsable(e.to_string()))
}

/// Applies `offer`, answers it, and waits until every local candidate is in the answer.
pub async fn answer(
    pc: &Arc<dyn PeerConnection>,
    events: &mut mpsc::UnboundedReceiver<PeerEvent>,
    offer: RTCSessionDescription,
    cfg: &MediaConfig,
) -> Result<(String, Vec<Arc<dyn TrackRemote>>), MediaError> {
    pc.set_remote_description(offer)
        .await
        .map_err(|e| MediaError::NotApplicable(e.to_string()))?;
    let answer = pc
        .create_answer(None)
        .await
        .map_err(|e| MediaError::Unanswerable(e.to_string()))?;
    pc.set_local_description(answer)
        .await
        .map_err(MediaError::engine)?;
    let early_tracks = wait_gathered(events, cfg).await?;
    let local = pc
        .local_description()
        .await
        .ok_or_else(|| MediaError::engine("no local description after answering"))?;
    Ok((local.sdp, early_tracks))
}
