//! `subscribers`: SFU capacity. One publisher sends a synthetic ~1.5 Mbit/s stream (VP8
//! shaped, 30 fps, plus one audio packet per frame); N webrtc-rs subscribers receive it.
//! Lockstep: WHIP in, WHEP out. Janus: plain RTP into a Streaming mountpoint, Janus's
//! HTTP API out. After every subscriber is connected and a warm-up, one window is
//! measured: delivery (received ÷ sent), sequence gaps, and forwarding latency (the
//! send time travels in each payload).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lockstep_protocol::{ClientMsg, ControlCmd, ServerMsg};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{Slot, bar, token};
use crate::frames;
use crate::report::{Hist, Report};
use crate::rtc::janus::JanusWatch;
use crate::rtc::synthetic::{SendLog, now_us};
use crate::rtc::{PublishOptions, Publisher, Subscriber, stream_plain_rtp};
use crate::wire;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SfuTarget {
    Lockstep,
    Janus,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SubscribersArgs {
    #[arg(long, value_enum, default_value = "lockstep")]
    pub target: SfuTarget,
    #[command(flatten)]
    pub conn: super::Conn,
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Seconds measured (after every subscriber connected and the warm-up).
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Seconds between the last subscriber connecting and the measured window.
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    #[arg(long, default_value_t = 1_500_000)]
    pub bitrate_bps: u64,
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Subscriber connections set up at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Address the subscribers' ICE binds to.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Lockstep cluster: subscribe only through the nodes after the first (the room's
    /// node), so every subscriber's video crosses from the room's node to an edge.
    #[arg(long)]
    pub edges_only: bool,
    #[arg(long, default_value = "http://127.0.0.2:8088/janus")]
    pub janus_url: String,
    #[arg(long, default_value_t = 1)]
    pub janus_mountpoint: u64,
    #[arg(long, default_value = "127.0.0.2:5004")]
    pub janus_rtp_video: std::net::SocketAddr,
    #[arg(long, default_value = "127.0.0.2:5006")]
    pub janus_rtp_audio: std::net::SocketAddr,
}

impl SfuTarget {
    fn name(self) -> &'static str {
        match self {
            Self::Lockstep => "lockstep",
            Self::Janus => "janus",
        }
    }
}

pub async fn run(args: SubscribersArgs, slot: Slot) -> anyhow::Result<Report> {
    anyhow::ensure!(
        slot.count == 1,
        "subscribers runs in one process (--procs 1)"
    );
    let mut report = Report::new("subscribers", args.target.name());
    let opts = PublishOptions {
        bitrate_bps: args.bitrate_bps,
        fps: args.fps,
        ..PublishOptions::default()
    };
    let stop = CancellationToken::new();
    // Keep the anchor's control channel open for the whole run (the room lives with it).
    let (_anchor, sent) = match args.target {
        SfuTarget::Lockstep => {
            let (anchor, publisher) = publish_lockstep(&args, &opts, stop.clone()).await?;
            (Some(anchor), publisher.sent.clone())
        }
        SfuTarget::Janus => {
            let sent = Arc::new(SendLog::default());
            let (opts, stop, counter) = (opts.clone(), stop.clone(), sent.clone());
            let (video, audio) = (args.janus_rtp_video, args.janus_rtp_audio);
            tokio::spawn(async move {
                let stream = stream_plain_rtp(&opts, video, audio, counter, stop.cancelled_owned());
                if let Err(e) = stream.await {
                    eprintln!("error: sending RTP to Janus: {e:#}");
                }
            });
            (None, sent)
        }
    };
    let progress = bar(slot.progress, args.subscribers as u64, "subscribing");
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut pending = Vec::with_capacity(args.subscribers);
    for i in 0..args.subscribers {
        let permit = gate.clone().acquire_owned().await?;
        let (args, progress) = (args.clone(), progress.clone());
        pending.push(tokio::spawn(async move {
            let asked_us = now_us();
            let sub = subscribe(&args, i).await;
            drop(permit);
            progress.inc(1);
            sub.map(|s| (s, asked_us))
        }));
    }
    let mut subs = Vec::new();
    let mut asked = Vec::new();
    for task in pending {
        match task.await? {
            Ok((sub, asked_us)) => {
                subs.push(sub);
                asked.push(asked_us);
            }
            Err(e) => {
                report.add("subscribe_failed", 1);
                report_failure(&e);
            }
        }
    }
    progress.finish_and_clear();
    report.add("subscribers_target", args.subscribers as u64);
    report.add("subscribers_connected", subs.len() as u64);
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    // Time to first frame: from asking (the WHEP request) to the first video frame.
    let first_frame = report.hist("first_frame");
    for ((s, _), asked_us) in subs.iter().zip(&asked) {
        if let Some((_, arrived_us)) = s.stats().frames.first() {
            first_frame.record_us(arrived_us.saturating_sub(*asked_us));
        }
    }

    // The window is in send time: a packet sent in it counts on both sides, whenever
    // it arrives (one second of grace after the window for the last ones in flight).
    let before: Vec<_> = subs.iter().map(|(s, _)| s.stats()).collect();
    let start = now_us();
    let end = start + args.duration * 1_000_000;
    for (s, _) in &subs {
        s.set_window(start, end);
    }
    tokio::time::sleep(Duration::from_secs(args.duration + 1)).await;
    let published = sent.between(start, end);
    let mut latency = Hist::default();
    let (mut received, mut gaps) = (0u64, 0u64);
    for ((s, _), b) in subs.iter().zip(&before) {
        let now = s.stats();
        received += now.in_window;
        gaps += now.lost.saturating_sub(b.lost);
        latency.merge(&now.latency);
    }
    report
        .extra
        .insert("window_start_unix_ms".into(), json!(start / 1000));
    report
        .extra
        .insert("window_end_unix_ms".into(), json!(end / 1000));
    stop.cancel();
    let expected = published * subs.len() as u64;
    report.add("packets_published", published);
    report.add("packets_received", received);
    report.add("packets_expected", expected);
    report.add("sequence_gaps", gaps);
    report.duration_secs = args.duration as f64;
    report.add(
        "loss_per_million",
        expected.saturating_sub(received) * 1_000_000 / expected.max(1),
    );
    report.hist("forwarding_latency").merge(&latency);
    for (s, watch) in subs {
        s.close().await;
        if let Some(watch) = watch {
            watch.stop().await;
        }
    }
    Ok(report)
}

