//! Soak and churn: hours of ordinary traffic with the awkward cases mixed in, to show
//! that nothing accumulates. A steady population of viewers joins and leaves at a
//! constant churn; talkers comment and like; buyers order, and cancel half of their
//! orders (the rest expire); every few minutes the anchor opens a new sale and the
//! merchant ends the previous one (ended sales retire from the server's memory); WHEP
//! players subscribe and unsubscribe; a slice of new viewers stops reading (the server
//! cuts them) and some go silent without closing (the server's heartbeat closes them).
//!
//! Messages are built from the protocol's `ClientMsg` and read as `ServerMsg`. The
//! report counts what happened, and `unexpected` counts every answer a well-behaved
//! client would not expect (an `internal` error, a refused join, a failed WHEP
//! subscription...): a clean soak has none. The server side (memory, file descriptors,
//! queues, database size) is sampled by `bench/soak.sh`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use lockstep_protocol::{
    ClientMsg, ControlCmd, ErrorCode, OrderOutcome, PROTOCOL_VERSION, ServerMsg,
};
use rand::Rng;
use tokio_tungstenite::tungstenite::Message;

use super::link_drop::create_sale;
use super::{Conn, Slot, token};
use crate::frames;
use crate::report::Report;
use crate::rtc::{PublishOptions, Publisher, Subscriber};
use crate::wire::{self, Ws};

#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 1800)]
    pub duration_secs: u64,
    /// Viewers kept in the room.
    #[arg(long, default_value_t = 400)]
    pub viewers: usize,
    /// Viewers replaced (one leaves, one joins) per second.
    #[arg(long, default_value_t = 10.0)]
    pub churn_per_sec: f64,
    /// Comments per second (from signed-in talkers).
    #[arg(long, default_value_t = 5.0)]
    pub comments_per_sec: f64,
    /// Like messages per second.
    #[arg(long, default_value_t = 20.0)]
    pub likes_per_sec: f64,
    /// Orders per second; half are cancelled, the others expire.
    #[arg(long, default_value_t = 5.0)]
    pub orders_per_sec: f64,
    /// Reservation lifetime of the soak's sales, in seconds.
    #[arg(long, default_value_t = 20)]
    pub reservation_ttl_secs: u64,
    /// A new sale replaces the current one this often, in seconds.
    #[arg(long, default_value_t = 300)]
    pub sale_every_secs: u64,
    /// WHEP players kept subscribed (0 = no video in the soak).
    #[arg(long, default_value_t = 8)]
    pub subscribers: usize,
    /// One player is replaced this often, in seconds.
    #[arg(long, default_value_t = 5)]
    pub subscriber_churn_secs: u64,
    /// Fraction of joining viewers that stop reading after their welcome.
    #[arg(long, default_value_t = 0.03)]
    pub slow_fraction: f64,
    /// Viewers per minute that go silent without closing (half-open).
    #[arg(long, default_value_t = 6.0)]
    pub half_open_per_min: f64,
}

/// Counters shared by the soak's tasks.
#[derive(Default)]
struct Counts {
    joins: AtomicU64,
    leaves: AtomicU64,
    comments: AtomicU64,
    likes: AtomicU64,
    orders: AtomicU64,
    cancels: AtomicU64,
    sales: AtomicU64,
    subscribed: AtomicU64,
    unsubscribed: AtomicU64,
    slow: AtomicU64,
    half_open: AtomicU64,
    frames_read: AtomicU64,
    unexpected: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Ctx {
    args: SoakArgs,
    /// Where the anchor, the merchant and the players go (the first node).
    server: std::net::SocketAddr,
    /// The nodes viewers join, in turn.
    nodes: super::Nodes,
    joined: std::sync::atomic::AtomicUsize,
    counts: Counts,
    /// The sale orders go to now.
    sale: std::sync::Mutex<String>,
    deadline: Instant,
}

impl Ctx {
    fn unexpected(&self, what: impl std::fmt::Display) {
        bump(&self.counts.unexpected);
        eprintln!("soak: unexpected: {what}");
    }

    fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    fn viewer_token(&self, user: &str) -> String {
        token(&self.args.conn.secret, "viewer", user, None, None)
    }
}

async fn join(ctx: &Ctx, user: Option<&str>) -> anyhow::Result<Ws> {
    join_with(ctx, user, None).await
}

/// [`join`] with a kernel receive buffer size (tiny for viewers that stop reading, so
/// the server notices them after kilobytes).
async fn join_with(ctx: &Ctx, user: Option<&str>, recv_buffer: Option<u32>) -> anyhow::Result<Ws> {
    let path = format!("/ws/rooms/{}", ctx.args.conn.room);
    let turn = ctx
        .joined
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut ws = wire::connect_with(ctx.nodes.of(turn), None, &path, recv_buffer).await?;
    let token = user.map(|u| ctx.viewer_token(u));
    ws.send(frames::encode(&ClientMsg::Join {
        protocol: PROTOCOL_VERSION,
        token,
        title: None,
        id: None,
    }))
    .await?;
    match next_msg(&mut ws).await? {
        ServerMsg::Welcome { .. } => Ok(ws),
        other => anyhow::bail!("join answered {other:?}"),
    }
}

/// The next protocol message (frames that are not protocol text are skipped).
async fn next_msg(ws: &mut Ws) -> anyhow::Result<ServerMsg> {
    frames::next_within(ws, Duration::from_secs(30)).await
}

/// One member of the population: reads until told to leave (or, slow, stops reading).
async fn viewer(ctx: Arc<Ctx>, n: u64, mut leave: tokio::sync::oneshot::Receiver<()>) {
    let user = n.is_multiple_of(2).then(|| format!("soak-viewer-{n}"));
    let slow = rand::rng().random_bool(ctx.args.slow_fraction.clamp(0.0, 1.0));
    let mut ws = match join_with(&ctx, user.as_deref(), slow.then_some(4096)).await {
        Ok(ws) => ws,
        Err(e) => return ctx.unexpected(format!("viewer join: {e}")),
    };
    bump(&ctx.counts.joins);
    if slow {
        // Stops reading: the server cuts it (4001) once its queue is full.
        bump(&ctx.counts.slow);
        let _ = leave.await;
        return;
    }
    loop {
        tokio::select! {
            _ = &mut leave => break,
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(_))) => bump(&ctx.counts.frames_read),
                Some(Ok(_)) => {}
                _ => {
                    if ctx.running() {
                        ctx.unexpected("a reading viewer's socket ended");
                    }
                    return;
                }
            }
        }
    }
    let _ = ws.close(None).await;
    bump(&ctx.counts.leaves);
}

/// Keeps `viewers` joined and replaces `churn_per_sec` of them per second.
async fn population(ctx: Arc<Ctx>) {
    let mut members = std::collections::VecDeque::new();
    let mut n = 0u64;
    let spawn = |n: u64| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(viewer(ctx.clone(), n, rx));
        tx
    };
    for _ in 0..ctx.args.viewers {
        members.push_back(spawn(n));
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let every = Duration::from_secs_f64(1.0 / ctx.args.churn_per_sec.max(0.01));
    while ctx.running() {
        tokio::time::sleep(every).await;
        if let Some(oldest) = members.pop_front() {
            let _ = oldest.send(());
        }
        members.push_back(spawn(n));
        n += 1;
    }
    for m in members {
        let _ = m.send(());
    }
}

/// Viewers that join, then neither read nor close: only the server's heartbeat can tell
/// they are gone. Each is held for two minutes, then dropped.
async fn half_open(ctx: Arc<Ctx>) {
    if ctx.args.half_open_per_min <= 0.0 {
        return;
    }
    let every = Duration::from_secs_f64(60.0 / ctx.args.half_open_per_min);
    let mut held = std::collections::VecDeque::new();
    while ctx.running() {
        tokio::time::sleep(every).await;
        match join(&ctx, None).await {
            Ok(ws) => {
                bump(&ctx.counts.half_open);
                held.push_back((Instant::now(), ws));
            }
            Err(e) => ctx.unexpected(format!("half-open join: {e}")),
        }
        while held
            .front()
            .is_some_and(|(at, _)| at.elapsed() > Duration::from_secs(120))
        {
            held.pop_front();
        }
    }
}

