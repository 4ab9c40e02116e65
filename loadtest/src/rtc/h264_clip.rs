//! A real H.264 stream to publish, as a hardware or software encoder (OBS, x264) sends
//! one: an Annex B file cut into access units (NAL units read by the `rtc` crate's
//! H.264 reader; an access unit ends with its slice — one slice per picture, as x264
//! writes by default), sent at a set frame rate as RTP by the `rtc` crate's H.264
//! payloader (parameter sets aggregated in a STAP-A, large slices in FU-A fragments),
//! looping, and a keyframe request answered by skipping to the next IDR picture.

use std::path::Path;

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use rtc::media::io::h26x_reader::{H26xNAL, H26xReader, H264NalUnitType};
use rtc::rtp;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::packetizer::Payloader;

use super::publisher::rtp_packet;

/// One picture: its NAL units in Annex B form, parameter sets included.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    pub annex_b: Bytes,
    pub idr: bool,
}

/// A clip read from an Annex B file.
#[derive(Debug, Clone)]
pub struct H264Clip {
    pub units: Vec<AccessUnit>,
}

impl H264Clip {
    /// Reads `path` (e.g. `ffmpeg ... -c:v libx264 -f h264 clip.h264`).
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        let mut reader = H26xReader::new(file, 1 << 16, false);
        let mut units = Vec::new();
        let mut pending = BytesMut::new();
        let mut idr = false;
        while let Ok(H26xNAL::H264(nal)) = reader.next_nal() {
            pending.extend_from_slice(&[0, 0, 0, 1]);
            pending.extend_from_slice(&nal.data);
            match nal.unit_type {
                H264NalUnitType::CodedSliceIdr | H264NalUnitType::CodedSliceNonIdr => {
                    idr |= nal.unit_type == H264NalUnitType::CodedSliceIdr;
                    units.push(AccessUnit {
                        annex_b: pending.split().freeze(),
                        idr,
                    });
                    idr = false;
                }
                _ => {}
            }
        }
        if !units.first().is_some_and(|u| u.idr) {
            bail!(
                "{}: no H.264 stream starting with an IDR picture",
                path.display()
            );
        }
        Ok(Self { units })
    }
}

/// The clip as RTP, frame by frame, with one audio packet per frame beside it.
pub struct H264Source<'a> {
    clip: &'a H264Clip,
    next: usize,
    frame: u64,
    fps: u64,
    mtu: usize,
    payloader: H264Payloader,
    /// (payload type, SSRC, next sequence number)
    video: (u8, u32, u16),
    audio: (u8, u32, u16),
    ts_base: u32,
}

impl<'a> H264Source<'a> {
    /// `video` and `audio` are (payload type, SSRC).
    pub fn new(
        clip: &'a H264Clip,
        fps: u32,
        mtu: usize,
        video: (u8, u32),
        audio: (u8, u32),
    ) -> Self {
        Self {
            clip,
            next: 0,
            frame: 0,
            fps: u64::from(fps.max(1)),
            mtu,
            payloader: H264Payloader::default(),
            video: (video.0, video.1, rand::random()),
            audio: (audio.0, audio.1, rand::random()),
            ts_base: rand::random(),
        }
    }

    /// Pictures sent so far.
    pub fn frames(&self) -> u64 {
        self.frame
    }

    /// The next picture's packets (a keyframe if asked: the next IDR) and an audio
    /// packet carrying `audio_payload`.
    pub fn next_frame(
        &mut self,
        keyframe_wanted: bool,
        audio_payload: Vec<u8>,
    ) -> (Vec<rtp::Packet>, rtp::Packet) {
        let units = &self.clip.units;
        if keyframe_wanted && !units[self.next].idr {
            self.next = (self.next..units.len())
                .chain(0..self.next)
                .find(|&i| units[i].idr)
                .unwrap_or(0);
        }
        let unit = &units[self.next];
        self.next = (self.next + 1) % units.len();
        let frame = self.frame;
        self.frame += 1;
        let ts = self
            .ts_base
            .wrapping_add((frame * 90_000 / self.fps) as u32);
        let payloads = self
            .payloader
            .payload(self.mtu, &unit.annex_b)
            .unwrap_or_default();
        let last = payloads.len().saturating_sub(1);
        let video = payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| packet(&mut self.video, ts, i == last, payload))
            .collect();
        let audio_ts = (frame * 48_000 / self.fps) as u32;
        let audio = packet(&mut self.audio, audio_ts, true, audio_payload.into());
        (video, audio)
    }
}

/// The next packet of `stream` (payload type, SSRC, next sequence number).
fn packet(stream: &mut (u8, u32, u16), ts: u32, marker: bool, payload: Bytes) -> rtp::Packet {
    let seq = stream.2;
    stream.2 = seq.wrapping_add(1);
    rtp_packet((stream.0, stream.1), seq, ts, marker, payload)
}
