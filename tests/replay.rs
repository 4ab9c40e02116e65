//! A room's replay and analytics, end to end on a real server: a webrtc-rs publisher
//! streams, the anchor drops a link, viewers comment, like and buy, the room ends; then
//! the replay lists the chapter, its recording is a WebM that starts on a keyframe, has
//! the stream's duration and seeks by its index, serves byte ranges; the timeline holds
//! the comments; the dashboard's numbers equal what happened; buying from the replay
//! makes an order with `source: replay`. Also: members-only replays, a full disk.

mod common;

use std::time::Duration;

use common::media::{WAIT, go_live};
use common::{TestServer, test_config};
use lockstep_protocol::ServerMsg;
use matroska_demuxer::{Frame, MatroskaFile, TrackType};
use serde_json::{Value, json};

/// GET `path` with an optional bearer token: (status, JSON body or Null).
async fn get(server: &TestServer, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(server.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The only replay of `room` (waiting for the archive to have it).
async fn replay_id(server: &TestServer, room: &str) -> i64 {
    let list = server
        .wait_json(&format!("/api/v1/replays?room={room}"), None, |b| {
            b["replays"].as_array().is_some_and(|r| !r.is_empty())
        })
        .await;
    list["replays"][0]["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_with_a_sale_becomes_a_replay_with_chapters_video_and_numbers() {
    let server = TestServer::start(test_config());
    let sale = server
        .create_sale("m1", "r1", 20, 10, json!({"reservation_ttl_secs": 600}))
        .await;
    let mut anchor = server.open_room("r1").await;
    let (_publisher, stop) = go_live(&server, &mut anchor, "r1").await;
    let streaming = tokio::time::Instant::now();
    let (mut viewer, _) = server.join_viewer("r1", Some("v1")).await;
    viewer
        .send(json!({"type":"comment","text":"is the shirt linen?","id":1}))
        .await;
    viewer.send(json!({"type":"like","count":7})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reveal_at = TestServer::drop_link(&mut anchor, &sale, 300).await;
    viewer
        .send(json!({"type":"funnel","sale_id":sale,"step":"shown"}))
        .await;
    viewer
        .send(json!({"type":"funnel","sale_id":sale,"step":"clicked"}))
        .await;
    // Orders before the reveal are refused; wait for it on the server's clock.
    let wait = reveal_at.saturating_sub(lockstep_actors::clock::now_ms()) + 20;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    viewer
        .send(json!({"type":"order","sale_id":sale,"qty":1,"key":"k1","id":2}))
        .await;
    viewer
        .recv_until(|m| match m {
            ServerMsg::OrderResult { outcome, .. } => {
                assert_eq!(*outcome, lockstep_protocol::OrderOutcome::Accepted);
                Some(())
            }
            _ => None,
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    anchor
        .send(json!({"type":"control","cmd":"end","id":3}))
        .await;
    let streamed_ms = streaming.elapsed().as_millis() as u64;
    stop.cancel();

    let id = replay_id(&server, "r1").await;
    let path = format!("/api/v1/replays/{id}");
    let replay = server
        .wait_json(&path, None, |b| {
            b["state"] == "ended"
                && b["media_url"].is_string()
                && b["duration_ms"].as_u64() > Some(0)
        })
        .await;
    assert_eq!(replay["title"], "Room r1");
    let chapters = replay["chapters"].as_array().unwrap();
    assert_eq!(chapters.len(), 1, "{replay}");
    let chapter = &chapters[0];
    assert_eq!(chapter["sale_id"], sale.as_str());
    assert_eq!(chapter["index"], 1);
    assert_eq!(chapter["orders"], 1);
    assert_eq!(chapter["sale"]["state"], "open");
    assert_eq!(chapter["sale"]["remaining"], 9);
    // The chapter sits where the link appeared in the recording: ~1.5 s in, and inside it.
    let duration = replay["duration_ms"].as_u64().unwrap();
    let at = chapter["media_ms"].as_u64().unwrap();
    assert!(
        at > 500 && at < duration,
        "chapter at {at} ms of {duration}"
    );
    assert!(
        duration + 1500 >= streamed_ms && duration <= streamed_ms + 500,
        "recorded {duration} ms of a {streamed_ms} ms stream"
    );

    // The recording: a WebM with VP8 and Opus, first video frame a keyframe, its
    // duration the stream's, and each indexed keyframe a keyframe when seeked to.
    let media_url = replay["media_url"].as_str().unwrap();
    let bytes = reqwest::get(server.url(media_url))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut file = MatroskaFile::open(std::io::Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(file.ebml_header().doc_type(), "webm");
    let video = file
        .tracks()
        .iter()
        .find(|t| t.track_type() == TrackType::Video)
        .expect("a video track");
    assert_eq!(video.codec_id(), "V_VP8");
    assert_eq!(video.video().unwrap().pixel_width().get(), 1280);
    let video_track = video.track_number().get();
    assert!(
        file.tracks()
            .iter()
            .any(|t| t.track_type() == TrackType::Audio && t.codec_id() == "A_OPUS")
    );
    let scale = file.info().timestamp_scale().get();
    let file_ms = file.info().duration().unwrap() * scale as f64 / 1e6;
    assert!(
        (file_ms - duration as f64).abs() < 100.0,
        "{file_ms} vs {duration}"
    );
    let mut frame = Frame::default();
    let first_video = loop {
        assert!(file.next_frame(&mut frame).unwrap());
        if frame.track == video_track {
            break frame.clone();
        }
    };
    assert_eq!(first_video.is_keyframe, Some(true));
    let keyframes: Vec<u64> = replay["keyframes_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_u64().unwrap())
        .collect();
    assert!(keyframes.len() >= 2, "{keyframes:?}");
    for &k in &keyframes {
        file.seek(k * 1_000_000 / scale).unwrap();
        let landed = loop {
            assert!(file.next_frame(&mut frame).unwrap(), "a frame after {k}");
            if frame.track == video_track {
                break frame.clone();
            }
        };
        assert_eq!(landed.is_keyframe, Some(true), "seek to {k} ms");
    }

    // Range requests, so a player can seek.
    let ranged = reqwest::Client::new()
        .get(server.url(media_url))
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert!(
        ranged.headers()["content-range"]
            .to_str()
            .unwrap()
            .starts_with("bytes 100-199/")
    );
    assert_eq!(ranged.bytes().await.unwrap().len(), 100);

    // The timeline replays the comment with its text, and the likes.
    let (_, page) = get(&server, &format!("{path}/events"), None).await;
    let events = page["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "comment" && e["text"] == "is the shirt linen?")
    );
    let likes: u64 = events
        .iter()
        .filter(|e| e["kind"] == "likes")
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(likes, 7);

    // The dashboard's numbers are what happened, for the anchor and the granted merchant.
    let analytics_path = format!("/api/v1/rooms/r1/analytics?replay={id}");
    let (status, report) = get(&server, &analytics_path, Some(&server.anchor_token("r1"))).await;
    assert_eq!(status, 200, "{report}");
    let totals = &report["totals"];
    assert_eq!(totals["comments"], 1, "{totals}");
    assert_eq!(totals["likes"], 7);
    assert_eq!(totals["orders"], 1);
    assert_eq!(totals["units"], 1);
    assert_eq!(totals["gmv_cents"], 2900);
    assert!(totals["peak_online"].as_u64().unwrap() >= 1);
    let funnel = &report["chapters"][0];
    assert_eq!(
        (funnel["shown"].as_u64(), funnel["clicked"].as_u64()),
        (Some(1), Some(1))
    );
    let (status, _) = get(&server, &analytics_path, Some(&server.merchant_token("m1"))).await;
    assert_eq!(status, 200);
    for (token, want) in [
        (server.merchant_token("m9"), 403),
        (server.viewer_token("v1"), 403),
        (server.anchor_token("r2"), 403),
    ] {
        assert_eq!(get(&server, &analytics_path, Some(&token)).await.0, want);
    }
    let csv = reqwest::Client::new()
        .get(server.url(&format!("{analytics_path}&format=csv")))
        .bearer_auth(server.anchor_token("r1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("t,online,joins,leaves,comments,likes,orders,units,gmv_cents\n"));
    let csv_comments: u64 = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(csv_comments, 1);
    // The series travel gzipped to a client that takes it (a long room's are large).
    let zipped = reqwest::Client::new()
        .get(server.url(&analytics_path))
        .bearer_auth(server.anchor_token("r1"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");

    // Buying from the replay: the sale is still open.
    let order = |key: &str, chapter: u32| json!({"qty": 1, "key": key, "source": "replay", "replay_id": id, "chapter": chapter});
    let buy = |token: Option<String>, body: Value| {
        let mut req = reqwest::Client::new()
            .post(server.url(&format!("/api/v1/sales/{sale}/orders")))
            .json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    let resp = buy(Some(server.viewer_token("v2")), order("r-1", 1))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let bought: Value = resp.json().await.unwrap();
    assert_eq!(bought["outcome"], "accepted");
    let order_id = bought["order_id"].as_str().unwrap();
    let (_, stored) = server
        .merchant_get("m1", &format!("/api/v1/orders/{order_id}"))
        .await;
    assert_eq!(stored["source"], "replay", "{stored}");
    assert_eq!(stored["replay"], json!({"replay_id": id, "chapter": 1}));
    assert_eq!(stored["buyer"], "v2");
    // Retrying with the same key answers the same order; a wrong chapter or no token is refused.
    let again: Value = buy(Some(server.viewer_token("v2")), order("r-1", 1))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["order_id"], order_id);
    assert_eq!(
        buy(Some(server.viewer_token("v2")), order("r-2", 2))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(buy(None, order("r-3", 1)).await.unwrap().status(), 401);
    let replay = server
        .wait_json(&path, None, |b| b["stats"]["replay_orders"] == 1)
        .await;
    assert_eq!(replay["chapters"][0]["sale"]["remaining"], 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_only_replays_need_a_token_and_the_anchor_may_rename_or_hide_chapters() {
    let server = TestServer::start(test_config());
    let sale = server.create_sale("m1", "r1", 5, 5, json!({})).await;
    let mut anchor = server.open_room("r1").await;
    anchor
        .send(json!({"type":"control","cmd":"allow_anonymous","allowed":false,"id":1}))
        .await;
    anchor
        .send(json!({"type":"control","cmd":"go_live","id":2}))
        .await;
    TestServer::drop_link(&mut anchor, &sale, 100).await;
    anchor
        .send(json!({"type":"control","cmd":"ban","user":"troll","id":3}))
        .await;
    anchor
        .recv_until(|m| matches!(m, ServerMsg::Ack { id: Some(3), .. }).then_some(()))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    anchor
        .send(json!({"type":"control","cmd":"end","id":4}))
        .await;
    let viewer = server.viewer_token("v1");
    let list = server
        .wait_json("/api/v1/replays?room=r1", Some(&viewer), |b| {
            b["replays"][0]["state"] == "ended"
        })
        .await;
    let id = list["replays"][0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/replays/{id}");
    // Guests see no members-only replay; the banned user gets none either.
    let (_, guest_list) = get(&server, "/api/v1/replays?room=r1", None).await;
    assert_eq!(guest_list["replays"], json!([]));
    assert_eq!(get(&server, &path, None).await.0, 401);
    assert_eq!(
        get(&server, &path, Some(&server.viewer_token("troll")))
            .await
            .0,
        403
    );
    assert_eq!(get(&server, &format!("{path}/events"), None).await.0, 401);
    let (status, replay) = get(&server, &path, Some(&viewer)).await;
    assert_eq!(status, 200);
    assert_eq!(replay["chapters"][0]["title"], "Linen shirt");
    assert_eq!(
        get(&server, "/api/v1/replays/999999", Some(&viewer))
            .await
            .0,
        404
    );

    // The anchor renames the chapter, then hides it: viewers no longer see it.
    let edit = |body: Value, token: String| {
        reqwest::Client::new()
            .patch(server.url(&format!("{path}/chapters/{sale}")))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let resp = edit(
        json!({"title": "The linen shirt (white)"}),
        server.anchor_token("r1"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, replay) = get(&server, &path, Some(&viewer)).await;
    assert_eq!(replay["chapters"][0]["title"], "The linen shirt (white)");
    assert_eq!(
        edit(json!({"hidden": true}), viewer.clone())
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        edit(json!({"title": "  "}), server.anchor_token("r1"))
            .await
            .unwrap()
            .status(),
        400
    );
    edit(json!({"hidden": true}), server.anchor_token("r1"))
        .await
        .unwrap();
    let (_, replay) = get(&server, &path, Some(&viewer)).await;
    assert_eq!(replay["chapters"], json!([]));
    let (_, replay) = get(&server, &path, Some(&server.anchor_token("r1"))).await;
    assert_eq!(replay["chapters"][0]["hidden"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_recording_and_never_the_live_room() {
    let mut cfg = test_config();
    // More free space than any disk has: the recorder finds its disk "full".
    cfg.media.recording_min_free_mb = u64::MAX / (4 << 20);
    let server = TestServer::start(cfg);
    let mut anchor = server.open_room("r1").await;
    let (_publisher, _stop) = go_live(&server, &mut anchor, "r1").await;
    let (mut viewer, _) = server.join_viewer("r1", Some("v1")).await;
    let sub = common::media::ws_subscribe(&mut viewer).await;
    server
        .wait_metric(
            "lockstep_media_recordings_stopped_total{reason=\"disk_full\"}",
            1.0,
        )
        .await;
    let (status, ready) = server.readyz().await;
    assert_eq!(status, 200, "the node still serves its rooms: {ready}");
    assert!(
        ready["warnings"][0]
            .as_str()
            .unwrap()
            .contains("recording of room r1 stopped"),
        "{ready}"
    );
    // The live room goes on: video flows, comments are taken.
    sub.wait_video(60, WAIT).await.unwrap();
    viewer
        .send(json!({"type":"comment","text":"still here","id":5}))
        .await;
    viewer
        .recv_until(|m| matches!(m, ServerMsg::Ack { id: Some(5), .. }).then_some(()))
        .await;
    assert_eq!(server.metric("lockstep_media_recordings").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_opens_a_replay_sale_once_the_live_one_ended() {
    let server = TestServer::start(test_config());
    let sale = server.create_sale("m1", "r1", 20, 5, json!({})).await;
    let mut anchor = server.open_room("r1").await;
    anchor
        .send(json!({"type":"control","cmd":"go_live","id":1}))
        .await;
    TestServer::drop_link(&mut anchor, &sale, 100).await;
    anchor
        .send(json!({"type":"control","cmd":"close_sale","sale_id":sale,"id":2}))
        .await;
    anchor
        .recv_until(|m| matches!(m, ServerMsg::Ack { id: Some(2), .. }).then_some(()))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    anchor
        .send(json!({"type":"control","cmd":"end","id":3}))
        .await;
    let id = replay_id(&server, "r1").await;
    let path = format!("/api/v1/replays/{id}");
    let replay = server
        .wait_json(&path, None, |b| b["state"] == "ended")
        .await;
    assert_eq!(replay["chapters"][0]["sale"]["state"], "ended");
    let viewer = server.viewer_token("v1");
    let order = json!({"qty": 1, "key": "k", "source": "replay", "replay_id": id, "chapter": 1});
    let buy = |sale: String| {
        reqwest::Client::new()
            .post(server.url(&format!("/api/v1/sales/{sale}/orders")))
            .bearer_auth(viewer.clone())
            .json(&order)
            .send()
    };
    let closed: Value = buy(sale.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(closed["outcome"], "closed");

    // Another merchant cannot; the one who sold it live opens a sale for the replay.
    let open = |merchant: &str| {
        reqwest::Client::new()
            .post(server.url(&format!("{path}/chapters/{sale}/sale")))
            .bearer_auth(server.merchant_token(merchant))
            .json(&json!({"allotted": 3, "price_cents": 2500}))
            .send()
    };
    assert_eq!(open("m2").await.unwrap().status(), 404);
    let resp = open("m1").await.unwrap();
    assert_eq!(resp.status(), 201);
    let opened: Value = resp.json().await.unwrap();
    let replay_sale = opened["sale"]["id"].as_str().unwrap().to_owned();
    assert_eq!(opened["summary"]["state"], "open");

    // The chapter's card now sells from it.
    let (_, replay) = get(&server, &path, None).await;
    let current = &replay["chapters"][0]["sale"];
    assert_eq!(current["id"], replay_sale.as_str());
    assert_eq!(
        (current["state"].as_str(), current["price_cents"].as_u64()),
        (Some("open"), Some(2500))
    );
    let resp = buy(replay_sale.clone()).await.unwrap();
    assert_eq!(resp.status(), 201);
    let bought: Value = resp.json().await.unwrap();
    let (_, stored) = server
        .merchant_get(
            "m1",
            &format!("/api/v1/orders/{}", bought["order_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(stored["source"], "replay");
    assert_eq!(stored["sale_id"], replay_sale.as_str());
    // What the replay earned counts on its chapter, whichever sale it went to.
    let (_, replay) = get(&server, &path, None).await;
    assert_eq!(replay["stats"]["replay_orders"], 1);
    assert_eq!(replay["chapters"][0]["replay_orders"], 1);
    // While that sale is open, another cannot be opened for the chapter.
    assert_eq!(open("m1").await.unwrap().status(), 409);
    // The live sale's id no longer sells for this chapter's card... and a sale of no
    // chapter never did.
    let other = server.create_sale("m1", "r2", 5, 5, json!({})).await;
    assert_eq!(buy(other).await.unwrap().status(), 404);
}
