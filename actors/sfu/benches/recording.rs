//! What a room's recorder thread does per incoming packet, by codec: reassembling frames
//! from RTP ([`FrameAssembler`]) and writing them with the audio to the container (VP8 to
//! WebM with libwebm, H.264 to fragmented MP4 with muxide), file writes included. The
//! stream is the SFU benchmark's: 1.5 Mbit/s of video at 30 fps in packets of at most
//! 1,100 bytes (H.264 packetized by the `rtc` crate's payloader, parameter sets with each
//! keyframe, one every 2 s) and an Opus packet every 20 ms. Also prints each container's
//! size over the media it holds. `cargo bench -p lockstep-sfu --bench recording`

use std::path::{Path, PathBuf};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lockstep_sfu::codec::VideoCodec;
use lockstep_sfu::record::assemble::FrameAssembler;
use lockstep_sfu::record::mp4::Mp4Writer;
use lockstep_sfu::record::mux::WebmWriter;
use lockstep_sfu::record::writer::MediaWriter;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::packetizer::Payloader;

const SECONDS: u64 = 10;
const FPS: u64 = 30;
const FRAME_BYTES: usize = 1_500_000 / 8 / FPS as usize;
const MTU: usize = 1_100;
/// x264's SPS for 640×360 baseline and its PPS.
const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01,
    0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2e, 0x48,
];
const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

/// An incoming packet: (video, media timestamp, sequence number, marker, payload).
type Packet = (bool, u32, u16, bool, Bytes);

fn filler(len: usize, first: u8) -> Vec<u8> {
    let mut data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
    data[0] = first;
    data
}

/// The stream's packets in arrival order: each frame's packets, then any audio due.
fn stream(codec: VideoCodec) -> Vec<Packet> {
    let mut out = Vec::new();
    let mut payloader = H264Payloader::default();
    let (mut seq, mut audio_seq, mut audio_ms) = (0u16, 0u16, 0u64);
    for frame in 0..SECONDS * FPS {
        let keyframe = frame % (2 * FPS) == 0;
        let ts = (frame * 90_000 / FPS) as u32;
        let payloads: Vec<Bytes> = match codec {
            VideoCodec::H264 => {
                let slice = filler(FRAME_BYTES, if keyframe { 0x65 } else { 0x41 });
                let mut annex_b = Vec::new();
                let nals: Vec<&[u8]> = if keyframe {
                    vec![SPS, PPS, &slice]
                } else {
                    vec![&slice]
                };
                for nal in nals {
                    annex_b.extend_from_slice(&[0, 0, 0, 1]);
                    annex_b.extend_from_slice(nal);
                }
                payloader.payload(MTU, &Bytes::from(annex_b)).unwrap()
            }
            _ => {
                // VP8: a descriptor (S on the first) and the frame: a keyframe header
                // for 640×360, or the P bit.
                let mut bitstream = filler(FRAME_BYTES, if keyframe { 0x10 } else { 0x01 });
                if keyframe {
                    bitstream[..10].copy_from_slice(&[
                        0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01,
                    ]);
                }
                bitstream
                    .chunks(MTU - 1)
                    .enumerate()
                    .map(|(i, chunk)| {
                        let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
                        p.extend_from_slice(chunk);
                        Bytes::from(p)
                    })
                    .collect()
            }
        };
        let last = payloads.len() - 1;
        for (i, payload) in payloads.into_iter().enumerate() {
            out.push((true, ts, seq, i == last, payload));
            seq = seq.wrapping_add(1);
        }
        while audio_ms <= frame * 1000 / FPS {
            out.push((
                false,
                (audio_ms * 48) as u32,
                audio_seq,
                true,
                Bytes::from(filler(80, 0xfc)),
            ));
            audio_seq = audio_seq.wrapping_add(1);
            audio_ms += 20;
        }
    }
    out
}

fn open(codec: VideoCodec, path: &Path) -> MediaWriter {
    match codec {
        VideoCodec::H264 => MediaWriter::Mp4(Box::new(
            Mp4Writer::create(path, (640, 360), (SPS.to_vec(), PPS.to_vec()), true).unwrap(),
        )),
        _ => MediaWriter::Webm(WebmWriter::create(path, 640, 360, true).unwrap()),
    }
}

/// The recorder's work for the whole stream; returns the file's size.
fn record(codec: VideoCodec, packets: &[Packet], path: &Path) -> u64 {
    let mut assembler = FrameAssembler::new(codec);
    let mut writer = open(codec, path);
    for (video, ts, seq, marker, payload) in packets {
        if *video {
            for frame in assembler.push(*ts, *seq, *marker, payload.clone()) {
                let ms = u64::from(frame.media_ts) / 90;
                writer.frame(ms, true, frame.keyframe, frame.data).unwrap();
            }
        } else {
            writer
                .frame(u64::from(*ts) / 48, false, true, payload.clone())
                .unwrap();
        }
    }
    writer.finish().unwrap();
    writer.bytes()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockstep-bench-recording-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("recording");
    for (codec, name, file) in [
        (VideoCodec::Vp8, "vp8_webm", "bench.webm"),
        (VideoCodec::H264, "h264_mp4", "bench.mp4"),
    ] {
        let packets = stream(codec);
        let path = scratch(file);
        let media: usize = packets.iter().map(|p| p.4.len()).sum();
        let bytes = record(codec, &packets, &path);
        println!(
            "{name}: {} packets, {SECONDS} s; file {bytes} bytes for {media} bytes of RTP payload ({:.3}×)",
            packets.len(),
            bytes as f64 / media as f64
        );
        group.throughput(Throughput::Elements(packets.len() as u64));
        group.bench_function(name, |b| b.iter(|| record(codec, &packets, &path)));
        let _ = std::fs::remove_file(&path);
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
