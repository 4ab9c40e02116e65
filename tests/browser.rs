//! The viewer and anchor pages in real browsers. `tests/browser/live.mjs` drives one anchor
//! and three viewers (each its own headless Chromium with a fake camera) against a real
//! server: the anchor goes live and publishes over WHIP, the viewers decode the video and
//! audio, the anchor drops a link that every viewer shows at `reveal_at`, a viewer buys,
//! the anchor's sold counter moves, a second link drops, the anchor ends the live and
//! every viewer shows it. Then `tests/browser/replay.mjs` opens the replay: two chapters,
//! chapter 2 plays from its link, the chat replays in sync, Buy orders from the replay;
//! and the dashboard: charts drawn, the live's numbers, a click opens the replay there.
//! And an H.264 publisher's replay (`tests/browser/replay_h264.mjs`): the fragmented MP4
//! plays from its chapter at the clip's size and seeks.
//!
//! Needs Chromium (`/usr/bin/chromium`, or `LOCKSTEP_CHROMIUM`), Node and
//! `tests/browser/node_modules`; `./scripts/test.sh` installs them. Without them this test
//! fails and says so. Screenshots and the measurements go to `target/artifacts/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::media::{H264_HEIGHT, H264_WIDTH, encode_h264_clip, go_live_h264};
use common::{TestServer, test_config};
use lockstep_load::rtc::H264Clip;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// The whole scenario: four browsers, several 30 s step limits inside.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(300);
/// Viewers show the card within this of each other (server time).
const MAX_LINK_SPREAD_MS: f64 = 250.0;
/// A viewer shows the card no earlier than this before `reveal_at` (clock-sync error).
const MAX_LINK_EARLY_MS: f64 = 50.0;
/// ... and no later than this after it.
const MAX_LINK_LATE_MS: f64 = 500.0;
/// The median spread of one frame's display time across the viewers.
const MAX_FRAME_SPREAD_MEDIAN_MS: f64 = 250.0;

/// Each scenario starts up to four Chromium instances (with fake cameras encoding
/// simulcast) on a 2-core machine: run one at a time, so one scenario's encoders are not
/// starved by another's (a starved encoder makes a sparse recording).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Tools {
    chromium: PathBuf,
    scenario_dir: PathBuf,
}

/// Chromium, Node and the npm packages, or a failure saying how to get them.
fn tools() -> Tools {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scenario_dir = root.join("tests/browser");
    let chromium = std::env::var_os("LOCKSTEP_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let mut missing = Vec::new();
    if !chromium.exists() {
        missing.push(format!("Chromium at {}", chromium.display()));
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        missing.push("node".to_owned());
    }
    if !scenario_dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        missing.push("tests/browser/node_modules (npm playwright-core)".to_owned());
    }
    assert!(
        missing.is_empty(),
        "the browser test needs {}: run ./scripts/test.sh, which installs them \
         (apt-get install chromium; npm ci --prefix tests/browser)",
        missing.join(", ")
    );
    Tools {
        chromium,
        scenario_dir,
    }
}

/// Runs a scenario script with `config` on stdin; returns its JSON result and stderr.
async fn run_scenario(tools: &Tools, script: &str, config: &Value) -> (Value, String) {
    let mut child = tokio::process::Command::new("node")
        .arg(tools.scenario_dir.join(script))
        .current_dir(&tools.scenario_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(config.to_string().as_bytes())
        .await
        .expect("write the scenario config");
    drop(stdin);
    let output = tokio::time::timeout(SCENARIO_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the browser scenario took over {SCENARIO_TIMEOUT:?}"))
        .expect("wait for node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "the scenario printed no result (exit {:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
                output.status.code()
            )
        });
    let result: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("bad result line {line}: {e}\nstderr:\n{stderr}"));
    (result, stderr)
}

/// The Python of the aiortc WHEP player's virtual environment, or a failure saying how to
/// get it.
fn whep_player_python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/whep-player-venv/bin/python");
    assert!(
        python.exists(),
        "the automatic-layer test needs the aiortc WHEP player at {}: run ./scripts/test.sh, \
         which installs it (pip install -r tests/whep_player/requirements.txt)",
        python.display()
    );
    python
}

