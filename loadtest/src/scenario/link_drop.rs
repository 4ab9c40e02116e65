//! `link-drop`: N viewers join and keep a clock offset to the server (the NTP-style
//! exchange of the protocol); the anchor drops a link; each simulated client shows it when
//! its corrected clock reaches `reveal_at`. Reports when the message arrived (spread, and
//! how many had it before the reveal) and when each client *displayed* it — the
//! displayed-at spread is what a viewer would notice.
//!
//! Clients sync as the viewer page does: a few exchanges after joining, and a few more
//! once the link is announced (at a random moment in the countdown's first half, so the
//! room is not asked all at once); the exchange with the smallest round trip of all wins.
//! Exchanges made during the join storm may all have been delayed; those made in the
//! quiet countdown are not.

use std::time::{Duration, Instant};

use lockstep_protocol::{ClientMsg, ControlCmd, ServerMsg};
use serde_json::json;

use super::{Slot, bar, token};
use crate::frames;
use crate::report::{Hist, Report};
use crate::wire::{self, Target, now_ns};

#[derive(Debug, Clone, clap::Args)]
pub struct LinkDropArgs {
    #[command(flatten)]
    pub conn: super::Conn,
    #[arg(long, default_value_t = 1000)]
    pub viewers: usize,
    #[arg(long, default_value_t = 1000)]
    pub ramp: u32,
    /// Countdown the anchor asks for, ms.
    #[arg(long, default_value_t = 3000)]
    pub countdown_ms: u64,
    /// Clock-sync exchanges per client after joining (the one with the smallest round
    /// trip wins).
    #[arg(long, default_value_t = 5)]
    pub sync_samples: u32,
    /// Clock-sync exchanges per client again once the link is announced (0: none).
    #[arg(long, default_value_t = 3)]
    pub resync_samples: u32,
}

/// What one client saw. All times are true time in ms: the generator and the server share
/// one host clock, so a local instant *is* the server time of that instant; the estimated
/// offset is what a real client would use, and its error is what spreads the display.
struct Shown {
    /// Round trip of the clock-sync exchange the client used.
    sync_rtt_ms: f64,
    arrived_ms: f64,
    /// When the client shows the link by its corrected clock: the later of the arrival and
    /// `reveal_at − offset`. What a client with its own CPU achieves (plus its own timer
    /// jitter).
    displayed_ms: f64,
    /// When this generator's task actually woke to show it. Thousands of simulated clients
    /// share one core here, so this adds the generator's own scheduling delay.
    woke_ms: f64,
}

/// A client's clock estimate: of every exchange so far, the one with the smallest round
/// trip (its offset error is at most half its round trip).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClockEstimate {
    best: Option<(f64, f64)>,
}

impl ClockEstimate {
    /// One exchange: sent at `t0`, read by the server at `t1`, answered at `t2`, answer
    /// read at `t3`.
    pub fn sample(&mut self, t0: f64, t1: f64, t2: f64, t3: f64) {
        let rtt = (t3 - t0) - (t2 - t1);
        let offset = ((t1 - t0) + (t2 - t3)) / 2.0;
        if self.best.is_none_or(|(r, _)| rtt < r) {
            self.best = Some((rtt, offset));
        }
    }

    /// Server time minus local time, ms (0 before any exchange).
    pub fn offset(&self) -> f64 {
        self.best.map_or(0.0, |(_, o)| o)
    }

    /// The round trip of the exchange the offset comes from, ms.
    pub fn rtt(&self) -> f64 {
        self.best.map_or(f64::INFINITY, |(r, _)| r)
    }

    /// Runs `samples` exchanges, one after the other.
    pub async fn exchange(&mut self, ws: &mut wire::Ws, samples: u32) -> anyhow::Result<()> {
        for _ in 0..samples {
            let t0 = now_ns() as f64 / 1e6;
            frames::send(ws, &ClientMsg::TimeSync { t0 }).await?;
            let (t1, t2) = frames::wait_for(ws, |m| match m {
                ServerMsg::TimeSync { t1, t2, .. } => Some((t1, t2)),
                _ => None,
            })
            .await?;
            self.sample(t0, t1, t2, now_ns() as f64 / 1e6);
        }
        Ok(())
    }
}

