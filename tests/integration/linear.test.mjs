// Linear-time input: what a frame dripped in the smallest pieces costs the
// server. The frame is the worst legal CONNECT (60 header lines of 4,000
// bytes, ~240 KB, within the default stomp.max_* limits) and it goes out two
// ways: as 240,000 one-byte WebSocket frames, and as one WebSocket message
// written to a raw TCP socket one byte per write (the test does the
// WebSocket handshake and the masking itself; Nagle is off, so each write is
// its own segment). Each time the server's CPU (utime + stime of its
// process, /proc/<pid>/stat) from the first byte to CONNECTED is measured,
// and the CONNECT must succeed.
//
// Two things keep it small: the STOMP parser resumes its scan instead of
// re-scanning what it has buffered (a re-scan costs seconds here: the work
// grows with the square of the frame), and reads are paced
// (stomp.drip_pieces, SO_RCVLOWAT) so the server wakes once per full read,
// not once per byte (unpaced, each wakeup costs ~3 us of kernel and lws work:
// ~0.8 s for the drip even with a linear parser).
//
// Budgets. 1-byte TCP writes: 50 ms. 1-byte WebSocket frames: 50 ms on top
// of what libwebsockets and the kernel spend on 240,000 WebSocket frames
// whatever the server does with their payload. Measured (perf, callgrind;
// docs/security.md): lws 4.1.6 executes ~1,300 instructions per frame, and
// with paced reads the kernel adds one 256-byte read per ~36 frames;
// together ~0.25 us a frame on the machine the budget was set on (~60 ms for
// the drip, more than 50 ms on its own). The allowance is 0.5 us a frame.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import WebSocket from 'ws';
import { cpuMs, metric, parseFrames, startServer, waitFor } from './helpers.mjs';

const CPU_BUDGET_MS = 50;
const LWS_US_PER_WS_FRAME = 0.5;
let server;

// CONNECT with 60 header lines of exactly 4,000 bytes each.
function bigConnect() {
  let s = 'CONNECT\naccept-version:1.2\nhost:/\n';
  for (let i = 0; i < 60; i++) {
    const name = `x-pad-${String(i).padStart(2, '0')}:`;
    s += name + 'v'.repeat(4000 - name.length) + '\n';
  }
  return Buffer.from(s + '\n\0');
}

before(async () => {
  // The drips take a few seconds of wall time on a busy machine; what they
  // may cost is CPU, which the tests measure.
  server = await startServer({ sets: { 'stomp.connect_timeout_ms': 60000 } });
});

after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, `server exit code (logs:\n${server.logs.join('\n')})`);
});

test('a 240 KB CONNECT sent as 1-byte WebSocket frames costs the server under 50 ms of CPU beyond lws\'s per-frame cost', async (t) => {
  const frame = bigConnect();
  assert.ok(frame.length > 240000);
  const ws = new WebSocket(server.wsUrl, ['v12.stomp']);
  const got = [];
  ws.on('message', (data) => got.push(Buffer.from(data)));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });

  const paced0 = await metric(server.port, 'lectern_rx_paced_total');
  const cpu0 = cpuMs(server.pid);
  const t0 = Date.now();
  for (let i = 0; i < frame.length; i++) ws.send(frame.subarray(i, i + 1));
  const connected = await waitFor(() => parseFrames(Buffer.concat(got)).frames.find((f) => f.command !== 'HEARTBEAT'),
    { timeout: 60000, what: 'the answer to the dripped CONNECT' });
  const spent = cpuMs(server.pid) - cpu0;
  const budget = CPU_BUDGET_MS + (frame.length * LWS_US_PER_WS_FRAME) / 1000;
  t.diagnostic(`${frame.length} one-byte WebSocket frames: server CPU ${spent} ms (budget ${budget} ms), ` +
    `wall ${Date.now() - t0} ms`);
  ws.terminate();
  assert.equal(connected.command, 'CONNECTED', `answer: ${connected.command} ${connected.headers?.message}`);
  assert.ok(spent < budget, `server CPU ${spent} ms for the drip (budget ${budget} ms)`);
  assert.ok(await metric(server.port, 'lectern_rx_paced_total') > paced0, 'the drip was paced');
});

