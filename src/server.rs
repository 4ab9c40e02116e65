//! Starting and stopping the server: `run(listener, config, shutdown)` wires the room
//! directory, its arbiter pool and the HTTP/WebSocket routes, serves until `shutdown`
//! resolves, then closes every socket with 1001 and stops.

use std::future::Future;
use std::net::TcpListener;

use actix::Arbiter;
use actix_web::{App, HttpServer, web};
use lockstep_actors::directory::RoomDirectory;
use lockstep_actors::metrics::Metrics;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::config::{Config, threads_or_cores};
use crate::state::AppState;
use crate::{http, ws};

/// Serves on `listener` until `shutdown` resolves. Must run inside an actix `System`
/// (`actix_rt::System::new().block_on(run(..))`).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let metrics = Metrics::new();
    let arbiters: Vec<Arbiter> = (0..threads_or_cores(config.rooms.arbiters))
        .map(|_| Arbiter::new())
        .collect();
    let directory = RoomDirectory::new(
        config.room.clone(),
        arbiters.iter().map(Arbiter::handle).collect(),
        metrics.clone(),
        config.rooms.max_rooms,
    );
    let cancel = CancellationToken::new();
    let state = web::Data::new(AppState::new(
        directory,
        Auth::new(&config.auth.secret),
        config.session.clone(),
        metrics,
        cancel.clone(),
    ));
    let max_body = config.server.max_body_bytes;
    let send_buffer = config.server.socket_send_buffer_bytes;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(max_body)
                    .error_handler(http::json_error),
            )
            .app_data(web::PayloadConfig::default().limit(max_body))
            .route("/healthz", web::get().to(http::healthz))
            .route("/metrics", web::get().to(http::metrics))
            .route("/api/v1/rooms", web::post().to(http::open_room))
            .route("/api/v1/rooms/{id}", web::get().to(http::get_room))
            .route("/ws/rooms/{id}", web::get().to(ws::viewer))
            .route("/ws/rooms/{id}/control", web::get().to(ws::control))
            .default_service(web::to(http::not_found))
    })
    .on_connect(move |conn, _| tune_socket(conn, send_buffer))
    .workers(threads_or_cores(config.server.workers))
    .backlog(4096)
    .max_connections(25_000)
    .disable_signals()
    .shutdown_timeout(config.server.shutdown_timeout_secs)
    .listen(listener)?
    .run();
    tracing::info!(%addr, "lockstep listening");
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: closing sessions with 1001");
        cancel.cancel();
        handle.stop(true).await;
    });
    let result = server.await;
    for arbiter in arbiters {
        arbiter.stop();
    }
    result
}

/// Applies per-connection socket options to a freshly accepted connection.
fn tune_socket(conn: &dyn std::any::Any, send_buffer: usize) {
    let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    if send_buffer > 0
        && let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(send_buffer)
    {
        tracing::warn!(error = %e, "could not set the socket send buffer");
    }
}