/// Runs `samples` clock-sync exchanges; returns the offset (server − local, ms) of the
/// exchange with the smallest round trip.
pub async fn clock_offset(ws: &mut wire::Ws, samples: u32) -> anyhow::Result<f64> {
    let mut clock = ClockEstimate::default();
    clock.exchange(ws, samples.max(1)).await?;
    Ok(clock.offset())
}

/// Creates a product and a sale in `room` through the merchant API (the room's anchor
/// first lets the load generator's merchant sell there); returns the sale id.
pub async fn create_sale(
    server: std::net::SocketAddr,
    secret: &str,
    room: &str,
    stock: u32,
    limit: u32,
    reservation_ttl_secs: u64,
) -> anyhow::Result<String> {
    let merchant = token(
        secret,
        "merchant",
        "load-merchant",
        None,
        Some("load-merchant"),
    );
    let http = reqwest::Client::new();
    let anchor = token(secret, "anchor", "load-anchor", Some(room), None);
    http.put(format!(
        "http://{server}/api/v1/rooms/{room}/merchants/load-merchant"
    ))
    .bearer_auth(&anchor)
    .send()
    .await?
    .error_for_status()?;
    let product: serde_json::Value = http
        .post(format!("http://{server}/api/v1/products"))
        .bearer_auth(&merchant)
        .json(&json!({"title":"Load test item","price_cents":100,"skus":[{"stock":stock}]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let sku = product["skus"][0]["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no sku in {product}"))?;
    let sale: serde_json::Value = http
        .post(format!("http://{server}/api/v1/sales"))
        .bearer_auth(&merchant)
        .json(&json!({"room":room,"sku_id":sku,"allotted":stock,"price_cents":100,"per_buyer_limit":limit,"reservation_ttl_secs":reservation_ttl_secs}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(sale["sale"]["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no sale id in {sale}"))?
        .to_owned())
}

/// Connects the room's anchor on the control channel (opening the room).
pub async fn open_anchor(
    server: std::net::SocketAddr,
    conn: &super::Conn,
) -> anyhow::Result<wire::Ws> {
    let mut anchor =
        wire::connect(server, None, &format!("/ws/rooms/{}/control", conn.room)).await?;
    let anchor_token = token(
        &conn.secret,
        "anchor",
        "load-anchor",
        Some(&conn.room),
        None,
    );
    wire::lockstep_join(&mut anchor, Some(&anchor_token), Some(&conn.room)).await?;
    Ok(anchor)
}

/// The anchor drops the link; returns `reveal_at` (server ms).
pub async fn drop_link(
    anchor: &mut wire::Ws,
    sale: &str,
    countdown_ms: u64,
) -> anyhow::Result<u64> {
    frames::send(
        anchor,
        &ClientMsg::Control {
            cmd: ControlCmd::DropLink {
                sale_id: sale.to_owned(),
                countdown_ms: Some(countdown_ms),
            },
            id: Some(1),
        },
    )
    .await?;
    frames::wait_for(anchor, |m| match m {
        ServerMsg::Link { link } => Some(Ok(link.reveal_at)),
        ServerMsg::Error { .. } => Some(Err(anyhow::anyhow!("drop_link refused: {m:?}"))),
        _ => None,
    })
    .await?
}

pub async fn run(args: LinkDropArgs, slot: Slot) -> anyhow::Result<Report> {
    anyhow::ensure!(slot.count == 1, "link-drop runs in one process (--procs 1)");
    let nodes = args.conn.nodes()?;
    let server = nodes.first();
    let mut report = Report::new("link-drop", "lockstep");
    let mut anchor = open_anchor(server, &args.conn).await?;
    let sale = create_sale(server, &args.conn.secret, &args.conn.room, 1, 1, 3600).await?;
    let progress = bar(slot.progress, args.viewers as u64, "joining");
    let ready = std::sync::Arc::new(tokio::sync::Barrier::new(args.viewers + 1));
    let per_join = Duration::from_secs_f64(1.0 / f64::from(args.ramp.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..args.viewers {
        tokio::time::sleep_until((started + per_join * i as u32).into()).await;
        let (room, ready, progress, samples, resync) = (
            args.conn.room.clone(),
            ready.clone(),
            progress.clone(),
            args.sync_samples,
            args.resync_samples,
        );
        let resync_within = Duration::from_millis(args.countdown_ms / 2);
        let server = nodes.of(i);
        tasks.push(tokio::spawn(async move {
            let joined = async {
                let mut ws =
                    wire::join_receiver(Target::Lockstep, server, None, &room, None).await?;
                let mut clock = ClockEstimate::default();
                clock.exchange(&mut ws, samples.max(1)).await?;
                anyhow::Ok((ws, clock))
            }
            .await;
            progress.inc(1);
            ready.wait().await;
            let (mut ws, mut clock) = joined?;
            let reveal_at = frames::wait_for(&mut ws, |m| match m {
                ServerMsg::Link { link } => Some(link.reveal_at),
                _ => None,
            })
            .await? as f64;
            let arrived_local = now_ns() as f64 / 1e6;
            if resync > 0 {
                tokio::time::sleep(resync_within.mul_f64(rand::random::<f64>())).await;
                clock.exchange(&mut ws, resync).await?;
            }
            let offset = clock.offset();
            // Show it when the corrected clock reaches reveal_at.
            let show_local = reveal_at - offset;
            if show_local > arrived_local {
                tokio::time::sleep(Duration::from_secs_f64(
                    (show_local - arrived_local) / 1000.0,
                ))
                .await;
            }
            let displayed_local = now_ns() as f64 / 1e6;
            let _ = ws.close(None).await;
            anyhow::Ok(Shown {
                sync_rtt_ms: clock.rtt(),
                arrived_ms: arrived_local,
                displayed_ms: arrived_local.max(show_local),
                woke_ms: displayed_local,
            })
        }));
    }
    ready.wait().await;
    progress.finish_and_clear();
    let reveal_at = drop_link(&mut anchor, &sale, args.countdown_ms).await? as f64;
    let (mut shown, mut failed) = (Vec::new(), 0u64);
    for t in tasks {
        match t.await? {
            Ok(s) => shown.push(s),
            Err(_) => failed += 1,
        }
    }
    let mut off_reveal = Hist::default();
    let mut woke = Hist::default();
    let mut arrival = Hist::default();
    let mut sync_rtt = Hist::default();
    let drop_at = reveal_at - args.countdown_ms as f64;
    for s in &shown {
        off_reveal.record_us(((s.displayed_ms - reveal_at).abs() * 1000.0) as u64);
        woke.record_us(((s.woke_ms - reveal_at).abs() * 1000.0) as u64);
        arrival.record_us(((s.arrived_ms - drop_at).max(0.0) * 1000.0) as u64);
        sync_rtt.record_us((s.sync_rtt_ms.max(0.0) * 1000.0) as u64);
    }
    let spread = |f: fn(&Shown) -> f64| {
        let (lo, hi) = shown
            .iter()
            .map(f)
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if shown.is_empty() {
            0.0
        } else {
            ((hi - lo) * 1000.0).round() / 1000.0
        }
    };
    report.add("viewers", shown.len() as u64);
    report.add("failed", failed);
    report.add(
        "before_reveal",
        shown.iter().filter(|s| s.arrived_ms < reveal_at).count() as u64,
    );
    report.extra.insert(
        "displayed_spread_ms".into(),
        json!(spread(|s| s.displayed_ms)),
    );
    report
        .extra
        .insert("woken_spread_ms".into(), json!(spread(|s| s.woke_ms)));
    report
        .extra
        .insert("arrival_spread_ms".into(), json!(spread(|s| s.arrived_ms)));
    report.extra.insert(
        "displayed_offsets_ms".into(),
        json!(
            shown
                .iter()
                .map(|s| ((s.displayed_ms - reveal_at) * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>()
        ),
    );
    report.histograms.insert("woken_vs_reveal".into(), woke);
    report
        .histograms
        .insert("displayed_vs_reveal".into(), off_reveal);
    report
        .histograms
        .insert("arrival_after_drop".into(), arrival);
    report.histograms.insert("sync_rtt".into(), sync_rtt);
    report.duration_secs = started.elapsed().as_secs_f64();
    Ok(report)
}
