// After the live: the replay and the dashboard in real browsers, against the room the
// live scenario (live.mjs) ran and ended.
//
//   node tests/browser/replay.mjs '<config json>'      (or the JSON on stdin)
//
// Config: { baseUrl, room, replayId, viewerToken, anchorToken, artifactsDir, chromium?,
//           stepTimeoutMs? }
//
// Steps: the replay page lists the chapters; clicking chapter 2 plays the video from a
// few seconds before its link (position near the chapter, frames advancing); the chat
// replays a comment exactly when the video passes its time; Buy on chapter 1's card
// orders from the replay; the dashboard draws its charts and shows the totals; a click on
// a chart opens the replay at that moment. Screenshots of both pages.
//
// Prints one JSON line (see harness.mjs) with what each step saw; tests/browser.rs
// checks it against what the live scenario did.

import { harness, readConfig, round } from './harness.mjs';

const cfg = await readConfig();
const { result, step, open, until, untilAsync, shot, run } = harness(cfg, 'replay.mjs');

/** The video's position (s) and decoded frame count, once `t` seconds have passed. */
function playback(session) {
  return session.page.evaluate(() => {
    const v = document.getElementById('replay-video');
    return { t: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames, paused: v.paused };
  });
}

async function main() {
  const { baseUrl, replayId, viewerToken, anchorToken, room } = cfg;

  const viewer = await step('open_replay', () =>
    open('replay', `${baseUrl}/replays/${replayId}#token=${viewerToken}`, { width: 1280, height: 900 }));
  result.chromium = viewer.context.browser()?.version() ?? null;

  result.chapters = await step('chapters', async () => {
    await until(viewer, () => window.lockstepReplay.replay && document.querySelectorAll('#chapters .chapter').length > 0, null, 'the chapter list');
    return viewer.page.evaluate(() => [...document.querySelectorAll('#chapters .chapter')].map((b) => ({
      sale: b.dataset.sale, index: Number(b.dataset.index), text: b.textContent.trim(),
    })));
  });

  result.chapterJump = await step('chapter_2_plays', async () => {
    const chapter = await viewer.page.evaluate(() => window.lockstepReplay.replay.chapters.find((c) => c.index === 2));
    if (!chapter) throw new Error('no chapter 2 in the replay');
    await viewer.page.click('#chapters .chapter[data-index="2"]');
    // Playing from about 3 s before the link: position near it, frames decoding.
    const first = await untilAsync(viewer, (ms) => {
      const v = document.getElementById('replay-video');
      return !v.paused && v.currentTime > 0 && Math.abs(v.currentTime - ms / 1000) < 4 && {
        t: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames,
      };
    }, chapter.media_ms, 'playback near chapter 2');
    await new Promise((r) => setTimeout(r, 1000));
    const later = await playback(viewer);
    return {
      chapterMs: chapter.media_ms, title: chapter.title,
      startedAt: round(first.t), after1s: round(later.t),
      framesAdvanced: later.frames - first.frames,
    };
  });
  await shot(viewer, 'replay-chapter-2.png');

  result.chatSync = await step('chat_in_sync', async () => {
    const comment = await viewer.page.evaluate(() => {
      const c = window.lockstepReplay.events.find((e) => e.kind === 'comment');
      return c && { at: c.at, text: c.text, startAt: window.lockstepReplay.replay.media_start_at };
    });
    if (!comment) throw new Error('the replay has no comment to show');
    const atS = (comment.at - comment.startAt) / 1000;
    const shownAt = async (s) => {
      await viewer.page.evaluate((t) => {
        const v = document.getElementById('replay-video');
        v.pause();
        v.currentTime = Math.max(0, t);
      }, s);
      await until(viewer, (t) => Math.abs(document.getElementById('replay-video').currentTime - Math.max(0, t)) < 0.05
        && window.lockstepReplay.state.positionMs !== undefined, s, 'the seek');
      // The page redraws the chat on `seeked`; give that event its turn.
      await new Promise((r) => setTimeout(r, 200));
      return viewer.page.evaluate((text) => [...document.querySelectorAll('#replay-comments li')]
        .some((li) => li.textContent.includes(text)), comment.text);
    };
    return { commentAtS: round(atS), before: await shownAt(atS - 1), after: await shownAt(atS + 1), text: comment.text };
  });

  result.replayOrder = await step('buy_from_replay', async () => {
    await viewer.page.click('#chapters .chapter[data-index="1"]');
    await until(viewer, () => {
      const c = window.lockstepReplay.state.chapter;
      return c && c.index === 1 && !document.getElementById('replay-card').hidden
        && !document.getElementById('replay-buy').disabled;
    }, null, 'chapter 1\'s card with Buy enabled');
    await viewer.page.click('#replay-buy');
    const text = await until(viewer, () => {
      const r = document.getElementById('replay-buy-result');
      return !r.hidden && r.textContent;
    }, null, 'the order result');
    const order = await viewer.page.evaluate(() => window.lockstepReplay.state.lastOrder);
    return { text, outcome: order.outcome ?? null, order_id: order.order_id ?? null, chapter: order.chapter ?? null };
  });
  await shot(viewer, 'replay-bought.png');

  const dash = await step('open_dashboard', () =>
    open('dashboard', `${baseUrl}/rooms/${encodeURIComponent(room)}/dashboard#token=${anchorToken}&replay=${replayId}`, { width: 1280, height: 1000 }));

  result.dashboard = await step('dashboard_drawn', async () => {
    await until(dash, () => window.lockstepDashboard && window.lockstepDashboard.charts.length === 3
      && [...document.querySelectorAll('.dash-chart canvas')].length >= 3, null, 'three charts');
    return dash.page.evaluate(() => {
      const total = (k) => Number(document.querySelector(`[data-total="${k}"]`)?.textContent.replace(/[^0-9.]/g, ''));
      // A chart is drawn when its canvas holds non-transparent pixels.
      const drawn = [...document.querySelectorAll('.dash-chart canvas')].map((c) => {
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let painted = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted += 1;
        return painted;
      });
      return {
        totals: Object.fromEntries(['peak_online', 'joins', 'comments', 'likes', 'orders', 'units'].map((k) => [k, total(k)])),
        gmvCents: Number(document.querySelector('[data-total="gmv"]')?.dataset.cents),
        products: [...document.querySelectorAll('#dash-products tr[data-sale]')].map((tr) => tr.dataset.sale),
        findings: [...document.querySelectorAll('#dash-findings li')].map((li) => li.textContent),
        paintedPixels: drawn,
        firstChartMs: window.lockstepDashboard.firstChartAt,
      };
    });
  });
  await shot(dash, 'dashboard.png');

  result.chartClick = await step('chart_click_opens_replay', async () => {
    const box = await dash.page.locator('.dash-chart[data-chart="online"] .u-over').boundingBox();
    if (!box) throw new Error('the online chart has no plot area');
    // A point two thirds along the time axis.
    const wanted = await dash.page.evaluate((fraction) => {
      const a = window.lockstepDashboard.analytics;
      const t = a.series.t;
      const i = Math.round((t.length - 1) * fraction);
      return { t: t[i], start: a.media_start_at };
    }, 2 / 3);
    const navigated = dash.page.waitForURL(/\/replays\//, { timeout: 30000 });
    await dash.page.mouse.move(box.x + box.width * (2 / 3), box.y + box.height / 2);
    await dash.page.mouse.click(box.x + box.width * (2 / 3), box.y + box.height / 2);
    await navigated;
    const url = dash.page.url();
    const t = Number(new URLSearchParams(new URL(url).hash.slice(1)).get('t'));
    await untilAsync(dash, () => window.lockstepReplay && window.lockstepReplay.replay
      && document.getElementById('replay-video').readyState >= 1, null, 'the replay to load');
    const position = await until(dash, (want) => {
      const v = document.getElementById('replay-video');
      return Math.abs(v.currentTime - want) < 1.5 && v.currentTime;
    }, t, 'the replay at the clicked moment');
    return { url, t, expectedS: round((wanted.t * 1000 - wanted.start) / 1000), position: round(position) };
  });
  await shot(dash, 'replay-from-dashboard.png');
}

await run(main);
