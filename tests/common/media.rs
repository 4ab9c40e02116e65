//! Media helpers for tests: going live with a webrtc-rs WHIP publisher (synthetic VP8, or
//! a real H.264 clip encoded by ffmpeg), subscribing over the viewer WebSocket, waiting
//! for media notices and metrics.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use lockstep_load::rtc::{H264Clip, PublishOptions, Publisher, Subscriber};
use lockstep_protocol::{MediaInfo, ServerMsg};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Client, TestServer};

/// How long a media event may take.
pub const WAIT: Duration = Duration::from_secs(15);

/// Goes live and starts a WHIP publisher streaming until the token fires; returns once
/// the room announced the stream live.
pub async fn go_live(
    server: &TestServer,
    anchor: &mut Client,
    room: &str,
) -> (std::sync::Arc<Publisher>, CancellationToken) {
    send_go_live(anchor).await;
    let publishing = go_live_publisher_only(server, room).await;
    assert!(media_notice(anchor).await.live, "the stream went live");
    publishing
}

/// The anchor goes live on its control channel (the room's state changes).
async fn send_go_live(anchor: &mut Client) {
    anchor
        .send(json!({"type":"control","cmd":"go_live","id":1}))
        .await;
    anchor
        .recv_until(|m| matches!(m, ServerMsg::RoomState { .. }).then_some(()))
        .await;
}

pub async fn media_notice(client: &mut Client) -> MediaInfo {
    client
        .recv_until(|m| match m {
            ServerMsg::Media { media } => Some(*media),
            _ => None,
        })
        .await
}

/// Subscribes over the viewer WebSocket.
pub async fn ws_subscribe(viewer: &mut Client) -> Subscriber {
    let mut sub = Subscriber::new().await.unwrap();
    viewer
        .send(json!({"type":"rtc_offer","sdp":sub.offer(),"id":7}))
        .await;
    let answer = viewer
        .recv_until(|m| match m {
            ServerMsg::RtcAnswer { sdp, .. } => Some(sdp.clone()),
            ServerMsg::Error { message, .. } => panic!("rtc_offer refused: {message}"),
            _ => None,
        })
        .await;
    sub.accept(answer).await.expect("subscriber connects");
    sub
}

pub async fn status_of(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// Publishes to an already-live room.
pub async fn go_live_publisher_only(
    server: &TestServer,
    room: &str,
) -> (std::sync::Arc<Publisher>, CancellationToken) {
    let publisher = std::sync::Arc::new(
        Publisher::connect(&server.url(""), room, &server.anchor_token(room))
            .await
            .expect("WHIP publish"),
    );
    let stop = CancellationToken::new();
    let (p, s) = (publisher.clone(), stop.clone());
    tokio::spawn(async move {
        p.stream(&PublishOptions::default(), s.cancelled_owned())
            .await;
    });
    (publisher, stop)
}

/// The H.264 test clip's picture size and rate.
pub const H264_WIDTH: u32 = 640;
pub const H264_HEIGHT: u32 = 360;
pub const H264_FPS: u32 = 30;

/// Runs a tool (ffmpeg, ffprobe) and insists it succeeds.
pub fn run_tool(program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/test.sh installs Debian's ffmpeg)"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Two seconds of ffmpeg's test pattern in H.264 (baseline, a keyframe with its
/// parameter sets every second) as an Annex B file.
pub fn encode_h264_clip(dir: &Path) -> PathBuf {
    let path = dir.join("clip.h264");
    let size = format!("testsrc=size={H264_WIDTH}x{H264_HEIGHT}:rate={H264_FPS}");
    let params = format!("keyint={H264_FPS}:min-keyint={H264_FPS}:scenecut=0:repeat-headers=1");
    run_tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &size,
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-pix_fmt",
            "yuv420p",
            "-x264-params",
            &params,
            "-f",
            "h264",
            path.to_str().unwrap(),
        ],
    );
    path
}

/// Goes live with an H.264 WHIP publisher (H.264 offered alone, as OBS offers it)
/// looping `clip` until the token fires; returns once the room announced the stream
/// live, with the streaming task (it answers the pictures sent).
pub async fn go_live_h264(
    server: &TestServer,
    anchor: &mut Client,
    room: &str,
    clip: H264Clip,
) -> (CancellationToken, tokio::task::JoinHandle<u64>) {
    send_go_live(anchor).await;
    let publisher = Arc::new(
        Publisher::connect_h264(&server.url(""), room, &server.anchor_token(room))
            .await
            .expect("WHIP publish with H.264 alone"),
    );
    let stop = CancellationToken::new();
    let streaming = {
        let (publisher, stop) = (publisher.clone(), stop.clone());
        tokio::spawn(async move {
            publisher
                .stream_h264(&clip, H264_FPS, stop.cancelled_owned())
                .await
        })
    };
    assert!(media_notice(anchor).await.live, "the stream went live");
    (stop, streaming)
}
