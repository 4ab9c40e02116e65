//! `viewers` (and `slow-viewers`): N receivers join a room at a ramp rate; one publisher
//! sends `rate` messages per second of `size` bytes; every receiver records the delivery
//! latency (sender timestamp → receipt) of each message in the measured window and counts
//! them, so the delivery ratio says whether every viewer got every message. Optionally
//! some viewers also comment and like (Lockstep), and a fraction stop reading (slow
//! viewers) to show the others are not held back and the slow ones are cut.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use lockstep_protocol::ClientMsg;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::{Slot, bar, sleep_until_unix_ms, token};
use crate::frames;
use crate::report::{Hist, Report};
use crate::wire::{self, Publisher, Target, answer_ping, markers, now_ns};

#[derive(Debug, Clone, clap::Args)]
pub struct ViewersArgs {
    #[arg(long, value_enum, default_value = "lockstep")]
    pub target: Target,
    #[command(flatten)]
    pub conn: super::Conn,
    /// Lockstep: anchor token for the room; minted from --secret when absent.
    #[arg(long)]
    pub anchor_token: Option<String>,
    #[arg(long, default_value_t = 1000)]
    pub viewers: usize,
    /// Joins per second (over all workers).
    #[arg(long, default_value_t = 1000)]
    pub ramp: u32,
    /// Published messages per second.
    #[arg(long, default_value_t = 10)]
    pub rate: u32,
    /// Message size in bytes.
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Seconds of traffic before measuring.
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Lockstep: how many viewers also comment (with viewer tokens).
    #[arg(long, default_value_t = 0)]
    pub commenters: usize,
    /// Comments per second per commenter.
    #[arg(long, default_value_t = 0.2)]
    pub comment_rate: f64,
    /// Lockstep: how many viewers also tap like.
    #[arg(long, default_value_t = 0)]
    pub likers: usize,
    /// Like messages per second per liker.
    #[arg(long, default_value_t = 1.0)]
    pub like_rate: f64,
    /// Fraction of viewers that stop reading after joining (slow viewers).
    #[arg(long, default_value_t = 0.0)]
    pub slow_fraction: f64,
}

impl ViewersArgs {
    fn window(&self) -> (u64, u64) {
        let rate = u64::from(self.rate.max(1));
        (self.warmup * rate, (self.warmup + self.duration) * rate)
    }
}

/// What one receiver saw.
#[derive(Default)]
struct Seen {
    /// (second since start, latency µs) of each in-window delivery.
    samples: Vec<(u32, u32)>,
    delivered: u64,
    frames: u64,
    joined_in_time: bool,
    slow: bool,
    close: Option<u16>,
}

