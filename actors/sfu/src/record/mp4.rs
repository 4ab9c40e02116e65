//! Writes an H.264 recording's frames to a fragmented MP4 file with `muxide`: the
//! header (`ftyp` + `moov`, with the SPS and PPS of the first keyframe and an Opus track
//! when the publisher sends audio) goes first, then one fragment (`moof` + `mdat`) at
//! a time. A fragment starts on a video keyframe once the one before holds at least
//! [`MIN_FRAGMENT_MS`], and is cut at [`MAX_FRAGMENT_MS`] when keyframes are rarer, so
//! a file whose writer died still plays up to its last fragment. Each fragment starts
//! each track at its first sample's own decode time (the muxer would extrapolate it
//! from the fragment before, which drifts by a frame's jitter and loses gaps). Closing
//! writes what is pending and the duration into the header.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use bytes::Bytes;
use muxide::api::AudioCodec;
use muxide::fragmented::{FragmentAudioConfig, FragmentConfig, FragmentedMuxer};

use super::interleave::{Interleaver, Timed};
use super::mux::{WriteError, classify};

/// A keyframe starts a new fragment once the current one holds this much.
pub const MIN_FRAGMENT_MS: u32 = 1_000;
/// A fragment is cut here even without a keyframe.
pub const MAX_FRAGMENT_MS: u32 = 4_000;
/// The video track's timescale: the RTP clock's.
const VIDEO_TICKS_PER_MS: u64 = 90;
/// The audio track's timescale: Opus's 48 kHz.
const AUDIO_TICKS_PER_MS: u64 = 48;
/// The muxer's track ids: video first, then audio.
const VIDEO_TRACK: u32 = 1;
const AUDIO_TRACK: u32 = 2;

/// An open MP4 recording.
pub struct Mp4Writer {
    file: BufWriter<File>,
    muxer: FragmentedMuxer,
    interleave: Interleaver,
    audio: bool,
    /// The decode time (ticks) of each track's first sample in the fragment being built.
    fragment_starts: Vec<(u32, u64)>,
    /// Where the movie header's duration field sits in the file.
    duration_at: Option<u64>,
    bytes: u64,
    /// Media times (ms) of the keyframes written.
    pub keyframes_ms: Vec<u64>,
}

/// Where `mvhd`'s (version 0) duration field sits in a header, if it has one.
fn mvhd_duration_offset(header: &[u8]) -> Option<usize> {
    let at = header.windows(4).position(|w| w == b"mvhd")?;
    // size, type, version + flags, creation, modification, timescale, then duration.
    let box_start = at.checked_sub(4)?;
    (header.get(at + 4) == Some(&0)).then_some(box_start + 24)
}

/// The child boxes of the box whose body is `body`: (type, start, end) in `body`.
fn children(body: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = body.get(at..at + 8) {
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if size < 8 || at + size > body.len() {
            break;
        }
        out.push(([head[4], head[5], head[6], head[7]], at, at + size));
        at += size;
    }
    out
}

/// Sets each track's base decode time (`tfdt`) in a fragment (`moof` + `mdat`) to the
/// given ticks, by track id (`tfhd`).
fn set_decode_times(fragment: &mut [u8], starts: &[(u32, u64)]) {
    let Some(&(kind, _, moof_end)) = children(fragment).first() else {
        return;
    };
    if &kind != b"moof" {
        return;
    }
    for (kind, start, end) in children(&fragment[8..moof_end]) {
        if &kind != b"traf" {
            continue;
        }
        let traf = &mut fragment[8 + start + 8..8 + end];
        let boxes = children(traf);
        let track = boxes
            .iter()
            .find(|b| &b.0 == b"tfhd")
            .and_then(|b| traf.get(b.1 + 12..b.1 + 16))
            .map(|id| u32::from_be_bytes([id[0], id[1], id[2], id[3]]));
        let Some(&(_, ticks)) = starts.iter().find(|(t, _)| Some(*t) == track) else {
            continue;
        };
        let Some(&(_, at, end)) = boxes.iter().find(|b| &b.0 == b"tfdt") else {
            continue;
        };
        match (traf[at + 8], end - at) {
            (1, 20) => traf[at + 12..at + 20].copy_from_slice(&ticks.to_be_bytes()),
            (0, 16) => traf[at + 12..at + 16]
                .copy_from_slice(&u32::try_from(ticks).unwrap_or(u32::MAX).to_be_bytes()),
            _ => {}
        }
    }
}