/// The longest time a player decoded frames `fits` their width, from its timeline of
/// `[ms, width, height]` points (one each time the size changed) that ends at `end_ms`.
fn longest_stretch(sizes: &Value, end_ms: f64, fits: impl Fn(f64) -> bool) -> f64 {
    let points: Vec<(f64, f64)> = sizes
        .as_array()
        .expect("a size timeline")
        .iter()
        .map(|p| (num(&p[0], "ms"), num(&p[1], "width")))
        .collect();
    let mut longest = 0.0f64;
    let mut since = None;
    for (i, (at, width)) in points.iter().enumerate() {
        let next = points.get(i + 1).map_or(end_ms, |p| p.0);
        if fits(*width) {
            let start = *since.get_or_insert(*at);
            longest = longest.max(next - start);
        } else {
            since = None;
        }
    }
    longest
}

/// Opens `room` with its anchor's token, as the anchor's page would find it.
async fn open_room(server: &TestServer, room: &str, title: &str) {
    let opened = reqwest::Client::new()
        .post(server.url("/api/v1/rooms"))
        .bearer_auth(server.anchor_token(room))
        .json(&json!({"id": room, "title": title}))
        .send()
        .await
        .unwrap();
    assert!(
        opened.status().is_success(),
        "open room: {}",
        opened.status()
    );
}

fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} missing or not a number: {v}"))
}

