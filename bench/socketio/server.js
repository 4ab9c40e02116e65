// Socket.IO 4 peer server for the Lockstep fan-out benchmarks (bench/fanout.sh, and
// bench/cluster_fanout.sh with several of these sharing one Redis).
//
// Listens on 127.0.0.1:$PORT (default 13000), WebSocket transport only, no compression.
// A client event `pub` carrying a string is broadcast to every connected socket as
// event `msg` (`io.emit('msg', payload)`), the publisher included. Prints "listening"
// once the port is bound, and exits cleanly on SIGTERM/SIGINT.
//
// Cluster form: with REDIS_URL set (e.g. redis://127.0.0.1:16400), the server uses
// @socket.io/redis-adapter's sharded adapter (`createShardedAdapter`: Redis 7 sharded
// Pub/Sub, SPUBLISH/SSUBSCRIBE, `redis` client v4), so any number of these processes on
// different ports share the namespace: a `pub` on any process reaches every socket on
// every process once (the publishing process delivers locally and SPUBLISHes the packet
// once on `socket.io#/#`; every other process SSUBSCRIBEs there and delivers to its own
// sockets). It prints "listening" only after both Redis connections are up. Without
// REDIS_URL nothing changes: the in-memory adapter, one process.
//
// Run: cd bench/socketio && npm ci && PORT=13000 node server.js
//      REDIS_URL=redis://127.0.0.1:16400 PORT=13001 node server.js   (one of several)
// Env: PORT (13000), PING_INTERVAL_MS (25000), PING_TIMEOUT_MS (20000), REDIS_URL (unset).
'use strict';

const http = require('node:http');
const { Server } = require('socket.io');

const PORT = Number(process.env.PORT || 13000);
const HOST = '127.0.0.1';
const REDIS_URL = process.env.REDIS_URL || '';

const httpServer = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});

const io = new Server(httpServer, {
  transports: ['websocket'],
  // No long-polling upgrade dance and no per-message deflate: every frame is the raw
  // Engine.IO text frame, the same work a Lockstep viewer frame costs.
  allowUpgrades: false,
  perMessageDeflate: false,
  httpCompression: false,
  // Inbound events are tiny (`pub` with a few hundred bytes); refuse anything large.
  maxHttpBufferSize: 64 * 1024,
  // No CORS headers, no client bundle served.
  serveClient: false,
  // Engine.IO heartbeat (defaults 25 s / 20 s): the server sends `2`, the client must
  // answer `3` within pingTimeout. Overridable so check-framing.js can see pings quickly.
  pingInterval: Number(process.env.PING_INTERVAL_MS || 25000),
  pingTimeout: Number(process.env.PING_TIMEOUT_MS || 20000),
});

io.on('connection', (socket) => {
  socket.on('pub', (payload) => {
    if (typeof payload === 'string') {
      io.emit('msg', payload);
    }
  });
});

httpServer.on('error', (err) => {
  console.error(`socket.io server: ${err.message}`);
  process.exit(1);
});

// Cluster form only: the two Redis connections (one publishes, one holds the
// subscriptions, as the adapter requires) and the sharded adapter on top of them.
const redisClients = [];
async function useRedisAdapter(url) {
  const { createClient } = require('redis');
  const { createShardedAdapter } = require('@socket.io/redis-adapter');
  const pubClient = createClient({ url });
  const subClient = pubClient.duplicate();
  for (const [name, c] of [['pub', pubClient], ['sub', subClient]]) {
    // A lost connection is fatal for a benchmark run: messages would silently go missing.
    c.on('error', (err) => {
      console.error(`socket.io server: redis ${name} client: ${err.message}`);
      process.exit(1);
    });
    redisClients.push(c);
  }
  await Promise.all([pubClient.connect(), subClient.connect()]);
  const info = await pubClient.info('server');
  const version = (/redis_version:(\S+)/.exec(info) || [])[1] || '0';
  if (Number(version.split('.')[0]) < 7) {
    throw new Error(`Redis ${version} at REDIS_URL has no sharded Pub/Sub (needs Redis 7+)`);
  }
  io.adapter(createShardedAdapter(pubClient, subClient));
  return `redis sharded adapter ${require('@socket.io/redis-adapter/package.json').version} ` +
    `(redis client ${require('redis/package.json').version}, server ${version})`;
}

async function main() {
  const adapter = REDIS_URL ? await useRedisAdapter(REDIS_URL) : 'in-memory adapter';
  httpServer.listen(PORT, HOST, () => {
    console.log(`listening on ${HOST}:${PORT} (socket.io ${require('socket.io/package.json').version}, ` +
      `node ${process.version}, ${adapter})`);
  });
}

main().catch((err) => {
  console.error(`socket.io server: ${err.message}`);
  process.exit(1);
});

function shutdown() {
  io.close();
  for (const c of redisClients) c.disconnect().catch(() => {});
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
