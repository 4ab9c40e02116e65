//! What a replay and its dashboard show, computed from the archive's rows and the
//! sales' orders: product chapters (one per link drop, placed on the recording's time
//! axis), the time series with every second present, totals, the funnel per product
//! and retention. Pure: the HTTP layer reads the rows and hands them in.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::STAY_BOUNDS_SECS;
use super::findings::{Finding, findings};
use super::sqlite::{ChapterEdit, FunnelRow, ReplayRow, SeriesRow};

/// Orders of one sale placed in the live room.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SaleTotals {
    pub sale_id: String,
    /// Orders accepted while the room was live.
    pub orders: u64,
    /// Units of those still held or paid (not cancelled or expired).
    pub units: u64,
    /// Of those, units paid for.
    pub paid: u64,
    pub gmv_cents: u64,
}

/// Orders placed from one chapter of the replay (`source: replay`), whichever sale
/// (the live one, or one opened for the replay) they went to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChapterOrders {
    /// The chapter's 1-based index.
    pub chapter: u32,
    pub orders: u64,
    pub units: u64,
}

/// Orders accepted in one second of the room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OrderSecond {
    /// Unix seconds.
    pub t: u64,
    pub orders: u64,
    pub units: u64,
    pub gmv_cents: u64,
}

/// Where the recording's video frames sit in wall-clock time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaMap {
    /// Server time (ms since the Unix epoch) that media position 0 corresponds to: when
    /// viewers saw the recording's first frame.
    pub start_at: u64,
    /// Video RTP timestamps (the room's 90 kHz media clock) at known media positions.
    pub anchors: Vec<RtpAnchor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtpAnchor {
    pub media_ms: u64,
    pub rtp: u32,
}

/// How far an RTP-derived position may be from the wall-clock one before it is
/// distrusted (a timestamp from another publisher session).
const RTP_TRUST_MS: i64 = 10_000;

impl MediaMap {
    /// The media position of the frame viewers saw at `at`; with `rtp`, the position of
    /// that exact frame.
    pub fn media_ms(&self, at: u64, rtp: Option<u32>) -> u64 {
        let by_clock = at.saturating_sub(self.start_at) as i64;
        let Some(rtp) = rtp else {
            return by_clock as u64;
        };
        let anchor = self
            .anchors
            .iter()
            .rev()
            .find(|a| a.media_ms as i64 <= by_clock + RTP_TRUST_MS)
            .or(self.anchors.first());
        let Some(anchor) = anchor else {
            return by_clock as u64;
        };
        let by_frame = anchor.media_ms as i64 + i64::from(rtp.wrapping_sub(anchor.rtp) as i32) / 90;
        if (by_frame - by_clock).abs() <= RTP_TRUST_MS {
            by_frame.max(0) as u64
        } else {
            by_clock as u64
        }
    }
}

/// One product chapter of a replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chapter {
    /// 1-based, in order of the links.
    pub index: usize,
    pub sale_id: String,
    pub title: String,
    pub image_url: Option<String>,
    pub price_cents: u64,
    /// Server time the link was revealed.
    pub at: u64,
    /// Position in the recording of the frame the link appeared on.
    pub media_ms: u64,
    pub reveal_rtp: Option<u32>,
    pub hidden: bool,
    pub online_at_drop: u64,
    pub shown: u64,
    pub clicked: u64,
    /// Orders (reserved) while live; `paid`: units of those paid for.
    pub orders: u64,
    pub units_sold: u64,
    pub paid: u64,
    pub replay_orders: u64,
    /// Orders ÷ viewers present at the drop.
    pub conversion: f64,
}

/// What the archive holds about one replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayData {
    pub series: Vec<SeriesRow>,
    pub links: Vec<serde_json::Value>,
    pub sale_events: Vec<serde_json::Value>,
    pub funnel: Vec<FunnelRow>,
    pub stays: Vec<u64>,
    pub edits: Vec<ChapterEdit>,
    pub sales: Vec<SaleTotals>,
    pub orders: Vec<OrderSecond>,
    pub replay_orders: Vec<ChapterOrders>,
}

