//! What every request handler shares: the room, sale and media directories, auth,
//! limits, metrics and the shutdown signal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lockstep_actors::config::SessionConfig;
use lockstep_actors::directory::RoomDirectory;
use lockstep_actors::inventory::SaleDirectory;
use lockstep_actors::metrics::Metrics;
use lockstep_actors::room::SessionId;
use lockstep_sfu::MediaDirectory;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;

/// Shared server state, cloned into every worker.
#[derive(Debug, Clone)]
pub struct AppState {
    pub directory: Arc<RoomDirectory>,
    pub sales: Arc<SaleDirectory>,
    pub media: Arc<MediaDirectory>,
    pub auth: Auth,
    pub session: Arc<SessionConfig>,
    pub metrics: Metrics,
    /// Cancelled when the server shuts down: every session closes with 1001.
    pub shutdown: CancellationToken,
    next_session: Arc<AtomicU64>,
}

impl AppState {
    pub fn new(
        directory: Arc<RoomDirectory>,
        sales: Arc<SaleDirectory>,
        media: Arc<MediaDirectory>,
        auth: Auth,
        session: SessionConfig,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            directory,
            sales,
            media,
            auth,
            session: Arc::new(session),
            metrics,
            shutdown,
            next_session: Arc::new(AtomicU64::new(1)),
        }
    }

    pub fn next_session_id(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }
}

/// Room ids are 1–64 characters of `[A-Za-z0-9_-]`.
pub fn valid_room_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
