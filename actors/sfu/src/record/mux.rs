//! Writes a VP8 recording's frames to a WebM file with libwebm (the `webm` crate): a
//! VP8 video track sized by the first keyframe, an Opus audio track when the publisher
//! sends audio, frames in time order ([`Interleaver`]), Cues for seeking, and the
//! duration on close. Keeps the keyframe index beside it and remembers why a write
//! failed.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;
use std::rc::Rc;

use super::interleave::{Interleaver, Timed};
use bytes::Bytes;
use webm::mux::{
    AudioCodecId, AudioTrack, Segment, SegmentBuilder, VideoCodecId, VideoTrack, Writer,
};

/// A file that remembers the kind of its last I/O error (libwebm only says "failed")
/// and counts the bytes written.
struct TrackedFile {
    file: BufWriter<File>,
    error: Rc<Cell<Option<io::ErrorKind>>>,
    bytes: Rc<Cell<u64>>,
    pos: u64,
}

impl TrackedFile {
    fn note<T>(&self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result {
            self.error.set(Some(e.kind()));
        }
        result
    }
}

impl Write for TrackedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.file.write(buf);
        if let Ok(n) = &result {
            self.pos += *n as u64;
            self.bytes.set(self.bytes.get().max(self.pos));
        }
        self.note(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.file.flush();
        self.note(result)
    }
}

impl Seek for TrackedFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let result = self.file.seek(pos);
        if let Ok(at) = &result {
            self.pos = *at;
        }
        self.note(result)
    }
}

/// An open WebM recording.
pub struct WebmWriter {
    segment: Option<Segment<TrackedFile>>,
    video: VideoTrack,
    audio: Option<AudioTrack>,
    interleave: Interleaver,
    /// Media times (ms) of the keyframes written.
    pub keyframes_ms: Vec<u64>,
    error: Rc<Cell<Option<io::ErrorKind>>>,
    bytes: Rc<Cell<u64>>,
}

/// Why writing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// No space left on the device (or over a quota).
    DiskFull,
    Other(String),
}

/// The OpusHead a WebM Opus track carries as its codec private data (RFC 7845 5.1):
/// stereo, 48 kHz, the usual 312-sample pre-skip.
fn opus_head() -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.push(1);
    head.push(2);
    head.extend_from_slice(&312u16.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    head
}

