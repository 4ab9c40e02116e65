// An H.264 publisher's replay (fragmented MP4) in a real browser: the replay page lists
// the chapter, clicking it plays the video from a few seconds before the link (position
// near the chapter, frames advancing, the clip's picture size), and seeking within the
// recording lands where asked.
//
//   node tests/browser/replay_h264.mjs '<config json>'      (or the JSON on stdin)
//
// Config: { baseUrl, replayId, viewerToken, artifactsDir, chromium?, stepTimeoutMs? }
//
// Prints one JSON line (see harness.mjs); tests/browser.rs checks it.

import { harness, readConfig, round } from './harness.mjs';

const cfg = await readConfig();
const { result, step, open, until, untilAsync, shot, run } = harness(cfg, 'replay_h264.mjs');

async function main() {
  const { baseUrl, replayId, viewerToken } = cfg;
  const viewer = await step('open_replay', () =>
    open('replay-h264', `${baseUrl}/replays/${replayId}#token=${viewerToken}`, { width: 1280, height: 900 }));
  result.chromium = viewer.context.browser()?.version() ?? null;

  result.mediaType = await step('chapters', async () => {
    await until(viewer, () => window.lockstepReplay.replay && document.querySelectorAll('#chapters .chapter').length > 0, null, 'the chapter list');
    return viewer.page.evaluate(() => window.lockstepReplay.replay.media_type);
  });

  result.chapterJump = await step('chapter_1_plays', async () => {
    const chapter = await viewer.page.evaluate(() => window.lockstepReplay.replay.chapters.find((c) => c.index === 1));
    await viewer.page.click('#chapters .chapter[data-index="1"]');
    const first = await untilAsync(viewer, (ms) => {
      const v = document.getElementById('replay-video');
      return !v.paused && v.currentTime > 0 && Math.abs(v.currentTime - ms / 1000) < 4 && {
        t: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames,
      };
    }, chapter.media_ms, 'playback near chapter 1');
    await new Promise((r) => setTimeout(r, 1000));
    const later = await viewer.page.evaluate(() => {
      const v = document.getElementById('replay-video');
      return {
        t: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames,
        width: v.videoWidth, height: v.videoHeight, duration: v.duration, error: v.error && v.error.message,
      };
    });
    return {
      chapterMs: chapter.media_ms, startedAt: round(first.t), after1s: round(later.t),
      framesAdvanced: later.frames - first.frames, width: later.width, height: later.height,
      durationS: round(later.duration), error: later.error,
    };
  });
  await shot(viewer, 'replay-h264.png');

  result.seek = await step('seek', () => viewer.page.evaluate(async () => {
    const v = document.getElementById('replay-video');
    v.pause();
    const to = Math.min(1.0, v.duration / 4);
    v.currentTime = to;
    await new Promise((ok) => { v.onseeked = ok; });
    return { to, at: v.currentTime };
  }));
}

await run(main);
