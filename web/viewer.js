// The viewer page (/rooms/{room}#token=…): the room WebSocket, the stage over the video
// (room state, offline, errors), chat, likes, the pinned comment, and the product link
// that appears at its server-time `reveal_at` after a "3, 2, 1" countdown, with a Buy
// button. The live video itself (WebRTC subscription, playout delay, stall watchdog,
// layer picker, frame log) is `viewer-media.js`.
//
// `window.lockstep` exposes the page's state for tests and debugging (see `lockstep`).

import {
  RoomSocket, byTestId, describeError, el, formatCount, formatPrice, newKey, perfNow,
  roomFromPath, tokenFromHash,
} from './common.js';
import { createViewerMedia } from './viewer-media.js';

const $ = (id) => byTestId(id);
const ui = {
  badge: $('room-state'), title: $('room-title'), online: $('online'),
  video: $('video'), overlay: $('stage-overlay'), stageMessage: $('stage-message'), stageDetail: $('stage-detail'),
  countdown: $('countdown'), unmute: $('unmute'), layer: $('layer'),
  card: $('product-card'), image: $('product-image'), placeholder: $('product-placeholder'),
  productTitle: $('product-title'), productDesc: $('product-desc'), attrs: $('product-attrs'),
  price: $('product-price'), listPrice: $('product-list-price'), stock: $('stock'), remaining: $('remaining'),
  stockLabel: $('stock-label'), buy: $('buy'), outcome: $('order-outcome'),
  guestHint: $('guest-hint'), pageError: $('page-error'), pinned: $('pinned'), pinnedText: $('pinned-text'),
  comments: $('comments'), commentForm: $('comment-form'), commentInput: $('comment-input'),
  commentSend: $('comment-send'), commentHint: $('comment-hint'), like: $('like'), likes: $('likes'),
};

const ROOM_STATE_LABEL = { connecting: 'Connecting', created: 'Starting soon', live: 'Live', paused: 'Paused', ended: 'Ended' };
const MAX_COMMENTS = 200;

const room = roomFromPath();
const token = tokenFromHash();

/** Page state. */
const st = {
  roomState: 'connecting',
  /** Set when the session cannot go on: `{reason, message}` (ended, banned, refused). */
  final: null,
  you: null,
  media: { live: false, playout_delay_ms: 0 },
  mediaError: null,
  playing: false,
  likesServer: 0,
  likesQueued: 0,
  likesInFlight: 0,
  slowMode: 0,
  link: null,
  sale: null,
  orderPending: null,
};

/** Test and debugging hooks. Times: `*At`/`serverTime` are server time (ms since the
 * epoch); `*Perf`/`presentedAt` are this browser's clock (performance.timeOrigin +
 * performance.now()). */
const lockstep = {
  room,
  state: 'connecting',
  you: null,
  pc: null,
  media: st.media,
  mediaError: null,
  frames: [],
  link: null,
  linkShownAt: null,
  linkShownPerf: null,
  linkShownWall: null,
  /** The countdown digits shown before the current link appeared, in order. */
  countdownDigits: [],
  lastOrder: null,
  errors: [],
  /** Times the stall watchdog re-subscribed because no video frame was decoded. */
  stallResubscribes: 0,
  /** Media events (subscribe, answer, media, connection states), newest last. */
  mediaLog: [],
  get clockOffsetMs() { return sock ? sock.offsetMs : 0; },
  get clockRttMs() { return sock ? sock.rttMs : null; },
};
window.lockstep = lockstep;

let sock = null;

// ---------------------------------------------------------------- stage and room state

function setRoomState(state) {
  st.roomState = state;
  lockstep.state = state;
  ui.badge.dataset.state = state;
  ui.badge.textContent = ROOM_STATE_LABEL[state] || state;
  if (state === 'ended') {
    st.final = { reason: 'ended', message: 'This live has ended', detail: 'Thanks for watching!' };
    media.close();
    hideCountdown();
    refreshInputs();
    refreshCard();
  }
  renderStage();
}

