// Verifies the NATS client protocol as spoken over nats-server's WebSocket listener, the
// framing lockstep-load's nats adapter relies on. Uses the `ws` module from
// bench/socketio/node_modules (run `npm ci` there first). Every step is asserted; exits 0
// and prints "framing OK" if all hold, else prints what differed and exits 1. It also
// reports how the server maps protocol messages onto WebSocket frames.
//
// Run against a nats-server started from bench/nats/nats.conf; pass PING_MS (the
// server's ping_interval in ms, e.g. a copy of the conf with `ping_interval: "1s"`) to
// also check server pings, or 0 to skip that step:
//   node bench/nats/check-framing.js 127.0.0.1:18443 [PING_MS]
'use strict';

const path = require('node:path');
const WebSocket = require(path.join(__dirname, '..', 'socketio', 'node_modules', 'ws'));

const addr = process.argv[2] || '127.0.0.1:18443';
const pingMs = Number(process.argv[3] || 0);
if (!/^(127\.0\.0\.1|localhost):\d+$/.test(addr)) {
  console.error('only a loopback address is allowed');
  process.exit(2);
}
const url = `ws://${addr}`;

// Parses the server's byte stream (frames concatenated) into protocol operations:
// INFO {json}, MSG <subject> <sid> [reply] <size>\r\n<payload>\r\n, PING, PONG, +OK, -ERR.
function parseOps(state) {
  const ops = [];
  for (;;) {
    const eol = state.buf.indexOf('\r\n');
    if (eol < 0) break;
    const line = state.buf.subarray(0, eol).toString();
    if (line.startsWith('MSG ')) {
      const parts = line.split(' ');
      const size = Number(parts[parts.length - 1]);
      const end = eol + 2 + size + 2;
      if (state.buf.length < end) break; // payload not complete yet
      ops.push({
        op: 'MSG', subject: parts[1], sid: parts[2], size,
        payload: state.buf.subarray(eol + 2, eol + 2 + size).toString(),
        trailer: state.buf.subarray(end - 2, end).toString(),
      });
      state.buf = state.buf.subarray(end);
    } else {
      const sp = line.indexOf(' ');
      const op = sp < 0 ? line : line.slice(0, sp);
      ops.push({ op, arg: sp < 0 ? '' : line.slice(sp + 1), line });
      state.buf = state.buf.subarray(eol + 2);
    }
  }
  return ops;
}

function open(name) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const state = { buf: Buffer.alloc(0) };
    const c = {
      name, ws, frames: [], ops: [], waiters: [], infos: [],
      // Next op that is not INFO (the server may send INFO at any time: it is recorded).
      next(ms = 3000) {
        if (this.ops.length) return Promise.resolve(this.ops.shift());
        return new Promise((res, rej) => {
          const t = setTimeout(() => rej(new Error(`${name}: no protocol message within ${ms} ms`)), ms);
          this.waiters.push((o) => { clearTimeout(t); res(o); });
        });
      },
      send(s) { ws.send(s); },
      // Next op that is not a server PING; PINGs met on the way are answered.
      async data(ms = 3000) {
        for (;;) {
          const o = await this.next(ms);
          if (o.op !== 'PING') return o;
          ws.send('PONG\r\n');
        }
      },
    };
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.from(data);
      c.frames.push({ len: buf.length, isBinary, text: buf.toString() });
      state.buf = Buffer.concat([state.buf, buf]);
      for (const o of parseOps(state)) {
        if (o.op === 'INFO') { c.infos.push(JSON.parse(o.arg)); continue; }
        const w = c.waiters.shift();
        if (w) w(o);
        else c.ops.push(o);
      }
    });
    ws.on('error', reject);
    ws.on('open', () => resolve(c));
  });
}

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
  console.log(`  ok: ${what}`);
}

const short = (s) => JSON.stringify(s.length > 100 ? `${s.slice(0, 60)}...${s.slice(-30)}` : s);

