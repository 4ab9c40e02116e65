//! Recording a room's video for its replay, off the forwarding path.
//!
//! A room's [`Recorder`] is a handle to a thread of its own fed through a bounded queue:
//! track tasks hand it each packet with a `try_send` of an `Arc` (never waiting; a full
//! queue drops the packet from the recording only and counts it). The thread keeps the
//! publisher's highest simulcast layer (the largest keyframe seen, switching up on a
//! keyframe when a bigger layer appears, and down to the biggest layer still sending when
//! the publisher pauses the recorded one for half a second) and its Opus audio, reassembles VP8 or H.264
//! frames ([`assemble`]), places them on one time axis (the room's media clock for
//! video, the arrival of each session's first packet to line audio up) and writes them
//! without transcoding: VP8 to WebM ([`mux`]), H.264 to fragmented MP4 ([`mp4`]), one
//! time line for both tracks ([`interleave`]).
//! The file is closed when the room's media ends (every handle dropped). Disk trouble —
//! less than `media.recording_min_free_mb` free, or a write failing for lack of space —
//! stops the recording (its file closed as far as possible, the reason in its
//! [`meta::RecordingMeta`], a metric, a log line and a `/readyz` warning), never the
//! room. A publisher whose video is neither VP8 nor H.264 is not recorded (and says so).

pub mod assemble;
mod clock;
pub mod h264;
pub mod interleave;
pub mod meta;
pub mod mp4;
pub mod mux;
pub mod writer;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Recipient;
use lockstep_runtime::now_ms;

use crate::codec::{VideoCodec, vp8_descriptor_len};
use crate::config::MediaConfig;
use crate::keyframe::KeyframeWanted;
use crate::layers::LayerId;
use crate::metrics::MediaMetrics;
use crate::packet::MediaPacket;
use assemble::{FrameAssembler, vp8_keyframe_size};
use clock::{SourceClock, TrackClock};
use meta::{ClockAnchor, RecordingMeta};
use mux::WriteError;
use writer::{MediaWriter, NewFile};

/// What a recorder is told.
pub(crate) enum Input {
    Packet(Arc<MediaPacket>),
    /// A publisher track opened (its codec decides whether it can be recorded).
    Track {
        video: bool,
        mime: String,
    },
    /// A new publisher session: its clocks start afresh.
    NewSource,
}

/// Recording state shared by every room: recordings being written (retention never
/// deletes them) and why recordings stopped early (for `/readyz`).
#[derive(Debug, Default)]
pub struct RecordingHealth {
    active: Mutex<HashSet<PathBuf>>,
    stopped: Mutex<HashMap<String, String>>,
}

impl RecordingHealth {
    /// Rooms whose recording stopped early, with the reason.
    pub fn warnings(&self) -> Vec<(String, String)> {
        let stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = stopped
            .iter()
            .map(|(r, w)| (r.clone(), w.clone()))
            .collect();
        out.sort();
        out
    }

    pub fn active(&self) -> HashSet<PathBuf> {
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_active(&self, path: &Path, on: bool) {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if on {
            active.insert(path.to_owned());
        } else {
            active.remove(path);
        }
    }

    fn set_stopped(&self, room: &str, why: Option<String>) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        match why {
            Some(why) => stopped.insert(room.to_owned(), why),
            None => stopped.remove(room),
        };
    }
}

/// A room's recorder: cheap to clone; the recording closes when the last clone drops.
#[derive(Clone)]
pub(crate) struct Recorder {
    tx: SyncSender<Input>,
    metrics: MediaMetrics,
}

impl Recorder {
    /// Starts recording `room` when the config says so.
    pub(crate) fn start(
        room: &str,
        cfg: &MediaConfig,
        metrics: &MediaMetrics,
        keyframes: Recipient<KeyframeWanted>,
        health: Arc<RecordingHealth>,
    ) -> Option<Self> {
        if !cfg.record || cfg.record_exclude_rooms.iter().any(|r| r == room) {
            return None;
        }
        let (tx, rx) = sync_channel(cfg.recording_queue_packets.max(16));
        let thread = Thread {
            room: room.to_owned(),
            dir: Path::new(&cfg.recording_dir).join(room),
            min_free: cfg.recording_min_free_mb * 1024 * 1024,
            playout_delay_ms: u64::from(cfg.playout_delay_ms),
            metrics: metrics.clone(),
            keyframes,
            health,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("record-{room}"))
            .spawn(move || thread.run(rx));
        if let Err(e) = spawned {
            tracing::error!(room, error = %e, "cannot start the recorder");
            return None;
        }
        Some(Self {
            tx,
            metrics: metrics.clone(),
        })
    }

