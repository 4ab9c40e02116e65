//! Properties of the report's pure parts: the filled series, the media-time mapping and
//! the chapters.

use proptest::prelude::*;

use super::report::{MediaMap, OrderSecond, ReplayData, RtpAnchor, SaleTotals, chapters, fill};
use super::sqlite::{ChapterEdit, SeriesRow};

fn row(t: u64, online: u64, comments: u64) -> SeriesRow {
    SeriesRow {
        t,
        online,
        joins: 1,
        leaves: 0,
        comments,
        likes: 2,
    }
}

proptest! {
    /// Every step from start to end is present once, nothing counted is lost or
    /// invented, and online carries the last known count over gaps.
    #[test]
    fn the_filled_series_has_every_step_and_keeps_every_count(
        points in proptest::collection::btree_map(0u64..600, (0u64..5_000, 0u64..50), 0..200),
        orders in proptest::collection::vec((0u64..600, 1u64..5), 0..50),
        step in 1u64..30,
    ) {
        let rows: Vec<SeriesRow> = points.iter().map(|(&t, &(o, c))| row(1_000 + t, o, c)).collect();
        let orders: Vec<OrderSecond> = orders
            .iter()
            .map(|&(t, n)| OrderSecond { t: 1_000 + t, orders: n, units: n, gmv_cents: 100 * n })
            .collect();
        let s = fill(&rows, &orders, 1_000, 1_599, step);
        let start = 1_000 / step * step;
        prop_assert_eq!(s.t.len() as u64, (1_599 - start) / step + 1);
        for w in s.t.windows(2) {
            prop_assert_eq!(w[1] - w[0], step);
        }
        prop_assert_eq!(s.comments.iter().sum::<u64>(), rows.iter().map(|r| r.comments).sum::<u64>());
        prop_assert_eq!(s.joins.iter().sum::<u64>(), rows.len() as u64);
        prop_assert_eq!(s.orders.iter().sum::<u64>(), orders.iter().map(|o| o.orders).sum::<u64>());
        if step == 1 {
            let mut last = 0;
            for (i, &t) in s.t.iter().enumerate() {
                if let Some(r) = rows.iter().find(|r| r.t == t) {
                    last = r.online;
                }
                prop_assert_eq!(s.online[i], last);
            }
        }
    }

    /// A link's media position comes from its frame's timestamp when the clock anchor
    /// vouches for it, whatever the wrap-around, and falls back to the wall clock when
    /// the timestamp is far from it.
    #[test]
    fn a_links_frame_is_placed_by_its_timestamp(
        anchor_rtp in any::<u32>(),
        anchor_ms in 0u64..10_000,
        frame_ms in 0u64..3_600_000,
        clock_error_ms in 0u64..2_000,
    ) {
        let start_at = 1_000_000;
        let map = MediaMap { start_at, anchors: vec![RtpAnchor { media_ms: anchor_ms, rtp: anchor_rtp }] };
        let position = anchor_ms + frame_ms;
        let rtp = anchor_rtp.wrapping_add((frame_ms * 90) as u32);
        // The reveal time on the wall clock is near, not exactly at, the frame's position.
        let at = start_at + position + clock_error_ms;
        prop_assert_eq!(map.media_ms(at, Some(rtp)), position);
        prop_assert_eq!(map.media_ms(at, None), position + clock_error_ms);
        let far = rtp.wrapping_add(90 * 60_000);
        prop_assert_eq!(map.media_ms(at, Some(far)), position + clock_error_ms);
    }
}

fn link(sale: &str, at: u64, title: &str) -> serde_json::Value {
    serde_json::json!({"at": at, "kind": "link", "sale_id": sale, "reveal_at": at + 3_000,
        "title": title, "image_url": "", "price_cents": 900, "online": 40})
}

#[test]
fn one_chapter_per_product_in_order_with_edits_and_sales() {
    let data = ReplayData {
        links: vec![
            link("a", 10_000, "Shirt"),
            link("b", 20_000, "Coat"),
            link("a", 30_000, "Shirt again"),
        ],
        edits: vec![ChapterEdit {
            sale_id: "b".into(),
            title: Some("Wool coat".into()),
            hidden: true,
        }],
        sales: vec![SaleTotals {
            sale_id: "a".into(),
            orders: 10,
            units: 10,
            paid: 4,
            gmv_cents: 9_000,
        }],
        ..ReplayData::default()
    };
    let map = MediaMap {
        start_at: 5_000,
        anchors: Vec::new(),
    };
    let got = chapters(&data, &map);
    let summary: Vec<_> = got
        .iter()
        .map(|c| {
            (
                c.index,
                c.sale_id.as_str(),
                c.title.as_str(),
                c.media_ms,
                c.hidden,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "a", "Shirt", 8_000, false),
            (2, "b", "Wool coat", 18_000, true)
        ],
        "a re-drop makes no second chapter; the anchor's title and hiding apply"
    );
    assert_eq!((got[0].orders, got[0].paid), (10, 4));
    assert!(
        (got[0].conversion - 0.25).abs() < 1e-9,
        "10 orders of 40 present"
    );
    assert_eq!(got[1].orders, 0);
}

#[test]
fn order_totals_count_live_orders_by_sale_and_second_and_replay_orders_by_chapter() {
    use crate::inventory::model::{Order, OrderSource, OrderState, ReplayRef};
    let order = |seq: u64, at: u64, qty: u32, state, replay: Option<(i64, u32)>| Order {
        id: format!("s-{seq}"),
        seq,
        sale_id: "s".into(),
        buyer: format!("b{seq}"),
        qty,
        key: "k".into(),
        state,
        created_at: at,
        expires_at: at + 1,
        updated_at: at,
        remaining_after: 0,
        source: if replay.is_some() {
            OrderSource::Replay
        } else {
            OrderSource::Live
        },
        replay: replay.map(|(replay_id, chapter)| ReplayRef { replay_id, chapter }),
    };
    let sales = vec![(
        "s".to_owned(),
        500,
        vec![
            order(1, 10_100, 2, OrderState::Confirmed, None),
            order(2, 10_900, 1, OrderState::Cancelled, None),
            order(3, 12_000, 1, OrderState::Reserved, None),
            order(4, 99_000, 1, OrderState::Reserved, Some((7, 1))),
            order(5, 99_500, 3, OrderState::Reserved, Some((8, 1))),
        ],
    )];
    let (totals, seconds, chapters) = super::report::order_totals(&sales, 7, 10_000, 20_000);
    let t = &totals[0];
    assert_eq!((t.orders, t.units, t.paid, t.gmv_cents), (3, 3, 2, 1_500));
    let per_second: Vec<_> = seconds.iter().map(|s| (s.t, s.orders, s.units)).collect();
    assert_eq!(per_second, [(10, 2, 2), (12, 1, 1)]);
    assert_eq!(
        chapters.len(),
        1,
        "another replay's orders are not this one's"
    );
    assert_eq!(
        (chapters[0].chapter, chapters[0].orders, chapters[0].units),
        (1, 1, 1)
    );
}
