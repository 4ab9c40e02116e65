//! Starting and stopping the server: `run(listener, config, shutdown)` checks the
//! configuration against the address it serves on, wires the room directory, its
//! arbiter pool and the HTTP/WebSocket routes, serves (restoring sales from the database
//! in the background, `/readyz` says when that is done) until `shutdown` resolves, then
//! closes every socket with 1001 and stops.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use actix::Arbiter;
use actix_http::HttpService;
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_service, map_config};
use actix_web::dev::AppConfig;
use actix_web::middleware::{Compress, from_fn};
use actix_web::rt::net::TcpStream;
use actix_web::{App, web};

use lockstep_actors::archive::sqlite;
use lockstep_actors::broker::{Broker, LocalBroker};
use lockstep_actors::directory::RoomDirectory;
use lockstep_actors::inventory::SaleDirectory;
use lockstep_actors::metrics::Metrics;
use lockstep_actors::store::{Storage, Store};
use lockstep_cluster::Cluster;
use lockstep_runtime::ArbiterPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::config::{Config, threads_or_cores};
use crate::health::Phase;
use crate::limits::ConnLimits;
use crate::replay_data::{ArchiveFiles, Replays};
use crate::state::AppState;
use crate::{
    analytics, health, http, media, merchant, middleware, openapi, pages, replay_orders, replays,
    rooms, ws, ws_upgrade,
};
use lockstep_sfu::MediaDirectory;
use lockstep_sfu::metrics::MediaMetrics;

