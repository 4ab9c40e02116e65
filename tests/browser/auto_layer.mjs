// The automatic simulcast layer with players the server did not build: the anchor page
// in headless Chromium publishes its fake camera (three simulcast layers) over WHIP; a
// Chromium viewer page left on `auto` and two aiortc WHEP players (tests/whep_player)
// watch at the same time, one of them playing a viewer on a slow link (its REMBs capped
// at `rembCapBps`). Reports the width of each layer the anchor sends and the frame
// sizes each player decoded over time.
//
//   node tests/browser/auto_layer.mjs '<config json>'      (or the JSON on stdin)
//
// Config: { baseUrl, room, anchorToken, viewerToken, python, playerScript, watchSeconds,
//           rembCapBps, artifactsDir, chromium?, stepTimeoutMs? }
//
// Prints one JSON line on stdout (`ok`, `anchorLayers`, `chromiumViewer`, `aiortc`,
// `aiortcSlow`) and exits non-zero on failure.

import { execFile } from 'node:child_process';
import { harness, readConfig } from './harness.mjs';

const cfg = await readConfig();
const { result, step, open, until, goLive, run } = harness(cfg, 'auto_layer.mjs');

/** Widths the anchor's browser sends, by simulcast RID. */
function anchorLayers(anchor) {
  return anchor.page.evaluate(async () => {
    const out = {};
    (await window.lockstep.pc.getStats()).forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'video') out[r.rid ?? ''] = [r.frameWidth || 0, r.frameHeight || 0];
    });
    return out;
  });
}

/** The viewer page's decoded frame size (its busiest inbound video stream). */
function viewerSize(viewer) {
  return viewer.page.evaluate(async () => {
    const pc = window.lockstep.pc;
    if (!pc) return null;
    let main = null;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video' && (!main || (r.framesDecoded || 0) > (main.framesDecoded || 0))) main = r;
    });
    return main ? [main.frameWidth || 0, main.frameHeight || 0, main.framesDecoded || 0] : null;
  });
}

function player(extra = []) {
  const args = [cfg.playerScript, cfg.baseUrl, cfg.room, String(cfg.watchSeconds), ...extra];
  return new Promise((resolve, reject) => {
    execFile(cfg.python, args, { timeout: (cfg.watchSeconds + 30) * 1000 }, (err, stdout, stderr) => {
      if (stderr) process.stderr.write(`[aiortc] ${stderr}`);
      const line = stdout.trim().split('\n').pop();
      try {
        resolve(JSON.parse(line));
      } catch {
        reject(new Error(`the aiortc player failed: ${err?.message ?? 'no result'}; stdout ${JSON.stringify(stdout)}`));
      }
    });
  });
}

async function main() {
  const { baseUrl, room, anchorToken, viewerToken } = cfg;
  const roomPath = `${baseUrl}/rooms/${encodeURIComponent(room)}`;
  const anchor = await step('open_anchor', () =>
    open('anchor', `${roomPath}/anchor#token=${anchorToken}`, { width: 1280, height: 800 }));
  result.chromium = anchor.context.browser()?.version() ?? null;
  await step('go_live', () => goLive(anchor));
  const viewer = await step('open_viewer', () =>
    open('viewer', `${roomPath}#token=${viewerToken}`, { width: 1280, height: 800 }));
  await step('watch', async () => {
    await until(viewer, () => window.lockstep?.pc?.connectionState === 'connected', null, 'the viewer page to connect');
    const started = Date.now();
    const sizes = [];
    let watching = true;
    const sampling = (async () => {
      while (watching) {
        const s = await viewerSize(viewer);
        if (s && (!sizes.length || sizes[sizes.length - 1][1] !== s[0] || sizes[sizes.length - 1][2] !== s[1])) {
          sizes.push([Date.now() - started, s[0], s[1]]);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    try {
      [result.aiortc, result.aiortcSlow] = await Promise.all([
        player(),
        player(['--remb-cap', String(cfg.rembCapBps)]),
      ]);
    } finally {
      watching = false;
      await sampling;
    }
    result.chromiumViewer = { sizes, watchedMs: Date.now() - started, layerSelect: await viewer.page.evaluate(() => document.querySelector('[data-testid="layer"]')?.value ?? null) };
    result.anchorLayers = await anchorLayers(anchor);
  });
}

await run(main);
