//! A buyer's order or cancel, run against the sale it names and answered with the frame
//! the buyer's session gets (`order_result`, `ack` or `error`) — the same whether the
//! session is in this process or, in a cluster, on another node whose request came up
//! to the room's owner.

use bytestring::ByteString;
use lockstep_protocol::ServerMsg;
use serde::{Deserialize, Serialize};

use super::batch::{self, BuyerCall};
use super::model::{Order, OrderOrigin, sale_of_order};
use super::{
    Answer, Cancel, ReplySink, Reserve, ReserveReply, SaleDirectory, SaleError, SaleHandle,
};
use crate::store::StoreError;
use crate::sync::plain::Arc;

/// What a buyer asks of a sale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BuyerRequest {
    Order {
        sale_id: String,
        qty: u32,
        key: String,
        id: Option<u64>,
    },
    Cancel {
        order_id: String,
        id: Option<u64>,
    },
}

/// An order placed outside the live room (from a replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutsideOrder {
    pub sale_id: String,
    pub buyer: String,
    pub qty: u32,
    pub key: String,
    pub origin: OrderOrigin,
}

/// Where the answer frame goes (the session's queue, or the node holding the session).
pub type Answerer = Box<dyn FnOnce(ByteString) + Send>;

/// A buyer request from a session whose room runs on another node: its edge forwards it.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Buy {
    pub session: crate::room::SessionId,
    pub buyer: String,
    pub request: BuyerRequest,
}

impl SaleDirectory {
    /// Runs `request` of `buyer`, a session of `room`, and hands the answer frame to
    /// `answer` once the decision is durable (or at once for a refusal).
    pub fn buy(
        self: &Arc<Self>,
        room: &str,
        buyer: String,
        request: BuyerRequest,
        answer: Answerer,
    ) {
        match request {
            BuyerRequest::Order {
                sale_id,
                qty,
                key,
                id,
            } => {
                let (reply_sale, reply_key) = (sale_id.clone(), key.clone());
                let reply = ReplySink::new(move |answer_to: Answer<ReserveReply>| {
                    let msg = match answer_to {
                        Ok(r) => ServerMsg::OrderResult {
                            id,
                            sale_id: reply_sale,
                            key: reply_key,
                            outcome: r.outcome,
                            order_id: r.order_id,
                            remaining: Some(r.remaining),
                            expires_at: r.expires_at,
                            message: r.message,
                        },
                        Err(e) => ServerMsg::refusal(id, &e),
                    };
                    answer(ByteString::from(msg.to_json()));
                });
                self.with_sale(room, sale_id, reply, move |sale, reply| {
                    let reserve = Reserve {
                        buyer,
                        qty,
                        key,
                        origin: Default::default(),
                        reply,
                    };
                    batch::send(&sale.addr, BuyerCall::Reserve(reserve));
                });
            }
            BuyerRequest::Cancel { order_id, id } => {
                let Some(sale_id) = sale_of_order(&order_id).map(str::to_owned) else {
                    let refusal = SaleError::OrderNotFound(order_id);
                    return answer(ByteString::from(ServerMsg::refusal(id, &refusal).to_json()));
                };
                let reply = ReplySink::new(move |answer_to: Answer<Order>| {
                    let msg = match answer_to {
                        Ok(_) => ServerMsg::Ack {
                            id,
                            comment_id: None,
                        },
                        Err(e) => ServerMsg::refusal(id, &e),
                    };
                    answer(ByteString::from(msg.to_json()));
                });
                self.with_sale(room, sale_id, reply, move |sale, reply| {
                    let cancel = Cancel {
                        order_id,
                        buyer: Some(buyer),
                        reply,
                    };
                    batch::send(&sale.addr, BuyerCall::Cancel(cancel));
                });
            }
        }
    }

    /// Runs `send` with sale `sale_id` of `room` and the admitted reply sink: at once when
    /// the sale is loaded (so one session's requests keep their order), else after loading
    /// it. The sink is answered with an error when there is no such sale in this room or
    /// the sale is too busy.
    /// Reserves units of a sale of `room` outside the live room (from its replay):
    /// `reply` gets the decision once it is durable.
    pub fn reserve_from(
        self: &Arc<Self>,
        room: &str,
        order: OutsideOrder,
        reply: ReplySink<ReserveReply>,
    ) {
        let OutsideOrder {
            sale_id,
            buyer,
            qty,
            key,
            origin,
        } = order;
        self.with_sale(room, sale_id, reply, move |sale, reply| {
            sale.addr.do_send(Reserve {
                buyer,
                qty,
                key,
                origin,
                reply,
            });
        });
    }

    fn with_sale<T: 'static>(
        self: &Arc<Self>,
        room: &str,
        sale_id: String,
        reply: ReplySink<T>,
        send: impl FnOnce(SaleHandle, ReplySink<T>) + 'static,
    ) {
        let loaded = self.get(&sale_id);
        let room = room.to_owned();
        let lookup = sale_id.clone();
        let deliver = move |found: Result<Option<SaleHandle>, StoreError>| match found {
            Ok(Some(sale)) if sale.room == room => {
                if let Some(reply) = sale.admit(reply) {
                    send(sale, reply);
                }
            }
            Ok(_) => reply.send(Err(SaleError::NotFound(sale_id))),
            Err(e) => {
                tracing::warn!(error = %e, "loading a sale");
                reply.unavailable("the sale could not be loaded; retry");
            }
        };
        match loaded {
            Some(sale) => deliver(Ok(Some(sale))),
            None => {
                let sales = self.clone();
                actix_rt::spawn(async move { deliver(sales.get_or_load(&lookup).await) });
            }
        }
    }
}