/// Serves on `listener` until `shutdown` resolves. Must run inside an actix `System`
/// (`actix_rt::System::new().block_on(run(..))`). Refuses to start when the
/// configuration is unsafe for the address (see [`Config::check_for`]).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    config
        .check_for(addr)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    warn_if_files_run_short(&config);
    let metrics = Metrics::new();
    let arbiters: Vec<Arbiter> = (0..threads_or_cores(config.rooms.arbiters))
        .map(|_| Arbiter::new())
        .collect();
    let pool = ArbiterPool::new(arbiters.iter().map(Arbiter::handle).collect());
    let cluster = if config.cluster.enabled() {
        let cluster = Cluster::connect(&config.cluster, &metrics)
            .await
            .map_err(|e| {
                std::io::Error::other(format!(
                    "joining the cluster at {}: {e}",
                    config.cluster.redis_url
                ))
            })?;
        cluster.advertise(advertise_url(&config.cluster.advertise_url, addr)?);
        tracing::info!(node = cluster.node(), "joined the cluster");
        Some(cluster)
    } else {
        None
    };
    // One process keeps its record in SQLite; a cluster's nodes share theirs in Redis.
    let storage: Arc<dyn Storage> =
        match &cluster {
            Some(cluster) => cluster.storage(),
            None => Arc::new(Store::open(&config.store, &metrics).map_err(|e| {
                std::io::Error::other(format!("opening {}: {e}", config.store.path))
            })?),
        };
    let sales = SaleDirectory::new(pool.clone(), storage, config.sales.clone(), metrics.clone());
    if let Some(cluster) = &cluster {
        sales.set_epochs(cluster.epochs());
    }
    let broker: Arc<dyn Broker> = match &cluster {
        Some(cluster) => cluster.broker(),
        None => Arc::new(LocalBroker),
    };
    let directory = RoomDirectory::new(
        config.room.clone(),
        pool.clone(),
        broker,
        Some(sales.clone()),
        metrics.clone(),
        config.rooms.max_rooms,
    );
    sales.set_rooms(&directory);
    let media = MediaDirectory::new(
        config.media.clone(),
        pool,
        MediaMetrics::new(&metrics.registry, &metrics.actor_panics),
        media::live_hook(Arc::downgrade(&directory), config.media.playout_delay_ms),
    );
    directory.set_media(Arc::new(media::RoomVideo(media.clone())));
    let archive = start_archive(&config, &metrics, &directory, cluster.as_ref())?;
    keep_recordings_bounded(media.clone());
    let recordings = media.recording().clone();
    if let Some(cluster) = &cluster {
        cluster.set_directories(sales.clone(), directory.clone());
    }
    let cancel = CancellationToken::new();
    let sessions = TaskTracker::new();
    let phase = Arc::new(Phase::default());
    let limits = ConnLimits::new(
        config.server.max_connections,
        config.server.max_connections_per_ip,
        &config.server.connection_limit_exempt,
        metrics.connections_refused.clone(),
        metrics.tcp_connections.clone(),
    );
    let cluster_mode = cluster.is_some();
    let state = web::Data::new(AppState {
        directory,
        sales: sales.clone(),
        media,
        auth: Auth::new(&config.auth.secret),
        session: Arc::new(config.session.clone()),
        metrics,
        shutdown: cancel.clone(),
        sessions: sessions.clone(),
        phase: phase.clone(),
        limits: limits.clone(),
        max_body: config.server.max_body_bytes,
        next_session: Arc::new(AtomicU64::new(session_base())),
        cluster,
        archive,
    });
    if cluster_mode {
        let weak = Arc::downgrade(&state.clone().into_inner());
        state.media.on_pulls(crate::edge_media::pull_hooks(weak));
    }
    let server_cfg = config.server.clone();
    let body_timeout = Duration::from_millis(server_cfg.body_read_timeout_ms);
    let send_buffer = server_cfg.socket_send_buffer_bytes;
    let app_state = state.clone();
    let upgrade_state = state.into_inner();
    let head_timeout = Duration::from_millis(config.server.request_head_timeout_ms);
    let keep_alive = Duration::from_secs(config.server.keep_alive_secs);
    let server = actix_server::Server::build()
        .workers(threads_or_cores(config.server.workers))
        .backlog(config.server.backlog)
        // The global limit is counted by `ConnLimits`; actix's own (per worker) must not
        // refuse earlier.
        .max_concurrent_connections(config.server.max_connections.max(1))
        .disable_signals()
        .shutdown_timeout(config.server.shutdown_timeout_secs)
        .listen("lockstep", listener, move || {
            let state = app_state.clone();
            let server_cfg = server_cfg.clone();
            let app = App::new()
                .app_data(state)
                .app_data(
                    web::JsonConfig::default()
                        .limit(server_cfg.max_body_bytes)
                        .error_handler(http::json_error),
                )
                .app_data(web::PayloadConfig::default().limit(server_cfg.max_body_bytes))
                .app_data(web::QueryConfig::default().error_handler(http::query_error))
                .app_data(web::PathConfig::default().error_handler(http::path_error))
                .wrap(from_fn(move |req, next| {
                    middleware::guard(req, next, body_timeout)
                }))
                .wrap(middleware::security_headers())
                .configure(routes)
                .default_service(web::to(http::not_found))
                .into_factory()
                .map_err(|e| e.error_response());
            let limits = limits.clone();
            let upgrade_state = upgrade_state.clone();
            HttpService::build()
                .keep_alive(keep_alive)
                .client_request_timeout(head_timeout)
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(addr)
                .on_connect_ext(move |conn: &TcpStream, data| {
                    let peer = tune_socket(conn, send_buffer);
                    data.insert(Arc::new(limits.admit(peer)));
                })
                // Every WebSocket handshake takes its connection out of the HTTP layer.
                .upgrade(fn_service(move |(req, conn)| {
                    let state = upgrade_state.clone();
                    async move {
                        ws_upgrade::takeover(state, req, conn).await;
                        Ok::<_, actix_web::Error>(())
                    }
                }))
                .finish(map_config(app, |()| AppConfig::default()))
                .tcp()
        })?
        .run();
    tracing::info!(%addr, "lockstep listening");
    // In a cluster a node runs no sale until it owns the sale's room; they load then.
    if !cluster_mode {
        restore_in_background(sales, phase.clone());
    }
    let handle = server.handle();
    let shutdown_grace = Duration::from_secs(config.server.shutdown_timeout_secs);
    actix_web::rt::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: closing sessions with 1001");
        phase.shutting_down();
        cancel.cancel();
        // Sessions are not the HTTP layer's connections: wait for their closes here.
        sessions.close();
        let _ = actix_web::rt::time::timeout(shutdown_grace, sessions.wait()).await;
        handle.stop(true).await;
    });
    let result = server.await;
    for arbiter in arbiters {
        arbiter.stop();
    }
    // A recording's file is closed (Cues, duration) once its room's actors are gone with
    // their arbiters: give the recorders a moment to finish.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !recordings.active().is_empty() && std::time::Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    result
}

