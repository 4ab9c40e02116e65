//! Pure comment rules: validating a comment's text and choosing which of a tick's comments
//! are fanned out when there are more than the room's budget.
//!
//! Sampling policy: every accepted comment enters the recent history and the timeline.
//! Of the viewer comments accepted during one tick, at most `comment_budget_per_tick`
//! are broadcast; when there are more, a uniform random subset of that size is chosen
//! (each comment equally likely) and sent in arrival order. Anchor comments are never
//! sampled, and neither are pins (they travel in their own frame). The author of a
//! sampled-away comment still got its `ack` and sees it in their own client.

use lockstep_protocol::Comment;
use rand::Rng;

use super::error::RoomError;

/// Checks a comment's text against the room's rules; returns the trimmed text.
pub fn validate<'a>(
    text: &'a str,
    max_chars: usize,
    keyword_filter: &[String],
) -> Result<&'a str, RoomError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(RoomError::CommentEmpty);
    }
    if crate::text::has_disallowed(text) {
        return Err(RoomError::CommentControlChars);
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(RoomError::CommentTooLong {
            chars,
            max: max_chars,
        });
    }
    if !keyword_filter.is_empty() {
        let lower = text.to_lowercase();
        if keyword_filter
            .iter()
            .any(|k| !k.is_empty() && lower.contains(&k.to_lowercase()))
        {
            return Err(RoomError::CommentFiltered);
        }
    }
    Ok(text)
}

/// Keeps at most `budget` of `viewer_comments` (uniformly chosen, order kept) and returns
/// them followed by nothing else; the caller appends anchor comments, which are exempt.
pub fn sample(
    mut viewer_comments: Vec<Comment>,
    budget: usize,
    rng: &mut impl Rng,
) -> Vec<Comment> {
    let n = viewer_comments.len();
    if n <= budget {
        return viewer_comments;
    }
    // Choose `budget` distinct indices uniformly (partial Fisher–Yates), then keep order.
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..budget {
        let j = rng.random_range(i..n);
        idx.swap(i, j);
    }
    let mut keep = vec![false; n];
    for &i in &idx[..budget] {
        keep[i] = true;
    }
    let mut i = 0;
    viewer_comments.retain(|_| {
        let k = keep[i];
        i += 1;
        k
    });
    viewer_comments
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_protocol::{ErrorCode, WireError};
    use proptest::prelude::*;
    use rand::{SeedableRng, rngs::SmallRng};

    fn comment(id: u64) -> Comment {
        Comment {
            id,
            user: format!("u{id}"),
            name: "n".into(),
            text: "t".into(),
            at: 0,
            anchor: false,
        }
    }

    #[test]
    fn validation_rules() {
        let filter = vec!["Spam".to_string()];
        assert_eq!(validate("  hi ", 10, &filter), Ok("hi"));
        assert_eq!(
            validate("   ", 10, &filter).unwrap_err().code(),
            ErrorCode::CommentEmpty
        );
        assert_eq!(
            validate("héllo wörld", 5, &filter).unwrap_err().code(),
            ErrorCode::CommentTooLong
        );
        assert_eq!(
            validate("buy SPAM now", 50, &filter).unwrap_err().code(),
            ErrorCode::CommentFiltered
        );
        // Length counts characters, not bytes.
        assert!(validate("ééééé", 5, &[]).is_ok());
        // NUL, other controls and bidi overrides never reach other viewers.
        for bad in ["a\u{0}b", "ring\u{7}", "line\nbreak", "txt\u{202E}exe"] {
            assert_eq!(
                validate(bad, 50, &[]).unwrap_err().code(),
                ErrorCode::InvalidMessage,
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn sample_keeps_budget_order_and_membership(n in 0usize..200, budget in 0usize..60, seed: u64) {
            let input: Vec<Comment> = (0..n as u64).map(comment).collect();
            let out = sample(input, budget, &mut SmallRng::seed_from_u64(seed));
            prop_assert_eq!(out.len(), n.min(budget));
            prop_assert!(out.windows(2).all(|w| w[0].id < w[1].id));
            prop_assert!(out.iter().all(|c| (c.id as usize) < n));
        }
    }

    #[test]
    fn sample_is_roughly_uniform() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut hits = [0u32; 10];
        for _ in 0..10_000 {
            for c in sample((0..10).map(comment).collect(), 3, &mut rng) {
                hits[c.id as usize] += 1;
            }
        }
        // Expected 3,000 each; a biased sampler (e.g. always the first three) fails this.
        assert!(
            hits.iter().all(|&h| (2_700..3_300).contains(&h)),
            "{hits:?}"
        );
    }
}