    fn send(&self, input: Input) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(input) {
            self.metrics.recording_dropped.inc();
        }
    }

    pub(crate) fn packet(&self, packet: &Arc<MediaPacket>) {
        self.send(Input::Packet(packet.clone()));
    }

    pub(crate) fn track(&self, video: bool, mime: &str) {
        self.send(Input::Track {
            video,
            mime: mime.to_ascii_lowercase(),
        });
    }

    pub(crate) fn new_source(&self) {
        self.send(Input::NewSource);
    }
}

/// How long after the first video packet the recorder waits to learn every layer's
/// size before it picks one.
const SETTLE: Duration = Duration::from_millis(300);
/// Between two keyframe requests of the recorder's own.
const KEYFRAME_ASK_EVERY: Duration = Duration::from_secs(1);
/// Between two free-space checks.
const SPACE_CHECK_EVERY: Duration = Duration::from_secs(1);

struct Thread {
    room: String,
    dir: PathBuf,
    min_free: u64,
    playout_delay_ms: u64,
    metrics: MediaMetrics,
    keyframes: Recipient<KeyframeWanted>,
    health: Arc<RecordingHealth>,
}

/// The recording being written.
struct Recording {
    writer: MediaWriter,
    path: PathBuf,
    meta: RecordingMeta,
}

struct State {
    /// The publisher's video codec; recorded when VP8 or H.264.
    codec: VideoCodec,
    video_ok: bool,
    audio_ok: bool,
    /// The publisher's audio track opened (recordable or not).
    audio_known: bool,
    first_video_at: Option<Instant>,
    sizes: HashMap<LayerId, (u32, u32)>,
    /// When each video layer last sent a packet (a publisher pauses layers it cannot
    /// afford; a paused layer is not recorded).
    last_seen: HashMap<LayerId, Instant>,
    chosen: Option<LayerId>,
    assembler: FrameAssembler,
    clock: SourceClock,
    recording: Option<Recording>,
    stopped: bool,
    last_ask: Option<Instant>,
    last_space_check: Instant,
}

impl Thread {
    fn run(self, rx: Receiver<Input>) {
        let mut state = State {
            codec: VideoCodec::Other,
            video_ok: false,
            audio_ok: false,
            audio_known: false,
            first_video_at: None,
            sizes: HashMap::new(),
            last_seen: HashMap::new(),
            chosen: None,
            assembler: FrameAssembler::new(VideoCodec::Other),
            clock: SourceClock::default(),
            recording: None,
            stopped: false,
            last_ask: None,
            last_space_check: Instant::now(),
        };
        while let Ok(input) = rx.recv() {
            if state.stopped {
                continue;
            }
            if let Err(e) = self.take(&mut state, input) {
                self.stop(&mut state, e);
            }
        }
        self.close(&mut state);
    }

    fn take(&self, state: &mut State, input: Input) -> Result<(), WriteError> {
        match input {
            Input::Track { video: true, mime } => {
                state.codec = VideoCodec::from_mime(&mime);
                state.video_ok = state.codec != VideoCodec::Other;
                state.assembler = FrameAssembler::new(state.codec);
                if !state.video_ok {
                    tracing::warn!(room = %self.room, codec = %mime, "not recorded: recordings take VP8 or H.264 video");
                    self.metrics
                        .recording_stopped
                        .with_label_values(&["unsupported_codec"])
                        .inc();
                }
            }
            Input::Track { video: false, mime } => {
                state.audio_known = true;
                state.audio_ok = mime == "audio/opus";
            }
            Input::NewSource => {
                state.sizes.clear();
                state.chosen = None;
                state.audio_known = false;
                state.first_video_at = None;
                state.assembler = FrameAssembler::new(state.codec);
                state.clock = SourceClock::default();
            }
            Input::Packet(p) if p.video => self.video(state, &p)?,
            Input::Packet(p) => self.audio(state, &p)?,
        }
        if state.last_space_check.elapsed() >= SPACE_CHECK_EVERY && state.recording.is_some() {
            state.last_space_check = Instant::now();
            self.check_space()?;
        }
        Ok(())
    }

    fn check_space(&self) -> Result<(), WriteError> {
        match fs4::available_space(&self.dir) {
            Ok(free) if free < self.min_free => Err(WriteError::DiskFull),
            _ => Ok(()),
        }
    }

