// The live-room scenario in real browsers: one anchor and three viewers, each in its own
// headless Chromium (its own profile and fake camera), against a running Lockstep server.
//
//   node tests/browser/live.mjs '<config json>'      (or the JSON on stdin)
//
// Config: { baseUrl, room, anchorToken, viewerTokens: [t1, t2], saleId, secondSaleId?,
//           artifactsDir, chromium?, stepTimeoutMs?, media? (default true),
//           layer? (default "high"), viewerBaseUrls? ([url per viewer]: a cluster's
//           nodes, each viewer on its own; default baseUrl for all) }
//
// Steps: the anchor goes live and publishes over WHIP; the viewers (two signed in, one
// of them phone-sized, one guest) subscribe and decode video and audio; the anchor drops
// the sale's link and every viewer shows the card at `reveal_at`; a viewer buys; the
// anchor's sold counter moves; a second link drops (with `secondSaleId`); screenshots; the spread of frame display and link display
// times across viewers is measured; the anchor ends the live and every viewer shows it.
//
// Prints one JSON line on stdout (`ok: true` and the measurements, or `ok: false`, the
// failed step and its error) and exits non-zero on failure. Page console errors go to
// stderr.

import fs from 'node:fs';
import path from 'node:path';
import { harness, readConfig, round } from './harness.mjs';

const cfg = await readConfig();
const MEDIA = cfg.media !== false;
const LAYER = cfg.layer === undefined ? 'high' : cfg.layer;
const { STEP_MS, artifacts, result, step, open, until, untilAsync, goLive, shot, run } = harness(cfg, 'live.mjs');

/** Video/audio receive counters of a viewer's peer connection, summed over its
 * inbound RTP streams (a stream per SSRC the server forwarded). */
function mediaStats(session) {
  return session.page.evaluate(async () => {
    const pc = window.lockstep.pc;
    if (!pc) return null;
    const out = {
      connectionState: pc.connectionState, videoStreams: 0, audioStreams: 0,
      framesDecoded: 0, framesDropped: 0, videoBytes: 0, audioBytes: 0, audioPackets: 0, audioSamples: 0,
      frameWidth: 0, frameHeight: 0, videoJitterBufferMs: null, audioJitterBufferMs: null,
    };
    let main = null;
    (await pc.getStats()).forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      const jb = r.jitterBufferEmittedCount ? (1000 * r.jitterBufferDelay) / r.jitterBufferEmittedCount : null;
      if (r.kind === 'video') {
        out.videoStreams += 1;
        out.framesDecoded += r.framesDecoded || 0;
        out.framesDropped += r.framesDropped || 0;
        out.videoBytes += r.bytesReceived || 0;
        if (!main || (r.framesDecoded || 0) > (main.framesDecoded || 0)) {
          main = r;
          out.frameWidth = r.frameWidth || 0;
          out.frameHeight = r.frameHeight || 0;
          out.videoJitterBufferMs = jb;
        }
      } else if (r.kind === 'audio') {
        out.audioStreams += 1;
        out.audioBytes += r.bytesReceived || 0;
        out.audioPackets += r.packetsReceived || 0;
        out.audioSamples += r.totalSamplesReceived || 0;
        out.audioJitterBufferMs = jb;
      }
    });
    out.jitterBufferTargets = pc.getReceivers().map((r) => r.jitterBufferTarget ?? null);
    return out;
  });
}

/** The frame width the anchor's browser sends `layer` at: for `low` or `mid`, that simulcast
 * encoding's; otherwise (`high`, `auto`) the widest encoding's. 0 while it sends none. */
function anchorLayerWidth(anchor, layer) {
  return anchor.page.evaluate(async (rid) => {
    const pc = window.lockstep.pc;
    if (!pc) return 0;
    let widest = 0;
    let named = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type !== 'outbound-rtp' || r.kind !== 'video') return;
      widest = Math.max(widest, r.frameWidth || 0);
      if (r.rid === rid) named = r.frameWidth || 0;
    });
    return rid === 'low' || rid === 'mid' ? named : widest;
  }, layer);
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

