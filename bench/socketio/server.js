// Socket.IO 4 peer server for the Lockstep fan-out benchmark (bench/fanout.sh).
//
// Listens on 127.0.0.1:$PORT (default 13000), WebSocket transport only, no compression.
// A client event `pub` carrying a string is broadcast to every connected socket as
// event `msg` (`io.emit('msg', payload)`), the publisher included. Prints "listening"
// once the port is bound, and exits cleanly on SIGTERM/SIGINT.
//
// Run: cd bench/socketio && npm ci && PORT=13000 node server.js
// Env: PORT (13000), PING_INTERVAL_MS (25000), PING_TIMEOUT_MS (20000).
'use strict';

const http = require('node:http');
const { Server } = require('socket.io');

const PORT = Number(process.env.PORT || 13000);
const HOST = '127.0.0.1';

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

httpServer.listen(PORT, HOST, () => {
  console.log(`listening on ${HOST}:${PORT} (socket.io ${require('socket.io/package.json').version}, node ${process.version})`);
});

function shutdown() {
  io.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