/** Decides what the video stage shows over the video, if anything. */
function renderStage() {
  let reason = null;
  let message = '';
  let detail = '';
  if (st.final) {
    ({ reason, message } = st.final);
    detail = st.final.detail || '';
  } else if (!st.you) {
    reason = 'connecting';
    message = 'Connecting…';
  } else if (st.roomState === 'created') {
    reason = 'waiting';
    message = 'The live starts soon';
  } else if (st.roomState === 'paused') {
    reason = 'paused';
    message = 'The anchor paused the live';
    detail = 'Stay tuned.';
  } else if (!st.media.live) {
    reason = 'offline';
    message = 'The anchor is offline';
    detail = 'The video comes back as soon as the stream does.';
  } else if (st.mediaError) {
    reason = 'media-error';
    message = describeError(st.mediaError);
  } else if (!st.playing) {
    reason = 'loading';
    message = 'Loading video…';
  }
  ui.overlay.hidden = reason === null;
  ui.overlay.dataset.reason = reason || 'none';
  ui.stageMessage.textContent = message;
  ui.stageDetail.textContent = detail;
  ui.unmute.hidden = !(st.playing && ui.video.muted && !st.final);
  ui.layer.parentElement.hidden = !!st.final || !st.media.live;
}

function showPageError(text) {
  ui.pageError.textContent = text;
  ui.pageError.hidden = !text;
}

// ---------------------------------------------------------------- media (viewer-media.js)

const media = createViewerMedia({
  st,
  lockstep,
  ui: { video: ui.video, unmute: ui.unmute, layer: ui.layer },
  render: renderStage,
  channel: {
    send: (msg) => !!sock && sock.send(msg),
    request: (msg) => (sock ? sock.request(msg) : Promise.reject(new Error('not connected'))),
    nextId: () => (sock ? sock.nextId++ : 0),
    clockOffsetMs: () => (sock ? sock.offsetMs : 0),
  },
});

// ---------------------------------------------------------------- chat, likes, pin

const seenComments = new Set();

function commentItem(c) {
  const mine = st.you && st.you.user && c.user === st.you.user;
  return el('li', {
    class: [c.anchor ? 'anchor' : '', mine ? 'mine' : ''].join(' ').trim() || null,
    dataset: { user: c.user, commentId: String(c.id) },
  }, el('span', { class: 'who', text: c.anchor ? `${c.name} · host` : c.name }), c.text);
}

function addComments(list) {
  const box = ui.comments;
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  for (const c of list) {
    if (seenComments.has(c.id)) continue;
    seenComments.add(c.id);
    box.append(commentItem(c));
  }
  while (box.children.length > MAX_COMMENTS) box.firstElementChild.remove();
  if (nearBottom) box.scrollTop = box.scrollHeight;
}

function systemLine(text) {
  ui.comments.append(el('li', { class: 'system', text }));
  ui.comments.scrollTop = ui.comments.scrollHeight;
}

function setPinned(c) {
  ui.pinned.hidden = !c;
  ui.pinnedText.replaceChildren();
  if (c) ui.pinnedText.append(el('strong', { text: `${c.name}: ` }), c.text);
}

function renderLikes() {
  ui.likes.textContent = formatCount(st.likesServer + st.likesInFlight + st.likesQueued);
}

let likeTimer = null;
ui.like.addEventListener('click', () => {
  if (!sock || st.final) return;
  st.likesQueued += 1;
  renderLikes();
  const heart = el('span', { class: 'float', 'aria-hidden': 'true', text: '♥' });
  ui.like.append(heart);
  setTimeout(() => heart.remove(), 900);
  // Taps are batched: at most one `like` message per 250 ms.
  if (!likeTimer) {
    likeTimer = setTimeout(() => {
      likeTimer = null;
      const count = Math.min(100, st.likesQueued);
      if (count > 0 && sock.send({ type: 'like', count })) {
        st.likesQueued -= count;
        st.likesInFlight += count;
      }
      renderLikes();
    }, 250);
  }
});

function commentHint(text, isError = false) {
  ui.commentHint.textContent = text;
  ui.commentHint.classList.toggle('error', isError);
}

