//! A relay shard: forwards the publisher's packets to its share of the room's
//! subscribers. Forwarding never waits on a subscriber: each packet is rewritten for the
//! subscriber (SSRC, payload type, sequence number across layer switches, aligned
//! timestamp, playout delay) and `try_send` into its bounded queue; a full queue drops
//! that packet for that subscriber only and lowers its capacity estimate. Once a second
//! the relay re-picks every subscriber's simulcast layer. A new subscriber is sent its
//! layer's latest keyframe group ([`GopCache`]) as soon as its connection is up.
//!
//! Panics are contained where they can start: forwarding to one subscriber runs inside
//! a panic boundary (a panic drops that subscriber, counted in
//! `lockstep_actor_panics_total{actor="relay"}`, and the others keep their video), and
//! a negotiation — where webrtc-rs parses the viewer's SDP — runs as its own task, so a
//! parser panic answers `invalid_sdp` instead of taking the relay down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use lockstep_runtime::now_ms;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use tokio::sync::mpsc;

use crate::config::MediaConfig;
use crate::gop::{GopCache, fast_start_times};
use crate::keyframe::KeyframeWanted;
use crate::layers::{
    AudioSequence, Estimator, Feedback, Forward, LayerId, LayerRates, LayerSwitch, Preference,
    choose_layer, next_layer,
};
use crate::metrics::MediaMetrics;
use crate::packet::{Deliver, MediaPacket};
use crate::subscriber::{
    self, OutStream, Outgoing, SubscriberFeedback, SubscriberGone, SubscriberKeyframe,
    SubscriberReady, WriterEvents,
};
use crate::{MediaError, MediaId};

/// Adds a subscriber: negotiate on this relay's arbiter, answer the offer.
#[derive(Message)]
#[rtype(result = "Result<String, MediaError>")]
pub struct AddSubscriber {
    pub id: MediaId,
    pub offer: String,
    pub preference: Preference,
    pub video_codec: Option<RTCRtpCodec>,
    pub audio_codec: Option<RTCRtpCodec>,
}

/// Changes a subscriber's layer preference.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPreference {
    pub id: MediaId,
    pub preference: Preference,
}

/// Removes a subscriber (it left its room, or the room dropped it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DropSubscriber {
    pub id: MediaId,
}

/// A subscriber is no longer forwarded to (relay → media room), whichever side ended it.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SubscriberLeft {
    pub id: MediaId,
}

/// Where a relay reports to: its media room.
#[derive(Clone)]
pub(crate) struct RelayEvents {
    pub left: Recipient<SubscriberLeft>,
    pub keyframes: Recipient<KeyframeWanted>,
}

/// Drops every subscriber and stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopRelay;

struct Sub {
    queue: mpsc::Sender<Outgoing>,
    video: Option<OutStream>,
    audio: Option<OutStream>,
    playout_delay: Option<(u8, Bytes)>,
    /// The absolute-send-time extension's id, when negotiated.
    abs_send_time: Option<u8>,
    /// Its connection is up; until then nothing is forwarded to it.
    ready: bool,
    switch: LayerSwitch,
    audio_seq: AudioSequence,
    /// The ingest of the last packet forwarded to it.
    source: Option<MediaId>,
    preference: Preference,
    estimator: Estimator,
    sent_bytes: u64,
    dropped: u64,
    /// What its receiver reported in this window (REMB, loss).
    feedback: Feedback,
    /// Makes forwarding to this subscriber panic (unit tests of the panic boundary).
    #[cfg(test)]
    panic_for_test: bool,
}

/// One shard of a room's subscribers.
pub struct Relay {
    cfg: Arc<MediaConfig>,
    room: RelayEvents,
    metrics: MediaMetrics,
    subs: HashMap<MediaId, Sub>,
    rates: LayerRates,
    gop: GopCache,
}

impl Relay {
    pub(crate) fn new(cfg: Arc<MediaConfig>, room: RelayEvents, metrics: MediaMetrics) -> Self {
        Self {
            gop: GopCache::new(cfg.keyframe_cache_packets),
            cfg,
            room,
            metrics,
            subs: HashMap::new(),
            rates: LayerRates::default(),
        }
    }

