//! Lockstep frames as the load generator speaks them: built from the protocol crate's
//! [`ClientMsg`] and read back as [`ServerMsg`], so a change to the protocol breaks the
//! generator when it is compiled rather than when it runs.
//!
//! One receive path does not come here: the fan-out scenario scans tick frames for its
//! payload markers without parsing them ([`crate::wire::markers`]), the same scan it runs
//! over NATS and Socket.IO frames, so the three servers are measured alike and the
//! generator's own JSON parsing is not what limits a 19,000-connection run.

use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use lockstep_protocol::{ClientMsg, ServerMsg};
use tokio_tungstenite::tungstenite::Message;

use crate::wire::Ws;

/// How long a request waits for its answer before the run reports the server stuck.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// The WebSocket frame carrying `msg`.
pub fn encode(msg: &ClientMsg) -> Message {
    // Plain data with string keys: serializing cannot fail.
    Message::text(serde_json::to_string(msg).expect("client messages serialize"))
}

/// Reads one text frame as a server message.
pub fn decode(text: &str) -> anyhow::Result<ServerMsg> {
    serde_json::from_str(text).with_context(|| format!("not a server message: {text}"))
}

/// Sends `msg`.
pub async fn send(ws: &mut Ws, msg: &ClientMsg) -> anyhow::Result<()> {
    ws.send(encode(msg)).await.context("sending to the server")
}

/// The next server message (control frames are skipped; a close ends the wait), waiting
/// at most `timeout`.
pub async fn next_within(ws: &mut Ws, timeout: Duration) -> anyhow::Result<ServerMsg> {
    loop {
        let frame = tokio::time::timeout(timeout, ws.next())
            .await
            .with_context(|| format!("no frame from the server for {timeout:?}"))?
            .context("socket ended")??;
        match frame {
            Message::Text(t) => return decode(&t),
            Message::Close(c) => bail!("socket closed: {c:?}"),
            _ => {}
        }
    }
}

/// Reads server messages until `pick` takes one, waiting at most [`ANSWER_TIMEOUT`] per
/// frame. Messages `pick` passes over (ticks, other broadcasts) are dropped.
pub async fn wait_for<T>(
    ws: &mut Ws,
    mut pick: impl FnMut(ServerMsg) -> Option<T>,
) -> anyhow::Result<T> {
    loop {
        if let Some(found) = pick(next_within(ws, ANSWER_TIMEOUT).await?) {
            return Ok(found);
        }
    }
}

/// Sends `msg` (which must carry `id`) and waits for its `ack`, or fails with the
/// server's `error` for it.
pub async fn request(ws: &mut Ws, msg: &ClientMsg, id: u64) -> anyhow::Result<()> {
    send(ws, msg).await?;
    wait_for(ws, |m| match m {
        ServerMsg::Ack { id: Some(i), .. } if i == id => Some(Ok(())),
        ServerMsg::Error {
            id: Some(i),
            name,
            message,
            ..
        } if i == id => Some(Err(anyhow::anyhow!("refused ({name:?}): {message}"))),
        _ => None,
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_protocol::ControlCmd;

    #[test]
    fn control_commands_are_flat_objects_on_the_wire() {
        let Message::Text(text) = encode(&ClientMsg::Control {
            cmd: ControlCmd::GoLive,
            id: Some(1),
        }) else {
            panic!("a text frame");
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "control");
        assert_eq!(v["cmd"], "go_live");
        assert_eq!(v["id"], 1);
    }

    #[test]
    fn unknown_server_frames_are_reported_with_their_text() {
        let err = decode(r#"{"type":"mystery"}"#).unwrap_err();
        assert!(format!("{err:#}").contains("mystery"), "{err:#}");
    }
}
