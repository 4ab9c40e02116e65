//! Plain-language findings over a room's series: rules, not models. Each finding names
//! its moment (`at`, server ms) so the dashboard can open the replay there.

use serde::Serialize;

use super::report::{Chapter, Series};

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `online_drop`, `sold_out`, `comments_peak`, `online_peak`, `best_conversion`, `quiet`.
    pub kind: &'static str,
    /// The moment it is about (ms since the Unix epoch).
    pub at: u64,
    pub text: String,
}

/// Online must fall at least this much after a link for it to be a finding.
const DROP_PERCENT: u64 = 20;
/// How long after a link its drop is looked for.
const DROP_WINDOW_S: u64 = 120;
/// The fewest viewers at a drop for a fall to mean anything.
const DROP_MIN_VIEWERS: u64 = 5;
/// The shortest stretch without a comment or like that counts as quiet.
const QUIET_S: u64 = 60;

/// `ms` after `start` as `m:ss` (or `h:mm:ss`) into the live.
fn moment(at: u64, start: u64) -> String {
    let s = at.saturating_sub(start) / 1000;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02} into the live")
    } else {
        format!("{m}:{s:02} into the live")
    }
}

fn index_at(series: &Series, t_ms: u64) -> Option<usize> {
    let t = t_ms / 1000;
    match series.t.binary_search(&t) {
        Ok(i) => Some(i),
        Err(0) => None,
        Err(i) => Some(i - 1),
    }
}

/// Every rule over the series, in time order.
pub fn findings(
    series: &Series,
    chapters: &[Chapter],
    sale_events: &[serde_json::Value],
    started_at: u64,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let ms = |i: usize| series.t[i] * 1000;
    for c in chapters {
        let Some(i) = index_at(series, c.at) else {
            continue;
        };
        let before = series.online[i];
        let window_end = series.t[i] + DROP_WINDOW_S;
        let (low_i, low) = (i..series.t.len())
            .take_while(|&j| series.t[j] <= window_end)
            .map(|j| (j, series.online[j]))
            .min_by_key(|&(_, o)| o)
            .unwrap_or((i, before));
        if before >= DROP_MIN_VIEWERS && (before - low) * 100 >= before * DROP_PERCENT {
            let percent = (before - low) * 100 / before;
            out.push(Finding {
                kind: "online_drop",
                at: ms(low_i),
                text: format!(
                    "online fell {percent}% in the {} minutes after the {} link ({})",
                    DROP_WINDOW_S / 60,
                    c.title,
                    moment(c.at, started_at)
                ),
            });
        }
    }
    for e in sale_events {
        if e["state"].as_str() != Some("sold_out") {
            continue;
        }
        let sale = e["sale_id"].as_str().unwrap_or_default();
        let Some(c) = chapters.iter().find(|c| c.sale_id == sale) else {
            continue;
        };
        let at = e["at"].as_u64().unwrap_or(c.at);
        let took = at.saturating_sub(c.at) as f64 / 1000.0;
        let missed = c.clicked.saturating_sub(c.orders);
        let mut text = format!("the {} sold out in {took:.1} s", c.title);
        if missed > 0 {
            text.push_str(&format!("; {missed} viewers pressed Buy and got none"));
        }
        out.push(Finding {
            kind: "sold_out",
            at,
            text,
        });
    }
    if let Some((i, per_min)) = rolling_peak(&series.comments, &series.t)
        && per_min > 0
    {
        out.push(Finding {
            kind: "comments_peak",
            at: ms(i),
            text: format!(
                "comments peaked at {per_min} a minute ({})",
                moment(ms(i), started_at)
            ),
        });
    }
    if let Some((i, &peak)) = series
        .online
        .iter()
        .enumerate()
        .max_by_key(|&(i, o)| (*o, std::cmp::Reverse(i)))
        && peak > 0
    {
        out.push(Finding {
            kind: "online_peak",
            at: ms(i),
            text: format!(
                "online peaked at {peak} viewers ({})",
                moment(ms(i), started_at)
            ),
        });
    }
    let selling: Vec<&Chapter> = chapters.iter().filter(|c| c.orders > 0).collect();
    if selling.len() >= 2
        && let Some(best) = selling
            .iter()
            .max_by(|a, b| a.conversion.total_cmp(&b.conversion))
    {
        out.push(Finding {
            kind: "best_conversion",
            at: best.at,
            text: format!(
                "the {} converted best: {:.1}% of the {} viewers present ordered",
                best.title,
                best.conversion * 100.0,
                best.online_at_drop
            ),
        });
    }
    if let Some((start, len)) = longest_quiet(series) {
        out.push(Finding {
            kind: "quiet",
            at: ms(start),
            text: format!(
                "the room went quiet for {} with viewers present ({})",
                duration(len),
                moment(ms(start), started_at)
            ),
        });
    }
    out.sort_by_key(|f| f.at);
    out
}