/// The automatic simulcast layer with players Lockstep did not build. The anchor page
/// publishes Chromium's three layers; a Chromium viewer page left on `auto` and an aiortc
/// WHEP player get the top layer and keep it; an aiortc player whose REMBs say it takes
/// 250 kbit/s (a viewer on a slow link) is moved to a smaller layer within seconds and
/// kept there, while the others keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_layer_follows_what_each_player_can_take() {
    let _one = ONE_AT_A_TIME.lock().await;
    let tools = tools();
    let python = whep_player_python();
    let server = TestServer::start(test_config());
    let room = "browser-auto-layer";
    open_room(&server, room, "Auto layer").await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = json!({
        "baseUrl": format!("http://{}", server.addr),
        "room": room,
        "anchorToken": server.anchor_token(room),
        "viewerToken": server.viewer_token("carol"),
        "python": python,
        "playerScript": root.join("tests/whep_player/player.py"),
        "watchSeconds": 15,
        "rembCapBps": 250_000,
        "artifactsDir": root.join("target/artifacts"),
        "chromium": tools.chromium,
    });
    let (r, stderr) = run_scenario(&tools, "auto_layer.mjs", &config).await;
    println!("{r}");
    assert_eq!(
        r["ok"],
        json!(true),
        "auto-layer scenario failed at step {}: {}\nstderr:\n{stderr}",
        r["step"],
        r["error"]
    );
    let top = num(
        &r["anchorLayers"]["high"][0],
        "the anchor's top layer width",
    );
    let bottom = num(&r["anchorLayers"]["low"][0], "the anchor's low layer width");
    assert!(
        top > bottom && bottom > 0.0,
        "three layers: {}",
        r["anchorLayers"]
    );
    let end = |p: &Value| {
        let sizes = p["sizes"].as_array().expect("sizes");
        num(&sizes.last().expect("frames")[0], "ms") + num(&p["ms_at_last_size"], "ms")
    };
    let (fast, slow) = (&r["aiortc"], &r["aiortcSlow"]);
    let fast_top = longest_stretch(&fast["sizes"], end(fast), |w| w == top);
    assert!(
        fast_top >= 5_000.0,
        "the aiortc player kept the top layer for only {fast_top} ms: {fast}"
    );
    let viewer = &r["chromiumViewer"];
    let viewer_top = longest_stretch(
        &viewer["sizes"],
        num(&viewer["watchedMs"], "watchedMs"),
        |w| w == top,
    );
    assert!(
        viewer_top >= 5_000.0,
        "Chromium's viewer page on auto kept the top layer for only {viewer_top} ms: {viewer}"
    );
    let slow_small = longest_stretch(&slow["sizes"], end(slow), |w| w < top);
    assert!(
        slow_small >= 5_000.0,
        "the player on a slow link spent only {slow_small} ms below the top layer: {slow}"
    );
    let moved_at = slow["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| num(&p[1], "width") < top)
        .map(|p| num(&p[0], "ms"))
        .unwrap_or(f64::MAX);
    assert!(
        moved_at <= 8_000.0,
        "the player on a slow link was moved down only after {moved_at} ms: {slow}"
    );
    assert!(
        server
            .metric("lockstep_media_estimate_backoffs_total{by=\"remb\"}")
            .await
            >= 1.0,
        "a REMB lowered an estimate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_room_in_real_browsers() {
    let _one = ONE_AT_A_TIME.lock().await;
    let tools = tools();
    let server = TestServer::start(test_config());
    let room = "browser-live";

    // Open the room first so the sale exists before the anchor's page joins.
    open_room(&server, room, "Summer linen drop").await;
    let sale = server.create_sale("m1", room, 20, 10, json!({})).await;
    let second_sale = wool_coat_sale(&server, room).await;

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts");
    let config = json!({
        "baseUrl": format!("http://{}", server.addr),
        "room": room,
        "anchorToken": server.anchor_token(room),
        "viewerTokens": [server.viewer_token("alice"), server.viewer_token("bob")],
        "saleId": sale,
        "secondSaleId": second_sale,
        "artifactsDir": artifacts,
        "chromium": tools.chromium,
    });
    let (r, stderr) = run_scenario(&tools, "live.mjs", &config).await;
    println!("{r}");
    eprintln!("{stderr}");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("browser-live.json"), format!("{r:#}\n")).unwrap();

    assert_eq!(
        r["ok"],
        json!(true),
        "browser scenario failed at step {}: {}\nstderr:\n{stderr}",
        r["step"],
        r["error"]
    );

    let viewers = r["viewers"].as_array().expect("viewers");
    assert_eq!(viewers.len(), 3);
    assert_eq!(
        r["tokensLeftInUrl"],
        json!(0),
        "a page left its token in the address bar"
    );
    assert_eq!(
        r["cspViolations"],
        json!([]),
        "the pages need something their content security policy forbids"
    );
    let reveal_at = num(&r["reveal_at"], "reveal_at");
    for v in viewers {
        let name = &v["name"];
        assert!(
            num(&v["framesDecodedDelta"], "framesDecodedDelta") > 0.0,
            "{name} decoded no video frame in 1 s: {v}"
        );
        assert!(
            num(&v["audioBytesDelta"], "audioBytesDelta") > 0.0,
            "{name} received no audio in 1 s: {v}"
        );
        assert_eq!(
            v["stallResubscribes"],
            json!(0),
            "{name}'s video stalled (no frame decoded for 8 s) and the page re-subscribed: {}",
            v["mediaLog"]
        );
        let shown = num(&v["linkShownAt"], "linkShownAt");
        assert!(
            shown >= reveal_at - MAX_LINK_EARLY_MS && shown <= reveal_at + MAX_LINK_LATE_MS,
            "{name} showed the card at {shown}, reveal_at {reveal_at}"
        );
        assert!(
            v["countdownDigits"]
                .as_array()
                .is_some_and(|d| d.contains(&json!("1"))),
            "{name} showed no countdown: {v}"
        );
        assert_eq!(v["ended"], json!(true), "{name} did not show the end");
    }
    assert_layers_on_reports(&server).await;
    assert_viewers_in_step(&r);

    let switch = &r["layerSwitch"];
    assert!(
        num(&switch["widthAfter"], "width after the switch") > 0.0
            && num(&switch["widthAfter"], "width after the switch")
                < num(&switch["widthBefore"], "width before the switch"),
        "asking for the low simulcast layer did not bring smaller frames: {switch}"
    );

    assert_eq!(
        r["order"]["outcome"],
        json!("accepted"),
        "order: {}",
        r["order"]
    );
    assert!(r["order"]["order_id"].is_string());
    assert!(num(&r["anchorSold"], "anchorSold") >= 1.0);
    assert_eq!(r["guestBuy"]["disabled"], json!(true), "a guest could buy");
    assert_eq!(r["guest"]["hintVisible"], json!(true), "no guest hint");
    assert_eq!(r["anchorEnded"], json!(true));

    let shots = r["screenshots"].as_array().expect("screenshots");
    assert!(shots.len() >= 4, "screenshots: {shots:?}");
    assert_screenshots(shots);

    let live = Live {
        room,
        sale: &sale,
        second_sale: &second_sale,
        likes: num(&r["chat"]["likes"], "likes"),
    };
    replay_and_dashboard(&tools, &server, &artifacts, &live).await;
    server.stop();
}

