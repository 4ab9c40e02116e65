//! Decoding client frames into [`ClientMsg`], with an error that says exactly what was
//! wrong so the server can answer with the right [`ErrorCode`].

use crate::{ClientMsg, ErrorCode};

/// Why a text frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub code: ErrorCode,
    pub message: String,
    /// The request `id` if the frame carried a readable one, so the error can echo it.
    pub id: Option<u64>,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl crate::WireError for DecodeError {
    fn code(&self) -> ErrorCode {
        self.code
    }
}

/// Decodes one text frame. The happy path is a single typed parse; only failures pay for
/// a second look to classify the error.
pub fn decode_client(text: &str) -> Result<ClientMsg, DecodeError> {
    match serde_json::from_str::<ClientMsg>(text) {
        Ok(msg) => Ok(msg),
        Err(typed_err) => Err(classify(text, typed_err)),
    }
}

fn classify(text: &str, typed_err: serde_json::Error) -> DecodeError {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return DecodeError {
                code: ErrorCode::MalformedJson,
                message: format!("not valid JSON: {e}"),
                id: None,
            };
        }
    };
    let id = value.get("id").and_then(serde_json::Value::as_u64);
    let Some(obj) = value.as_object() else {
        return DecodeError {
            code: ErrorCode::InvalidMessage,
            message: "a message must be a JSON object".into(),
            id,
        };
    };
    match obj.get("type").map(|t| t.as_str()) {
        None => DecodeError {
            code: ErrorCode::InvalidMessage,
            message: "missing field `type`".into(),
            id,
        },
        Some(None) => DecodeError {
            code: ErrorCode::InvalidMessage,
            message: "field `type` must be a string".into(),
            id,
        },
        Some(Some(t)) if !is_known_type(t) => DecodeError {
            code: ErrorCode::UnknownType,
            message: format!("unknown message type `{t}`"),
            id,
        },
        Some(Some(t)) if t == "control" && !obj.contains_key("cmd") => DecodeError {
            code: ErrorCode::InvalidMessage,
            message: "missing field `cmd`".into(),
            id,
        },
        Some(Some(_)) => {
            let detail = typed_err.to_string();
            let code = if detail.starts_with("unknown variant") {
                ErrorCode::UnknownType
            } else {
                ErrorCode::InvalidMessage
            };
            DecodeError {
                code,
                message: detail,
                id,
            }
        }
    }
}

/// Whether `type` names a [`ClientMsg`] variant. Asked of the enum itself (a frame with
/// only this tag is decoded; serde says "unknown variant" exactly when no variant has
/// it), so a new message type can never be missing from a hand-kept list.
fn is_known_type(t: &str) -> bool {
    let probe = serde_json::json!({ "type": t });
    match serde_json::from_value::<ClientMsg>(probe) {
        Ok(_) => true,
        Err(e) => !e.to_string().starts_with("unknown variant"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ControlCmd;

    #[test]
    fn decodes_each_viewer_message() {
        assert_eq!(
            decode_client(r#"{"type":"comment","text":"hi","id":3}"#).unwrap(),
            ClientMsg::Comment {
                text: "hi".into(),
                id: Some(3)
            }
        );
        assert_eq!(
            decode_client(r#"{"type":"like"}"#).unwrap(),
            ClientMsg::Like { count: 1 }
        );
        assert_eq!(
            decode_client(r#"{"type":"time_sync","t0":12.5}"#).unwrap(),
            ClientMsg::TimeSync { t0: 12.5 }
        );
    }

    #[test]
    fn decodes_control_commands() {
        assert_eq!(
            decode_client(r#"{"type":"control","cmd":"mute","user":"u1","seconds":30,"id":9}"#)
                .unwrap(),
            ClientMsg::Control {
                cmd: ControlCmd::Mute {
                    user: "u1".into(),
                    seconds: 30
                },
                id: Some(9)
            }
        );
    }

    #[test]
    fn classifies_errors() {
        assert_eq!(
            decode_client("{nope").unwrap_err().code,
            ErrorCode::MalformedJson
        );
        assert_eq!(
            decode_client("[1]").unwrap_err().code,
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            decode_client(r#"{"text":"x"}"#).unwrap_err().code,
            ErrorCode::InvalidMessage
        );
        let e = decode_client(r#"{"type":"teleport","id":4}"#).unwrap_err();
        assert_eq!((e.code, e.id), (ErrorCode::UnknownType, Some(4)));
        assert_eq!(
            decode_client(r#"{"type":"comment","id":5}"#)
                .unwrap_err()
                .code,
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            decode_client(r#"{"type":"control","cmd":"explode"}"#)
                .unwrap_err()
                .code,
            ErrorCode::UnknownType
        );
        assert_eq!(
            decode_client(r#"{"type":"like","count":-1}"#)
                .unwrap_err()
                .code,
            ErrorCode::InvalidMessage
        );
    }

    #[test]
    fn every_message_type_is_known_to_the_classifier() {
        // A malformed frame of each type is `invalid_message`, never `unknown_type`.
        for frame in [
            r#"{"type":"join"}"#,
            r#"{"type":"comment","text":5}"#,
            r#"{"type":"like","count":"x"}"#,
            r#"{"type":"time_sync"}"#,
            r#"{"type":"ping","id":"x"}"#,
            r#"{"type":"order","sale_id":"s"}"#,
            r#"{"type":"cancel_order"}"#,
            r#"{"type":"rtc_offer","layer":"low"}"#,
            r#"{"type":"rtc_layer","id":4}"#,
            r#"{"type":"rtc_close","id":-1}"#,
            r#"{"type":"control","cmd":"mute"}"#,
        ] {
            let err = decode_client(frame).unwrap_err();
            assert_eq!(
                err.code,
                ErrorCode::InvalidMessage,
                "{frame}: {}",
                err.message
            );
        }
    }

    #[test]
    fn server_messages_round_trip() {
        let msg = crate::ServerMsg::error(Some(1), ErrorCode::RateLimited, "slow down");
        let json = msg.to_json();
        assert!(json.contains(r#""code":400"#), "{json}");
        assert!(json.contains(r#""name":"rate_limited""#), "{json}");
        let back: crate::ServerMsg = serde_json::from_str(&json).unwrap();
        assert_eq!(back, msg);
    }
}