    fn pick_layers(&mut self) {
        let layers = self.rates.rates();
        for sub in self.subs.values_mut().filter(|s| s.ready) {
            let current = sub.switch.current();
            if let Some(layer) = next_layer(sub.preference, &layers, sub.estimator.bps(), current) {
                sub.switch.want(layer);
            }
            // Still waiting for the wanted layer's keyframe: ask (again). The room folds
            // repeated asks into at most one request per interval, and a request lost on
            // the way (RTCP is unreliable) is repeated here a second later.
            if let Some(target) = sub.switch.target()
                && sub.switch.current() != Some(target)
            {
                self.room.keyframes.do_send(KeyframeWanted {
                    layer: target.clone(),
                });
            }
        }
    }

    fn forward(&mut self, media: &MediaPacket) {
        let room = &self.room;
        let failed = forward(&mut self.subs, media, &self.metrics, |layer| {
            room.keyframes.do_send(KeyframeWanted { layer })
        });
        for id in failed {
            self.metrics
                .actor_panics
                .with_label_values(&["relay"])
                .inc();
            tracing::error!(subscriber = %id, "forwarding to a subscriber panicked; dropping it");
            self.remove(id);
        }
    }

    fn close_window(&mut self) {
        for (id, sub) in self.subs.iter_mut() {
            let feedback = std::mem::take(&mut sub.feedback);
            let backoff = sub
                .estimator
                .window(sub.sent_bytes * 8, sub.dropped, feedback);
            if let Some(backoff) = backoff {
                self.metrics
                    .estimate_backoffs
                    .with_label_values(&[backoff.as_str()])
                    .inc();
            }
            tracing::debug!(
                subscriber = %id,
                sent_bps = sub.sent_bytes * 8,
                dropped = sub.dropped,
                ?feedback,
                ?backoff,
                estimate_bps = sub.estimator.bps(),
                layer = ?sub.switch.current(),
                "subscriber window"
            );
            sub.sent_bytes = 0;
            sub.dropped = 0;
        }
        self.pick_layers();
    }
}

impl Actor for Relay {
    type Context = Context<Self>;
}

impl Handler<Deliver> for Relay {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        let media = msg.0;
        if media.video
            && self
                .rates
                .add(&media.layer, media.packet.payload.len() + 12, now_ms())
        {
            self.close_window();
        }
        self.gop.push(&media, Instant::now());
        self.forward(&media);
    }
}

impl Handler<AddSubscriber> for Relay {
    type Result = ResponseActFuture<Self, Result<String, MediaError>>;

    fn handle(&mut self, msg: AddSubscriber, ctx: &mut Context<Self>) -> Self::Result {
        let cfg = self.cfg.clone();
        let relay = ctx.address();
        let events = WriterEvents {
            ready: relay.clone().recipient(),
            keyframe: relay.clone().recipient(),
            feedback: relay.clone().recipient(),
            gone: relay.recipient(),
        };
        // Its own task on this arbiter: a panic inside webrtc-rs (parsing the offer,
        // applying it) ends that task only and comes back as an error.
        let negotiation = actix_rt::spawn(async move {
            subscriber::negotiate(&cfg, &msg.offer, msg.video_codec, msg.audio_codec)
                .await
                .map(|n| (msg.id, msg.preference, n))
        });
        let panics = self.metrics.actor_panics.clone();
        let work = async move {
            negotiation.await.unwrap_or_else(|e| {
                if e.is_panic() {
                    panics.with_label_values(&["relay"]).inc();
                }
                Err(MediaError::Unprocessable)
            })
        };
        Box::pin(work.into_actor(self).map(move |result, this, _| {
            let (id, preference, negotiated) = result?;
            let (tx, rx) = mpsc::channel(this.cfg.subscriber_queue_packets.max(1));
            let connect_timeout = std::time::Duration::from_millis(this.cfg.connect_timeout_ms);
            actix_rt::spawn(subscriber::write_loop(
                id,
                negotiated.link,
                rx,
                events,
                connect_timeout,
            ));
            this.subs.insert(
                id,
                Sub {
                    queue: tx,
                    video: negotiated.video,
                    audio: negotiated.audio,
                    playout_delay: negotiated.playout_delay,
                    abs_send_time: negotiated.abs_send_time,
                    ready: false,
                    switch: LayerSwitch::default(),
                    audio_seq: AudioSequence::default(),
                    source: None,
                    preference,
                    estimator: Estimator::new(this.cfg.initial_estimate_bps),
                    sent_bytes: 0,
                    dropped: 0,
                    feedback: Feedback::default(),
                    #[cfg(test)]
                    panic_for_test: false,
                },
            );
            this.metrics.subscribers.inc();
            Ok(negotiated.answer)
        }))
    }
}

