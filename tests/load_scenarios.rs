//! The load generator's scenarios at small scale against a real server: each asserts the
//! checks it would report (every viewer got every message, no oversell, a linearizable
//! history, the link displayed together, a short soak with no unexpected answer), and a
//! run split over two workers merges into one report.

mod common;

use common::{TestServer, test_config};
use lockstep_load::scenario::{
    Conn, Slot, flash_sale, join_storm, link_drop, soak, subscribers, viewers,
};
use lockstep_load::wire::Target;

fn slot(index: usize, count: usize, lead_ms: u64) -> Slot {
    Slot {
        index,
        count,
        start_at_ms: lockstep_actors::clock::now_ms() + lead_ms,
        progress: false,
    }
}

fn viewers_args(server: &TestServer, viewers: usize) -> viewers::ViewersArgs {
    viewers::ViewersArgs {
        target: Target::Lockstep,
        conn: Conn {
            server: server.addr.to_string(),
            room: "load".into(),
            secret: server.config.auth.secret.clone(),
            servers: Vec::new(),
        },
        anchor_token: None,
        viewers,
        ramp: 2_000,
        rate: 10,
        size: 200,
        duration: 2,
        warmup: 1,
        commenters: 10,
        comment_rate: 0.5,
        likers: 20,
        like_rate: 2.0,
        slow_fraction: 0.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_scenario_delivers_every_message_to_every_viewer() {
    let server = TestServer::start(test_config());
    let mut report = viewers::run(viewers_args(&server, 200), slot(0, 1, 1_500))
        .await
        .unwrap();
    viewers::finish(&mut report);
    assert_eq!(report.counter("joined"), 200);
    assert_eq!(
        report.counter("expected"),
        200 * 20,
        "2 s at 10 msg/s to 200 viewers"
    );
    assert_eq!(report.extra["delivery_ratio"], 1.0, "{}", report.table());
    assert_eq!(report.counter("publish_refused"), 0);
    assert_eq!(report.histograms["latency"].count(), 4_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_spread_over_the_nodes_of_a_cluster_get_every_message() {
    let redis = common::redis::RedisServer::start();
    let nodes = redis.three_nodes();
    let mut args = viewers_args(&nodes[0], 150);
    args.conn.servers = nodes.iter().map(|n| n.addr.to_string()).collect();
    let mut report = viewers::run(args, slot(0, 1, 1_500)).await.unwrap();
    viewers::finish(&mut report);
    assert_eq!(report.counter("joined"), 150);
    assert_eq!(report.counter("expected"), 150 * 20);
    assert_eq!(report.extra["delivery_ratio"], 1.0, "{}", report.table());
    // Each node served a third of the viewers: it sent each of its 50 at least the 20
    // measured messages.
    for node in &nodes {
        let metrics = reqwest::get(node.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let sent: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("lockstep_frames_out_total "))
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(sent >= 50 * 20, "{sent} frames sent by one node");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_split_over_two_workers_merges_into_one_report() {
    let server = TestServer::start(test_config());
    let args = viewers_args(&server, 120);
    let start = slot(0, 2, 2_000).start_at_ms;
    let (a, b) = tokio::join!(
        viewers::run(
            args.clone(),
            Slot {
                start_at_ms: start,
                ..slot(0, 2, 0)
            }
        ),
        viewers::run(
            args,
            Slot {
                start_at_ms: start,
                ..slot(1, 2, 0)
            }
        )
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut merged = a.clone();
    merged.merge(&b);
    viewers::finish(&mut merged);
    assert_eq!((a.counter("joined"), b.counter("joined")), (60, 60));
    assert_eq!(merged.counter("published"), 30, "only worker 0 publishes");
    assert_eq!(
        merged.counter("delivered"),
        a.counter("delivered") + b.counter("delivered")
    );
    assert_eq!(merged.histograms["latency"].count(), 120 * 20);
    assert_eq!(merged.extra["delivery_ratio"], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_viewers_are_cut_while_the_others_get_everything() {
    let mut cfg = test_config();
    cfg.server.socket_send_buffer_bytes = 8 * 1024;
    cfg.session.outbound_queue_frames = 8;
    cfg.session.close_grace_ms = 30_000;
    cfg.room.tick_ms = 10;
    cfg.session.msg_rate_per_sec = 1_000.0;
    cfg.session.msg_burst = 1_000;
    let server = TestServer::start(cfg);
    let mut args = viewers_args(&server, 50);
    (
        args.slow_fraction,
        args.rate,
        args.size,
        args.duration,
        args.commenters,
        args.likers,
    ) = (0.2, 100, 290, 3, 0, 0);
    let mut report = viewers::run(args, slot(0, 1, 1_000)).await.unwrap();
    viewers::finish(&mut report);
    assert_eq!(report.counter("slow_viewers"), 10);
    assert_eq!(
        report.close_codes.get(&4001),
        Some(&10),
        "{:?}",
        report.close_codes
    );
    assert_eq!(report.extra["delivery_ratio"], 1.0, "{}", report.table());
    assert_eq!(server.metric("lockstep_slow_viewer_cuts_total").await, 10.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_sale_scenario_sells_exactly_the_stock_linearizably() {
    let server = TestServer::start(test_config());
    let history = std::path::PathBuf::from(format!("{}.history.jsonl", common::temp_db_path()));
    let args = flash_sale::FlashSaleArgs {
        target: flash_sale::SaleTarget::Lockstep,
        conn: Conn {
            server: server.addr.to_string(),
            room: "sale".into(),
            secret: server.config.auth.secret.clone(),
            servers: Vec::new(),
        },
        buyers: 100,
        stock: 40,
        limit: 2,
        orders_per_buyer: 2,
        jitter_ms: 20,
        timeout_ms: 5_000,
        retries: 1,
        countdown_ms: 500,
        history: Some(history.clone()),
        check_max_ops: 10_000,
    };
    let report = flash_sale::run(args, slot(0, 1, 0)).await.unwrap();
    assert_eq!(report.counter("accepted"), 40, "{}", report.table());
    assert_eq!(report.counter("duplicate_order_ids"), 0);
    assert_eq!(report.counter("buyers_over_limit"), 0);
    assert_eq!(report.extra["oversold"], false);
    assert_eq!(report.extra["linearizable"], true);
    let lines = std::fs::read_to_string(history).unwrap().lines().count();
    assert_eq!(
        lines as u64,
        report.counter("operations"),
        "every operation is in the history file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_drop_scenario_displays_the_link_together() {
    let server = TestServer::start(test_config());
    let args = link_drop::LinkDropArgs {
        conn: Conn {
            server: server.addr.to_string(),
            room: "drop".into(),
            secret: server.config.auth.secret.clone(),
            servers: Vec::new(),
        },
        viewers: 100,
        ramp: 2_000,
        countdown_ms: 1_000,
        sync_samples: 3,
        resync_samples: 2,
    };
    let report = link_drop::run(args, slot(0, 1, 0)).await.unwrap();
    assert_eq!(report.counter("viewers"), 100);
    assert_eq!(
        report.counter("before_reveal"),
        100,
        "the card arrives ahead of the reveal"
    );
    // Clients show the card at the reveal time, not when it arrived (a full second
    // earlier): every displayed time is within clock-sync error of reveal_at.
    let offsets = report.extra["displayed_offsets_ms"].as_array().unwrap();
    assert_eq!(offsets.len(), 100);
    assert!(
        offsets.iter().all(|o| o.as_f64().unwrap().abs() < 100.0),
        "displayed far from reveal_at: {offsets:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_storm_scenario_joins_everyone() {
    let server = TestServer::start(test_config());
    let args = join_storm::JoinStormArgs {
        target: Target::Lockstep,
        conn: Conn {
            server: server.addr.to_string(),
            room: "storm".into(),
            secret: server.config.auth.secret.clone(),
            servers: Vec::new(),
        },
        viewers: 300,
        rate: 0,
        concurrency: 64,
        hold_secs: 0,
    };
    let report = join_storm::run(args, slot(0, 1, 500)).await.unwrap();
    assert_eq!(
        (report.counter("joined"), report.counter("join_failed")),
        (300, 0)
    );
    assert_eq!(report.histograms["join"].count(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_scenario_receives_the_whole_stream() {
    let server = TestServer::start(test_config());
    let args = subscribers::SubscribersArgs {
        target: subscribers::SfuTarget::Lockstep,
        conn: Conn {
            server: server.addr.to_string(),
            room: "sfu".into(),
            secret: server.config.auth.secret.clone(),
            servers: Vec::new(),
        },
        subscribers: 6,
        duration: 2,
        warmup: 1,
        bitrate_bps: 1_500_000,
        fps: 30,
        concurrency: 3,
        bind: "127.0.0.1".into(),
        edges_only: false,
        janus_url: String::new(),
        janus_mountpoint: 1,
        janus_rtp_video: "127.0.0.2:5004".parse().unwrap(),
        janus_rtp_audio: "127.0.0.2:5006".parse().unwrap(),
    };
    let report = subscribers::run(args, slot(0, 1, 0)).await.unwrap();
    assert_eq!(report.counter("subscribers_connected"), 6);
    assert!(report.counter("packets_published") > 200);
    // Every subscriber got (about) every packet published in the window; the window's
    // edges may shift a frame or two either way.
    let (received, expected) = (
        report.counter("packets_received"),
        report.counter("packets_expected"),
    );
    assert!(
        received * 100 >= expected * 97,
        "received {received} of {expected}"
    );
    assert_eq!(report.counter("sequence_gaps"), 0);
    // Every received packet's latency was measured, and every subscriber's first frame.
    assert!(report.histograms["forwarding_latency"].count() * 100 >= received * 99);
    assert_eq!(report.histograms["first_frame"].count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_scenario_runs_every_kind_of_traffic_without_an_unexpected_answer() {
    let server = TestServer::start(test_config());
    let args = soak::SoakArgs {
        conn: Conn {
            server: server.addr.to_string(),
            room: "soak".into(),
            secret: server.config.auth.secret.clone(),
            servers: Vec::new(),
        },
        duration_secs: 6,
        viewers: 30,
        churn_per_sec: 5.0,
        comments_per_sec: 2.0,
        likes_per_sec: 5.0,
        orders_per_sec: 5.0,
        reservation_ttl_secs: 2,
        sale_every_secs: 3,
        subscribers: 2,
        subscriber_churn_secs: 2,
        slow_fraction: 0.1,
        half_open_per_min: 30.0,
    };
    let report = soak::run(args, slot(0, 1, 0)).await.unwrap();
    assert_eq!(report.counter("unexpected"), 0, "{}", report.table());
    for kind in [
        "joins",
        "leaves",
        "comments_acked",
        "likes_taken",
        "orders_answered",
        "orders_cancelled",
        "whep_subscribed",
        "half_open_viewers",
    ] {
        assert!(report.counter(kind) > 0, "no {kind}: {}", report.table());
    }
    assert!(report.counter("sales_opened") >= 2, "{}", report.table());
}
