// An unmodified @stomp/stompjs client against lectern-server: the behaviour a
// RabbitMQ Web-STOMP user relies on, checked end to end.
//
// Every subscription waits for the RECEIPT of its SUBSCRIBE before anything
// is sent to it. A test that something does NOT arrive first proves that
// delivery happened: a later message on the same connection (which the
// server writes in order) must arrive, and only then is the absence checked.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Versions } from '@stomp/stompjs';
import {
  expectReceipt, metric, sleep, startServer, stompClient, subscribed, waitFor,
} from './helpers.mjs';

let server;
const clients = [];

async function connect(options) {
  const c = await stompClient(server.wsUrl, options);
  clients.push(c.client);
  return c;
}

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const c of clients) await c.deactivate().catch(() => {});
  const { code } = await server.stop();
  assert.equal(code, 0, `server exit code (logs:\n${server.logs.join('\n')})`);
});

describe('stompjs client', () => {
  test('CONNECT is answered with CONNECTED carrying version, heart-beat, server and session', async () => {
    const { connected } = await connect();
    assert.equal(connected.headers.version, '1.2');
    assert.equal(connected.headers['heart-beat'], '0,0');
    assert.match(connected.headers.server, /^Lectern\/\d+\.\d+\.\d+$/);
    assert.match(connected.headers.session, /^\d+$/);
  });

  test('a SEND reaches a subscriber with destination, message-id, subscription, content-type and user headers', async () => {
    const { client: sub } = await connect();
    const { client: pub } = await connect();
    const got = await subscribed(sub, '/topic/room-a', { id: 'sub-1' });
    pub.publish({
      destination: '/topic/room-a',
      body: 'hello room',
      headers: { 'content-type': 'text/plain', 'x-note': 'value:with:colons', receipt: 'r-1' },
    });
    const [m] = await got.next(1);
    assert.equal(m.body, 'hello room');
    assert.equal(m.headers.destination, '/topic/room-a');
    assert.equal(m.headers.subscription, 'sub-1');
    assert.equal(m.headers['content-type'], 'text/plain');
    assert.equal(m.headers['x-note'], 'value:with:colons');
    assert.match(m.headers['message-id'], /^\d+-\d+$/);
    assert.equal(m.headers['content-length'], String(Buffer.byteLength('hello room')));
    assert.equal(m.headers.receipt, undefined, 'receipt is not passed through');
  });

  test('two clients in one room both receive every message, in order, with increasing ids', async () => {
    const { client: a } = await connect();
    const { client: b } = await connect();
    const ga = await subscribed(a, '/topic/lecture-101');
    const gb = await subscribed(b, '/topic/lecture-101');
    for (let i = 0; i < 50; i++) a.publish({ destination: '/topic/lecture-101', body: `m${i}` });
    const ma = await ga.next(50);
    const mb = await gb.next(50);
    assert.deepEqual(ma.map((m) => m.body), [...Array(50).keys()].map((i) => `m${i}`));
    assert.deepEqual(mb.map((m) => m.body), ma.map((m) => m.body));
    assert.deepEqual(mb.map((m) => m.headers['message-id']), ma.map((m) => m.headers['message-id']));
    const key = (id) => id.split('-').map(BigInt);
    for (let i = 1; i < ma.length; i++) {
      const [p0, p1] = key(ma[i - 1].headers['message-id']);
      const [c0, c1] = key(ma[i].headers['message-id']);
      assert.ok(c0 > p0 || (c0 === p0 && c1 > p1), 'message ids increase');
    }
  });

  test("the sender's own subscriptions receive its message, once per subscription", async () => {
    const { client } = await connect();
    const g1 = await subscribed(client, '/topic/echo', { id: 's1' });
    const g2 = await subscribed(client, '/topic/echo', { id: 's2' });
    client.publish({ destination: '/topic/echo', body: 'me too' });
    const [m1] = await g1.next(1);
    const [m2] = await g2.next(1);
    assert.equal(m1.headers.subscription, 's1');
    assert.equal(m2.headers.subscription, 's2');
    // A second copy would be written before the next message.
    client.publish({ destination: '/topic/echo', body: 'next' });
    await g1.next(2);
    await g2.next(2);
    assert.deepEqual(g1.messages.map((m) => m.body), ['me too', 'next']);
    assert.deepEqual(g2.messages.map((m) => m.body), ['me too', 'next']);
  });

  test('messages go only to the room they were sent to', async () => {
    const { client } = await connect();
    const ga = await subscribed(client, '/topic/only-a');
    const gb = await subscribed(client, '/topic/only-b');
    client.publish({ destination: '/topic/only-a', body: 'for a' });
    await ga.next(1);
    // Both subscriptions share one connection, written in order: had 'for a'
    // reached only-b, it would come before 'for b'.
    client.publish({ destination: '/topic/only-b', body: 'for b' });
    await gb.next(1);
    assert.deepEqual(gb.messages.map((m) => m.body), ['for b']);
    assert.deepEqual(ga.messages.map((m) => m.body), ['for a']);
  });

  test('receipts are returned for SEND, SUBSCRIBE and UNSUBSCRIBE', async () => {
    const { client } = await connect();
    const seen = [];
    for (const id of ['rs', 'rp', 'ru']) client.watchForReceipt(id, (f) => seen.push(f.headers['receipt-id']));
    const sub = client.subscribe('/topic/receipts', () => {}, { receipt: 'rs' });
    client.publish({ destination: '/topic/receipts', body: 'x', headers: { receipt: 'rp' } });
    sub.unsubscribe({ receipt: 'ru' });
    await waitFor(() => seen.length === 3, { what: 'three receipts' });
    assert.deepEqual(seen.sort(), ['rp', 'rs', 'ru']);
  });

  test('after UNSUBSCRIBE no more messages arrive for that subscription', async () => {
    const { client: sub } = await connect();
    const { client: pub } = await connect();
    const got = await subscribed(sub, '/topic/unsub');
    // The control: a second subscription of the same connection, which stays.
    const control = await subscribed(sub, '/topic/unsub');
    pub.publish({ destination: '/topic/unsub', body: '1' });
    await got.next(1);
    const unsubscribed = expectReceipt(sub, 'unsub-r');
    got.sub.unsubscribe({ receipt: 'unsub-r' });
    await unsubscribed;
    pub.publish({ destination: '/topic/unsub', body: '2' });
    const ctl = await control.next(2);
    assert.deepEqual(ctl.map((m) => m.body), ['1', '2'], 'the other subscription got the second message');
    assert.equal(got.messages.length, 1);
  });

  test('a transaction delivers its SENDs only on COMMIT, in order', async () => {
    const { client: sub } = await connect();
    const { client: pub } = await connect();
    const got = await subscribed(sub, '/topic/tx');
    const tx = pub.begin();
    pub.publish({ destination: '/topic/tx', body: 't1', headers: { transaction: tx.id } });
    pub.publish({ destination: '/topic/tx', body: 't2', headers: { transaction: tx.id } });
    // A SEND outside the transaction, after its two: it arrives, and a
    // transactional one delivered early would have come before it.
    pub.publish({ destination: '/topic/tx', body: 'outside' });
    await got.next(1);
    assert.deepEqual(got.messages.map((m) => m.body), ['outside'], 'nothing before COMMIT');
    tx.commit();
    const ms = await got.next(3);
    assert.deepEqual(ms.map((m) => m.body), ['outside', 't1', 't2']);
  });

  test('an aborted transaction delivers nothing', async () => {
    const { client: sub } = await connect();
    const { client: pub } = await connect();
    const got = await subscribed(sub, '/topic/tx-abort');
    const tx = pub.begin();
    pub.publish({ destination: '/topic/tx-abort', body: 'never', headers: { transaction: tx.id } });
    tx.abort();
    pub.publish({ destination: '/topic/tx-abort', body: 'after' });
    const [m] = await got.next(1);
    assert.equal(m.body, 'after');
    // An aborted transaction can be neither COMMITted nor delivered later:
    // one more message arrives with nothing before it.
    pub.publish({ destination: '/topic/tx-abort', body: 'last' });
    await got.next(2);
    assert.deepEqual(got.messages.map((x) => x.body), ['after', 'last']);
  });

  test('an open transaction is dropped when its client disconnects', async () => {
    const { client: sub } = await connect();
    const { client: pub } = await connect();
    const got = await subscribed(sub, '/topic/tx-drop');
    const conns = await metric(server.port, 'lectern_connections');
    const tx = pub.begin();
    pub.publish({ destination: '/topic/tx-drop', body: 'lost', headers: { transaction: tx.id } });
    await pub.deactivate();
    // The server has closed the publisher's session (and with it the
    // transaction); a message sent after that arrives with nothing before it.
    await waitFor(async () => (await metric(server.port, 'lectern_connections')) === conns - 1,
      { what: 'the publisher gone from the server' });
    sub.publish({ destination: '/topic/tx-drop', body: 'control' });
    await got.next(1);
    assert.deepEqual(got.messages.map((m) => m.body), ['control']);
  });

  test('client and client-individual ack modes carry an ack header and accept ACK and NACK', async () => {
    const { client } = await connect();
    const gc = await subscribed(client, '/topic/acks', { ack: 'client' });
    const gi = await subscribed(client, '/topic/acks', { ack: 'client-individual' });
    client.publish({ destination: '/topic/acks', body: 'a1' });
    client.publish({ destination: '/topic/acks', body: 'a2' });
    const [c1, c2] = await gc.next(2);
    const [i1, i2] = await gi.next(2);
    for (const m of [c1, c2, i1, i2]) assert.ok(m.headers.ack, 'ack header present');
    const receipts = [];
    client.watchForReceipt('ack-r', () => receipts.push('ack'));
    client.watchForReceipt('nack-r', () => receipts.push('nack'));
    c2.ack({ receipt: 'ack-r' });
    i1.nack({ receipt: 'nack-r' });
    i2.ack();
    await waitFor(() => receipts.length === 2, { what: 'ACK/NACK receipts' });
    assert.ok(client.connected, 'still connected after ACK/NACK');
  });

  test('a binary body that is not UTF-8 arrives intact in a binary frame', async () => {
    const { client: sub } = await connect();
    const { client: pub } = await connect();
    const got = await subscribed(sub, '/topic/binary');
    const bytes = new Uint8Array([0, 1, 2, 0xff, 0xfe, 0, 0x80, 10, 13, 0]);
    pub.publish({ destination: '/topic/binary', binaryBody: bytes, headers: { 'content-type': 'application/octet-stream' } });
    const [m] = await got.next(1);
    assert.deepEqual(Array.from(m.binaryBody), Array.from(bytes));
    assert.equal(m.headers['content-type'], 'application/octet-stream');
  });

  test('a large message is delivered intact', async () => {
    const { client: sub } = await connect();
    const { client: pub } = await connect();
    const got = await subscribed(sub, '/topic/large');
    const body = 'é'.repeat(100000); // 200 kB of UTF-8, more than websocket.write_max
    pub.publish({ destination: '/topic/large', body });
    const [m] = await got.next(1);
    assert.equal(m.body.length, body.length);
    assert.equal(m.body, body);
  });

  test('heart-beats are negotiated and keep an idle connection open', async () => {
    const s = await startServer({ sets: { 'heartbeat.send_ms': 100, 'heartbeat.recv_ms': 100 } });
    try {
      const { client, connected } = await stompClient(s.wsUrl, { heartbeatIncoming: 150, heartbeatOutgoing: 120 });
      // Server sends at max(sx=100, cy=150); expects at max(cx=120, sy=100).
      assert.equal(connected.headers['heart-beat'], '150,120');
      let closed = false;
      client.onWebSocketClose = () => { closed = true; };
      // The idle time is what is tested (many heart-beat intervals with no
      // traffic), so this wait is a fixed one.
      await sleep(1200);
      assert.equal(closed, false, 'connection survived idle time on heart-beats alone');
      assert.ok(client.connected);
      await subscribed(client, '/topic/heart-beats'); // and the server still answers on it
      await client.deactivate();
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('SUBSCRIBE to an unknown destination gets ERROR "Unknown destination" naming it', async () => {
    const { client } = await connect();
    const err = new Promise((resolve) => { client.onStompError = resolve; });
    client.subscribe('/queue/not-a-room', () => {});
    const frame = await err;
    assert.equal(frame.headers.message, 'Unknown destination');
    assert.match(frame.body, /\/queue\/not-a-room/);
  });

  test('a duplicate subscription id gets ERROR', async () => {
    const { client } = await connect();
    const err = new Promise((resolve) => { client.onStompError = resolve; });
    client.subscribe('/topic/dup', () => {}, { id: 'same' });
    client.subscribe('/topic/dup2', () => {}, { id: 'same' });
    const frame = await err;
    assert.equal(frame.headers.message, 'Duplicate subscription id');
  });

  test('the v11.stomp subprotocol and STOMP 1.1 work', async () => {
    const { client, connected } = await connect({ protocols: ['v11.stomp'], stompVersions: new Versions(['1.1']) });
    assert.equal(connected.headers.version, '1.1');
    const got = await subscribed(client, '/topic/v11');
    // stompjs decodes header escapes only under 1.2, so this value has none.
    client.publish({ destination: '/topic/v11', body: 'old but fine', headers: { 'x-v': 'plain' } });
    const [m] = await got.next(1);
    assert.equal(m.body, 'old but fine');
    assert.equal(m.headers['x-v'], 'plain');
  });
});
