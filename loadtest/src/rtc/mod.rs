//! WebRTC clients for tests and the `subscribers` scenario: a WHIP publisher sending a
//! synthetic VP8 stream (plus Opus-sized audio packets) whose every packet carries its
//! send time, or a real H.264 clip; subscribers (WHEP or the viewer WebSocket) that
//! count packets, gaps and forwarding latency. Nothing is encoded or decoded: the SFU
//! forwards bytes, and the synthetic payload keeps the measurement exact.

pub mod h264_clip;
pub mod janus;
pub mod peer;
pub mod publisher;
pub mod subscriber;
pub mod synthetic;

pub use h264_clip::H264Clip;
pub use publisher::{PublishOptions, Publisher, stream_plain_rtp};
pub use subscriber::{Subscriber, SubscriberStats};
