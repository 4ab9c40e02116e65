// Opens a room's dashboard in headless Chromium several times and reports what a person
// waits for and downloads: time from navigation start to the first chart drawn
// (`lockstepDashboard.firstChartAt`), to all three charts, and the page's weight (bytes
// transferred for the HTML, scripts, styles and the analytics JSON).
//
//   node bench/dashboard/measure.mjs <dashboard URL with #token=...> [runs] [chromium]
//
// Uses the playwright-core that tests/browser installs (npm ci --prefix tests/browser).

import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { chromium } = await import(pathToFileURL(path.join(repo, 'tests/browser/node_modules/playwright-core/index.mjs')));

const [url, runsArg, exe] = process.argv.slice(2);
const runs = Number(runsArg || 5);
const browser = await chromium.launch({ executablePath: exe || '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu'] });
const results = [];
for (let i = 0; i < runs; i++) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => window.lockstepDashboard && window.lockstepDashboard.charts.length === 3, null, { timeout: 60000 });
  const m = await page.evaluate(() => {
    const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
    const bytes = (k) => entries.reduce((n, e) => n + (e[k] || 0), 0);
    const analytics = performance.getEntriesByType('resource').find((e) => e.name.includes('/analytics'));
    return {
      firstChartMs: window.lockstepDashboard.firstChartAt,
      allChartsMs: performance.now(),
      transferBytes: bytes('transferSize'),
      decodedBytes: bytes('decodedBodySize'),
      analyticsBytes: analytics ? analytics.transferSize : null,
      analyticsMs: analytics ? analytics.responseEnd - analytics.startTime : null,
      points: window.lockstepDashboard.analytics.series.t.length,
      resources: entries.length,
    };
  });
  results.push(m);
  await context.close();
}
await browser.close();
const median = (k) => {
  const xs = results.map((r) => r[k]).sort((a, b) => a - b);
  return xs[Math.floor(xs.length / 2)];
};
for (const [i, r] of results.entries()) {
  console.log(`run ${i + 1}: first chart ${r.firstChartMs.toFixed(0)} ms, ${r.points} points, page ${(r.transferBytes / 1024).toFixed(0)} KiB transferred (analytics JSON ${(r.analyticsBytes / 1024).toFixed(0)} KiB in ${r.analyticsMs.toFixed(0)} ms)`);
}
console.log(JSON.stringify({ runs, firstChartMsMedian: median('firstChartMs'), transferBytesMedian: median('transferBytes'), analyticsBytes: median('analyticsBytes'), analyticsMsMedian: median('analyticsMs'), points: results[0].points }));
