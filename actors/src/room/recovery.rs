//! Restarting a room whose core panicked. The shell contains the panic and builds a
//! fresh core from what a crash must not undo — the room's title and state, who may
//! join, slow mode, bans and mutes, the video's status, the link on show and the frames
//! links appear on, the like count and the comment numbering — while everything else (members, the comment
//! history, the timeline) starts empty: it may be what made the core fail. Every session
//! is closed with 1012 and the pages reconnect into the new core.

use super::core::RoomCore;
use crate::sync::plain::Arc;

impl RoomCore {
    /// A fresh core for the same room carrying over its settings and moderation.
    pub fn restarted(&self, now: u64, seed: u64) -> RoomCore {
        let mut fresh = RoomCore::new(
            self.id.clone(),
            self.title.clone(),
            Arc::clone(&self.cfg),
            now,
            seed,
        );
        fresh.state = self.state;
        fresh.allow_anonymous = self.allow_anonymous;
        fresh.slow_mode_secs = self.slow_mode_secs;
        fresh.banned = self.banned.clone();
        fresh.muted = self.muted.clone();
        fresh.media = self.media;
        fresh.link = self.link.clone();
        fresh.sale_states = self.sale_states.clone();
        fresh.reveal_frames = self.reveal_frames.clone();
        fresh.likes_total = self.likes_total;
        fresh.next_comment_id = self.next_comment_id;
        fresh
    }
}
