//! Simulcast for one subscriber (pure): which layer it should get (an explicit request
//! from the page, or the highest one its estimated capacity can take), when a switch may
//! happen (only on a keyframe of the new layer), and the sequence-number rewriting that
//! makes the switches invisible to the subscriber's decoder.

use std::collections::HashMap;

/// A publisher's simulcast layer, by its RID (`""` when the publisher sends one layer).
pub type LayerId = String;

/// What a subscriber asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// The highest layer its bandwidth estimate allows.
    Auto,
    Low,
    Mid,
    High,
}

impl Preference {
    /// Parses the protocol's names (`auto`, `low`, `mid`, `high`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "auto" => Self::Auto,
            "low" => Self::Low,
            "mid" => Self::Mid,
            "high" => Self::High,
            _ => return None,
        })
    }
}

/// Picks a layer from those on offer, given as (id, measured bits/s) in any order.
pub fn choose_layer(
    pref: Preference,
    layers: &[(LayerId, u64)],
    estimate_bps: u64,
) -> Option<LayerId> {
    let mut sorted: Vec<&(LayerId, u64)> = layers.iter().collect();
    sorted.sort_by_key(|(id, bps)| (*bps, id.clone()));
    let last = sorted.len().checked_sub(1)?;
    let pick = match pref {
        Preference::Low => 0,
        Preference::High => last,
        Preference::Mid => last.div_ceil(2),
        Preference::Auto => {
            let budget = estimate_bps.saturating_mul(9) / 10;
            sorted
                .iter()
                .rposition(|(_, bps)| *bps <= budget)
                .unwrap_or(0)
        }
    };
    Some(sorted[pick.min(last)].0.clone())
}

/// [`choose_layer`] for a subscriber already on `current`: with `Auto` it stays there
/// while that layer's rate is within the whole estimate (moving up needs 90 %), so a
/// layer whose rate wobbles around the margin does not make it flap.
pub fn next_layer(
    pref: Preference,
    layers: &[(LayerId, u64)],
    estimate_bps: u64,
    current: Option<&LayerId>,
) -> Option<LayerId> {
    let chosen = choose_layer(pref, layers, estimate_bps)?;
    let rate = |id: &LayerId| layers.iter().find(|(l, _)| l == id).map(|(_, bps)| *bps);
    match current.and_then(|c| Some((c, rate(c)?))) {
        Some((current, bps))
            if pref == Preference::Auto
                && bps <= estimate_bps
                && bps > rate(&chosen).unwrap_or(0) =>
        {
            Some(current.clone())
        }
        _ => Some(chosen),
    }
}

/// What a subscriber's receiver reported during one measuring window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Feedback {
    /// Its latest REMB: what the receiver estimates it can take, bits/s.
    pub remb_bps: Option<u64>,
    /// The highest fraction of video packets its receiver reports said were lost (0–1).
    pub loss: Option<f64>,
}

impl Feedback {
    /// Folds in a later report of the same window: the latest REMB, the worst loss.
    pub fn add(&mut self, later: Feedback) {
        self.remb_bps = later.remb_bps.or(self.remb_bps);
        self.loss = match (self.loss, later.loss) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Why an estimate backed off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// The subscriber's send queue dropped packets.
    Queue,
    /// Its receiver reported more than 10 % loss.
    Loss,
    /// Its receiver's REMB was clearly below what it was sent.
    Remb,
}

impl Backoff {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Loss => "loss",
            Self::Remb => "remb",
        }
    }
}

/// A subscriber's capacity estimate. From the server's side: halve toward what was
/// actually sent when its send queue had to drop packets or its receiver reports more
/// than 10 % loss, grow slowly while neither happened. From the receiver's side: a REMB
/// under 60 % of what it is being sent, two windows in a row (the player says it cannot
/// keep up, and a single dip of a busy player is not enough), caps the estimate at the
/// REMB for [`Estimator::HOLD_WINDOWS`] windows, lifted as the REMB rises; afterwards
/// the estimate grows again from there, which tries the next layer up. A REMB near or
/// above what is sent changes nothing: a receiver's estimate is bounded by what it
/// gets, so it cannot ask for a layer it has not seen.
#[derive(Debug, Clone)]
pub struct Estimator {
    bps: u64,
    quiet_windows: u32,
    /// The REMB cap and the windows it still holds.
    ceiling: Option<(u64, u32)>,
    /// Windows in a row whose REMB was under 60 % of what was sent.
    short_windows: u32,
}

