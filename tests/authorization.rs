//! The authorization matrix: every HTTP route and WebSocket message against every kind
//! of caller, walked cell by cell against a real server. The table below is the source
//! of the matrix in `docs/security.md` (this test fails when the two differ;
//! `UPDATE_SECURITY_DOC=1 cargo test --test authorization` rewrites it).
//!
//! A cell is what the caller gets: an HTTP status (with the error name when it is an
//! error), or for WebSocket rows the reply — `welcome`, `ack`, `pong`, `accepted`,
//! `rtc_answer`, or the error's name. Room `r1` is the room under test: live, members
//! only (guests may not join), with `bad` banned. `pub` is a room open to guests.

mod common;

use common::{Client, TestServer, test_config};
use lockstep_protocol::{Role, ServerMsg};
use serde_json::{Value, json};

/// Who calls, in column order.
const CALLERS: [&str; 8] = [
    "anonymous",
    "viewer",
    "viewer of another room",
    "banned viewer",
    "anchor",
    "anchor of another room",
    "merchant",
    "other merchant",
];

/// What is called.
#[derive(Debug, Clone, Copy)]
enum Op {
    Http(&'static str, &'static str),
    /// Join the viewer socket of a room.
    JoinViewer(&'static str),
    /// Join the control channel of r1.
    JoinControl,
    /// A message on the viewer socket of a room, after joining it.
    Viewer(&'static str, Msg),
    /// A control command on r1's control channel, after joining it.
    Control(Msg),
}

#[derive(Debug, Clone, Copy)]
enum Msg {
    Comment,
    Like,
    Ping,
    TimeSync,
    Order,
    CancelOthersOrder,
    CancelOwnOrder,
    RtcOffer,
    GoLive,
    DropLink,
    DropOtherRoomsLink,
    Ban,
}

struct Row {
    what: &'static str,
    op: Op,
    cells: [&'static str; 8],
}

const fn row(what: &'static str, op: Op, cells: [&'static str; 8]) -> Row {
    Row { what, op, cells }
}

use Msg::*;
use Op::*;

/// `{p}` `{sku}` `{sale}` `{order}` `{fresh_sale}` `{fresh_order}` `{session}` in paths
/// are filled in from the fixture (fresh ones are made for each cell).
const MATRIX: &[Row] = &[
    row(
        "`GET /healthz`, `/readyz`, `/metrics`",
        Http("GET", "/readyz"),
        ["200"; 8],
    ),
    row(
        "`GET /rooms/r1`, `/rooms/r1/anchor`, `/static/*` (pages)",
        Http("GET", "/rooms/r1/anchor"),
        ["200"; 8],
    ),
    row(
        "`GET /api/v1/openapi.json`",
        Http("GET", "/api/v1/openapi.json"),
        ["200"; 8],
    ),
    row(
        "`GET /api/v1/rooms/r1` (members only)",
        Http("GET", "/api/v1/rooms/r1"),
        [
            "401 auth_required",
            "200",
            "403 forbidden",
            "403 banned",
            "200",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`GET /api/v1/rooms/pub` (open to guests)",
        Http("GET", "/api/v1/rooms/pub"),
        [
            "200",
            "200",
            "403 forbidden",
            "200",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`POST /api/v1/rooms` `{\"id\":\"r1\"}`",
        Http("POST", "/api/v1/rooms"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`GET /api/v1/rooms/r1/sales`",
        Http("GET", "/api/v1/rooms/r1/sales"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`GET /api/v1/rooms/r1/merchants`",
        Http("GET", "/api/v1/rooms/r1/merchants"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`PUT /api/v1/rooms/r1/merchants/m3`",
        Http("PUT", "/api/v1/rooms/r1/merchants/m3"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`DELETE /api/v1/rooms/r1/merchants/m4` (granted)",
        Http("DELETE", "/api/v1/rooms/r1/merchants/m4"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "204",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`POST /api/v1/products`",
        Http("POST", "/api/v1/products"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "201",
            "201",
        ],
    ),
    row(
        "`GET /api/v1/products`",
        Http("GET", "/api/v1/products"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "200",
        ],
    ),
    row(
        "`GET /api/v1/products/{p}` (the merchant's)",
        Http("GET", "/api/v1/products/{p}"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "404 product_not_found",
        ],
    ),
    row(
        "`GET /api/v1/skus/{sku}`",
        Http("GET", "/api/v1/skus/{sku}"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "404 sku_not_found",
        ],
    ),
    row(
        "`POST /api/v1/skus/{sku}/stock`",
        Http("POST", "/api/v1/skus/{sku}/stock"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "404 sku_not_found",
        ],
    ),
    row(
        "`POST /api/v1/sales` in r1 (the merchant is granted there)",
        Http("POST", "/api/v1/sales"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "201",
            "403 forbidden",
        ],
    ),
    row(
        "`GET /api/v1/sales/{sale}`",
        Http("GET", "/api/v1/sales/{sale}"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "404 sale_not_found",
        ],
    ),
    row(
        "`POST /api/v1/sales/{sale}/close`",
        Http("POST", "/api/v1/sales/{fresh_sale}/close"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "404 sale_not_found",
        ],
    ),
    row(
        "`GET /api/v1/orders`",
        Http("GET", "/api/v1/orders"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "200",
        ],
    ),
    row(
        "`GET /api/v1/orders/{order}`",
        Http("GET", "/api/v1/orders/{order}"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "404 order_not_found",
        ],
    ),
    row(
        "`POST /api/v1/orders/{order}/confirm`",
        Http("POST", "/api/v1/orders/{fresh_order}/confirm"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "404 order_not_found",
        ],
    ),
    row(
        "`POST /api/v1/orders/{order}/cancel`",
        Http("POST", "/api/v1/orders/{fresh_order}/cancel"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "404 order_not_found",
        ],
    ),
    row(
        "`GET /replays/{replay}`, `/rooms/r1/dashboard` (pages)",
        Http("GET", "/rooms/r1/dashboard"),
        ["200"; 8],
    ),
    row(
        "`GET /api/v1/replays?room=r1` (members only: guests see none)",
        Http("GET", "/api/v1/replays?room=r1"),
        [
            "200",
            "200",
            "403 forbidden",
            "200",
            "200",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`GET /api/v1/replays/{replay}`, `…/events` (r1's)",
        Http("GET", "/api/v1/replays/{replay}"),
        [
            "401 auth_required",
            "200",
            "403 forbidden",
            "403 banned",
            "200",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`GET /api/v1/replays/{replay}/media` (no recording yet)",
        Http("GET", "/api/v1/replays/{replay}/media"),
        [
            "401 auth_required",
            "404 not_found",
            "403 forbidden",
            "403 banned",
            "404 not_found",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`PATCH /api/v1/replays/{replay}/chapters/{sale}`",
        Http("PATCH", "/api/v1/replays/{replay}/chapters/{sale}"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`POST /api/v1/sales/{sale}/orders` (from r1's replay)",
        Http("POST", "/api/v1/sales/{sale}/orders"),
        [
            "401 auth_required",
            "201",
            "403 forbidden",
            "403 banned",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`POST /api/v1/replays/{replay}/chapters/{sale}/sale` (a replay sale; from then on the chapter sells from it)",
        Http("POST", "/api/v1/replays/{replay}/chapters/{sale}/sale"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "201",
            "404 sale_not_found",
        ],
    ),
    row(
        "`GET /api/v1/rooms/r1/analytics`",
        Http("GET", "/api/v1/rooms/r1/analytics"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "200",
            "403 forbidden",
            "200",
            "403 forbidden",
        ],
    ),
    row(
        "`POST /whip/r1` (an offer that sends nothing)",
        Http("POST", "/whip/r1"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "400 invalid_sdp",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`DELETE /whip/r1/{session}` (no such session)",
        Http("DELETE", "/whip/r1/{session}"),
        [
            "401 unauthorized",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
            "404 session_not_found",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`POST /whep/r1` (no stream yet)",
        Http("POST", "/whep/r1"),
        [
            "401 auth_required",
            "409 media_unavailable",
            "403 forbidden",
            "403 banned",
            "409 media_unavailable",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "`DELETE /whep/r1/{session}` (no such session)",
        Http("DELETE", "/whep/r1/{session}"),
        [
            "404 session_not_found",
            "404 session_not_found",
            "403 forbidden",
            "404 session_not_found",
            "404 session_not_found",
            "403 forbidden",
            "403 forbidden",
            "403 forbidden",
        ],
    ),
    row(
        "join `/ws/rooms/r1` (members only)",
        JoinViewer("r1"),
        [
            "auth_required",
            "welcome",
            "forbidden",
            "banned",
            "forbidden",
            "forbidden",
            "forbidden",
            "forbidden",
        ],
    ),
    row(
        "join `/ws/rooms/pub` (open to guests)",
        JoinViewer("pub"),
        [
            "welcome",
            "welcome",
            "forbidden",
            "welcome",
            "forbidden",
            "forbidden",
            "forbidden",
            "forbidden",
        ],
    ),
    row(
        "join `/ws/rooms/r1/control`",
        JoinControl,
        [
            "unauthorized",
            "forbidden",
            "forbidden",
            "forbidden",
            "welcome",
            "forbidden",
            "forbidden",
            "forbidden",
        ],
    ),
    row(
        "`ping` (no join needed)",
        Viewer("pub", Ping),
        [
            "pong", "pong", "pong", "pong", "pong", "pong", "pong", "pong",
        ],
    ),
    row(
        "`time_sync` (no join needed)",
        Viewer("pub", TimeSync),
        [
            "time_sync",
            "time_sync",
            "time_sync",
            "time_sync",
            "time_sync",
            "time_sync",
            "time_sync",
            "time_sync",
        ],
    ),
    row(
        "`comment` in pub",
        Viewer("pub", Comment),
        [
            "auth_required",
            "ack",
            "forbidden",
            "ack",
            "forbidden",
            "forbidden",
            "forbidden",
            "forbidden",
        ],
    ),
    row(
        "`like` in pub",
        Viewer("pub", Like),
        [
            "ok",
            "ok",
            "forbidden",
            "ok",
            "forbidden",
            "forbidden",
            "forbidden",
            "forbidden",
        ],
    ),
    row(
        "`order` in r1 (an open sale of r1)",
        Viewer("r1", Order),
        [
            "auth_required",
            "accepted",
            "forbidden",
            "banned",
            "forbidden",
            "forbidden",
            "forbidden",
            "forbidden",
        ],
    ),
    row(
        "`cancel_order` of one's own order in r1",
        Viewer("r1", CancelOwnOrder),
        [
            "auth_required",
            "ack",
            "forbidden",
            "banned",
            "forbidden",
            "forbidden",
            "forbidden",
            "forbidden",
        ],
    ),
    row(
        "`cancel_order` of another buyer's order in r1",
        Viewer("r1", CancelOthersOrder),
        [
            "auth_required",
            "order_not_found",
            "forbidden",
            "banned",
            "forbidden",
            "forbidden",
            "forbidden",
            "forbidden",
        ],
    ),
    row(
        "`rtc_offer` in r1 (no stream yet)",
        Viewer("r1", RtcOffer),
        [
            "auth_required",
            "media_unavailable",
            "forbidden",
            "banned",
            "forbidden",
            "forbidden",
            "forbidden",
            "forbidden",
        ],
    ),
    row(
        "`control go_live` on the viewer socket of pub",
        Viewer("pub", GoLive),
        [
            "forbidden",
            "forbidden",
            "forbidden",
            "forbidden",
            "forbidden",
            "forbidden",
            "forbidden",
            "forbidden",
        ],
    ),
    row(
        "`control go_live` on r1's control channel",
        Control(GoLive),
        [
            "unauthorized",
            "forbidden",
            "forbidden",
            "forbidden",
            "ack",
            "forbidden",
            "forbidden",
            "forbidden",
        ],
    ),
    row(
        "`control ban` on r1's control channel",
        Control(Ban),
        [
            "unauthorized",
            "forbidden",
            "forbidden",
            "forbidden",
            "ack",
            "forbidden",
            "forbidden",
            "forbidden",
        ],
    ),
    row(
        "`control drop_link` of a sale of r1",
        Control(DropLink),
        [
            "unauthorized",
            "forbidden",
            "forbidden",
            "forbidden",
            "link",
            "forbidden",
            "forbidden",
            "forbidden",
        ],
    ),
    row(
        "`control drop_link` of a sale of another room",
        Control(DropOtherRoomsLink),
        [
            "unauthorized",
            "forbidden",
            "forbidden",
            "forbidden",
            "sale_not_found",
            "forbidden",
            "forbidden",
            "forbidden",
        ],
    ),
];

/// What the fixture made.
struct Fixture {
    server: TestServer,
    /// r1's anchor, connected (and reading) for the whole test: the room stays live.
    _anchor: (
        futures_util::stream::SplitSink<
            tokio_tungstenite::WebSocketStream<
                tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
            >,
            tokio_tungstenite::tungstenite::Message,
        >,
        tokio::sync::mpsc::UnboundedReceiver<u64>,
    ),
    product: String,
    sku: String,
    sale: String,
    other_rooms_sale: String,
    order: String,
    /// r1's replay (its run so far: the room is live).
    replay: i64,
}

impl Fixture {
    fn token(&self, caller: usize) -> Option<String> {
        let s = &self.server;
        match caller {
            0 => None,
            1 => Some(s.token(Role::Viewer, "v1", None)),
            2 => Some(s.token(Role::Viewer, "v2", Some("r2"))),
            3 => Some(s.token(Role::Viewer, "bad", None)),
            4 => Some(s.anchor_token("r1")),
            5 => Some(s.anchor_token("r2")),
            6 => Some(s.merchant_token("m1")),
            _ => Some(s.merchant_token("m2")),
        }
    }

    /// A new order of viewer `buyer` in the sale of r1.
    async fn order(&self, buyer: &str) -> String {
        let (mut v, _) = self.server.join_viewer("r1", Some(buyer)).await;
        let key = format!("k{}", rand::random::<u64>());
        v.send(json!({"type":"order","sale_id":self.sale,"qty":1,"key":key}))
            .await;
        v.recv_until(|m| match m {
            ServerMsg::OrderResult {
                order_id: Some(id), ..
            } => Some(id.clone()),
            _ => None,
        })
        .await
    }

    async fn fill(&self, path: &str) -> String {
        let mut path = path
            .replace("{p}", &self.product)
            .replace("{sku}", &self.sku)
            .replace("{sale}", &self.sale)
            .replace("{order}", &self.order)
            .replace("{replay}", &self.replay.to_string())
            .replace("{session}", &format!("{:032x}", rand::random::<u128>()));
        if path.contains("{fresh_sale}") {
            let sale = self.server.create_sale("m1", "r1", 5, 5, json!({})).await;
            path = path.replace("{fresh_sale}", &sale);
        }
        if path.contains("{fresh_order}") {
            let order = self.order("v1").await;
            path = path.replace("{fresh_order}", &order);
        }
        path
    }

    fn body(&self, path: &str) -> Option<(&'static str, String)> {
        let json = |v: Value| Some(("application/json", v.to_string()));
        match path {
            "/api/v1/rooms" => json(json!({"id":"r1"})),
            "/api/v1/products" => json(json!({"title":"Mug","price_cents":100,"skus":[{"stock":1}]})),
            "/api/v1/sales" => {
                json(json!({"room":"r1","sku_id":self.sku,"allotted":1,"price_cents":100}))
            }
            p if p.ends_with("/stock") => json(json!({"delta":1,"reason":"recount"})),
            p if p.ends_with("/sale") => json(json!({"allotted": 1})),
            p if p.contains("/chapters/") => json(json!({"hidden": false})),
            p if p.starts_with("/api/v1/sales/") && p.ends_with("/orders") => json(json!({
                "qty": 1, "key": format!("k{}", rand::random::<u64>()), "source": "replay",
                "replay_id": self.replay, "chapter": 1
            })),
            p if p.ends_with("/close") || p.ends_with("/confirm") || p.ends_with("/cancel") => {
                json(json!({}))
            }
            "/whip/r1" | "/whep/r1" => Some((
                "application/sdp",
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=inactive\r\n".into(),
            )),
            _ => None,
        }
    }

    async fn http(&self, caller: usize, method: &str, path: &str) -> String {
        let path = self.fill(path).await;
        let mut request =
            reqwest::Client::new().request(method.parse().unwrap(), self.server.url(&path));
        if let Some(token) = self.token(caller) {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, body)) = self.body(&path) {
            request = request.header("content-type", content_type).body(body);
        }
        let resp = request.send().await.unwrap();
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return status.to_string();
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        format!("{status} {}", body["name"].as_str().unwrap_or("?"))
    }

    /// Joins `path` with the caller's token: `Ok(client)` after the welcome, or the
    /// error's name.
    async fn join(&self, caller: usize, path: &str) -> Result<Client, String> {
        let mut client = Client::connect(&self.server.ws_url(path)).await;
        let mut join = json!({"type":"join","protocol":1});
        if let Some(token) = self.token(caller) {
            join["token"] = json!(token);
        }
        client.send(join).await;
        match client.recv().await {
            ServerMsg::Welcome { .. } => Ok(client),
            ServerMsg::Error { name, .. } => Err(name_of(name)),
            other => panic!("unexpected join answer {other:?}"),
        }
    }

    async fn message(&self, caller: usize, path: &str, msg: Msg) -> String {
        let joined = match msg {
            // Answered before any join: on a fresh socket.
            Ping | TimeSync => Ok(Client::connect(&self.server.ws_url(path)).await),
            _ => self.join(caller, path).await,
        };
        let mut client = match joined {
            Ok(client) => client,
            Err(refused) => return refused,
        };
        let frame = match msg {
            Ping => json!({"type":"ping","id":1}),
            TimeSync => json!({"type":"time_sync","t0":1.0}),
            Comment => json!({"type":"comment","text":"hello","id":1}),
            Like => json!({"type":"like","count":3}),
            Order => {
                json!({"type":"order","sale_id":self.sale,"qty":1,"key":format!("k{}", rand::random::<u64>()),"id":1})
            }
            CancelOwnOrder => {
                json!({"type":"cancel_order","order_id":self.order("v1").await,"id":1})
            }
            CancelOthersOrder => {
                json!({"type":"cancel_order","order_id":self.order("someone-else").await,"id":1})
            }
            RtcOffer => json!({"type":"rtc_offer","sdp":"v=0\r\n","id":1}),
            GoLive => json!({"type":"control","cmd":"go_live","id":1}),
            Ban => json!({"type":"control","cmd":"ban","user":"nobody","id":1}),
            DropLink => {
                let sale = self.server.create_sale("m1", "r1", 5, 5, json!({})).await;
                json!({"type":"control","cmd":"drop_link","sale_id":sale,"countdown_ms":0,"id":1})
            }
            DropOtherRoomsLink => {
                json!({"type":"control","cmd":"drop_link","sale_id":self.other_rooms_sale,"id":1})
            }
        };
        client.send(frame).await;
        if let Like = msg {
            // No reply to a like: an error would come before the pong that follows it.
            client.send(json!({"type":"ping","id":2})).await;
            return match reply(&mut client, 2).await.as_str() {
                "pong" => "ok".into(),
                other => other.into(),
            };
        }
        reply(&mut client, 1).await
    }
}

fn name_of(code: lockstep_protocol::ErrorCode) -> String {
    serde_json::to_value(code)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// The reply to request `id`, as a cell: the message kind or the error's name.
async fn reply(client: &mut Client, id: u64) -> String {
    client
        .recv_until(|m| match m {
            ServerMsg::Error { name, .. } => Some(name_of(*name)),
            ServerMsg::Pong { id: Some(got) } if *got == id => Some("pong".into()),
            ServerMsg::Ack { id: Some(got), .. } if *got == id => Some("ack".into()),
            ServerMsg::TimeSync { .. } => Some("time_sync".into()),
            ServerMsg::OrderResult { outcome, .. } => Some(
                serde_json::to_value(outcome)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            ServerMsg::RtcAnswer { .. } => Some("rtc_answer".into()),
            ServerMsg::Link { .. } => Some("link".into()),
            _ => None,
        })
        .await
}

async fn fixture() -> Fixture {
    let server = TestServer::start(test_config());
    let http = reqwest::Client::new();
    for (room, guests) in [("r1", false), ("pub", true), ("r2", true)] {
        let resp = http
            .post(server.url("/api/v1/rooms"))
            .bearer_auth(server.anchor_token(room))
            .json(&json!({"id":room,"allow_anonymous":guests}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    let mut anchor = server.open_room("r1").await;
    for (i, cmd) in [json!({"cmd":"go_live"}), json!({"cmd":"ban","user":"bad"})]
        .into_iter()
        .enumerate()
    {
        let mut msg = cmd;
        msg["type"] = json!("control");
        msg["id"] = json!(i + 1);
        anchor.send(msg).await;
        anchor
            .recv_until(|m| {
                matches!(m, ServerMsg::Ack { id: Some(n), .. } if *n == i as u64 + 1).then_some(())
            })
            .await;
    }
    let sale = server
        .create_sale("m1", "r1", 1_000, 500, json!({"per_buyer_limit": 500}))
        .await;
    TestServer::drop_link(&mut anchor, &sale, 0).await;
    let other_rooms_sale = server.create_sale("m1", "r2", 5, 5, json!({})).await;
    server.grant("r1", "m4").await;
    let (_, view) = server
        .merchant_get("m1", &format!("/api/v1/sales/{sale}"))
        .await;
    let sku = view["sale"]["sku_id"].as_str().unwrap().to_owned();
    let product = view["sale"]["product_id"].as_str().unwrap().to_owned();
    let mut fixture = Fixture {
        server,
        _anchor: anchor.split_acks(),
        product,
        sku,
        sale,
        other_rooms_sale,
        order: String::new(),
        replay: 0,
    };
    fixture.order = fixture.order("v1").await;
    fixture.replay = replay_with_chapter_and_ban(&fixture.server).await;
    fixture
}

/// r1's replay, once the archive holds its chapter and the ban of `bad`.
async fn replay_with_chapter_and_ban(server: &TestServer) -> i64 {
    let anchor = server.anchor_token("r1");
    let banned = server.token(Role::Viewer, "bad", None);
    let get = |path: String, token: String| async move {
        let resp = reqwest::Client::new()
            .get(server.url(&path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let deadline = tokio::time::Instant::now() + common::EVENT_TIMEOUT;
    loop {
        let (_, list) = get("/api/v1/replays?room=r1".into(), anchor.clone()).await;
        if let Some(id) = list["replays"][0]["id"].as_i64() {
            let (_, replay) = get(format!("/api/v1/replays/{id}"), anchor.clone()).await;
            let (status, _) = get(format!("/api/v1/replays/{id}"), banned.clone()).await;
            if replay["chapters"].as_array().is_some_and(|c| !c.is_empty()) && status == 403 {
                return id;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "r1's replay never showed its chapter and ban"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The matrix as a Markdown table.
fn render(rows: &[(String, Vec<String>)]) -> String {
    let mut out = String::from("| route or message |");
    for caller in CALLERS {
        out.push_str(&format!(" {caller} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(CALLERS.len()));
    out.push('\n');
    for (what, cells) in rows {
        out.push_str(&format!("| {what} |"));
        for cell in cells {
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out
}

const BEGIN: &str = "<!-- matrix: generated by tests/authorization.rs -->\n";
const END: &str = "<!-- end of matrix -->";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cell_of_the_authorization_matrix() {
    let fixture = fixture().await;
    let mut mismatches = Vec::new();
    let mut observed_rows = Vec::new();
    for row in MATRIX {
        let mut observed = Vec::new();
        for (caller, want) in row.cells.iter().enumerate() {
            let got = match row.op {
                Http(method, path) => fixture.http(caller, method, path).await,
                JoinViewer(room) => {
                    match fixture.join(caller, &format!("/ws/rooms/{room}")).await {
                        Ok(_) => "welcome".into(),
                        Err(e) => e,
                    }
                }
                JoinControl => match fixture.join(caller, "/ws/rooms/r1/control").await {
                    Ok(_) => "welcome".into(),
                    Err(e) => e,
                },
                Viewer(room, msg) => {
                    fixture
                        .message(caller, &format!("/ws/rooms/{room}"), msg)
                        .await
                }
                Control(msg) => fixture.message(caller, "/ws/rooms/r1/control", msg).await,
            };
            if got != *want {
                mismatches.push(format!(
                    "{} as {}: expected {want}, got {got}",
                    row.what, CALLERS[caller]
                ));
            }
            observed.push(got);
        }
        observed_rows.push((row.what.to_owned(), observed));
    }
    let cells = MATRIX.len() * CALLERS.len();
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // docs/security.md carries exactly this matrix.
    let expected: Vec<(String, Vec<String>)> = MATRIX
        .iter()
        .map(|r| {
            (
                r.what.to_owned(),
                r.cells.iter().map(|c| c.to_string()).collect(),
            )
        })
        .collect();
    let table = render(&expected);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/security.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let (Some(start), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/security.md has no matrix markers");
    };
    let current = &doc[start + BEGIN.len()..end];
    if current != table {
        if std::env::var_os("UPDATE_SECURITY_DOC").is_some() {
            let updated = format!("{}{BEGIN}{table}{}", &doc[..start], &doc[end..]);
            std::fs::write(&path, updated).unwrap();
        } else {
            panic!("docs/security.md's matrix is stale (UPDATE_SECURITY_DOC=1 rewrites it)");
        }
    }
    eprintln!("{cells} cells checked");
}
