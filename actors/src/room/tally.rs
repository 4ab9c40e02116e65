//! What the room counts for its replay and analytics: per second, joins, leaves,
//! comments, likes and each product card's funnel steps (shown, clicked; one per
//! session), how long leaving viewers stayed, and the timeline events not yet archived.
//! The room's shell drains it once a second into an [`ArchiveBatch`] for the archive.

use std::collections::{HashMap, HashSet};

use lockstep_protocol::{FunnelStep, Role};

use super::core::{RoomCore, SessionId};
use super::timeline::TimelineEvent;
use crate::archive::{ArchiveBatch, FunnelDelta, STAY_BOUNDS_SECS};

/// Counts since the last drain, and the funnel's sessions seen so far.
#[derive(Debug, Default)]
pub(super) struct Tally {
    joins: u64,
    leaves: u64,
    comments: u64,
    likes: u64,
    stays: [u64; STAY_BOUNDS_SECS.len() + 1],
    /// Per sale and step: sessions that already reported it (each counts once).
    seen: HashMap<(String, FunnelStep), HashSet<SessionId>>,
    /// Per sale and step: new sessions since the last drain.
    fresh: HashMap<(String, FunnelStep), u64>,
    events: Vec<TimelineEvent>,
    events_dropped: u64,
}

impl Tally {
    pub(super) fn joined(&mut self) {
        self.joins += 1;
    }

    pub(super) fn left(&mut self, session: SessionId, stayed_ms: u64) {
        self.leaves += 1;
        // Session ids are per connection: a session that left never reports again.
        for sessions in self.seen.values_mut() {
            sessions.remove(&session);
        }
        let secs = stayed_ms / 1000;
        let bucket = STAY_BOUNDS_SECS
            .iter()
            .position(|&bound| secs < bound)
            .unwrap_or(STAY_BOUNDS_SECS.len());
        self.stays[bucket] += 1;
    }

    pub(super) fn commented(&mut self) {
        self.comments += 1;
    }

    pub(super) fn liked(&mut self, count: u64) {
        self.likes += count;
    }

    /// Keeps `event` for the archive; beyond `max` waiting events the newest comments and
    /// likes are dropped (and counted) until the next drain. Links, sales and moderation
    /// always stay: they make the replay's chapters and its bans.
    pub(super) fn event(&mut self, event: &TimelineEvent, max: usize) {
        if self.events.len() < max || !event.kind.is_chatter() {
            self.events.push(event.clone());
        } else {
            self.events_dropped += 1;
        }
    }

    fn funnel(&mut self, session: SessionId, sale_id: &str, step: FunnelStep) {
        let key = (sale_id.to_owned(), step);
        if self.seen.entry(key.clone()).or_default().insert(session) {
            *self.fresh.entry(key).or_default() += 1;
        }
    }

    fn drain(&mut self, at: u64, online: u64) -> ArchiveBatch {
        let mut funnel: HashMap<String, FunnelDelta> = HashMap::new();
        for ((sale_id, step), n) in self.fresh.drain() {
            let delta = funnel
                .entry(sale_id.clone())
                .or_insert_with(|| FunnelDelta {
                    sale_id,
                    shown: 0,
                    clicked: 0,
                });
            match step {
                FunnelStep::Shown => delta.shown += n,
                FunnelStep::Clicked => delta.clicked += n,
            }
        }
        let mut funnel: Vec<FunnelDelta> = funnel.into_values().collect();
        funnel.sort_by(|a, b| a.sale_id.cmp(&b.sale_id));
        ArchiveBatch {
            at,
            online,
            joins: std::mem::take(&mut self.joins),
            leaves: std::mem::take(&mut self.leaves),
            comments: std::mem::take(&mut self.comments),
            likes: std::mem::take(&mut self.likes),
            stays: std::mem::take(&mut self.stays).to_vec(),
            funnel,
            events: std::mem::take(&mut self.events),
            events_dropped: std::mem::take(&mut self.events_dropped),
        }
    }
}

impl RoomCore {
    /// The viewer page reports a funnel step of a product card. Only sales whose link
    /// was dropped in this room count, once per session and step; anything else is
    /// ignored (the message has no answer).
    pub fn funnel(&mut self, session: SessionId, sale_id: &str, step: FunnelStep) {
        let is_viewer = self
            .members
            .get(&session)
            .is_some_and(|m| m.identity.role == Role::Viewer);
        if is_viewer && self.reveal_frames.contains_key(sale_id) {
            self.tally.funnel(session, sale_id, step);
        }
    }

    /// Everything counted since the last call, with the online count at `now`.
    pub fn take_archive(&mut self, now: u64) -> ArchiveBatch {
        let online = self.online();
        self.tally.drain(now, online)
    }
}
