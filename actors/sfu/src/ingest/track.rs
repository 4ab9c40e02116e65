//! Track tasks: one per publisher track, on its ingest actor's arbiter. Each reads RTP,
//! learns each simulcast layer's SSRC, marks keyframes, aligns layer timestamps onto the
//! room's media clock (from the publisher's sender reports), and hands every packet to every relay (one cheap `Arc` per relay).
//! It tells its ingest when a layer opens and when the track ends. A track pulled from
//! the room's owner (cluster mode) names its layer by SSRC and is on the media clock
//! already.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use lockstep_runtime::now_ms;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::MediaId;
use crate::clock::{FrameMark, MediaClock, Realigned};
use crate::codec::VideoCodec;
use crate::layers::LayerId;
use crate::metrics::MediaMetrics;
use crate::packet::{Deliver, MediaPacket};
use crate::record::Recorder;
use crate::rtcp_tap::sender_report;

/// A track opened (one message per simulcast layer).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct TrackOpened {
    pub kind: RtpCodecKind,
    pub layer: LayerId,
    pub ssrc: u32,
    pub codec: RTCRtpCodec,
    pub track: Arc<dyn TrackRemote>,
}

/// A track ended.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct TrackEnded {
    pub kind: RtpCodecKind,
}

/// Where a track task sends what it reads.
#[derive(Clone)]
pub(crate) struct TrackSinks {
    pub opened: Recipient<TrackOpened>,
    pub ended: Recipient<TrackEnded>,
    pub relays: Arc<Vec<Recipient<Deliver>>>,
    pub latest_frame: Arc<Mutex<Option<FrameMark>>>,
    pub metrics: MediaMetrics,
    /// The room's recording, if it is recorded: it gets every packet too.
    pub recorder: Option<Recorder>,
    /// A stream pulled from the room's owner (cluster mode): each video track's layer
    /// by its SSRC, and timestamps already on the room's media clock.
    pub relayed: Option<Arc<HashMap<u32, LayerId>>>,
    /// The ingest these tracks belong to (stamped on every packet).
    pub source: MediaId,
}

struct Stream {
    layer: LayerId,
    codec: VideoCodec,
}

/// Reads one publisher track until it ends.
pub(crate) async fn run(track: Arc<dyn TrackRemote>, sinks: TrackSinks) {
    let kind = track.kind().await;
    let mut streams: HashMap<u32, Stream> = HashMap::new();
    let mut clock = MediaClock::default();
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnOpen(init) => {
                let codec: RTCRtpCodec = track.codec(init.ssrc).await.unwrap_or_default();
                let layer = match &sinks.relayed {
                    Some(layers) => layers.get(&init.ssrc).cloned().unwrap_or_default(),
                    None => init.rid.map(|r| r.to_string()).unwrap_or_default(),
                };
                if let Some(recorder) = &sinks.recorder {
                    recorder.track(kind == RtpCodecKind::Video, &codec.mime_type);
                }
                streams.insert(
                    init.ssrc,
                    Stream {
                        layer: layer.clone(),
                        codec: VideoCodec::from_mime(&codec.mime_type),
                    },
                );
                sinks.opened.do_send(TrackOpened {
                    kind,
                    layer,
                    ssrc: init.ssrc,
                    codec,
                    track: track.clone(),
                });
            }
            TrackRemoteEvent::OnRtpPacket(packet) => {
                sinks.metrics.packets_in.inc();
                let relayed = sinks.relayed.is_some();
                let matched_before = clock.matched_by_arrival();
                let classified =
                    classify(kind, &streams, &mut clock, packet, relayed, sinks.source);
                if clock.matched_by_arrival() != matched_before {
                    sinks
                        .metrics
                        .layers_aligned
                        .with_label_values(&["arrival"])
                        .inc();
                }
                if let Some(media) = classified {
                    if media.video_reference_frame {
                        *sinks.latest_frame.lock().unwrap_or_else(|e| e.into_inner()) =
                            clock.latest();
                    }
                    let media = Arc::new(media.packet);
                    for relay in sinks.relays.iter() {
                        relay.do_send(Deliver(media.clone()));
                    }
                    if let Some(recorder) = &sinks.recorder {
                        recorder.packet(&media);
                    }
                }
            }
            TrackRemoteEvent::OnRtcpPacket(packets)
                if sinks.relayed.is_none() && kind == RtpCodecKind::Video =>
            {
                align_by_reports(&streams, &mut clock, &packets, &sinks.metrics);
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    sinks.ended.do_send(TrackEnded { kind });
}

/// Puts layers on the media clock by the publisher's sender reports.
fn align_by_reports(
    streams: &HashMap<u32, Stream>,
    clock: &mut MediaClock,
    packets: &[Box<dyn rtc::rtcp::Packet>],
    metrics: &MediaMetrics,
) {
    for report in packets.iter().filter_map(|p| sender_report(p.as_ref())) {
        let Some(stream) = streams.get(&report.ssrc) else {
            continue;
        };
        for (layer, change) in clock.sender_report(&stream.layer, report.ntp_time, report.rtp_time)
        {
            match change {
                Realigned::Aligned => {
                    tracing::debug!(%layer, "layer aligned by sender reports");
                    metrics.layers_aligned.with_label_values(&["reports"]).inc();
                }
                Realigned::Moved { by_ms } => {
                    tracing::info!(
                        %layer,
                        by_ms,
                        "a layer matched by arrival moved onto the sender reports' clock"
                    );
                    metrics.layers_aligned.with_label_values(&["moved"]).inc();
                }
            }
        }
    }
}

struct Classified {
    packet: MediaPacket,
    video_reference_frame: bool,
}

fn classify(
    kind: RtpCodecKind,
    streams: &HashMap<u32, Stream>,
    clock: &mut MediaClock,
    packet: rtp::Packet,
    relayed: bool,
    source: MediaId,
) -> Option<Classified> {
    let stream = streams.get(&packet.header.ssrc)?;
    let now = now_ms();
    if kind != RtpCodecKind::Video {
        return Some(Classified {
            packet: MediaPacket {
                video: false,
                layer: stream.layer.clone(),
                keyframe: false,
                media_ts: packet.header.timestamp,
                source,
                packet,
            },
            video_reference_frame: false,
        });
    }
    let before = clock.latest();
    let media_ts = if relayed {
        // The owner sends every layer on the room's media clock already.
        packet.header.timestamp
    } else {
        clock.packet(&stream.layer, packet.header.timestamp, now)?
    };
    let keyframe = stream.codec.starts_keyframe(&packet.payload);
    Some(Classified {
        video_reference_frame: clock.latest() != before,
        packet: MediaPacket {
            video: true,
            layer: stream.layer.clone(),
            keyframe,
            media_ts,
            source,
            packet,
        },
    })
}
