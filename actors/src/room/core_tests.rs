//! Unit and property tests of the room core, without a runtime.

use crate::sync::plain::Arc;

use lockstep_protocol::{CloseCode, ControlCmd, ErrorCode, Role, RoomState, ServerMsg, WireError};
use proptest::prelude::*;

use super::core::{Identity, Output, RoomCore, SessionId};
use crate::config::RoomConfig;

fn room(cfg: RoomConfig) -> RoomCore {
    RoomCore::new("r1".into(), "Spring drop".into(), Arc::new(cfg), 0, 1)
}

fn viewer(user: &str) -> Identity {
    Identity {
        user: Some(user.into()),
        name: user.to_uppercase(),
        role: Role::Viewer,
    }
}

fn anonymous() -> Identity {
    Identity {
        user: None,
        name: "guest".into(),
        role: Role::Viewer,
    }
}

fn anchor() -> Identity {
    Identity {
        user: Some("host".into()),
        name: "Host".into(),
        role: Role::Anchor,
    }
}

fn drain(core: &mut RoomCore) -> Vec<Output> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

fn errors_to(outputs: &[Output], session: SessionId) -> Vec<ErrorCode> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send(s, ServerMsg::Error { name, .. }) if *s == session => Some(*name),
            _ => None,
        })
        .collect()
}

fn ticks(outputs: &[Output]) -> Vec<ServerMsg> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast(m @ ServerMsg::Tick { .. }) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn welcome_carries_snapshot() {
    let mut r = room(RoomConfig::default());
    r.join(0, SessionId(1), anchor()).unwrap();
    r.join(0, SessionId(2), viewer("a")).unwrap();
    r.comment(10, SessionId(2), "first!", Some(1));
    r.control(20, SessionId(1), ControlCmd::Pin { comment_id: 1 }, None);
    let ServerMsg::Welcome {
        room: snap,
        you,
        server_time,
        ..
    } = r.join(30, SessionId(3), viewer("b")).unwrap()
    else {
        panic!("join returns a welcome");
    };
    assert_eq!(server_time, 30);
    assert_eq!(snap.title, "Spring drop");
    assert_eq!(snap.online, 2, "the anchor is not counted as online");
    assert_eq!(snap.recent_comments.len(), 1);
    assert_eq!(snap.pinned.as_ref().map(|c| c.id), Some(1));
    assert_eq!(you.user.as_deref(), Some("b"));
}

#[test]
fn join_refusals_change_nothing() {
    let mut r = room(RoomConfig {
        allow_anonymous: false,
        max_viewers: 1,
        ..Default::default()
    });
    assert_eq!(
        r.join(0, SessionId(1), anonymous()).unwrap_err().code(),
        ErrorCode::AuthRequired
    );
    r.join(0, SessionId(2), viewer("a")).unwrap();
    assert_eq!(
        r.join(0, SessionId(3), viewer("b")).unwrap_err().code(),
        ErrorCode::RoomFull
    );
    assert_eq!(r.online(), 1);
}

#[test]
fn comments_batched_per_tick() {
    let mut r = room(RoomConfig {
        comment_burst: 10,
        ..Default::default()
    });
    r.join(0, SessionId(1), viewer("a")).unwrap();
    for i in 0..5 {
        r.comment(1, SessionId(1), &format!("c{i}"), Some(i));
    }
    let acks = drain(&mut r);
    assert_eq!(acks.len(), 5, "each comment acked to its sender");
    r.tick(100);
    let out = drain(&mut r);
    let t = ticks(&out);
    assert_eq!(t.len(), 1, "one frame per tick");
    let ServerMsg::Tick { comments, .. } = &t[0] else {
        unreachable!()
    };
    assert_eq!(
        comments.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
        ["c0", "c1", "c2", "c3", "c4"]
    );
    r.tick(200);
    assert!(
        ticks(&drain(&mut r)).is_empty(),
        "a quiet tick sends nothing"
    );
}

#[test]
fn anonymous_viewers_like_but_cannot_comment() {
    let mut r = room(RoomConfig::default());
    r.join(0, SessionId(1), anonymous()).unwrap();
    r.comment(1, SessionId(1), "hi", None);
    assert_eq!(
        errors_to(&drain(&mut r), SessionId(1)),
        [ErrorCode::AuthRequired]
    );
    r.like(SessionId(1), 3, None);
    r.tick(100);
    let t = ticks(&drain(&mut r));
    assert!(
        matches!(&t[0], ServerMsg::Tick { likes: Some(l), .. } if l.total == 3 && l.delta == 3)
    );
}

