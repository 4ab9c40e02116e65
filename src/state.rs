//! What every request handler shares: the room, sale and media directories, auth,
//! limits, metrics, the startup/shutdown phase, the shutdown signal and the sessions'
//! tasks.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lockstep_actors::config::SessionConfig;
use lockstep_actors::directory::RoomDirectory;
use lockstep_actors::inventory::SaleDirectory;
use lockstep_actors::metrics::Metrics;
use lockstep_actors::room::SessionId;
use lockstep_cluster::Cluster;
use lockstep_sfu::MediaDirectory;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::health::Phase;
use crate::limits::ConnLimits;

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
    /// Every WebSocket session's task, so shutdown can wait for their closes.
    pub sessions: TaskTracker,
    pub phase: Arc<Phase>,
    pub limits: Arc<ConnLimits>,
    /// Largest request body (`server.max_body_bytes`).
    pub max_body: usize,
    pub(crate) next_session: Arc<AtomicU64>,
    /// This process's membership of a cluster (`cluster.redis_url`), if any.
    pub cluster: Option<Arc<Cluster>>,
    /// Where replays are read from (`None` when `archive.enabled` is off).
    pub archive: Option<Arc<crate::replay_data::Replays>>,
}

impl AppState {
    pub fn next_session_id(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }

    /// The client's address (`peer`, as the connection has it) for per-address limits,
    /// `None` when it is exempt.
    pub fn counted_peer(&self, peer: Option<SocketAddr>) -> Option<IpAddr> {
        self.limits.counted(peer.map(|a| a.ip()))
    }
}
