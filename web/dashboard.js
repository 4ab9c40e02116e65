// The analytics dashboard (/rooms/{room}/dashboard#token=…[&replay=<id>]): the room's
// totals, three uPlot charts over wall time (viewers online; comments and likes per
// minute; orders and units so far) with the product links drawn as marker lines, the
// per-product funnel, retention, findings, and CSV/JSON export. A click on a chart or a
// finding opens the replay at that moment. Refreshes every 5 s while the room is live.
//
// uPlot is the bundled `/static/uPlot.iife.min.js` (a global `uPlot`, loaded by the
// HTML before this module). `window.lockstepDashboard` exposes the state for tests.

import { describeError, el, formatPrice, httpError, takeTokenFromUrl } from './common.js';

const $ = (id) => document.getElementById(id);
const ui = {
  badge: $('dash-state'), title: $('dash-title'), updated: $('dash-updated'), replayLink: $('dash-replay-link'),
  error: $('dash-error'), totals: $('dash-totals'), products: document.querySelector('#dash-products tbody'),
  retention: $('dash-retention'), findings: $('dash-findings'), csv: $('dash-export-csv'), json: $('dash-export-json'),
  exportHint: $('dash-export-hint'),
};

const REFRESH_MS = 5000;
const CHART_HEIGHT = 220;
const FINAL_STATUS = new Set([401, 403, 404]);

const room = (() => {
  const segs = location.pathname.split('/').filter(Boolean);
  const i = segs.lastIndexOf('dashboard');
  try {
    return i > 0 ? decodeURIComponent(segs[i - 1]) : null;
  } catch {
    return null;
  }
})();
const token = takeTokenFromUrl();
const replayParam = new URLSearchParams(location.hash.replace(/^#/, '')).get('replay');

/** Test and debugging hooks. */
const lockstepDashboard = { room, analytics: null, charts: [], firstChartAt: null, error: null, lastExport: null };
window.lockstepDashboard = lockstepDashboard;

let analytics = null;
let refreshTimer = null;

// ---------------------------------------------------------------- HTTP

function analyticsPath(format) {
  const q = new URLSearchParams();
  if (replayParam) q.set('replay', replayParam);
  if (format) q.set('format', format);
  const qs = q.toString();
  return `/api/v1/rooms/${encodeURIComponent(room)}/analytics${qs ? `?${qs}` : ''}`;
}

/** Fetches with the page's token; throws `{code,name,message,status}` on failure. */
async function get(path) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(path, { headers, cache: 'no-store' });
  } catch (e) {
    throw { code: 0, name: 'network', message: `Network error: ${e.message}`, status: 0 };
  }
  if (!resp.ok) throw await httpError(resp);
  return resp;
}

function showError(err) {
  lockstepDashboard.error = err || null;
  ui.error.hidden = !err;
  if (!err) return;
  let text = describeError(err);
  if (err.status) text = `${text} (HTTP ${err.status})`;
  if ((err.status === 401 || err.status === 403) && !token) {
    text += ' Open this page with the anchor\'s or a merchant\'s link (it ends in #token=…).';
  }
  ui.error.textContent = text;
}

// ---------------------------------------------------------------- formatting and links

const num = (v) => Number(v) || 0;
const clock = (ms) => new Date(ms).toLocaleTimeString();

/** Two-digit minutes and seconds of a media position. */
function mmss(ms) {
  const s = Math.max(0, Math.floor(num(ms) / 1000));
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

function duration(s) {
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
}

/** The replay at media position `secs`, with the same token; null without a replay. */
function replayHref(secs) {
  if (!analytics || !analytics.replay_id) return null;
  const frag = new URLSearchParams();
  frag.set('t', String(Math.round(Math.max(0, secs) * 1000) / 1000));
  if (token) frag.set('token', token);
  return `/replays/${encodeURIComponent(analytics.replay_id)}#${frag}`;
}

/** The replay at wall time `wallMs`. */
function replayHrefAt(wallMs) {
  const start = analytics.media_start_at ?? analytics.started_at;
  return replayHref((wallMs - (typeof start === 'number' ? start : Date.parse(start) || 0)) / 1000);
}

// ---------------------------------------------------------------- charts

/** Per-minute rate of a per-bucket count: the sum over the last 60 s (or one bucket when
 * buckets are longer), scaled to a minute. */
function perMinute(t, values, resolution) {
  const win = Math.max(60, num(resolution) || 1);
  const out = new Array(t.length);
  let sum = 0;
  let j = 0;
  for (let i = 0; i < t.length; i++) {
    sum += num(values && values[i]);
    while (t[j] <= t[i] - win) sum -= num(values && values[j++]);
    out[i] = (sum * 60) / win;
  }
  return out;
}

function runningTotal(values, n) {
  const out = new Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) out[i] = sum += num(values && values[i]);
  return out;
}