impl Handler<SetPreference> for Relay {
    type Result = ();

    fn handle(&mut self, msg: SetPreference, _: &mut Context<Self>) {
        if let Some(sub) = self.subs.get_mut(&msg.id) {
            sub.preference = msg.preference;
        }
        self.pick_layers();
    }
}

impl Relay {
    fn remove(&mut self, id: MediaId) {
        if self.subs.remove(&id).is_some() {
            self.metrics.subscribers.dec();
            self.room.left.do_send(SubscriberLeft { id });
        }
    }
}

impl Handler<DropSubscriber> for Relay {
    type Result = ();

    fn handle(&mut self, msg: DropSubscriber, _: &mut Context<Self>) {
        self.remove(msg.id);
    }
}

impl Handler<SubscriberGone> for Relay {
    type Result = ();

    fn handle(&mut self, msg: SubscriberGone, _: &mut Context<Self>) {
        self.remove(msg.id);
    }
}

impl Handler<SubscriberReady> for Relay {
    type Result = ();

    fn handle(&mut self, msg: SubscriberReady, _: &mut Context<Self>) {
        if let Some(sub) = self.subs.get_mut(&msg.id) {
            sub.ready = true;
            // Start on the layer the preference picks (or the first one seen), from its
            // latest keyframe group when there is one: no keyframe to wait for then.
            let layers = self.rates.rates();
            if let Some(layer) = choose_layer(sub.preference, &layers, sub.estimator.bps())
                .or_else(|| self.gop.any_layer(Instant::now()))
            {
                sub.switch.want(layer);
            }
            if let Some(target) = sub.switch.target().cloned() {
                let sent_at = abs_send_time_now();
                let group = self.gop.group(&target, Instant::now());
                for (media, ts) in group.iter().zip(fast_start_times(group)) {
                    let squeezed = MediaPacket {
                        video: true,
                        layer: media.layer.clone(),
                        keyframe: media.keyframe,
                        media_ts: ts,
                        source: media.source,
                        packet: media.packet.clone(),
                    };
                    forward_one(sub, &squeezed, &sent_at, &self.metrics, &mut |_| {});
                }
                if !group.is_empty() {
                    self.metrics.keyframe_cache_hits.inc();
                }
            }
            self.pick_layers();
        }
    }
}

impl Handler<SubscriberKeyframe> for Relay {
    type Result = ();

    fn handle(&mut self, msg: SubscriberKeyframe, _: &mut Context<Self>) {
        if let Some(layer) = self.subs.get(&msg.id).and_then(|s| s.switch.current()) {
            self.room.keyframes.do_send(KeyframeWanted {
                layer: layer.clone(),
            });
        }
    }
}

impl Handler<SubscriberFeedback> for Relay {
    type Result = ();

    fn handle(&mut self, msg: SubscriberFeedback, _: &mut Context<Self>) {
        if let Some(sub) = self.subs.get_mut(&msg.id) {
            sub.feedback.add(msg.feedback);
        }
    }
}

impl Handler<StopRelay> for Relay {
    type Result = ();

    fn handle(&mut self, _: StopRelay, ctx: &mut Context<Self>) {
        let n = self.subs.len() as i64;
        self.subs.clear();
        self.metrics.subscribers.sub(n);
        ctx.stop();
    }
}

