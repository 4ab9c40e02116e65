//! A recording's description, written beside it as JSON: when its first frame arrived,
//! its duration, the keyframe index for seeking, and where the room's media clock sits
//! in it (so a link's `reveal_rtp` names a position in the file). Also finds a room's
//! recordings and enforces retention (age, total size).

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A video RTP timestamp (the room's 90 kHz media clock) at a media position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockAnchor {
    pub media_ms: u64,
    pub rtp: u32,
}

/// What is known about one recording (`<start ms>.json` beside `<start ms>.webm`, or
/// `.mp4` for H.264).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingMeta {
    pub room: String,
    /// File name of the recording (WebM or MP4), in the same folder.
    pub file: String,
    /// Server time (ms since the Unix epoch) the first recorded frame arrived.
    pub started_at: u64,
    /// The playout delay live viewers had: they saw position 0 at
    /// `started_at + playout_delay_ms`.
    pub playout_delay_ms: u64,
    pub duration_ms: u64,
    pub width: u32,
    pub height: u32,
    pub audio: bool,
    /// Media times (ms) of the keyframes; seeking to one starts decoding at once.
    pub keyframes_ms: Vec<u64>,
    /// Where each publisher session's media clock starts in the file.
    pub anchors: Vec<ClockAnchor>,
    pub bytes: u64,
    /// The file was closed properly (Cues and duration written).
    pub complete: bool,
    /// Why the recording stopped before its room ended (`disk_full`, ...).
    pub stopped: Option<String>,
}

impl RecordingMeta {
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let path = dir.join(&self.file).with_extension("json");
        let tmp = path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(io::Error::other)?,
        )?;
        std::fs::rename(tmp, path)
    }
}

/// The recordings of `room` under `dir`, oldest first.
pub fn recordings_of(dir: &Path, room: &str) -> Vec<(PathBuf, RecordingMeta)> {
    let Ok(entries) = std::fs::read_dir(dir.join(room)) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, RecordingMeta)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| {
            let meta: RecordingMeta = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
            Some((p.with_file_name(&meta.file), meta))
        })
        .collect();
    out.sort_by_key(|(_, m)| m.started_at);
    out
}

/// One recording on disk, for retention.
#[derive(Debug)]
struct OnDisk {
    media: PathBuf,
    started_at: u64,
    bytes: u64,
}

/// Whether `path` names a recording file (the containers the recorder writes).
pub fn is_recording(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "webm" || e == "mp4")
}

/// Deletes recordings older than `max_age_ms`, then the oldest until the rest take at
/// most `max_total_bytes` (0 disables either rule). Recordings in `active` are never
/// deleted. Returns the files deleted.
pub fn enforce_retention(
    dir: &Path,
    max_age_ms: u64,
    max_total_bytes: u64,
    now: u64,
    active: &HashSet<PathBuf>,
) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for room in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(room.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let media = file.path();
            if !is_recording(&media) {
                continue;
            }
            let started_at = media
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
            all.push(OnDisk {
                media,
                started_at,
                bytes,
            });
        }
    }
    all.sort_by_key(|r| r.started_at);
    let mut total: u64 = all.iter().map(|r| r.bytes).sum();
    let mut deleted = Vec::new();
    for r in all {
        if active.contains(&r.media) {
            continue;
        }
        let too_old = max_age_ms > 0 && now.saturating_sub(r.started_at) > max_age_ms;
        let too_big = max_total_bytes > 0 && total > max_total_bytes;
        if too_old || too_big {
            let _ = std::fs::remove_file(r.media.with_extension("json"));
            if std::fs::remove_file(&r.media).is_ok() {
                total = total.saturating_sub(r.bytes);
                deleted.push(r.media);
            }
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(dir: &Path, room: &str, started_at: u64, bytes: usize) -> PathBuf {
        let folder = dir.join(room);
        std::fs::create_dir_all(&folder).unwrap();
        // VP8 recordings are WebM, H.264 ones MP4: retention takes both.
        let ext = if started_at.is_multiple_of(2_000) {
            "mp4"
        } else {
            "webm"
        };
        let file = format!("{started_at}.{ext}");
        let media = folder.join(&file);
        std::fs::write(&media, vec![0u8; bytes]).unwrap();
        RecordingMeta {
            room: room.into(),
            file,
            started_at,
            ..Default::default()
        }
        .write(&folder)
        .unwrap();
        media
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("lockstep-retention-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn old_recordings_go_and_recent_ones_stay() {
        let dir = scratch("age");
        let old = fake(&dir, "r1", 1_000, 10);
        let recent = fake(&dir, "r1", 90_000, 10);
        let deleted = enforce_retention(&dir, 50_000, 0, 100_000, &HashSet::new());
        assert_eq!(deleted, vec![old.clone()]);
        assert!(!old.exists() && !old.with_extension("json").exists());
        assert!(recent.exists());
        assert_eq!(recordings_of(&dir, "r1").len(), 1);
    }

    #[test]
    fn over_the_size_budget_the_oldest_go_first_but_never_an_active_one() {
        let dir = scratch("size");
        let a = fake(&dir, "r1", 1_000, 400);
        let b = fake(&dir, "r2", 2_000, 400);
        let c = fake(&dir, "r1", 3_000, 400);
        let active: HashSet<PathBuf> = [a.clone()].into();
        let deleted = enforce_retention(&dir, 0, 500, 10_000, &active);
        assert_eq!(deleted, vec![b.clone(), c.clone()]);
        assert!(a.exists());
        let deleted = enforce_retention(&dir, 0, 500, 10_000, &HashSet::new());
        assert!(deleted.is_empty(), "400 bytes fit in 500");
    }
}