#[test]
fn comment_rules_refuse_with_codes() {
    let cfg = RoomConfig {
        comment_max_chars: 10,
        keyword_filter: vec!["scam".into()],
        comment_burst: 2,
        comment_rate_per_sec: 1.0,
        ..Default::default()
    };
    let mut r = room(cfg);
    r.join(0, SessionId(1), viewer("a")).unwrap();
    r.comment(0, SessionId(1), "this is far too long", None);
    r.comment(0, SessionId(1), "a SCAM", None);
    r.comment(0, SessionId(1), "  ", None);
    r.comment(0, SessionId(1), "ok1", None);
    r.comment(0, SessionId(1), "ok2", None);
    r.comment(0, SessionId(1), "ok3", None);
    assert_eq!(
        errors_to(&drain(&mut r), SessionId(1)),
        [
            ErrorCode::CommentTooLong,
            ErrorCode::CommentFiltered,
            ErrorCode::CommentEmpty,
            ErrorCode::RateLimited
        ]
    );
}

#[test]
fn moderation_mute_slow_mode_ban_clear() {
    let mut r = room(RoomConfig {
        comment_burst: 100,
        comment_rate_per_sec: 100.0,
        ..Default::default()
    });
    r.join(0, SessionId(1), anchor()).unwrap();
    r.join(0, SessionId(2), viewer("a")).unwrap();
    r.join(0, SessionId(3), viewer("b")).unwrap();
    r.comment(0, SessionId(3), "hello from b", None);
    drain(&mut r);

    r.control(
        0,
        SessionId(1),
        ControlCmd::Mute {
            user: "a".into(),
            seconds: 10,
        },
        Some(1),
    );
    r.comment(1_000, SessionId(2), "let me talk", None);
    assert_eq!(errors_to(&drain(&mut r), SessionId(2)), [ErrorCode::Muted]);
    r.comment(10_001, SessionId(2), "mute over", None);
    assert!(errors_to(&drain(&mut r), SessionId(2)).is_empty());

    r.control(
        11_000,
        SessionId(1),
        ControlCmd::SlowMode { seconds: 5 },
        None,
    );
    r.comment(15_001, SessionId(2), "one", None);
    r.comment(16_000, SessionId(2), "two", None);
    r.comment(20_001, SessionId(2), "three", None);
    assert_eq!(
        errors_to(&drain(&mut r), SessionId(2)),
        [ErrorCode::SlowMode]
    );

    r.control(
        21_000,
        SessionId(1),
        ControlCmd::Ban {
            user: "b".into(),
            clear_comments: true,
        },
        Some(2),
    );
    let out = drain(&mut r);
    assert!(out.contains(&Output::Close(SessionId(3), CloseCode::Banned)));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send(SessionId(1), ServerMsg::Ack { id: Some(2), .. })
    )));
    assert!(r.snapshot().recent_comments.iter().all(|c| c.user != "b"));
    assert_eq!(r.online(), 1);
    assert_eq!(
        r.join(22_000, SessionId(4), viewer("b"))
            .unwrap_err()
            .code(),
        ErrorCode::Banned
    );
}

#[test]
fn viewers_cannot_send_control_commands() {
    let mut r = room(RoomConfig::default());
    r.join(0, SessionId(2), viewer("a")).unwrap();
    r.control(0, SessionId(2), ControlCmd::End, Some(1));
    assert_eq!(
        errors_to(&drain(&mut r), SessionId(2)),
        [ErrorCode::Forbidden]
    );
    assert_eq!(r.state(), RoomState::Created);
}

