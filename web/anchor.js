// The anchor console (/rooms/{room}/anchor#token=<anchor token>): going live (control
// channel `go_live`, then publishing), pause and end, the room's sales with Drop link /
// Close sale, live counters, and comment moderation. The camera preview and WHIP
// publishing with simulcast are `anchor-publish.js`.
//
// `window.lockstep` exposes the page's state for tests and debugging.

import {
  RoomSocket, byTestId, describeError, el, formatCount, formatPrice, httpError, roomFromPath,
  takeTokenFromUrl,
} from './common.js';
import { createPublisher } from './anchor-publish.js';

const $ = (id) => byTestId(id);
const ui = {
  badge: $('room-state'), title: $('room-title'), pageError: $('page-error'),
  preview: $('preview'), previewOverlay: $('preview-overlay'), previewMessage: $('preview-message'),
  countdown: $('anchor-countdown'),
  goLive: $('go-live'), pause: $('pause'), end: $('end'), whipStatus: $('whip-status'),
  endConfirmBox: $('end-confirm-box'), endConfirm: $('end-confirm'), endCancel: $('end-cancel'),
  online: $('counter-online'), likes: $('counter-likes'), sold: $('counter-sold'),
  sayForm: $('say-form'), sayInput: $('say-input'), saySend: $('say-send'), sayHint: $('say-hint'),
  linkStatus: $('link-status'), sales: $('sales'), salesHint: $('sales-hint'),
  pinned: $('pinned'), pinnedText: $('pinned-text'), unpin: $('unpin'),
  comments: $('comments'), moderationHint: $('moderation-hint'),
};

const ROOM_STATE_LABEL = { connecting: 'Connecting', created: 'Not live', live: 'Live', paused: 'Paused', ended: 'Ended' };
const SALE_STATE_LABEL = { scheduled: 'Scheduled', open: 'Open', sold_out: 'Sold out', ended: 'Ended' };
const MAX_COMMENTS = 300;
const MUTE_SECONDS = 300;

const room = roomFromPath();
const token = takeTokenFromUrl();

const st = {
  roomState: 'connecting',
  joined: false,
  sales: new Map(),
  rows: new Map(),
  comments: new Map(),
};

const lockstep = {
  room,
  state: 'connecting',
  whip: { status: 'idle', location: null, error: null },
  pc: null,
  sold: {},
  sales: {},
  online: 0,
  likes: 0,
  lastLink: null,
  errors: [],
  get clockOffsetMs() { return sock ? sock.offsetMs : 0; },
};
window.lockstep = lockstep;

let sock = null;

function showPageError(text) {
  ui.pageError.textContent = text || '';
  ui.pageError.hidden = !text;
}

function hint(node, text, isError = false) {
  node.textContent = text || '';
  node.classList.toggle('error', !!isError);
}

/** Sends a control command; resolves with the reply, or `null` when none came (some
 * commands are answered only by their broadcast). */
async function control(cmd, fields = {}) {
  try {
    return await sock.request({ type: 'control', cmd, ...fields }, 10000);
  } catch (e) {
    if (e.message === 'not connected') return { type: 'error', name: 'not_connected', message: 'Not connected to the room.' };
    return null;
  }
}

// ---------------------------------------------------------------- room state and buttons

function setRoomState(state) {
  st.roomState = state;
  lockstep.state = state;
  ui.badge.dataset.state = state;
  ui.badge.textContent = ROOM_STATE_LABEL[state] || state;
  if (state === 'ended') {
    publisher.stopPublishing();
    publisher.stopCamera();
    ui.previewOverlay.hidden = false;
    ui.previewMessage.textContent = 'The live has ended';
    ui.endConfirmBox.hidden = true;
  }
  refreshButtons();
  for (const sale of st.sales.values()) renderSale(sale);
}

function refreshButtons() {
  const s = st.roomState;
  const w = lockstep.whip.status;
  const busy = w === 'starting' || w === 'connecting' || w === 'connected';
  const usable = st.joined && s !== 'ended';
  ui.goLive.disabled = !usable || busy;
  if (w === 'connected') ui.goLive.textContent = 'On air';
  else if (s === 'live') ui.goLive.textContent = w === 'failed' ? 'Retry stream' : 'Start stream';
  else ui.goLive.textContent = 'Go live';
  ui.pause.hidden = !(usable && (s === 'live' || s === 'paused'));
  ui.pause.textContent = s === 'paused' ? 'Resume' : 'Pause';
  ui.end.disabled = !usable;
  ui.sayInput.disabled = !usable;
  ui.saySend.disabled = !usable;
}

