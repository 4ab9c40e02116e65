//! A WHIP publisher: offers one VP8 video and one Opus audio track, posts the offer to
//! `/whip/{room}` with the anchor's token, and streams synthetic frames at a set bitrate
//! and frame rate. A keyframe request from the SFU makes the next frame a keyframe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};
use webrtc::rtp_transceiver::RtpTransceiver;

use super::synthetic::{audio_payload, frame_payloads, now_us};
use lockstep_sfu::MediaConfig;
use lockstep_sfu::engine::{self, PeerEvent};

/// What to send.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub bitrate_bps: u64,
    pub fps: u32,
    /// A keyframe at least this often (and whenever the SFU asks).
    pub keyframe_interval: Duration,
    pub mtu: usize,
}

impl Default for PublishOptions {
    fn default() -> Self {
        Self {
            bitrate_bps: 1_500_000,
            fps: 30,
            keyframe_interval: Duration::from_secs(2),
            mtu: 1100,
        }
    }
}

struct Outgoing {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    payload_type: u8,
}

/// A connected publisher.
pub struct Publisher {
    pc: Arc<dyn PeerConnection>,
    video: Outgoing,
    audio: Outgoing,
    location: String,
    base: String,
    token: String,
    keyframe_wanted: Arc<AtomicBool>,
    /// Keyframe requests received from the SFU.
    pub keyframe_requests: Arc<AtomicU64>,
    /// RTP packets sent.
    pub packets_sent: AtomicU64,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<PeerEvent>>,
}

fn codec(mime: &str, clock_rate: u32, channels: u16) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: mime.to_owned(),
        clock_rate,
        channels,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

fn track(kind: RtpCodecKind, codec: RTCRtpCodec, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "publisher".to_owned(),
        format!("{kind}-{ssrc}"),
        format!("{kind}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )))
}

async fn payload_type(transceiver: &Arc<dyn RtpTransceiver>, mime: &str) -> anyhow::Result<u8> {
    let sender = transceiver
        .sender()
        .await?
        .context("the transceiver has no sender")?;
    let params = sender.get_parameters().await?;
    params
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
        .map(|c| c.payload_type)
        .with_context(|| format!("{mime} was not negotiated"))
}

/// Gathers every candidate for an offer made on `pc`; returns the offer's SDP.
pub(crate) async fn local_offer(
    pc: &Arc<dyn PeerConnection>,
    events: &mut mpsc::UnboundedReceiver<PeerEvent>,
) -> anyhow::Result<String> {
    let offer = pc.create_offer(None).await?;
    pc.set_local_description(offer).await?;
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.recv().await {
            if let PeerEvent::Gathered = event {
                return Ok(());
            }
        }
        bail!("the connection closed while gathering")
    })
    .await
    .context("gathering ICE candidates timed out")??;
    Ok(pc
        .local_description()
        .await
        .context("no local description")?
        .sdp)
}

/// Waits until the connection is up.
pub(crate) async fn connected(
    events: &mut mpsc::UnboundedReceiver<PeerEvent>,
) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(event) = events.recv().await {
            match event {
                PeerEvent::State(RTCPeerConnectionState::Connected) => return Ok(()),
                PeerEvent::State(
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed,
                ) => {
                    bail!("the connection failed")
                }
                _ => {}
            }
        }
        bail!("the connection ended")
    })
    .await
    .context("connecting timed out")?
}