#[test]
fn lifecycle_transitions() {
    let mut r = room(RoomConfig::default());
    r.join(0, SessionId(1), anchor()).unwrap();
    r.control(0, SessionId(1), ControlCmd::Pause, None);
    assert_eq!(
        errors_to(&drain(&mut r), SessionId(1)),
        [ErrorCode::InvalidTransition]
    );
    r.control(0, SessionId(1), ControlCmd::GoLive, None);
    r.control(0, SessionId(1), ControlCmd::Pause, None);
    r.control(0, SessionId(1), ControlCmd::GoLive, None);
    assert_eq!(r.state(), RoomState::Live);
    r.join(0, SessionId(2), viewer("a")).unwrap();
    r.control(5, SessionId(1), ControlCmd::End, None);
    let out = drain(&mut r);
    assert!(out.contains(&Output::Close(SessionId(2), CloseCode::RoomEnded)));
    assert_eq!(out.last(), Some(&Output::Release));
    assert_eq!(
        r.join(6, SessionId(3), viewer("c")).unwrap_err().code(),
        ErrorCode::RoomEnded
    );
}

#[test]
fn sampling_never_drops_anchor_comments() {
    let mut r = room(RoomConfig {
        comment_budget_per_tick: 3,
        ..Default::default()
    });
    r.join(0, SessionId(1), anchor()).unwrap();
    for i in 0..20 {
        r.join(0, SessionId(10 + i), viewer(&format!("v{i}")))
            .unwrap();
        r.comment(0, SessionId(10 + i), "buy buy", None);
    }
    r.control(
        0,
        SessionId(1),
        ControlCmd::Say {
            text: "link in 3".into(),
        },
        None,
    );
    r.tick(100);
    let t = ticks(&drain(&mut r));
    let ServerMsg::Tick { comments, .. } = &t[0] else {
        unreachable!()
    };
    assert_eq!(comments.len(), 4);
    assert!(comments.iter().any(|c| c.anchor && c.text == "link in 3"));
    assert_eq!(
        r.snapshot().recent_comments.len(),
        21,
        "history keeps every accepted comment"
    );
}

#[test]
fn idle_room_ends_itself() {
    let mut r = room(RoomConfig {
        idle_end_secs: 10,
        ..Default::default()
    });
    r.tick(9_000);
    assert_eq!(r.state(), RoomState::Created);
    r.tick(10_000);
    assert_eq!(r.state(), RoomState::Ended);
    assert_eq!(drain(&mut r).last(), Some(&Output::Release));
}

#[derive(Debug, Clone)]
enum Op {
    Join(u64, bool),
    Leave(u64),
    Like(u64, u32),
    Comment(u64),
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..30, any::<bool>()).prop_map(|(s, anon)| Op::Join(s, anon)),
        (0u64..30).prop_map(Op::Leave),
        (0u64..30, 0u32..120).prop_map(|(s, n)| Op::Like(s, n)),
        (0u64..30).prop_map(Op::Comment),
        (1u64..500).prop_map(Op::Tick),
    ]
}

proptest! {
    /// Whatever the interleaving: online equals the viewers present; the like tallies
    /// broadcast add up to exactly the likes accepted; comment ids in ticks only grow;
    /// no frame carries more viewer comments than the budget.
    #[test]
    fn counts_and_tallies_stay_exact(ops in proptest::collection::vec(op(), 1..400)) {
        let cfg = RoomConfig { comment_budget_per_tick: 4, comment_burst: 3, ..Default::default() };
        let mut r = room(cfg);
        let mut present = std::collections::HashSet::new();
        let (mut now, mut accepted_likes, mut tallied, mut last_id) = (0u64, 0u64, 0u64, 0u64);
        let check = |r: &mut RoomCore, tallied: &mut u64, last_id: &mut u64| {
            for o in drain(r) {
                if let Output::Broadcast(ServerMsg::Tick { comments, likes, .. }) = o {
                    prop_assert!(comments.len() <= 4);
                    for c in comments { prop_assert!(c.id > *last_id); *last_id = c.id; }
                    if let Some(l) = likes { *tallied += l.delta; prop_assert_eq!(l.total, *tallied); }
                }
            }
            Ok(())
        };
        for op in ops {
            match op {
                Op::Join(s, anon) => {
                    let id = if anon { anonymous() } else { viewer(&format!("u{s}")) };
                    if r.join(now, SessionId(s), id).is_ok() { present.insert(s); }
                }
                Op::Leave(s) => { r.leave(now, SessionId(s)); present.remove(&s); }
                Op::Like(s, n) => {
                    r.like(SessionId(s), n, None);
                    if present.contains(&s) && (1..=100).contains(&n) { accepted_likes += u64::from(n); }
                }
                Op::Comment(s) => r.comment(now, SessionId(s), "hey", None),
                Op::Tick(dt) => { now += dt; r.tick(now); }
            }
            prop_assert_eq!(r.online(), present.len() as u64);
            check(&mut r, &mut tallied, &mut last_id)?;
        }
        r.tick(now + 1);
        check(&mut r, &mut tallied, &mut last_id)?;
        prop_assert_eq!(tallied, accepted_likes);
        prop_assert_eq!(r.likes_total(), accepted_likes);
    }
}