fn duration(secs: u64) -> String {
    if secs >= 120 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// The busiest 60 s: its busiest step (the first, on a tie) and the sum over it.
fn rolling_peak(values: &[u64], t: &[u64]) -> Option<(usize, u64)> {
    let mut best: Option<(usize, usize, u64)> = None;
    let mut sum = 0;
    let mut tail = 0;
    for head in 0..values.len() {
        sum += values[head];
        while t[head] >= t[tail] + 60 {
            sum -= values[tail];
            tail += 1;
        }
        if best.is_none_or(|(_, _, b)| sum > b) {
            best = Some((tail, head, sum));
        }
    }
    best.map(|(tail, head, sum)| {
        let busiest = (tail..=head)
            .rev()
            .max_by_key(|&i| values[i])
            .unwrap_or(tail);
        (busiest, sum)
    })
}

/// The longest stretch (start index, seconds) of at least [`QUIET_S`] with viewers
/// online and no comment or like.
fn longest_quiet(s: &Series) -> Option<(usize, u64)> {
    let mut best: Option<(usize, u64)> = None;
    let mut start: Option<usize> = None;
    for i in 0..=s.t.len() {
        let quiet = i < s.t.len() && s.online[i] > 0 && s.comments[i] == 0 && s.likes[i] == 0;
        match (quiet, start) {
            (true, None) => start = Some(i),
            (false, Some(from)) => {
                let len = s.t[i - 1] - s.t[from] + s.t.get(1).map_or(1, |t1| t1 - s.t[0]);
                if len >= QUIET_S && best.is_none_or(|(_, b)| len > b) {
                    best = Some((from, len));
                }
                start = None;
            }
            _ => {}
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::report::{Chapter, Series, fill};
    use crate::archive::sqlite::SeriesRow;

    fn chapter(sale: &str, at: u64) -> Chapter {
        Chapter {
            index: 1,
            sale_id: sale.into(),
            title: sale.into(),
            image_url: None,
            price_cents: 100,
            at,
            media_ms: 0,
            reveal_rtp: None,
            hidden: false,
            online_at_drop: 100,
            shown: 90,
            clicked: 60,
            orders: 10,
            units_sold: 10,
            paid: 0,
            replay_orders: 0,
            conversion: 0.1,
        }
    }

    fn flat(secs: u64, online: u64) -> Vec<SeriesRow> {
        (0..secs)
            .map(|t| SeriesRow {
                t: 1000 + t,
                online,
                joins: 0,
                leaves: 0,
                comments: 1,
                likes: 1,
            })
            .collect()
    }

    fn series(rows: &[SeriesRow]) -> Series {
        fill(rows, &[], 1000, 1000 + rows.len() as u64 - 1, 1)
    }

    #[test]
    fn a_fall_after_a_link_is_named_with_its_size_and_product() {
        let mut rows = flat(600, 100);
        for r in rows.iter_mut().skip(130).take(60) {
            r.online = 68;
        }
        let s = series(&rows);
        let f = findings(&s, &[chapter("coat", 1_100_000)], &[], 1_000_000);
        let drop = f.iter().find(|f| f.kind == "online_drop").expect("a drop");
        assert!(drop.text.contains("fell 32%"), "{}", drop.text);
        assert!(
            drop.text.contains("coat link (1:40 into the live)"),
            "{}",
            drop.text
        );
        assert_eq!(drop.at, 1_130_000);
    }

    #[test]
    fn a_steady_room_has_no_drop_and_no_quiet_stretch() {
        let s = series(&flat(600, 100));
        let f = findings(&s, &[chapter("coat", 1_100_000)], &[], 1_000_000);
        assert!(
            f.iter()
                .all(|f| f.kind != "online_drop" && f.kind != "quiet")
        );
    }

    #[test]
    fn sold_out_says_how_fast_and_how_many_missed() {
        let s = series(&flat(60, 100));
        let events = [
            serde_json::json!({"at": 1_014_200, "kind": "sale", "sale_id": "shirt", "state": "sold_out", "remaining": 0}),
        ];
        let f = findings(&s, &[chapter("shirt", 1_010_000)], &events, 1_000_000);
        let sold = f.iter().find(|f| f.kind == "sold_out").unwrap();
        assert_eq!(
            sold.text,
            "the shirt sold out in 4.2 s; 50 viewers pressed Buy and got none"
        );
    }

    #[test]
    fn the_comment_peak_and_a_quiet_stretch_are_found() {
        let mut rows = flat(600, 50);
        for r in rows.iter_mut().skip(200).take(30) {
            r.comments = 10;
        }
        for r in rows.iter_mut().skip(400).take(90) {
            r.comments = 0;
            r.likes = 0;
        }
        let f = findings(&series(&rows), &[], &[], 1_000_000);
        let peak = f.iter().find(|f| f.kind == "comments_peak").unwrap();
        assert!(
            peak.text.starts_with("comments peaked at 330 a minute"),
            "{}",
            peak.text
        );
        assert_eq!(peak.at, 1_200_000, "the busy minute's busiest second");
        let quiet = f.iter().find(|f| f.kind == "quiet").unwrap();
        assert_eq!(quiet.at, 1_400_000);
        assert!(quiet.text.contains("quiet for 90 s"), "{}", quiet.text);
    }
}
