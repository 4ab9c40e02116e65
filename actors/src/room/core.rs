//! The room's pure state machine. Inputs go in through methods that take `now` (server ms
//! since the Unix epoch); everything the room wants done comes out of [`RoomCore::poll_output`].
//! It never reads a clock, touches a socket or knows about actors.
//!
//! Owns: who is in the room, the comment stream (limits, filter, sampling, recent history),
//! like aggregation, the online count and its time series, moderation state, and the
//! timeline of room events.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use lockstep_protocol::{
    Comment, LikeTally, LinkCard, MediaInfo, ModerationAction, PROTOCOL_VERSION, Role,
    RoomSnapshot, RoomState, SaleState, SaleStock, ServerMsg, You,
};
use rand::{SeedableRng, rngs::SmallRng};

use super::comments;
use super::error::RoomError;
use super::tally::Tally;
use super::timeline::{OnlinePoint, Ring, TimelineEvent, TimelineKind};
use crate::config::RoomConfig;
use crate::limits::TokenBucket;
use crate::sync::plain::Arc;

/// Identifies one connection across the server (and across a cluster's nodes: each node
/// numbers its sessions from its own random base).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct SessionId(pub u64);

/// Who a session is, as established by its token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// Token subject; `None` for anonymous viewers.
    pub user: Option<String>,
    pub name: String,
    pub role: Role,
}

/// What the room asks its shell to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send to every session in the room (encode once).
    Broadcast(ServerMsg),
    /// Send to one session.
    Send(SessionId, ServerMsg),
    /// Close one session (after what was queued to it).
    Close(SessionId, lockstep_protocol::CloseCode),
    /// A user was banned: end whatever else they hold in the room (video subscriptions
    /// opened over WHEP have no room session to close).
    Banned(String),
    /// The room is over: close every session and release the actor.
    Release,
}

#[derive(Debug)]
pub(super) struct Member {
    pub(super) identity: Identity,
    pub(super) joined_at: u64,
}

/// Per-user comment state, kept across reconnects so leaving does not reset limits.
#[derive(Debug)]
pub(super) struct UserLimits {
    pub(super) bucket: TokenBucket,
    pub(super) last_comment_at: Option<u64>,
    pub(super) sessions: u32,
    pub(super) last_seen: u64,
}

/// The room state machine.
#[derive(Debug)]
pub struct RoomCore {
    pub(super) id: String,
    pub(super) title: String,
    pub(super) state: RoomState,
    pub(super) cfg: Arc<RoomConfig>,
    pub(super) members: HashMap<SessionId, Member>,
    pub(super) viewers: u64,
    pub(super) users: HashMap<String, UserLimits>,
    pub(super) recent: Ring<Comment>,
    pub(super) next_comment_id: u64,
    pub(super) tick_viewer_comments: Vec<Comment>,
    pub(super) tick_anchor_comments: Vec<Comment>,
    pub(super) likes_total: u64,
    pub(super) likes_delta: u64,
    pub(super) pinned: Option<Comment>,
    pub(super) slow_mode_secs: u32,
    pub(super) allow_anonymous: bool,
    pub(super) media: MediaInfo,
    pub(super) muted: HashMap<String, u64>,
    pub(super) banned: HashSet<String>,
    pub(super) timeline: Ring<TimelineEvent>,
    pub(super) online_series: Ring<OnlinePoint>,
    pub(super) last_online_at: u64,
    pub(super) last_online_sent: Option<u64>,
    pub(super) empty_since: Option<u64>,
    pub(super) link: Option<LinkCard>,
    pub(super) sale_states: HashMap<String, SaleState>,
    /// The video frame (RTP timestamp) each dropped link appears on, fixed by its first
    /// drop: a re-drop repeats the first answer.
    pub(super) reveal_frames: HashMap<String, Option<u32>>,
    pub(super) sale_stock: BTreeMap<String, SaleStock>,
    pub(super) rng: SmallRng,
    pub(super) out: VecDeque<Output>,
    /// Counts and events for the archive (replay and analytics).
    pub(super) tally: Tally,
}