/// The live scenario on two cluster nodes (`cluster.edge_media` on): the anchor and the
/// desktop viewer on the room's node, the phone and the guest on the other, whose SFU
/// pulls the stream from the room's node. Every viewer decodes video and audio, shows the
/// card at `reveal_at`, and the same frame (by RTP timestamp) is presented within the
/// single server's bounds on both nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_room_on_two_nodes_in_real_browsers() {
    let _one = ONE_AT_A_TIME.lock().await;
    let tools = tools();
    let redis = common::redis::RedisServer::start();
    let nodes: Vec<TestServer> = ["a", "b"]
        .iter()
        .map(|name| TestServer::start(redis.node_config(name)))
        .collect();
    let room = "browser-two-nodes";
    open_room(&nodes[0], room, "Two nodes").await;
    let sale = nodes[0].create_sale("m1", room, 20, 10, json!({})).await;
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts/two-nodes");
    let (a, b) = (
        format!("http://{}", nodes[0].addr),
        format!("http://{}", nodes[1].addr),
    );
    let config = json!({
        "baseUrl": a,
        "viewerBaseUrls": [a, b, b],
        "room": room,
        "anchorToken": nodes[0].anchor_token(room),
        "viewerTokens": [nodes[0].viewer_token("alice"), nodes[0].viewer_token("bob")],
        "saleId": sale,
        "artifactsDir": artifacts,
        "chromium": tools.chromium,
    });
    let (r, stderr) = run_scenario(&tools, "live.mjs", &config).await;
    println!("{r}");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(
        artifacts.join("browser-live-two-nodes.json"),
        format!("{r:#}\n"),
    )
    .unwrap();
    assert_eq!(
        r["ok"],
        json!(true),
        "two-node scenario failed at step {}: {}\nstderr:\n{stderr}",
        r["step"],
        r["error"]
    );
    let reveal_at = num(&r["reveal_at"], "reveal_at");
    for v in r["viewers"].as_array().unwrap() {
        let name = &v["name"];
        assert!(
            num(&v["framesDecodedDelta"], "frames") > 0.0,
            "{name}: no video: {v}"
        );
        assert!(
            num(&v["audioBytesDelta"], "audio") > 0.0,
            "{name}: no audio: {v}"
        );
        let shown = num(&v["linkShownAt"], "linkShownAt");
        assert!(
            shown >= reveal_at - MAX_LINK_EARLY_MS && shown <= reveal_at + MAX_LINK_LATE_MS,
            "{name} on {} showed the card at {shown}, reveal_at {reveal_at}",
            v["node"]
        );
    }
    assert_layers_on_reports(&nodes[0]).await;
    assert_viewers_in_step(&r);
    // Node B's viewers were served by B's own SFU, fed by one uplink from A.
    assert!(nodes[1].metric("lockstep_media_packets_out_total").await > 0.0);
    assert!(nodes[0].metric("lockstep_media_uplink_packets_total").await > 0.0);
    assert_screenshots(r["screenshots"].as_array().unwrap());
}

/// Chromium's simulcast layers were put on the room's media clock by its RTCP sender
/// reports (the high and mid layers onto the low one), so a frame has one timestamp
/// whatever layer a viewer gets.
async fn assert_layers_on_reports(server: &TestServer) {
    let by = |how: &str| format!("lockstep_media_layers_aligned_total{{by=\"{how}\"}}");
    let reports = server.metric(&by("reports")).await;
    let arrival = server.metric(&by("arrival")).await;
    let moved = server.metric(&by("moved")).await;
    println!("layers aligned: {reports} by reports, {arrival} by arrival, {moved} moved");
    assert!(
        reports + moved >= 2.0,
        "Chromium's sender reports did not align its layers ({reports} by reports, {arrival} by arrival)"
    );
}

/// The viewers showed the card, and each video frame (by RTP timestamp), within the
/// bounds of each other.
fn assert_viewers_in_step(r: &Value) {
    assert!(
        num(&r["linkSpreadMs"], "linkSpreadMs") <= MAX_LINK_SPREAD_MS,
        "viewers showed the card {} ms apart",
        r["linkSpreadMs"]
    );
    let spread = &r["frameSpread"];
    assert!(
        num(&spread["commonFrames"], "commonFrames") >= 10.0,
        "too few frames seen by every viewer to compare: {spread}"
    );
    assert!(
        num(&spread["medianMs"], "frame spread median") <= MAX_FRAME_SPREAD_MEDIAN_MS,
        "viewers display the same frame too far apart: {spread}"
    );
}