/// A signed-in client sending `make()` at `rate` per second and checking each answer.
async fn talker(
    ctx: Arc<Ctx>,
    name: String,
    rate: f64,
    mut make: impl FnMut(&Ctx, u64) -> Vec<ClientMsg>,
    mut check: impl FnMut(&Ctx, &ServerMsg) -> Option<Result<(), String>>,
) {
    if rate <= 0.0 {
        return;
    }
    let user = format!("soak-{name}");
    let mut ws = match join(&ctx, Some(&user)).await {
        Ok(ws) => ws,
        Err(e) => return ctx.unexpected(format!("{name} join: {e}")),
    };
    let every = Duration::from_secs_f64(1.0 / rate);
    let mut i = 0u64;
    while ctx.running() {
        tokio::time::sleep(every).await;
        i += 1;
        for msg in make(&ctx, i) {
            if ws.send(frames::encode(&msg)).await.is_err() {
                return ctx.unexpected(format!("{name}: socket ended"));
            }
        }
        // Read until this request's answer (broadcasts in between are skipped).
        loop {
            match next_msg(&mut ws).await {
                Ok(msg) => match check(&ctx, &msg) {
                    Some(Ok(())) => break,
                    Some(Err(e)) => {
                        ctx.unexpected(format!("{name}: {e}"));
                        break;
                    }
                    None => {}
                },
                Err(e) => return ctx.unexpected(format!("{name}: {e}")),
            }
        }
    }
}

/// Orders from many buyers (a fresh buyer identity each time, so no per-buyer cap is
/// hit); half of the accepted orders are cancelled right away, the rest expire.
async fn buyer(ctx: Arc<Ctx>) {
    let rate = ctx.args.orders_per_sec;
    if rate <= 0.0 {
        return;
    }
    let every = Duration::from_secs_f64(1.0 / rate);
    let mut n = 0u64;
    while ctx.running() {
        tokio::time::sleep(every).await;
        n += 1;
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = one_order(&ctx, n).await {
                ctx.unexpected(format!("order: {e}"));
            }
        });
    }
}