fn report_failure(e: &anyhow::Error) {
    eprintln!("subscriber failed: {e:#}");
}

/// Subscribes the run's `i`-th player (to node i mod n of a cluster, over WHEP).
async fn subscribe(
    args: &SubscribersArgs,
    i: usize,
) -> anyhow::Result<(Subscriber, Option<JanusWatch>)> {
    match args.target {
        SfuTarget::Lockstep => {
            let nodes = args.conn.nodes()?;
            let server = if args.edges_only && nodes.len() > 1 {
                nodes.of(1 + i % (nodes.len() - 1))
            } else {
                nodes.of(i)
            };
            let viewer = token(&args.conn.secret, "viewer", "load-viewer", None, None);
            let sub = Subscriber::whep(&format!("http://{server}"), &args.conn.room, Some(&viewer))
                .await?;
            Ok((sub, None))
        }
        SfuTarget::Janus => {
            let (watch, offer) =
                JanusWatch::request(&args.janus_url, args.janus_mountpoint).await?;
            let mut sub = Subscriber::answering(&args.bind, offer).await?;
            watch.start(sub.offer()).await?;
            sub.start().await?;
            Ok((sub, Some(watch)))
        }
    }
}

/// Opens the room, goes live and starts the WHIP publisher.
async fn publish_lockstep(
    args: &SubscribersArgs,
    opts: &PublishOptions,
    stop: CancellationToken,
) -> anyhow::Result<(wire::Ws, Arc<Publisher>)> {
    let server = args.conn.nodes()?.first();
    let mut anchor = super::link_drop::open_anchor(server, &args.conn).await?;
    frames::request(
        &mut anchor,
        &ClientMsg::Control {
            cmd: ControlCmd::GoLive,
            id: Some(1),
        },
        1,
    )
    .await
    .context("going live")?;
    let anchor_token = token(
        &args.conn.secret,
        "anchor",
        "load-anchor",
        Some(&args.conn.room),
        None,
    );
    let publisher = Arc::new(
        Publisher::connect(&format!("http://{server}"), &args.conn.room, &anchor_token)
            .await
            .context("publishing over WHIP")?,
    );
    let (p, o) = (publisher.clone(), opts.clone());
    tokio::spawn(async move { p.stream(&o, stop.cancelled_owned()).await });
    // Subscribers are admitted once the stream is live; the room says so.
    tokio::time::timeout(
        Duration::from_secs(15),
        frames::wait_for(&mut anchor, |m| match m {
            ServerMsg::Media { media } if media.live => Some(()),
            _ => None,
        }),
    )
    .await
    .context("the stream did not go live within 15 s")??;
    Ok((anchor, publisher))
}