function chartData(kind, a) {
  const s = a.series || {};
  const t = s.t || [];
  if (kind === 'online') return [t, t.map((_, i) => (s.online && s.online[i] != null ? Number(s.online[i]) : null))];
  if (kind === 'activity') return [t, perMinute(t, s.comments, a.resolution_s), perMinute(t, s.likes, a.resolution_s)];
  return [t, runningTotal(s.orders, t.length), runningTotal(s.units, t.length)];
}

const rounded = (_u, v) => (v == null ? '–' : String(Math.round(v)));
const line = (label, stroke, extra = {}) => ({ label, stroke, width: 2, value: rounded, points: { show: false }, ...extra });
const axis = (extra = {}) => ({
  stroke: '#9aa3b2', grid: { stroke: 'rgba(255,255,255,.07)', width: 1 }, ticks: { stroke: 'rgba(255,255,255,.12)', width: 1 }, ...extra,
});

const CHART_SERIES = {
  online: { series: [line('Viewers online', '#ff3d6e', { fill: 'rgba(255,61,110,.12)' })], axes: [axis()] },
  activity: {
    series: [line('Comments / min', '#7aa2ff'), line('Likes / min', '#ff7a45', { scale: 'likes' })],
    axes: [axis({ label: 'comments / min' }), axis({ scale: 'likes', side: 1, label: 'likes / min', grid: { show: false } })],
  },
  sales: { series: [line('Orders so far', '#2ecc71'), line('Units so far', '#f5a623')], axes: [axis()] },
};

/** uPlot `draw` hook: a dashed vertical line and the title at each product link. */
function drawChapters(u) {
  const chapters = (analytics && analytics.chapters) || [];
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  const pr = window.uPlot.pxRatio || 1;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  ctx.strokeStyle = 'rgba(255,214,102,.85)';
  ctx.fillStyle = '#ffd666';
  ctx.lineWidth = pr;
  ctx.setLineDash([4 * pr, 4 * pr]);
  ctx.font = `${11 * pr}px system-ui, sans-serif`;
  ctx.textBaseline = 'top';
  chapters.forEach((c, i) => {
    const x = Math.round(u.valToPos(num(c.at) / 1000, 'x', true));
    if (!(x >= left && x <= left + width)) return;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    const title = String(c.title || '');
    const label = `#${c.index} ${title.length > 26 ? `${title.slice(0, 25)}…` : title}`;
    const w = ctx.measureText(label).width;
    const right = x + 4 * pr + w > left + width && x - 4 * pr - w >= left;
    ctx.textAlign = right ? 'right' : 'left';
    ctx.fillText(label, right ? x - 4 * pr : x + 4 * pr, top + (4 + (i % 3) * 14) * pr);
  });
  ctx.restore();
}

/** A click on the plot opens the replay at the point under the cursor. */
function onPlotClick(u, ev) {
  if (!analytics) return;
  let idx = u.cursor.idx;
  if (idx == null) idx = u.posToIdx(ev.clientX - u.over.getBoundingClientRect().left);
  const t = analytics.series && analytics.series.t ? analytics.series.t[idx] : null;
  if (t == null) return;
  const href = replayHrefAt(num(t) * 1000);
  if (href) location.href = href;
}

const chartWidth = (box) => Math.max(280, Math.floor(box.clientWidth || box.getBoundingClientRect().width || 600));

function makeChart(box, kind) {
  const def = CHART_SERIES[kind];
  const opts = {
    width: chartWidth(box),
    height: CHART_HEIGHT,
    scales: { x: { time: true } },
    series: [{ label: 'Time', value: (_u, v) => (v == null ? '–' : clock(v * 1000)) }, ...def.series],
    axes: [axis(), ...def.axes],
    cursor: { drag: { x: false, y: false, setScale: false }, sync: { key: 'lockstep-dash' } },
    hooks: {
      draw: [drawChapters],
      ready: [(u) => u.over.addEventListener('click', (ev) => onPlotClick(u, ev))],
    },
  };
  const u = new window.uPlot(opts, chartData(kind, analytics), box);
  u.kind = kind;
  return u;
}

function renderCharts() {
  if (typeof window.uPlot !== 'function') {
    showError({ name: 'charts', message: 'The chart library did not load; the tables below are still up to date.' });
    return;
  }
  const charts = lockstepDashboard.charts;
  if (charts.length) {
    for (const u of charts) u.setData(chartData(u.kind, analytics));
    return;
  }
  for (const box of document.querySelectorAll('.dash-chart')) {
    charts.push(makeChart(box, box.dataset.chart));
    if (lockstepDashboard.firstChartAt === null) lockstepDashboard.firstChartAt = performance.now();
  }
}

let resizeFrame = 0;
window.addEventListener('resize', () => {
  cancelAnimationFrame(resizeFrame);
  resizeFrame = requestAnimationFrame(() => {
    for (const u of lockstepDashboard.charts) u.setSize({ width: chartWidth(u.root.parentElement), height: CHART_HEIGHT });
  });
});

// ---------------------------------------------------------------- numbers, tables, lists

