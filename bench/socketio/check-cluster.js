// Verifies the cluster form of server.js (REDIS_URL set: the sharded Redis adapter): with
// several server processes sharing one Redis, a `pub` sent on ANY process reaches every
// socket on EVERY process exactly once, in order, the publisher included. Raw Engine.IO
// over the `ws` module (as check-framing.js), no socket.io-client. Exits 0 and prints
// "cluster OK" if all holds, else prints what differed and exits 1.
//
// Run against servers started with the same REDIS_URL on different ports:
//   redis-server --port 16400 --bind 127.0.0.1 --save '' --appendonly no --daemonize no &
//   for p in 13100 13101 13102 13103; do
//     REDIS_URL=redis://127.0.0.1:16400 PORT=$p node server.js & done
//   node check-cluster.js 127.0.0.1:13100 127.0.0.1:13101 127.0.0.1:13102 127.0.0.1:13103
// Env: PER_SERVER (sockets per server, 25), ROUNDS (publishes per server, 20).
'use strict';

const WebSocket = require('ws');

const addrs = process.argv.slice(2);
if (addrs.length < 2) {
  console.error('usage: node check-cluster.js 127.0.0.1:PORT 127.0.0.1:PORT [...]');
  process.exit(2);
}
for (const a of addrs) {
  if (!/^127\.0\.0\.1:\d+$/.test(a) && !/^localhost:\d+$/.test(a)) {
    console.error(`only loopback addresses are allowed (${a})`);
    process.exit(2);
  }
}
const PER_SERVER = Number(process.env.PER_SERVER || 25);
const ROUNDS = Number(process.env.ROUNDS || 20);

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
  console.log(`  ok: ${what}`);
}

// Opens one socket, completes the Engine.IO open and the Socket.IO CONNECT of "/", and
// then records every `msg` payload it receives (answering pings).
function client(addr, name) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${addr}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate: false });
    const c = { name, addr, ws, got: [], connected: false };
    const timer = setTimeout(() => reject(new Error(`${name}: no CONNECT ack within 5 s`)), 5000);
    ws.on('error', (e) => reject(new Error(`${name}: ${e.message}`)));
    ws.on('message', (data) => {
      const t = data.toString();
      if (t === '2') { ws.send('3'); return; }
      if (t.startsWith('0{')) { ws.send('40'); return; }
      if (t.startsWith('40')) { c.connected = true; clearTimeout(timer); resolve(c); return; }
      if (t.startsWith('42')) {
        const [event, payload] = JSON.parse(t.slice(2));
        if (event === 'msg') c.got.push(payload);
      }
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  console.log(`${addrs.length} servers, ${PER_SERVER} sockets each, ${ROUNDS} publishes from each server`);
  const clients = [];
  for (const [s, addr] of addrs.entries()) {
    for (let i = 0; i < PER_SERVER; i++) clients.push(await client(addr, `s${s}c${i}`));
  }
  expect(clients.every((c) => c.connected), `${clients.length} sockets connected over ${addrs.length} servers`);
  await sleep(300); // let every adapter's SSUBSCRIBE land before the first publish

  // Round-robin: publish i goes out on server i % n, from that server's first socket.
  const sent = [];
  const publishers = addrs.map((_, s) => clients[s * PER_SERVER]);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [s, p] of publishers.entries()) {
      const payload = `r=${r};from=${s};${'x'.repeat(150)}`;
      sent.push(payload);
      p.ws.send(`42${JSON.stringify(['pub', payload])}`);
    }
    await sleep(5);
  }
  // Everything should arrive well within a second; wait longer to catch duplicates.
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && clients.some((c) => c.got.length < sent.length)) await sleep(50);
  await sleep(1000);

  const bad = clients.filter((c) => c.got.length !== sent.length);
  if (bad.length) {
    for (const c of bad.slice(0, 5)) console.error(`  ${c.name} (${c.addr}) got ${c.got.length} of ${sent.length}`);
  }
  expect(bad.length === 0, `every socket on every server got all ${sent.length} messages, none twice`);
  // Messages from one server arrive in the order that server sent them (across servers
  // the interleaving may differ: each publisher's packets travel their own path).
  const inOrder = clients.every((c) => addrs.every((_, s) => {
    const mine = c.got.filter((p) => p.includes(`;from=${s};`));
    return mine.every((p, i) => p.startsWith(`r=${i};`));
  }));
  expect(inOrder, 'per publishing server, every socket sees its messages in send order');
  const sets = clients.every((c) => new Set(c.got).size === sent.length);
  expect(sets, 'no payload delivered twice to any socket');

  for (const c of clients) { c.ws.send('41'); c.ws.close(1000); }
  console.log('cluster OK');
}

main().then(() => setTimeout(() => process.exit(0), 100), (err) => {
  console.error(`FAILED: ${err.message}`);
  process.exit(1);
});