/// Every route the server answers.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(http::metrics))
        .route("/api/v1/rooms", web::post().to(rooms::open_room))
        .route("/api/v1/rooms/{id}", web::get().to(rooms::get_room))
        .route("/api/v1/rooms/{id}/sales", web::get().to(rooms::room_sales))
        .route(
            "/api/v1/rooms/{id}/merchants",
            web::get().to(rooms::list_merchants),
        )
        .route(
            "/api/v1/rooms/{id}/merchants/{merchant}",
            web::put().to(rooms::grant_merchant),
        )
        .route(
            "/api/v1/rooms/{id}/merchants/{merchant}",
            web::delete().to(rooms::revoke_merchant),
        )
        .route("/whip/{room}", web::post().to(media::whip_publish))
        .route("/whip/{room}/{session}", web::delete().to(media::whip_stop))
        .route("/whip/{room}/{session}", web::patch().to(media::no_trickle))
        .route("/whep/{room}/{session}", web::patch().to(media::no_trickle))
        .route("/whep/{room}", web::post().to(media::whep_subscribe))
        .route(
            "/internal/v1/uplink/{room}",
            web::post().to(crate::edge_media::uplink),
        )
        .route(
            "/internal/v1/uplink/{room}/{id}",
            web::delete().to(crate::edge_media::end_uplink),
        )
        .route("/whep/{room}/{session}", web::delete().to(media::whep_stop))
        .route("/rooms/{room}", web::get().to(pages::viewer))
        .route("/rooms/{room}/anchor", web::get().to(pages::anchor))
        .route("/rooms/{room}/dashboard", web::get().to(pages::dashboard))
        .route("/replays/{id}", web::get().to(pages::replay))
        .route("/api/v1/replays", web::get().to(replays::list))
        .route("/api/v1/replays/{id}", web::get().to(replays::get))
        .service(
            web::resource("/api/v1/replays/{id}/events")
                .wrap(Compress::default())
                .route(web::get().to(replays::events)),
        )
        .route("/api/v1/replays/{id}/media", web::get().to(replays::media))
        .route(
            "/api/v1/replays/{id}/chapters/{sale_id}",
            web::patch().to(replays::edit_chapter),
        )
        .route(
            "/api/v1/replays/{id}/chapters/{sale_id}/sale",
            web::post().to(replays::open_replay_sale),
        )
        // The dashboard's series and a replay's timeline are large and repetitive JSON:
        // gzip when the client takes it.
        .service(
            web::resource("/api/v1/rooms/{id}/analytics")
                .wrap(Compress::default())
                .route(web::get().to(analytics::room_analytics)),
        )
        .route(
            "/api/v1/sales/{id}/orders",
            web::post().to(replay_orders::order),
        )
        .route("/static/{file}", web::get().to(pages::asset))
        .route("/api/v1/openapi.json", web::get().to(openapi::serve))
        .route("/api/v1/products", web::post().to(merchant::create_product))
        .route("/api/v1/products", web::get().to(merchant::list_products))
        .route(
            "/api/v1/products/{id}",
            web::get().to(merchant::get_product),
        )
        .route("/api/v1/skus/{id}", web::get().to(merchant::get_sku))
        .route(
            "/api/v1/skus/{id}/stock",
            web::post().to(merchant::change_stock),
        )
        .route("/api/v1/sales", web::post().to(merchant::create_sale))
        .route("/api/v1/sales/{id}", web::get().to(merchant::get_sale))
        .route(
            "/api/v1/sales/{id}/close",
            web::post().to(merchant::close_sale),
        )
        .route("/api/v1/orders", web::get().to(merchant::list_orders))
        .route("/api/v1/orders/{id}", web::get().to(merchant::get_order))
        .route(
            "/api/v1/orders/{id}/confirm",
            web::post().to(merchant::confirm_order),
        )
        .route(
            "/api/v1/orders/{id}/cancel",
            web::post().to(merchant::cancel_order),
        )
        .route("/ws/rooms/{id}", web::get().to(ws::not_upgraded))
        .route("/ws/rooms/{id}/control", web::get().to(ws::not_upgraded));
    #[cfg(feature = "test-hooks")]
    crate::test_hooks::routes(cfg);
}

