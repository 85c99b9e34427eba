#!/usr/bin/env node
// tests/peers/socketio/server.mjs — the Socket.IO peer of the benchmarks:
// one process of a typical Socket.IO deployment (socket.io 4 on Node,
// rooms shared between processes through the Redis adapter), speaking the
// events lectern-load --protocol socketio plays its scenarios with.
//
//   node tests/peers/socketio/server.mjs [--port P] [--redis URL] [--host H]
//
// Options (or PEER_PORT, PEER_REDIS_URL, PEER_HOST in the environment):
//   --port P      listen port (default 3000)
//   --redis URL   the Redis every process of the deployment shares
//                 (default redis://127.0.0.1:6379)
//   --host H      listen address (default 127.0.0.1: load stays on this machine)
//
// Events (namespace "/", WebSocket transport only, as a deployment behind a
// load balancer without sticky sessions runs it):
//   join  (room, ack)   join room, then acknowledge — the generator waits for
//                       the ack as it waits for a STOMP RECEIPT
//   leave (room, ack)   leave room, then acknowledge
//   pub   (room, body)  emit `m` (body) to every member of room in every
//                       process, the sender excluded (publishers are not
//                       members in the scenarios, as in STOMP's)
// GET /healthz answers 200 once Redis is connected (haproxy's check, the
// tests' readiness). SIGTERM or SIGINT closes every connection, the adapter's
// Redis clients and the listener, then exits 0.
import http from 'node:http';
import { parseArgs } from 'node:util';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';

const usage = 'usage: server.mjs [--port P] [--redis URL] [--host H]';
let opts;
try {
  opts = parseArgs({
    options: {
      port: { type: 'string', default: process.env.PEER_PORT || '3000' },
      redis: { type: 'string', default: process.env.PEER_REDIS_URL || 'redis://127.0.0.1:6379' },
      host: { type: 'string', default: process.env.PEER_HOST || '127.0.0.1' },
      help: { type: 'boolean', short: 'h' },
    },
  }).values;
} catch (e) {
  console.error(`${e.message}\n${usage}`);
  process.exit(2);
}
if (opts.help) {
  console.log(usage);
  process.exit(0);
}
const port = Number(opts.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`bad --port ${opts.port}\n${usage}`);
  process.exit(2);
}

// Two clients, as the adapter requires: a subscribed connection cannot
// publish. Errors are logged, not fatal: the client reconnects by itself.
const pub = createClient({ url: opts.redis });
const sub = pub.duplicate();
for (const [name, c] of [['pub', pub], ['sub', sub]])
  c.on('error', (e) => console.error(`socketio-peer: redis ${name}: ${e.message}`));
await Promise.all([pub.connect(), sub.connect()]);

const httpServer = http.createServer((req, res) => {
  res.writeHead(req.url === '/healthz' ? 200 : 404, { 'content-type': 'text/plain' });
  res.end(req.url === '/healthz' ? 'ok\n' : 'not found\n');
});
const io = new Server(httpServer, {
  transports: ['websocket'],
  serveClient: false,
  adapter: createAdapter(pub, sub),
});

io.on('connection', (socket) => {
  socket.on('join', (room, ack) => {
    if (typeof room !== 'string') return;
    socket.join(room);
    if (typeof ack === 'function') ack();
  });
  socket.on('leave', (room, ack) => {
    if (typeof room !== 'string') return;
    socket.leave(room);
    if (typeof ack === 'function') ack();
  });
  socket.on('pub', (room, body) => {
    if (typeof room !== 'string') return;
    socket.to(room).emit('m', body);
  });
});

httpServer.listen(port, opts.host, () => {
  console.log(`socketio-peer: listening on ${opts.host}:${port} (pid ${process.pid}, redis ${opts.redis})`);
});

let stopping = false;
async function stop(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`socketio-peer: ${signal}, closing`);
  // io.close() disconnects every socket and closes the HTTP listener.
  await new Promise((resolve) => io.close(() => resolve()));
  await Promise.allSettled([pub.close(), sub.close()]);
  process.exit(0);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