impl Publisher {
    /// Publishes to `base` (e.g. `http://127.0.0.1:8080`) in `room` with an anchor token.
    pub async fn connect(base: &str, room: &str, token: &str) -> anyhow::Result<Self> {
        let cfg = MediaConfig::default();
        let (pc, mut events) = engine::build_peer(&cfg).await?;
        let video_ssrc = rand::random::<u32>();
        let audio_ssrc = rand::random::<u32>();
        let video_track = track(
            RtpCodecKind::Video,
            codec(MIME_TYPE_VP8, 90_000, 0),
            video_ssrc,
        );
        let audio_track = track(
            RtpCodecKind::Audio,
            codec(MIME_TYPE_OPUS, 48_000, 2),
            audio_ssrc,
        );
        let sendonly = || {
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                ..Default::default()
            })
        };
        let video_tr = pc
            .add_transceiver_from_track(video_track.clone() as Arc<dyn TrackLocal>, sendonly())
            .await?;
        let audio_tr = pc
            .add_transceiver_from_track(audio_track.clone() as Arc<dyn TrackLocal>, sendonly())
            .await?;
        let offer = local_offer(&pc, &mut events).await?;
        let response = reqwest::Client::new()
            .post(format!("{base}/whip/{room}"))
            .bearer_auth(token)
            .header("content-type", "application/sdp")
            .body(offer)
            .send()
            .await?;
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await?;
        if status.as_u16() != 201 {
            bail!("WHIP refused ({status}): {body}");
        }
        pc.set_remote_description(RTCSessionDescription::answer(body)?)
            .await?;
        connected(&mut events).await?;
        let video = Outgoing {
            payload_type: payload_type(&video_tr, MIME_TYPE_VP8).await?,
            track: video_track,
            ssrc: video_ssrc,
        };
        let audio = Outgoing {
            payload_type: payload_type(&audio_tr, MIME_TYPE_OPUS).await?,
            track: audio_track,
            ssrc: audio_ssrc,
        };
        let keyframe_wanted = Arc::new(AtomicBool::new(true));
        let keyframe_requests = Arc::new(AtomicU64::new(0));
        let (feedback, wanted, requests) = (
            video.track.clone(),
            keyframe_wanted.clone(),
            keyframe_requests.clone(),
        );
        tokio::spawn(async move {
            while let Some(event) = feedback.poll().await {
                if let TrackLocalEvent::OnRtcpPacket(_) = event {
                    requests.fetch_add(1, Ordering::Relaxed);
                    wanted.store(true, Ordering::Relaxed);
                }
            }
        });
        Ok(Self {
            pc,
            video,
            audio,
            location,
            base: base.to_owned(),
            token: token.to_owned(),
            keyframe_wanted,
            keyframe_requests,
            packets_sent: AtomicU64::new(0),
            events: tokio::sync::Mutex::new(events),
        })
    }

    /// Streams until `stop` resolves (or the connection fails).
    pub async fn stream(&self, opts: &PublishOptions, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let fps = opts.fps.max(1);
        let frame_bytes = (opts.bitrate_bps / 8 / u64::from(fps)).max(64) as usize;
        let mut tick = tokio::time::interval(Duration::from_secs(1) / fps);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let keyframe_every =
            (opts.keyframe_interval.as_secs_f64() * f64::from(fps)).max(1.0) as u64;
        let (mut video_seq, mut audio_seq) = (rand::random::<u16>(), rand::random::<u16>());
        let ts_base = rand::random::<u32>();
        let mut events = self.events.lock().await;
        for frame in 0u64.. {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
                event = events.recv() => match event {
                    Some(PeerEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)) | None => return,
                    _ => continue,
                }
            }
            let keyframe =
                frame % keyframe_every == 0 || self.keyframe_wanted.swap(false, Ordering::Relaxed);
            let sent = now_us();
            let ts = ts_base.wrapping_add((frame * 90_000 / u64::from(fps)) as u32);
            let payloads = frame_payloads(frame, keyframe, frame_bytes, opts.mtu, sent);
            let last = payloads.len() - 1;
            for (i, payload) in payloads.into_iter().enumerate() {
                let packet = rtp_packet(&self.video, video_seq, ts, i == last, payload);
                video_seq = video_seq.wrapping_add(1);
                if self.video.track.write_rtp(packet).await.is_err() {
                    return;
                }
                self.packets_sent.fetch_add(1, Ordering::Relaxed);
            }
            let audio_ts = (frame * 48_000 / u64::from(fps)) as u32;
            let packet = rtp_packet(&self.audio, audio_seq, audio_ts, true, audio_payload(sent));
            audio_seq = audio_seq.wrapping_add(1);
            if self.audio.track.write_rtp(packet).await.is_ok() {
                self.packets_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Ends the WHIP session (`DELETE` on its resource) and closes the connection.
    pub async fn stop(&self) -> anyhow::Result<u16> {
        let status = reqwest::Client::new()
            .delete(format!("{}{}", self.base, self.location))
            .bearer_auth(&self.token)
            .send()
            .await?
            .status()
            .as_u16();
        let _ = self.pc.close().await;
        Ok(status)
    }

    /// Closes the connection without telling the server (a publisher that vanishes).
    pub async fn vanish(&self) {
        let _ = self.pc.close().await;
    }

    /// The WHIP session's resource path.
    pub fn location(&self) -> &str {
        &self.location
    }
}

fn rtp_packet(out: &Outgoing, seq: u16, ts: u32, marker: bool, payload: Vec<u8>) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            marker,
            payload_type: out.payload_type,
            sequence_number: seq,
            timestamp: ts,
            ssrc: out.ssrc,
            ..Default::default()
        },
        payload: payload.into(),
    }
}
