//! The room's memory of what happened and when: an ordered event timeline and the
//! online-count time series. Both are bounded rings; replay and analytics read them.

use std::collections::VecDeque;

use lockstep_protocol::{ModerationAction, RoomState};
use serde::Serialize;

/// One thing that happened in a room.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimelineKind {
    State {
        state: RoomState,
    },
    Comment {
        id: u64,
        user: String,
        name: String,
        text: String,
        anchor: bool,
    },
    /// Likes received during one tick (taps are aggregated, not recorded one by one).
    Likes {
        count: u64,
    },
    Pinned {
        comment_id: Option<u64>,
    },
    Moderation {
        action: ModerationAction,
        user: String,
    },
    SlowMode {
        seconds: u32,
    },
    /// The anchor dropped a sale's link, to be revealed at `reveal_at` (on the video
    /// frame `reveal_rtp`, when the room has video). The product as the card showed it
    /// and the viewers present make the replay's chapter.
    Link {
        sale_id: String,
        reveal_at: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        reveal_rtp: Option<u32>,
        title: String,
        image_url: String,
        price_cents: u64,
        online: u64,
    },
    /// A sale changed state.
    Sale {
        sale_id: String,
        state: lockstep_protocol::SaleState,
        remaining: u32,
    },
}

impl TimelineKind {
    /// The `kind` tag it is written with.
    pub fn name(&self) -> &'static str {
        match self {
            Self::State { .. } => "state",
            Self::Comment { .. } => "comment",
            Self::Likes { .. } => "likes",
            Self::Pinned { .. } => "pinned",
            Self::Moderation { .. } => "moderation",
            Self::SlowMode { .. } => "slow_mode",
            Self::Link { .. } => "link",
            Self::Sale { .. } => "sale",
        }
    }

    /// Comments and likes: what a busy room has a lot of, and the only events bounds
    /// may drop (links, sales and moderation make chapters and bans).
    pub fn is_chatter(&self) -> bool {
        matches!(self, Self::Comment { .. } | Self::Likes { .. })
    }
}

/// A timeline entry with its server time (ms since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEvent {
    pub at: u64,
    #[serde(flatten)]
    pub kind: TimelineKind,
}

/// A bounded ring of values; the oldest is dropped when full, and drops are counted.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    items: VecDeque<T>,
    cap: usize,
    dropped: u64,
}

impl<T> Ring<T> {
    pub fn new(cap: usize) -> Self {
        Self {
            items: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    pub fn push(&mut self, item: T) {
        if self.items.len() == self.cap {
            self.items.pop_front();
            self.dropped += 1;
        }
        self.items.push_back(item);
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.items.iter()
    }

    /// Entries that fell off the front because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.items.retain(keep);
    }
}

/// One sample of the online count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OnlinePoint {
    pub at: u64,
    pub online: u64,
}
