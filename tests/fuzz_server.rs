//! Property-based fuzzing against a running server: HTTP bodies, paths and queries for
//! every JSON route, and SDP offers (mutated real ones) posted to WHIP and WHEP of a live
//! room — where webrtc-rs parses and applies them. The server must answer each with a
//! coded error or success, never a 5xx other than a documented `503`, never a dropped
//! connection; afterwards it must still serve video to a real subscriber.
//!
//! Cases per property: `FUZZ_CASES` (default 150).

mod common;
mod fuzzing;

use std::sync::OnceLock;

use common::media::go_live;
use common::{TestServer, test_config};
use fuzzing::{cases, json_value, mutated, mutated_sdp};
use proptest::prelude::*;
use serde_json::{Value, json};

type Anchor = (
    futures_util::stream::SplitSink<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::Message,
    >,
    tokio::sync::mpsc::UnboundedReceiver<u64>,
);

struct World {
    rt: tokio::runtime::Runtime,
    server: TestServer,
    sku: String,
    sale: String,
    publisher_offer: String,
    subscriber_offer: String,
    /// Kept alive for the whole run: the stream of r1 and both rooms' anchors.
    _live: (
        std::sync::Arc<lockstep_load::rtc::Publisher>,
        tokio_util::sync::CancellationToken,
        Anchor,
        Anchor,
    ),
}

/// One server for every case, with a live room streaming video (`r1`) and a room with
/// nothing published (`w`, for WHIP).
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut cfg = test_config();
        cfg.media.max_subscribers_per_room = 100_000;
        cfg.media.max_subscribers_total = 100_000;
        cfg.media.connect_timeout_ms = 2_000;
        let server = TestServer::start(cfg);
        let (sku, sale, publisher_offer, subscriber_offer, live) = rt.block_on(async {
            let sale = server.create_sale("m1", "r1", 50, 10, json!({})).await;
            let (_, view) = server
                .merchant_get("m1", &format!("/api/v1/sales/{sale}"))
                .await;
            let mut anchor = server.open_room("r1").await;
            let (publisher, stop) = go_live(&server, &mut anchor, "r1").await;
            let mut w = server.open_room("w").await;
            w.send(json!({"type":"control","cmd":"go_live"})).await;
            let publisher_offer = lockstep_load::rtc::publisher::sample_offer().await.unwrap();
            let subscriber_offer = lockstep_load::rtc::Subscriber::new()
                .await
                .unwrap()
                .offer()
                .to_owned();
            (
                view["sale"]["sku_id"].as_str().unwrap().to_owned(),
                sale,
                publisher_offer,
                subscriber_offer,
                (publisher, stop, anchor.split_acks(), w.split_acks()),
            )
        });
        World {
            rt,
            server,
            sku,
            sale,
            publisher_offer,
            subscriber_offer,
            _live: live,
        }
    })
}

