//! Anchor commands on the room core: lifecycle (go live, pause, end), pins, anchor
//! comments, mutes, bans, slow mode and clearing a viewer's comments. Every command is
//! answered with an `ack` or an `error` to the anchor's session; a refused command
//! changes nothing.

use lockstep_protocol::{CloseCode, ControlCmd, ModerationAction, Role, RoomState, ServerMsg};

use super::core::{Output, RoomCore, SessionId};
use super::error::RoomError;
use super::timeline::TimelineKind;

impl RoomCore {
    /// Applies an anchor command from `session`.
    pub fn control(&mut self, now: u64, session: SessionId, cmd: ControlCmd, req: Option<u64>) {
        let is_anchor = self
            .members
            .get(&session)
            .is_some_and(|m| m.identity.role == Role::Anchor);
        if !is_anchor {
            return self.refuse(session, req, &RoomError::NotAnchor);
        }
        if self.state == RoomState::Ended {
            return self.refuse(session, req, &RoomError::Ended);
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
                Err(RoomError::SaleCommandInCore)
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
            Err(e) => self.refuse(session, req, &e),
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

    fn transition(&mut self, now: u64, to: RoomState) -> Result<(), RoomError> {
        let allowed = matches!(
            (self.state, to),
            (RoomState::Created | RoomState::Paused, RoomState::Live)
                | (RoomState::Live, RoomState::Paused)
        );
        if self.state == to {
            return Ok(());
        }
        if !allowed {
            return Err(RoomError::Transition {
                from: self.state,
                to,
            });
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

    fn pin(&mut self, now: u64, id: u64) -> Result<(), RoomError> {
        let Some(comment) = self.recent.iter().find(|c| c.id == id).cloned() else {
            return Err(RoomError::CommentNotFound(id));
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

    fn say(&mut self, now: u64, session: SessionId, text: &str) -> Result<u64, RoomError> {
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

    fn mute(&mut self, now: u64, user: String, seconds: u32) -> Result<(), RoomError> {
        self.muted.retain(|_, until| *until > now);
        if self.muted.len() >= self.cfg.max_mutes && !self.muted.contains_key(&user) {
            return Err(RoomError::TooManyMuted(self.muted.len()));
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

    fn ban(&mut self, now: u64, user: String) -> Result<(), RoomError> {
        if self.banned.contains(&user) {
            return Ok(());
        }
        if self.banned.len() >= self.cfg.max_bans {
            return Err(RoomError::TooManyBanned(self.banned.len()));
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