impl Estimator {
    const FLOOR_BPS: u64 = 100_000;
    const CEILING_BPS: u64 = 50_000_000;
    /// Windows (about a second each) a REMB cap holds after the receiver last said it
    /// could not keep up.
    pub const HOLD_WINDOWS: u32 = 10;

    pub fn new(initial_bps: u64) -> Self {
        Self {
            bps: initial_bps.clamp(Self::FLOOR_BPS, Self::CEILING_BPS),
            quiet_windows: 0,
            ceiling: None,
            short_windows: 0,
        }
    }

    /// The estimate, bits/s.
    pub fn bps(&self) -> u64 {
        self.ceiling.map_or(self.bps, |(cap, _)| self.bps.min(cap))
    }

    /// One measuring window (about a second): what was sent, how many packets the
    /// subscriber's queue dropped, and what its receiver reported. Returns why it
    /// backed off, if it did.
    pub fn window(&mut self, sent_bps: u64, dropped: u64, feedback: Feedback) -> Option<Backoff> {
        let loss = feedback.loss.filter(|l| *l > 0.10);
        let mut backoff = None;
        if dropped > 0 {
            self.cut(self.bps.min(sent_bps) * 85 / 100);
            backoff = Some(Backoff::Queue);
        } else if let Some(loss) = loss {
            self.cut((self.bps.min(sent_bps) as f64 * (1.0 - 0.5 * loss)) as u64);
            backoff = Some(Backoff::Loss);
        } else {
            self.quiet_windows += 1;
            if self.quiet_windows >= 2 {
                self.bps = (self.bps * 11 / 10).min(Self::CEILING_BPS);
            }
        }
        let short = feedback.remb_bps.filter(|remb| *remb < sent_bps * 6 / 10);
        self.short_windows = if short.is_some() {
            self.short_windows + 1
        } else {
            0
        };
        if let Some(remb) = short.filter(|_| self.short_windows >= 2) {
            let remb = remb.max(Self::FLOOR_BPS);
            self.ceiling = Some((remb, Self::HOLD_WINDOWS));
            self.bps = self.bps.min(remb);
            self.quiet_windows = 0;
            backoff = backoff.or(Some(Backoff::Remb));
        } else if let Some((cap, left)) = &mut self.ceiling {
            if let Some(remb) = feedback.remb_bps.filter(|r| *r > *cap) {
                *cap = remb;
            }
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.bps = self.bps.min(*cap);
                self.ceiling = None;
            }
        }
        backoff
    }

    fn cut(&mut self, bps: u64) {
        self.bps = bps.max(Self::FLOOR_BPS);
        self.quiet_windows = 0;
    }
}

/// What to do with one video packet for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Send it with this sequence number.
    Send { seq: u16 },
    /// Not for this subscriber (another layer, or waiting for a keyframe).
    Skip,
}

/// Per-subscriber video state: current and wanted layer, sequence rewriting.
#[derive(Debug, Clone, Default)]
pub struct LayerSwitch {
    current: Option<LayerId>,
    target: Option<LayerId>,
    seq_offset: u16,
    last_out: Option<u16>,
    switches: u64,
}

impl LayerSwitch {
    /// The layer being forwarded now.
    pub fn current(&self) -> Option<&LayerId> {
        self.current.as_ref()
    }

    /// The layer wanted; differs from `current` until its next keyframe.
    pub fn target(&self) -> Option<&LayerId> {
        self.target.as_ref()
    }