async function main() {
  const { baseUrl, room, anchorToken, viewerTokens = [], saleId } = cfg;
  const roomPath = `${baseUrl}/rooms/${encodeURIComponent(room)}`;

  const anchor = await step('open_anchor', () =>
    open('anchor', `${roomPath}/anchor#token=${anchorToken}`, { width: 1280, height: 800 }));
  result.chromium = anchor.context.browser()?.version() ?? null;

  await step('go_live', async () => {
    const location = await goLive(anchor, MEDIA);
    if (MEDIA) result.whipLocation = location;
  });

  const viewerSpecs = [
    { name: 'viewer-desktop', token: viewerTokens[0], viewport: { width: 1280, height: 800 } },
    { name: 'viewer-phone', token: viewerTokens[1], viewport: { width: 390, height: 844 }, extra: { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } },
    { name: 'viewer-guest', token: null, viewport: { width: 1024, height: 768 } },
  ];
  const viewerRoom = (i) => `${(cfg.viewerBaseUrls || [])[i] || baseUrl}/rooms/${encodeURIComponent(room)}`;
  const viewers = await step('open_viewers', () => Promise.all(viewerSpecs.map((v, i) =>
    open(v.name, v.token ? `${viewerRoom(i)}#token=${v.token}` : viewerRoom(i), v.viewport, v.extra || {}))));
  result.viewers = viewers.map((v, i) => ({
    name: v.name, signedIn: !!viewerSpecs[i].token, node: (cfg.viewerBaseUrls || [])[i] || baseUrl,
    viewport: `${viewerSpecs[i].viewport.width}x${viewerSpecs[i].viewport.height}`,
  }));

  await step('viewers_join', () => Promise.all(viewers.map((v) =>
    until(v, () => window.lockstep && window.lockstep.you && window.lockstep.state === 'live', null, 'welcome in a live room'))));
  // Signed-in pages took the token out of the address bar once they read it.
  result.tokensLeftInUrl = (await Promise.all([anchor, ...viewers].map((s) => s.page.evaluate(() => location.href))))
    .filter((href) => href.includes('token=')).length;

  if (MEDIA) {
    await step('viewers_media', () => Promise.all(viewers.map(async (v, i) => {
      await until(v, () => window.lockstep.pc && window.lockstep.pc.connectionState === 'connected', null, 'the peer connection to connect');
      await untilAsync(v, async () => {
        const pc = window.lockstep.pc;
        if (!pc) return false;
        let frames = 0;
        (await pc.getStats()).forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0; });
        return frames > 0;
      }, null, 'a first decoded video frame');
      // Growth over ~1 s; the first frames after a keyframe can come in a burst and
      // then pause while the stream ramps up, so keep looking (within the step limit).
      const a = await mediaStats(v);
      const started = Date.now();
      await new Promise((r) => setTimeout(r, 1000));
      let b = await mediaStats(v);
      while ((b.framesDecoded <= a.framesDecoded || b.audioBytes <= a.audioBytes) && Date.now() - started < STEP_MS) {
        await new Promise((r) => setTimeout(r, 250));
        b = await mediaStats(v);
      }
      Object.assign(result.viewers[i], {
        mediaWindowMs: Date.now() - started,
        framesDecoded: b.framesDecoded,
        framesDecodedDelta: b.framesDecoded - a.framesDecoded,
        audioBytesDelta: (b.audioBytes ?? 0) - (a.audioBytes ?? 0),
        audioSamplesDelta: (b.audioSamples ?? 0) - (a.audioSamples ?? 0),
        audioPacketsDelta: (b.audioPackets ?? 0) - (a.audioPackets ?? 0),
      });
    })));

    if (LAYER) {
      await step('select_layer', async () => {
        await Promise.all(viewers.map((v) => v.page.selectOption('[data-testid="layer"]', LAYER)));
        // The switch takes effect on the layer's next keyframe: wait (bounded) until every
        // viewer decodes frames as wide as the anchor sends that layer (for `high`, the
        // widest layer).
        const asked = Date.now();
        let target = 0;
        let widths = [];
        while (Date.now() - asked < STEP_MS) {
          target = await anchorLayerWidth(anchor, LAYER);
          widths = (await Promise.all(viewers.map(mediaStats))).map((s) => s?.frameWidth ?? 0);
          if (target > 0 && widths.every((w) => w === target)) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        result.layerSelect = { layer: LAYER, anchorWidth: target, viewerWidths: widths, settleMs: Date.now() - asked };
        if (!(target > 0 && widths.every((w) => w === target))) {
          throw new Error(`layer "${LAYER}" did not settle within ${STEP_MS} ms: the anchor sends it ${target} px wide, the viewers decode ${viewers.map((v, i) => `${v.name} ${widths[i]} px`).join(', ')}`);
        }
      });
    }
  }

  await step('chat_and_like', async () => {
    const text = `hello from ${viewers[0].name} ${Date.now()}`;
    await viewers[0].page.fill('[data-testid="comment-input"]', text);
    await viewers[0].page.click('[data-testid="comment-send"]');
    await until(anchor, (t) => [...document.querySelectorAll('[data-testid="comments"] li')].some((li) => li.textContent.includes(t)), text, 'the comment on the anchor page');
    await viewers[2].page.click('[data-testid="like"]');
    await until(anchor, () => window.lockstep.likes >= 1, null, 'the like on the anchor page');
    result.chat = { commentSeenByAnchor: true, likes: await anchor.page.evaluate(() => window.lockstep.likes) };
    result.guest = await viewers[2].page.evaluate(() => ({
      hintVisible: !document.querySelector('[data-testid="guest-hint"]').hidden,
      commentDisabled: document.querySelector('[data-testid="comment-input"]').disabled,
    }));
  });

  // The selected layer has settled (`select_layer` waited for it): frames presented from
  // here on are compared across viewers.
  const mediaSettledAt = Date.now();

  await step('drop_link', async () => {
    const drop = `[data-testid="sale"][data-sale-id="${saleId}"] [data-testid="drop-link"]`;
    await anchor.page.waitForSelector(drop, { timeout: STEP_MS });
    await anchor.page.click(drop);
    const shown = await Promise.all(viewers.map((v) =>
      until(v, () => window.lockstep.linkShownAt !== null && {
        linkShownAt: window.lockstep.linkShownAt,
        linkShownPerf: window.lockstep.linkShownPerf,
        revealAt: window.lockstep.link.reveal_at,
        countdownDigits: window.lockstep.countdownDigits,
        clockOffsetMs: window.lockstep.clockOffsetMs,
        clockRttMs: window.lockstep.clockRttMs,
      }, null, 'the product card')));
    result.reveal_at = shown[0].revealAt;
    shown.forEach((s, i) => Object.assign(result.viewers[i], {
      linkShownAt: round(s.linkShownAt),
      linkLateMs: round(s.linkShownAt - s.revealAt),
      countdownDigits: s.countdownDigits,
      clockOffsetMs: round(s.clockOffsetMs),
      clockRttMs: round(s.clockRttMs),
      cardVisible: true,
    }));
    const at = shown.map((s) => s.linkShownAt);
    result.linkSpreadMs = round(Math.max(...at) - Math.min(...at));
    const perf = shown.map((s) => s.linkShownPerf);
    result.linkSpreadLocalClockMs = round(Math.max(...perf) - Math.min(...perf));
    for (const v of viewers) await until(v, () => !document.querySelector('[data-testid="product-card"]').hidden, null, 'a visible card');
  });

  await step('buy', async () => {
    const buyer = viewers[0];
    await until(buyer, () => !document.querySelector('[data-testid="buy"]').disabled, null, 'an enabled Buy button');
    await buyer.page.click('[data-testid="buy"]');
    const order = await until(buyer, () => window.lockstep.lastOrder, null, 'the order result');
    const shown = await until(buyer, () => {
      const o = document.querySelector('[data-testid="order-outcome"]');
      return !o.hidden && o.textContent;
    }, null, 'the order outcome on the page');
    result.order = { outcome: order.outcome ?? order.name, order_id: order.order_id ?? null, remaining: order.remaining ?? null, text: shown };
    result.guestBuy = await viewers[2].page.evaluate(() => {
      const b = document.querySelector('[data-testid="buy"]');
      return { disabled: b.disabled, label: b.textContent };
    });
  });

  await step('anchor_sold', async () => {
    result.anchorSold = await until(anchor, (id) => (window.lockstep.sold[id] || 0) >= 1 && window.lockstep.sold[id], saleId, 'the sold counter to reach 1');
    result.anchorSoldShown = await anchor.page.textContent('[data-testid="counter-sold"]');
  });

  if (MEDIA) {
    await step('frame_spread', async () => {
      // Wait (bounded) until every viewer has presented enough frames since the layer
      // settled to compare; a starved encoder makes this slower, not wrong.
      const deadline = Date.now() + STEP_MS;
      while (Date.now() < deadline) {
        const counts = await Promise.all(viewers.map((v) => v.page.evaluate((since) =>
          window.lockstep.frames.filter((f) => f.presentedAt >= since).length, mediaSettledAt)));
        if (counts.every((n) => n >= 40)) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      // Frames presented after the layer settled, from every viewer.
      const logs = await Promise.all(viewers.map((v) => v.page.evaluate((since) =>
        window.lockstep.frames.filter((f) => f.presentedAt >= since), mediaSettledAt)));
      const framesFile = path.join(artifacts, 'frames.json');
      fs.writeFileSync(framesFile, JSON.stringify(Object.fromEntries(viewers.map((v, i) => [v.name, logs[i]]))));
      result.framesFile = framesFile;
      const byTs = new Map();
      const windowS = (Date.now() - mediaSettledAt) / 1000;
      logs.forEach((frames, i) => {
        result.viewers[i].framesLogged = frames.length;
        result.viewers[i].framesPerSecond = round(frames.length / windowS);
        const last = frames[frames.length - 1];
        if (last) result.viewers[i].lastFrameSize = `${last.width}x${last.height}`;
        for (const f of frames) {
          if (f.rtpTimestamp === undefined) continue;
          if (!byTs.has(f.rtpTimestamp)) byTs.set(f.rtpTimestamp, new Array(logs.length).fill(null));
          const slot = byTs.get(f.rtpTimestamp);
          if (slot[i] === null) slot[i] = f.serverTime;
        }
      });
      const spreads = [];
      for (const times of byTs.values()) {
        if (times.every((t) => t !== null)) spreads.push(Math.max(...times) - Math.min(...times));
      }
      spreads.sort((a, b) => a - b);
      result.frameSpread = {
        commonFrames: spreads.length,
        medianMs: round(percentile(spreads, 50)),
        p95Ms: round(percentile(spreads, 95)),
        maxMs: round(spreads.length ? spreads[spreads.length - 1] : null),
      };
      const stats = await Promise.all(viewers.map(mediaStats));
      const logs2 = await Promise.all(viewers.map((v) => v.page.evaluate(() => window.lockstep.mediaLog)));
      const stalls = await Promise.all(viewers.map((v) => v.page.evaluate(() => window.lockstep.stallResubscribes)));
      stats.forEach((s, i) => Object.assign(result.viewers[i], {
        videoJitterBufferMs: round(s?.videoJitterBufferMs),
        audioJitterBufferMs: round(s?.audioJitterBufferMs),
        jitterBufferTargets: s?.jitterBufferTargets,
        frameWidth: s?.frameWidth,
        frameHeight: s?.frameHeight,
        connectionState: s?.connectionState,
        stallResubscribes: stalls[i],
        mediaLog: logs2[i],
        framesDecodedTotal: s?.framesDecoded,
        framesDroppedTotal: s?.framesDropped,
        videoStreams: s?.videoStreams,
      }));
      result.playoutDelayMs = await viewers[0].page.evaluate(() => window.lockstep.media.playout_delay_ms);
      // The simulcast layers the anchor's browser is sending.
      result.anchorLayers = await anchor.page.evaluate(async () => {
        const layers = [];
        (await window.lockstep.pc.getStats()).forEach((r) => {
          if (r.type === 'outbound-rtp' && r.kind === 'video') {
            layers.push({ rid: r.rid ?? null, frameWidth: r.frameWidth ?? 0, frameHeight: r.frameHeight ?? 0, framesEncoded: r.framesEncoded ?? 0, bytesSent: r.bytesSent ?? 0, active: r.active ?? null });
          }
        });
        return layers.sort((a, b) => a.frameWidth - b.frameWidth);
      });
    });

    // One viewer asks for the low simulcast layer: the SFU switches it on the layer's
    // next keyframe, and its decoder reports the smaller frame size.
    await step('layer_switch', async () => {
      const v = viewers[1];
      const before = (await mediaStats(v))?.frameWidth ?? 0;
      const asked = Date.now();
      await v.page.selectOption('[data-testid="layer"]', 'low');
      let now = null;
      while (Date.now() - asked < STEP_MS) {
        now = await mediaStats(v);
        if (now && now.frameWidth > 0 && now.frameWidth < before) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      result.layerSwitch = {
        viewer: v.name, layer: 'low', widthBefore: before,
        widthAfter: now?.frameWidth ?? 0, switchMs: Date.now() - asked,
      };
    });
  }

  if (cfg.secondSaleId) {
    // A second product: its link drops and every viewer shows its card (the replay's
    // second chapter).
    await step('second_link', async () => {
      const drop = `[data-testid="sale"][data-sale-id="${cfg.secondSaleId}"] [data-testid="drop-link"]`;
      await anchor.page.waitForSelector(drop, { timeout: STEP_MS });
      await anchor.page.click(drop);
      await Promise.all(viewers.map((v) => until(v, (id) => window.lockstep.link
        && window.lockstep.link.sale_id === id
        && !document.querySelector('[data-testid="product-card"]').hidden, cfg.secondSaleId, 'the second card')));
      // Keep streaming a little past the second link, so the replay has video after it.
      await new Promise((r) => setTimeout(r, 3000));
    });
  }

  await step('screenshots', async () => {
    await shot(anchor, 'anchor-desktop.png');
    await shot(viewers[0], 'viewer-desktop.png');
    await shot(viewers[1], 'viewer-phone.png');
    await shot(viewers[2], 'viewer-guest.png');
  });

  await step('end', async () => {
    await anchor.page.click('[data-testid="end"]');
    await anchor.page.click('[data-testid="end-confirm"]');
    const ended = await Promise.all(viewers.map((v) => until(v, () =>
      window.lockstep.state === 'ended'
      && document.querySelector('[data-testid="stage-overlay"]').dataset.reason === 'ended'
      && !document.querySelector('[data-testid="stage-overlay"]').hidden, null, 'the ended state')));
    ended.forEach((e, i) => { result.viewers[i].ended = e; });
    result.anchorEnded = await until(anchor, () => window.lockstep.state === 'ended', null, 'the anchor page to show the end');
    await shot(viewers[1], 'viewer-phone-ended.png');
  });
}

await run(main, async (sessions) => {
  result.mediaLogs = {};
  for (const s of sessions) {
    result.mediaLogs[s.name] = await s.page.evaluate(() => window.lockstep?.mediaLog ?? null).catch(() => null);
  }
});
