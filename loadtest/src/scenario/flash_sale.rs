//! `flash-sale`: N buyers wait for the link and order at `reveal_at` (plus jitter),
//! retrying with the same idempotency key when an answer times out. Every operation's
//! invoke time, completion time and result go to a history; the run then checks no
//! oversell, no duplicate order ids, per-buyer limits, and linearizability. The same
//! workload runs against the standard Redis approach (one Lua script per order) as a
//! baseline.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use lockstep_protocol::{ClientMsg, OrderOutcome, ServerMsg};
use rand::Rng;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::link_drop::{clock_offset, create_sale, drop_link, open_anchor};
use super::{Slot, bar, token};
use crate::frames;
use crate::linearizability::{Event, Op, Ret, SaleSpec, check};
use crate::report::{Hist, Report};
use crate::wire::{self, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SaleTarget {
    Lockstep,
    /// Redis: the stock decision is one Lua script per order.
    Redis,
}

#[derive(Debug, Clone, clap::Args)]
pub struct FlashSaleArgs {
    #[arg(long, value_enum, default_value = "lockstep")]
    pub target: SaleTarget,
    #[command(flatten)]
    pub conn: super::Conn,
    #[arg(long, default_value_t = 1000)]
    pub buyers: usize,
    /// Units on sale.
    #[arg(long, default_value_t = 100)]
    pub stock: u32,
    /// Most units per buyer.
    #[arg(long, default_value_t = 1)]
    pub limit: u32,
    /// Orders each buyer places (one unit each, distinct keys).
    #[arg(long, default_value_t = 1)]
    pub orders_per_buyer: u32,
    /// Each buyer waits a random 0..jitter ms after the reveal before ordering.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// An answer slower than this is a timeout; the order is retried with the same key.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    #[arg(long, default_value_t = 2000)]
    pub countdown_ms: u64,
    /// Write the history (one JSON event per line) here.
    #[arg(long)]
    pub history: Option<std::path::PathBuf>,
    /// Skip the linearizability check above this many operations.
    #[arg(long, default_value_t = 50_000)]
    pub check_max_ops: usize,
}

pub async fn run(args: FlashSaleArgs, slot: Slot) -> anyhow::Result<Report> {
    anyhow::ensure!(
        slot.count == 1,
        "flash-sale runs in one process (--procs 1)"
    );
    let nodes = args.conn.nodes()?;
    let started = Instant::now();
    let (events, window, reveal_ns) = match args.target {
        SaleTarget::Lockstep => lockstep(&args, &nodes, started, slot.progress).await?,
        SaleTarget::Redis => {
            let (events, window) = redis_baseline(&args, nodes.first(), started).await?;
            (events, window, None)
        }
    };
    let mut report = Report::new(
        "flash-sale",
        if args.target == SaleTarget::Redis {
            "redis"
        } else {
            "lockstep"
        },
    );
    verify(&args, &events, window, &mut report);
    if let Some(reveal_ns) = reveal_ns {
        // When each buyer had its last answer, counted from the reveal: in a sell-out,
        // how soon every buyer knew.
        let mut last: HashMap<&str, u64> = HashMap::new();
        for e in &events {
            if let (Some(c), Op::Reserve { buyer, .. }) = (e.complete, &e.op) {
                let t = last.entry(buyer.as_str()).or_default();
                *t = (*t).max(c);
            }
        }
        let hist = report.hist("buyer_answered_after_reveal");
        for c in last.values() {
            hist.record_us(c.saturating_sub(reveal_ns) / 1000);
        }
    }
    if let Some(path) = &args.history {
        let lines: Vec<String> = events.iter().map(event_json).collect();
        std::fs::write(path, lines.join("\n") + "\n")?;
    }
    Ok(report)
}

/// One buyer's orders over its Lockstep socket.
async fn buy(
    mut ws: wire::Ws,
    args: FlashSaleArgs,
    buyer: String,
    sale: String,
    show_at_local_ms: f64,
    started: Instant,
) -> Vec<Event> {
    let jitter = if args.jitter_ms > 0 {
        rand::rng().random_range(0..args.jitter_ms)
    } else {
        0
    };
    let wait = show_at_local_ms + jitter as f64 - wire::now_ns() as f64 / 1e6;
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait / 1000.0)).await;
    }
    let mut events = Vec::new();
    let mut id = 0u64;
    for k in 0..args.orders_per_buyer {
        let key = format!("o{k}");
        for attempt in 0..=args.retries {
            id += 1;
            let invoke = started.elapsed().as_nanos() as u64;
            let msg = ClientMsg::Order {
                sale_id: sale.clone(),
                qty: 1,
                key: key.clone(),
                id: Some(id),
            };
            if ws.send(frames::encode(&msg)).await.is_err() {
                return events;
            }
            let answer = tokio::time::timeout(Duration::from_millis(args.timeout_ms), async {
                while let Some(Ok(frame)) = ws.next().await {
                    if let Message::Text(t) = frame
                        && let Ok(ServerMsg::OrderResult {
                            id: Some(answered),
                            outcome,
                            order_id,
                            remaining,
                            ..
                        }) = frames::decode(&t)
                        && answered == id
                    {
                        return Some((outcome, order_id, remaining));
                    }
                }
                None
            })
            .await;
            let complete = started.elapsed().as_nanos() as u64;
            let op = Op::Reserve {
                buyer: buyer.clone(),
                qty: 1,
                key: key.clone(),
            };
            match answer {
                Ok(Some((outcome, order_id, remaining))) => {
                    let ret = match outcome {
                        OrderOutcome::Accepted => Ret::Accepted {
                            order_id: order_id.unwrap_or_default(),
                            remaining: remaining.unwrap_or(0),
                        },
                        OrderOutcome::SoldOut => Ret::SoldOut,
                        OrderOutcome::LimitExceeded => Ret::LimitExceeded,
                        OrderOutcome::NotOpen | OrderOutcome::Closed | OrderOutcome::Invalid => {
                            // Not a sale decision the checks count: say which, and when
                            // against this buyer's estimate of the reveal.
                            let early_ms = show_at_local_ms - wire::now_ns() as f64 / 1e6;
                            eprintln!(
                                "flash-sale: {buyer}'s order was refused {outcome:?} \
                                 ({early_ms:.1} ms before its estimate of the reveal)"
                            );
                            Ret::Rejected
                        }
                    };
                    events.push(Event {
                        op,
                        invoke,
                        complete: Some(complete),
                        ret,
                    });
                    break;
                }
                Ok(None) => {
                    events.push(Event {
                        op,
                        invoke,
                        complete: None,
                        ret: Ret::Unknown,
                    });
                    return events;
                }
                Err(_) => {
                    events.push(Event {
                        op,
                        invoke,
                        complete: None,
                        ret: Ret::Unknown,
                    });
                    let _ = attempt;
                }
            }
        }
    }
    events
}