async function waitFor(cond, ms, what) {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const CONNECT = 'CONNECT {"verbose":false,"pedantic":false,"protocol":1}\r\n';

async function hello(c) {
  await waitFor(() => c.infos.length > 0, 3000, `${c.name}: INFO`);
  const f = c.frames[0];
  console.log(`${c.name} <- ${short(f.text)} (${f.isBinary ? 'binary' : 'text'} frame)`);
  expect(f.text.startsWith('INFO {') && f.text.endsWith('} \r\n') && f.text.indexOf('\r\n') === f.text.length - 2,
    `${c.name}: first frame is exactly one line "INFO {json} \\r\\n" (note the space before CRLF)`);
  return c.infos[0];
}

async function main() {
  console.log(`connecting to ${url}`);
  const a = await open('A');
  const info = await hello(a);
  console.log(`  server version ${info.version}, proto ${info.proto}, max_payload ${info.max_payload}, headers ${info.headers}`);

  // CONNECT, SUB and a PING in one frame; the PONG proves the SUB is registered.
  const sub = `${CONNECT}SUB room 1\r\nPING\r\n`;
  a.send(sub);
  console.log(`A -> ${JSON.stringify(sub)}`);
  const pong = await a.data();
  const framesAfterConnect = a.frames.slice(1).map((f) => short(f.text));
  console.log(`A <- ${framesAfterConnect.join(' | ')}`);
  expect(pong.op === 'PONG', 'A: PONG (no "+OK" with verbose:false; the SUB is in place)');
  await new Promise((r) => setTimeout(r, 200));
  console.log(`  note: INFO lines received so far on A: ${a.infos.length}` +
    (a.infos.length > 1 ? ' (the server sent a second INFO after CONNECT, in the same frame as the PONG)' : ''));

  const b = await open('B');
  await hello(b);
  const pub = `${CONNECT}PUB room 5\r\nhello\r\n`;
  b.send(pub);
  console.log(`B -> ${JSON.stringify(pub)}`);
  const msg = await a.data();
  const last = a.frames[a.frames.length - 1];
  console.log(`A <- ${short(last.text)}`);
  expect(msg.op === 'MSG' && msg.subject === 'room' && msg.sid === '1' && msg.size === 5 &&
         msg.payload === 'hello' && msg.trailer === '\r\n', 'A: "MSG room 1 5\\r\\nhello\\r\\n"');
  expect(last.text === 'MSG room 1 5\r\nhello\r\n', 'A: that MSG came alone in its own frame');
  console.log(`  note: server frames are ${last.isBinary ? 'BINARY' : 'TEXT'} WebSocket frames`);

  // The server accepts binary client frames as well as text ones.
  b.send(Buffer.from('PUB room 6\r\nbinary\r\n'));
  const binMsg = await a.data();
  expect(binMsg.op === 'MSG' && binMsg.payload === 'binary', 'a PUB sent in a binary client frame is delivered');

  // A PUB split over two client frames is reassembled by the server (it reads a stream).
  b.send('PUB room 5\r\nhel');
  b.send('lo\r\n');
  const split = await a.data();
  expect(split.op === 'MSG' && split.payload === 'hello', 'a PUB split across two client frames is delivered whole');

  // Burst: 1000 PUBs of 200 bytes, one client frame each, sent back to back. Count the
  // frames the subscriber gets: fewer frames than messages means the server packs
  // several MSGs into one frame.
  const n = 1000;
  const body = 'x'.repeat(200);
  const firstFrame = a.frames.length;
  for (let i = 0; i < n; i++) {
    const p = `${String(i).padStart(4, '0')}${body.slice(4)}`;
    b.send(`PUB room ${p.length}\r\n${p}\r\n`);
  }
  let inOrder = true;
  for (let i = 0; i < n; i++) {
    const m = await a.data(5000);
    if (m.op !== 'MSG' || m.payload !== `${String(i).padStart(4, '0')}${body.slice(4)}`) inOrder = false;
  }
  expect(inOrder, `${n} messages arrive in order, byte-exact`);
  const burst = a.frames.slice(firstFrame);
  const partial = burst.filter((f) => !f.text.startsWith('MSG ') || !f.text.endsWith('\r\n')).length;
  const sizes = burst.map((f) => f.len);
  console.log(`  burst: ${n} messages arrived in ${burst.length} WebSocket frames ` +
    `(min ${Math.min(...sizes)} B, max ${Math.max(...sizes)} B per frame; ` +
    `${partial} frames do not start with "MSG " or do not end with "\\r\\n")`);
  const packs = burst.length < n;

  // One big message (100 KiB): one frame or several?
  const big = 'y'.repeat(100 * 1024);
  const bigFirst = a.frames.length;
  b.send(`PUB room ${big.length}\r\n${big}\r\n`);
  const bm = await a.data(5000);
  expect(bm.op === 'MSG' && bm.payload === big, `a ${big.length}-byte message arrives byte-exact`);
  const bigFrames = a.frames.slice(bigFirst);
  console.log(`  big: one ${big.length}-byte MSG arrived in ${bigFrames.length} WebSocket frame(s) (${bigFrames.map((f) => f.len).join(', ')} B)`);

  // Client PING gets PONG.
  b.send('PING\r\n');
  const bp = await b.data();
  expect(bp.op === 'PONG', 'client "PING\\r\\n" is answered "PONG\\r\\n"');

  if (pingMs > 0) {
    const p = await a.next(pingMs * 3 + 2000);
    expect(p.op === 'PING', 'server sends "PING\\r\\n" every ping_interval');
    a.send('PONG\r\n');
    const p2 = await a.next(pingMs * 3 + 2000);
    expect(p2.op === 'PING', 'A answered "PONG\\r\\n" and is pinged again (still connected)');
    a.send('PONG\r\n');
  }

  // Anything unexpected (e.g. -ERR) left in the queues?
  const leftovers = [...a.ops, ...b.ops].filter((o) => o.op !== 'PING');
  expect(leftovers.length === 0, `no other protocol messages (${leftovers.map((o) => o.line || o.op).join(', ') || 'none'})`);

  console.log(`RESULT: ${packs ? 'several MSGs can share one WebSocket frame' : 'one MSG per frame in this burst'}; ` +
    `${partial > 0 ? 'MSGs were split across frames' : 'no MSG was split across frames in this run'}`);
  a.ws.close(1000);
  b.ws.close(1000);
  console.log('framing OK');
}

main().then(() => setTimeout(() => process.exit(0), 100), (err) => {
  console.error(`FAILED: ${err.message}`);
  process.exit(1);
});
