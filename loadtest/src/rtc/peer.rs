//! The load generator's own WebRTC peer, built the way a browser or a third-party
//! client would be: webrtc-rs's default codecs and interceptors (NACK, reports, TWCC),
//! plus the absolute-send-time header extension for video, which browsers offer too
//! (so the SFU stamps it on every packet, as it does for them); nothing the server adds
//! for itself (no playout-delay extension, no keyframe tap).
//! Two settings differ from the library's defaults because this machine has only a
//! loopback interface, as a browser started with the equivalent flags would: mDNS off
//! and loopback candidates on. Non-trickle: offers and answers carry every candidate.
//!
//! One addition plays the part of a browser's encoder: webrtc-rs hands inbound RTCP to
//! the application only when asked, so [`KeyframeRequests`] passes keyframe requests
//! (PLI, FIR) up to the synthetic publisher, which answers them with a keyframe.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use std::collections::VecDeque;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpHeaderExtensionCapability, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState, Registry, SettingEngineBuilder,
};

/// What a connection reports.
pub enum PeerEvent {
    /// Every local candidate is gathered.
    Gathered,
    State(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
}

struct Events(mpsc::UnboundedSender<PeerEvent>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
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

/// Hands inbound keyframe requests (PLI, FIR) to the application, where the publisher
/// reads them as track events; every other packet goes on unchanged.
#[derive(Default)]
struct KeyframeRequests {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequests {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = std::time::Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet
            && packets.iter().any(|p| {
                let any = p.as_any();
                any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
            })
        {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.writes.pop_front()
    }
}

impl Interceptor for KeyframeRequests {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// A new connection with ICE on `bind` (an IP address), and its events.
pub async fn build(
    bind: &str,
) -> anyhow::Result<(Arc<dyn PeerConnection>, mpsc::UnboundedReceiver<PeerEvent>)> {
    let mut media = MediaEngine::default();
    media.register_default_codecs()?;
    media.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time".to_owned(),
        },
        RtpCodecKind::Video,
        None,
    )?;
    let registry = register_default_interceptors(Registry::new(), &mut media)?
        .with(Slot::from(14_000), KeyframeRequests::default());
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(true)
        .build();
    let (tx, rx) = mpsc::unbounded_channel();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(Arc::new(Events(tx)))
        .with_udp_addrs(vec![format!("{bind}:0")])
        .build()
        .await?;
    Ok((Arc::new(pc), rx))
}

/// Adds a receive-only video and a receive-only audio transceiver (a player's offer).
pub async fn add_receivers(pc: &Arc<dyn PeerConnection>) -> anyhow::Result<()> {
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await?;
    }
    Ok(())
}

/// Creates the offer and waits until it carries every candidate.
pub async fn local_offer(
    pc: &Arc<dyn PeerConnection>,
    events: &mut mpsc::UnboundedReceiver<PeerEvent>,
) -> anyhow::Result<String> {
    let offer = pc.create_offer(None).await?;
    pc.set_local_description(offer).await?;
    gathered(events).await?;
    Ok(pc.local_description().await.context("no local offer")?.sdp)
}

/// Waits until every local candidate is gathered.
pub async fn gathered(events: &mut mpsc::UnboundedReceiver<PeerEvent>) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.recv().await {
            if let PeerEvent::Gathered = event {
                return Ok(());
            }
        }
        anyhow::bail!("the connection ended while gathering candidates")
    })
    .await
    .context("gathering ICE candidates timed out")?
}

/// Waits until the connection is up (ICE and DTLS).
pub async fn connected(events: &mut mpsc::UnboundedReceiver<PeerEvent>) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(event) = events.recv().await {
            match event {
                PeerEvent::State(RTCPeerConnectionState::Connected) => return Ok(()),
                PeerEvent::State(
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed,
                ) => {
                    anyhow::bail!("the connection failed")
                }
                _ => {}
            }
        }
        anyhow::bail!("the connection ended")
    })
    .await
    .context("connecting timed out")?
}

/// Whether a VP8 RTP payload starts a keyframe, read with webrtc-rs's own VP8
/// depacketizer (RFC 7741): the start of partition 0 whose frame header has P = 0.
pub fn vp8_starts_keyframe(payload: &bytes::Bytes) -> bool {
    let mut vp8 = Vp8Packet::default();
    match vp8.depacketize(payload) {
        Ok(frame) => vp8.s == 1 && vp8.pid == 0 && frame.first().is_some_and(|h| h & 0x01 == 0),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::vp8_starts_keyframe;
    use bytes::Bytes;

    #[test]
    fn vp8_keyframes_are_told_from_the_payload() {
        // S=1, PID=0, no extension; frame header P=0: a keyframe.
        assert!(vp8_starts_keyframe(&Bytes::from_static(&[
            0x10, 0x00, 0x9d, 0x01, 0x2a
        ])));
        // P=1: an interframe.
        assert!(!vp8_starts_keyframe(&Bytes::from_static(&[
            0x10, 0x01, 0x00, 0x00
        ])));
        // Not the start of partition 0.
        assert!(!vp8_starts_keyframe(&Bytes::from_static(&[
            0x00, 0x00, 0x00, 0x00
        ])));
        // With a 15-bit picture id in the extension.
        assert!(vp8_starts_keyframe(&Bytes::from_static(&[
            0x90, 0x80, 0x81, 0x23, 0x00
        ])));
        assert!(!vp8_starts_keyframe(&Bytes::new()));
    }
}
