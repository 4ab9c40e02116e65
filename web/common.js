// Shared by the viewer and anchor pages: where the page is (room, token), the room
// WebSocket with its join, request/reply matching, clock sync and reconnects, and small
// DOM and WebRTC helpers. No dependencies; loaded as an ES module.

/** The room id in `/rooms/{room}` or `/rooms/{room}/anchor`, or null. */
export function roomFromPath(pathname = location.pathname) {
  const m = /^\/rooms\/([^/]+)(?:\/anchor)?\/?$/.exec(pathname);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return null;
  }
}

/** The token in the URL fragment `#token=<jwt>`, or null. The fragment never reaches the server's logs. */
export function tokenFromHash(hash = location.hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const token = params.get('token');
  return token && token.trim() ? token.trim() : null;
}

/** Takes the token out of the address bar: reads it, then rewrites the URL without it
 * (keeping any other fragment parameters), so it does not stay in the history, in
 * bookmarks, or on a shared screen. */
export function takeTokenFromUrl() {
  const token = tokenFromHash();
  if (token) {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    params.delete('token');
    const rest = params.toString();
    history.replaceState(history.state, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
  }
  return token;
}

/** Absolute ws:// or wss:// URL for a path on this server. */
export function wsUrl(path) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}

/** Client time in ms since the epoch on the monotonic performance clock. Every client
 * timestamp the pages take (clock sync, link display, video frames) uses this clock, so
 * adding the clock offset gives server time consistently. */
export function perfNow() {
  return performance.timeOrigin + performance.now();
}

/** A random idempotency key. */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** Builds an element. `attrs` keys: `class`, `text`, `dataset` (object), `on<event>`
 * (listener), anything else as an attribute (skipped when null/false). Children may be
 * nodes or strings (inserted as text, never as HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** `document.querySelector('[data-testid=…]')`. */
export function byTestId(id, root = document) {
  return root.querySelector(`[data-testid="${id}"]`);
}

/** Shows `text` in a hint line (clears it with ''); `isError` styles it as an error. */
export function hint(node, text, isError = false) {
  node.textContent = text || '';
  node.classList.toggle('error', !!isError);
}

/** Formats cents as a price. */
export function formatPrice(cents) {
  return `$${(Number(cents) / 100).toFixed(2)}`;
}

/** Formats a count compactly (1.2k, 3.4M). */
export function formatCount(n) {
  n = Number(n) || 0;
  if (n < 10000) return String(n);
  if (n < 1e6) return `${(n / 1000).toFixed(n < 1e5 ? 1 : 0)}k`;
  return `${(n / 1e6).toFixed(1)}M`;
}

/** Human-readable text for an `error` frame or HTTP error body. */
export function describeError(err) {
  if (!err) return 'Something went wrong.';
  const friendly = {
    unauthorized: 'Your sign-in link is invalid. Open the page with a fresh token.',
    token_expired: 'Your sign-in link has expired. Open the page with a fresh token.',
    forbidden: 'This token is not allowed here.',
    auth_required: 'Sign in to do this.',
    room_not_found: 'This room is not open yet.',
    room_ended: 'This live has ended.',
    room_full: 'The room is full right now. Try again in a moment.',
    rate_limited: 'You are going a bit fast. Try again in a moment.',
    slow_mode: 'Slow mode is on: wait a little before commenting again.',
    muted: 'You are muted for now.',
    banned: 'You were removed from this room.',
    comment_too_long: 'That comment is too long.',
    comment_empty: 'Write something first.',
    comment_filtered: 'That comment contains a blocked word.',
    media_unavailable: 'The anchor is offline.',
    room_not_live: 'The room is not live yet.',
    invalid_sdp: 'The video server could not use this browser\'s offer.',
    too_many_subscribers: 'The video is full right now; retrying shortly.',
    unavailable: 'The server is busy. Try again shortly.',
  };
  const base = friendly[err.name] || err.message || err.name || 'Something went wrong.';
  if (err.retry_after_ms && (err.name === 'rate_limited' || err.name === 'slow_mode' || err.name === 'muted')) {
    return `${base} (${Math.ceil(err.retry_after_ms / 1000)} s)`;
  }
  return base;
}

/** Reads an HTTP error body `{code,name,message}` (or makes one up from the status). */
export async function httpError(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    /* not JSON */
  }
  if (body && typeof body === 'object' && body.name) return { ...body, status: resp.status };
  return { code: 0, name: `http_${resp.status}`, message: `HTTP ${resp.status} ${resp.statusText}`, status: resp.status };
}

/** Resolves when the connection's ICE gathering is complete (non-trickle signalling),
 * or after `timeoutMs` with whatever candidates were gathered by then. */
export function iceGatheringComplete(pc, timeoutMs = 5000) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/** Close codes after which reconnecting cannot help. */
const FINAL_CLOSE = new Set([1000, 1003, 1009, 4003]);

/**
 * A room WebSocket session: connects, joins, keeps a clock offset to the server, matches
 * replies to requests by `id`, and reconnects after an unexpected drop.
 *
 * Callbacks: `onWelcome(msg)` after every (re)join, `onMessage(msg)` for every other
 * server message except `time_sync`, `onStatus(status, detail)` with status one of
 * `connecting`, `open`, `reconnecting`, `closed` (detail: `{code, reason, error}`).
 */
