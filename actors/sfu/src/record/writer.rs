//! The recording's file, in the container its video codec goes in: WebM for VP8,
//! fragmented MP4 for H.264. Created from the recording's first keyframe (its size and,
//! for H.264, its parameter sets); one interface for the recorder thread.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use lockstep_runtime::now_ms;

use super::assemble::vp8_keyframe_size;
use super::h264;
use super::mp4::Mp4Writer;
use super::mux::{WebmWriter, WriteError};
use crate::codec::VideoCodec;

/// An open recording file.
pub enum MediaWriter {
    Webm(WebmWriter),
    Mp4(Box<Mp4Writer>),
}

impl MediaWriter {
    /// The file name extension of this container.
    pub fn extension(&self) -> &'static str {
        match self {
            Self::Webm(_) => "webm",
            Self::Mp4(_) => "mp4",
        }
    }

    pub fn has_audio(&self) -> bool {
        match self {
            Self::Webm(w) => w.has_audio(),
            Self::Mp4(w) => w.has_audio(),
        }
    }

    /// Bytes in the file so far.
    pub fn bytes(&self) -> u64 {
        match self {
            Self::Webm(w) => w.bytes(),
            Self::Mp4(w) => w.bytes(),
        }
    }

    /// Media times (ms) of the keyframes written.
    pub fn keyframes_ms(&self) -> &[u64] {
        match self {
            Self::Webm(w) => &w.keyframes_ms,
            Self::Mp4(w) => &w.keyframes_ms,
        }
    }

    /// Queues a frame at media time `ms`.
    pub fn frame(
        &mut self,
        ms: u64,
        video: bool,
        keyframe: bool,
        data: Bytes,
    ) -> Result<(), WriteError> {
        match self {
            Self::Webm(w) => w.frame(ms, video, keyframe, data),
            Self::Mp4(w) => w.frame(ms, video, keyframe, data),
        }
    }

    /// Writes what is pending and closes the file; returns the duration in ms.
    pub fn finish(&mut self) -> Result<u64, WriteError> {
        match self {
            Self::Webm(w) => w.finish(),
            Self::Mp4(w) => w.finish(),
        }
    }
}

/// A recording file just created, before its description is written.
pub struct NewFile {
    pub writer: MediaWriter,
    pub path: PathBuf,
    /// Server time (ms since the Unix epoch) it was created: its name.
    pub started_at: u64,
    pub size: (u32, u32),
}

impl NewFile {
    /// The file for a recording whose first frame is `keyframe`: its size and, for
    /// H.264, its parameter sets come from that frame (`None` when it lacks them).
    pub fn create(
        dir: &Path,
        codec: VideoCodec,
        keyframe: &[u8],
        audio: bool,
    ) -> Result<Option<Self>, WriteError> {
        let started_at = now_ms();
        let path = |ext: &str| dir.join(format!("{started_at}.{ext}"));
        let file = match codec {
            VideoCodec::H264 => {
                let Some((sps, pps)) = h264::parameter_sets(keyframe) else {
                    return Ok(None);
                };
                let Some(size) = h264::sps_size(&sps) else {
                    return Ok(None);
                };
                let path = path("mp4");
                let writer = Mp4Writer::create(&path, size, (sps, pps), audio)?;
                NewFile {
                    writer: MediaWriter::Mp4(Box::new(writer)),
                    path,
                    started_at,
                    size,
                }
            }
            _ => {
                let Some(size) = vp8_keyframe_size(keyframe) else {
                    return Ok(None);
                };
                let path = path("webm");
                let writer = WebmWriter::create(&path, size.0, size.1, audio)?;
                NewFile {
                    writer: MediaWriter::Webm(writer),
                    path,
                    started_at,
                    size,
                }
            }
        };
        Ok(Some(file))
    }
}