/// Opens the archive (replays, analytics) and hands it to the rooms; `None` when off.
fn start_archive(
    config: &Config,
    metrics: &Metrics,
    directory: &RoomDirectory,
    cluster: Option<&Arc<Cluster>>,
) -> std::io::Result<Option<Arc<Replays>>> {
    if !config.archive.enabled {
        return Ok(None);
    }
    let recordings = config.media.recording_dir.clone().into();
    // A cluster keeps its rooms' records in the Redis every node reads.
    if let Some(cluster) = cluster {
        directory.set_archive(cluster.archive(&config.archive, metrics));
        return Ok(Some(Arc::new(Replays::Shared {
            redis: cluster.replays(),
            recordings,
        })));
    }
    let mut cfg = config.archive.clone();
    if cfg.path.is_empty() {
        cfg.path = beside(&config.store.path, "-archive");
    }
    let archive = sqlite::start(&cfg, metrics)
        .map_err(|e| std::io::Error::other(format!("opening {}: {e}", cfg.path)))?;
    directory.set_archive(Arc::new(archive));
    Ok(Some(Arc::new(Replays::Local(ArchiveFiles {
        db: cfg.path,
        store_db: Some(config.store.path.clone()),
        recordings,
    }))))
}

/// `path` with `suffix` before its extension: `data/lockstep.db` → `data/lockstep-archive.db`.
fn beside(path: &str, suffix: &str) -> String {
    let p = std::path::Path::new(path);
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("lockstep");
    let name = match p.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{stem}{suffix}.{ext}"),
        None => format!("{stem}{suffix}"),
    };
    p.with_file_name(name).to_string_lossy().into_owned()
}

/// Applies recording retention now and every ten minutes, off the async threads.
fn keep_recordings_bounded(media: Arc<MediaDirectory>) {
    actix_web::rt::spawn(async move {
        let mut every = actix_web::rt::time::interval(Duration::from_secs(600));
        loop {
            every.tick().await;
            let media = media.clone();
            let deleted = actix_web::rt::task::spawn_blocking(move || {
                media.enforce_retention(lockstep_actors::clock::now_ms())
            })
            .await
            .unwrap_or_default();
            if !deleted.is_empty() {
                tracing::info!(
                    deleted = deleted.len(),
                    "old recordings deleted (media.recording_max_*)"
                );
            }
        }
    });
}

/// Applies per-connection socket options to a freshly accepted connection; returns the
/// peer's address.
fn tune_socket(stream: &TcpStream, send_buffer: usize) -> Option<std::net::IpAddr> {
    let _ = stream.set_nodelay(true);
    if send_buffer > 0
        && let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(send_buffer)
    {
        tracing::warn!(error = %e, "could not set the socket send buffer");
    }
    stream.peer_addr().ok().map(|a| a.ip())
}

/// Warns when the limits in the configuration need more sockets than the process may
/// open (its soft `RLIMIT_NOFILE`, read from `/proc/self/limits`): connections past
/// that fail at accept instead of getting a coded refusal.
fn warn_if_files_run_short(config: &Config) {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))?
                .split_whitespace()
                .nth(3)?
                .parse::<usize>()
                .ok()
        });
    if let Some(limit) = limit
        && config.sockets_needed() > limit
    {
        tracing::warn!(
            open_files_limit = limit,
            needed = config.sockets_needed(),
            "server.max_connections + media.max_subscribers_total may need more sockets than this process may open; lower them or raise the limit"
        );
    }
}

/// Rebuilds, in the background, every sale that can still change (not ended, or holding
/// reservations); ended ones load on demand. Requests meanwhile load what they need.
fn restore_in_background(sales: Arc<SaleDirectory>, phase: Arc<Phase>) {
    phase.restoring(true);
    actix_web::rt::spawn(async move {
        match sales.restore().await {
            Ok(count) => {
                tracing::info!(sales = count, "sales restored");
                phase.restoring(false);
            }
            Err(e) => {
                tracing::error!(error = %e, "restoring sales failed");
                phase.restore_failed(e.to_string());
            }
        }
    });
}

/// Where this process starts numbering its sessions: a random multiple of 2^32, so the
/// session ids of a cluster's nodes do not meet.
fn session_base() -> u64 {
    u64::from(rand::random::<u32>()) << 32
}

/// Where the other nodes of a cluster reach this one: `cluster.advertise_url`, or the
/// bound address when it is a concrete one.
fn advertise_url(configured: &str, addr: std::net::SocketAddr) -> std::io::Result<String> {
    if !configured.is_empty() {
        return Ok(configured.trim_end_matches('/').to_owned());
    }
    if addr.ip().is_unspecified() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "server.bind {addr} does not say where the other nodes reach this one; set cluster.advertise_url (LOCKSTEP_CLUSTER__ADVERTISE_URL), e.g. http://10.0.0.5:{}",
                addr.port()
            ),
        ));
    }
    Ok(format!("http://{addr}"))
}