function refreshInputs() {
  const signedIn = !!(st.you && st.you.user);
  const usable = !!st.you && !st.final;
  ui.guestHint.hidden = !(st.you && !signedIn);
  ui.commentInput.disabled = !usable || !signedIn;
  ui.commentSend.disabled = !usable || !signedIn;
  ui.like.disabled = !usable;
  ui.commentInput.placeholder = signedIn ? 'Say something…' : 'Sign in to comment';
}

ui.commentForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = ui.commentInput.value.trim();
  if (!text || !sock) return;
  ui.commentSend.disabled = true;
  try {
    const reply = await sock.request({ type: 'comment', text });
    if (reply.type === 'error') {
      commentHint(describeError(reply), true);
    } else {
      ui.commentInput.value = '';
      commentHint(st.slowMode ? `Slow mode: one comment every ${st.slowMode} s.` : '');
    }
  } catch (e) {
    commentHint(`Not sent: ${e.message}.`, true);
  } finally {
    refreshInputs();
  }
});

// ---------------------------------------------------------------- product link and buying

let revealTimer = null;

function hideCountdown() {
  clearTimeout(revealTimer);
  ui.countdown.hidden = true;
  ui.countdown.replaceChildren();
}

function onLink(card) {
  const sameSale = st.link && st.link.sale_id === card.sale_id;
  st.link = card;
  lockstep.link = card;
  if (!sameSale) {
    st.sale = { state: 'open', remaining: card.remaining };
    lockstep.linkShownAt = null;
    lockstep.linkShownPerf = null;
    lockstep.linkShownWall = null;
    lockstep.countdownDigits = [];
    ui.outcome.hidden = true;
    ui.card.hidden = true;
  }
  fillCard(card);
  refreshCard();
  if (ui.card.hidden) revealTick();
}

/** Shows the countdown digit until `reveal_at`, then the card. Timers are re-armed at
 * each whole second before the reveal, so clock-offset updates are taken into account. */
function revealTick() {
  clearTimeout(revealTimer);
  const card = st.link;
  if (!card || st.final) return;
  const wait = card.reveal_at - sock.serverNow();
  if (wait <= 0) {
    reveal();
    return;
  }
  const digit = String(Math.ceil(wait / 1000));
  if (ui.countdown.textContent !== digit) {
    ui.countdown.replaceChildren(el('span', { text: digit }));
    ui.countdown.setAttribute('aria-label', `Link in ${digit}`);
    lockstep.countdownDigits.push(digit);
  }
  ui.countdown.hidden = false;
  const toNextDigit = wait % 1000 || 1000;
  revealTimer = setTimeout(revealTick, Math.min(wait, toNextDigit));
}

function reveal() {
  hideCountdown();
  if (!ui.card.hidden) return;
  ui.card.hidden = false;
  const perf = perfNow();
  if (lockstep.linkShownAt === null) {
    lockstep.linkShownPerf = perf;
    lockstep.linkShownAt = perf + sock.offsetMs;
    lockstep.linkShownWall = Date.now();
  }
  refreshCard();
}

function fillCard(card) {
  ui.productTitle.textContent = card.title;
  ui.productDesc.textContent = card.description || '';
  ui.productDesc.hidden = !card.description;
  ui.attrs.replaceChildren(...Object.entries(card.attributes || {}).map(([k, v]) => el('span', { text: `${k}: ${v}` })));
  ui.price.textContent = formatPrice(card.sale_price_cents);
  ui.listPrice.textContent = card.price_cents > card.sale_price_cents ? formatPrice(card.price_cents) : '';
  const src = typeof card.image_url === 'string' && /^(https?:)?\//.test(card.image_url) ? card.image_url : '';
  if (src && ui.image.getAttribute('src') !== src) {
    ui.image.hidden = true;
    ui.placeholder.hidden = false;
    ui.image.onload = () => { ui.image.hidden = false; ui.placeholder.hidden = true; };
    ui.image.onerror = () => { ui.image.hidden = true; ui.placeholder.hidden = false; };
    ui.image.src = src;
  } else if (!src) {
    ui.image.removeAttribute('src');
    ui.image.hidden = true;
    ui.placeholder.hidden = false;
  }
}

