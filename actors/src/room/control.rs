//! Anchor commands on the room core: lifecycle (go live, pause, end), pins, anchor
//! comments, mutes, bans, slow mode and clearing a viewer's comments. Every command is
//! answered with an `ack` or an `error` to the anchor's session; a refused command
//! changes nothing.

use lockstep_protocol::{
    CloseCode, ControlCmd, ErrorCode, ModerationAction, Role, RoomState, ServerMsg,
};

use super::core::{Output, RoomCore, SessionId};
use super::timeline::TimelineKind;

impl RoomCore {
    /// Applies an anchor command from `session`.
    pub fn control(&mut self, now: u64, session: SessionId, cmd: ControlCmd, req: Option<u64>) {
        let is_anchor = self
            .members
            .get(&session)
            .is_some_and(|m| m.identity.role == Role::Anchor);
        if !is_anchor {
            return self.refuse(
                session,
                req,
                ErrorCode::Forbidden,
                "anchor commands need the control channel".into(),
                None,
            );
        }
        if self.state == RoomState::Ended {
            return self.refuse(
                session,
                req,
                ErrorCode::RoomEnded,
                "the room has ended".into(),
                None,
            );
        }
        let mut comment_id = None;
        let result = match cmd {
            ControlCmd::GoLive => self.transition(now, RoomState::Live),
            ControlCmd::Pause => self.transition(now, RoomState::Paused),
            ControlCmd::End => {
                self.ack(session, req, None);
                self.end(now);
                return;
            }
            ControlCmd::Pin { comment_id: id } => self.pin(now, id),
            ControlCmd::Unpin => {
                self.set_pinned(now, None);
                Ok(())
            }
            ControlCmd::Say { text } => self.say(now, session, &text).map(|id| {
                comment_id = Some(id);
            }),
            ControlCmd::Mute { user, seconds } => self.mute(now, user, seconds),
            ControlCmd::Unmute { user } => {
                if self.muted.remove(&user).is_some() {
                    self.send_to_user(
                        &user,
                        ServerMsg::Moderation {
                            action: ModerationAction::Unmuted,
                            user: user.clone(),
                            until: None,
                        },
                    );
                    self.record(
                        now,
                        TimelineKind::Moderation {
                            action: ModerationAction::Unmuted,
                            user,
                        },
                    );
                }
                Ok(())
            }
            ControlCmd::Ban {
                user,
                clear_comments,
            } => self.ban(now, user.clone()).map(|()| {
                if clear_comments {
                    self.clear_comments(now, user);
                }
            }),
            ControlCmd::Unban { user } => {
                if self.banned.remove(&user) {
                    self.record(
                        now,
                        TimelineKind::Moderation {
                            action: ModerationAction::Unbanned,
                            user: user.clone(),
                        },
                    );
                    self.notice(ModerationAction::Unbanned, user, None);
                }
                Ok(())
            }
            ControlCmd::ClearComments { user } => {
                self.clear_comments(now, user);
                Ok(())
            }
            ControlCmd::DropLink { .. } | ControlCmd::CloseSale { .. } => {
                // Sale commands need the sale's actor; the room shell handles them.
                Err((
                    ErrorCode::Internal,
                    "sale commands are handled by the room shell".into(),
                ))
            }
            ControlCmd::AllowAnonymous { allowed } => {
                if allowed != self.allow_anonymous {
                    self.allow_anonymous = allowed;
                    self.out
                        .push_back(Output::Broadcast(ServerMsg::AllowAnonymous { allowed }));
                }
                Ok(())
            }
            ControlCmd::SlowMode { seconds } => {
                if seconds != self.slow_mode_secs {
                    self.slow_mode_secs = seconds;
                    self.record(now, TimelineKind::SlowMode { seconds });
                    self.out
                        .push_back(Output::Broadcast(ServerMsg::SlowMode { seconds }));
                }
                Ok(())
            }
        };
        match result {
            Ok(()) => self.ack(session, req, comment_id),
            Err((code, message)) => self.refuse(session, req, code, message, None),
        }
    }

    fn ack(&mut self, session: SessionId, req: Option<u64>, comment_id: Option<u64>) {
        self.out.push_back(Output::Send(
            session,
            ServerMsg::Ack {
                id: req,
                comment_id,
            },
        ));
    }

    fn transition(&mut self, now: u64, to: RoomState) -> Result<(), (ErrorCode, String)> {
        let allowed = matches!(
            (self.state, to),
            (RoomState::Created | RoomState::Paused, RoomState::Live)
                | (RoomState::Live, RoomState::Paused)
        );
        if self.state == to {
            return Ok(());
        }
        if !allowed {
            return Err((
                ErrorCode::InvalidTransition,
                format!("cannot go from {:?} to {:?}", self.state, to).to_lowercase(),
            ));
        }
        self.set_state(now, to);
        Ok(())
    }

    fn set_state(&mut self, now: u64, state: RoomState) {
        self.state = state;
        self.record(now, TimelineKind::State { state });
        self.out
            .push_back(Output::Broadcast(ServerMsg::RoomState { state, at: now }));
    }

