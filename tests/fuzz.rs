//! Property-based fuzzing of everything that parses outside input, without a server:
//! client frames (arbitrary text, arbitrary JSON, and valid messages with fields
//! replaced, removed or added), anchor commands run through a room core, tokens
//! (garbage and tampered real ones), the merchant API's JSON bodies, and SDP offers
//! (garbage and mutated real ones) through the SFU's offer parser, which wraps
//! webrtc-rs's. Nothing may panic; every refusal carries its documented code.
//!
//! Cases per property: `FUZZ_CASES` (default 500); `scripts/fuzz.sh` runs these
//! and `tests/fuzz_server.rs` for as long as asked with many more.

mod fuzzing;

use std::sync::Arc;

use fuzzing::{cases, json_value, mutated};
use lockstep::auth::{Auth, Claims, unix_now};
use lockstep_actors::config::{RoomConfig, SessionConfig};
use lockstep_actors::room::{Identity, RoomCore, SessionId};
use lockstep_actors::session::{Action, Endpoint, SessionCore};
use lockstep_actors::store::{NewProduct, NewSale, StockChange};
use lockstep_protocol::{ClientMsg, ErrorCode, Role, ServerMsg, WireError, decode_client};
use proptest::prelude::*;
use serde_json::{Value, json};

/// One valid frame of every client message and anchor command.
fn client_templates() -> Vec<Value> {
    let mut frames = vec![
        json!({"type":"join","protocol":1,"token":"t","title":"x","id":1}),
        json!({"type":"comment","text":"hello","id":2}),
        json!({"type":"like","count":3}),
        json!({"type":"time_sync","t0":12.5}),
        json!({"type":"ping","id":4}),
        json!({"type":"order","sale_id":"s1","qty":1,"key":"k","id":5}),
        json!({"type":"cancel_order","order_id":"s1-1","id":6}),
        json!({"type":"rtc_offer","sdp":"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n","layer":"auto","id":7}),
        json!({"type":"rtc_layer","layer":"low","id":8}),
        json!({"type":"rtc_close","id":9}),
    ];
    for cmd in [
        json!({"cmd":"go_live"}),
        json!({"cmd":"pause"}),
        json!({"cmd":"end"}),
        json!({"cmd":"pin","comment_id":1}),
        json!({"cmd":"unpin"}),
        json!({"cmd":"say","text":"hi"}),
        json!({"cmd":"mute","user":"u","seconds":30}),
        json!({"cmd":"unmute","user":"u"}),
        json!({"cmd":"ban","user":"u","clear_comments":true}),
        json!({"cmd":"unban","user":"u"}),
        json!({"cmd":"clear_comments","user":"u"}),
        json!({"cmd":"slow_mode","seconds":5}),
        json!({"cmd":"allow_anonymous","allowed":false}),
        json!({"cmd":"drop_link","sale_id":"s1","countdown_ms":3000}),
        json!({"cmd":"close_sale","sale_id":"s1"}),
    ] {
        let mut frame = cmd;
        frame["type"] = json!("control");
        frame["id"] = json!(10);
        frames.push(frame);
    }
    frames
}

fn any_client_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        json_value().prop_map(|v| v.to_string()),
        mutated(client_templates()).prop_map(|v| v.to_string()),
        // Valid prefixes cut anywhere.
        (mutated(client_templates()), any::<prop::sample::Index>()).prop_map(|(v, at)| {
            let text = v.to_string();
            let cut = at.index(text.len() + 1);
            String::from_utf8_lossy(&text.as_bytes()[..cut]).into_owned()
        }),
    ]
}