/// Queues one packet for every subscriber of a shard, rewritten for each; never waits.
/// Returns the subscribers whose forwarding panicked (the caller drops them).
fn forward(
    subs: &mut HashMap<MediaId, Sub>,
    media: &MediaPacket,
    metrics: &MediaMetrics,
    mut want_keyframe: impl FnMut(LayerId),
) -> Vec<MediaId> {
    let mut failed = Vec::new();
    let sent_at = if media.video {
        abs_send_time_now()
    } else {
        Bytes::new()
    };
    for (id, sub) in subs.iter_mut().filter(|(_, s)| s.ready) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            forward_one(sub, media, &sent_at, metrics, &mut want_keyframe)
        }));
        if outcome.is_err() {
            failed.push(*id);
        }
    }
    failed
}

/// Now in the absolute-send-time extension's form: seconds in 6.18 fixed point, 24 bits
/// (it wraps every 64 s; receivers use differences).
fn abs_send_time_now() -> Bytes {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Bytes::copy_from_slice(&abs_send_time(since_epoch))
}

fn abs_send_time(since_epoch: std::time::Duration) -> [u8; 3] {
    let value = ((since_epoch.as_nanos() << 18) / 1_000_000_000) as u32 & 0x00ff_ffff;
    let [_, a, b, c] = value.to_be_bytes();
    [a, b, c]
}