function refreshCard() {
  const card = st.link;
  if (!card || !st.sale) return;
  const { state, remaining } = st.sale;
  ui.remaining.textContent = String(remaining);
  ui.stock.dataset.low = String(remaining > 0 && remaining <= Math.max(3, card.allotted / 10));
  ui.stockLabel.textContent = `left of ${card.allotted}` + (card.per_buyer_limit ? ` · max ${card.per_buyer_limit} per buyer` : '');
  const signedIn = !!(st.you && st.you.user);
  let label = 'Buy now';
  let enabled = true;
  if (st.final || state === 'ended') { label = 'Sale ended'; enabled = false; }
  else if (state === 'sold_out' || remaining === 0) { label = 'Sold out'; enabled = false; }
  else if (!signedIn) { label = 'Sign in to buy'; enabled = false; }
  else if (st.orderPending) { label = 'Reserving…'; enabled = false; }
  ui.buy.textContent = label;
  ui.buy.disabled = !enabled;
  ui.card.dataset.saleState = state;
}

function onSaleStock(saleId, remaining, state) {
  if (!st.link || st.link.sale_id !== saleId || !st.sale) return;
  if (typeof remaining === 'number') st.sale.remaining = remaining;
  if (state) st.sale.state = state;
  else if (st.sale.state === 'open' && st.sale.remaining === 0) st.sale.state = 'sold_out';
  refreshCard();
}

const OUTCOME_TEXT = {
  sold_out: () => 'Sold out: every unit is taken.',
  limit_exceeded: () => `You already hold the most units one buyer may (${st.link?.per_buyer_limit ?? 1}).`,
  not_open: () => 'Not open yet: wait for the countdown.',
  closed: () => 'This sale has ended.',
  invalid: (r) => r.message || 'The order was refused.',
};

function showOutcome(kind, text) {
  ui.outcome.hidden = false;
  ui.outcome.dataset.outcome = kind;
  ui.outcome.textContent = text;
}

function onOrderResult(r) {
  lockstep.lastOrder = r;
  if (r.type === 'error') {
    showOutcome('error', describeError(r));
  } else if (r.outcome === 'accepted') {
    let text = `Reserved! Order ${r.order_id}.`;
    if (r.expires_at) {
      const mins = Math.max(1, Math.round((r.expires_at - sock.serverNow()) / 60000));
      text += ` Pay within ${mins} min to keep it.`;
    }
    showOutcome('accepted', text);
  } else {
    showOutcome(r.outcome, (OUTCOME_TEXT[r.outcome] || ((x) => x.message || r.outcome))(r));
  }
  if (r.sale_id && typeof r.remaining === 'number') onSaleStock(r.sale_id, r.remaining);
}

/** Sends (or resends, after a reconnect) the pending order. Its key stays the same, so a
 * retry never reserves twice. */
async function sendOrder() {
  const order = st.orderPending;
  if (!order || !sock) return;
  refreshCard();
  let reply;
  try {
    reply = await sock.request({ type: 'order', sale_id: order.sale_id, qty: 1, key: order.key });
  } catch {
    // Not connected or no answer: the next welcome resends with the same key.
    showOutcome('pending', 'Connection lost; your order will be retried…');
    return;
  }
  if (st.orderPending !== order) return;
  st.orderPending = null;
  onOrderResult(reply);
  refreshCard();
}

ui.buy.addEventListener('click', () => {
  if (!st.link || st.orderPending) return;
  // One purchase intent, one key.
  st.orderPending = { sale_id: st.link.sale_id, key: newKey() };
  ui.outcome.hidden = true;
  sendOrder();
});

// ---------------------------------------------------------------- socket events

function onWelcome(msg) {
  const snap = msg.room;
  st.you = msg.you;
  lockstep.you = msg.you;
  ui.title.textContent = snap.title || snap.id;
  document.title = `${snap.title || snap.id} · Live`;
  ui.online.textContent = formatCount(snap.online);
  st.likesServer = snap.likes;
  st.likesInFlight = 0;
  renderLikes();
  st.slowMode = snap.slow_mode || 0;
  ui.comments.replaceChildren();
  seenComments.clear();
  addComments(snap.recent_comments || []);
  setPinned(snap.pinned);
  showPageError('');
  refreshInputs();
  if (st.slowMode) commentHint(`Slow mode: one comment every ${st.slowMode} s.`);
  st.media = { live: false, playout_delay_ms: 0 };
  setRoomState(snap.state);
  if (snap.link) onLink(snap.link);
  media.onMedia(snap.media || { live: false, playout_delay_ms: 0 });
  if (st.orderPending) sendOrder();
}

