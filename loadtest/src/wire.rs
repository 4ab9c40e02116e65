//! The wire side of the load generator: connecting WebSockets from chosen loopback source
//! addresses, and the three protocols it can drive — Lockstep's, NATS's WebSocket text
//! protocol, and Engine.IO v4 / Socket.IO framing — so the same workload runs against
//! each server. Receive paths only scan for the payload markers; they never parse JSON
//! (Lockstep's typed frames are in [`crate::frames`]).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use lockstep_protocol::{ClientMsg, ControlCmd, PROTOCOL_VERSION, ServerMsg};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::frames;

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Which server is under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Lockstep,
    Nats,
    Socketio,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Lockstep => "lockstep",
            Target::Nats => "nats",
            Target::Socketio => "socketio",
        }
    }
}

/// Unix time in nanoseconds (all processes on one machine share this clock).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn ws_config() -> WebSocketConfig {
    // The default 128 KiB read buffer per connection would dominate the generator's
    // memory at 19,000 connections; the write buffer is flushed per message.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Connects `url` (path on `server`) from source address `source` (a loopback address
/// of its own gives each worker its own ephemeral-port range).
pub async fn connect(server: SocketAddr, source: Option<IpAddr>, path: &str) -> anyhow::Result<Ws> {
    connect_with(server, source, path, None).await
}

/// [`connect`] with an optional kernel receive buffer size (a small one makes a client
/// that stops reading stall the server's writes after kilobytes, not megabytes).
pub async fn connect_with(
    server: SocketAddr,
    source: Option<IpAddr>,
    path: &str,
    recv_buffer: Option<u32>,
) -> anyhow::Result<Ws> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("binding source {ip}"))?;
    }
    let stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(server))
        .await
        .context("connect timed out")?
        .with_context(|| format!("connecting to {server}"))?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{server}{path}");
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async_with_config(
            url,
            MaybeTlsStream::Plain(stream),
            Some(ws_config()),
        ),
    )
    .await
    .context("websocket handshake timed out")??;
    Ok(ws)
}

/// The payload of message `seq`: `s=<seq>;t=<send unix ns>;` padded to `size` bytes.
pub fn payload(seq: u64, size: usize) -> String {
    let mut p = format!("s={seq};t={};", now_ns());
    if p.len() < size {
        p.push_str(&"x".repeat(size - p.len()));
    }
    p
}

/// Every `(seq, sent_ns)` marker in a received frame.
pub fn markers(frame: &str) -> impl Iterator<Item = (u64, u64)> + '_ {
    frame.match_indices("s=").filter_map(move |(i, _)| {
        let rest = &frame[i + 2..];
        let (seq, rest) = rest.split_once(";t=")?;
        let (sent, _) = rest.split_once(';')?;
        Some((seq.parse().ok()?, sent.parse().ok()?))
    })
}

/// Opens a receiving session and completes the protocol's join. Returns the socket.
pub async fn join_receiver(
    target: Target,
    server: SocketAddr,
    source: Option<IpAddr>,
    room: &str,
    token: Option<&str>,
) -> anyhow::Result<Ws> {
    join_receiver_with(target, server, source, room, token, None).await
}

/// [`join_receiver`] with an optional kernel receive buffer size.
pub async fn join_receiver_with(
    target: Target,
    server: SocketAddr,
    source: Option<IpAddr>,
    room: &str,
    token: Option<&str>,
    recv_buffer: Option<u32>,
) -> anyhow::Result<Ws> {
    match target {
        Target::Lockstep => {
            let mut ws =
                connect_with(server, source, &format!("/ws/rooms/{room}"), recv_buffer).await?;
            lockstep_join(&mut ws, token, None).await?;
            Ok(ws)
        }
        Target::Nats => {
            let mut ws = connect_with(server, source, "/", recv_buffer).await?;
            nats_handshake(&mut ws).await?;
            ws.send(Message::text(format!("SUB {room} 1\r\nPING\r\n")))
                .await?;
            // The PONG proves the subscription is registered.
            wait_for(&mut ws, |t| t.contains("PONG")).await?;
            Ok(ws)
        }
        Target::Socketio => {
            let mut ws = connect_with(
                server,
                source,
                "/socket.io/?EIO=4&transport=websocket",
                recv_buffer,
            )
            .await?;
            socketio_handshake(&mut ws).await?;
            Ok(ws)
        }
    }
}