/// Rewrites and queues one packet for one subscriber; `sent_at` is the
/// absolute-send-time extension's value for it.
fn forward_one(
    sub: &mut Sub,
    media: &MediaPacket,
    sent_at: &Bytes,
    metrics: &MediaMetrics,
    want_keyframe: &mut impl FnMut(LayerId),
) {
    #[cfg(test)]
    if sub.panic_for_test {
        panic!("injected panic while forwarding (test)");
    }
    {
        if sub.source != Some(media.source) && sub.source.replace(media.source).is_some() {
            // A new source (an edge pulling again after a failover) numbers afresh: go
            // on from the last numbers sent, and start video at its next keyframe.
            sub.audio_seq.restart();
            if sub.switch.restart()
                && let Some(layer) = sub.switch.target()
            {
                want_keyframe(layer.clone());
            }
        }
        let (stream, seq) = if media.video {
            let Some(stream) = sub.video else { return };
            if sub.switch.target().is_none() {
                // First packet seen for a new subscriber: start on this layer.
                if sub.switch.want(media.layer.clone()) {
                    want_keyframe(media.layer.clone());
                }
            }
            let before = sub.switch.switches();
            match sub.switch.packet(
                &media.layer,
                media.packet.header.sequence_number,
                media.keyframe,
            ) {
                Forward::Skip => return,
                Forward::Send { seq } => {
                    if sub.switch.switches() != before {
                        metrics.layer_switches.inc();
                    }
                    (stream, seq)
                }
            }
        } else {
            let Some(stream) = sub.audio else { return };
            (
                stream,
                sub.audio_seq.packet(media.packet.header.sequence_number),
            )
        };
        let mut packet = rtp::Packet {
            header: media.packet.header.clone(),
            payload: media.packet.payload.clone(),
        };
        let header = &mut packet.header;
        header.ssrc = stream.ssrc;
        header.payload_type = stream.payload_type;
        header.sequence_number = seq;
        header.timestamp = media.media_ts;
        header.extensions.clear();
        header.extension = false;
        header.extensions_padding = 0;
        if media.video {
            if let Some((id, value)) = &sub.playout_delay {
                let _ = header.set_extension(*id, value.clone());
            }
            if let Some(id) = sub.abs_send_time {
                let _ = header.set_extension(id, sent_at.clone());
            }
        }
        let bytes = packet.payload.len() as u64 + 12;
        match sub.queue.try_send(Outgoing {
            video: media.video,
            packet,
        }) {
            Ok(()) => {
                sub.sent_bytes += bytes;
                metrics.packets_out.inc();
            }
            Err(_) => {
                sub.dropped += 1;
                metrics.packets_dropped.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panics() -> prometheus::IntCounterVec {
        prometheus::IntCounterVec::new(prometheus::Opts::new("p", "p"), &["actor"]).unwrap()
    }

    fn sub(queue: usize) -> (Sub, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(queue);
        let sub = Sub {
            queue: tx,
            video: Some(OutStream {
                ssrc: 1,
                payload_type: 96,
            }),
            audio: None,
            playout_delay: Some((5, Bytes::from_static(&[0x01, 0xe0, 0x1e]))),
            abs_send_time: Some(3),
            ready: true,
            switch: LayerSwitch::default(),
            audio_seq: AudioSequence::default(),
            source: None,
            preference: Preference::Auto,
            estimator: Estimator::new(1_000_000),
            sent_bytes: 0,
            dropped: 0,
            feedback: Feedback::default(),
            panic_for_test: false,
        };
        (sub, rx)
    }

    /// The ingest the tests' packets come from, unless a test says otherwise.
    static SOURCE: std::sync::LazyLock<MediaId> = std::sync::LazyLock::new(MediaId::random);

    fn packet(seq: u16, keyframe: bool) -> MediaPacket {
        packet_from(*SOURCE, seq, keyframe)
    }

    fn packet_from(source: MediaId, seq: u16, keyframe: bool) -> MediaPacket {
        let mut packet = rtp::Packet::default();
        packet.header.sequence_number = seq;
        packet.header.ssrc = 777;
        packet.header.payload_type = 100;
        packet.payload = Bytes::from_static(b"payload");
        MediaPacket {
            video: true,
            layer: String::new(),
            keyframe,
            media_ts: 9_000,
            source,
            packet,
        }
    }

    /// A subscriber's numbers after each packet of `packets` (video and audio apart),
    /// and the keyframes it asked for.
    fn numbers_sent(packets: &[MediaPacket]) -> (Vec<u16>, Vec<u16>, usize) {
        let metrics = MediaMetrics::new(&prometheus::Registry::new(), &panics());
        let (mut viewer, mut rx) = sub(1024);
        viewer.audio = Some(OutStream {
            ssrc: 2,
            payload_type: 111,
        });
        let mut subs = HashMap::from([(MediaId::random(), viewer)]);
        let mut keyframe_requests = 0;
        for media in packets {
            forward(&mut subs, media, &metrics, |_| keyframe_requests += 1);
        }
        let (mut video, mut audio) = (Vec::new(), Vec::new());
        while let Ok(out) = rx.try_recv() {
            let seq = out.packet.header.sequence_number;
            if out.video {
                video.push(seq)
            } else {
                audio.push(seq)
            }
        }
        (video, audio, keyframe_requests)
    }

    #[test]
    fn a_new_source_goes_on_from_the_numbers_already_sent_without_being_told() {
        // The old source, then the new one (an edge's new pull) numbering from far behind
        // and from far ahead: the viewer's numbers must go on by one, never jump, and its
        // video must start again at the new source's keyframe.
        for new_start in [60_000u16, 5, 30_000] {
            let (old, new) = (MediaId::random(), MediaId::random());
            let mut packets = Vec::new();
            for seq in 1_000..1_100u16 {
                packets.push(packet_from(old, seq, seq == 1_000));
                let mut audio = packet_from(old, seq.wrapping_add(7), false);
                audio.video = false;
                packets.push(audio);
            }
            for i in 0..20u16 {
                let seq = new_start.wrapping_add(i);
                packets.push(packet_from(new, seq, i == 3));
                let mut audio = packet_from(new, seq.wrapping_add(40_000), false);
                audio.video = false;
                packets.push(audio);
            }
            let (video, audio, keyframe_requests) = numbers_sent(&packets);
            assert_eq!(video.len(), 100 + 17, "new video from its keyframe on");
            assert!(
                video.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
                "video numbers go on by one across the change: {video:?}"
            );
            assert_eq!(audio.len(), 120, "audio goes on at once");
            assert!(
                audio.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
                "audio numbers go on by one across the change: {audio:?}"
            );
            assert_eq!(keyframe_requests, 2, "one at the start, one at the change");
        }
    }

    #[test]
    fn a_stalled_subscriber_loses_packets_while_the_others_get_all() {
        let metrics = MediaMetrics::new(&prometheus::Registry::new(), &panics());
        let (fast, mut fast_rx) = sub(8);
        let (stalled, _stalled_rx) = sub(8);
        let (fast_id, stalled_id) = (MediaId::random(), MediaId::random());
        let mut subs = HashMap::from([(fast_id, fast), (stalled_id, stalled)]);
        let mut keyframe_requests = 0;
        let mut received = Vec::new();
        for seq in 0..100u16 {
            forward(&mut subs, &packet(seq, seq == 0), &metrics, |_| {
                keyframe_requests += 1
            });
            // The fast subscriber's writer keeps up; the stalled one never reads.
            while let Ok(out) = fast_rx.try_recv() {
                received.push(out.packet);
            }
        }
        assert_eq!(received.len(), 100, "the fast subscriber got every packet");
        assert_eq!(
            subs[&stalled_id].dropped, 92,
            "the stalled one lost what did not fit its queue"
        );
        assert_eq!(metrics.packets_dropped.get(), 92);
        assert_eq!(
            keyframe_requests, 2,
            "each new subscriber asked for a keyframe once"
        );
        let first = &received[0];
        assert_eq!(
            (first.header.ssrc, first.header.payload_type),
            (1, 96),
            "rewritten for the subscriber"
        );
        assert_eq!(
            first.header.timestamp, 9_000,
            "timestamps are the room's media clock"
        );
        assert_eq!(
            first.header.get_extension(5).as_deref(),
            Some(&[0x01, 0xe0, 0x1e][..]),
            "playout delay attached"
        );
        assert_eq!(
            first.header.get_extension(3).map(|v| v.len()),
            Some(3),
            "send time attached"
        );
        let seqs: Vec<u16> = received.iter().map(|p| p.header.sequence_number).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    }

    #[test]
    fn send_times_are_seconds_in_six_dot_eighteen_fixed_point() {
        use std::time::Duration;
        assert_eq!(
            abs_send_time(Duration::from_secs(64)),
            [0, 0, 0],
            "wraps at 64 s"
        );
        assert_eq!(abs_send_time(Duration::from_millis(65_500)), [0x06, 0, 0]);
        assert_eq!(abs_send_time(Duration::from_secs(63)), [0xfc, 0, 0]);
        let quarter = abs_send_time(Duration::from_millis(250));
        assert_eq!(
            u32::from_be_bytes([0, quarter[0], quarter[1], quarter[2]]),
            1 << 16
        );
    }

    #[test]
    fn a_panic_forwarding_to_one_subscriber_spares_the_others() {
        let metrics = MediaMetrics::new(&prometheus::Registry::new(), &panics());
        let (healthy, mut healthy_rx) = sub(64);
        let (mut broken, _broken_rx) = sub(64);
        broken.panic_for_test = true;
        let (healthy_id, broken_id) = (MediaId::random(), MediaId::random());
        let mut subs = HashMap::from([(healthy_id, healthy), (broken_id, broken)]);
        for seq in 0..5u16 {
            let failed = forward(&mut subs, &packet(seq, seq == 0), &metrics, |_| {});
            assert_eq!(failed, vec![broken_id], "only the broken one is reported");
        }
        let mut got = 0;
        while healthy_rx.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, 5, "the healthy subscriber got every packet");
    }

    #[test]
    fn nothing_is_forwarded_before_the_connection_is_up() {
        let metrics = MediaMetrics::new(&prometheus::Registry::new(), &panics());
        let (mut s, mut rx) = sub(64);
        s.ready = false;
        let mut subs = HashMap::from([(MediaId::random(), s)]);
        let mut asked = 0;
        forward(&mut subs, &packet(0, true), &metrics, |_| asked += 1);
        assert!(rx.try_recv().is_err());
        assert_eq!(asked, 0, "no keyframe is requested for it yet either");
    }

    #[test]
    fn a_new_subscriber_waits_for_a_keyframe() {
        let metrics = MediaMetrics::new(&prometheus::Registry::new(), &panics());
        let (s, mut rx) = sub(64);
        let mut subs = HashMap::from([(MediaId::random(), s)]);
        for seq in 0..10u16 {
            forward(&mut subs, &packet(seq, seq == 5), &metrics, |_| {});
        }
        let mut got = Vec::new();
        while let Ok(out) = rx.try_recv() {
            got.push(out.packet.header.sequence_number);
        }
        assert_eq!(got, vec![5, 6, 7, 8, 9]);
    }
}
