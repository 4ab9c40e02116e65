//! Per-connection rules, pure: the join handshake state, the inbound message rate limit
//! with its flood cut-off (WebSocket pings count as messages too), and which messages
//! each endpoint accepts. It turns one inbound frame into one [`Action`] for the shell;
//! it never touches the socket or the room.

use lockstep_protocol::{ClientMsg, CloseCode, ServerMsg, decode_client};

use super::error::SessionError;
use crate::config::SessionConfig;
use crate::limits::TokenBucket;
use crate::room::RoomInput;

/// Which socket the session is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/ws/rooms/{id}`: viewers (and anchors watching as viewers).
    Viewer,
    /// `/ws/rooms/{id}/control`: the anchor's control channel.
    Control,
}

/// What the shell should do with one inbound frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Authenticate and join the room.
    Join {
        protocol: u32,
        token: Option<String>,
        title: Option<String>,
        id: Option<u64>,
    },
    /// Forward to the room.
    Room(RoomInput),
    /// Answer the client directly.
    Reply(ServerMsg),
    /// Answer a clock-sync request: `t1` is when the frame was received; the shell adds
    /// `t2` as late as possible, when it queues the answer.
    TimeSync { t0: f64, t1: f64 },
    /// Send the frame (an error saying why), then close with the code.
    ReplyThenClose(ServerMsg, CloseCode),
    /// Place an order with the sale's inventory.
    Order {
        sale_id: String,
        qty: u32,
        key: String,
        id: Option<u64>,
    },
    /// Cancel one of this buyer's orders.
    CancelOrder { order_id: String, id: Option<u64> },
    /// A request about this session's video subscription.
    Media(MediaRequest),
    /// Answer a WebSocket ping with a pong (never waiting on the socket to do it).
    Pong,
    /// Drop the frame silently (already answered enough for this flood).
    Ignore,
}