async fn lockstep(
    args: &FlashSaleArgs,
    nodes: &super::Nodes,
    started: Instant,
    progress: bool,
) -> anyhow::Result<(Vec<Event>, f64, Option<u64>)> {
    let server = nodes.first();
    let mut anchor = open_anchor(server, &args.conn).await?;
    let sale = create_sale(
        server,
        &args.conn.secret,
        &args.conn.room,
        args.stock,
        args.limit,
        3600,
    )
    .await?;
    let joining = bar(progress, args.buyers as u64, "joining");
    let mut buyers = Vec::with_capacity(args.buyers);
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(128));
    let mut joins = Vec::new();
    for i in 0..args.buyers {
        let (room, secret, gate, joining) = (
            args.conn.room.clone(),
            args.conn.secret.clone(),
            gate.clone(),
            joining.clone(),
        );
        let server = nodes.of(i);
        joins.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            let buyer = format!("buyer-{i}");
            let t = token(&secret, "viewer", &buyer, None, None);
            let ws = wire::join_receiver(Target::Lockstep, server, None, &room, Some(&t)).await?;
            joining.inc(1);
            anyhow::Ok((buyer, ws, 0.0))
        }));
    }
    for j in joins {
        buyers.push(j.await??);
    }
    joining.finish_and_clear();
    // Each buyer learns the server's clock once everyone has joined, one buyer at a
    // time: samples taken during the join storm carry its queueing, and an estimate a
    // few ms early makes a buyer's first orders arrive before the sale opens.
    for (_, ws, offset) in &mut buyers {
        *offset = clock_offset(ws, 3).await?;
    }
    let reveal_at = drop_link(&mut anchor, &sale, args.countdown_ms).await? as f64;
    // The reveal on this run's clock (the generator shares the server's host clock).
    let reveal_ns = (started.elapsed().as_nanos() as f64 + reveal_at * 1e6 - wire::now_ns() as f64)
        .max(0.0) as u64;
    let tasks: Vec<_> = buyers
        .into_iter()
        .map(|(buyer, ws, offset)| {
            tokio::spawn(buy(
                ws,
                args.clone(),
                buyer,
                sale.clone(),
                reveal_at - offset,
                started,
            ))
        })
        .collect();
    let mut events = Vec::new();
    for t in tasks {
        events.extend(t.await?);
    }
    let window = storm_secs(&events);
    Ok((events, window, Some(reveal_ns)))
}