/// Sends a request; its status and parsed JSON body (`Null` when it is not JSON).
fn send(
    method: &str,
    path: &str,
    token: Option<String>,
    content_type: &str,
    body: String,
) -> (u16, Value) {
    let w = world();
    w.rt.block_on(async {
        let mut request = reqwest::Client::new()
            .request(method.parse().unwrap(), w.server.url(path))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let resp = request
            .send()
            .await
            .expect("the server answers every request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    })
}

/// Every refusal is a documented error: JSON `{code, name, message}`, a 4xx, or a 503.
fn check_refusal(status: u16, body: &Value, what: &str) -> Result<(), TestCaseError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    prop_assert!(
        (400..500).contains(&status) || status == 503,
        "{what}: status {status} {body}"
    );
    prop_assert!(
        body["code"].is_u64() && body["name"].is_string() && body["message"].is_string(),
        "{what}: {status} without an error body: {body}"
    );
    Ok(())
}

/// Path segments: real ids, garbage, traversal, encoded bytes.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("REAL".to_owned()),
        "[a-z0-9_-]{0,20}",
        Just("..%2f..".to_owned()),
        Just("%00".to_owned()),
        Just("%ff%fe".to_owned()),
        ".{0,30}".prop_map(|s| urlencode(&s)),
    ]
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02x}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(150)))]

    #[test]
    fn json_routes_answer_any_body_with_a_coded_error_or_success(
        route in 0usize..6,
        body in prop_oneof![
            json_value(),
            mutated(vec![
                json!({"title":"Mug","price_cents":100,"skus":[{"attributes":{"size":"M"},"stock":5}],"faq":[{"q":"a","a":"b"}]}),
                json!({"room":"r1","sku_id":"SKU","allotted":1,"price_cents":1,"per_buyer_limit":1,"reservation_ttl_secs":60,"fair_window_ms":0,"end_at":1}),
                json!({"delta":-1,"reason":"x"}),
                json!({"id":"r1","title":"t","allow_anonymous":true}),
            ]),
        ],
        raw in prop_oneof![Just(None), any::<String>().prop_map(Some)],
    ) {
        let w = world();
        let merchant = Some(w.server.merchant_token("m1"));
        let (method, path, token) = match route {
            0 => ("POST", "/api/v1/products".to_owned(), merchant),
            1 => ("POST", "/api/v1/sales".to_owned(), merchant),
            2 => ("POST", format!("/api/v1/skus/{}/stock", w.sku), merchant),
            3 => ("POST", "/api/v1/rooms".to_owned(), Some(w.server.anchor_token("r1"))),
            4 => ("POST", format!("/api/v1/sales/{}/close", w.sale), merchant),
            _ => ("PUT", "/api/v1/rooms/r1/merchants/m9".to_owned(), Some(w.server.anchor_token("r1"))),
        };
        let body = raw.unwrap_or_else(|| body.to_string().replace("SKU", &w.sku));
        // Never close the one sale the other properties use.
        prop_assume!(route != 4 || !body.is_empty());
        let (status, reply) = send(method, &path, token, "application/json", body.clone());
        check_refusal(status, &reply, &format!("{method} {path} {body}"))?;
    }

    #[test]
    fn paths_and_queries_answer_with_a_coded_error_or_success(
        template in 0usize..9,
        a in segment(),
        b in segment(),
        query in ".{0,40}",
    ) {
        let w = world();
        let fill = |s: &str| s.replace("REAL", &w.sale);
        let (a, b) = (fill(&a), fill(&b));
        let path = match template {
            0 => format!("/api/v1/products/{a}"),
            1 => format!("/api/v1/skus/{a}"),
            2 => format!("/api/v1/sales/{a}"),
            3 => format!("/api/v1/orders/{a}"),
            4 => format!("/api/v1/orders?{}", urlencode(&query).replace("%3d", "=").replace("%26", "&")),
            5 => format!("/api/v1/rooms/{a}"),
            6 => format!("/api/v1/rooms/{a}/merchants/{b}"),
            7 => format!("/whep/{a}/{b}"),
            _ => format!("/rooms/{a}"),
        };
        let method = if template == 6 || template == 7 { "DELETE" } else { "GET" };
        let (status, reply) = send(method, &path, Some(w.server.merchant_token("m1")), "application/json", String::new());
        if template != 8 || status >= 400 {
            check_refusal(status, &reply, &path)?;
        }
    }

}

/// Mutated offers to WHEP (a live room: webrtc-rs parses and applies them) and to WHIP;
/// afterwards a real subscriber still gets video.
#[test]
fn whep_and_whip_answer_any_offer_and_video_still_flows() {
    let w = world();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases(150)));
    let offers = (
        mutated_sdp(w.subscriber_offer.clone()),
        mutated_sdp(w.publisher_offer.clone()),
    );
    runner
        .run(&offers, |(sdp, publish)| {
            let (status, reply) = send("POST", "/whep/r1", None, "application/sdp", sdp);
            if status != 201 {
                check_refusal(status, &reply, "WHEP")?;
            }
            let anchor = Some(w.server.anchor_token("w"));
            let (status, reply) = send("POST", "/whip/w", anchor, "application/sdp", publish);
            if status != 201 {
                check_refusal(status, &reply, "WHIP")?;
            }
            Ok(())
        })
        .unwrap();
    w.rt.block_on(async {
        let sub = lockstep_load::rtc::Subscriber::whep(&w.server.url(""), "r1", None)
            .await
            .expect("a real subscriber is still admitted");
        sub.wait_video(10, common::media::WAIT)
            .await
            .expect("and gets video");
    });
}