/// The chapters: the first drop of each sale's link, in order.
pub fn chapters(data: &ReplayData, media: &MediaMap) -> Vec<Chapter> {
    let funnel: HashMap<&str, &FunnelRow> = data
        .funnel
        .iter()
        .map(|f| (f.sale_id.as_str(), f))
        .collect();
    let sales: HashMap<&str, &SaleTotals> =
        data.sales.iter().map(|s| (s.sale_id.as_str(), s)).collect();
    let edits: HashMap<&str, &ChapterEdit> =
        data.edits.iter().map(|e| (e.sale_id.as_str(), e)).collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for link in &data.links {
        let Some(sale_id) = link["sale_id"].as_str() else {
            continue;
        };
        if !seen.insert(sale_id.to_owned()) {
            continue;
        }
        let at = link["reveal_at"].as_u64().unwrap_or(0);
        let reveal_rtp = link["reveal_rtp"].as_u64().map(|v| v as u32);
        let edit = edits.get(sale_id);
        let totals = sales.get(sale_id).copied().cloned().unwrap_or_default();
        let online = link["online"].as_u64().unwrap_or(0);
        let f = funnel.get(sale_id);
        out.push(Chapter {
            index: out.len() + 1,
            sale_id: sale_id.to_owned(),
            title: edit
                .and_then(|e| e.title.clone())
                .or_else(|| link["title"].as_str().map(str::to_owned))
                .unwrap_or_else(|| sale_id.to_owned()),
            image_url: link["image_url"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            price_cents: link["price_cents"].as_u64().unwrap_or(0),
            at,
            media_ms: media.media_ms(at, reveal_rtp),
            reveal_rtp,
            hidden: edit.is_some_and(|e| e.hidden),
            online_at_drop: online,
            shown: f.map_or(0, |f| f.shown),
            clicked: f.map_or(0, |f| f.clicked),
            orders: totals.orders,
            units_sold: totals.units,
            paid: totals.paid,
            replay_orders: data
                .replay_orders
                .iter()
                .find(|o| o.chapter as usize == out.len() + 1)
                .map_or(0, |o| o.orders),
            conversion: if online == 0 {
                0.0
            } else {
                (totals.orders as f64 / online as f64).min(1.0)
            },
        });
    }
    out
}

/// Every series on one time axis (Unix seconds, one point per `resolution_s`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    pub t: Vec<u64>,
    pub online: Vec<u64>,
    pub joins: Vec<u64>,
    pub leaves: Vec<u64>,
    pub comments: Vec<u64>,
    pub likes: Vec<u64>,
    pub orders: Vec<u64>,
    pub units: Vec<u64>,
    pub gmv_cents: Vec<u64>,
}

/// The series from `start` to `end` (Unix seconds) with every step present: a missing
/// step counts nothing and keeps the last online count.
pub fn fill(rows: &[SeriesRow], orders: &[OrderSecond], start: u64, end: u64, step: u64) -> Series {
    let step = step.max(1);
    let start = start / step * step;
    let end = end.max(start);
    let len = ((end - start) / step + 1) as usize;
    let mut s = Series {
        t: (0..len).map(|i| start + i as u64 * step).collect(),
        online: vec![0; len],
        joins: vec![0; len],
        leaves: vec![0; len],
        comments: vec![0; len],
        likes: vec![0; len],
        orders: vec![0; len],
        units: vec![0; len],
        gmv_cents: vec![0; len],
    };
    let slot = |t: u64| -> Option<usize> {
        (t >= start)
            .then(|| ((t - start) / step) as usize)
            .filter(|&i| i < len)
    };
    let mut online: Vec<Option<u64>> = vec![None; len];
    for r in rows {
        if let Some(i) = slot(r.t) {
            online[i] = Some(online[i].map_or(r.online, |o: u64| o.max(r.online)));
            s.joins[i] += r.joins;
            s.leaves[i] += r.leaves;
            s.comments[i] += r.comments;
            s.likes[i] += r.likes;
        }
    }
    for o in orders {
        if let Some(i) = slot(o.t) {
            s.orders[i] += o.orders;
            s.units[i] += o.units;
            s.gmv_cents[i] += o.gmv_cents;
        }
    }
    let mut last = 0;
    for (i, o) in online.into_iter().enumerate() {
        last = o.unwrap_or(last);
        s.online[i] = last;
    }
    s
}

/// Viewers who left after staying less than `up_to_s` (`None`: longer than the last bound).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StayBucket {
    pub up_to_s: Option<u64>,
    pub viewers: u64,
}

/// Totals of a room's run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Totals {
    pub peak_online: u64,
    pub joins: u64,
    pub comments: u64,
    pub likes: u64,
    pub orders: u64,
    pub units: u64,
    pub gmv_cents: u64,
    pub replay_orders: u64,
}

/// The dashboard's whole view of one replay.
#[derive(Debug, Clone, Serialize)]
pub struct Analytics {
    pub room: String,
    pub replay_id: i64,
    /// `live` while the room runs, then `ended`.
    pub state: &'static str,
    pub started_at: u64,
    pub ended_at: Option<u64>,
    pub media_start_at: u64,
    pub resolution_s: u64,
    pub series: Series,
    pub chapters: Vec<Chapter>,
    pub retention: Vec<StayBucket>,
    pub totals: Totals,
    pub findings: Vec<Finding>,
    /// Events and points the archive's bounds dropped (the numbers above miss them).
    pub dropped: u64,
}

/// Most points one series has: a longer run is shown at a coarser step.
const MAX_STEPS: u64 = 100_000;