/** Waits until the room reaches `state` (from a broadcast), up to `timeoutMs`. */
function waitRoomState(state, timeoutMs = 10000) {
  return new Promise((resolve) => {
    const started = performance.now();
    const poll = () => {
      if (st.roomState === state) resolve(true);
      else if (performance.now() - started > timeoutMs) resolve(false);
      else setTimeout(poll, 50);
    };
    poll();
  });
}

// ---------------------------------------------------------------- publishing, pause and end

const publisher = createPublisher({
  room,
  token,
  lockstep,
  ui: { preview: ui.preview, previewOverlay: ui.previewOverlay, previewMessage: ui.previewMessage, whipStatus: ui.whipStatus },
  onStatus: refreshButtons,
  showPageError,
});

ui.goLive.addEventListener('click', async () => {
  showPageError('');
  publisher.setStatus('starting');
  if (st.roomState !== 'live') {
    const reply = await control('go_live');
    if (reply && reply.type === 'error' && reply.name !== 'invalid_transition') {
      publisher.setStatus('failed', reply);
      return;
    }
    if (!(await waitRoomState('live'))) {
      publisher.setStatus('failed', { name: 'not_live', message: 'the room did not go live' });
      return;
    }
  }
  await publisher.publish();
});

ui.pause.addEventListener('click', async () => {
  const reply = await control(st.roomState === 'paused' ? 'go_live' : 'pause');
  if (reply?.type === 'error') showPageError(describeError(reply));
});

ui.end.addEventListener('click', () => {
  ui.endConfirmBox.hidden = false;
  ui.endConfirm.focus();
});
ui.endCancel.addEventListener('click', () => {
  ui.endConfirmBox.hidden = true;
});
ui.endConfirm.addEventListener('click', async () => {
  ui.endConfirmBox.hidden = true;
  ui.end.disabled = true;
  await publisher.stopPublishing();
  const reply = await control('end');
  if (reply?.type === 'error') {
    showPageError(describeError(reply));
    refreshButtons();
  }
});

// ---------------------------------------------------------------- sales

function soldOf(sale) {
  return Math.max(0, (sale.allotted || 0) - (sale.remaining || 0));
}

function renderCounters() {
  let sold = 0;
  for (const sale of st.sales.values()) {
    lockstep.sold[sale.id] = soldOf(sale);
    sold += soldOf(sale);
  }
  lockstep.soldTotal = sold;
  ui.sold.textContent = formatCount(sold);
}

function saleRow(sale) {
  let row = st.rows.get(sale.id);
  if (row) return row;
  const node = el('li', { class: 'sale', dataset: { testid: 'sale', saleId: sale.id } });
  const title = el('div', { class: 'title' });
  const state = el('span', { class: 'state', dataset: { testid: 'sale-state' } });
  const price = el('span');
  const remaining = el('strong', { dataset: { testid: 'remaining' } });
  const sold = el('strong', { dataset: { testid: 'sold' } });
  const reveal = el('span', { dataset: { testid: 'reveal' } });
  const drop = el('button', { type: 'button', class: 'primary small', dataset: { testid: 'drop-link' }, text: 'Drop link' });
  const close = el('button', { type: 'button', class: 'danger small', dataset: { testid: 'close-sale' }, text: 'Close sale' });
  node.append(
    title, state,
    el('div', { class: 'meta' }, price, el('span', {}, 'Remaining ', remaining), el('span', {}, 'Sold units ', sold), reveal),
    el('div', { class: 'actions' }, drop, close),
  );
  drop.addEventListener('click', () => dropLink(sale.id));
  let closeArmed = null;
  close.addEventListener('click', () => {
    if (!closeArmed) {
      close.textContent = 'Confirm close';
      closeArmed = setTimeout(() => { closeArmed = null; close.textContent = 'Close sale'; }, 4000);
      return;
    }
    clearTimeout(closeArmed);
    closeArmed = null;
    close.textContent = 'Close sale';
    closeSale(sale.id);
  });
  row = { node, title, state, price, remaining, sold, reveal, drop, close };
  st.rows.set(sale.id, row);
  ui.sales.append(node);
  return row;
}

function renderSale(sale) {
  const row = saleRow(sale);
  row.title.textContent = sale.title || sale.sku_id || sale.id;
  row.state.dataset.state = sale.state;
  row.state.textContent = SALE_STATE_LABEL[sale.state] || sale.state;
  row.price.textContent = sale.sale_price_cents !== undefined ? formatPrice(sale.sale_price_cents) : '';
  row.remaining.textContent = `${sale.remaining} / ${sale.allotted}`;
  row.sold.textContent = String(soldOf(sale));
  row.reveal.textContent = sale.reveal_at ? `Link at ${new Date(sale.reveal_at - (sock?.offsetMs || 0)).toLocaleTimeString()}` : '';
  const usable = st.joined && st.roomState !== 'ended';
  row.drop.disabled = !usable || sale.state === 'ended';
  row.drop.textContent = sale.state === 'scheduled' ? 'Drop link' : 'Drop again';
  row.close.disabled = !usable || sale.state === 'ended';
  lockstep.sales[sale.id] = { ...sale };
}