/// Seconds from the first invoke to the last completion.
fn storm_secs(events: &[Event]) -> f64 {
    let first = events.iter().map(|e| e.invoke).min().unwrap_or(0);
    let last = events
        .iter()
        .filter_map(|e| e.complete)
        .max()
        .unwrap_or(first);
    (last.saturating_sub(first)) as f64 / 1e9
}

const LUA: &str = r#"
local k = ARGV[1] .. ':' .. ARGV[4]
local prior = redis.call('HGET', KEYS[3], k)
if prior then return prior end
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local qty = tonumber(ARGV[2])
local result
if held + qty > tonumber(ARGV[3]) then
  result = 'limit_exceeded'
else
  local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
  if stock < qty then
    result = 'sold_out'
  else
    local remaining = redis.call('DECRBY', KEYS[1], qty)
    redis.call('HINCRBY', KEYS[2], ARGV[1], qty)
    local id = redis.call('XADD', KEYS[4], '*', 'buyer', ARGV[1], 'qty', qty, 'key', ARGV[4])
    result = 'accepted:' .. id .. ':' .. remaining
  end
end
redis.call('HSET', KEYS[3], k, result)
return result
"#;

/// The standard approach: the application asks Redis to decide each order with one Lua
/// script (stock, per-buyer holds, idempotency, and the order appended to a stream).
async fn redis_baseline(
    args: &FlashSaleArgs,
    server: std::net::SocketAddr,
    started: Instant,
) -> anyhow::Result<(Vec<Event>, f64)> {
    let client = redis::Client::open(format!("redis://{server}/"))?;
    let run_id = format!("lockstep-load:{}", wire::now_ns());
    let keys: [String; 4] = ["stock", "holds", "keys", "orders"].map(|k| format!("{run_id}:{k}"));
    let mut setup = client.get_multiplexed_async_connection().await?;
    redis::cmd("SET")
        .arg(&keys[0])
        .arg(args.stock)
        .query_async::<()>(&mut setup)
        .await?;
    let script = redis::Script::new(LUA);
    let connections = 8usize;
    let mut conns = Vec::new();
    for _ in 0..connections {
        conns.push(client.get_multiplexed_async_connection().await?);
    }
    let tasks: Vec<_> = (0..args.buyers)
        .map(|i| {
            let (mut conn, script, keys, args) = (
                conns[i % connections].clone(),
                script.clone(),
                keys.clone(),
                args.clone(),
            );
            tokio::spawn(async move {
                let buyer = format!("buyer-{i}");
                let mut events = Vec::new();
                for k in 0..args.orders_per_buyer {
                    let key = format!("o{k}");
                    let invoke = started.elapsed().as_nanos() as u64;
                    let result: Result<String, _> = script
                        .key(&keys[0])
                        .key(&keys[1])
                        .key(&keys[2])
                        .key(&keys[3])
                        .arg(&buyer)
                        .arg(1)
                        .arg(args.limit)
                        .arg(&key)
                        .invoke_async(&mut conn)
                        .await;
                    let complete = started.elapsed().as_nanos() as u64;
                    let op = Op::Reserve {
                        buyer: buyer.clone(),
                        qty: 1,
                        key,
                    };
                    let ret = match result.as_deref() {
                        Ok("sold_out") => Ret::SoldOut,
                        Ok("limit_exceeded") => Ret::LimitExceeded,
                        Ok(other) if other.starts_with("accepted:") => {
                            let mut parts = other.splitn(3, ':');
                            parts.next();
                            let id = parts.next().unwrap_or_default().to_owned();
                            let remaining = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
                            Ret::Accepted {
                                order_id: id,
                                remaining,
                            }
                        }
                        _ => Ret::Unknown,
                    };
                    let complete = (ret != Ret::Unknown).then_some(complete);
                    events.push(Event {
                        op,
                        invoke,
                        complete,
                        ret,
                    });
                }
                events
            })
        })
        .collect();
    let mut events = Vec::new();
    for t in tasks {
        events.extend(t.await?);
    }
    redis::cmd("DEL")
        .arg(&keys[..])
        .query_async::<()>(&mut setup)
        .await?;
    let window = storm_secs(&events);
    Ok((events, window))
}