/// Builds the dashboard's view; `now` ends a live replay's axis.
pub fn analytics(replay: &ReplayRow, data: &ReplayData, media: &MediaMap, now: u64) -> Analytics {
    // A live run's axis ends now, or a minute after its last point (a run whose room
    // stopped reporting does not stretch on).
    let last_point_ms = data.series.last().map_or(replay.started_at, |p| p.t * 1000);
    let end_ms = replay
        .ended_at
        .unwrap_or_else(|| now.min(last_point_ms + 60_000))
        .max(replay.started_at);
    let span_s = (end_ms - replay.started_at) / 1000;
    let step = replay.resolution_s.max(span_s.div_ceil(MAX_STEPS));
    let series = fill(
        &data.series,
        &data.orders,
        replay.started_at / 1000,
        end_ms / 1000,
        step,
    );
    let chapters = chapters(data, media);
    let totals = Totals {
        peak_online: series.online.iter().copied().max().unwrap_or(0),
        joins: series.joins.iter().sum(),
        comments: series.comments.iter().sum(),
        likes: series.likes.iter().sum(),
        orders: series.orders.iter().sum(),
        units: series.units.iter().sum(),
        gmv_cents: series.gmv_cents.iter().sum(),
        replay_orders: data.replay_orders.iter().map(|o| o.orders).sum(),
    };
    let retention = data
        .stays
        .iter()
        .enumerate()
        .map(|(i, &viewers)| StayBucket {
            up_to_s: STAY_BOUNDS_SECS.get(i).copied(),
            viewers,
        })
        .collect();
    let findings = findings(&series, &chapters, &data.sale_events, replay.started_at);
    Analytics {
        room: replay.room.clone(),
        replay_id: replay.id,
        state: if replay.ended_at.is_some() {
            "ended"
        } else {
            "live"
        },
        started_at: replay.started_at,
        ended_at: replay.ended_at,
        media_start_at: media.start_at,
        resolution_s: step,
        series,
        chapters,
        retention,
        totals,
        findings,
        dropped: replay.dropped,
    }
}

/// The series as CSV, one row per step.
pub fn csv(series: &Series) -> String {
    let mut out = String::from("t,online,joins,leaves,comments,likes,orders,units,gmv_cents\n");
    for i in 0..series.t.len() {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            series.t[i],
            series.online[i],
            series.joins[i],
            series.leaves[i],
            series.comments[i],
            series.likes[i],
            series.orders[i],
            series.units[i],
            series.gmv_cents[i]
        ));
    }
    out
}

/// A sale of a replay's chapters: its id, price in cents and every order.
pub type SaleOrders = (String, u64, Vec<crate::inventory::model::Order>);

/// From the orders of a replay's sales (in chapter order): per sale what the live room
/// sold, per second of the run (`start..=end`, ms) the live orders, and per chapter what
/// replay `replay_id` sold. Cancelled and expired orders count as orders, not as units.
/// The same numbers the single process reads from SQLite.
pub fn order_totals(
    sales: &[SaleOrders],
    replay_id: i64,
    start: u64,
    end: u64,
) -> (Vec<SaleTotals>, Vec<OrderSecond>, Vec<ChapterOrders>) {
    use crate::inventory::model::{OrderSource, OrderState};
    let held = |s: OrderState| matches!(s, OrderState::Reserved | OrderState::Confirmed);
    let mut totals = Vec::new();
    let mut seconds: std::collections::BTreeMap<u64, OrderSecond> = Default::default();
    let mut chapters: std::collections::BTreeMap<u32, ChapterOrders> = Default::default();
    for (sale_id, price, orders) in sales {
        let mut t = SaleTotals {
            sale_id: sale_id.clone(),
            ..SaleTotals::default()
        };
        for o in orders {
            let units = if held(o.state) { u64::from(o.qty) } else { 0 };
            match (o.source, o.replay) {
                (OrderSource::Live, _) => {
                    t.orders += 1;
                    t.units += units;
                    t.gmv_cents += units * price;
                    if o.state == OrderState::Confirmed {
                        t.paid += u64::from(o.qty);
                    }
                    if (start..=end).contains(&o.created_at) {
                        let s = o.created_at / 1000;
                        let point = seconds.entry(s).or_insert(OrderSecond {
                            t: s,
                            ..OrderSecond::default()
                        });
                        point.orders += 1;
                        point.units += units;
                        point.gmv_cents += units * price;
                    }
                }
                (OrderSource::Replay, Some(r)) if r.replay_id == replay_id => {
                    let c = chapters.entry(r.chapter).or_insert(ChapterOrders {
                        chapter: r.chapter,
                        ..ChapterOrders::default()
                    });
                    c.orders += 1;
                    c.units += u64::from(o.qty);
                }
                _ => {}
            }
        }
        totals.push(t);
    }
    (
        totals,
        seconds.into_values().collect(),
        chapters.into_values().collect(),
    )
}
