//! Starting and stopping the server: `run(listener, config, shutdown)` wires the room
//! directory, its arbiter pool and the HTTP/WebSocket routes, serves until `shutdown`
//! resolves, then closes every socket with 1001 and stops.

use std::future::Future;
use std::net::TcpListener;

use actix::Arbiter;
use actix_web::{App, HttpServer, web};
use std::path::Path;

use lockstep_actors::directory::RoomDirectory;
use lockstep_actors::inventory::SaleDirectory;
use lockstep_actors::metrics::Metrics;
use lockstep_actors::store::{self, Store};
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::config::{Config, threads_or_cores};
use crate::state::AppState;
use crate::{http, media, merchant, openapi, pages, ws};
use lockstep_sfu::MediaDirectory;
use lockstep_sfu::metrics::MediaMetrics;

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
    let pool: Vec<_> = arbiters.iter().map(Arbiter::handle).collect();
    let store = Store::open(Path::new(&config.store.path), config.store.synchronous_full)
        .map_err(|e| std::io::Error::other(format!("opening {}: {e}", config.store.path)))?;
    let sales = SaleDirectory::new(pool.clone(), store.clone());
    let directory = RoomDirectory::new(
        config.room.clone(),
        pool.clone(),
        Some(sales.clone()),
        metrics.clone(),
        config.rooms.max_rooms,
    );
    let media = MediaDirectory::new(
        config.media.clone(),
        pool,
        MediaMetrics::new(&metrics.registry),
        media::live_hook(
            std::sync::Arc::downgrade(&directory),
            config.media.playout_delay_ms,
        ),
    );
    directory.set_media(std::sync::Arc::new(media::RoomVideo(media.clone())));
    let restored = restore_sales(&store, &sales, &directory).await?;
    tracing::info!(sales = restored, path = %config.store.path, "store opened");
    let cancel = CancellationToken::new();
    let state = web::Data::new(AppState::new(
        directory,
        sales,
        media,
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
            .route("/api/v1/rooms/{id}/sales", web::get().to(http::room_sales))
            .route("/whip/{room}", web::post().to(media::whip_publish))
            .route("/whip/{room}/{session}", web::delete().to(media::whip_stop))
            .route("/whip/{room}/{session}", web::patch().to(media::no_trickle))
            .route("/whep/{room}/{session}", web::patch().to(media::no_trickle))
            .route("/whep/{room}", web::post().to(media::whep_subscribe))
            .route("/whep/{room}/{session}", web::delete().to(media::whep_stop))
            .route("/rooms/{room}", web::get().to(pages::viewer))
            .route("/rooms/{room}/anchor", web::get().to(pages::anchor))
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
            .app_data(web::QueryConfig::default().error_handler(http::query_error))
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

/// Rebuilds every stored sale's inventory actor (products, stock and orders live in the
/// database; reservations, limits and idempotency keys come back from the orders).
async fn restore_sales(
    store: &Store,
    sales: &SaleDirectory,
    rooms: &std::sync::Arc<RoomDirectory>,
) -> std::io::Result<usize> {
    let stored = store
        .call(|tx| {
            let mut out = Vec::new();
            for id in store::sale_ids(tx)? {
                if let (Some(sale), Some(card)) =
                    (store::load_sale(tx, &id)?, store::link_card(tx, &id)?)
                {
                    out.push((sale, card));
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| std::io::Error::other(format!("restoring sales: {e}")))?;
    let count = stored.len();
    for (sale, card) in stored {
        sales.start(sale, card, rooms);
    }
    Ok(count)
}
