//! `lockstep-load`: drives viewers against a running Lockstep server and reports what it
//! saw. This first scenario, `hold`, opens a room, joins N idle viewers at a fixed rate
//! and keeps them connected, which is how per-connection server memory is measured.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use lockstep_protocol::{PROTOCOL_VERSION, ServerMsg};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Parser)]
#[command(
    name = "lockstep-load",
    version,
    about = "Load generator for Lockstep rooms"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Join N idle viewers to a room and hold them open.
    Hold {
        /// Server address, host:port.
        #[arg(long, default_value = "127.0.0.1:8080")]
        server: String,
        #[arg(long, default_value = "load")]
        room: String,
        /// Anchor token for the room (`lockstep token --role anchor --room ROOM`); used
        /// to open the room first.
        #[arg(long)]
        anchor_token: String,
        #[arg(long, default_value_t = 1000)]
        viewers: usize,
        /// Joins per second.
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// Seconds to hold every viewer open after the last joined.
        #[arg(long, default_value_t = 10)]
        hold_secs: u64,
    },
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_config() -> WebSocketConfig {
    // tokio-tungstenite's default 128 KiB read buffer per connection would dominate the
    // generator's memory; viewer frames are small.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

async fn connect(url: &str) -> anyhow::Result<Ws> {
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), false)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(ws)
}

async fn join(ws: &mut Ws, token: Option<&str>) -> anyhow::Result<()> {
    let mut msg = json!({"type":"join","protocol":PROTOCOL_VERSION});
    if let Some(token) = token {
        msg["token"] = json!(token);
    }
    ws.send(Message::text(msg.to_string())).await?;
    while let Some(frame) = ws.next().await {
        if let Message::Text(text) = frame? {
            return match serde_json::from_str::<ServerMsg>(&text)? {
                ServerMsg::Welcome { .. } => Ok(()),
                ServerMsg::Error { name, message, .. } => {
                    bail!("join refused: {name:?}: {message}")
                }
                _ => continue,
            };
        }
    }
    bail!("socket closed before welcome")
}

async fn hold(
    server: String,
    room: String,
    anchor_token: String,
    viewers: usize,
    rate: u32,
    hold_secs: u64,
) -> anyhow::Result<()> {
    let mut anchor = connect(&format!("ws://{server}/ws/rooms/{room}/control")).await?;
    join(&mut anchor, Some(&anchor_token)).await?;
    let url = format!("ws://{server}/ws/rooms/{room}");
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut tasks = Vec::with_capacity(viewers);
    let (joined_tx, mut joined_rx) = tokio::sync::mpsc::unbounded_channel::<anyhow::Result<()>>();
    for i in 0..viewers {
        tokio::time::sleep_until((started + interval * i as u32).into()).await;
        let (url, joined_tx) = (url.clone(), joined_tx.clone());
        tasks.push(tokio::spawn(async move {
            let mut ws = match connect(&url).await {
                Ok(ws) => ws,
                Err(e) => return drop(joined_tx.send(Err(e))),
            };
            let result = join(&mut ws, None).await;
            let ok = result.is_ok();
            let _ = joined_tx.send(result);
            if ok {
                // Idle viewer: read (and drop) whatever the room sends.
                while let Some(Ok(_)) = ws.next().await {}
            }
        }));
    }
    drop(joined_tx);
    let (mut ok, mut failed) = (0usize, 0usize);
    while ok + failed < viewers {
        match joined_rx.recv().await {
            Some(Ok(())) => ok += 1,
            Some(Err(e)) => {
                if failed == 0 {
                    eprintln!("first failure: {e:#}");
                }
                failed += 1;
            }
            None => break,
        }
    }
    println!(
        "joined {ok} viewers ({failed} failed) in {:.1}s; holding {hold_secs}s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    for t in &tasks {
        t.abort();
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.scenario {
            Scenario::Hold {
                server,
                room,
                anchor_token,
                viewers,
                rate,
                hold_secs,
            } => hold(server, room, anchor_token, viewers, rate, hold_secs).await,
        }
    })
}
