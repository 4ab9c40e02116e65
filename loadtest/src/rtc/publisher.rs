//! A WHIP publisher: offers one video track (VP8, or only H.264 as OBS does) and one
//! Opus audio track, posts the offer to `/whip/{room}` with the anchor's token, and
//! streams synthetic VP8 frames at a set bitrate and frame rate, or a real H.264 clip
//! ([`H264Clip`]). A keyframe request from the SFU makes the next frame a keyframe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
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

use super::h264_clip::{H264Clip, H264Source};
use super::peer::{self, PeerEvent, connected, local_offer};
use super::synthetic::{SendLog, audio_payload, frame_payloads, now_us};

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
    /// RTP packets sent, by send time.
    pub sent: Arc<SendLog>,
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

/// A connection with its send-only tracks, and the offer it makes.
struct Prepared {
    pc: Arc<dyn PeerConnection>,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    video_track: Arc<TrackLocalStaticRTP>,
    audio_track: Arc<TrackLocalStaticRTP>,
    video_tr: Arc<dyn RtpTransceiver>,
    audio_tr: Arc<dyn RtpTransceiver>,
    video_ssrc: u32,
    audio_ssrc: u32,
    offer: String,
}

async fn prepare(video_mime: &str) -> anyhow::Result<Prepared> {
    let (pc, mut events) = peer::build("127.0.0.1").await?;
    let video_ssrc = rand::random::<u32>();
    let audio_ssrc = rand::random::<u32>();
    let video_track = track(
        RtpCodecKind::Video,
        codec(video_mime, 90_000, 0),
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
    if video_mime != MIME_TYPE_VP8 {
        offer_only(&video_tr, video_mime).await?;
    }
    let offer = local_offer(&pc, &mut events).await?;
    Ok(Prepared {
        pc,
        events,
        video_track,
        audio_track,
        video_tr,
        audio_tr,
        video_ssrc,
        audio_ssrc,
        offer,
    })
}

/// Makes the transceiver offer `mime` alone (as `setCodecPreferences` does in a
/// browser, and as an encoder with one codec offers).
async fn offer_only(transceiver: &Arc<dyn RtpTransceiver>, mime: &str) -> anyhow::Result<()> {
    let sender = transceiver
        .sender()
        .await?
        .context("the transceiver has no sender")?;
    let codecs: Vec<_> = sender
        .get_parameters()
        .await?
        .rtp_parameters
        .codecs
        .into_iter()
        .filter(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
        .collect();
    if codecs.is_empty() {
        bail!("the media engine has no {mime}");
    }
    transceiver.set_codec_preferences(codecs).await?;
    Ok(())
}

/// The offer a publisher makes (VP8 video and Opus audio, send-only, every candidate),
/// without publishing: for tests that feed offers to a WHIP endpoint themselves.
pub async fn sample_offer() -> anyhow::Result<String> {
    let prepared = prepare(MIME_TYPE_VP8).await?;
    let _ = prepared.pc.close().await;
    Ok(prepared.offer)
}

impl Publisher {
    /// Publishes VP8 to `base` (e.g. `http://127.0.0.1:8080`) in `room` with an anchor
    /// token.
    pub async fn connect(base: &str, room: &str, token: &str) -> anyhow::Result<Self> {
        Self::connect_with(base, room, token, MIME_TYPE_VP8).await
    }

    /// Publishes H.264 (offered alone) for [`Publisher::stream_h264`].
    pub async fn connect_h264(base: &str, room: &str, token: &str) -> anyhow::Result<Self> {
        Self::connect_with(base, room, token, MIME_TYPE_H264).await
    }

    async fn connect_with(
        base: &str,
        room: &str,
        token: &str,
        video_mime: &str,
    ) -> anyhow::Result<Self> {
        let Prepared {
            pc,
            mut events,
            video_track,
            audio_track,
            video_tr,
            audio_tr,
            video_ssrc,
            audio_ssrc,
            offer,
        } = prepare(video_mime).await?;
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
            payload_type: payload_type(&video_tr, video_mime).await?,
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
            sent: Arc::default(),
            events: tokio::sync::Mutex::new(events),
        })
    }

    /// Streams synthetic VP8 until `stop` resolves (or the connection fails).
    pub async fn stream(&self, opts: &PublishOptions, stop: impl std::future::Future<Output = ()>) {
        let mut source = SyntheticSource::new(
            opts,
            (self.video.payload_type, self.video.ssrc),
            (self.audio.payload_type, self.audio.ssrc),
        );
        let tick = source.ticker();
        self.send_frames(tick, stop, |keyframe| source.next_frame(keyframe))
            .await;
    }

    /// Streams an H.264 clip at `fps` (looping) until `stop` resolves; returns the
    /// pictures sent.
    pub async fn stream_h264(
        &self,
        clip: &H264Clip,
        fps: u32,
        stop: impl std::future::Future<Output = ()>,
    ) -> u64 {
        let mut source = H264Source::new(
            clip,
            fps,
            PublishOptions::default().mtu,
            (self.video.payload_type, self.video.ssrc),
            (self.audio.payload_type, self.audio.ssrc),
        );
        let mut tick = tokio::time::interval(Duration::from_secs(1) / fps.max(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        self.send_frames(tick, stop, |keyframe| {
            let sent = now_us();
            let (video, audio) = source.next_frame(keyframe, audio_payload(sent));
            (video, audio, sent)
        })
        .await;
        source.frames()
    }

    /// Sends a frame per tick from `next` (told whether a keyframe is wanted).
    async fn send_frames(
        &self,
        mut tick: tokio::time::Interval,
        stop: impl std::future::Future<Output = ()>,
        mut next: impl FnMut(bool) -> (Vec<rtp::Packet>, rtp::Packet, u64),
    ) {
        tokio::pin!(stop);
        let mut events = self.events.lock().await;
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
                event = events.recv() => match event {
                    Some(PeerEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)) | None => return,
                    _ => continue,
                }
            }
            let (video, audio, sent_us) = next(self.keyframe_wanted.swap(false, Ordering::Relaxed));
            let mut written = 0;
            for packet in video {
                if self.video.track.write_rtp(packet).await.is_err() {
                    return;
                }
                written += 1;
            }
            if self.audio.track.write_rtp(audio).await.is_ok() {
                written += 1;
            }
            self.sent.record(sent_us, written);
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

/// The synthetic stream, frame by frame: video packets (a keyframe every
/// `keyframe_interval` or on request) and one audio packet per frame.
pub struct SyntheticSource {
    opts: PublishOptions,
    frame: u64,
    frame_bytes: usize,
    keyframe_every: u64,
    video: (u8, u32, u16),
    audio: (u8, u32, u16),
    ts_base: u32,
}

impl SyntheticSource {
    /// `video` and `audio` are (payload type, SSRC).
    pub fn new(opts: &PublishOptions, video: (u8, u32), audio: (u8, u32)) -> Self {
        let fps = opts.fps.max(1);
        Self {
            opts: opts.clone(),
            frame: 0,
            frame_bytes: (opts.bitrate_bps / 8 / u64::from(fps)).max(64) as usize,
            keyframe_every: (opts.keyframe_interval.as_secs_f64() * f64::from(fps)).max(1.0) as u64,
            video: (video.0, video.1, rand::random()),
            audio: (audio.0, audio.1, rand::random()),
            ts_base: rand::random(),
        }
    }

    /// Ticks once per frame.
    pub fn ticker(&self) -> tokio::time::Interval {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / self.opts.fps.max(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tick
    }

    /// The next frame's packets, and the send time they carry (µs since the epoch).
    pub fn next_frame(&mut self, keyframe_wanted: bool) -> (Vec<rtp::Packet>, rtp::Packet, u64) {
        let fps = u64::from(self.opts.fps.max(1));
        let frame = self.frame;
        self.frame += 1;
        let keyframe = frame.is_multiple_of(self.keyframe_every) || keyframe_wanted;
        let sent = now_us();
        let ts = self.ts_base.wrapping_add((frame * 90_000 / fps) as u32);
        let payloads = frame_payloads(frame, keyframe, self.frame_bytes, self.opts.mtu, sent);
        let last = payloads.len() - 1;
        let video = payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                let seq = self.video.2;
                self.video.2 = seq.wrapping_add(1);
                rtp_packet((self.video.0, self.video.1), seq, ts, i == last, payload)
            })
            .collect();
        let seq = self.audio.2;
        self.audio.2 = seq.wrapping_add(1);
        let audio_ts = (frame * 48_000 / fps) as u32;
        let audio = rtp_packet(
            (self.audio.0, self.audio.1),
            seq,
            audio_ts,
            true,
            audio_payload(sent),
        );
        (video, audio, sent)
    }
}

/// An RTP packet of `stream` (payload type, SSRC).
pub(crate) fn rtp_packet(
    stream: (u8, u32),
    seq: u16,
    ts: u32,
    marker: bool,
    payload: impl Into<bytes::Bytes>,
) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            marker,
            payload_type: stream.0,
            sequence_number: seq,
            timestamp: ts,
            ssrc: stream.1,
            ..Default::default()
        },
        payload: payload.into(),
    }
}

/// Sends the synthetic stream as plain RTP over UDP (to a Janus Streaming mountpoint),
/// video and audio to their own ports, until `stop` resolves.
pub async fn stream_plain_rtp(
    opts: &PublishOptions,
    video_to: std::net::SocketAddr,
    audio_to: std::net::SocketAddr,
    sent: Arc<SendLog>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    use rtc::shared::marshal::Marshal;
    tokio::pin!(stop);
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0").await?;
    let mut source = SyntheticSource::new(opts, (96, rand::random()), (111, rand::random()));
    let mut tick = source.ticker();
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tick.tick() => {}
        }
        let (video, audio, sent_us) = source.next_frame(false);
        let packets = video.len() as u64 + 1;
        for packet in video {
            socket.send_to(&packet.marshal()?, video_to).await?;
        }
        socket.send_to(&audio.marshal()?, audio_to).await?;
        sent.record(sent_us, packets);
    }
}
