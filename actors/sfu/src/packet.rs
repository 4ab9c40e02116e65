//! What flows down the tree: one RTP packet from the publisher, classified once by its
//! ingest (layer, keyframe, media-clock timestamp) and shared by every relay.

use std::sync::Arc;

use actix::prelude::*;
use rtc::rtp;

use crate::MediaId;
use crate::layers::LayerId;

/// One RTP packet from the publisher, shared by every relay.
#[derive(Debug)]
pub struct MediaPacket {
    pub video: bool,
    /// Simulcast layer (RID; empty without simulcast).
    pub layer: LayerId,
    /// Starts a keyframe.
    pub keyframe: bool,
    /// Timestamp on the room's media clock (same for every layer's copy of a frame).
    pub media_ts: u32,
    /// The ingest it came from. A new one (an edge pulling again after the room's owner
    /// changed, a publisher that came back) numbers its packets afresh, so each
    /// subscriber's numbering is carried over when the source changes.
    pub source: MediaId,
    pub packet: rtp::Packet,
}

/// A packet to forward (ingest → every relay).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub Arc<MediaPacket>);
