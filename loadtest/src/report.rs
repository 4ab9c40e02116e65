//! What a run saw: counters and latency histograms, mergeable across worker processes
//! (HDR histograms travel as base64 of their V2 serialization), printed as a table and
//! written as JSON.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

/// A latency histogram in microseconds (1 µs to 1 hour, 3 significant figures).
#[derive(Debug, Clone)]
pub struct Hist(pub Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Hist {
    /// Records a value in microseconds (clamped into the histogram's range).
    pub fn record_us(&mut self, us: u64) {
        self.0.saturating_record(us.max(1));
    }

    pub fn merge(&mut self, other: &Hist) {
        // Both histograms have the same bounds, so adding cannot fail.
        self.0
            .add(&other.0)
            .expect("histograms with equal bounds merge");
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// p50/p90/p99/p999/max in milliseconds.
    pub fn summary_ms(&self) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        if self.0.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: ms(self.0.value_at_quantile(0.50)),
            p90: ms(self.0.value_at_quantile(0.90)),
            p99: ms(self.0.value_at_quantile(0.99)),
            p999: ms(self.0.value_at_quantile(0.999)),
            max: ms(self.0.max()),
            count: self.0.len(),
        }
    }
}

impl Serialize for Hist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::new();
        V2Serializer::new()
            .serialize(&self.0, &mut buf)
            .map_err(serde::ser::Error::custom)?;
        s.serialize_str(&STANDARD.encode(buf))
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD.decode(text).map_err(serde::de::Error::custom)?;
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(serde::de::Error::custom)?;
        let mut out = Hist::default();
        out.0.add(&h).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// Percentiles of one histogram, in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub count: u64,
}

/// A run's raw results, as one worker (or the merge of all) saw them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub target: String,
    /// Wall time of the measured window, seconds.
    pub duration_secs: f64,
    pub counters: BTreeMap<String, u64>,
    pub histograms: BTreeMap<String, Hist>,
    /// Per-second p99 latency (ms) of the main histogram, for plots.
    pub timeline: BTreeMap<u64, Hist>,
    /// Close codes seen, by code.
    pub close_codes: BTreeMap<u16, u64>,
    /// Scenario-specific values that do not merge by addition (set by worker 0).
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Report {
    pub fn new(scenario: &str, target: &str) -> Self {
        Self {
            scenario: scenario.into(),
            target: target.into(),
            ..Default::default()
        }
    }

    pub fn add(&mut self, counter: &str, n: u64) {
        *self.counters.entry(counter.into()).or_default() += n;
    }

    pub fn counter(&self, counter: &str) -> u64 {
        self.counters.get(counter).copied().unwrap_or(0)
    }

    pub fn hist(&mut self, name: &str) -> &mut Hist {
        self.histograms.entry(name.into()).or_default()
    }

    /// Folds another worker's report into this one: counters add, histograms merge,
    /// the window is the longest.
    pub fn merge(&mut self, other: &Report) {
        self.duration_secs = self.duration_secs.max(other.duration_secs);
        for (k, v) in &other.counters {
            self.add(k, *v);
        }
        for (k, h) in &other.histograms {
            self.hist(k).merge(h);
        }
        for (sec, h) in &other.timeline {
            self.timeline.entry(*sec).or_default().merge(h);
        }
        for (code, n) in &other.close_codes {
            *self.close_codes.entry(*code).or_default() += n;
        }
        for (k, v) in &other.extra {
            self.extra.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    /// The flat JSON summary scripts read (plus the raw report under `raw`).
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::json!({
            "scenario": self.scenario,
            "target": self.target,
            "duration_secs": self.duration_secs,
        });
        for (k, v) in &self.counters {
            out[k] = (*v).into();
        }
        for (k, h) in &self.histograms {
            out[format!("{k}_ms")] = serde_json::to_value(h.summary_ms()).expect("plain struct");
        }
        for (k, v) in &self.extra {
            out[k] = v.clone();
        }
        out["close_codes"] = serde_json::to_value(&self.close_codes).expect("plain map");
        out
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} against {} — {:.3}s measured\n",
            self.scenario, self.target, self.duration_secs
        );
        for (k, v) in &self.counters {
            out.push_str(&format!("  {k:<28} {v:>12}\n"));
        }
        for (k, v) in self.extra.iter().filter(|(_, v)| !v.is_array()) {
            out.push_str(&format!("  {k:<28} {v:>12}\n"));
        }
        if !self.close_codes.is_empty() {
            out.push_str(&format!("  {:<28} {:?}\n", "close codes", self.close_codes));
        }
        if !self.histograms.is_empty() {
            out.push_str(&format!(
                "  {:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}\n",
                "latency (ms)", "p50", "p90", "p99", "p999", "max", "count"
            ));
            for (k, h) in &self.histograms {
                let p = h.summary_ms();
                out.push_str(&format!(
                    "  {k:<16} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10}\n",
                    p.p50, p.p90, p.p99, p.p999, p.max, p.count
                ));
            }
        }
        out
    }
}

/// Reads a report JSON written by a worker (`--emit-report`).
pub fn parse_worker_report(text: &str) -> anyhow::Result<Report> {
    let mut de = serde_json::Deserializer::from_str(text.trim());
    Ok(Report::deserialize(&mut de)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_with(values: &[u64], counter: u64) -> Report {
        let mut r = Report::new("viewers", "lockstep");
        for v in values {
            r.hist("latency").record_us(*v);
        }
        r.add("delivered", counter);
        r.close_codes.insert(4001, 1);
        r
    }

    #[test]
    fn merging_worker_reports_equals_one_big_report() {
        let a: Vec<u64> = (1..=5_000).collect();
        let b: Vec<u64> = (5_001..=20_000).map(|v| v * 3).collect();
        let mut merged = report_with(&a, 10);
        // Through JSON, as worker processes send them.
        let wire = serde_json::to_string(&report_with(&b, 32)).unwrap();
        merged.merge(&parse_worker_report(&wire).unwrap());
        let all: Vec<u64> = a.iter().chain(b.iter()).copied().collect();
        let single = report_with(&all, 42);
        assert_eq!(merged.counter("delivered"), 42);
        assert_eq!(merged.close_codes[&4001], 2);
        let (m, s) = (
            merged.histograms["latency"].summary_ms(),
            single.histograms["latency"].summary_ms(),
        );
        assert_eq!(m, Percentiles { count: 20_000, ..s });
        assert!(
            (m.max - 60.0).abs() < 0.1,
            "max within histogram precision: {}",
            m.max
        );
    }

    #[test]
    fn empty_histogram_summarizes_to_zero() {
        assert_eq!(Hist::default().summary_ms(), Percentiles::default());
    }
}
