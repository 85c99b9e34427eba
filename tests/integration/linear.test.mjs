// Linear-time input: what a frame dripped in the smallest pieces costs the
// server. The frame is the worst legal CONNECT (60 header lines of 4,000
// bytes, ~240 KB, within the default stomp.max_* limits) and it goes out two
// ways: as 240,000 one-byte WebSocket frames, and as one WebSocket message
// written to a raw TCP socket one byte per write (the test does the
// WebSocket handshake and the masking itself; Nagle is off, so each write is
// its own segment). Each time the server's CPU (every thread's run time,
// /proc/<pid>/task/*/schedstat) from the first byte to the answer is measured.
//
// What keeps it small: the STOMP parser resumes its scan instead of
// re-scanning what it has buffered (a re-scan costs seconds here: the work
// grows with the square of the frame); reads are paced (stomp.drip_pieces,
// SO_RCVLOWAT) so the server wakes once per 4 KiB, not once per byte
// (unpaced, each wakeup costs ~3 us of kernel and lws work: ~0.8 s for the
// drip even with a linear parser); and a frame may span at most
// stomp.max_frame_pieces (256) WebSocket frames, because libwebsockets'
// own work per WebSocket frame (~1,300 instructions in lws 4.1.6, ~0.25 us)
// is the floor no parser can lower: 240,000 of them are ~60 ms.
//
// Budgets: 50 ms for the drip with the default configuration, either way
// (one-byte WebSocket frames end in ERROR "Frame in too many pieces",
// one-byte TCP writes in CONNECTED). With the piece limit off, the whole
// drip of one-byte WebSocket frames must still complete in 50 ms plus 0.5 us
// per WebSocket frame (lws's share, measured with perf and callgrind;
// docs/security.md): the parser stays linear without the limit's help.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import WebSocket from 'ws';
import { cpuMs, metric, parseFrames, startServer, waitFor } from './helpers.mjs';

const CPU_BUDGET_MS = 50;
const LWS_US_PER_WS_FRAME = 0.5;
// libwebsockets' cost per read of websocket.rx_buffer + 16 bytes (a system
// call, a pass through its service loop). Under ASan here, the drip below
// cost 87-109 ms of server CPU in reads of 256 + 16 bytes and 153-200 ms in
// reads of 64 + 16, for ~15,600 more reads: ~4.5 us each.
const LWS_US_PER_READ = 4.5;
const RX_BUFFER = 64;
// A client's one-byte WebSocket frame on the wire: 2 header bytes, a 4-byte
// mask, the byte.
const WIRE_BYTES_PER_1B_FRAME = 7;
let server, uncapped;

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
  uncapped = await startServer({ sets: { 'stomp.connect_timeout_ms': 60000, 'stomp.max_frame_pieces': 0,
    'websocket.rx_buffer': RX_BUFFER } });
});

after(async () => {
  for (const s of [server, uncapped]) {
    const { code } = await s.stop();
    assert.equal(code, 0, `server exit code (logs:\n${s.logs.join('\n')})`);
  }
});

// Send `frame` as one-byte WebSocket frames to srv; resolves with the first
// frame the server answers and the server CPU spent until then.
async function dripWebSocketFrames(srv, frame) {
  const ws = new WebSocket(srv.wsUrl, ['v12.stomp']);
  const got = [];
  ws.on('message', (data) => got.push(Buffer.from(data)));
  ws.on('error', () => {});
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const cpu0 = cpuMs(srv.pid);
  const t0 = Date.now();
  for (let i = 0; i < frame.length && ws.readyState === WebSocket.OPEN; i++) ws.send(frame.subarray(i, i + 1));
  const answer = await waitFor(() => parseFrames(Buffer.concat(got)).frames.find((f) => f.command !== 'HEARTBEAT'),
    { timeout: 60000, what: 'the answer to the dripped CONNECT' });
  // A refusal ends the connection: what the server spends on the rest of
  // the drip until then counts too.
  if (answer.command === 'ERROR')
    await waitFor(() => ws.readyState === WebSocket.CLOSED, { timeout: 15000, what: 'the close after ERROR' });
  const spent = cpuMs(srv.pid) - cpu0;
  ws.terminate();
  return { answer, spent, wall: Date.now() - t0 };
}