    fn video(&self, state: &mut State, p: &MediaPacket) -> Result<(), WriteError> {
        if !state.video_ok {
            return Ok(());
        }
        let first = *state.first_video_at.get_or_insert_with(Instant::now);
        let now = Instant::now();
        state.last_seen.insert(p.layer.clone(), now);
        if p.keyframe
            && let Some(size) = layer_size(state.codec, &p.packet.payload)
        {
            state.sizes.insert(p.layer.clone(), size);
            let best = best_live_layer(&state.sizes, &state.last_seen, now);
            // The file's tracks are fixed when it opens: wait for the audio track and
            // every layer (without simulcast, no RID, there is one), or SETTLE.
            let all_layers = p.layer.is_empty() || state.sizes.len() >= 3;
            let settled = first.elapsed() >= SETTLE || (state.audio_known && all_layers);
            if settled && best.as_ref() == Some(&p.layer) && state.chosen != best {
                // Switch up on this keyframe: frames before it came from another layer.
                state.chosen = best;
                state.assembler = FrameAssembler::new(state.codec);
            }
        }
        if state.chosen.as_ref() != Some(&p.layer) {
            let chosen_paused = state
                .chosen
                .as_ref()
                .is_some_and(|c| !is_live(&state.last_seen, c, now));
            if (state.chosen.is_none() && first.elapsed() >= SETTLE) || chosen_paused {
                // Nothing recorded yet, or the recorded layer went quiet: ask the best
                // live layer for the keyframe to (re)start on.
                let best = best_live_layer(&state.sizes, &state.last_seen, now);
                self.ask_keyframe(state, best.unwrap_or(p.layer.clone()));
            }
            return Ok(());
        }
        let frames = state.assembler.push(
            p.media_ts,
            p.packet.header.sequence_number,
            p.packet.header.marker,
            p.packet.payload.clone(),
        );
        if state.assembler.needs_keyframe() {
            self.ask_keyframe(state, p.layer.clone());
        }
        for frame in frames {
            if state.recording.is_none() {
                if !frame.keyframe {
                    continue;
                }
                std::fs::create_dir_all(&self.dir).map_err(|e| WriteError::Other(e.to_string()))?;
                self.check_space()?;
                let Some(writer) =
                    NewFile::create(&self.dir, state.codec, &frame.data, state.audio_ok)?
                else {
                    continue;
                };
                self.open(state, writer)?;
            }
            let now = now_ms();
            let recording = state.recording.as_mut().expect("opened above");
            let clock = state.clock.video.get_or_insert_with(|| {
                let ms = now.saturating_sub(recording.meta.started_at);
                recording.meta.anchors.push(ClockAnchor {
                    media_ms: ms,
                    rtp: frame.media_ts,
                });
                TrackClock::new(ms, frame.media_ts, 90)
            });
            let Some(ms) = clock.ms(frame.media_ts) else {
                continue;
            };
            recording
                .writer
                .frame(ms, true, frame.keyframe, frame.data)?;
        }
        Ok(())
    }

    fn audio(&self, state: &mut State, p: &MediaPacket) -> Result<(), WriteError> {
        let Some(recording) = state.recording.as_mut().filter(|_| state.audio_ok) else {
            return Ok(());
        };
        if !recording.writer.has_audio() || p.packet.payload.is_empty() {
            return Ok(());
        }
        let ts = p.packet.header.timestamp;
        let started_at = recording.meta.started_at;
        let clock = state
            .clock
            .audio
            .get_or_insert_with(|| TrackClock::new(now_ms().saturating_sub(started_at), ts, 48));
        if let Some(ms) = clock.ms(ts) {
            recording
                .writer
                .frame(ms, false, true, p.packet.payload.clone())?;
        }
        Ok(())
    }

    fn ask_keyframe(&self, state: &mut State, layer: LayerId) {
        if state
            .last_ask
            .is_none_or(|at| at.elapsed() >= KEYFRAME_ASK_EVERY)
        {
            state.last_ask = Some(Instant::now());
            self.keyframes.do_send(KeyframeWanted { layer });
        }
    }

    fn open(
        &self,
        state: &mut State,
        NewFile {
            writer,
            path,
            started_at,
            size: (width, height),
        }: NewFile,
    ) -> Result<(), WriteError> {
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .to_owned();
        let meta = RecordingMeta {
            room: self.room.clone(),
            file,
            started_at,
            playout_delay_ms: self.playout_delay_ms,
            width,
            height,
            audio: state.audio_ok,
            ..RecordingMeta::default()
        };
        meta.write(&self.dir)
            .map_err(|e| WriteError::Other(e.to_string()))?;
        self.health.set_active(&path, true);
        self.health.set_stopped(&self.room, None);
        self.metrics.recordings.inc();
        tracing::info!(room = %self.room, path = %path.display(), width, height, container = writer.extension(), "recording started");
        state.recording = Some(Recording { writer, path, meta });
        Ok(())
    }