/// Joins Lockstep (viewer socket or control channel); returns the welcome.
pub async fn lockstep_join(
    ws: &mut Ws,
    token: Option<&str>,
    title: Option<&str>,
) -> anyhow::Result<ServerMsg> {
    frames::send(
        ws,
        &ClientMsg::Join {
            protocol: PROTOCOL_VERSION,
            token: token.map(str::to_owned),
            title: title.map(str::to_owned),
            id: None,
        },
    )
    .await?;
    frames::wait_for(ws, |m| match m {
        ServerMsg::Welcome { .. } => Some(Ok(m)),
        ServerMsg::Error { .. } => Some(Err(anyhow::anyhow!("join refused: {m:?}"))),
        _ => None,
    })
    .await?
}

async fn nats_handshake(ws: &mut Ws) -> anyhow::Result<()> {
    wait_for(ws, |t| t.starts_with("INFO")).await?;
    ws.send(Message::text(
        "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n",
    ))
    .await?;
    Ok(())
}

async fn socketio_handshake(ws: &mut Ws) -> anyhow::Result<()> {
    wait_for(ws, |t| t.starts_with("0{")).await?;
    ws.send(Message::text("40")).await?;
    wait_for(ws, |t| t.starts_with("40")).await?;
    Ok(())
}

/// Reads text frames until one satisfies `done` (answering protocol pings on the way).
pub async fn wait_for(ws: &mut Ws, done: impl Fn(&str) -> bool) -> anyhow::Result<String> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .context("timed out waiting for the server")?
            .context("socket closed")??;
        if let Message::Close(c) = &frame {
            bail!("socket closed: {c:?}");
        }
        if let Some(t) = frame_text(&frame) {
            if done(t) {
                return Ok(t.to_owned());
            }
            let t = t.to_owned();
            answer_ping(ws, &t).await?;
        }
    }
}

/// Whether a frame carries a protocol keep-alive: NATS `PING` (possibly packed after
/// messages in the same frame) or Engine.IO `2`.
pub fn is_ping(text: &str) -> bool {
    text == "2" || text.starts_with("PING\r\n") || text.contains("\r\nPING\r\n")
}

/// Answers the text-level keep-alives of NATS (`PING`) and Engine.IO (`2`).
pub async fn answer_ping(ws: &mut Ws, text: &str) -> anyhow::Result<()> {
    if text == "2" {
        ws.send(Message::text("3")).await?;
    } else if is_ping(text) {
        ws.send(Message::text("PONG\r\n")).await?;
    }
    Ok(())
}

