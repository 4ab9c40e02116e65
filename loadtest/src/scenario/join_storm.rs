//! `join-storm`: opens N connections and joins them as fast as the server accepts (or at
//! `--rate` per second), holding them open; reports joins per second, join latency and
//! failures. Against Lockstep, a watcher joined before the storm likes every 50 ms (so
//! every room tick has something to carry) and records the gaps between the ticks it
//! receives during the storm (`tick_gap`; the room ticks every `room.tick_ms`): a room
//! busy with joins that stalls its tick shows it there.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lockstep_protocol::{ClientMsg, ServerMsg};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::{Slot, bar, token};
use crate::frames;
use crate::report::{Hist, Report};
use crate::wire::{self, Publisher, Target};

#[derive(Debug, Clone, clap::Args)]
pub struct JoinStormArgs {
    #[arg(long, value_enum, default_value = "lockstep")]
    pub target: Target,
    #[command(flatten)]
    pub conn: super::Conn,
    #[arg(long, default_value_t = 5000)]
    pub viewers: usize,
    /// Joins per second over all workers; 0 = as fast as possible (at most `--concurrency` in flight).
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// Joins in flight at once per worker when `--rate` is 0.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Seconds to hold the connections after the last join.
    #[arg(long, default_value_t = 2)]
    pub hold_secs: u64,
}

pub async fn run(args: JoinStormArgs, slot: Slot) -> anyhow::Result<Report> {
    let nodes = args.conn.nodes()?;
    let server = nodes.first();
    let mut report = Report::new("join-storm", args.target.name());
    // Opening the room is the anchor's job; the anchor stays connected during the run.
    let anchor = if slot.index == 0 && args.target == Target::Lockstep {
        let anchor = token(
            &args.conn.secret,
            "anchor",
            "load-anchor",
            Some(&args.conn.room),
            None,
        );
        Some(Publisher::connect(args.target, server, &args.conn.room, Some(&anchor)).await?)
    } else {
        None
    };
    let watcher = match &anchor {
        Some(_) => {
            let ws = wire::join_receiver(args.target, server, None, &args.conn.room, None).await?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            Some((stop, tokio::spawn(tick_gaps(ws, stopped))))
        }
        None => None,
    };
    super::sleep_until_unix_ms(slot.start_at_ms).await;
    let mine = slot.share(args.viewers);
    let progress = bar(slot.progress, mine as u64, "joining");
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let per_join =
        (args.rate > 0).then(|| Duration::from_secs_f64(slot.count as f64 / f64::from(args.rate)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(mine);
    for i in 0..mine {
        if let Some(d) = per_join {
            tokio::time::sleep_until((started + d * i as u32).into()).await;
        }
        let permit = gate.clone().acquire_owned().await?;
        let (room, progress, source) = (args.conn.room.clone(), progress.clone(), slot.source());
        let server = nodes.of(slot.global(i));
        tasks.push(tokio::spawn(async move {
            let began = Instant::now();
            let joined = wire::join_receiver(args.target, server, source, &room, None).await;
            let took = began.elapsed();
            drop(permit);
            progress.inc(1);
            joined
                .map(|ws| (ws, took, Instant::now()))
                .map_err(|e| format!("{e:#}"))
        }));
    }
    let mut joins = Hist::default();
    let mut held = Vec::new();
    let mut last = started;
    let mut first_error = None;
    for t in tasks {
        match t.await? {
            Ok((ws, took, at)) => {
                joins.record_us(took.as_micros() as u64);
                last = last.max(at);
                held.push(ws);
            }
            Err(e) => {
                report.add("join_failed", 1);
                first_error.get_or_insert(e);
            }
        }
    }
    progress.finish_and_clear();
    let elapsed = (last - started).as_secs_f64().max(1e-6);
    report.add("joined", held.len() as u64);
    report.duration_secs = elapsed;
    report.extra.insert(
        "joins_per_sec".into(),
        json!((held.len() as f64 / elapsed).round()),
    );
    if let Some(e) = first_error {
        report.extra.insert("first_error".into(), json!(e));
    }
    report.histograms.insert("join".into(), joins);
    if let Some((stop, gaps)) = watcher {
        let _ = stop.send(());
        report.histograms.insert("tick_gap".into(), gaps.await?);
    }
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    drop(held);
    Ok(report)
}

/// Likes every 50 ms and records the time between consecutive room ticks received,
/// until `stop`.
async fn tick_gaps(mut ws: wire::Ws, mut stop: tokio::sync::oneshot::Receiver<()>) -> Hist {
    let mut gaps = Hist::default();
    let mut last: Option<Instant> = None;
    let mut like = tokio::time::interval(Duration::from_millis(50));
    loop {
        let frame = tokio::select! {
            _ = &mut stop => return gaps,
            _ = like.tick() => {
                if frames::send(&mut ws, &ClientMsg::Like { count: 1 }).await.is_err() {
                    return gaps;
                }
                continue;
            }
            frame = ws.next() => frame,
        };
        let Some(Ok(Message::Text(text))) = frame else {
            return gaps;
        };
        if let Ok(ServerMsg::Tick { .. }) = frames::decode(&text) {
            let now = Instant::now();
            if let Some(before) = last {
                gaps.record_us((now - before).as_micros() as u64);
            }
            last = Some(now);
        }
    }
}