/// A click on a chapter played the replay from a few seconds before its link, and
/// frames advanced.
fn assert_plays_from_chapter(jump: &Value) {
    let at = num(&jump["chapterMs"], "chapter time") / 1000.0;
    let started = num(&jump["startedAt"], "position after the click");
    assert!(
        started > at - 4.0 && started < at + 1.0,
        "jumped to {started} s for a chapter at {at} s"
    );
    assert!(
        num(&jump["framesAdvanced"], "frames") > 0.0,
        "no frame decoded: {jump}"
    );
    assert!(
        num(&jump["after1s"], "position") > started,
        "the video did not advance: {jump}"
    );
}

fn assert_screenshots(shots: &[Value]) {
    for s in shots {
        let path = PathBuf::from(s.as_str().unwrap());
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 0, "screenshot {} missing or empty", path.display());
    }
}

/// A second product and its sale in `room` (the merchant m1 is granted there already).
async fn wool_coat_sale(server: &TestServer, room: &str) -> String {
    let (status, product) = server
        .merchant_post(
            "m1",
            "/api/v1/products",
            json!({"title": "Wool coat", "description": "Warm", "price_cents": 12900,
                   "image_url": "", "skus": [{"attributes": {"size": "L"}, "stock": 10}]}),
        )
        .await;
    assert_eq!(status, 201, "{product}");
    let sku = product["skus"][0]["id"].as_str().unwrap();
    let (status, sale) = server
        .merchant_post(
            "m1",
            "/api/v1/sales",
            json!({"room": room, "sku_id": sku, "allotted": 5, "price_cents": 9900}),
        )
        .await;
    assert_eq!(status, 201, "{sale}");
    sale["sale"]["id"].as_str().unwrap().to_owned()
}

/// What the live scenario did, for the replay and the dashboard to show.
struct Live<'a> {
    room: &'a str,
    sale: &'a str,
    second_sale: &'a str,
    likes: f64,
}

