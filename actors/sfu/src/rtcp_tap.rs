//! The inbound RTCP the SFU acts on itself, passed to the application by a small
//! interceptor placed after the default ones: keyframe requests (PLI, FIR) from
//! subscribers, which go up the tree to the publisher ([`crate::keyframe`]); their
//! REMBs and receiver reports, which feed the automatic layer choice
//! ([`crate::layers::Estimator`]); and sender
//! reports from publishers, which tie each simulcast layer's RTP clock to the
//! publisher's wall clock ([`crate::clock`]). Every other inbound RTCP packet stays with
//! the interceptors (NACK, TWCC), which see the reports too.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Marks keyframe requests and sender reports for the application.
#[derive(Default)]
pub struct RtcpTap {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

/// A PLI or FIR.
pub fn asks_for_keyframe(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// The packet's sender report, if it is one.
pub fn sender_report(packet: &dyn rtc::rtcp::Packet) -> Option<&SenderReport> {
    packet.as_any().downcast_ref::<SenderReport>()
}

/// The bitrate a REMB says the receiver can take, bits/s.
pub fn remb(packet: &dyn rtc::rtcp::Packet) -> Option<u64> {
    let remb = packet
        .as_any()
        .downcast_ref::<ReceiverEstimatedMaximumBitrate>()?;
    Some(remb.bitrate.max(0.0) as u64)
}

/// The fraction (0–1) of the stream `ssrc`'s packets a receiver report says were lost
/// since the one before.
pub fn loss_of(packet: &dyn rtc::rtcp::Packet, ssrc: u32) -> Option<f64> {
    let report = packet.as_any().downcast_ref::<ReceiverReport>()?;
    let block = report.reports.iter().find(|r| r.ssrc == ssrc)?;
    Some(f64::from(block.fraction_lost) / 256.0)
}

fn for_application(packet: &dyn rtc::rtcp::Packet) -> bool {
    asks_for_keyframe(packet)
        || sender_report(packet).is_some()
        || remb(packet).is_some()
        || packet.as_any().is::<ReceiverReport>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let wanted: Vec<_> = packets
                .iter()
                .filter(|p| for_application(p.as_ref()))
                .cloned()
                .collect();
            if wanted.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(wanted);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.writes.pop_front()
    }
}

impl Interceptor for RtcpTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
