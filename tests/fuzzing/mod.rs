//! Generators shared by the fuzz tests: arbitrary JSON, valid messages with fields
//! replaced, removed or added, and SDP offers mutated line by line.

#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::Value;

/// Cases per property: `FUZZ_CASES`, or `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Any JSON value, nested a few levels.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        prop_oneof![Just(u32::MAX as u64 + 1), Just(u64::MAX), Just(0)].prop_map(Value::from),
        Just(Value::from(-1)),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Change {
    Replace(Value),
    Remove,
    Add(String, Value),
}

/// One of `templates` with some fields replaced by any JSON, removed, or new ones added.
pub fn mutated(templates: Vec<Value>) -> impl Strategy<Value = Value> {
    let change = prop_oneof![
        json_value().prop_map(Change::Replace),
        Just(Change::Remove),
        (".{0,10}", json_value()).prop_map(|(k, v)| Change::Add(k, v)),
    ];
    (
        proptest::sample::select(templates),
        proptest::collection::vec((any::<prop::sample::Index>(), change), 0..4),
    )
        .prop_map(|(mut template, changes)| {
            if let Value::Object(fields) = &mut template {
                for (at, change) in changes {
                    let keys: Vec<String> = fields.keys().cloned().collect();
                    let key = (!keys.is_empty()).then(|| keys[at.index(keys.len())].clone());
                    match (change, key) {
                        (Change::Replace(v), Some(k)) => {
                            fields.insert(k, v);
                        }
                        (Change::Remove, Some(k)) => {
                            fields.remove(&k);
                        }
                        (Change::Add(k, v), _) => {
                            fields.insert(k, v);
                        }
                        _ => {}
                    }
                }
            }
            template
        })
}

#[derive(Debug, Clone)]
enum LineEdit {
    Drop,
    Repeat,
    Swap(prop::sample::Index),
    Replace(String),
    Truncate(prop::sample::Index),
    Number(u64),
}

/// `offer` with some lines dropped, repeated, swapped, replaced, cut, or with their
/// numbers changed; or garbage.
pub fn mutated_sdp(offer: String) -> impl Strategy<Value = String> {
    let edit = prop_oneof![
        Just(LineEdit::Drop),
        Just(LineEdit::Repeat),
        any::<prop::sample::Index>().prop_map(LineEdit::Swap),
        ".{0,40}".prop_map(LineEdit::Replace),
        any::<prop::sample::Index>().prop_map(LineEdit::Truncate),
        any::<u64>().prop_map(LineEdit::Number),
    ];
    prop_oneof![
        1 => any::<String>(),
        1 => ".{0,200}".prop_map(|s| format!("v=0\r\n{s}\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n")),
        6 => proptest::collection::vec((any::<prop::sample::Index>(), edit), 1..6).prop_map(move |edits| {
            let mut lines: Vec<String> = offer.lines().map(str::to_owned).collect();
            for (at, edit) in edits {
                if lines.is_empty() {
                    break;
                }
                let i = at.index(lines.len());
                match edit {
                    LineEdit::Drop => {
                        lines.remove(i);
                    }
                    LineEdit::Repeat => {
                        let line = lines[i].clone();
                        lines.insert(i, line);
                    }
                    LineEdit::Swap(other) => {
                        let j = other.index(lines.len());
                        lines.swap(i, j);
                    }
                    LineEdit::Replace(text) => lines[i] = text,
                    LineEdit::Truncate(at) => {
                        let line = &lines[i];
                        let cut = line
                            .char_indices()
                            .map(|(k, _)| k)
                            .nth(at.index(line.chars().count().max(1)))
                            .unwrap_or(line.len());
                        lines[i] = line[..cut].to_owned();
                    }
                    LineEdit::Number(n) => {
                        let line = &lines[i];
                        let digits: String = line.chars().filter(char::is_ascii_digit).collect();
                        if !digits.is_empty() {
                            lines[i] = line.replacen(&digits[..1], &n.to_string(), 1);
                        }
                    }
                }
            }
            lines.join("\r\n") + "\r\n"
        }),
    ]
}
