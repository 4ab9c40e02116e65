// The viewer page (/rooms/{room}#token=…): the room WebSocket, the stage over the video
// (room state, offline, errors), chat, likes and the pinned comment. The live video
// (WebRTC subscription, playout delay, stall watchdog, layer picker, frame log) is
// `viewer-media.js`; the product link (card, "3, 2, 1" countdown to its server-time
// `reveal_at`, stock, Buy button, orders and their outcomes) is `viewer-sale.js`.
//
// `window.lockstep` exposes the page's state for tests and debugging (see `lockstep`).

import {
  RoomSocket, byTestId, describeError, el, formatCount, roomFromPath, takeTokenFromUrl,
} from './common.js';
import { createViewerMedia } from './viewer-media.js';
import { createViewerSale } from './viewer-sale.js';

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
const token = takeTokenFromUrl();

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
    sale.hideCountdown();
    refreshInputs();
    sale.refresh();
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
    resyncBefore: (serverMs) => sock?.resyncBefore(serverMs),
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

// ---------------------------------------------------------------- product link and buying (viewer-sale.js)

const sale = createViewerSale({
  st,
  lockstep,
  ui: {
    countdown: ui.countdown, card: ui.card, image: ui.image, placeholder: ui.placeholder,
    productTitle: ui.productTitle, productDesc: ui.productDesc, attrs: ui.attrs, price: ui.price,
    listPrice: ui.listPrice, stock: ui.stock, remaining: ui.remaining, stockLabel: ui.stockLabel,
    buy: ui.buy, outcome: ui.outcome,
  },
  channel: {
    send: (msg) => !!sock && sock.send(msg),
    request: (msg) => (sock ? sock.request(msg) : Promise.reject(new Error('not connected'))),
    serverNow: () => sock.serverNow(),
    clockOffsetMs: () => (sock ? sock.offsetMs : 0),
    resyncBefore: (serverMs) => sock?.resyncBefore(serverMs),
  },
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
  if (snap.link) sale.onLink(snap.link);
  media.onMedia(snap.media || { live: false, playout_delay_ms: 0 });
  sale.onWelcome();
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
      for (const [id, s] of Object.entries(msg.sales || {})) sale.onSaleStock(id, s.remaining);
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
      sale.onLink(msg.link);
      break;
    case 'sale':
      sale.onSaleStock(msg.sale_id, msg.remaining, msg.state);
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
  sale.refresh();
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