function upsertSale(sale) {
  const merged = { ...(st.sales.get(sale.id) || {}), ...sale };
  st.sales.set(sale.id, merged);
  renderSale(merged);
  renderCounters();
}

let loadingSales = null;
let reloadTimer = null;

/** Fetches the room's sales (anchor token). */
async function loadSales() {
  if (loadingSales) return loadingSales;
  loadingSales = (async () => {
    try {
      const resp = await fetch(`/api/v1/rooms/${encodeURIComponent(room)}/sales`, {
        headers: { Authorization: `Bearer ${token}` },
        cache: 'no-store',
      });
      if (!resp.ok) {
        hint(ui.salesHint, `Sales unavailable: ${describeError(await httpError(resp))}`, true);
        return;
      }
      const body = await resp.json();
      for (const sale of body.sales || []) upsertSale(sale);
      hint(ui.salesHint, st.sales.size ? '' : 'No sales in this room yet.');
    } catch (e) {
      hint(ui.salesHint, `Sales unavailable: ${e.message}`, true);
    } finally {
      loadingSales = null;
    }
  })();
  return loadingSales;
}

function reloadSalesSoon() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(loadSales, 300);
}

async function dropLink(saleId) {
  hint(ui.salesHint, '');
  const reply = await control('drop_link', { sale_id: saleId });
  if (reply?.type === 'error') hint(ui.salesHint, `Drop link: ${describeError(reply)}`, true);
  reloadSalesSoon();
}

async function closeSale(saleId) {
  hint(ui.salesHint, '');
  const reply = await control('close_sale', { sale_id: saleId });
  if (reply?.type === 'error') hint(ui.salesHint, `Close sale: ${describeError(reply)}`, true);
  reloadSalesSoon();
}

let countdownTimer = null;

/** The anchor sees the same "3, 2, 1" as the viewers, on the preview. */
function onLink(card) {
  lockstep.lastLink = card;
  const sale = st.sales.get(card.sale_id);
  upsertSale({
    id: card.sale_id, title: sale?.title || card.title, sku_id: card.sku_id,
    state: sale && sale.state !== 'scheduled' ? sale.state : 'open',
    allotted: card.allotted, remaining: card.remaining, price_cents: card.price_cents,
    sale_price_cents: card.sale_price_cents, reveal_at: card.reveal_at,
  });
  const tick = () => {
    clearTimeout(countdownTimer);
    const wait = card.reveal_at - sock.serverNow();
    if (wait <= 0) {
      ui.countdown.hidden = true;
      hint(ui.linkStatus, `Link live: ${card.title}`);
      return;
    }
    const digit = String(Math.ceil(wait / 1000));
    if (ui.countdown.textContent !== digit) ui.countdown.replaceChildren(el('span', { text: digit }));
    ui.countdown.hidden = false;
    hint(ui.linkStatus, `Link for ${card.title} in ${digit}…`);
    countdownTimer = setTimeout(tick, Math.min(wait, wait % 1000 || 1000));
  };
  tick();
  reloadSalesSoon();
}

// ---------------------------------------------------------------- comments and moderation

function setPinned(c) {
  ui.pinned.hidden = !c;
  ui.pinnedText.replaceChildren();
  if (c) ui.pinnedText.append(el('strong', { text: `${c.name}: ` }), c.text);
}

async function moderate(cmd, fields, done) {
  const reply = await control(cmd, fields);
  if (reply?.type === 'error') hint(ui.moderationHint, describeError(reply), true);
  else if (done) hint(ui.moderationHint, done);
}

function commentItem(c) {
  const actions = el('div', { class: 'actions' },
    el('button', { type: 'button', class: 'small', dataset: { testid: 'pin' }, text: 'Pin',
      onclick: () => moderate('pin', { comment_id: c.id }) }));
  if (!c.anchor) {
    actions.append(
      el('button', { type: 'button', class: 'small', dataset: { testid: 'mute' }, text: 'Mute 5 min',
        onclick: () => moderate('mute', { user: c.user, seconds: MUTE_SECONDS }, `Muted ${c.name} for 5 minutes.`) }),
    );
    const ban = el('button', { type: 'button', class: 'small danger', dataset: { testid: 'ban' }, text: 'Ban' });
    let armed = null;
    ban.addEventListener('click', () => {
      if (!armed) {
        ban.textContent = `Ban ${c.name}?`;
        armed = setTimeout(() => { armed = null; ban.textContent = 'Ban'; }, 4000);
        return;
      }
      clearTimeout(armed);
      armed = null;
      ban.textContent = 'Ban';
      moderate('ban', { user: c.user }, `Banned ${c.name}.`);
    });
    actions.append(ban);
  }
  return el('li', { class: c.anchor ? 'anchor' : null, dataset: { user: c.user, commentId: String(c.id) } },
    el('span', { class: 'who', text: c.anchor ? `${c.name} · you` : c.name }), c.text, actions);
}