test('a 240 KB CONNECT sent as 1-byte WebSocket frames costs the server under 50 ms of CPU: refused past stomp.max_frame_pieces', async (t) => {
  const frame = bigConnect();
  const refused0 = await metric(server.port, 'lectern_frame_pieces_refused_total');
  const { answer, spent, wall } = await dripWebSocketFrames(server, frame);
  t.diagnostic(`${frame.length} one-byte WebSocket frames offered: server CPU ${spent} ms, wall ${wall} ms, ` +
    `answer ${answer.command} ${answer.headers?.message}`);
  assert.equal(answer.command, 'ERROR');
  assert.equal(answer.headers.message, 'Frame in too many pieces');
  assert.ok(spent < CPU_BUDGET_MS, `server CPU ${spent} ms for the drip (budget ${CPU_BUDGET_MS} ms)`);
  assert.equal(await metric(server.port, 'lectern_frame_pieces_refused_total'), refused0 + 1);
  // A frame in a few WebSocket frames (a client that splits large frames,
  // as stompjs's splitLargeFrames does) is fine.
  const ws = new WebSocket(server.wsUrl, ['v12.stomp']);
  const got = [];
  ws.on('message', (data) => got.push(Buffer.from(data)));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  for (let i = 0; i < frame.length; i += 8192) ws.send(frame.subarray(i, i + 8192));
  const ok = await waitFor(() => parseFrames(Buffer.concat(got)).frames.find((f) => f.command !== 'HEARTBEAT'),
    { timeout: 20000, what: 'the answer to the CONNECT in 8 KiB pieces' });
  ws.terminate();
  assert.equal(ok.command, 'CONNECTED', `answer: ${ok.command} ${ok.headers?.message}`);
});

test('with stomp.max_frame_pieces off the whole drip of 1-byte WebSocket frames is linear: 50 ms plus lws\'s per-frame and per-read costs', async (t) => {
  const frame = bigConnect();
  assert.ok(frame.length > 240000);
  const paced0 = await metric(uncapped.port, 'lectern_rx_paced_total');
  const { answer, spent, wall } = await dripWebSocketFrames(uncapped, frame);
  const reads = (frame.length * WIRE_BYTES_PER_1B_FRAME) / (RX_BUFFER + 16);
  const budget = CPU_BUDGET_MS + (frame.length * LWS_US_PER_WS_FRAME + reads * LWS_US_PER_READ) / 1000;
  t.diagnostic(`${frame.length} one-byte WebSocket frames: server CPU ${spent} ms (budget ${budget} ms), wall ${wall} ms`);
  assert.equal(answer.command, 'CONNECTED', `answer: ${answer.command} ${answer.headers?.message}`);
  assert.ok(spent < budget, `server CPU ${spent} ms for the drip (budget ${budget} ms)`);
  assert.ok(await metric(uncapped.port, 'lectern_rx_paced_total') > paced0, 'the drip was paced');
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

test('before CONNECTED a peer may send one frame and little else: a flood of heart-beat EOLs gets ERROR', async () => {
  const ws = new WebSocket(server.wsUrl, ['v12.stomp']);
  const got = [];
  ws.on('message', (data) => got.push(Buffer.from(data)));
  ws.on('error', () => {});
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  // stomp.max_frame (256 KiB) of EOLs and more, in 4 KiB messages.
  const eols = Buffer.alloc(4096, 0x0a);
  for (let i = 0; i < 70 && ws.readyState === WebSocket.OPEN; i++) ws.send(eols);
  const answer = await waitFor(() => parseFrames(Buffer.concat(got)).frames.find((f) => f.command !== 'HEARTBEAT'),
    { timeout: 20000, what: 'the answer to the EOL flood' });
  ws.terminate();
  assert.equal(answer.command, 'ERROR');
  assert.equal(answer.headers.message, 'Not connected');
});

test('a run of heart-beat EOLs counts as a frame for limits.frame_rate: a flood of one-byte EOL frames is slowed', async (t) => {
  const srv = await startServer({ sets: { 'limits.frame_rate': 1000, 'limits.frame_burst': 100 } });
  try {
    const ws = new WebSocket(srv.wsUrl, ['v12.stomp']);
    const got = [];
    ws.on('message', (data) => got.push(Buffer.from(data)));
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    ws.send('CONNECT\naccept-version:1.2\nhost:/\n\n\0');
    await waitFor(() => parseFrames(Buffer.concat(got)).frames.some((f) => f.command === 'CONNECTED'), { what: 'CONNECTED' });
    const t0 = Date.now();
    for (let i = 0; i < 2100; i++) ws.send('\n');
    ws.send('SUBSCRIBE\nid:0\ndestination:/topic/eols\nreceipt:r1\n\n\0');
    await waitFor(() => parseFrames(Buffer.concat(got)).frames.some((f) => f.command === 'RECEIPT'),
      { timeout: 20000, what: 'the receipt after the EOLs' });
    const took = Date.now() - t0;
    t.diagnostic(`2,100 one-byte EOL frames then a SUBSCRIBE at 1,000 frames/s (burst 100): receipt after ${took} ms`);
    ws.terminate();
    // 2,001 frames beyond the burst at 1,000/s: about 2 s.
    assert.ok(took >= 1800, `the EOL flood was not slowed (${took} ms)`);
    assert.ok(await metric(srv.port, 'lectern_throttled_total') > 0);
  } finally {
    await srv.stop();
  }
});
