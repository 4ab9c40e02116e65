//! A dependency-free SVG plot of a report: delivery latency (p50 and p99) per second for
//! the fan-out scenarios, or the displayed-at offsets of a link drop, sorted.

use crate::report::Report;

const W: f64 = 800.0;
const H: f64 = 400.0;
const PAD: f64 = 50.0;

/// A named, coloured line of (x, y) points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// Renders the report as an SVG document.
pub fn svg(report: &Report) -> String {
    let (title, series): (String, Vec<Series<'_>>) = match report.extra.get("displayed_offsets_ms")
    {
        Some(offsets) => {
            let mut v: Vec<f64> = offsets
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_f64())
                .collect();
            v.sort_by(f64::total_cmp);
            let points = v.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect();
            (
                "link drop: displayed − reveal_at (ms), clients sorted".into(),
                vec![("offset", "#1f77b4", points)],
            )
        }
        None => {
            let p = |q: f64| {
                report
                    .timeline
                    .iter()
                    .map(move |(s, h)| (*s as f64, h.0.value_at_quantile(q) as f64 / 1000.0))
                    .collect()
            };
            (
                format!(
                    "{} against {}: delivery latency (ms) per second",
                    report.scenario, report.target
                ),
                vec![("p50", "#1f77b4", p(0.5)), ("p99", "#d62728", p(0.99))],
            )
        }
    };
    let all = series.iter().flat_map(|(_, _, s)| s.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, 0f64, f64::MIN);
    for (x, y) in all {
        (x0, x1, y0, y1) = (x0.min(*x), x1.max(*x), y0.min(*y), y1.max(*y));
    }
    if x0 > x1 {
        (x0, x1, y1) = (0.0, 1.0, 1.0);
    }
    let (xs, ys) = (
        (W - 2.0 * PAD) / (x1 - x0).max(1e-9),
        (H - 2.0 * PAD) / (y1 - y0).max(1e-9),
    );
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{PAD}\" y=\"25\" font-size=\"14\">{title}</text>\n\
         <line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <text x=\"5\" y=\"{PAD}\">{y1:.1}</text><text x=\"5\" y=\"{b}\">{y0:.1}</text><text x=\"{PAD}\" y=\"{bl}\">{x0:.0}</text><text x=\"{rl}\" y=\"{bl}\">{x1:.0}</text>\n",
        b = H - PAD,
        r = W - PAD,
        bl = H - PAD + 15.0,
        rl = W - PAD - 30.0,
    );
    for (i, (name, color, points)) in series.iter().enumerate() {
        let pts: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", PAD + (x - x0) * xs, H - PAD - (y - y0) * ys))
            .collect();
        out.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
            pts.join(" ")
        ));
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{name}</text>\n",
            W - PAD - 60.0,
            PAD + 15.0 * i as f64
        ));
    }
    out.push_str("</svg>\n");
    out
}
