//! `/readyz` and the pages' security headers, from outside: ready once sales are
//! restored, not ready with the reason when they cannot be; every response carries the
//! headers a browser needs to keep the pages safe.

mod common;

use std::time::Duration;

use common::{TestServer, test_config};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_the_server_cannot_restore_from_keeps_it_unready_with_the_reason() {
    let cfg = test_config();
    let server = TestServer::start(cfg.clone());
    let sale = server.create_sale("m1", "r1", 5, 5, json!({})).await;
    server.wait_readyz(200).await;
    server.stop();
    // Someone edits the database by hand and leaves a value no sale can have.
    let conn = rusqlite::Connection::open(&cfg.store.path).unwrap();
    conn.execute("UPDATE sales SET allotted = -5 WHERE id = ?1", [&sale])
        .unwrap();
    drop(conn);
    let server = TestServer::start(cfg);
    let deadline = tokio::time::Instant::now() + common::EVENT_TIMEOUT;
    let body = loop {
        let (status, body) = server.readyz().await;
        if status == 503 && body.to_string().contains("restoring sales failed") {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body["ready"], false);
    // The process answers; it just should not get traffic.
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_api_responses_carry_security_headers() {
    let server = TestServer::start(test_config());
    for path in [
        "/rooms/r1",
        "/rooms/r1/anchor",
        "/static/viewer.js",
        "/api/v1/rooms/none",
    ] {
        let resp = reqwest::get(server.url(path)).await.unwrap();
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }
}