pub async fn run(args: ViewersArgs, slot: Slot) -> anyhow::Result<Report> {
    let nodes = args.conn.nodes()?;
    let server = nodes.first();
    let scenario = if args.slow_fraction > 0.0 {
        "slow-viewers"
    } else {
        "viewers"
    };
    let mut report = Report::new(scenario, args.target.name());
    let mine = slot.share(args.viewers);
    let (first, end) = args.window();
    let start_ns = slot.start_at_ms * 1_000_000;
    let period_ns = 1_000_000_000 / u64::from(args.rate.max(1));
    let window_end_ns = start_ns + end * period_ns;
    let stop_at = Instant::now()
        + Duration::from_nanos(window_end_ns.saturating_sub(now_ns()))
        + Duration::from_secs(3);

    // The publisher lives in worker 0 and starts at the shared start time.
    let anchor = args.anchor_token.clone().unwrap_or_else(|| {
        token(
            &args.conn.secret,
            "anchor",
            "load-anchor",
            Some(&args.conn.room),
            None,
        )
    });
    if args.target == Target::Lockstep {
        Publisher::ensure_room(server, &args.conn.room, &anchor).await?;
    }
    let publisher = if slot.index == 0 {
        Some(Publisher::connect(args.target, server, &args.conn.room, Some(&anchor)).await?)
    } else {
        None
    };

    let joins = bar(slot.progress, mine as u64, "joining");
    let join_hist = Arc::new(std::sync::Mutex::new(Hist::default()));
    let failed = Arc::new(AtomicU64::new(0));
    let per_join = Duration::from_secs_f64(slot.count as f64 / f64::from(args.ramp.max(1)));
    let ramp_start = Instant::now();
    let mut tasks = Vec::with_capacity(mine);
    for i in 0..mine {
        tokio::time::sleep_until((ramp_start + per_join * i as u32).into()).await;
        let global = slot.global(i);
        let slow = (global as f64) < args.slow_fraction * args.viewers as f64;
        let commenter = global < args.commenters;
        let liker = global < args.likers;
        let viewer_token = (commenter && args.target == Target::Lockstep).then(|| {
            token(
                &args.conn.secret,
                "viewer",
                &format!("viewer-{global}"),
                None,
                None,
            )
        });
        let (args, joins, join_hist, failed) = (
            args.clone(),
            joins.clone(),
            join_hist.clone(),
            failed.clone(),
        );
        let source = slot.source();
        let server = nodes.of(global);
        tasks.push(tokio::spawn(async move {
            let began = Instant::now();
            let recv_buffer = slow.then_some(4096);
            let ws = match wire::join_receiver_with(
                args.target,
                server,
                source,
                &args.conn.room,
                viewer_token.as_deref(),
                recv_buffer,
            )
            .await
            {
                Ok(ws) => ws,
                Err(e) => {
                    if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("join failed: {e:#}");
                    }
                    return Seen::default();
                }
            };
            join_hist
                .lock()
                .expect("not poisoned")
                .record_us(began.elapsed().as_micros() as u64);
            joins.inc(1);
            let joined_in_time = now_ns() < start_ns;
            let talk = Talk {
                comment: commenter.then_some(args.comment_rate),
                like: liker.then_some(args.like_rate),
            };
            receive(ws, &args, talk, slow, start_ns, stop_at, joined_in_time).await
        }));
    }
    joins.finish_and_clear();

    let publishing = publisher.map(|p| {
        let total = end;
        tokio::spawn(async move {
            for seq in 0..total {
                sleep_until_unix_ms((start_ns + seq * period_ns) / 1_000_000).await;
                if p.publish(seq, args.size).is_err() {
                    return (seq, p.refused());
                }
            }
            // Let the last answers arrive before counting refusals.
            tokio::time::sleep(Duration::from_secs(1)).await;
            (total, p.refused())
        })
    });
    let waiting = bar(
        slot.progress,
        (window_end_ns.saturating_sub(now_ns())) / 1_000_000_000 + 3,
        "measuring",
    );
    let ticker = tokio::spawn({
        let waiting = waiting.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                waiting.inc(1);
            }
        }
    });
    let mut latency = Hist::default();
    let mut expected = 0u64;
    for t in tasks {
        let seen = t.await?;
        report.add("delivered", seen.delivered);
        report.add("frames", seen.frames);
        if seen.slow {
            report.add("slow_viewers", 1);
        }
        if let Some(code) = seen.close {
            *report.close_codes.entry(code).or_default() += 1;
        }
        if seen.joined_in_time && !seen.slow {
            expected += end - first;
            for (sec, us) in seen.samples {
                latency.record_us(u64::from(us));
                report
                    .timeline
                    .entry(u64::from(sec))
                    .or_default()
                    .record_us(u64::from(us));
            }
        }
    }
    ticker.abort();
    waiting.finish_and_clear();
    if let Some(p) = publishing {
        let (published, refused) = p.await?;
        report.add("published", published);
        report.add("publish_refused", refused);
    }
    report.add("joined", mine as u64 - failed.load(Ordering::Relaxed));
    report.add("join_failed", failed.load(Ordering::Relaxed));
    report.add("expected", expected);
    report.histograms.insert("latency".into(), latency);
    report.histograms.insert(
        "join".into(),
        join_hist.lock().expect("not poisoned").clone(),
    );
    report.duration_secs = args.duration as f64;
    report.extra.insert("viewers".into(), json!(args.viewers));
    report.extra.insert("rate".into(), json!(args.rate));
    report.extra.insert("size".into(), json!(args.size));
    Ok(report)
}

