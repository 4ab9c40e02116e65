//! Which characters user-supplied text may hold. Control characters (C0, DEL, C1) and
//! the invisible bidirectional controls that can reorder what a reader sees are never
//! shown to other people: comments and catalogue titles holding them are refused,
//! display names and room titles have them removed.

/// Whether `c` is a control or bidirectional formatting character.
pub fn is_disallowed(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// Whether `s` holds any disallowed character.
pub fn has_disallowed(s: &str) -> bool {
    s.chars().any(is_disallowed)
}

/// Whether `s` holds a disallowed character other than line breaks and tabs (for
/// multi-line text such as product descriptions).
pub fn has_disallowed_in_multiline(s: &str) -> bool {
    s.chars()
        .any(|c| is_disallowed(c) && !matches!(c, '\n' | '\r' | '\t'))
}

/// `s` without disallowed characters, trimmed, at most `max_chars` characters.
pub fn clean_label(s: &str, max_chars: usize) -> String {
    let cleaned: String = s.chars().filter(|c| !is_disallowed(*c)).collect();
    cleaned.trim().chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn controls_and_bidi_overrides_are_disallowed() {
        assert!(has_disallowed("a\u{0}b"));
        assert!(has_disallowed("bell\u{7}"));
        assert!(has_disallowed("evil\u{202E}txt.exe"));
        assert!(has_disallowed("line\nbreak"));
        assert!(!has_disallowed_in_multiline("line\nbreak\ttab"));
        assert!(!has_disallowed("héllo wörld 👋 混合"));
        assert_eq!(clean_label("  Al\u{0}ice\u{202E} ", 64), "Alice");
        assert_eq!(clean_label("abcdef", 3), "abc");
    }

    proptest! {
        #[test]
        fn a_cleaned_label_has_nothing_disallowed(s in any::<String>(), max in 0usize..80) {
            let label = clean_label(&s, max);
            prop_assert!(!has_disallowed(&label));
            prop_assert!(label.chars().count() <= max);
        }
    }
}
