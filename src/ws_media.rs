//! A session's video subscription over its WebSocket: `rtc_offer` → `rtc_answer`,
//! `rtc_layer`, `rtc_close`, and unsubscribing when the session ends. Negotiation runs
//! in its own task so the session keeps reading while candidates are gathered; one
//! negotiation at a time per connection (another offer meanwhile is `rate_limited`),
//! so one socket can never hold more than one subscription and one negotiation. In
//! cluster mode a session on a node that does not run its room subscribes on the room's
//! node (`ws_media_remote`).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use bytestring::ByteString;
use lockstep_actors::outbound::Outbound;
use lockstep_actors::session::{MediaRequest, SessionError};
use lockstep_protocol::ServerMsg;
use lockstep_sfu::layers::Preference;
use lockstep_sfu::{MediaError, MediaId};

use crate::state::AppState;
use crate::ws_media_remote::{self as remote, Refused, Remote};

#[derive(Debug, Default)]
struct Slot {
    subscriber: Option<MediaId>,
    /// A subscription held on the room's node (cluster mode).
    remote: Option<Remote>,
    /// An offer is being answered.
    negotiating: bool,
    /// Bumped by every offer and by the session's end, so a negotiation that finishes
    /// after a newer offer (or after the session closed) is undone, not kept.
    generation: u64,
    ended: bool,
}

/// The session's subscription, shared with its negotiation tasks.
#[derive(Debug, Clone, Default)]
pub struct MediaLink(Arc<Mutex<Slot>>);

fn push(outbound: &Outbound, msg: ServerMsg) {
    let _ = outbound.push(ByteString::from(msg.to_json()));
}

/// The layer preference named by the client.
fn preference(layer: Option<&str>) -> Result<Preference, MediaError> {
    match layer {
        None => Ok(Preference::Auto),
        Some(name) => Preference::parse(name).ok_or_else(|| MediaError::UnknownLayer(name.into())),
    }
}

/// Who the session is, for the video it asks for.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The session's user id; `None` for a guest.
    pub owner: Option<String>,
    /// Its address for per-address limits; `None` when exempt.
    pub source: Option<IpAddr>,
}

