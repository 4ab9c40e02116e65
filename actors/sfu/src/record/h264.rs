//! What recording an H.264 stream needs to read from it: the NAL units of a
//! length-prefixed frame, the parameter sets (SPS, PPS) an MP4 file's header carries,
//! and the picture size an SPS declares (parsed with `h264-reader`), also straight from
//! an RTP packet so the recorder can tell simulcast layers apart before it records.

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{BitReader, decode_nal};

const SPS: u8 = 7;
const PPS: u8 = 8;
const STAP_A: u8 = 24;

/// The NAL units of a frame in length-prefixed form (4-byte big-endian sizes); stops at
/// the first size that runs past the end.
pub fn nal_units(frame: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = frame;
    std::iter::from_fn(move || {
        let size = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let nal = rest.get(4..4 + size)?;
        rest = &rest[4 + size..];
        Some(nal)
    })
}

fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// The frame's SPS and PPS, when it carries both (a keyframe sent as browsers and
/// encoders send them, parameter sets first).
pub fn parameter_sets(frame: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let find = |kind| nal_units(frame).find(|nal| nal_type(nal) == Some(kind));
    Some((find(SPS)?.to_vec(), find(PPS)?.to_vec()))
}

/// Width and height of the picture an SPS (a whole NAL unit, header byte included)
/// declares, cropping applied.
pub fn sps_size(sps: &[u8]) -> Option<(u32, u32)> {
    if nal_type(sps) != Some(SPS) {
        return None;
    }
    let rbsp = decode_nal(sps).ok()?;
    let (width, height) = SeqParameterSet::from_bits(BitReader::new(&*rbsp))
        .ok()?
        .pixel_dimensions()
        .ok()?;
    (width > 0 && height > 0).then_some((width, height))
}

/// The picture size of an SPS carried by this RTP payload (a single NAL unit or inside
/// a STAP-A), as a keyframe's first packet carries it.
pub fn packet_size(payload: &[u8]) -> Option<(u32, u32)> {
    match nal_type(payload)? {
        SPS => sps_size(payload),
        STAP_A => {
            let mut at = 1;
            while let Some(size) = payload.get(at..at + 2) {
                let size = usize::from(u16::from_be_bytes([size[0], size[1]]));
                let nal = payload.get(at + 2..at + 2 + size)?;
                if nal_type(nal) == Some(SPS) {
                    return sps_size(nal);
                }
                at += 2 + size;
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An SPS as x264 writes it for 640×360 (baseline, level 3.0): 640×368 in
    /// macroblocks, cropped 8 rows at the bottom.
    pub const SPS_640X360: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00,
        0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2e, 0x48,
    ];
    pub const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

    fn prefixed(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|nal| {
                let mut out = (nal.len() as u32).to_be_bytes().to_vec();
                out.extend_from_slice(nal);
                out
            })
            .collect()
    }

    #[test]
    fn an_sps_gives_the_cropped_picture_size() {
        assert_eq!(sps_size(SPS_640X360), Some((640, 360)));
        assert_eq!(sps_size(PPS), None);
        assert_eq!(sps_size(&[0x67]), None);
    }

    #[test]
    fn a_keyframe_carries_its_parameter_sets() {
        let idr: &[u8] = &[0x65, 0x88, 0x84, 0x00];
        let frame = prefixed(&[SPS_640X360, PPS, idr]);
        assert_eq!(
            nal_units(&frame).collect::<Vec<_>>(),
            [SPS_640X360, PPS, idr]
        );
        assert_eq!(
            parameter_sets(&frame),
            Some((SPS_640X360.to_vec(), PPS.to_vec()))
        );
        assert_eq!(parameter_sets(&prefixed(&[idr])), None);
        // A size running past the end ends the walk instead of reading past it.
        assert_eq!(nal_units(&[0, 0, 0, 9, 0x65]).count(), 0);
    }

    #[test]
    fn a_packet_s_sps_tells_the_layer_s_size() {
        assert_eq!(packet_size(SPS_640X360), Some((640, 360)));
        let mut stap = vec![0x78];
        for nal in [SPS_640X360, PPS] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        assert_eq!(packet_size(&stap), Some((640, 360)));
        assert_eq!(packet_size(&[0x78, 0x00, 0x40, 0x67]), None, "cut short");
        assert_eq!(packet_size(&[0x65, 0x88]), None);
        assert_eq!(packet_size(&[]), None);
    }
}