/// What a session asks of the room's video.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaRequest {
    /// Subscribe with this SDP offer (replacing any earlier subscription).
    Offer {
        sdp: String,
        layer: Option<String>,
        id: Option<u64>,
    },
    /// Change the simulcast layer.
    Layer { layer: String, id: Option<u64> },
    /// Unsubscribe.
    Close { id: Option<u64> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinState {
    Waiting,
    Joined,
}

/// The per-connection state machine.
#[derive(Debug)]
pub struct SessionCore {
    endpoint: Endpoint,
    state: JoinState,
    bucket: TokenBucket,
    strikes: u32,
    max_strikes: u32,
    /// Refused messages answered with an error before the rest are dropped silently.
    max_replies: u32,
}

impl SessionCore {
    pub fn new(endpoint: Endpoint, cfg: &SessionConfig, now_ms: u64) -> Self {
        Self {
            endpoint,
            state: JoinState::Waiting,
            bucket: TokenBucket::new(cfg.msg_rate_per_sec, cfg.msg_burst, now_ms),
            strikes: 0,
            max_strikes: cfg.flood_strikes.max(1),
            max_replies: cfg.rate_limit_replies,
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    pub fn is_joined(&self) -> bool {
        self.state == JoinState::Joined
    }

    /// The room admitted this session.
    pub fn joined(&mut self) {
        self.state = JoinState::Joined;
    }

    /// A text frame arrived at `now_ms` (`now_precise` is the same instant with
    /// sub-millisecond precision, for clock sync).
    pub fn on_text(&mut self, now_ms: u64, now_precise: f64, text: &str) -> Action {
        if let Some(refused) = self.refusal(now_ms) {
            return refused;
        }
        let msg = match decode_client(text) {
            Ok(msg) => msg,
            Err(e) => return Action::Reply(ServerMsg::refusal(e.id, &e)),
        };
        self.route(msg, now_precise)
    }

    /// A WebSocket ping arrived: answered with a pong unless the connection floods.
    pub fn on_ping(&mut self, now_ms: u64) -> Action {
        self.refusal(now_ms).unwrap_or(Action::Pong)
    }

    /// Takes one message from the rate limit; `Some` says what to do with a message the
    /// limit refused.
    fn refusal(&mut self, now_ms: u64) -> Option<Action> {
        let Err(wait) = self.bucket.try_take(now_ms) else {
            self.strikes = 0;
            return None;
        };
        self.strikes += 1;
        if self.strikes >= self.max_strikes {
            return Some(Action::ReplyThenClose(
                ServerMsg::refusal(None, &SessionError::Flood),
                CloseCode::PolicyViolation,
            ));
        }
        if self.strikes > self.max_replies {
            return Some(Action::Ignore);
        }
        let refusal = SessionError::TooManyMessages {
            retry_after_ms: wait,
        };
        Some(Action::Reply(ServerMsg::refusal(None, &refusal)))
    }

    /// A binary frame arrived: the protocol is text only.
    pub fn on_binary(&mut self) -> Action {
        Action::ReplyThenClose(
            ServerMsg::refusal(None, &SessionError::Binary),
            CloseCode::UnsupportedData,
        )
    }

    fn route(&mut self, msg: ClientMsg, now_precise: f64) -> Action {
        match msg {
            ClientMsg::Ping { id } => Action::Reply(ServerMsg::Pong { id }),
            ClientMsg::TimeSync { t0 } => Action::TimeSync {
                t0,
                t1: now_precise,
            },
            ClientMsg::Join {
                protocol,
                token,
                title,
                id,
            } => {
                if self.state == JoinState::Joined {
                    return Action::Reply(ServerMsg::refusal(id, &SessionError::AlreadyJoined));
                }
                Action::Join {
                    protocol,
                    token,
                    title,
                    id,
                }
            }
            _ if self.state != JoinState::Joined => Action::Reply(ServerMsg::refusal(
                request_id(&msg),
                &SessionError::NotJoined,
            )),
            ClientMsg::Comment { text, id } => Action::Room(RoomInput::Comment { text, id }),
            ClientMsg::Like { count } => Action::Room(RoomInput::Like { count, id: None }),
            ClientMsg::Order {
                sale_id,
                qty,
                key,
                id,
            } => Action::Order {
                sale_id,
                qty,
                key,
                id,
            },
            ClientMsg::CancelOrder { order_id, id } => Action::CancelOrder { order_id, id },
            ClientMsg::RtcOffer { sdp, layer, id } => {
                Action::Media(MediaRequest::Offer { sdp, layer, id })
            }
            ClientMsg::RtcLayer { layer, id } => Action::Media(MediaRequest::Layer { layer, id }),
            ClientMsg::RtcClose { id } => Action::Media(MediaRequest::Close { id }),
            ClientMsg::Funnel { sale_id, step } => {
                Action::Room(RoomInput::Funnel { sale_id, step })
            }
            ClientMsg::Control { cmd, id } => match self.endpoint {
                Endpoint::Control => Action::Room(RoomInput::Control { cmd, id }),
                Endpoint::Viewer => {
                    Action::Reply(ServerMsg::refusal(id, &SessionError::ControlOnViewerSocket))
                }
            },
        }
    }
}

fn request_id(msg: &ClientMsg) -> Option<u64> {
    match msg {
        ClientMsg::Comment { id, .. }
        | ClientMsg::Control { id, .. }
        | ClientMsg::Join { id, .. }
        | ClientMsg::Order { id, .. }
        | ClientMsg::CancelOrder { id, .. }
        | ClientMsg::RtcOffer { id, .. }
        | ClientMsg::RtcLayer { id, .. }
        | ClientMsg::RtcClose { id }
        | ClientMsg::Ping { id } => *id,
        ClientMsg::Like { .. } | ClientMsg::TimeSync { .. } | ClientMsg::Funnel { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_protocol::ErrorCode;

    fn core(endpoint: Endpoint) -> SessionCore {
        SessionCore::new(endpoint, &SessionConfig::default(), 0)
    }

    fn error_name(action: &Action) -> Option<ErrorCode> {
        match action {
            Action::Reply(ServerMsg::Error { name, .. })
            | Action::ReplyThenClose(ServerMsg::Error { name, .. }, _) => Some(*name),
            _ => None,
        }
    }

    #[test]
    fn room_messages_need_join_first() {
        let mut s = core(Endpoint::Viewer);
        let a = s.on_text(0, 0.0, r#"{"type":"comment","text":"hi","id":1}"#);
        assert_eq!(error_name(&a), Some(ErrorCode::NotJoined));
        assert!(matches!(
            s.on_text(0, 0.0, r#"{"type":"ping"}"#),
            Action::Reply(ServerMsg::Pong { .. })
        ));
        assert!(matches!(
            s.on_text(0, 0.0, r#"{"type":"join","protocol":1}"#),
            Action::Join { .. }
        ));
        s.joined();
        assert!(matches!(
            s.on_text(0, 0.0, r#"{"type":"comment","text":"hi"}"#),
            Action::Room(_)
        ));
        let again = s.on_text(0, 0.0, r#"{"type":"join","protocol":1}"#);
        assert_eq!(error_name(&again), Some(ErrorCode::AlreadyJoined));
    }

    #[test]
    fn control_commands_only_on_control_channel() {
        let cmd = r#"{"type":"control","cmd":"go_live","id":2}"#;
        let mut viewer = core(Endpoint::Viewer);
        viewer.joined();
        assert_eq!(
            error_name(&viewer.on_text(0, 0.0, cmd)),
            Some(ErrorCode::Forbidden)
        );
        let mut anchor = core(Endpoint::Control);
        anchor.joined();
        assert!(matches!(
            anchor.on_text(0, 0.0, cmd),
            Action::Room(RoomInput::Control { .. })
        ));
    }

    #[test]
    fn flood_is_answered_then_cut() {
        let cfg = SessionConfig {
            msg_rate_per_sec: 1.0,
            msg_burst: 2,
            flood_strikes: 10,
            ..Default::default()
        };
        let mut s = SessionCore::new(Endpoint::Viewer, &cfg, 0);
        let mut actions = Vec::new();
        for _ in 0..20 {
            actions.push(s.on_text(0, 0.0, r#"{"type":"ping"}"#));
        }
        assert!(matches!(actions[0], Action::Reply(ServerMsg::Pong { .. })));
        assert_eq!(error_name(&actions[2]), Some(ErrorCode::RateLimited));
        assert!(actions[6..11].contains(&Action::Ignore));
        let closes = actions
            .iter()
            .filter(|a| matches!(a, Action::ReplyThenClose(_, CloseCode::PolicyViolation)))
            .count();
        assert!(closes >= 1);
    }

    #[test]
    fn pings_count_against_the_rate_limit() {
        let cfg = SessionConfig {
            msg_rate_per_sec: 1.0,
            msg_burst: 2,
            flood_strikes: 5,
            rate_limit_replies: 1,
            ..Default::default()
        };
        let mut s = SessionCore::new(Endpoint::Viewer, &cfg, 0);
        let actions: Vec<Action> = (0..10).map(|_| s.on_ping(0)).collect();
        assert_eq!(&actions[..2], &[Action::Pong, Action::Pong]);
        assert_eq!(error_name(&actions[2]), Some(ErrorCode::RateLimited));
        assert_eq!(actions[3], Action::Ignore, "one error reply, then silence");
        assert!(
            matches!(
                actions[6],
                Action::ReplyThenClose(_, CloseCode::PolicyViolation)
            ),
            "a ping flood closes the socket like any other: {:?}",
            actions[6]
        );
    }

    #[test]
    fn time_sync_carries_receive_time() {
        let mut s = core(Endpoint::Viewer);
        assert_eq!(
            s.on_text(5, 5.25, r#"{"type":"time_sync","t0":1.5}"#),
            Action::TimeSync { t0: 1.5, t1: 5.25 }
        );
    }

    #[test]
    fn binary_frames_close_with_1003() {
        assert!(matches!(
            core(Endpoint::Viewer).on_binary(),
            Action::ReplyThenClose(_, CloseCode::UnsupportedData)
        ));
    }
}
