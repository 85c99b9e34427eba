// Write coalescing (websocket.write_delay_ms): with a delay, the MESSAGEs
// a connection gets in quick succession share WebSocket messages, and none
// waits longer than the delay; without one, each MESSAGE at a slow pace is
// a WebSocket message of its own; the server's own frames never wait and
// take what waits with them. Raw `ws` subscribers count WebSocket messages
// against the STOMP frames they carry; a @stomp/stompjs one checks that a
// real client reads the packed messages.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import {
  metric, parseFrames, rawClient, sleep, startServer, stompClient, subscribed, waitFor,
} from './helpers.mjs';

const DELAY = 50;
// How much later than the delay allows a message may arrive: the server's
// and this process's own lateness on a busy machine (sanitizer build).
const SLACK = 40;
// The server for the frames that must not wait: a longer delay, so that
// "did not wait" is far from "waited".
const LONG = 100;

let plain, delayed, long;
const open = [];

before(async () => {
  [plain, delayed, long] = await Promise.all([
    startServer({ sets: { 'websocket.write_delay_ms': 0 } }),
    // One tick a second: were the delay's own timer missing, a waiting
    // message would go out with the next tick (up to a second later) and
    // the bound below would catch it.
    startServer({ sets: { 'websocket.write_delay_ms': DELAY, 'heartbeat.hz': 1 } }),
    startServer({ sets: { 'websocket.write_delay_ms': LONG, 'heartbeat.hz': 1 } }),
  ]);
});

after(async () => {
  for (const c of open) c.close();
  for (const s of [plain, delayed, long]) {
    if (!s) continue;
    const { code } = await s.stop();
    assert.equal(code, 0, `server exit code (logs:\n${s.logs.join('\n')})`);
  }
});

let rooms = 0;
const newRoom = () => `wdelay-${process.pid}-${++rooms}`;

// A raw subscriber to room: `arrivals` holds each WebSocket message it got
// after subscribing (when, and its parsed frames); `at[body]` when the
// MESSAGE with that body arrived.
async function rawSubscriber(server, room) {
  const c = await rawClient(server.wsUrl);
  open.push(c);
  await c.connect();
  c.frame('SUBSCRIBE', { id: 's', destination: `/topic/${room}`, receipt: 'sub' });
  await receipt(c, 'sub');
  c.arrivals = [];
  c.at = {};
  c.ws.on('message', (data) => {
    const now = performance.now();
    const bytes = Buffer.isBuffer(data) ? data : Buffer.concat(data);
    const { frames } = parseFrames(bytes);
    c.arrivals.push({ at: now, frames });
    for (const f of frames) if (f.command === 'MESSAGE') c.at[f.body.toString()] = now;
  });
  return c;
}