#[test]
fn ban_and_mute_lists_are_bounded() {
    let mut r = room(RoomConfig {
        max_bans: 2,
        max_mutes: 1,
        ..Default::default()
    });
    r.join(0, SessionId(1), anchor()).unwrap();
    let ban = |user: &str| ControlCmd::Ban {
        user: user.into(),
        clear_comments: false,
    };
    for user in ["a", "b", "b"] {
        r.control(0, SessionId(1), ban(user), None);
    }
    assert!(
        errors_to(&drain(&mut r), SessionId(1)).is_empty(),
        "a repeat ban is free"
    );
    r.control(0, SessionId(1), ban("c"), None);
    assert_eq!(
        errors_to(&drain(&mut r), SessionId(1)),
        [ErrorCode::LimitReached]
    );
    assert_eq!(
        r.may_view(Some("c")),
        Ok(()),
        "a refused ban changed nothing"
    );
    let mute = |user: &str| ControlCmd::Mute {
        user: user.into(),
        seconds: 10,
    };
    r.control(0, SessionId(1), mute("a"), None);
    r.control(0, SessionId(1), mute("b"), None);
    assert_eq!(
        errors_to(&drain(&mut r), SessionId(1)),
        [ErrorCode::LimitReached]
    );
    // An expired mute frees its place.
    r.control(10_001, SessionId(1), mute("b"), None);
    assert!(errors_to(&drain(&mut r), SessionId(1)).is_empty());
}

#[test]
fn the_timeline_and_online_series_keep_their_bounds() {
    let mut r = room(RoomConfig {
        timeline_max_events: 5,
        online_series_max_points: 3,
        online_interval_ms: 10,
        comment_burst: 100,
        comment_rate_per_sec: 100.0,
        ..Default::default()
    });
    r.join(0, SessionId(1), viewer("a")).unwrap();
    for i in 0..20 {
        r.comment(i, SessionId(1), "hi", None);
        r.tick(i * 10);
    }
    assert_eq!(r.timeline().count(), 5);
    assert!(r.timeline_dropped() >= 16, "{}", r.timeline_dropped());
    assert_eq!(r.online_series().count(), 3);
    // The newest events are the ones kept.
    assert!(r.timeline().all(|e| e.at >= 15));
}

#[test]
fn a_restarted_core_keeps_settings_and_moderation_and_drops_members() {
    let mut r = room(RoomConfig::default());
    r.join(0, SessionId(1), anchor()).unwrap();
    r.join(0, SessionId(2), viewer("v")).unwrap();
    r.control(0, SessionId(1), ControlCmd::GoLive, None);
    r.control(0, SessionId(1), ControlCmd::SlowMode { seconds: 7 }, None);
    r.control(
        0,
        SessionId(1),
        ControlCmd::Ban {
            user: "mallory".into(),
            clear_comments: false,
        },
        None,
    );
    r.comment(0, SessionId(2), "before", None);
    let fresh = r.restarted(5, 2);
    let snapshot = fresh.snapshot();
    assert_eq!(snapshot.state, RoomState::Live);
    assert_eq!(snapshot.slow_mode, 7);
    assert_eq!(snapshot.online, 0, "members reconnect into the new core");
    assert!(snapshot.recent_comments.is_empty());
    assert_eq!(
        fresh.may_view(Some("mallory")).unwrap_err().code(),
        ErrorCode::Banned
    );
}

fn card(sale_id: &str, reveal_at: u64) -> lockstep_protocol::LinkCard {
    lockstep_protocol::LinkCard {
        sale_id: sale_id.into(),
        product_id: "p".into(),
        sku_id: "k".into(),
        title: "t".into(),
        description: String::new(),
        image_url: String::new(),
        attributes: Default::default(),
        price_cents: 100,
        sale_price_cents: 100,
        allotted: 1,
        per_buyer_limit: 1,
        reveal_at,
        reveal_rtp: None,
        remaining: 1,
    }
}