impl Mp4Writer {
    /// Creates the file with an H.264 video track of `width`×`height` described by `sps`
    /// and `pps` and, with `audio`, an Opus track.
    pub fn create(
        path: &Path,
        (width, height): (u32, u32),
        (sps, pps): (Vec<u8>, Vec<u8>),
        audio: bool,
    ) -> Result<Self, WriteError> {
        let mut config =
            FragmentConfig::new(width, height, 90_000).with_fragment_duration_ms(MAX_FRAGMENT_MS);
        config.sps = sps;
        config.pps = pps;
        let muxer = if audio {
            FragmentedMuxer::new_with_audio(
                config,
                FragmentAudioConfig {
                    codec: AudioCodec::Opus,
                    sample_rate: 48_000,
                    channels: 2,
                },
            )
        } else {
            FragmentedMuxer::new(config)
        };
        let mut muxer = muxer.map_err(|e| WriteError::Other(format!("MP4 header: {e}")))?;
        let file = File::create(path).map_err(|e| classify(e.kind(), &e.to_string()))?;
        let header = muxer.init_segment();
        let mut writer = Self {
            file: BufWriter::with_capacity(256 * 1024, file),
            muxer,
            interleave: Interleaver::default(),
            audio,
            fragment_starts: Vec::new(),
            duration_at: mvhd_duration_offset(&header).map(|at| at as u64),
            bytes: 0,
            keyframes_ms: Vec::new(),
        };
        writer.put(&header, "writing the MP4 header")?;
        Ok(writer)
    }

    pub fn has_audio(&self) -> bool {
        self.audio
    }