/// The id of `room`'s replay once the archive closed the run and the recording is written.
async fn ended_replay(server: &TestServer, room: &str) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list: Value = reqwest::get(server.url(&format!("/api/v1/replays?room={}", room)))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(id) = list["replays"][0]["id"].as_i64() {
            let replay: Value = reqwest::get(server.url(&format!("/api/v1/replays/{id}")))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if replay["state"] == "ended" && replay["media_url"].is_string() {
                return id;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no replay of {}: {list}",
            room
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ended room's replay and dashboard in Chromium (`replay.mjs`).
async fn replay_and_dashboard(
    tools: &Tools,
    server: &TestServer,
    artifacts: &Path,
    live: &Live<'_>,
) {
    let replay_id = ended_replay(server, live.room).await;
    let config = json!({
        "baseUrl": format!("http://{}", server.addr),
        "room": live.room,
        "replayId": replay_id,
        "viewerToken": server.viewer_token("carol"),
        "anchorToken": server.anchor_token(live.room),
        "artifactsDir": artifacts,
        "chromium": tools.chromium,
    });
    let (r, stderr) = run_scenario(tools, "replay.mjs", &config).await;
    println!("{r}");
    eprintln!("{stderr}");
    std::fs::write(artifacts.join("browser-replay.json"), format!("{r:#}\n")).unwrap();
    assert_eq!(
        r["ok"],
        json!(true),
        "replay scenario failed at step {}: {}\nstderr:\n{stderr}",
        r["step"],
        r["error"]
    );
    assert_eq!(
        r["cspViolations"],
        json!([]),
        "the replay pages broke their CSP"
    );

    // Two chapters, the two products, in the order their links dropped.
    let chapters = r["chapters"].as_array().unwrap();
    let sales: Vec<&str> = chapters
        .iter()
        .map(|c| c["sale"].as_str().unwrap())
        .collect();
    assert_eq!(sales, [live.sale, live.second_sale]);
    assert!(
        chapters[0]["text"]
            .as_str()
            .unwrap()
            .contains("Linen shirt")
    );
    assert!(chapters[1]["text"].as_str().unwrap().contains("Wool coat"));

    // Chapter 2 plays from a few seconds before its link, and frames advance.
    let jump = &r["chapterJump"];
    assert_plays_from_chapter(jump);

    // The comment appears when the video passes its moment, not before.
    let chat = &r["chatSync"];
    assert_eq!(
        (&chat["before"], &chat["after"]),
        (&json!(false), &json!(true)),
        "{chat}"
    );

    // Buying from the replay makes an order that says so.
    let order = &r["replayOrder"];
    assert_eq!(order["outcome"], "accepted", "{order}");
    let (_, stored) = server
        .merchant_get(
            "m1",
            &format!("/api/v1/orders/{}", order["order_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(stored["source"], "replay", "{stored}");
    assert_eq!(
        stored["replay"],
        json!({"replay_id": replay_id, "chapter": 1})
    );

    // The dashboard shows what the live did: one comment, the likes, one order of one unit.
    let dash = &r["dashboard"];
    let totals = &dash["totals"];
    assert_eq!(num(&totals["comments"], "comments"), 1.0, "{dash}");
    assert_eq!(num(&totals["likes"], "likes"), live.likes, "{dash}");
    assert_eq!(num(&totals["orders"], "orders"), 1.0, "{dash}");
    assert_eq!(num(&totals["units"], "units"), 1.0, "{dash}");
    assert_eq!(num(&dash["gmvCents"], "gmv"), 2900.0, "{dash}");
    assert!(num(&totals["peak_online"], "peak online") >= 3.0, "{dash}");
    assert_eq!(dash["products"], json!([live.sale, live.second_sale]));
    for painted in dash["paintedPixels"].as_array().unwrap() {
        assert!(
            num(painted, "painted pixels") > 100.0,
            "a chart is blank: {dash}"
        );
    }

    // A click on the chart opens the replay at the moment clicked.
    let click = &r["chartClick"];
    let t = num(&click["t"], "t");
    assert!(
        (num(&click["position"], "position") - t).abs() < 1.5,
        "the replay opened at {} s, the link said {t} s",
        click["position"]
    );
    assert!(
        (t - num(&click["expectedS"], "expected")).abs() < 3.0,
        "clicked two thirds along the axis ({} s), the replay opened at {t} s",
        click["expectedS"]
    );
    assert_screenshots(r["screenshots"].as_array().unwrap());
}

/// An H.264 publisher's replay in Chromium (`replay_h264.mjs`): the recording is the
/// fragmented MP4 an encoder such as OBS leads to, and the replay page plays it from the
/// chapter, at the clip's size, and seeks in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_replay_plays_in_chromium() {
    let _one = ONE_AT_A_TIME.lock().await;
    let tools = tools();
    let config = test_config();
    let dir = PathBuf::from(config.store.path.replace(".db", "-h264"));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = H264Clip::read(&encode_h264_clip(&dir)).unwrap();
    let server = TestServer::start(config);
    let sale = server.create_sale("m1", "h1", 20, 10, json!({})).await;
    let mut anchor = server.open_room("h1").await;
    let (stop, streaming) = go_live_h264(&server, &mut anchor, "h1", clip).await;
    // The link drops a few seconds into the stream, and the stream goes on after it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    TestServer::drop_link(&mut anchor, &sale, 300).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    anchor
        .send(json!({"type":"control","cmd":"end","id":3}))
        .await;
    stop.cancel();
    streaming.await.unwrap();
    let replay_id = ended_replay(&server, "h1").await;

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts");
    let config = json!({
        "baseUrl": format!("http://{}", server.addr),
        "replayId": replay_id,
        "viewerToken": server.viewer_token("carol"),
        "artifactsDir": artifacts,
        "chromium": tools.chromium,
    });
    let (r, stderr) = run_scenario(&tools, "replay_h264.mjs", &config).await;
    println!("{r}");
    std::fs::write(
        artifacts.join("browser-replay-h264.json"),
        format!("{r:#}\n"),
    )
    .unwrap();
    assert_eq!(
        r["ok"],
        json!(true),
        "H.264 replay scenario failed at step {}: {}\nstderr:\n{stderr}",
        r["step"],
        r["error"]
    );
    assert_eq!(r["mediaType"], "video/mp4");
    let jump = &r["chapterJump"];
    assert_eq!(jump["error"], Value::Null, "{jump}");
    assert_eq!(
        (num(&jump["width"], "width"), num(&jump["height"], "height")),
        (f64::from(H264_WIDTH), f64::from(H264_HEIGHT)),
        "{jump}"
    );
    assert_plays_from_chapter(jump);
    let seek = &r["seek"];
    assert!(
        (num(&seek["at"], "position") - num(&seek["to"], "target")).abs() < 0.05,
        "{seek}"
    );
    assert_screenshots(r["screenshots"].as_array().unwrap());
}