/// Finishes a merged viewers report: delivery ratio and rates.
pub fn finish(report: &mut Report) {
    let (delivered, expected) = (report.counter("delivered"), report.counter("expected"));
    let ratio = if expected == 0 {
        0.0
    } else {
        delivered as f64 / expected as f64
    };
    report.extra.insert(
        "delivery_ratio".into(),
        json!((ratio * 10_000.0).round() / 10_000.0),
    );
    let secs = report.duration_secs.max(1e-9);
    report.extra.insert(
        "deliveries_per_sec".into(),
        json!((delivered as f64 / secs).round()),
    );
    report.extra.insert(
        "frames_per_sec".into(),
        json!((report.counter("frames") as f64 / secs).round()),
    );
}

#[derive(Clone, Copy)]
struct Talk {
    comment: Option<f64>,
    like: Option<f64>,
}

async fn receive(
    ws: wire::Ws,
    args: &ViewersArgs,
    talk: Talk,
    slow: bool,
    start_ns: u64,
    stop_at: Instant,
    joined_in_time: bool,
) -> Seen {
    let (first, end) = args.window();
    let mut seen = Seen {
        joined_in_time,
        slow,
        ..Default::default()
    };
    let (mut sink, mut stream) = ws.split();
    if slow {
        // A slow viewer stops reading until the window is over, then reads to see how it
        // was closed.
        tokio::time::sleep_until(stop_at.into()).await;
        // Close code 0 stands for "the connection ended without a close frame" (the
        // server gave up writing it within its `session.close_grace_ms`).
        let drain = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(frame)) = stream.next().await {
                if let Message::Close(c) = frame {
                    return Some(c.map_or(0, |c| u16::from(c.code)));
                }
            }
            Some(0)
        });
        seen.close = drain.await.ok().flatten();
        return seen;
    }
    let comment_every = talk
        .comment
        .map(|r| Duration::from_secs_f64(1.0 / r.max(0.001)));
    let like_every = talk
        .like
        .map(|r| Duration::from_secs_f64(1.0 / r.max(0.001)));
    let mut next_comment = comment_every.map(|d| Instant::now() + d);
    let mut next_like = like_every.map(|d| Instant::now() + d);
    let mut comments = 0u64;
    loop {
        let wake = [Some(stop_at), next_comment, next_like]
            .into_iter()
            .flatten()
            .min()
            .expect("stop_at is set");
        tokio::select! {
            frame = stream.next() => {
                let frame = match frame {
                    Some(Ok(f)) => f,
                    _ => break,
                };
                match frame {
                    // NATS sends binary frames (several messages may share one).
                    Message::Text(_) | Message::Binary(_) => {
                        let text = match &frame {
                            Message::Text(t) => t.as_str(),
                            Message::Binary(b) => std::str::from_utf8(b).unwrap_or_default(),
                            _ => unreachable!("matched above"),
                        };
                        seen.frames += 1;
                        let now = now_ns();
                        for (seq, sent) in markers(text) {
                            if (first..end).contains(&seq) {
                                seen.delivered += 1;
                                let sec = (now.saturating_sub(start_ns) / 1_000_000_000) as u32;
                                seen.samples.push((sec, (now.saturating_sub(sent) / 1000).min(u64::from(u32::MAX)) as u32));
                            }
                        }
                        if wire::is_ping(text) {
                            let mut ws = sink.reunite(stream).expect("halves of one socket");
                            let _ = answer_ping(&mut ws, text).await;
                            (sink, stream) = ws.split();
                        }
                    }
                    Message::Close(c) => {
                        seen.close = c.map(|c| u16::from(c.code));
                        break;
                    }
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if now >= stop_at {
                    break;
                }
                if next_comment.is_some_and(|t| now >= t) {
                    comments += 1;
                    let comment = ClientMsg::Comment { text: format!("c={comments} load comment"), id: None };
                    let _ = sink.send(frames::encode(&comment)).await;
                    next_comment = comment_every.map(|d| now + d);
                }
                if next_like.is_some_and(|t| now >= t) {
                    let _ = sink.send(frames::encode(&ClientMsg::Like { count: 1 })).await;
                    next_like = like_every.map(|d| now + d);
                }
            }
        }
    }
    let _ = sink.send(Message::Close(None)).await;
    seen
}
