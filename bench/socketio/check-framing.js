// Verifies, over a raw WebSocket (the `ws` module socket.io itself depends on, no
// socket.io-client), the Engine.IO 4 / Socket.IO 5 framing that lockstep-load's
// socketio adapter relies on. Every step is asserted; exits 0 and prints "framing OK"
// if all hold, else prints what differed and exits 1.
//
// Run against a server started with fast heartbeats so the ping step takes ~1 s:
//   cd bench/socketio && PORT=13000 PING_INTERVAL_MS=1000 PING_TIMEOUT_MS=1000 node server.js &
//   node check-framing.js 127.0.0.1:13000
'use strict';

const WebSocket = require('ws');

const addr = process.argv[2] || '127.0.0.1:13000';
if (!/^127\.0\.0\.1:\d+$/.test(addr) && !/^localhost:\d+$/.test(addr)) {
  console.error('only a loopback address is allowed');
  process.exit(2);
}
const url = `ws://${addr}/socket.io/?EIO=4&transport=websocket`;

// A socket whose text frames are queued so a step can await "the next frame".
function open(name) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const frames = [];
    const waiters = [];
    ws.on('message', (data, isBinary) => {
      const f = { text: data.toString(), isBinary };
      const w = waiters.shift();
      if (w) w(f);
      else frames.push(f);
    });
    ws.on('error', reject);
    ws.on('open', () => {
      const c = {
        name,
        ws,
        frames,
        next(ms = 3000) {
          if (frames.length) return Promise.resolve(frames.shift());
          return new Promise((res, rej) => {
            const t = setTimeout(() => rej(new Error(`${name}: no frame within ${ms} ms`)), ms);
            waiters.push((f) => { clearTimeout(t); res(f); });
          });
        },
        send(s) { ws.send(s); },
        // Next frame that is not a heartbeat; pings met on the way are answered.
        async data(ms = 3000) {
          for (;;) {
            const f = await this.next(ms);
            if (f.text !== '2') return f;
            ws.send('3');
          }
        },
      };
      resolve(c);
    });
  });
}

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
  console.log(`  ok: ${what}`);
}

async function handshake(c) {
  const open = await c.next();
  console.log(`${c.name} <- ${open.text}`);
  expect(!open.isBinary && open.text.startsWith('0{'), `${c.name}: first frame is text "0{...}" (Engine.IO open)`);
  const hs = JSON.parse(open.text.slice(1));
  expect(typeof hs.sid === 'string' && typeof hs.pingInterval === 'number' &&
         typeof hs.pingTimeout === 'number' && typeof hs.maxPayload === 'number' &&
         Array.isArray(hs.upgrades),
         `${c.name}: open JSON has sid, upgrades, pingInterval, pingTimeout, maxPayload`);
  c.send('40');
  console.log(`${c.name} -> 40`);
  const conn = await c.next();
  console.log(`${c.name} <- ${conn.text}`);
  expect(conn.text.startsWith('40{') && typeof JSON.parse(conn.text.slice(2)).sid === 'string',
         `${c.name}: "40{"sid":...}" (Socket.IO CONNECT ack for namespace "/")`);
  return hs;
}

async function main() {
  console.log(`connecting to ${url}`);
  const a = await open('A');
  const b = await open('B');
  const hs = await handshake(a);
  await handshake(b);

  // One publish reaches every socket, the publisher included.
  a.send('42["pub","hello"]');
  console.log('A -> 42["pub","hello"]');
  for (const c of [a, b]) {
    const f = await c.data();
    console.log(`${c.name} <- ${f.text}`);
    expect(f.text === '42["msg","hello"]', `${c.name}: 42["msg","hello"] (broadcast reaches publisher too)`);
  }

  // The payload is a JSON string inside a JSON array: quotes and backslashes arrive escaped.
  a.send(JSON.stringify(['pub', 'q"b\\s']).replace(/^/, '42'));
  const esc = await b.data();
  console.log(`B <- ${esc.text}`);
  expect(esc.text === '42["msg","q\\"b\\\\s"]', 'payload is JSON-escaped in the frame');
  await a.data();

  // A non-string payload is ignored by server.js (nothing is broadcast).
  a.send('42["pub",123]');

  // Many publishes in a burst: each arrives as its own WebSocket frame (no packing).
  const burst = 200;
  const payload = 'x'.repeat(200);
  for (let i = 0; i < burst; i++) a.send(`42["pub","${i}:${payload}"]`);
  for (let i = 0; i < burst; i++) {
    const f = await b.data();
    if (f.text !== `42["msg","${i}:${payload}"]`) {
      throw new Error(`burst frame ${i} was ${JSON.stringify(f.text.slice(0, 60))}`);
    }
    await a.data();
  }
  expect(true, `${burst} burst publishes arrive as ${burst} separate frames, in order, one packet each (the 123 was ignored)`);

  // Heartbeat: the server sends "2"; a client answering "3" stays connected, one that
  // does not answer is closed after pingInterval + pingTimeout.
  const waitMs = hs.pingInterval + 2000;
  const p = await a.next(waitMs);
  console.log(`A <- ${p.text}`);
  expect(p.text === '2', 'server ping is the text frame "2"');
  a.send('3');
  console.log('A -> 3');
  const bp = await b.next(waitMs);
  expect(bp.text === '2', 'B also pinged; B does not answer');
  const closed = new Promise((res) => b.ws.on('close', (code) => res(code)));
  const code = await Promise.race([closed, new Promise((r) => setTimeout(() => r(null), hs.pingInterval + hs.pingTimeout + 3000))]);
  expect(code !== null, `B (no pong) closed by the server (close code ${code}; 1005 = no status in the close frame)`);
  expect(a.ws.readyState === WebSocket.OPEN, 'A (answered "3") still open');
  const p2 = await a.next(waitMs);
  expect(p2.text === '2', 'A pinged again after answering');
  a.send('3');

  // Client-initiated close: "41" (Socket.IO disconnect) then close the socket.
  a.send('41');
  a.ws.close(1000);
  console.log('framing OK');
}

main().then(() => setTimeout(() => process.exit(0), 100), (err) => {
  console.error(`FAILED: ${err.message}`);
  process.exit(1);
});