// One masked client frame header (RFC 6455 §5.2) for a payload of n bytes.
function wsHeader(n, opcode, mask) {
  let h;
  if (n < 126) h = Buffer.from([0x80 | opcode, 0x80 | n]);
  else if (n < 65536) { h = Buffer.alloc(4); h[0] = 0x80 | opcode; h[1] = 0x80 | 126; h.writeUInt16BE(n, 2); }
  else { h = Buffer.alloc(10); h[0] = 0x80 | opcode; h[1] = 0x80 | 127; h.writeBigUInt64BE(BigInt(n), 2); }
  return Buffer.concat([h, mask]);
}

// A WebSocket over a raw TCP socket: the handshake, then the caller's bytes.
// Resolves with the socket and a reader of the server's (unmasked) frames.
async function rawWebSocket(port) {
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  const key = crypto.randomBytes(16).toString('base64');
  sock.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n`);
  let inbuf = Buffer.alloc(0);
  let upgraded = false;
  const payload = [];
  sock.on('data', (d) => {
    inbuf = Buffer.concat([inbuf, d]);
    if (!upgraded) {
      const end = inbuf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = inbuf.subarray(0, end).toString();
      assert.match(head, /^HTTP\/1\.1 101/, head);
      inbuf = inbuf.subarray(end + 4);
      upgraded = true;
    }
    for (;;) {   // server frames: FIN/opcode, 7/16/64-bit length, no mask
      if (inbuf.length < 2) return;
      let len = inbuf[1] & 0x7f, off = 2;
      if (len === 126) { if (inbuf.length < 4) return; len = inbuf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (inbuf.length < 10) return; len = Number(inbuf.readBigUInt64BE(2)); off = 10; }
      if (inbuf.length < off + len) return;
      payload.push(inbuf.subarray(off, off + len));
      inbuf = inbuf.subarray(off + len);
    }
  });
  await waitFor(() => upgraded, { what: 'the WebSocket handshake' });
  return { sock, received: () => Buffer.concat(payload) };
}

test('the same CONNECT as one WebSocket message in 1-byte TCP writes costs the server under 50 ms of CPU', async (t) => {
  const frame = bigConnect();
  const mask = crypto.randomBytes(4);
  const masked = Buffer.from(frame);
  for (let i = 0; i < masked.length; i++) masked[i] ^= mask[i & 3];
  const wire = Buffer.concat([wsHeader(frame.length, 0x2, mask), masked]);
  const { sock, received } = await rawWebSocket(server.port);

  const paced0 = await metric(server.port, 'lectern_rx_paced_total');
  const cpu0 = cpuMs(server.pid);
  const t0 = Date.now();
  // One byte per write(2): the next write starts only once the last one
  // has been handed to the kernel.
  for (let i = 0; i < wire.length; i++)
    await new Promise((resolve, reject) => sock.write(wire.subarray(i, i + 1), (e) => (e ? reject(e) : resolve())));
  const connected = await waitFor(() => parseFrames(received()).frames.find((f) => f.command !== 'HEARTBEAT'),
    { timeout: 60000, what: 'the answer to the dripped CONNECT' });
  const spent = cpuMs(server.pid) - cpu0;
  t.diagnostic(`${wire.length} one-byte TCP writes: server CPU ${spent} ms, wall ${Date.now() - t0} ms`);
  sock.destroy();
  assert.equal(connected.command, 'CONNECTED', `answer: ${connected.command} ${connected.headers?.message}`);
  assert.ok(spent < CPU_BUDGET_MS, `server CPU ${spent} ms for the drip (budget ${CPU_BUDGET_MS} ms)`);
  assert.ok(await metric(server.port, 'lectern_rx_paced_total') > paced0, 'the drip was paced');
});
