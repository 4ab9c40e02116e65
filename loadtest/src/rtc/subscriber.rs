//! A subscriber: offers to receive one video and one audio track, and measures what
//! arrives — packets, sequence gaps (loss), keyframes, and forwarding latency from the
//! send time the synthetic payload carries. Signalling is the caller's (WHEP here, or
//! the viewer WebSocket's `rtc_offer` in tests).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::PeerConnection;

use super::peer::{self, PeerEvent, vp8_starts_keyframe};
use super::peer::{connected, local_offer};
use super::synthetic::{now_us, parse};
use crate::report::Hist;

/// What one subscriber received.
#[derive(Debug, Default, Clone)]
pub struct SubscriberStats {
    pub video_packets: u64,
    pub audio_packets: u64,
    /// Sequence numbers skipped (video and audio): packets the SFU or network lost.
    pub lost: u64,
    pub keyframes: u64,
    /// Send-to-receive latency of every synthetic packet, µs.
    pub latency: Hist,
    /// Video frames received, in order: (RTP timestamp, arrival µs since the epoch) of
    /// each frame's first packet.
    pub frames: Vec<(u32, u64)>,
    /// The measuring window `[start, end)` in send time (µs), see
    /// [`Subscriber::set_window`], and the packets received that were sent in it.
    pub window: (u64, u64),
    pub in_window: u64,
}

#[derive(Default)]
struct SeqTracker {
    highest: Option<u64>,
    received: u64,
    first: u64,
}

impl SeqTracker {
    /// Extends a 16-bit sequence number around the highest seen.
    fn add(&mut self, seq: u16) {
        let ext = match self.highest {
            None => {
                self.first = u64::from(seq) + (1 << 16);
                self.first
            }
            Some(high) => {
                let base = high & !0xffff;
                let candidates = [base.wrapping_sub(1 << 16), base, base + (1 << 16)];
                candidates
                    .into_iter()
                    .map(|b| b + u64::from(seq))
                    .min_by_key(|c| c.abs_diff(high))
                    .unwrap_or(high)
            }
        };
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.received += 1;
    }

    fn lost(&self) -> u64 {
        self.highest
            .map_or(0, |h| (h - self.first + 1).saturating_sub(self.received))
    }
}

/// A receiving connection.
pub struct Subscriber {
    pc: Arc<dyn PeerConnection>,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    offer: Option<String>,
    stats: Arc<Mutex<SubscriberStats>>,
    trackers: Arc<Mutex<[SeqTracker; 2]>>,
    location: Option<String>,
}

impl Subscriber {
    /// A connection with its offer ready ([`offer`](Self::offer)), ICE on 127.0.0.1.
    pub async fn new() -> anyhow::Result<Self> {
        Self::offering("127.0.0.1").await
    }

    async fn receiving(
        bind: &str,
    ) -> anyhow::Result<(Arc<dyn PeerConnection>, mpsc::UnboundedReceiver<PeerEvent>)> {
        let (pc, events) = peer::build(bind).await?;
        peer::add_receivers(&pc).await?;
        Ok((pc, events))
    }

    /// A connection with ICE bound to `bind`, its offer ready.
    pub async fn offering(bind: &str) -> anyhow::Result<Self> {
        let (pc, mut events) = Self::receiving(bind).await?;
        let offer = local_offer(&pc, &mut events).await?;
        Ok(Self {
            pc,
            events,
            offer: Some(offer),
            stats: Arc::default(),
            trackers: Arc::default(),
            location: None,
        })
    }

    /// The SDP to send: our offer, or our answer after [`answering`](Self::answering).
    pub fn offer(&self) -> &str {
        self.offer.as_deref().unwrap_or_default()
    }

    /// For SFUs that offer (Janus): answers `offer`; send [`answer`](Self::offer) back,
    /// then call [`start`](Self::start).
    pub async fn answering(bind: &str, offer: String) -> anyhow::Result<Self> {
        let (pc, mut events) = Self::receiving(bind).await?;
        pc.set_remote_description(RTCSessionDescription::offer(offer)?)
            .await?;
        let answer = pc.create_answer(None).await?;
        pc.set_local_description(answer).await?;
        peer::gathered(&mut events).await?;
        let local = pc.local_description().await.context("no local answer")?;
        Ok(Self {
            pc,
            events,
            offer: Some(local.sdp),
            stats: Arc::default(),
            trackers: Arc::default(),
            location: None,
        })
    }