    /// Bytes in the file so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Queues a frame at media time `ms`; writes those now out of the reorder window.
    pub fn frame(
        &mut self,
        ms: u64,
        video: bool,
        keyframe: bool,
        data: Bytes,
    ) -> Result<(), WriteError> {
        if !video && !self.audio {
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
        let cut_here = frame.video
            && frame.keyframe
            && self.muxer.current_fragment_duration_ms() >= u64::from(MIN_FRAGMENT_MS);
        if cut_here || self.muxer.ready_to_flush() {
            self.flush_fragment()?;
        }
        let (track, ticks) = if frame.video {
            (VIDEO_TRACK, frame.ms * VIDEO_TICKS_PER_MS)
        } else {
            (AUDIO_TRACK, frame.ms * AUDIO_TICKS_PER_MS)
        };
        if !self.fragment_starts.iter().any(|(t, _)| *t == track) {
            self.fragment_starts.push((track, ticks));
        }
        let queued = if frame.video {
            self.muxer
                .write_video(ticks, ticks, &frame.data, frame.keyframe)
        } else {
            self.muxer.write_audio(ticks, ticks, &frame.data)
        };
        queued.map_err(|e| WriteError::Other(format!("queueing a frame: {e}")))?;
        if frame.video && frame.keyframe {
            self.keyframes_ms.push(frame.ms);
        }
        Ok(())
    }

    fn flush_fragment(&mut self) -> Result<(), WriteError> {
        let Some(mut fragment) = self.muxer.flush_segment() else {
            return Ok(());
        };
        set_decode_times(&mut fragment, &std::mem::take(&mut self.fragment_starts));
        self.put(&fragment, "writing a fragment")
    }

    fn put(&mut self, bytes: &[u8], what: &str) -> Result<(), WriteError> {
        self.file
            .write_all(bytes)
            .map_err(|e| classify(e.kind(), what))?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Writes what is pending and the duration, and closes the file. Returns the
    /// duration in ms.
    pub fn finish(&mut self) -> Result<u64, WriteError> {
        while let Some(frame) = self.interleave.next_any() {
            self.write(frame)?;
        }
        self.flush_fragment()?;
        let duration_ms = self.interleave.last_ms();
        if let Some(at) = self.duration_at {
            let ticks = u32::try_from(duration_ms * VIDEO_TICKS_PER_MS).unwrap_or(u32::MAX);
            self.patch(at, &ticks.to_be_bytes())
                .map_err(|e| classify(e.kind(), "writing the duration"))?;
        }
        self.file
            .flush()
            .map_err(|e| classify(e.kind(), "flushing the recording"))?;
        Ok(duration_ms)
    }

    fn patch(&mut self, at: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(at))?;
        self.file.write_all(bytes)?;
        self.file.seek(SeekFrom::End(0)).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::h264::tests::{PPS, SPS_640X360};
    use std::process::Command;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lockstep-mp4-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn prefixed(nals: &[&[u8]]) -> Bytes {
        let mut out = Vec::new();
        for nal in nals {
            out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out.into()
    }

    /// ffprobe's reading (an independent demuxer, installed by scripts/test.sh).
    fn ffprobe(args: &[&str], path: &Path) -> String {
        let out = Command::new("ffprobe")
            .args(["-v", "error"])
            .args(args)
            .arg(path)
            .output()
            .expect("ffprobe runs (scripts/test.sh installs Debian's ffmpeg)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// (stream, pts in ms, keyframe) of every packet.
    fn packets(path: &Path, extra: &[&str]) -> Vec<(u32, u64, bool)> {
        let mut args = vec![
            "-show_entries",
            "packet=stream_index,pts_time,flags",
            "-of",
            "csv=p=0",
        ];
        args.extend_from_slice(extra);
        ffprobe(&args, path)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                let ms = (f[1].parse::<f64>().unwrap() * 1000.0).round() as u64;
                (f[0].parse().unwrap(), ms, f[2].starts_with('K'))
            })
            .collect()
    }

    /// Three seconds as a publisher sends them: 30 fps video with a keyframe (SPS, PPS,
    /// IDR) every second, Opus audio every 20 ms arriving a little behind the video.
    fn write_three_seconds(path: &Path) -> (Vec<u64>, u64, usize) {
        let mut w = Mp4Writer::create(path, (640, 360), (SPS_640X360.to_vec(), PPS.to_vec()), true)
            .unwrap();
        let (mut audio_ms, mut audio_frames) = (0, 0);
        for i in 0..90u64 {
            let ms = i * 1000 / 30;
            let frame = if i % 30 == 0 {
                prefixed(&[SPS_640X360, PPS, &[0x65, 0x88, 0x84, i as u8]])
            } else {
                prefixed(&[&[0x41, 0x9a, 0x02, i as u8]])
            };
            w.frame(ms, true, i % 30 == 0, frame).unwrap();
            while audio_ms + 20 <= ms {
                w.frame(audio_ms, false, true, Bytes::from_static(&[0xfc; 60]))
                    .unwrap();
                audio_ms += 20;
                audio_frames += 1;
            }
        }
        let duration = w.finish().unwrap();
        assert!(w.bytes() > 0);
        (w.keyframes_ms.clone(), duration, audio_frames)
    }

    #[test]
    fn an_h264_recording_reads_back_as_mp4_with_both_tracks() {
        let path = scratch("both.mp4");
        let (keyframes, duration, audio_frames) = write_three_seconds(&path);
        assert_eq!(keyframes, [0, 1000, 2000]);
        assert!((2900..=3000).contains(&duration), "{duration}");
        let streams = ffprobe(
            &[
                "-show_entries",
                "stream=codec_name,width,height,sample_rate",
                "-of",
                "csv=p=0",
            ],
            &path,
        );
        assert!(streams.contains("h264,640,360"), "{streams}");
        assert!(streams.contains("opus"), "{streams}");
        let format = ffprobe(
            &[
                "-show_entries",
                "format=format_name,duration",
                "-of",
                "csv=p=0",
            ],
            &path,
        );
        assert!(format.contains("mov,mp4"), "{format}");
        let probed: f64 = format.trim().rsplit(',').next().unwrap().parse().unwrap();
        assert!((2.8..=3.2).contains(&probed), "duration {probed}");
        let all = packets(&path, &[]);
        let video: Vec<_> = all.iter().filter(|p| p.0 == 0).collect();
        assert_eq!(video.len(), 90);
        assert!(video[0].2, "the video starts with a keyframe");
        let keyed: Vec<u64> = video.iter().filter(|p| p.2).map(|p| p.1).collect();
        assert_eq!(keyed, keyframes, "the index names the keyframes");
        assert_eq!(all.iter().filter(|p| p.0 == 1).count(), audio_frames);
    }

    #[test]
    fn seeking_to_an_indexed_keyframe_lands_on_a_keyframe() {
        let path = scratch("seek.mp4");
        let (keyframes, _, _) = write_three_seconds(&path);
        for k in keyframes {
            let at = format!("{}%+#1", k as f64 / 1000.0);
            let first = packets(&path, &["-select_streams", "v", "-read_intervals", &at]);
            assert_eq!(
                first.first().map(|p| (p.1, p.2)),
                Some((k, true)),
                "at {k} ms"
            );
        }
    }

    /// (track, base decode time) of each `traf` in a fragment.
    fn decode_times(fragment: &[u8]) -> Vec<(u32, u64)> {
        let moof = &fragment[8..children(fragment)[0].2];
        children(moof)
            .into_iter()
            .filter(|b| &b.0 == b"traf")
            .map(|(_, start, end)| {
                let traf = &moof[start + 8..end];
                let boxes = children(traf);
                let at = |kind: &[u8; 4]| boxes.iter().find(|b| &b.0 == kind).unwrap().1;
                let id = u32::from_be_bytes(traf[at(b"tfhd") + 12..][..4].try_into().unwrap());
                let t = u64::from_be_bytes(traf[at(b"tfdt") + 12..][..8].try_into().unwrap());
                (id, t)
            })
            .collect()
    }

    #[test]
    fn each_fragment_starts_each_track_at_its_first_sample() {
        let mut muxer = FragmentedMuxer::new_with_audio(
            FragmentConfig::new(640, 360, 90_000),
            FragmentAudioConfig {
                codec: AudioCodec::Opus,
                sample_rate: 48_000,
                channels: 2,
            },
        )
        .unwrap();
        muxer.write_video(0, 0, &[0, 0, 0, 1, 0x65], true).unwrap();
        muxer
            .write_video(3_000, 3_000, &[0, 0, 0, 1, 0x41], false)
            .unwrap();
        muxer.write_audio(0, 0, &[0xfc; 10]).unwrap();
        let mut first = muxer.flush_segment().unwrap();
        set_decode_times(&mut first, &[(1, 0), (2, 0)]);
        // After a gap the next fragment's samples start later than the muxer guesses.
        muxer
            .write_video(90_000, 90_000, &[0, 0, 0, 1, 0x65], true)
            .unwrap();
        muxer.write_audio(47_040, 47_040, &[0xfc; 10]).unwrap();
        let mut second = muxer.flush_segment().unwrap();
        assert_ne!(decode_times(&second), [(1, 90_000), (2, 47_040)]);
        set_decode_times(&mut second, &[(2, 47_040), (1, 90_000)]);
        assert_eq!(decode_times(&second), [(1, 90_000), (2, 47_040)]);
        assert_eq!(decode_times(&first), [(1, 0), (2, 0)]);
        let mut garbage = vec![0, 0, 0, 9, b'm', b'o', b'o', b'f', 1];
        set_decode_times(&mut garbage, &[(1, 5)]);
    }

    #[test]
    fn a_full_disk_is_told_apart_from_other_failures() {
        let full = Path::new("/dev/full");
        if !full.exists() {
            return;
        }
        let result = Mp4Writer::create(
            full,
            (640, 360),
            (SPS_640X360.to_vec(), PPS.to_vec()),
            false,
        )
        .and_then(|mut w| {
            for i in 0..400u64 {
                let data = Bytes::from(vec![0x41; 4_000]);
                w.frame(i * 33, true, i % 30 == 0, data)?;
            }
            w.finish().map(drop)
        });
        assert_eq!(result.err(), Some(WriteError::DiskFull));
    }
}