function addComments(list) {
  const box = ui.comments;
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  for (const c of list) {
    if (st.comments.has(c.id)) continue;
    st.comments.set(c.id, c);
    box.append(commentItem(c));
  }
  while (box.children.length > MAX_COMMENTS) {
    const first = box.firstElementChild;
    st.comments.delete(Number(first.dataset.commentId));
    first.remove();
  }
  if (nearBottom) box.scrollTop = box.scrollHeight;
}

ui.unpin.addEventListener('click', () => moderate('unpin'));

ui.sayForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = ui.sayInput.value.trim();
  if (!text) return;
  ui.saySend.disabled = true;
  const reply = await control('say', { text });
  if (reply?.type === 'error') hint(ui.sayHint, describeError(reply), true);
  else {
    ui.sayInput.value = '';
    hint(ui.sayHint, '');
  }
  refreshButtons();
});

// ---------------------------------------------------------------- socket events

function onWelcome(msg) {
  const snap = msg.room;
  st.joined = true;
  ui.title.textContent = snap.title || snap.id;
  document.title = `${snap.title || snap.id} · Anchor console`;
  lockstep.online = snap.online;
  lockstep.likes = snap.likes;
  ui.online.textContent = formatCount(snap.online);
  ui.likes.textContent = formatCount(snap.likes);
  ui.comments.replaceChildren();
  st.comments.clear();
  addComments(snap.recent_comments || []);
  setPinned(snap.pinned);
  showPageError('');
  setRoomState(snap.state);
  loadSales();
}

function onMessage(msg) {
  switch (msg.type) {
    case 'tick':
      if (msg.comments?.length) addComments(msg.comments);
      if (msg.likes) {
        lockstep.likes = msg.likes.total;
        ui.likes.textContent = formatCount(msg.likes.total);
      }
      if (typeof msg.online === 'number') {
        lockstep.online = msg.online;
        ui.online.textContent = formatCount(msg.online);
      }
      for (const [id, s] of Object.entries(msg.sales || {})) {
        if (st.sales.has(id)) upsertSale({ id, remaining: s.remaining });
        else reloadSalesSoon();
      }
      break;
    case 'room_state':
      setRoomState(msg.state);
      break;
    case 'pinned':
      setPinned(msg.comment);
      break;
    case 'link':
      onLink(msg.link);
      break;
    case 'sale':
      if (st.sales.has(msg.sale_id)) upsertSale({ id: msg.sale_id, state: msg.state, remaining: msg.remaining });
      reloadSalesSoon();
      break;
    case 'moderation':
      if (msg.action === 'comments_cleared') {
        for (const li of ui.comments.querySelectorAll('li[data-user]')) if (li.dataset.user === msg.user) li.remove();
      }
      break;
    case 'error':
      if (msg.id === undefined) lockstep.errors.push(msg);
      break;
    default:
      break;
  }
}

function onStatus(status, detail) {
  if (status === 'open') return;
  st.joined = false;
  refreshButtons();
  if (status === 'reconnecting' && st.roomState !== 'ended') {
    showPageError('Connection to the room lost. Reconnecting…');
  } else if (status === 'closed') {
    if (detail.code === 1000 || detail.error?.name === 'room_ended') {
      if (st.roomState !== 'ended') setRoomState('ended');
    } else {
      showPageError(detail.error ? describeError(detail.error) : `Disconnected (${detail.code}).`);
    }
  }
}

// ---------------------------------------------------------------- start

if (!room) {
  showPageError('This page lives at /rooms/{room}/anchor.');
} else if (!token) {
  ui.title.textContent = room;
  showPageError('This console needs the room\'s anchor token: open it as /rooms/' + room + '/anchor#token=<anchor token>.');
  ui.previewMessage.textContent = 'Not signed in';
  refreshButtons();
} else {
  ui.title.textContent = room;
  sock = new RoomSocket({ path: `/ws/rooms/${encodeURIComponent(room)}/control`, token, title: room, onWelcome, onMessage, onStatus });
  sock.start();
  refreshButtons();
  publisher.startCamera();
  setInterval(() => {
    if (st.joined && document.visibilityState === 'visible') loadSales();
  }, 5000);
}