impl RoomCore {
    /// A new room in the `created` state. `seed` drives comment sampling.
    pub fn new(id: String, title: String, cfg: Arc<RoomConfig>, now: u64, seed: u64) -> Self {
        let mut core = Self {
            recent: Ring::new(cfg.recent_comments),
            timeline: Ring::new(cfg.timeline_max_events),
            online_series: Ring::new(cfg.online_series_max_points),
            id,
            title,
            state: RoomState::Created,
            members: HashMap::new(),
            viewers: 0,
            users: HashMap::new(),
            next_comment_id: 1,
            tick_viewer_comments: Vec::new(),
            tick_anchor_comments: Vec::new(),
            likes_total: 0,
            likes_delta: 0,
            pinned: None,
            slow_mode_secs: 0,
            allow_anonymous: cfg.allow_anonymous,
            media: MediaInfo::default(),
            muted: HashMap::new(),
            banned: HashSet::new(),
            last_online_at: now,
            last_online_sent: None,
            empty_since: Some(now),
            link: None,
            sale_states: HashMap::new(),
            reveal_frames: HashMap::new(),
            sale_stock: BTreeMap::new(),
            rng: SmallRng::seed_from_u64(seed),
            out: VecDeque::new(),
            tally: Tally::default(),
            cfg,
        };
        core.record(
            now,
            TimelineKind::State {
                state: RoomState::Created,
            },
        );
        core
    }

    /// Whether viewers without a token may join.
    pub fn set_allow_anonymous(&mut self, allowed: bool) {
        self.allow_anonymous = allowed;
    }

    /// The room's video went live or away: remembered for the snapshot and broadcast.
    pub fn set_media(&mut self, media: MediaInfo) {
        if self.media != media {
            self.media = media;
            self.out
                .push_back(Output::Broadcast(ServerMsg::Media { media }));
        }
    }