async fn one_order(ctx: &Ctx, n: u64) -> anyhow::Result<()> {
    let mut ws = join(ctx, Some(&format!("soak-buyer-{n}"))).await?;
    let sale_id = ctx.sale.lock().unwrap_or_else(|e| e.into_inner()).clone();
    ws.send(frames::encode(&ClientMsg::Order {
        sale_id,
        qty: 1,
        key: format!("k{n}"),
        id: Some(1),
    }))
    .await?;
    let order_id = loop {
        match next_msg(&mut ws).await? {
            ServerMsg::OrderResult {
                outcome: OrderOutcome::Accepted,
                order_id,
                ..
            } => break order_id,
            // Between one sale's end and the next one's reveal.
            ServerMsg::OrderResult {
                outcome: OrderOutcome::Closed | OrderOutcome::NotOpen | OrderOutcome::SoldOut,
                ..
            } => break None,
            ServerMsg::OrderResult { outcome, .. } => anyhow::bail!("outcome {outcome:?}"),
            ServerMsg::Error { name, message, .. } => anyhow::bail!("{name:?}: {message}"),
            _ => {}
        }
    };
    bump(&ctx.counts.orders);
    if let Some(order_id) = order_id.filter(|_| n.is_multiple_of(2)) {
        ws.send(frames::encode(&ClientMsg::CancelOrder {
            order_id,
            id: Some(2),
        }))
        .await?;
        loop {
            match next_msg(&mut ws).await? {
                ServerMsg::Ack { id: Some(2), .. } => break,
                ServerMsg::Error { name, message, .. } => {
                    anyhow::bail!("cancel {name:?}: {message}")
                }
                _ => {}
            }
        }
        bump(&ctx.counts.cancels);
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// The anchor: keeps its control channel open (reading), and every `sale_every_secs`
/// drops the link of a new sale; the merchant ends the previous one.
async fn anchor(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    let conn = &ctx.args.conn;
    let mut ws = super::link_drop::open_anchor(ctx.server, conn).await?;
    ws.send(frames::encode(&ClientMsg::Control {
        cmd: ControlCmd::GoLive,
        id: Some(1),
    }))
    .await?;
    let merchant = token(
        &conn.secret,
        "merchant",
        "load-merchant",
        None,
        Some("load-merchant"),
    );
    let http = reqwest::Client::new();
    let mut previous: Option<String> = None;
    let mut next_sale = Instant::now();
    let mut id = 10u64;
    while ctx.running() {
        if Instant::now() >= next_sale {
            next_sale = Instant::now() + Duration::from_secs(ctx.args.sale_every_secs.max(1));
            let sale = create_sale(
                ctx.server,
                &conn.secret,
                &conn.room,
                1_000_000,
                1,
                ctx.args.reservation_ttl_secs,
            )
            .await?;
            id += 1;
            ws.send(frames::encode(&ClientMsg::Control {
                cmd: ControlCmd::DropLink {
                    sale_id: sale.clone(),
                    countdown_ms: Some(0),
                },
                id: Some(id),
            }))
            .await?;
            *ctx.sale.lock().unwrap_or_else(|e| e.into_inner()) = sale.clone();
            bump(&ctx.counts.sales);
            if let Some(old) = previous.replace(sale) {
                http.post(format!("http://{}/api/v1/sales/{old}/close", ctx.server))
                    .bearer_auth(&merchant)
                    .send()
                    .await?
                    .error_for_status()?;
            }
        }
        // Keep reading (the anchor answers pings and takes every broadcast).
        match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                if let Ok(ServerMsg::Error { name, message, .. }) = frames::decode(&t) {
                    ctx.unexpected(format!("anchor: {name:?}: {message}"));
                }
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(_) => anyhow::bail!("the anchor's control channel ended"),
        }
    }
    Ok(())
}

/// WHEP players: keeps `subscribers` subscribed, replacing one every churn interval.
async fn players(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    if ctx.args.subscribers == 0 {
        return Ok(());
    }
    let base = format!("http://{}", ctx.server);
    let anchor = token(
        &ctx.args.conn.secret,
        "anchor",
        "load-anchor",
        Some(&ctx.args.conn.room),
        None,
    );
    // Wait for the anchor to go live, then publish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let publisher = Arc::new(Publisher::connect(&base, &ctx.args.conn.room, &anchor).await?);
    let stop = tokio_util::sync::CancellationToken::new();
    let streaming = {
        let (p, s) = (publisher.clone(), stop.clone());
        tokio::spawn(async move {
            p.stream(&PublishOptions::default(), s.cancelled_owned())
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut playing = std::collections::VecDeque::new();
    while ctx.running() {
        if playing.len() >= ctx.args.subscribers {
            let oldest: Subscriber = playing.pop_front().expect("not empty");
            if let Some(location) = oldest.location() {
                let status = reqwest::Client::new()
                    .delete(format!("{base}{location}"))
                    .send()
                    .await?
                    .status();
                if !status.is_success() {
                    ctx.unexpected(format!("WHEP delete answered {status}"));
                }
            }
            oldest.close().await;
            bump(&ctx.counts.unsubscribed);
        }
        match Subscriber::whep(&base, &ctx.args.conn.room, None).await {
            Ok(sub) => {
                playing.push_back(sub);
                bump(&ctx.counts.subscribed);
            }
            Err(e) => ctx.unexpected(format!("WHEP subscribe: {e}")),
        }
        tokio::time::sleep(Duration::from_secs(ctx.args.subscriber_churn_secs.max(1))).await;
    }
    for sub in playing {
        sub.close().await;
    }
    stop.cancel();
    let _ = streaming.await;
    Ok(())
}

pub async fn run(args: SoakArgs, _slot: Slot) -> anyhow::Result<Report> {
    let nodes = args.conn.nodes()?;
    let server = nodes.first();
    let secret = args.conn.secret.clone();
    let room = args.conn.room.clone();
    crate::wire::Publisher::ensure_room(
        server,
        &room,
        &token(&secret, "anchor", "load-anchor", Some(&room), None),
    )
    .await?;
    let started = Instant::now();
    let ctx = Arc::new(Ctx {
        deadline: started + Duration::from_secs(args.duration_secs),
        args,
        server,
        nodes,
        joined: std::sync::atomic::AtomicUsize::new(0),
        counts: Counts::default(),
        sale: std::sync::Mutex::new(String::new()),
    });
    let anchor_task = tokio::spawn(anchor(ctx.clone()));
    // Orders start once the first sale is up.
    while ctx
        .sale
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_empty()
    {
        anyhow::ensure!(
            !anchor_task.is_finished(),
            "the anchor stopped before the first sale"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Viewers may comment about once a second each (room.comment_rate_per_sec):
    // spread the comments over enough talkers to stay under it.
    let talkers = (ctx.args.comments_per_sec / 0.5).ceil().max(1.0) as usize;
    let comment_rate = ctx.args.comments_per_sec / talkers as f64;
    let like_rate = ctx.args.likes_per_sec;
    let mut tasks = Vec::new();
    for t in 0..talkers {
        tasks.push(tokio::spawn(talker(
            ctx.clone(),
            format!("talker-{t}"),
            comment_rate,
            |_, i| {
                vec![ClientMsg::Comment {
                    text: format!("soak comment {i}"),
                    id: Some(i),
                }]
            },
            |ctx, m| match m {
                ServerMsg::Ack {
                    comment_id: Some(_),
                    ..
                } => {
                    bump(&ctx.counts.comments);
                    Some(Ok(()))
                }
                ServerMsg::Error { name, message, .. } => Some(Err(format!("{name:?}: {message}"))),
                _ => None,
            },
        )));
    }
    tasks.extend([
        tokio::spawn(population(ctx.clone())),
        tokio::spawn(half_open(ctx.clone())),
        tokio::spawn(buyer(ctx.clone())),
        tokio::spawn(talker(
            ctx.clone(),
            "liker".into(),
            like_rate,
            // A like has no answer: the ping after it proves it was taken.
            |_, i| {
                vec![
                    ClientMsg::Like { count: 3 },
                    ClientMsg::Ping { id: Some(i) },
                ]
            },
            |ctx, m| match m {
                ServerMsg::Pong { .. } => {
                    bump(&ctx.counts.likes);
                    Some(Ok(()))
                }
                ServerMsg::Error { name, .. } if *name != ErrorCode::RateLimited => {
                    Some(Err(format!("{name:?}")))
                }
                _ => None,
            },
        )),
    ]);
    let video = tokio::spawn(players(ctx.clone()));
    for t in tasks {
        let _ = t.await;
    }
    if let Ok(Err(e)) = video.await {
        ctx.unexpected(format!("video: {e}"));
    }
    match anchor_task.await {
        Ok(Err(e)) => ctx.unexpected(format!("anchor: {e}")),
        Err(e) => ctx.unexpected(format!("anchor task: {e}")),
        Ok(Ok(())) => {}
    }
    let mut report = Report::new("soak", "lockstep");
    let c = &ctx.counts;
    for (name, counter) in [
        ("joins", &c.joins),
        ("leaves", &c.leaves),
        ("comments_acked", &c.comments),
        ("likes_taken", &c.likes),
        ("orders_answered", &c.orders),
        ("orders_cancelled", &c.cancels),
        ("sales_opened", &c.sales),
        ("whep_subscribed", &c.subscribed),
        ("whep_unsubscribed", &c.unsubscribed),
        ("slow_viewers", &c.slow),
        ("half_open_viewers", &c.half_open),
        ("frames_read", &c.frames_read),
        ("unexpected", &c.unexpected),
    ] {
        report.add(name, counter.load(Ordering::Relaxed));
    }
    report.add("seconds", started.elapsed().as_secs());
    Ok(report)
}