impl WebmWriter {
    /// Creates the file with a video track of `width`×`height` and, with `audio`, an
    /// Opus track.
    pub fn create(path: &Path, width: u32, height: u32, audio: bool) -> Result<Self, WriteError> {
        let file = File::create(path).map_err(|e| classify(e.kind(), &e.to_string()))?;
        let error = Rc::new(Cell::new(None));
        let bytes = Rc::new(Cell::new(0));
        let tracked = TrackedFile {
            file: BufWriter::with_capacity(256 * 1024, file),
            error: error.clone(),
            bytes: bytes.clone(),
            pos: 0,
        };
        let failed = |what: &str| {
            let kind = error.get();
            kind.map_or_else(|| WriteError::Other(what.to_owned()), |k| classify(k, what))
        };
        let builder = SegmentBuilder::new(Writer::new(tracked))
            .and_then(|b| b.set_writing_app("lockstep"))
            .map_err(|_| failed("starting the WebM segment"))?;
        let (builder, video) = builder
            .add_video_track(width, height, VideoCodecId::VP8, None)
            .map_err(|_| failed("adding the video track"))?;
        let (builder, audio) = if audio {
            let (builder, track) = builder
                .add_audio_track(48_000, 2, AudioCodecId::Opus, None)
                .map_err(|_| failed("adding the audio track"))?;
            let builder = builder
                .set_codec_private(track, &opus_head())
                .map_err(|_| failed("setting the Opus header"))?;
            (builder, Some(track))
        } else {
            (builder, None)
        };
        Ok(Self {
            segment: Some(builder.build()),
            video,
            audio,
            interleave: Interleaver::default(),
            keyframes_ms: Vec::new(),
            error,
            bytes,
        })
    }

    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Bytes in the file so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }

    /// Queues a frame at media time `ms`; writes those now out of the reorder window.
    pub fn frame(
        &mut self,
        ms: u64,
        video: bool,
        keyframe: bool,
        data: Bytes,
    ) -> Result<(), WriteError> {
        if !video && self.audio.is_none() {
            return Ok(());
        }
        self.interleave.push(Timed {
            ms,
            video,
            keyframe,
            data,
        });
        while let Some(frame) = self.interleave.next_ready() {
            self.write(frame)?;
        }
        Ok(())
    }

    fn write(&mut self, frame: Timed) -> Result<(), WriteError> {
        let ns = frame.ms * 1_000_000;
        let segment = self.segment.as_mut().expect("open until finish");
        let result = if frame.video {
            segment.add_frame(self.video, &frame.data, ns, frame.keyframe)
        } else {
            let audio = self.audio.expect("audio frames only with a track");
            segment.add_frame(audio, &frame.data, ns, true)
        };
        if result.is_err() {
            return Err(self.error_now("writing a frame"));
        }
        if frame.video && frame.keyframe {
            self.keyframes_ms.push(frame.ms);
        }
        Ok(())
    }

    fn error_now(&self, what: &str) -> WriteError {
        self.error
            .get()
            .map_or_else(|| WriteError::Other(what.to_owned()), |k| classify(k, what))
    }

    /// Writes what is pending and closes the file (Cues, duration). Returns the duration
    /// in ms.
    pub fn finish(&mut self) -> Result<u64, WriteError> {
        if self.segment.is_none() {
            return Err(WriteError::Other("the recording is closed".to_owned()));
        }
        let mut written = Ok(());
        while let Some(frame) = self.interleave.next_any() {
            written = self.write(frame);
            if written.is_err() {
                break;
            }
        }
        let duration_ms = self.interleave.last_ms();
        let segment = self.segment.take().expect("checked above");
        // libwebm takes the duration in its timecode scale: milliseconds.
        let closed = segment.finalize(Some(duration_ms.max(1)));
        written?;
        let writer = closed.map_err(|_| self.error_now("closing the WebM segment"))?;
        let mut file = writer.into_inner();
        file.flush()
            .map_err(|e| classify(e.kind(), "flushing the recording"))?;
        Ok(duration_ms)
    }
}