impl MediaLink {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Carries out one request of the session in room `room`.
    pub fn handle(
        &self,
        request: MediaRequest,
        room: &str,
        state: &Arc<AppState>,
        outbound: &Arc<Outbound>,
        viewer: &Viewer,
    ) {
        match request {
            MediaRequest::Offer { sdp, layer, id } => {
                let preference = match preference(layer.as_deref()) {
                    Ok(p) => p,
                    Err(e) => return push(outbound, ServerMsg::refusal(id, &e)),
                };
                let generation = {
                    let mut slot = self.lock();
                    if slot.negotiating {
                        drop(slot);
                        return push(
                            outbound,
                            ServerMsg::refusal(id, &SessionError::OfferPending),
                        );
                    }
                    if let Some(old) = slot.subscriber.take() {
                        state.media.unsubscribe_later(room, old);
                    }
                    if let Some(old) = slot.remote.take() {
                        remote::unsubscribe(state, room, old);
                    }
                    slot.negotiating = true;
                    slot.generation += 1;
                    slot.generation
                };
                let viewer = viewer.clone();
                let (link, state, outbound, room) = (
                    self.clone(),
                    state.clone(),
                    outbound.clone(),
                    room.to_owned(),
                );
                let edge = crate::edge_media::serves(&state, &room);
                if !edge && state.cluster.is_some() && state.directory.get(&room).is_none() {
                    actix_web::rt::spawn(async move {
                        let result =
                            remote::subscribe(&state, &room, sdp, viewer.owner.as_deref()).await;
                        link.remote_answered(result, generation, id, &state, &room, &outbound);
                    });
                    return;
                }
                actix_web::rt::spawn(async move {
                    let pulled = if edge {
                        crate::edge_media::pull(&state, &room).await
                    } else {
                        Ok(())
                    };
                    let result = match pulled {
                        Ok(()) => {
                            state
                                .media
                                .subscribe(&room, sdp, preference, viewer.owner, viewer.source)
                                .await
                        }
                        Err(e) => Err(e),
                    };
                    let mut slot = link.lock();
                    slot.negotiating = false;
                    match result {
                        Ok((subscriber, answer)) => {
                            if slot.ended || slot.generation != generation {
                                drop(slot);
                                state.media.unsubscribe_later(&room, subscriber);
                                return;
                            }
                            slot.subscriber = Some(subscriber);
                            drop(slot);
                            push(&outbound, ServerMsg::RtcAnswer { id, sdp: answer });
                        }
                        Err(e) => {
                            drop(slot);
                            push(&outbound, ServerMsg::refusal(id, &e));
                        }
                    }
                });
            }
            MediaRequest::Layer { layer, id } => {
                let preference = match preference(Some(&layer)) {
                    Ok(p) => p,
                    Err(e) => return push(outbound, ServerMsg::refusal(id, &e)),
                };
                if self.lock().remote.is_some() {
                    let refusal = Refused(crate::http::ApiError::new(
                        lockstep_protocol::ErrorCode::Unavailable,
                        "this node does not run the room: its video plays at the automatic layer; open the room on its own node to choose one",
                    ));
                    return push(outbound, ServerMsg::refusal(id, &refusal));
                }
                let Some(subscriber) = self.lock().subscriber else {
                    return push(outbound, not_subscribed(id));
                };
                let (state, outbound, room) = (state.clone(), outbound.clone(), room.to_owned());
                actix_web::rt::spawn(async move {
                    let msg = if state
                        .media
                        .change_layer(&room, subscriber, preference)
                        .await
                    {
                        ServerMsg::Ack {
                            id,
                            comment_id: None,
                        }
                    } else {
                        not_subscribed(id)
                    };
                    push(&outbound, msg);
                });
            }
            MediaRequest::Close { id } => {
                let taken = self.lock().subscriber.take();
                if let Some(held) = self.lock().remote.take() {
                    remote::unsubscribe(state, room, held);
                    return push(
                        outbound,
                        ServerMsg::Ack {
                            id,
                            comment_id: None,
                        },
                    );
                }
                match taken {
                    Some(subscriber) => {
                        state.media.unsubscribe_later(room, subscriber);
                        push(
                            outbound,
                            ServerMsg::Ack {
                                id,
                                comment_id: None,
                            },
                        );
                    }
                    None => push(outbound, not_subscribed(id)),
                }
            }
        }
    }

    /// The session ended: drop its subscription (and any still being negotiated).
    pub fn end(&self, room: &str, state: &Arc<AppState>) {
        let mut slot = self.lock();
        slot.ended = true;
        if let Some(subscriber) = slot.subscriber.take() {
            state.media.unsubscribe_later(room, subscriber);
        }
        if let Some(held) = slot.remote.take() {
            remote::unsubscribe(state, room, held);
        }
    }

    /// The room's node answered an offer: keep the subscription (or give it back when a
    /// newer offer or the session's end overtook it) and tell the session.
    fn remote_answered(
        &self,
        result: Result<(Remote, String), Refused>,
        generation: u64,
        id: Option<u64>,
        state: &Arc<AppState>,
        room: &str,
        outbound: &Outbound,
    ) {
        let mut slot = self.lock();
        slot.negotiating = false;
        match result {
            Ok((held, answer)) => {
                if slot.ended || slot.generation != generation {
                    drop(slot);
                    return remote::unsubscribe(state, room, held);
                }
                slot.remote = Some(held);
                drop(slot);
                push(outbound, ServerMsg::RtcAnswer { id, sdp: answer });
            }
            Err(refused) => {
                drop(slot);
                push(outbound, ServerMsg::refusal(id, &refused));
            }
        }
    }
}

fn not_subscribed(id: Option<u64>) -> ServerMsg {
    ServerMsg::refusal(id, &SessionError::NotSubscribed)
}