function receipt(c, id) {
  return waitFor(() => c.frames.find((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === id),
    { interval: 1, what: `RECEIPT ${id}` });
}

// A raw publisher to room; publish(body) resolves, with the time the SEND
// went out, once its RECEIPT is in (the message is then queued for every
// local subscriber).
async function rawPublisher(server, room) {
  const c = await rawClient(server.wsUrl);
  open.push(c);
  await c.connect();
  let n = 0;
  c.publish = async (body) => {
    const id = `p${++n}`;
    const at = performance.now();
    c.frame('SEND', { destination: `/topic/${room}`, receipt: id, 'content-type': 'text/plain' }, body);
    await receipt(c, id);
    return at;
  };
  return c;
}

// The WebSocket messages that carried MESSAGE frames, and how many each.
const messageWrites = (c) => c.arrivals
  .map((a) => a.frames.filter((f) => f.command === 'MESSAGE').length)
  .filter((n) => n > 0);

describe('websocket.write_delay_ms', () => {
  test('without a delay, each MESSAGE at a slow pace is a WebSocket message of its own', async () => {
    const room = newRoom();
    const sub = await rawSubscriber(plain, room);
    const pub = await rawPublisher(plain, room);
    const n = 10;
    for (let i = 0; i < n; i++) {
      await pub.publish(`m${i}`);
      await sleep(10);
    }
    await waitFor(() => Object.keys(sub.at).length === n, { what: `${n} messages` });
    assert.deepEqual(messageWrites(sub), Array(n).fill(1));
    assert.equal(await metric(plain.port, 'lectern_ws_writes_delayed_total'), 0);
  });

  test('with a delay, MESSAGEs in quick succession share WebSocket messages, none held longer than the delay', async () => {
    const room = newRoom();
    const sub = await rawSubscriber(delayed, room);
    const { client } = await stompClient(delayed.wsUrl);
    const js = await subscribed(client, `/topic/${room}`);
    const pub = await rawPublisher(delayed, room);
    const n = 20, sent = {};
    for (let i = 0; i < n; i++) {
      sent[`m${i}`] = await pub.publish(`m${i}`);
      await sleep(10);
    }
    await waitFor(() => Object.keys(sub.at).length === n, { what: `${n} messages` });
    const writes = messageWrites(sub);
    const times = Object.values(sub.at);
    const span = Math.max(...times) - Math.min(...times);
    assert.equal(writes.reduce((a, b) => a + b, 0), n);
    assert.ok(writes.some((k) => k >= 2), `some WebSocket message carries several MESSAGEs (${writes})`);
    // Writes at least DELAY apart: no more than the span allows (plus the
    // first, plus one for this process's own timing).
    assert.ok(writes.length <= Math.floor(span / DELAY) + 2,
      `${writes.length} writes over ${span.toFixed(0)} ms (${writes})`);
    const held = Object.entries(sent).map(([body, at]) => sub.at[body] - at);
    assert.ok(Math.max(...held) <= DELAY + SLACK, `held at most ${DELAY} ms (+${SLACK}): ${held.map((x) => x.toFixed(0))}`);
    assert.ok(await metric(delayed.port, 'lectern_ws_writes_delayed_total') > 0);
    // @stomp/stompjs reads every frame of a packed message, in order.
    const got = await js.next(n);
    assert.deepEqual(got.map((m) => m.body), Object.keys(sent));
    await client.deactivate();
  });

  test('a MESSAGE right after a write waits for the delay, not longer; one after a quiet spell goes at once', async () => {
    const room = newRoom();
    const sub = await rawSubscriber(delayed, room);
    const pub = await rawPublisher(delayed, room);
    for (let round = 0; round < 5; round++) {
      await sleep(2 * DELAY);            // quiet: the next message does not wait
      const a = `a${round}`, b = `b${round}`;
      const sentA = await pub.publish(a);
      await waitFor(() => sub.at[a], { interval: 1, what: a });
      const sentB = await pub.publish(b);
      await waitFor(() => sub.at[b], { interval: 1, timeout: 3000, what: b });
      assert.ok(sub.at[a] - sentA <= SLACK, `${a} after a quiet spell arrived in ${(sub.at[a] - sentA).toFixed(0)} ms`);
      assert.ok(sub.at[b] - sub.at[a] >= DELAY / 2, `${b} waited (${(sub.at[b] - sub.at[a]).toFixed(0)} ms after ${a})`);
      assert.ok(sub.at[b] - sentB <= DELAY + SLACK, `${b} held ${(sub.at[b] - sentB).toFixed(0)} ms`);
    }
  });

  test('a RECEIPT does not wait, and takes the MESSAGE waiting before it along, in order', async () => {
    const room = newRoom();
    const sub = await rawSubscriber(long, room);
    const pub = await rawPublisher(long, room);
    await pub.publish('a');
    await waitFor(() => sub.at.a, { interval: 1, what: 'a' });
    await pub.publish('b');             // queued for sub, waiting
    const asked = performance.now();
    // BEGIN's RECEIPT is written as soon as the frame is read (no
    // operation to wait for): had it waited, it would come at a's write
    // plus LONG.
    sub.frame('BEGIN', { transaction: 't', receipt: 'now' });
    await receipt(sub, 'now');
    const w = sub.arrivals.find((x) => x.frames.some((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'now'));
    assert.ok(w.at - asked < LONG / 2, `RECEIPT after ${(w.at - asked).toFixed(0)} ms`);
    assert.deepEqual(w.frames.map((f) => (f.command === 'MESSAGE' ? f.body.toString() : f.command)), ['b', 'RECEIPT']);
  });

  test('DISCONNECT: the MESSAGE waiting, the RECEIPT, then the close, without waiting for the delay', async () => {
    const room = newRoom();
    const sub = await rawSubscriber(long, room);
    const pub = await rawPublisher(long, room);
    await pub.publish('a');
    await waitFor(() => sub.at.a, { interval: 1, what: 'a' });
    await pub.publish('b');
    const asked = performance.now();
    sub.frame('DISCONNECT', { receipt: 'bye' });
    await sub.waitClosed();
    // The close handshake itself takes its time: what must not wait is
    // the write of what was queued.
    const w = sub.arrivals.find((x) => x.frames.some((f) => f.command === 'RECEIPT'));
    assert.ok(w.at - asked < LONG / 2, `RECEIPT after ${(w.at - asked).toFixed(0)} ms`);
    assert.deepEqual(w.frames.map((f) => (f.command === 'MESSAGE' ? f.body.toString() : f.command)), ['b', 'RECEIPT']);
    assert.equal(sub.frames.at(-1).command, 'RECEIPT', 'nothing after the RECEIPT but the close');
    assert.equal(sub.closed.code, 1000);
  });
});