    /// Closes the file and writes its description; `stopped` says why it ended early.
    fn finish(&self, state: &mut State, stopped: Option<String>) {
        let Some(Recording {
            mut writer,
            path,
            mut meta,
        }) = state.recording.take()
        else {
            return;
        };
        let finished = writer.finish();
        meta.keyframes_ms = writer.keyframes_ms().to_vec();
        let bytes = writer.bytes();
        match finished {
            Ok(duration_ms) => {
                meta.duration_ms = duration_ms;
                meta.complete = true;
            }
            Err(e) => tracing::warn!(room = %self.room, error = ?e, "closing the recording failed"),
        }
        meta.bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(bytes);
        meta.stopped = stopped;
        if let Err(e) = meta.write(&self.dir) {
            tracing::warn!(room = %self.room, error = %e, "writing the recording's description failed");
        }
        self.health.set_active(&path, false);
        self.metrics.recordings.dec();
        tracing::info!(room = %self.room, path = %path.display(), duration_ms = meta.duration_ms, "recording closed");
    }

    fn stop(&self, state: &mut State, e: WriteError) {
        let (reason, why) = match &e {
            WriteError::DiskFull => (
                "disk_full",
                format!(
                    "recording of room {} stopped: less than {} MiB free on its disk (media.recording_min_free_mb)",
                    self.room,
                    self.min_free / (1024 * 1024)
                ),
            ),
            WriteError::Other(m) => (
                "write_failed",
                format!("recording of room {} stopped: {m}", self.room),
            ),
        };
        tracing::error!(room = %self.room, reason, "{why}");
        self.metrics
            .recording_stopped
            .with_label_values(&[reason])
            .inc();
        self.health.set_stopped(&self.room, Some(why));
        self.finish(state, Some(reason.to_owned()));
        state.stopped = true;
    }

    fn close(&self, state: &mut State) {
        self.finish(state, None);
    }
}

/// The picture size a layer's keyframe packet declares (VP8: its frame header; H.264:
/// the SPS it carries).
fn layer_size(codec: VideoCodec, payload: &[u8]) -> Option<(u32, u32)> {
    match codec {
        VideoCodec::Vp8 => vp8_keyframe_size(&payload[vp8_descriptor_len(payload)?..]),
        VideoCodec::H264 => h264::packet_size(payload),
        VideoCodec::Other => None,
    }
}

/// A layer that sent nothing for this long is paused: recording moves to a live one.
const LAYER_PAUSED: Duration = Duration::from_millis(500);

fn is_live(last_seen: &HashMap<LayerId, Instant>, layer: &LayerId, now: Instant) -> bool {
    last_seen
        .get(layer)
        .is_some_and(|at| now.saturating_duration_since(*at) < LAYER_PAUSED)
}

/// The biggest layer still sending.
fn best_live_layer(
    sizes: &HashMap<LayerId, (u32, u32)>,
    last_seen: &HashMap<LayerId, Instant>,
    now: Instant,
) -> Option<LayerId> {
    sizes
        .iter()
        .filter(|(id, _)| is_live(last_seen, id, now))
        .max_by_key(|(id, (w, h))| (w * h, (*id).clone()))
        .map(|(id, _)| id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_biggest_layer_still_sending_is_recorded() {
        let now = Instant::now();
        let sizes: HashMap<LayerId, (u32, u32)> = [
            ("low".into(), (320, 180)),
            ("mid".into(), (640, 360)),
            ("high".into(), (1280, 720)),
        ]
        .into();
        let mut seen: HashMap<LayerId, Instant> = sizes.keys().map(|l| (l.clone(), now)).collect();
        assert_eq!(best_live_layer(&sizes, &seen, now), Some("high".into()));
        // The publisher pauses its top layer: after half a second, mid is recorded.
        let later = now + LAYER_PAUSED;
        seen.insert("low".into(), later);
        seen.insert("mid".into(), later);
        assert!(!is_live(&seen, &"high".into(), later));
        assert_eq!(best_live_layer(&sizes, &seen, later), Some("mid".into()));
        // It comes back.
        seen.insert("high".into(), later);
        assert_eq!(best_live_layer(&sizes, &seen, later), Some("high".into()));
    }
}