/// Codes a frame-level refusal may carry.
fn frame_code(code: ErrorCode) -> bool {
    (100..200).contains(&code.code())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(500)))]

    /// The decoder answers every text with a message or a 1xx refusal; a decoded message
    /// encodes back to a frame that decodes to the same message.
    #[test]
    fn client_frames_decode_or_get_a_frame_error(text in any_client_text()) {
        match decode_client(&text) {
            Ok(msg) => {
                let again = decode_client(&serde_json::to_string(&msg).unwrap());
                prop_assert_eq!(again.as_ref().ok(), Some(&msg));
            }
            Err(e) => prop_assert!(frame_code(e.code), "{:?} for {}", e.code, text),
        }
    }

    /// A session, joined or not, on either endpoint, turns any frame into an action and
    /// answers refusals with documented codes.
    #[test]
    fn sessions_answer_any_frame(texts in proptest::collection::vec(any_client_text(), 1..20), control in any::<bool>(), joined in any::<bool>()) {
        let endpoint = if control { Endpoint::Control } else { Endpoint::Viewer };
        let mut session = SessionCore::new(endpoint, &SessionConfig::default(), 0);
        if joined {
            session.joined();
        }
        for (i, text) in texts.iter().enumerate() {
            if let Action::Reply(ServerMsg::Error { name, .. }) = session.on_text(i as u64, i as f64, text) {
                prop_assert!(
                    frame_code(name) || matches!(name, ErrorCode::Forbidden | ErrorCode::RateLimited),
                    "{:?} for {}", name, text
                );
            }
        }
    }

    /// Whatever anchor commands decode from mutated frames, a room core carries them out
    /// or refuses them; it never panics, and its counts stay consistent.
    #[test]
    fn anchor_commands_never_break_a_room(frames in proptest::collection::vec(mutated(client_templates()), 1..40)) {
        let mut room = RoomCore::new("r1".into(), "t".into(), Arc::new(RoomConfig::default()), 0, 1);
        let anchor = Identity { user: Some("host".into()), name: "Host".into(), role: Role::Anchor };
        let viewer = Identity { user: Some("u".into()), name: "U".into(), role: Role::Viewer };
        room.join(0, SessionId(1), anchor).unwrap();
        let _ = room.join(0, SessionId(2), viewer);
        for (i, frame) in frames.iter().enumerate() {
            let now = i as u64 * 100;
            match decode_client(&frame.to_string()) {
                Ok(ClientMsg::Control { cmd, id }) => room.control(now, SessionId(1), cmd, id),
                Ok(ClientMsg::Comment { text, id }) => room.comment(now, SessionId(2), &text, id),
                Ok(ClientMsg::Like { count }) => room.like(SessionId(2), count, None),
                _ => {}
            }
            room.tick(now);
            while room.poll_output().is_some() {}
        }
        prop_assert!(room.online() <= 1);
    }

    /// Tokens: garbage and tampered real tokens are refused as `unauthorized` (or
    /// `token_expired`); only the untouched token verifies.
    #[test]
    fn tokens_verify_or_are_refused(garbage in any::<String>(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4)) {
        let auth = Auth::new("a-secret-for-the-fuzzer-0123456789abcdef");
        for token in [garbage.clone(), format!("{garbage}.{garbage}.{garbage}")] {
            let e = auth.verify(&token).unwrap_err();
            prop_assert!(matches!(e.code(), ErrorCode::Unauthorized | ErrorCode::TokenExpired));
        }
        let real = auth.issue(&Claims {
            sub: "u1".into(), role: Role::Viewer, room: Some("r1".into()), merchant: None,
            name: Some("U".into()), exp: unix_now() + 60,
        });
        let mut bytes = real.clone().into_bytes();
        for (at, b) in &flips {
            let i = at.index(bytes.len());
            bytes[i] = *b;
        }
        let tampered = String::from_utf8_lossy(&bytes).into_owned();
        match auth.verify(&tampered) {
            Ok(claims) => prop_assert_eq!(claims.sub, "u1", "a verified token is the real one"),
            Err(e) => prop_assert!(matches!(e.code(), ErrorCode::Unauthorized | ErrorCode::TokenExpired)),
        }
    }

    /// The merchant API's bodies: any JSON deserializes to a body whose validation
    /// answers, or is refused by the deserializer; nothing panics.
    #[test]
    fn merchant_bodies_validate_or_are_refused(value in prop_oneof![
        json_value(),
        mutated(vec![
            json!({"title":"Mug","price_cents":100,"skus":[{"attributes":{"size":"M"},"stock":5}],"faq":[{"q":"a","a":"b"}]}),
            json!({"room":"r1","sku_id":"sku_1","allotted":1,"price_cents":1,"per_buyer_limit":1,"reservation_ttl_secs":60,"fair_window_ms":0,"end_at":1}),
            json!({"delta":-1,"reason":"x"}),
        ]),
    ]) {
        if let Ok(p) = serde_json::from_value::<NewProduct>(value.clone()) {
            let _ = p.validate();
        }
        if let Ok(s) = serde_json::from_value::<NewSale>(value.clone()) {
            let _ = s.validate();
        }
        let _ = serde_json::from_value::<StockChange>(value);
    }
}

/// A real offer from a webrtc-rs receiver, as a WHEP player would send.
fn real_offer() -> String {
    static OFFER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OFFER
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    lockstep_load::rtc::Subscriber::new()
                        .await
                        .unwrap()
                        .offer()
                        .to_owned()
                })
        })
        .clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(500)))]

    /// Offers — garbage, or a real one with lines dropped, repeated, swapped, cut or
    /// rewritten — are parsed or refused as `invalid_sdp`; the parser never panics.
    #[test]
    fn sdp_offers_parse_or_are_refused(sdp in fuzzing::mutated_sdp(real_offer())) {
        let cfg = lockstep_sfu::MediaConfig::default();
        match lockstep_sfu::engine::parse_offer(&sdp, &cfg) {
            Ok(_) => {}
            Err(e) => prop_assert_eq!(e.code(), ErrorCode::InvalidSdp, "{:?}", e),
        }
    }
}