function onMessage(msg) {
  switch (msg.type) {
    case 'tick':
      if (msg.comments?.length) addComments(msg.comments);
      if (msg.likes) {
        st.likesServer = msg.likes.total;
        st.likesInFlight = 0;
        renderLikes();
      }
      if (typeof msg.online === 'number') ui.online.textContent = formatCount(msg.online);
      for (const [id, s] of Object.entries(msg.sales || {})) onSaleStock(id, s.remaining);
      break;
    case 'pinned':
      setPinned(msg.comment);
      break;
    case 'room_state':
      setRoomState(msg.state);
      break;
    case 'slow_mode':
      st.slowMode = msg.seconds;
      commentHint(msg.seconds ? `Slow mode: one comment every ${msg.seconds} s.` : 'Slow mode is off.');
      break;
    case 'moderation':
      onModeration(msg);
      break;
    case 'link':
      onLink(msg.link);
      break;
    case 'sale':
      onSaleStock(msg.sale_id, msg.remaining, msg.state);
      break;
    case 'media':
      media.onMedia(msg);
      break;
    case 'rtc_answer':
      media.onAnswer(msg);
      break;
    case 'error':
      if (!media.onError(msg) && msg.id === undefined) lockstep.errors.push(msg);
      break;
    default:
      break;
  }
}

function onModeration(msg) {
  const me = st.you && st.you.user === msg.user;
  if (msg.action === 'comments_cleared') {
    for (const li of ui.comments.querySelectorAll('li[data-user]')) if (li.dataset.user === msg.user) li.remove();
  } else if (msg.action === 'muted' && me) {
    const until = msg.until ? new Date(msg.until - sock.offsetMs).toLocaleTimeString() : 'further notice';
    commentHint(`You are muted until ${until}.`, true);
  } else if (msg.action === 'unmuted' && me) {
    commentHint('You can comment again.');
  } else if (msg.action === 'banned' && me) {
    st.final = { reason: 'banned', message: 'You were removed from this room' };
    media.close();
    refreshInputs();
    renderStage();
  }
}

function onStatus(status, detail) {
  if (status === 'reconnecting') {
    if (detail.error?.name === 'room_not_found') {
      st.you = null;
      setRoomState('connecting');
      st.final = null;
      ui.stageMessage.textContent = 'This room is not open yet';
      ui.overlay.dataset.reason = 'not-open';
      ui.stageDetail.textContent = 'The page joins as soon as the anchor opens it.';
    } else if (!st.final) {
      media.close();
      showPageError('Connection lost. Reconnecting…');
    }
    return;
  }
  if (status !== 'closed') return;
  media.close();
  if (st.final) return;
  if (detail.code === 4003) st.final = { reason: 'banned', message: 'You were removed from this room' };
  else if (detail.error?.name === 'room_ended' || detail.code === 1000) {
    st.roomState = 'ended';
    lockstep.state = 'ended';
    st.final = { reason: 'ended', message: 'This live has ended', detail: 'Thanks for watching!' };
  } else {
    const message = detail.error ? describeError(detail.error) : `Disconnected (${detail.code}).`;
    st.final = { reason: 'refused', message };
    showPageError(message);
  }
  refreshInputs();
  refreshCard();
  renderStage();
}

// ---------------------------------------------------------------- start

if (!room) {
  st.final = { reason: 'refused', message: 'No room in this address' };
  showPageError('This page lives at /rooms/{room}.');
  renderStage();
} else {
  ui.title.textContent = room;
  sock = new RoomSocket({ path: `/ws/rooms/${encodeURIComponent(room)}`, token, onWelcome, onMessage, onStatus });
  sock.start();
  refreshInputs();
  renderStage();
}