/// The text of a text frame, or of a binary frame holding UTF-8 (NATS sends binary).
fn frame_text(frame: &Message) -> Option<&str> {
    match frame {
        Message::Text(t) => Some(t.as_str()),
        Message::Binary(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

/// A publisher: one connection sending the measured messages.
pub struct Publisher {
    target: Target,
    room: String,
    out: tokio::sync::mpsc::UnboundedSender<Message>,
    refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Publisher {
    /// Lockstep publishes as the anchor (`say`: never sampled, not rate-limited per user);
    /// NATS with `PUB`; Socket.IO by emitting `pub`, which the peer server re-emits as `msg`.
    /// The socket's incoming side is drained in the background (so the publisher is never
    /// cut as a slow consumer) and keep-alives are answered.
    pub async fn connect(
        target: Target,
        server: SocketAddr,
        room: &str,
        anchor_token: Option<&str>,
    ) -> anyhow::Result<Self> {
        let ws = match target {
            Target::Lockstep => {
                let mut ws = connect(server, None, &format!("/ws/rooms/{room}/control")).await?;
                lockstep_join(&mut ws, anchor_token, Some(room)).await?;
                ws
            }
            Target::Nats => {
                let mut ws = connect(server, None, "/").await?;
                nats_handshake(&mut ws).await?;
                ws
            }
            Target::Socketio => {
                let mut ws = connect(server, None, "/socket.io/?EIO=4&transport=websocket").await?;
                socketio_handshake(&mut ws).await?;
                ws
            }
        };
        let (mut sink, mut stream) = ws.split();
        let (out, mut queue) = tokio::sync::mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(msg) = queue.recv().await {
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
        });
        let pongs = out.clone();
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen_refusals = refused.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Some(t) = frame_text(&frame) else {
                    continue;
                };
                let refusal = match target {
                    Target::Lockstep => matches!(frames::decode(t), Ok(ServerMsg::Error { .. })),
                    Target::Nats => t.starts_with("-ERR"),
                    Target::Socketio => false,
                };
                if refusal {
                    seen_refusals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else if t == "2" {
                    let _ = pongs.send(Message::text("3"));
                } else if is_ping(t) {
                    let _ = pongs.send(Message::text("PONG\r\n"));
                }
            }
        });
        Ok(Self {
            target,
            room: room.to_owned(),
            out,
            refused,
        })
    }

    /// Publishes the server refused (e.g. rate-limited): each one is a message receivers
    /// could never get, so a run with any is not a clean measurement.
    pub fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes sure a Lockstep room exists (the anchor opens it over HTTP; idempotent), so
    /// workers that do not publish can join before the publisher's worker is ready.
    pub async fn ensure_room(
        server: SocketAddr,
        room: &str,
        anchor_token: &str,
    ) -> anyhow::Result<()> {
        reqwest::Client::new()
            .post(format!("http://{server}/api/v1/rooms"))
            .bearer_auth(anchor_token)
            .json(&json!({"id": room}))
            .send()
            .await
            .with_context(|| format!("opening room `{room}` on {server}: is the server running?"))?
            .error_for_status()
            .with_context(|| format!("opening room `{room}` on {server}"))?;
        Ok(())
    }

    pub fn publish(&self, seq: u64, size: usize) -> anyhow::Result<()> {
        let body = payload(seq, size);
        let frame = match self.target {
            Target::Lockstep => frames::encode(&ClientMsg::Control {
                cmd: ControlCmd::Say { text: body },
                id: None,
            }),
            Target::Nats => {
                Message::text(format!("PUB {} {}\r\n{}\r\n", self.room, body.len(), body))
            }
            Target::Socketio => Message::text(format!("42[\"pub\",\"{body}\"]")),
        };
        self.out
            .send(frame)
            .map_err(|_| anyhow::anyhow!("publisher socket closed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_in_every_protocol_framing() {
        let p = payload(7, 200);
        assert_eq!(p.len(), 200);
        let sent: u64 = p
            .split(";t=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let lockstep = format!(
            r#"{{"type":"tick","comments":[{{"text":"{p}"}},{{"text":"{}"}}]}}"#,
            payload(8, 50)
        );
        let seqs: Vec<u64> = markers(&lockstep).map(|(s, _)| s).collect();
        assert_eq!(seqs, [7, 8]);
        assert_eq!(
            markers(&format!("MSG room 1 200\r\n{p}\r\n")).collect::<Vec<_>>(),
            [(7, sent)]
        );
        assert_eq!(
            markers(&format!("42[\"msg\",\"{p}\"]")).collect::<Vec<_>>(),
            [(7, sent)]
        );
        assert_eq!(markers("no markers here s=x").count(), 0);
    }
}