fn verify(args: &FlashSaleArgs, events: &[Event], window: f64, report: &mut Report) {
    let mut latency = Hist::default();
    let mut held: HashMap<&str, u32> = HashMap::new();
    let mut ids: HashSet<&str> = HashSet::new();
    let mut first_by_key: HashMap<(&str, &str), &Ret> = HashMap::new();
    let (
        mut accepted,
        mut sold_out,
        mut limited,
        mut unknown,
        mut duplicate_ids,
        mut retry_mismatch,
    ) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for e in events {
        if let Some(c) = e.complete {
            latency.record_us((c - e.invoke) / 1000);
        }
        let Op::Reserve { buyer, key, qty } = &e.op else {
            continue;
        };
        if e.ret != Ret::Unknown {
            match first_by_key.get(&(buyer.as_str(), key.as_str())) {
                Some(first) if **first != e.ret => retry_mismatch += 1,
                Some(_) => continue,
                None => {
                    first_by_key.insert((buyer, key), &e.ret);
                }
            }
        }
        match &e.ret {
            Ret::Accepted { order_id, .. } => {
                accepted += u64::from(*qty);
                *held.entry(buyer).or_default() += qty;
                if !ids.insert(order_id) {
                    duplicate_ids += 1;
                }
            }
            Ret::SoldOut => sold_out += 1,
            Ret::LimitExceeded => limited += 1,
            Ret::Unknown => unknown += 1,
            _ => {}
        }
    }
    let demand = args.buyers as u64 * u64::from(args.orders_per_buyer.min(args.limit));
    let oversold = accepted > u64::from(args.stock);
    let undersold =
        demand >= u64::from(args.stock) && accepted < u64::from(args.stock) && unknown == 0;
    let over_limit = held.values().filter(|&&q| q > args.limit).count() as u64;
    report.add("operations", events.len() as u64);
    report.add("accepted", accepted);
    report.add("sold_out", sold_out);
    report.add("limit_exceeded", limited);
    report.add("timed_out", unknown);
    report.add("duplicate_order_ids", duplicate_ids);
    report.add("buyers_over_limit", over_limit);
    report.add("retry_mismatches", retry_mismatch);
    report.duration_secs = window;
    let decided = events.iter().filter(|e| e.complete.is_some()).count() as f64;
    report.extra.insert(
        "orders_per_sec".into(),
        json!((decided / window.max(1e-9)).round()),
    );
    report.extra.insert(
        "accepted_per_sec".into(),
        json!((accepted as f64 / window.max(1e-9)).round()),
    );
    report.extra.insert("oversold".into(), json!(oversold));
    report.extra.insert("undersold".into(), json!(undersold));
    let linearizable = if events.len() > args.check_max_ops {
        json!("skipped")
    } else {
        match check(
            &SaleSpec {
                allotted: args.stock,
                per_buyer_limit: args.limit,
            },
            events,
        ) {
            Ok(_) => json!(true),
            Err(v) => {
                report
                    .extra
                    .insert("linearizability_violation".into(), json!(v.reason));
                json!(false)
            }
        }
    };
    report.extra.insert("linearizable".into(), linearizable);
    report.histograms.insert("order".into(), latency);
}

fn event_json(e: &Event) -> String {
    let (op, buyer, key, qty) = match &e.op {
        Op::Reserve { buyer, qty, key } => ("reserve", buyer.as_str(), key.as_str(), *qty),
        Op::Cancel { order_id } => ("cancel", "", order_id.as_str(), 0),
        Op::Confirm { order_id } => ("confirm", "", order_id.as_str(), 0),
    };
    let ret = match &e.ret {
        Ret::Accepted {
            order_id,
            remaining,
        } => json!({"accepted": {"order_id": order_id, "remaining": remaining}}),
        other => json!(format!("{other:?}")),
    };
    json!({"op": op, "buyer": buyer, "key": key, "qty": qty, "invoke_ns": e.invoke, "complete_ns": e.complete, "ret": ret}).to_string()
}