    /// Ends the room: viewers are told, every session is closed, the actor is released.
    pub fn end(&mut self, now: u64) {
        if self.state == RoomState::Ended {
            return;
        }
        // Flush what the last tick would have carried so nothing accepted is lost.
        self.tick_flush(now);
        self.set_state(now, RoomState::Ended);
        let sessions: Vec<SessionId> = self.members.keys().copied().collect();
        for s in sessions {
            self.out.push_back(Output::Close(s, CloseCode::RoomEnded));
            self.leave(now, s);
        }
        self.out.push_back(Output::Release);
    }

    fn tick_flush(&mut self, now: u64) {
        // `tick` ends an idle room; clearing `empty_since` keeps it from re-entering `end`.
        self.empty_since = None;
        self.tick(now);
    }

    fn pin(&mut self, now: u64, id: u64) -> Result<(), (ErrorCode, String)> {
        let Some(comment) = self.recent.iter().find(|c| c.id == id).cloned() else {
            return Err((
                ErrorCode::CommentNotFound,
                format!("comment {id} is not in the recent history"),
            ));
        };
        self.set_pinned(now, Some(comment));
        Ok(())
    }

    fn set_pinned(&mut self, now: u64, comment: Option<lockstep_protocol::Comment>) {
        let comment_id = comment.as_ref().map(|c| c.id);
        if self.pinned.as_ref().map(|c| c.id) == comment_id {
            return;
        }
        self.pinned = comment.clone();
        self.record(now, TimelineKind::Pinned { comment_id });
        self.out
            .push_back(Output::Broadcast(ServerMsg::Pinned { comment }));
    }

    fn say(
        &mut self,
        now: u64,
        session: SessionId,
        text: &str,
    ) -> Result<u64, (ErrorCode, String)> {
        // The anchor's own words skip the keyword filter but not the length limit.
        let text = super::comments::validate(text, self.cfg.comment_max_chars, &[])?.to_owned();
        let member = &self.members[&session];
        let user = member
            .identity
            .user
            .clone()
            .unwrap_or_else(|| "anchor".into());
        let name = member.identity.name.clone();
        Ok(self.post_comment(now, user, name, text, true))
    }

    fn mute(&mut self, now: u64, user: String, seconds: u32) -> Result<(), (ErrorCode, String)> {
        self.muted.retain(|_, until| *until > now);
        if self.muted.len() >= self.cfg.max_mutes && !self.muted.contains_key(&user) {
            return Err((
                ErrorCode::LimitReached,
                format!(
                    "{} users are muted, the most this room allows (room.max_mutes)",
                    self.muted.len()
                ),
            ));
        }
        let until = now + u64::from(seconds) * 1000;
        self.muted.insert(user.clone(), until);
        self.record(
            now,
            TimelineKind::Moderation {
                action: ModerationAction::Muted,
                user: user.clone(),
            },
        );
        self.send_to_user(
            &user,
            ServerMsg::Moderation {
                action: ModerationAction::Muted,
                user: user.clone(),
                until: Some(until),
            },
        );
        Ok(())
    }

    fn ban(&mut self, now: u64, user: String) -> Result<(), (ErrorCode, String)> {
        if self.banned.contains(&user) {
            return Ok(());
        }
        if self.banned.len() >= self.cfg.max_bans {
            return Err((
                ErrorCode::LimitReached,
                format!(
                    "{} users are banned, the most this room allows (room.max_bans)",
                    self.banned.len()
                ),
            ));
        }
        self.banned.insert(user.clone());
        self.record(
            now,
            TimelineKind::Moderation {
                action: ModerationAction::Banned,
                user: user.clone(),
            },
        );
        self.notice(ModerationAction::Banned, user.clone(), None);
        let kicked: Vec<SessionId> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.identity.role == Role::Viewer && m.identity.user.as_deref() == Some(&user)
            })
            .map(|(s, _)| *s)
            .collect();
        for s in kicked {
            self.out.push_back(Output::Close(s, CloseCode::Banned));
            self.leave(now, s);
        }
        self.out.push_back(Output::Banned(user));
        Ok(())
    }

    fn clear_comments(&mut self, now: u64, user: String) {
        self.recent.retain(|c| c.user != user);
        self.tick_viewer_comments.retain(|c| c.user != user);
        if self.pinned.as_ref().is_some_and(|c| c.user == user) {
            self.set_pinned(now, None);
        }
        self.record(
            now,
            TimelineKind::Moderation {
                action: ModerationAction::CommentsCleared,
                user: user.clone(),
            },
        );
        self.notice(ModerationAction::CommentsCleared, user, None);
    }

    fn send_to_user(&mut self, user: &str, msg: ServerMsg) {
        let targets: Vec<SessionId> = self
            .members
            .iter()
            .filter(|(_, m)| m.identity.user.as_deref() == Some(user))
            .map(|(s, _)| *s)
            .collect();
        for s in targets {
            self.out.push_back(Output::Send(s, msg.clone()));
        }
    }
}
