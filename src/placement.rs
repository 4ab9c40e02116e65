//! Where a room runs, as a session or an anchor's request finds it: in one process, the
//! room's actor here; in a cluster (`cluster.redis_url`), the node holding the room's
//! lease runs it, and any other node reaches it through its edge of the room.

use lockstep_actors::directory::RoomOptions;
use lockstep_actors::room::{Room, RoomLink};
use lockstep_actors::session::JoinError;
use lockstep_cluster::Claim;
use lockstep_protocol::RoomId;

use crate::state::AppState;

/// A room as an anchor opened it.
pub struct Opened {
    pub link: RoomLink,
    /// This node runs the room (it owns it, or there is no cluster).
    pub here: Option<actix::Addr<Room>>,
    /// This call opened it.
    pub created: bool,
}

impl AppState {
    /// The room a viewer joins, or `None` when it is not open anywhere.
    pub async fn find_room(&self, room: &str) -> Result<Option<RoomLink>, JoinError> {
        if let Some(addr) = self.directory.get(room) {
            return Ok(Some(addr.into()));
        }
        let Some(cluster) = &self.cluster else {
            return Ok(None);
        };
        cluster.edge(room).await.map_err(|e| {
            tracing::warn!(room, error = %e, "finding a room in the cluster");
            JoinError::ClusterUnavailable
        })
    }

    /// Opens a room for its anchor, or finds it open. In a cluster the first node to
    /// claim the room runs it; on any other node the anchor reaches it through the edge.
    pub async fn open_room(&self, id: &RoomId, options: &RoomOptions) -> Result<Opened, JoinError> {
        let Some(cluster) = &self.cluster else {
            let (addr, created) = self.directory.open(id, options)?;
            return Ok(Opened {
                link: addr.clone().into(),
                here: Some(addr),
                created,
            });
        };
        let unavailable = |e: lockstep_cluster::ClusterError| {
            tracing::warn!(room = %id, error = %e, "claiming a room in the cluster");
            JoinError::ClusterUnavailable
        };
        let _placing = cluster.placing(id.as_str()).await;
        match cluster.claim(id.as_str()).await.map_err(unavailable)? {
            Claim::Owner { epoch } => {
                // A room whose owner died (or shut down) comes back as it left it.
                let (addr, created) = match self.directory.get(id.as_str()) {
                    Some(addr) => (addr, false),
                    None => match cluster.checkpoint(id.as_str()).await.map_err(unavailable)? {
                        Some(durable) => (self.directory.adopt(id, Some(durable)), true),
                        None => self.directory.open(id, options)?,
                    },
                };
                cluster.serve_owned(id.as_str(), epoch, addr.clone());
                Ok(Opened {
                    link: addr.clone().into(),
                    here: Some(addr),
                    created,
                })
            }
            Claim::Edge { .. } => {
                let link = cluster
                    .edge(id.as_str())
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| JoinError::RoomNotOpen(id.to_string()))?;
                Ok(Opened {
                    link,
                    here: None,
                    created: false,
                })
            }
        }
    }
}
