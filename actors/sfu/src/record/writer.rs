//! The recording's file, in the container its video codec goes in: WebM for VP8,
//! fragmented MP4 for H.264. One interface for the recorder thread.

use bytes::Bytes;

use super::mp4::Mp4Writer;
use super::mux::{WebmWriter, WriteError};

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