    /// Applies the SFU's answer and waits for the connection and its tracks.
    pub async fn accept(&mut self, answer: String) -> anyhow::Result<()> {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(answer)?)
            .await?;
        self.start().await
    }

    /// Waits for the connection and reads its tracks (after [`answering`](Self::answering)
    /// the answer must have been delivered first).
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let (stats, trackers) = (self.stats.clone(), self.trackers.clone());
        let (tracks_tx, mut tracks_rx) = mpsc::unbounded_channel();
        let mut events = std::mem::replace(&mut self.events, mpsc::unbounded_channel().1);
        let (state_tx, state_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    PeerEvent::Track(track) => {
                        let _ = tracks_tx.send(track);
                    }
                    other => {
                        let _ = state_tx.send(other);
                    }
                }
            }
        });
        self.events = state_rx;
        tokio::spawn(async move {
            while let Some(track) = tracks_rx.recv().await {
                tokio::spawn(read_track(track, stats.clone(), trackers.clone()));
            }
        });
        connected(&mut self.events).await
    }

    /// Subscribes by WHEP at `base` (e.g. `http://127.0.0.1:8080`).
    pub async fn whep(base: &str, room: &str, token: Option<&str>) -> anyhow::Result<Self> {
        let mut sub = Self::new().await?;
        let mut request = reqwest::Client::new()
            .post(format!("{base}/whep/{room}"))
            .header("content-type", "application/sdp")
            .body(sub.offer().to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        sub.location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await?;
        if status.as_u16() != 201 {
            bail!("WHEP refused ({status}): {body}");
        }
        sub.accept(body).await?;
        Ok(sub)
    }

    /// The WHEP resource path, when subscribed by WHEP.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// What arrived so far.
    pub fn stats(&self) -> SubscriberStats {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let trackers = self.trackers.lock().unwrap_or_else(|e| e.into_inner());
        stats.lost = trackers.iter().map(SeqTracker::lost).sum();
        stats
    }

    /// Starts a measuring window: from now on latency is recorded afresh, and packets
    /// carrying a send time in `[start_us, end_us)` are counted in `in_window`.
    pub fn set_window(&self, start_us: u64, end_us: u64) {
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        s.latency = Hist::default();
        s.window = (start_us, end_us);
        s.in_window = 0;
    }

    /// Waits until at least `n` video packets arrived.
    pub async fn wait_video(&self, n: u64, timeout: Duration) -> anyhow::Result<()> {
        self.wait_packets(n, timeout, "video", |s| s.video_packets)
            .await
    }

    /// Waits until at least `n` audio packets arrived.
    pub async fn wait_audio(&self, n: u64, timeout: Duration) -> anyhow::Result<()> {
        self.wait_packets(n, timeout, "audio", |s| s.audio_packets)
            .await
    }

    async fn wait_packets(
        &self,
        n: u64,
        timeout: Duration,
        kind: &str,
        count: impl Fn(&SubscriberStats) -> u64,
    ) -> anyhow::Result<()> {
        tokio::time::timeout(timeout, async {
            while count(&self.stats()) < n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .with_context(|| format!("fewer than {n} {kind} packets within {timeout:?}"))
    }

    /// Closes the connection.
    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

async fn read_track(
    track: Arc<dyn TrackRemote>,
    stats: Arc<Mutex<SubscriberStats>>,
    trackers: Arc<Mutex<[SeqTracker; 2]>>,
) {
    let video = track.kind().await == RtpCodecKind::Video;
    let mut last_ts = None;
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else {
            continue;
        };
        let now = now_us();
        trackers.lock().unwrap_or_else(|e| e.into_inner())[usize::from(!video)]
            .add(packet.header.sequence_number);
        let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
        if video {
            s.video_packets += 1;
            if vp8_starts_keyframe(&packet.payload) {
                s.keyframes += 1;
            }
            if last_ts != Some(packet.header.timestamp) {
                s.frames.push((packet.header.timestamp, now));
            }
            last_ts = Some(packet.header.timestamp);
        } else {
            s.audio_packets += 1;
        }
        if let Some((sent, _)) = parse(&packet.payload) {
            s.latency.record_us(now.saturating_sub(sent));
            if (s.window.0..s.window.1).contains(&sent) {
                s.in_window += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SeqTracker;

    #[test]
    fn gaps_count_as_loss_across_wrap_around() {
        let mut t = SeqTracker::default();
        for seq in [65_533u16, 65_534, 65_535, 0, 2, 3] {
            t.add(seq);
        }
        assert_eq!(t.lost(), 1);
        let mut t = SeqTracker::default();
        t.add(10);
        t.add(9); // late, not a loss
        t.add(11);
        assert_eq!(t.lost(), 0);
    }
}
