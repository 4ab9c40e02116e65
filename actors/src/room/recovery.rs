//! What a room must not lose when its core or its process does, and rebuilding a core
//! from it. A room whose core panicked restarts in place; in a cluster, a node taking
//! over a room whose owner died rebuilds it from the same state, kept in Redis. Carried
//! over: the room's title and state, who may join, slow mode, bans and mutes, the video's
//! status, the link on show and the frames links appear on, the sales' states, the like
//! count and the comment numbering. Everything else (members, the comment history, the
//! timeline) starts empty — in a restart it may be what made the core fail — and the
//! sessions join again.

use std::collections::{BTreeMap, BTreeSet};

use lockstep_protocol::{LinkCard, MediaInfo, RoomState, SaleState};
use serde::{Deserialize, Serialize};

use super::core::RoomCore;
use crate::config::RoomConfig;
use crate::sync::plain::Arc;

/// The part of a room that outlives its core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Durable {
    pub title: String,
    pub state: RoomState,
    pub allow_anonymous: bool,
    pub slow_mode_secs: u32,
    pub banned: BTreeSet<String>,
    /// Muted users and when their mutes end (ms since the Unix epoch).
    pub muted: BTreeMap<String, u64>,
    pub media: MediaInfo,
    pub link: Option<LinkCard>,
    pub sale_states: BTreeMap<String, SaleState>,
    pub reveal_frames: BTreeMap<String, Option<u32>>,
    pub likes_total: u64,
    pub next_comment_id: u64,
}

impl RoomCore {
    /// What must survive this core.
    pub fn durable(&self) -> Durable {
        Durable {
            title: self.title.clone(),
            state: self.state,
            allow_anonymous: self.allow_anonymous,
            slow_mode_secs: self.slow_mode_secs,
            banned: self.banned.iter().cloned().collect(),
            muted: self.muted.iter().map(|(u, t)| (u.clone(), *t)).collect(),
            media: self.media,
            link: self.link.clone(),
            sale_states: self
                .sale_states
                .iter()
                .map(|(s, st)| (s.clone(), *st))
                .collect(),
            reveal_frames: self
                .reveal_frames
                .iter()
                .map(|(s, f)| (s.clone(), *f))
                .collect(),
            likes_total: self.likes_total,
            next_comment_id: self.next_comment_id,
        }
    }

    /// A core for room `id` rebuilt from what outlived its predecessor.
    pub fn from_durable(
        id: String,
        cfg: Arc<RoomConfig>,
        now: u64,
        seed: u64,
        durable: Durable,
    ) -> RoomCore {
        let mut core = RoomCore::new(id, durable.title, cfg, now, seed);
        core.state = durable.state;
        core.allow_anonymous = durable.allow_anonymous;
        core.slow_mode_secs = durable.slow_mode_secs;
        core.banned = durable.banned.into_iter().collect();
        core.muted = durable.muted.into_iter().collect();
        core.media = durable.media;
        core.link = durable.link;
        core.sale_states = durable.sale_states.into_iter().collect();
        core.reveal_frames = durable.reveal_frames.into_iter().collect();
        core.likes_total = durable.likes_total;
        core.next_comment_id = durable.next_comment_id;
        core
    }

    /// A fresh core for the same room carrying over its settings and moderation.
    pub fn restarted(&self, now: u64, seed: u64) -> RoomCore {
        Self::from_durable(
            self.id.clone(),
            Arc::clone(&self.cfg),
            now,
            seed,
            self.durable(),
        )
    }
}
