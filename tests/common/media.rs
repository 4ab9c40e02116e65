//! Media helpers for tests: going live with a webrtc-rs WHIP publisher, subscribing over
//! the viewer WebSocket, waiting for media notices and metrics.

use std::time::Duration;

use lockstep_load::rtc::{PublishOptions, Publisher, Subscriber};
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
    anchor
        .send(json!({"type":"control","cmd":"go_live","id":1}))
        .await;
    anchor
        .recv_until(|m| matches!(m, ServerMsg::RoomState { .. }).then_some(()))
        .await;
    let publishing = go_live_publisher_only(server, room).await;
    assert!(media_notice(anchor).await.live, "the stream went live");
    publishing
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