    /// Completed switches (the first layer counts as one).
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// Wants `layer` from now on. True when this starts a wait for its keyframe (the
    /// caller then asks the publisher for one).
    pub fn want(&mut self, layer: LayerId) -> bool {
        if self.target.as_ref() == Some(&layer) {
            return false;
        }
        let waiting = self.current.as_ref() != Some(&layer);
        self.target = Some(layer);
        waiting
    }

    /// The stream's source changed (an edge pulls from a new owner): the subscriber waits
    /// for the new source's next keyframe of the wanted layer, and its sequence numbers go
    /// on from the last one sent, as after a layer switch. True when a keyframe must be
    /// asked for.
    pub fn restart(&mut self) -> bool {
        if self.target.is_none() {
            self.target = self.current.clone();
        }
        self.current = None;
        self.target.is_some()
    }

    /// Decides one packet of `layer` with sequence number `seq`; `keyframe` if it starts
    /// a keyframe.
    pub fn packet(&mut self, layer: &LayerId, seq: u16, keyframe: bool) -> Forward {
        if self.target.as_ref() == Some(layer) && self.current.as_ref() != Some(layer) {
            if !keyframe {
                return Forward::Skip;
            }
            let next = self.last_out.map_or(seq, |last| last.wrapping_add(1));
            self.seq_offset = next.wrapping_sub(seq);
            self.current = Some(layer.clone());
            self.switches += 1;
        }
        if self.current.as_ref() != Some(layer) {
            return Forward::Skip;
        }
        let out = seq.wrapping_add(self.seq_offset);
        // Track the highest sequence sent (with wrap-around), so a switch continues it.
        if self
            .last_out
            .is_none_or(|last| out.wrapping_sub(last) < u16::MAX / 2)
        {
            self.last_out = Some(out);
        }
        Forward::Send { seq: out }
    }
}

/// One subscriber's audio sequence numbers: the source's own, shifted so that they go on
/// from the last one sent when the source changes (audio has no layers to switch and no
/// keyframe to wait for). A receiver drops a number it has seen as a replay, and one far
/// behind can make it lose count of the wraps it uses for decryption.
#[derive(Debug, Default)]
pub struct AudioSequence {
    offset: u16,
    last_out: Option<u16>,
    restarting: bool,
}

impl AudioSequence {
    /// The source changed: the next packet continues from the last number sent.
    pub fn restart(&mut self) {
        self.restarting = true;
    }

    /// The number to send a packet numbered `seq` by its source under.
    pub fn packet(&mut self, seq: u16) -> u16 {
        if std::mem::take(&mut self.restarting)
            && let Some(last) = self.last_out
        {
            self.offset = last.wrapping_add(1).wrapping_sub(seq);
        }
        let out = seq.wrapping_add(self.offset);
        if self
            .last_out
            .is_none_or(|last| out.wrapping_sub(last) < u16::MAX / 2)
        {
            self.last_out = Some(out);
        }
        out
    }
}

/// Bits per second per layer over a sliding one-second window (pure; time passed in ms).
#[derive(Debug, Default)]
pub struct LayerRates {
    window_start_ms: u64,
    bytes: HashMap<LayerId, u64>,
    rates: HashMap<LayerId, u64>,
}

impl LayerRates {
    /// Counts a packet; closes the window after a second and returns true then.
    pub fn add(&mut self, layer: &LayerId, bytes: usize, now_ms: u64) -> bool {
        if self.window_start_ms == 0 {
            self.window_start_ms = now_ms;
        }
        *self.bytes.entry(layer.clone()).or_default() += bytes as u64;
        let elapsed = now_ms.saturating_sub(self.window_start_ms);
        if elapsed < 1000 {
            return false;
        }
        self.rates = self
            .bytes
            .drain()
            .map(|(layer, b)| (layer, b * 8 * 1000 / elapsed))
            .collect();
        self.window_start_ms = now_ms;
        true
    }

    /// The last window's rates, as (layer, bits/s).
    pub fn rates(&self) -> Vec<(LayerId, u64)> {
        self.rates.iter().map(|(l, r)| (l.clone(), *r)).collect()
    }
}

#[cfg(test)]
#[path = "layers_tests.rs"]
mod tests;