    pub fn config(&self) -> &RoomConfig {
        &self.cfg
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    /// Whether viewers without a token may join.
    pub fn allows_anonymous(&self) -> bool {
        self.allow_anonymous
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn state(&self) -> RoomState {
        self.state
    }

    /// Viewers currently in the room (anchors not counted).
    pub fn online(&self) -> u64 {
        self.viewers
    }

    pub fn likes_total(&self) -> u64 {
        self.likes_total
    }

    pub fn timeline(&self) -> impl Iterator<Item = &TimelineEvent> {
        self.timeline.iter()
    }

    /// Timeline events that fell off the in-memory ring.
    pub fn timeline_dropped(&self) -> u64 {
        self.timeline.dropped()
    }

    pub fn online_series(&self) -> impl Iterator<Item = &OnlinePoint> {
        self.online_series.iter()
    }

    /// The next thing the shell should do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The snapshot a joining session receives.
    pub fn snapshot(&self) -> RoomSnapshot {
        RoomSnapshot {
            id: self.id.clone(),
            title: self.title.clone(),
            state: self.state,
            online: self.viewers,
            likes: self.likes_total,
            recent_comments: self.recent.iter().cloned().collect(),
            pinned: self.pinned.clone(),
            slow_mode: self.slow_mode_secs,
            allow_anonymous: self.allow_anonymous,
            link: self.link.clone(),
            media: self.media,
        }
    }

    /// Whether `session` is this room's anchor.
    pub fn is_anchor(&self, session: SessionId) -> bool {
        self.members
            .get(&session)
            .is_some_and(|m| m.identity.role == Role::Anchor)
    }

    /// The anchor's link drop was accepted by the sale: announce it to everyone now,
    /// ahead of `card.reveal_at`, and answer the anchor. `frame` is the video frame this
    /// drop asked for; the card shows the frame of the sale's first drop (`first`: the
    /// sale took this drop's reveal time), so a re-drop repeats it.
    pub fn link_dropped(
        &mut self,
        now: u64,
        session: SessionId,
        req: Option<u64>,
        mut card: LinkCard,
        frame: Option<u32>,
        first: bool,
    ) {
        card.reveal_rtp = *self
            .reveal_frames
            .entry(card.sale_id.clone())
            .or_insert(if first { frame } else { None });
        self.record(
            now,
            TimelineKind::Link {
                sale_id: card.sale_id.clone(),
                reveal_at: card.reveal_at,
                reveal_rtp: card.reveal_rtp,
                title: card.title.clone(),
                image_url: card.image_url.clone(),
                price_cents: card.sale_price_cents,
                online: self.online(),
            },
        );
        self.sale_states
            .entry(card.sale_id.clone())
            .or_insert(SaleState::Open);
        self.link = Some(card.clone());
        self.out
            .push_back(Output::Broadcast(ServerMsg::Link { link: card }));
        self.out.push_back(Output::Send(
            session,
            ServerMsg::Ack {
                id: req,
                comment_id: None,
            },
        ));
    }

    /// A sale's stock or state changed. State changes are broadcast at once; stock
    /// changes ride on the next tick, coalesced.
    pub fn sale_update(&mut self, now: u64, sale_id: &str, remaining: u32, state: SaleState) {
        if let Some(link) = self.link.as_mut().filter(|l| l.sale_id == sale_id) {
            link.remaining = remaining;
        }
        let previous = self.sale_states.insert(sale_id.to_owned(), state);
        if previous != Some(state) && state != SaleState::Scheduled {
            self.record(
                now,
                TimelineKind::Sale {
                    sale_id: sale_id.to_owned(),
                    state,
                    remaining,
                },
            );
            self.out.push_back(Output::Broadcast(ServerMsg::Sale {
                sale_id: sale_id.to_owned(),
                state,
                remaining,
            }));
        }
        self.sale_stock
            .insert(sale_id.to_owned(), SaleStock { remaining });
    }

    /// Whether a viewer (`None`: a guest) may see this room at all: guests only where
    /// the room admits them, and never a banned user. Joining, the room's status over
    /// HTTP and its video all ask this.
    pub fn may_view(&self, user: Option<&str>) -> Result<(), RoomError> {
        match user {
            None if !self.allow_anonymous => Err(RoomError::GuestsNotAdmitted),
            Some(user) if self.banned.contains(user) => Err(RoomError::Banned),
            _ => Ok(()),
        }
    }

    /// Admits a session, returning its welcome frame, or refuses it with nothing changed.
    pub fn join(
        &mut self,
        now: u64,
        session: SessionId,
        identity: Identity,
    ) -> Result<ServerMsg, RoomError> {
        if self.state == RoomState::Ended {
            return Err(RoomError::Ended);
        }
        if self.members.contains_key(&session) {
            return Err(RoomError::AlreadyJoined);
        }
        if identity.role == Role::Viewer {
            self.may_view(identity.user.as_deref())?;
        }
        let is_viewer = identity.role == Role::Viewer;
        if is_viewer && self.viewers as usize >= self.cfg.max_viewers {
            return Err(RoomError::Full);
        }
        if let Some(user) = &identity.user {
            let cfg = &self.cfg;
            let limits = self
                .users
                .entry(user.clone())
                .or_insert_with(|| UserLimits {
                    bucket: TokenBucket::new(cfg.comment_rate_per_sec, cfg.comment_burst, now),
                    last_comment_at: None,
                    sessions: 0,
                    last_seen: now,
                });
            limits.sessions += 1;
            limits.last_seen = now;
        }
        if is_viewer {
            self.viewers += 1;
            self.tally.joined();
        }
        let you = You {
            user: identity.user.clone(),
            name: identity.name.clone(),
            role: identity.role,
        };
        self.members.insert(
            session,
            Member {
                identity,
                joined_at: now,
            },
        );
        self.empty_since = None;
        Ok(ServerMsg::Welcome {
            protocol: PROTOCOL_VERSION,
            room: Box::new(self.snapshot()),
            you,
            server_time: now,
        })
    }

    /// Removes a session (socket closed, cut, or kicked). Unknown sessions are ignored.
    pub fn leave(&mut self, now: u64, session: SessionId) {
        let Some(member) = self.members.remove(&session) else {
            return;
        };
        if member.identity.role == Role::Viewer {
            self.viewers -= 1;
            self.tally
                .left(session, now.saturating_sub(member.joined_at));
        }
        if let Some(user) = &member.identity.user
            && let Some(limits) = self.users.get_mut(user)
        {
            limits.sessions = limits.sessions.saturating_sub(1);
            limits.last_seen = now;
        }
        if self.members.is_empty() {
            self.empty_since = Some(now);
        }
    }

    /// A comment from a session. Accepted comments are acked to the sender and fanned out
    /// at the next tick; refusals go back to the sender only.
    pub fn comment(&mut self, now: u64, session: SessionId, text: &str, req: Option<u64>) {
        match self.accept_comment(now, session, text) {
            Ok(comment_id) => self.out.push_back(Output::Send(
                session,
                ServerMsg::Ack {
                    id: req,
                    comment_id: Some(comment_id),
                },
            )),
            Err(e) => self.refuse(session, req, &e),
        }
    }

    fn accept_comment(
        &mut self,
        now: u64,
        session: SessionId,
        text: &str,
    ) -> Result<u64, RoomError> {
        let Some(member) = self.members.get(&session) else {
            return Err(RoomError::NotJoined);
        };
        if self.state == RoomState::Ended {
            return Err(RoomError::Ended);
        }
        let Some(user) = member.identity.user.clone() else {
            return Err(RoomError::CommentNeedsToken);
        };
        let is_anchor = member.identity.role == Role::Anchor;
        let name = member.identity.name.clone();
        let text = comments::validate(text, self.cfg.comment_max_chars, &self.cfg.keyword_filter)?
            .to_owned();
        if !is_anchor {
            if let Some(&until) = self.muted.get(&user) {
                if until > now {
                    return Err(RoomError::Muted {
                        retry_after_ms: until - now,
                    });
                }
                self.muted.remove(&user);
            }
            // Members with a user id always have limits (created at join).
            let limits = self.users.get_mut(&user).expect("joined users have limits");
            if self.slow_mode_secs > 0
                && let Some(last) = limits.last_comment_at
            {
                let next = last + u64::from(self.slow_mode_secs) * 1000;
                if now < next {
                    return Err(RoomError::SlowMode {
                        seconds: self.slow_mode_secs,
                        retry_after_ms: next - now,
                    });
                }
            }
            if let Err(wait) = limits.bucket.try_take(now) {
                return Err(RoomError::CommentRate {
                    retry_after_ms: wait,
                });
            }
            limits.last_comment_at = Some(now);
        }
        Ok(self.post_comment(now, user, name, text, is_anchor))
    }

    pub(super) fn post_comment(
        &mut self,
        now: u64,
        user: String,
        name: String,
        text: String,
        anchor: bool,
    ) -> u64 {
        let id = self.next_comment_id;
        self.next_comment_id += 1;
        let (comment_name, comment_text) = (name.clone(), text.clone());
        let comment = Comment {
            id,
            user: user.clone(),
            name,
            text,
            at: now,
            anchor,
        };
        self.recent.push(comment.clone());
        if anchor {
            self.tick_anchor_comments.push(comment);
        } else {
            self.tick_viewer_comments.push(comment);
        }
        self.tally.commented();
        self.record(
            now,
            TimelineKind::Comment {
                id,
                user,
                name: comment_name,
                text: comment_text,
                anchor,
            },
        );
        id
    }

    /// Like taps from a session, aggregated into the next tick's tally.
    pub fn like(&mut self, session: SessionId, count: u32, req: Option<u64>) {
        if !self.members.contains_key(&session) {
            return self.refuse(session, req, &RoomError::NotJoined);
        }
        if self.state == RoomState::Ended {
            return;
        }
        if count == 0 || count > self.cfg.like_max_per_msg {
            let max = self.cfg.like_max_per_msg;
            return self.refuse(session, req, &RoomError::LikeCount { max });
        }
        self.likes_total += u64::from(count);
        self.likes_delta += u64::from(count);
        self.tally.liked(u64::from(count));
    }

    /// Likes another node gathered from its joined sessions since its last report (each
    /// message already checked there against `like_max_per_msg`).
    pub fn node_likes(&mut self, count: u64) {
        if self.state == RoomState::Ended {
            return;
        }
        self.likes_total += count;
        self.likes_delta += count;
        self.tally.liked(count);
    }

    /// Whether comments are waiting for the next `tick` frame.
    pub fn has_pending_comments(&self) -> bool {
        !self.tick_viewer_comments.is_empty() || !self.tick_anchor_comments.is_empty()
    }

    /// The room tick: emits at most one `tick` frame with the comments, like tally and
    /// (every `online_interval_ms`) the online count gathered since the last tick.
    /// Returns whether a frame was emitted.
    pub fn tick(&mut self, now: u64) -> bool {
        let mut comments = comments::sample(
            std::mem::take(&mut self.tick_viewer_comments),
            self.cfg.comment_budget_per_tick,
            &mut self.rng,
        );
        comments.append(&mut self.tick_anchor_comments);
        comments.sort_by_key(|c| c.id);
        let likes = (self.likes_delta > 0).then_some(LikeTally {
            total: self.likes_total,
            delta: self.likes_delta,
        });
        if self.likes_delta > 0 {
            let count = self.likes_delta;
            self.record(now, TimelineKind::Likes { count });
            self.likes_delta = 0;
        }
        let mut online = None;
        if now.saturating_sub(self.last_online_at) >= self.cfg.online_interval_ms {
            self.last_online_at = now;
            self.online_series.push(OnlinePoint {
                at: now,
                online: self.viewers,
            });
            if self.last_online_sent != Some(self.viewers) {
                online = Some(self.viewers);
                self.last_online_sent = Some(self.viewers);
            }
            self.prune_users(now);
        }
        let sales = std::mem::take(&mut self.sale_stock);
        let emitted =
            !comments.is_empty() || likes.is_some() || online.is_some() || !sales.is_empty();
        if emitted {
            self.out.push_back(Output::Broadcast(ServerMsg::Tick {
                at: now,
                comments,
                likes,
                online,
                sales,
            }));
        }
        if let Some(since) = self.empty_since
            && now.saturating_sub(since) >= self.cfg.idle_end_secs * 1000
        {
            self.end(now);
        }
        emitted
    }

    /// Forgets comment limits of users gone for a minute (longer than any slow mode).
    fn prune_users(&mut self, now: u64) {
        let keep_ms = 60_000u64.max(u64::from(self.slow_mode_secs) * 1000);
        self.users
            .retain(|_, l| l.sessions > 0 || now.saturating_sub(l.last_seen) < keep_ms);
        self.muted.retain(|_, until| *until > now);
    }

    pub(super) fn refuse(&mut self, session: SessionId, req: Option<u64>, error: &RoomError) {
        self.out
            .push_back(Output::Send(session, ServerMsg::refusal(req, error)));
    }

    pub(super) fn record(&mut self, at: u64, kind: TimelineKind) {
        let event = TimelineEvent { at, kind };
        self.tally
            .event(&event, self.cfg.archive_max_pending_events);
        self.timeline.push(event);
    }

    pub(super) fn notice(&mut self, action: ModerationAction, user: String, until: Option<u64>) {
        self.out.push_back(Output::Broadcast(ServerMsg::Moderation {
            action,
            user,
            until,
        }));
    }
}