/// A failed write's error: a full disk told apart from the rest.
pub(super) fn classify(kind: io::ErrorKind, what: &str) -> WriteError {
    match kind {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => WriteError::DiskFull,
        _ => WriteError::Other(format!("{what}: {kind}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matroska_demuxer::{Frame, MatroskaFile, TrackType};

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lockstep-mux-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// Frames as a publisher sends them: 30 fps video with a keyframe every second, audio
    /// every 20 ms arriving a little late relative to the video.
    fn write_two_seconds(path: &Path) -> Vec<u64> {
        let mut w = WebmWriter::create(path, 640, 360, true).unwrap();
        for i in 0..60u64 {
            let ms = i * 1000 / 30;
            w.frame(ms, true, i % 30 == 0, Bytes::from(vec![i as u8; 900]))
                .unwrap();
            for a in 0..2u64 {
                let audio_ms = (i * 2 + a) * 1000 / 60;
                w.frame(
                    audio_ms.saturating_sub(15),
                    false,
                    true,
                    Bytes::from_static(&[0xfc; 80]),
                )
                .unwrap();
            }
        }
        let keyframes = w.keyframes_ms.clone();
        let duration = w.finish().unwrap();
        assert!((1950..=2000).contains(&duration), "{duration}");
        keyframes
    }

    #[test]
    fn a_recording_reads_back_as_webm_with_both_tracks_in_time_order() {
        let path = scratch("both.webm");
        let keyframes = write_two_seconds(&path);
        assert_eq!(keyframes, vec![0, 1000]);
        let mut file = MatroskaFile::open(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(file.ebml_header().doc_type(), "webm");
        let kinds: Vec<(TrackType, &str)> = file
            .tracks()
            .iter()
            .map(|t| (t.track_type(), t.codec_id()))
            .collect();
        assert!(kinds.contains(&(TrackType::Video, "V_VP8")), "{kinds:?}");
        assert!(kinds.contains(&(TrackType::Audio, "A_OPUS")), "{kinds:?}");
        let video = file
            .tracks()
            .iter()
            .find(|t| t.track_type() == TrackType::Video)
            .unwrap();
        assert_eq!(video.video().unwrap().pixel_width().get(), 640);
        let video_track = video.track_number().get();
        let duration_ms =
            file.info().duration().unwrap() * file.info().timestamp_scale().get() as f64 / 1e6;
        assert!((1900.0..=2100.0).contains(&duration_ms), "{duration_ms}");
        let mut frame = Frame::default();
        let mut last = 0;
        let mut first_video: Option<bool> = None;
        let mut frames = 0;
        while file.next_frame(&mut frame).unwrap() {
            assert!(frame.timestamp >= last, "frames in time order");
            last = frame.timestamp;
            if frame.track == video_track && first_video.is_none() {
                first_video = frame.is_keyframe;
            }
            frames += 1;
        }
        assert_eq!(frames, 60 + 120);
        assert_eq!(first_video, Some(true), "the video starts with a keyframe");
    }

    #[test]
    fn frames_of_one_track_never_share_a_timestamp() {
        let path = scratch("same-ts.webm");
        let mut w = WebmWriter::create(&path, 640, 360, false).unwrap();
        // A layer switch: the new layer's keyframe carries the timestamp just written.
        for (ms, key) in [
            (0, true),
            (33, false),
            (66, false),
            (66, true),
            (100, false),
        ] {
            w.frame(ms, true, key, Bytes::from(vec![1; 100])).unwrap();
        }
        w.finish().unwrap();
        let mut file = MatroskaFile::open(std::fs::File::open(&path).unwrap()).unwrap();
        let mut frame = Frame::default();
        let mut times = Vec::new();
        while file.next_frame(&mut frame).unwrap() {
            times.push(frame.timestamp);
        }
        assert_eq!(times, [0, 33, 66, 67, 100]);
    }

    #[test]
    fn seeking_to_an_indexed_keyframe_lands_on_a_keyframe() {
        let path = scratch("seek.webm");
        let keyframes = write_two_seconds(&path);
        let mut file = MatroskaFile::open(std::fs::File::open(&path).unwrap()).unwrap();
        let video_track = file
            .tracks()
            .iter()
            .find(|t| t.track_type() == TrackType::Video)
            .unwrap()
            .track_number()
            .get();
        let scale = file.info().timestamp_scale().get();
        for &k in &keyframes {
            file.seek(k * 1_000_000 / scale).unwrap();
            let mut frame = Frame::default();
            loop {
                assert!(file.next_frame(&mut frame).unwrap(), "a frame after {k} ms");
                if frame.track == video_track {
                    break;
                }
            }
            assert_eq!(frame.is_keyframe, Some(true), "at {k} ms");
            assert_eq!(frame.timestamp * scale / 1_000_000, k);
        }
    }

    #[test]
    fn a_full_disk_is_told_apart_from_other_failures() {
        // /dev/full takes the open and fails every write with ENOSPC.
        let full = Path::new("/dev/full");
        if !full.exists() {
            return;
        }
        let result = WebmWriter::create(full, 640, 360, false).and_then(|mut w| {
            for i in 0..200u64 {
                w.frame(i * 33, true, i % 30 == 0, Bytes::from(vec![0; 4000]))?;
            }
            w.finish().map(drop)
        });
        assert_eq!(result.err(), Some(WriteError::DiskFull));
    }
}
