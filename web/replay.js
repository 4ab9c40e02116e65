// The replay page (/replays/{id}#token=…&t=<seconds>): the recorded video, its chapter
// list (one per product link shown, hidden ones left out), the chat and likes replayed
// in step with the video position, and the product card of the current chapter with a
// Buy button that orders through the HTTP API with `source: "replay"`.
//
// Times: event `at` and chapter `at` are wall time (ms since the epoch); the video's
// position 0 is the replay's `media_start_at`, so position p shows wall time
// `media_start_at + p`. Without a recording the page keeps a position of its own (the end
// of the live, or `t=`, or a clicked chapter's).
//
// `window.lockstepReplay` exposes the page's state for tests and debugging.

import { describeError, el, formatPrice, httpError, newKey, takeTokenFromUrl } from './common.js';

const $ = (id) => document.getElementById(id);
const ui = {
  badge: $('replay-state'), title: $('replay-title'), liveLink: $('replay-live-link'), error: $('replay-error'),
  video: $('replay-video'), noMedia: $('replay-no-media'), chapters: $('chapters'), chaptersEmpty: $('chapters-empty'),
  stats: $('replay-stats'), card: $('replay-card'), image: $('replay-card-image'), placeholder: $('replay-card-placeholder'),
  cardTitle: $('replay-card-title'), price: $('replay-card-price'), stock: $('replay-card-stock'),
  remaining: $('replay-remaining'), stockLabel: $('replay-stock-label'), buy: $('replay-buy'), result: $('replay-buy-result'),
  pinned: $('replay-pinned'), pinnedText: $('replay-pinned-text'), comments: $('replay-comments'), likes: $('replay-likes'),
};

/** Comments kept on screen; older ones scroll away (the count and likes stay exact). */
const MAX_COMMENTS = 500;
/** The card of a chapter shows from this long before its link on. */
const CARD_LEAD_MS = 3500;
/** A chapter click starts the video this long before the link. */
const JUMP_LEAD_S = 3;

const replayId = (() => {
  try {
    return decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '') || null;
  } catch {
    return null;
  }
})();
const token = takeTokenFromUrl();
const startT = parseFloat(new URLSearchParams(location.hash.replace(/^#/, '')).get('t'));

/** Test and debugging hooks. `state.chapter` is the current chapter object (or null);
 * `state.lastOrder` the last order's answer `{sale_id, chapter, …reply}` or `{…, error}`. */
const lockstepReplay = {
  replayId, replay: null, events: [], state: { chapter: null, lastOrder: null, positionMs: 0, likes: 0, commentsShown: 0, error: null },
};
window.lockstepReplay = lockstepReplay;

let replay = null;
let events = [];
/** Comment events by id, for the pinned banner. */
const commentsById = new Map();
/** The position used when there is no recording, ms (null: the end, everything shown). */
let virtualMs = null;

// ---------------------------------------------------------------- HTTP

/** Fetches JSON from the API with the page's token; throws `{code,name,message,status}`. */
async function api(path, { method = 'GET', body } = {}) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, { method, headers, cache: 'no-store', body: body && JSON.stringify(body) });
  } catch (e) {
    throw { code: 0, name: 'network', message: `Network error: ${e.message}`, status: 0 };
  }
  if (!resp.ok) throw await httpError(resp);
  return resp.status === 204 ? null : resp.json();
}

const replayPath = () => `/api/v1/replays/${encodeURIComponent(replayId)}`;

function showError(text) {
  ui.error.hidden = !text;
  ui.error.textContent = text || '';
  lockstepReplay.state.error = text || null;
}

// ---------------------------------------------------------------- position and chapters

const hasMedia = () => !!(replay && replay.media_url);

/** The current position in the media, ms. */
function positionMs() {
  if (hasMedia()) return (ui.video.currentTime || 0) * 1000;
  return virtualMs === null ? Infinity : virtualMs;
}

/** Wall time (ms since the epoch) of media position 0. */
function mediaStart() {
  const v = replay.media_start_at ?? replay.started_at;
  return typeof v === 'number' ? v : Date.parse(v) || 0;
}