export class RoomSocket {
  constructor({ path, token, title, onWelcome, onMessage, onStatus }) {
    this.path = path;
    this.token = token;
    this.title = title;
    this.onWelcome = onWelcome || (() => {});
    this.onMessage = onMessage || (() => {});
    this.onStatus = onStatus || (() => {});
    this.ws = null;
    this.joined = false;
    this.stopped = false;
    this.nextId = 1;
    this.pending = new Map();
    this.attempt = 0;
    this.joinError = null;
    /** Server time minus client time (perfNow), ms. */
    this.offsetMs = 0;
    this.rttMs = null;
    this.offsetSamples = [];
    this.syncTimer = null;
  }

  /** Server time now, ms since the epoch. */
  serverNow() {
    return perfNow() + this.offsetMs;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  /** Closes for good (no reconnect). */
  stop() {
    this.stopped = true;
    clearInterval(this.syncTimer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, 'closing');
  }

  connect() {
    this.onStatus(this.attempt ? 'reconnecting' : 'connecting', {});
    const ws = new WebSocket(wsUrl(this.path));
    this.ws = ws;
    this.joined = false;
    this.joinError = null;
    ws.addEventListener('open', () => {
      const join = { type: 'join', protocol: 1 };
      if (this.token) join.token = this.token;
      if (this.title) join.title = this.title;
      ws.send(JSON.stringify(join));
    });
    ws.addEventListener('message', (ev) => this.handle(ev.data));
    ws.addEventListener('close', (ev) => this.closed(ev));
  }

  handle(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg.type === 'time_sync') return this.syncSample(msg);
    if (msg.type === 'welcome') {
      this.joined = true;
      this.attempt = 0;
      this.offsetSamples = [];
      this.offsetMs = msg.server_time - perfNow();
      this.onStatus('open', {});
      this.onWelcome(msg);
      this.startSync();
      return;
    }
    if (!this.joined && msg.type === 'error') this.joinError = msg;
    if (msg.id !== undefined && this.pending.has(msg.id)) {
      const { resolve, timer } = this.pending.get(msg.id);
      clearTimeout(timer);
      this.pending.delete(msg.id);
      resolve(msg);
    }
    this.onMessage(msg);
  }

  closed(ev) {
    clearInterval(this.syncTimer);
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new Error('connection closed'));
    }
    this.pending.clear();
    this.joined = false;
    const error = this.joinError;
    // A refused join is final unless the room is just not open yet; a drop is retried.
    let retry = !this.stopped && !FINAL_CLOSE.has(ev.code);
    if (ev.code === 4004 || ev.code === 1008) retry = !this.stopped && error?.name === 'room_not_found';
    if (!retry) {
      this.onStatus('closed', { code: ev.code, reason: ev.reason, error });
      return;
    }
    this.attempt += 1;
    const delay = error?.name === 'room_not_found' ? 3000 : Math.min(10000, 500 * 2 ** Math.min(this.attempt - 1, 5));
    this.onStatus('reconnecting', { code: ev.code, reason: ev.reason, error, delay });
    setTimeout(() => {
      if (!this.stopped) this.connect();
    }, delay);
  }

  /** Sends a message; false when the socket is not joined. */
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.joined) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** Sends `msg` with a fresh `id` and resolves with the reply carrying that id (`ack`,
   * `error`, `order_result`, …). Rejects on timeout or when the socket closes. */
  request(msg, timeoutMs = 15000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (!this.send({ ...msg, id })) {
        reject(new Error('not connected'));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error('no answer from the server'));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  startSync() {
    clearInterval(this.syncTimer);
    // A burst of samples right after joining, then a few every 20 s.
    this.syncBurst(6);
    this.syncTimer = setInterval(() => this.syncBurst(3), 20000);
  }

  syncBurst(n) {
    for (let i = 0; i < n; i++) setTimeout(() => this.send({ type: 'time_sync', t0: perfNow() }), i * 120);
  }

  /** A few more clock-sync exchanges before server time `serverMs` (a reveal), at a
   * random moment in the first half of the time left, so a room's viewers do not all
   * ask at once. The best exchange of all (smallest round trip) keeps winning. */
  resyncBefore(serverMs) {
    const left = serverMs - this.serverNow();
    if (left < 600) return;
    setTimeout(() => this.syncBurst(3), Math.random() * (left / 2 - 300));
  }

  syncSample({ t0, t1, t2 }) {
    const t3 = perfNow();
    const rtt = t3 - t0 - (t2 - t1);
    const offset = (t1 - t0 + (t2 - t3)) / 2;
    this.offsetSamples.push({ rtt, offset });
    if (this.offsetSamples.length > 12) this.offsetSamples.shift();
    let best = this.offsetSamples[0];
    for (const s of this.offsetSamples) if (s.rtt < best.rtt) best = s;
    this.offsetMs = best.offset;
    this.rttMs = best.rtt;
  }
}
