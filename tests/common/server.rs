//! The server under test: started on 127.0.0.1:0 with a test config and its own
//! database, stopped on drop; tokens, and the HTTP calls tests make (merchant API,
//! rooms, metrics, readiness).

use std::net::SocketAddr;
use std::time::Duration;

use lockstep::Config;
use lockstep::auth::{Auth, Claims, unix_now};
use lockstep_protocol::{Role, ServerMsg};
use serde_json::{Value, json};

use super::{Client, EVENT_TIMEOUT};

/// A config suited to tests: fast ticks so events arrive quickly.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.room.tick_ms = 20;
    c.room.online_interval_ms = 50;
    c.rooms.arbiters = 2;
    c.server.workers = 2;
    c.server.shutdown_timeout_secs = 2;
    c.store.path = temp_db_path();
    c.media.recording_dir = c.store.path.replace(".db", "-recordings");
    // Test machines may have little disk to spare; the full-disk rule has its own test.
    c.media.recording_min_free_mb = 1;
    c
}

/// A fresh database path under the build's scratch directory (`target/tmp`), unique per
/// call.
pub fn temp_db_path() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lockstep-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "{}-{}-{n}.db",
        std::process::id(),
        lockstep_actors::clock::now_ms()
    ));
    path.to_string_lossy().into_owned()
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub config: Config,
    auth: Auth,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub fn start(config: Config) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let cfg = config.clone();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(lockstep::run(listener, cfg, async {
                let _ = rx.await;
            }))
        });
        Self {
            addr,
            auth: Auth::new(&config.auth.secret),
            config,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub fn token(&self, role: Role, sub: &str, room: Option<&str>) -> String {
        self.auth.issue(&Claims {
            sub: sub.into(),
            role,
            room: room.map(Into::into),
            merchant: None,
            name: None,
            exp: unix_now() + 3600,
        })
    }

    /// Signs arbitrary claims with the server's secret.
    pub fn auth_issue(&self, claims: Claims) -> String {
        self.auth.issue(&claims)
    }

    pub fn merchant_token(&self, merchant: &str) -> String {
        self.auth.issue(&Claims {
            sub: merchant.into(),
            role: Role::Merchant,
            room: None,
            merchant: Some(merchant.into()),
            name: None,
            exp: unix_now() + 3600,
        })
    }

    /// Creates a product with one SKU holding `stock` units and returns the SKU id.
    pub async fn create_sku(&self, merchant: &str, stock: u32) -> String {
        let product: Value = reqwest::Client::new()
            .post(self.url("/api/v1/products"))
            .bearer_auth(self.merchant_token(merchant))
            .json(&json!({
                "title": "Linen shirt", "description": "Breathable", "price_cents": 4900,
                "image_url": "https://example.invalid/shirt.jpg",
                "skus": [{"attributes": {"size": "M"}, "stock": stock}],
                "faq": [{"q": "Material?", "a": "Linen"}]
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        product["skus"][0]["id"]
            .as_str()
            .expect("product has a sku")
            .to_owned()
    }

    /// The room's anchor lets `merchant` sell in `room`.
    pub async fn grant(&self, room: &str, merchant: &str) {
        let resp = reqwest::Client::new()
            .put(self.url(&format!("/api/v1/rooms/{room}/merchants/{merchant}")))
            .bearer_auth(self.anchor_token(room))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "grant {merchant} in {room}");
    }

    /// Creates a sale in `room` (extra fields merged into the body; the room's anchor
    /// grants the merchant first); returns its id.
    pub async fn create_sale(
        &self,
        merchant: &str,
        room: &str,
        stock: u32,
        allotted: u32,
        extra: Value,
    ) -> String {
        self.grant(room, merchant).await;
        let sku = self.create_sku(merchant, stock).await;
        let mut body =
            json!({"room": room, "sku_id": sku, "allotted": allotted, "price_cents": 2900});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let resp = reqwest::Client::new()
            .post(self.url("/api/v1/sales"))
            .bearer_auth(self.merchant_token(merchant))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "create sale");
        let view: Value = resp.json().await.unwrap();
        view["sale"]["id"].as_str().unwrap().to_owned()
    }

    /// `GET` a merchant API path as `merchant`.
    pub async fn merchant_get(&self, merchant: &str, path: &str) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(self.merchant_token(merchant))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `POST` a merchant API path as `merchant`.
    pub async fn merchant_post(&self, merchant: &str, path: &str, body: Value) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(self.url(path))
            .bearer_auth(self.merchant_token(merchant))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Drops `sale`'s link from the anchor's control channel; returns `reveal_at`.
    pub async fn drop_link(anchor: &mut Client, sale: &str, countdown_ms: u64) -> u64 {
        anchor.send(json!({"type":"control","cmd":"drop_link","sale_id":sale,"countdown_ms":countdown_ms,"id":900})).await;
        anchor
            .recv_until(|m| match m {
                ServerMsg::Link { link } => Some(link.reveal_at),
                ServerMsg::Error {
                    id: Some(900),
                    message,
                    ..
                } => panic!("drop_link refused: {message}"),
                _ => None,
            })
            .await
    }

    pub fn anchor_token(&self, room: &str) -> String {
        self.token(Role::Anchor, &format!("anchor-{room}"), Some(room))
    }

    pub fn viewer_token(&self, user: &str) -> String {
        self.token(Role::Viewer, user, None)
    }

    /// Opens `room` over its control channel; returns the joined anchor.
    pub async fn open_room(&self, room: &str) -> Client {
        let mut anchor = Client::connect(&self.ws_url(&format!("/ws/rooms/{room}/control"))).await;
        anchor.send(json!({"type":"join","protocol":1,"token":self.anchor_token(room),"title":format!("Room {room}")})).await;
        let welcome = anchor.recv().await;
        assert!(
            matches!(welcome, ServerMsg::Welcome { .. }),
            "anchor welcome, got {welcome:?}"
        );
        anchor
    }

    /// Joins `room` as a viewer (`user: None` = anonymous); returns the client and welcome.
    pub async fn join_viewer(&self, room: &str, user: Option<&str>) -> (Client, ServerMsg) {
        let mut viewer = Client::connect(&self.ws_url(&format!("/ws/rooms/{room}"))).await;
        let mut join = json!({"type":"join","protocol":1});
        if let Some(user) = user {
            join["token"] = json!(self.viewer_token(user));
        }
        viewer.send(join).await;
        let welcome = viewer.recv().await;
        (viewer, welcome)
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("metric {name} missing"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Polls `GET path` (with `token`, if any) until it answers 200 with a JSON body
    /// `done` accepts; returns that body (fails after the media wait).
    pub async fn wait_json(
        &self,
        path: &str,
        token: Option<&str>,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + super::media::WAIT;
        loop {
            let mut req = reqwest::Client::new().get(self.url(path));
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if status == 200 && done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never became ready: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `/readyz`: its status and body.
    pub async fn readyz(&self) -> (u16, Value) {
        let resp = reqwest::get(self.url("/readyz")).await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// Waits until `/readyz` answers `want`; returns its body then.
    pub async fn wait_readyz(&self, want: u16) -> Value {
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT * 2;
        loop {
            let (status, body) = self.readyz().await;
            if status == want {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/readyz stayed {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the metric `name` reads `want` (fails after the event timeout).
    pub async fn wait_metric(&self, name: &str, want: f64) {
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            let got = self.metric(name).await;
            if got == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} stayed {got}, wanted {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server (as Ctrl-C would) and waits for it to exit.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .expect("server thread panicked")
                .expect("server returned an error");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shutdown();
        }
    }
}