fn links(outputs: &[Output]) -> Vec<lockstep_protocol::LinkCard> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast(ServerMsg::Link { link }) => Some(link.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_links_frame_is_fixed_by_its_first_drop_and_survives_a_restart() {
    let mut r = room(RoomConfig::default());
    r.join(0, SessionId(1), anchor()).unwrap();
    drain(&mut r);
    r.link_dropped(0, SessionId(1), None, card("s1", 3_000), Some(900), true);
    // A re-drop: the sale answers with the first reveal time, this drop's frame is moot.
    r.link_dropped(
        10,
        SessionId(1),
        None,
        card("s1", 3_000),
        Some(1_800),
        false,
    );
    r.link_dropped(20, SessionId(1), None, card("s2", 4_000), Some(2_700), true);
    let frames: Vec<_> = links(&drain(&mut r)).iter().map(|c| c.reveal_rtp).collect();
    assert_eq!(frames, [Some(900), Some(900), Some(2_700)]);
    let mut fresh = r.restarted(30, 3);
    fresh.join(30, SessionId(5), anchor()).unwrap();
    fresh.link_dropped(
        40,
        SessionId(5),
        None,
        card("s1", 3_000),
        Some(5_000),
        false,
    );
    assert_eq!(links(&drain(&mut fresh))[0].reveal_rtp, Some(900));
}

#[test]
fn the_archive_gets_each_seconds_counts_and_funnels_count_once_per_session() {
    use lockstep_protocol::FunnelStep::{Clicked, Shown};
    let mut r = room(RoomConfig::default());
    let (a, v1, v2) = (SessionId(1), SessionId(2), SessionId(3));
    r.join(0, a, anchor()).unwrap();
    r.join(0, v1, viewer("u1")).unwrap();
    r.join(0, v2, viewer("u2")).unwrap();
    r.comment(10, v1, "hello", None);
    r.like(v2, 5, None);
    // Funnel steps count only for a sale whose link dropped here, once per session.
    r.funnel(v1, "s1", Shown);
    r.link_dropped(20, a, None, card("s1", 3_000), None, true);
    for _ in 0..3 {
        r.funnel(v1, "s1", Shown);
    }
    r.funnel(v2, "s1", Shown);
    r.funnel(v2, "s1", Clicked);
    r.funnel(a, "s1", Clicked);
    r.leave(45_000, v2);
    let batch = r.take_archive(45_000);
    assert_eq!(
        (
            batch.online,
            batch.joins,
            batch.leaves,
            batch.comments,
            batch.likes
        ),
        (1, 2, 1, 1, 5)
    );
    assert_eq!(batch.funnel.len(), 1);
    assert_eq!((batch.funnel[0].shown, batch.funnel[0].clicked), (2, 1));
    assert_eq!(batch.stays[2], 1, "v2 stayed 45 s: the 30-60 s bucket");
    let kinds: Vec<&str> = batch.events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        ["state", "comment", "link"],
        "likes go in at the tick"
    );
    // The next second starts from zero; v1's repeat reports still count nothing.
    r.funnel(v1, "s1", Shown);
    let next = r.take_archive(46_000);
    assert_eq!((next.joins, next.comments, next.funnel.len()), (0, 0, 0));
}

#[test]
fn a_flood_of_chatter_never_pushes_out_a_link() {
    let cfg = RoomConfig {
        archive_max_pending_events: 3,
        comment_rate_per_sec: 1_000.0,
        comment_burst: 1_000,
        ..RoomConfig::default()
    };
    let mut r = room(cfg);
    let (a, v) = (SessionId(1), SessionId(2));
    r.join(0, a, anchor()).unwrap();
    r.join(0, v, viewer("u1")).unwrap();
    for i in 0..10 {
        r.comment(i, v, "spam", None);
    }
    r.link_dropped(20, a, None, card("s1", 3_000), None, true);
    let batch = r.take_archive(30);
    let comments = batch
        .events
        .iter()
        .filter(|e| e.kind.name() == "comment")
        .count() as u64;
    assert_eq!(
        comments + batch.events_dropped,
        10,
        "each comment kept or counted"
    );
    assert_eq!(
        batch.events.len(),
        4,
        "three waiting, then the link past the bound"
    );
    assert_eq!(batch.events[3].kind.name(), "link");
}
