//! An H.264 publisher's recording, end to end on a real server: a real H.264 stream
//! (encoded by ffmpeg's libx264 from its test pattern, offered alone as OBS offers it,
//! packetized by webrtc-rs) is recorded without transcoding to fragmented MP4, and an
//! independent reader — Debian's ffprobe and ffmpeg, installed by scripts/test.sh —
//! finds H.264 at the clip's size and Opus, the first picture a keyframe, every indexed
//! keyframe a keyframe when seeked to, the stream's duration, and decodes every picture
//! without an error. The replay serves it as `video/mp4` with byte ranges.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::media::{H264_FPS, H264_HEIGHT, H264_WIDTH, encode_h264_clip, go_live_h264, run_tool};
use common::{TestServer, test_config};
use lockstep_load::rtc::H264Clip;
use serde_json::json;

fn ffprobe(args: &[&str], file: &Path) -> String {
    let mut all = vec!["-v", "error"];
    all.extend_from_slice(args);
    all.push(file.to_str().unwrap());
    String::from_utf8(run_tool("ffprobe", &all).stdout).unwrap()
}

/// (pts in ms, keyframe) of the video packets, from `-read_intervals` on if given.
fn video_packets(file: &Path, interval: Option<&str>) -> Vec<(u64, bool)> {
    let mut args = vec![
        "-select_streams",
        "v",
        "-show_entries",
        "packet=pts_time,flags",
        "-of",
        "csv=p=0",
    ];
    if let Some(interval) = interval {
        args.extend_from_slice(&["-read_intervals", interval]);
    }
    ffprobe(&args, file)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (pts, flags) = l.split_once(',').unwrap();
            let ms = (pts.parse::<f64>().unwrap() * 1000.0).round() as u64;
            (ms, flags.starts_with('K'))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_publisher_is_recorded_to_mp4_that_ffmpeg_reads_and_decodes() {
    let config = test_config();
    let dir = PathBuf::from(config.store.path.replace(".db", "-h264"));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = H264Clip::read(&encode_h264_clip(&dir)).unwrap();
    assert_eq!(clip.units.len(), 2 * H264_FPS as usize);

    let server = TestServer::start(config);
    let mut anchor = server.open_room("r1").await;
    let (stop, streaming) = go_live_h264(&server, &mut anchor, "r1", clip).await;
    let started = tokio::time::Instant::now();
    // Long enough for several of the clip's keyframes (one a second) to be recorded.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    anchor
        .send(json!({"type":"control","cmd":"end","id":2}))
        .await;
    let streamed_ms = started.elapsed().as_millis() as u64;
    stop.cancel();
    let sent = streaming.await.unwrap();
    assert!(sent >= 60, "{sent} pictures sent");

    let list = server
        .wait_json("/api/v1/replays?room=r1", None, |b| {
            b["replays"].as_array().is_some_and(|r| !r.is_empty())
        })
        .await;
    let id = list["replays"][0]["id"].as_i64().unwrap();
    let replay = server
        .wait_json(&format!("/api/v1/replays/{id}"), None, |b| {
            b["state"] == "ended"
                && b["media_url"].is_string()
                && b["duration_ms"].as_u64() > Some(0)
        })
        .await;
    assert_eq!(replay["media_type"], "video/mp4", "{replay}");
    let duration = replay["duration_ms"].as_u64().unwrap();
    assert!(
        duration + 1500 >= streamed_ms && duration <= streamed_ms + 500,
        "recorded {duration} ms of a {streamed_ms} ms stream"
    );
    let keyframes: Vec<u64> = replay["keyframes_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_u64().unwrap())
        .collect();
    assert!(keyframes.len() >= 2, "{keyframes:?}");

    let media_url = server.url(replay["media_url"].as_str().unwrap());
    let response = reqwest::get(&media_url).await.unwrap();
    assert_eq!(response.headers()["content-type"], "video/mp4");
    let file = dir.join("recording.mp4");
    std::fs::write(&file, response.bytes().await.unwrap()).unwrap();

    // What a stranger's demuxer sees.
    let streams = ffprobe(
        &[
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ],
        &file,
    );
    assert!(
        streams.contains(&format!("h264,{H264_WIDTH},{H264_HEIGHT}")),
        "{streams}"
    );
    assert!(streams.contains("opus"), "{streams}");
    let probed: f64 = ffprobe(
        &["-show_entries", "format=duration", "-of", "csv=p=0"],
        &file,
    )
    .trim()
    .parse()
    .unwrap();
    assert!(
        (probed * 1000.0 - duration as f64).abs() < 150.0,
        "ffprobe says {probed} s, the replay {duration} ms"
    );
    let packets = video_packets(&file, None);
    assert!(packets[0].1, "the recording starts with a keyframe");
    assert!(
        packets.len() as u64 >= duration * u64::from(H264_FPS) / 1000 * 8 / 10,
        "{} pictures in {duration} ms",
        packets.len()
    );
    let keyed: Vec<u64> = packets.iter().filter(|p| p.1).map(|p| p.0).collect();
    assert_eq!(keyed, keyframes, "the index names the file's keyframes");
    for &k in &keyframes {
        let at = format!("{}%+#1", k as f64 / 1000.0);
        let landed = video_packets(&file, Some(&at));
        assert_eq!(landed.first(), Some(&(k, true)), "seek to {k} ms");
    }
    // Every picture decodes, without a single decoder complaint.
    let decoded = run_tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            file.to_str().unwrap(),
            "-map",
            "0:v",
            "-f",
            "null",
            "-",
        ],
    );
    assert!(
        decoded.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let frames: usize = ffprobe(
        &[
            "-count_frames",
            "-select_streams",
            "v",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ],
        &file,
    )
    .trim()
    .parse()
    .unwrap();
    assert_eq!(frames, packets.len(), "every packet a decoded picture");

    // Byte ranges, so a player can seek.
    let ranged = reqwest::Client::new()
        .get(&media_url)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().len(), 100);
}