/** Two-digit minutes and seconds of a media position (minutes may pass 59). */
function mmss(ms) {
  const s = Math.max(0, Math.floor((Number(ms) || 0) / 1000));
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** The listed chapters, in media order. */
function visibleChapters() {
  const list = (replay && replay.chapters) || [];
  return list.filter((c) => !c.hidden).sort((a, b) => a.media_ms - b.media_ms || a.index - b.index);
}

/** The last listed chapter whose card is due at the current position, or null. */
function currentChapter() {
  const pos = positionMs();
  return visibleChapters().filter((c) => c.media_ms <= pos + CARD_LEAD_MS).pop() || null;
}

function renderChapters() {
  const list = visibleChapters();
  const active = lockstepReplay.state.chapter ? lockstepReplay.state.chapter.index : null;
  ui.chapters.replaceChildren(...list.map((c) => el('button', {
    type: 'button',
    class: `chapter${c.index === active ? ' active' : ''}`,
    'aria-current': c.index === active ? 'true' : null,
    dataset: { sale: c.sale_id, index: String(c.index) },
    onclick: () => jumpTo(c),
  }, ...[['time', mmss(c.media_ms)], ['index', `#${c.index}`], ['title', c.title], ['price', formatPrice(c.price_cents)],
    ['sold', `${Number(c.units_sold) || 0} sold`]].map(([k, text]) => el('span', { class: `ch-${k}`, text })))));
  ui.chaptersEmpty.hidden = list.length > 0;
}

function jumpTo(chapter) {
  if (hasMedia()) {
    ui.video.currentTime = Math.max(0, chapter.media_ms / 1000 - JUMP_LEAD_S);
    // Blocked with sound: play muted instead (the controls can unmute).
    ui.video.play().catch((e) => {
      if (!e || e.name !== 'NotAllowedError' || ui.video.muted) return;
      ui.video.muted = true;
      ui.video.play().catch(() => {});
    });
  } else {
    virtualMs = Math.max(0, chapter.media_ms - JUMP_LEAD_S * 1000);
  }
  update();
}

// ---------------------------------------------------------------- chat and likes in step with the video

const chat = { next: 0, wall: -Infinity, likes: 0, pinned: null };

function resetChat() {
  chat.next = 0;
  chat.wall = -Infinity;
  chat.likes = 0;
  chat.pinned = null;
  ui.comments.replaceChildren();
}

function commentItem(c) {
  return el('li', {
    class: c.anchor ? 'anchor' : null,
    dataset: { user: String(c.user ?? ''), commentId: String(c.id) },
  }, el('span', { class: 'who', text: c.anchor ? `${c.name || c.user} · host` : (c.name || c.user) }), c.text);
}

/** Removes a user's comments, both on screen and in `fresh` (not yet on screen). */
function clearUser(user, fresh) {
  const key = String(user);
  for (const li of ui.comments.querySelectorAll('li[data-user]')) if (li.dataset.user === key) li.remove();
  let w = 0;
  for (const c of fresh) if (String(c.user) !== key) fresh[w++] = c;
  fresh.length = w;
}

/** Applies every event up to the current position; from scratch after a backward seek. */
function syncChat() {
  const wall = mediaStart() + positionMs();
  if (wall < chat.wall) resetChat();
  chat.wall = wall;
  const box = ui.comments;
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const fresh = [];
  while (chat.next < events.length && events[chat.next].at <= wall) {
    const ev = events[chat.next++];
    if (ev.kind === 'comment') {
      fresh.push(ev);
      if (fresh.length > 2 * MAX_COMMENTS) fresh.splice(0, fresh.length - MAX_COMMENTS);
    } else if (ev.kind === 'likes') {
      chat.likes += Number(ev.count) || 0;
    } else if (ev.kind === 'moderation' && ev.action === 'comments_cleared') {
      clearUser(ev.user, fresh);
    } else if (ev.kind === 'pinned') {
      chat.pinned = ev.comment_id ?? null;
    }
  }
  if (fresh.length >= MAX_COMMENTS) box.replaceChildren(...fresh.slice(-MAX_COMMENTS).map(commentItem));
  else if (fresh.length) box.append(...fresh.map(commentItem));
  while (box.children.length > MAX_COMMENTS) box.firstElementChild.remove();
  if (fresh.length && nearBottom) box.scrollTop = box.scrollHeight;
  ui.likes.textContent = String(chat.likes);
  const pin = chat.pinned === null ? null : commentsById.get(chat.pinned);
  ui.pinned.hidden = !pin;
  ui.pinnedText.replaceChildren(...(pin ? [el('span', { class: 'who', text: pin.name || pin.user }), ` ${pin.text}`] : []));
  lockstepReplay.state.likes = chat.likes;
  lockstepReplay.state.commentsShown = box.children.length;
}

// ---------------------------------------------------------------- product card and buying

let buying = false;
/** The order key kept for a retry after a network failure: `{sale_id, key}`. */
let pendingKey = null;

function renderCard() {
  const ch = lockstepReplay.state.chapter;
  ui.card.hidden = !ch;
  if (!ch) return;
  ui.card.dataset.sale = ch.sale_id;
  ui.card.dataset.index = String(ch.index);
  ui.cardTitle.textContent = ch.title;
  ui.image.hidden = !ch.image_url;
  ui.placeholder.hidden = !!ch.image_url;
  if (ch.image_url && ui.image.getAttribute('src') !== ch.image_url) ui.image.src = ch.image_url;
  const sale = ch.sale || null;
  ui.price.textContent = formatPrice(sale && sale.price_cents != null ? sale.price_cents : ch.price_cents);
  const remaining = sale ? Number(sale.remaining) : NaN;
  const open = !!sale && sale.state === 'open' && remaining > 0;
  ui.remaining.textContent = Number.isFinite(remaining) ? String(remaining) : '–';
  ui.stockLabel.textContent = !sale ? 'sale no longer available'
    : sale.state === 'open' ? (remaining > 0 ? 'left' : 'left · sold out')
      : `left · ${String(sale.state).replace(/_/g, ' ')}`;
  ui.stock.dataset.state = sale ? sale.state : 'none';
  ui.stock.dataset.low = String(open && remaining <= 5);
  ui.buy.disabled = buying || !open;
  ui.buy.textContent = buying ? 'Ordering…' : open ? 'Buy now' : sale && sale.state === 'sold_out' ? 'Sold out' : 'Not on sale';
}

function showResult(outcome, text) {
  ui.result.hidden = false;
  ui.result.dataset.outcome = outcome;
  ui.result.textContent = text;
}

async function buy() {
  const ch = lockstepReplay.state.chapter;
  if (!ch || buying) return;
  if (!token) {
    showResult('error', 'A viewer token is needed to buy: open this page with your personal link (it ends in #token=…).');
    return;
  }
  // The chapter's sale, or the one its merchant opened for the replay.
  const saleId = (ch.sale && ch.sale.id) || ch.sale_id;
  if (!pendingKey || pendingKey.sale_id !== saleId) pendingKey = { sale_id: saleId, key: newKey() };
  buying = true;
  renderCard();
  const base = { sale_id: saleId, chapter: ch.index, at: Date.now() };
  try {
    const res = await api(`/api/v1/sales/${encodeURIComponent(saleId)}/orders`, {
      method: 'POST',
      body: { qty: 1, key: pendingKey.key, source: 'replay', replay_id: replay.id, chapter: ch.index },
    });
    pendingKey = null;
    lockstepReplay.state.lastOrder = { ...base, ...res };
    if (ch.sale && typeof res.remaining === 'number') ch.sale.remaining = res.remaining;
    const outcome = String(res.outcome || 'unknown');
    let text = `${outcome} · ${ch.title}`;
    if (res.order_id) text += ` · order ${res.order_id}`;
    if (outcome === 'accepted' && res.expires_at) text += ` · pay by ${new Date(res.expires_at).toLocaleTimeString()}`;
    if (res.message) text += ` — ${res.message}`;
    showResult(outcome, text);
  } catch (err) {
    if (err.name !== 'network') pendingKey = null;
    lockstepReplay.state.lastOrder = { ...base, error: err };
    showResult('error', `error · ${describeError(err)}`);
  } finally {
    buying = false;
    renderCard();
    refreshReplay();
  }
}

ui.buy.addEventListener('click', buy);

// ---------------------------------------------------------------- the page

/** Re-renders for the current position; refetches the replay when a new card shows. */
function update() {
  if (!replay) return;
  syncChat();
  lockstepReplay.state.positionMs = positionMs();
  const ch = currentChapter();
  const prev = lockstepReplay.state.chapter;
  lockstepReplay.state.chapter = ch;
  if ((ch ? ch.index : null) !== (prev ? prev.index : null)) {
    renderChapters();
    renderCard();
    if (ch) refreshReplay();
  }
}

function renderStats() {
  const s = replay.stats || {};
  const rows = [
    ['peak_online', 'Peak viewers', s.peak_online], ['comments', 'Comments', s.comments], ['likes', 'Likes', s.likes],
    ['orders', 'Orders', s.orders], ['units', 'Units sold', s.units], ['gmv_cents', 'Sales', formatPrice(s.gmv_cents || 0)],
  ];
  ui.stats.replaceChildren(...rows.map(([key, label, v]) => el('div', { dataset: { stat: key } },
    el('dt', { text: label }), el('dd', { text: String(v ?? 0) }))));
}

function renderHeader() {
  document.title = `${replay.title || 'Replay'} · Replay · Lockstep`;
  ui.title.textContent = replay.title || `Replay of ${replay.room}`;
  const live = replay.state === 'live';
  ui.badge.dataset.state = live ? 'live' : 'ended';
  ui.badge.textContent = live ? 'Live now' : 'Replay';
  ui.liveLink.hidden = !live;
  if (live) ui.liveLink.href = `/rooms/${encodeURIComponent(replay.room)}${token ? `#token=${encodeURIComponent(token)}` : ''}`;
}

/** Takes a (re)fetched replay: the current chapter becomes its copy there. */
function adopt(fresh) {
  replay = fresh;
  lockstepReplay.replay = fresh;
  const cur = lockstepReplay.state.chapter;
  lockstepReplay.state.chapter = cur ? (visibleChapters().find((c) => c.index === cur.index) || null) : null;
  renderHeader();
  renderStats();
  renderChapters();
  renderCard();
  update();
}

let refreshSeq = 0;

/** Fetches the replay again (stock and sales move on); keeps the video as it is. */
async function refreshReplay() {
  const seq = ++refreshSeq;
  try {
    const fresh = await api(replayPath());
    if (seq === refreshSeq) adopt(fresh);
  } catch (err) {
    if (seq === refreshSeq) showError(`Could not refresh the product: ${describeError(err)}`);
  }
}

function startVideo() {
  const v = ui.video;
  if (!hasMedia()) {
    v.hidden = true;
    ui.noMedia.hidden = false;
    if (Number.isFinite(startT)) virtualMs = Math.max(0, startT * 1000);
    return;
  }
  for (const ev of ['timeupdate', 'seeked', 'seeking', 'play', 'loadedmetadata']) v.addEventListener(ev, update);
  v.addEventListener('error', () => {
    const code = v.error ? v.error.code : '?';
    showError(`The recording could not be played (media error ${code}). Products and chat are still below.`);
  });
  // `t=` seeks once the duration is known (the seek's events update the page).
  if (Number.isFinite(startT)) v.addEventListener('loadedmetadata', () => { v.currentTime = Math.max(0, startT); }, { once: true });
  v.src = replay.media_url;
}

/** Every timeline event, page by page (`next` names where the following page starts). */
async function allEvents() {
  const out = [];
  let after = null;
  do {
    const page = await api(`${replayPath()}/events` + (after === null ? '' : `?after=${after}`));
    out.push(...((page && page.events) || []));
    after = page && page.next !== undefined ? page.next : null;
  } while (after !== null);
  return out;
}

async function main() {
  if (!replayId) {
    showError('No replay in this address.');
    return;
  }
  const [rep, evs] = await Promise.allSettled([api(replayPath()), allEvents()]);
  if (rep.status === 'rejected') {
    const err = rep.reason;
    ui.title.textContent = 'Replay unavailable';
    showError(err.status === 404 ? 'This replay does not exist.' : describeError(err));
    return;
  }
  if (evs.status === 'fulfilled') events = evs.value;
  else showError(`The chat of this replay could not be loaded: ${describeError(evs.reason)}`);
  events.sort((a, b) => a.at - b.at);
  lockstepReplay.events = events;
  for (const ev of events) if (ev.kind === 'comment') commentsById.set(ev.id, ev);
  replay = rep.value;
  startVideo();
  adopt(rep.value);
}

main().catch((e) => showError(`Something went wrong: ${e && e.message ? e.message : e}`));
