// The anchor console (/rooms/{room}/anchor#token=<anchor token>): going live (control
// channel `go_live`, then publishing), pause and end, live counters and the anchor's own
// messages ("Say something"). The camera preview and WHIP publishing with simulcast are
// `anchor-publish.js`; the room's sales with Drop link / Close sale, the sold counter and
// the link countdown are `anchor-sales.js`; the comment list and moderation are
// `anchor-moderation.js`.
//
// `window.lockstep` exposes the page's state for tests and debugging.

import {
  RoomSocket, byTestId, describeError, formatCount, hint, roomFromPath, takeTokenFromUrl,
} from './common.js';
import { createAnchorModeration } from './anchor-moderation.js';
import { createPublisher } from './anchor-publish.js';
import { createAnchorSales } from './anchor-sales.js';

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

const room = roomFromPath();
const token = takeTokenFromUrl();

const st = {
  roomState: 'connecting',
  joined: false,
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
  sales.refresh();
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

// ---------------------------------------------------------------- sales (anchor-sales.js)

const sales = createAnchorSales({
  room,
  token,
  st,
  lockstep,
  ui: { sales: ui.sales, salesHint: ui.salesHint, linkStatus: ui.linkStatus, sold: ui.sold, countdown: ui.countdown },
  channel: {
    control,
    serverNow: () => sock.serverNow(),
    clockOffsetMs: () => sock?.offsetMs || 0,
  },
});

// ---------------------------------------------------------------- comments and moderation (anchor-moderation.js)

const moderation = createAnchorModeration({
  ui: {
    comments: ui.comments, pinned: ui.pinned, pinnedText: ui.pinnedText, unpin: ui.unpin,
    moderationHint: ui.moderationHint,
  },
  control,
});

// ---------------------------------------------------------------- say something

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
  moderation.onWelcome(snap);
  showPageError('');
  setRoomState(snap.state);
  sales.load();
}

function onMessage(msg) {
  switch (msg.type) {
    case 'tick':
      if (msg.comments?.length) moderation.addComments(msg.comments);
      if (msg.likes) {
        lockstep.likes = msg.likes.total;
        ui.likes.textContent = formatCount(msg.likes.total);
      }
      if (typeof msg.online === 'number') {
        lockstep.online = msg.online;
        ui.online.textContent = formatCount(msg.online);
      }
      for (const [id, s] of Object.entries(msg.sales || {})) sales.onSaleStock(id, s.remaining);
      break;
    case 'room_state':
      setRoomState(msg.state);
      break;
    case 'pinned':
      moderation.setPinned(msg.comment);
      break;
    case 'link':
      sales.onLink(msg.link);
      break;
    case 'sale':
      sales.onSale(msg);
      break;
    case 'moderation':
      moderation.onModeration(msg);
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
    if (st.joined && document.visibilityState === 'visible') sales.load();
  }, 5000);
}