function renderHeader() {
  const a = analytics;
  document.title = `Analytics · ${a.room || room} · Lockstep`;
  ui.title.textContent = `Analytics · ${a.room || room}`;
  ui.badge.dataset.state = a.state;
  ui.badge.textContent = a.state === 'live' ? 'Live' : a.state === 'ended' ? 'Ended' : String(a.state || '');
  ui.updated.textContent = `Updated ${clock(Date.now())}`;
  const href = replayHref(0);
  ui.replayLink.hidden = !href;
  if (href) ui.replayLink.href = href;
}

function renderTotals() {
  const t = analytics.totals || {};
  for (const node of ui.totals.querySelectorAll('[data-total]')) {
    const key = node.dataset.total;
    if (key === 'gmv') {
      node.dataset.cents = String(num(t.gmv_cents));
      node.textContent = formatPrice(num(t.gmv_cents));
    } else {
      node.textContent = String(num(t[key]));
    }
  }
}

function renderProducts() {
  const rows = (analytics.chapters || []).map((c) => {
    const href = replayHref(num(c.media_ms) / 1000 - 3);
    return el('tr', { dataset: { sale: c.sale_id, index: String(c.index) } },
      el('td', { text: String(c.index) }),
      el('td', {}, href ? el('a', { href, text: c.title }) : c.title),
      el('td', { text: `${clock(num(c.at))} (${mmss(c.media_ms)})` }),
      // Funnel: card shown → Buy clicked → orders reserved → units paid.
      ...[['shown', 'shown'], ['clicked', 'clicked'], ['reserved', 'orders'], ['paid', 'paid']]
        .map(([step, field]) => el('td', { class: 'n', dataset: { funnel: step }, text: String(num(c[field])) })),
      el('td', { class: 'n', text: String(num(c.online_at_drop)) }),
      el('td', { class: 'n', dataset: { conversion: String(num(c.conversion)) }, text: `${(num(c.conversion) * 100).toFixed(1)}%` }));
  });
  if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 9, class: 'empty', text: 'No product link was dropped yet.' })));
  ui.products.replaceChildren(...rows);
}

function renderRetention() {
  const list = analytics.retention || [];
  const max = Math.max(1, ...list.map((r) => num(r.viewers)));
  let prev = null;
  const items = list.map((r) => {
    const label = r.up_to_s == null ? (prev == null ? 'Whole live' : `Longer than ${duration(prev)}`) : `Up to ${duration(num(r.up_to_s))}`;
    if (r.up_to_s != null) prev = num(r.up_to_s);
    return el('li', { dataset: { upTo: r.up_to_s == null ? 'rest' : String(r.up_to_s) } },
      el('span', { class: 'label', text: label }),
      el('span', { class: 'bar' }, el('span', { style: `width:${((num(r.viewers) / max) * 100).toFixed(1)}%` })),
      el('strong', { text: String(num(r.viewers)) }));
  });
  if (!items.length) items.push(el('li', { class: 'empty', text: 'No viewer yet.' }));
  ui.retention.replaceChildren(...items);
}

function renderFindings() {
  const items = (analytics.findings || []).map((f) => {
    const href = replayHrefAt(num(f.at));
    return el('li', { dataset: { kind: f.kind } },
      href ? el('a', { href, title: `At ${clock(num(f.at))}`, text: f.text }) : f.text);
  });
  if (!items.length) items.push(el('li', { class: 'empty', text: 'Nothing stood out yet.' }));
  ui.findings.replaceChildren(...items);
}

function render() {
  renderHeader();
  renderTotals();
  renderProducts();
  renderRetention();
  renderFindings();
  renderCharts();
}

// ---------------------------------------------------------------- loading and export

async function load() {
  clearTimeout(refreshTimer);
  try {
    const a = await (await get(analyticsPath())).json();
    analytics = a;
    lockstepDashboard.analytics = a;
    showError(null);
    render();
  } catch (err) {
    showError(err);
    if (FINAL_STATUS.has(err.status)) {
      ui.badge.dataset.state = 'ended';
      ui.badge.textContent = err.status === 404 ? 'Not found' : 'No access';
      return;
    }
  }
  if (!analytics || analytics.state === 'live') refreshTimer = setTimeout(load, REFRESH_MS);
}

async function exportAs(format) {
  const name = `${room}-analytics.${format}`;
  ui.exportHint.textContent = `Preparing ${name}…`;
  try {
    const resp = await get(analyticsPath(format === 'csv' ? 'csv' : null));
    const blob = await resp.blob();
    const url = URL.createObjectURL(blob);
    const a = el('a', { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    lockstepDashboard.lastExport = { name, size: blob.size, type: blob.type };
    ui.exportHint.textContent = `Downloaded ${name}.`;
  } catch (err) {
    ui.exportHint.textContent = `Export failed: ${describeError(err)}`;
  }
}

for (const [link, format] of [[ui.csv, 'csv'], [ui.json, 'json']]) {
  link.addEventListener('click', (ev) => {
    ev.preventDefault();
    exportAs(format);
  });
}

if (room) load();
else showError({ name: 'not_found', message: 'No room in this address.', status: 404 });
