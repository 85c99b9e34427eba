// LecternClient against a scripted fake WebSocket: the frames it sends
// (CONNECT, SUBSCRIBE with x-since after a reconnect) and what it delivers
// (each message once, across a replay), the state events and giving up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LecternClient, tokenExpiry } from '../src/client.js';
import { fakeServer } from '../test-support/fake-server.mjs';

const tick = () => new Promise((r) => setTimeout(r, 5));
const until = async (cond) => { for (let i = 0; i < 200 && !cond(); i++) await tick(); assert.ok(cond()); };

test('connect, subscribe, deliver; after a drop: resubscribe with x-since and drop the replayed duplicates', async () => {
  const { FakeWS, sockets } = fakeServer();
  const c = new LecternClient('ws://x/ws', { WebSocket: FakeWS, login: 'u1', name: 'Ann',
    reconnect: { base: 1, cap: 2 }, heartbeat: { outgoing: 0, incoming: 0 } });
  const states = [];
  c.on('state', (s) => states.push(s));
  const room = c.join('phys', { presence: false });
  const got = [];
  room.on('message', (m) => got.push(m.id));
  const p = c.connect();
  await until(() => sockets[0]?.sent.length === 1);
  const connect = sockets[0].sent[0];
  assert.equal(connect.command, 'CONNECT');
  assert.equal(connect.headers.login, 'u1');
  assert.equal(connect.headers['x-display-name'], 'Ann');
  sockets[0].deliver('CONNECTED', { version: '1.2', 'heart-beat': '0,0' });
  await p;
  const sub = sockets[0].sent[1];
  assert.equal(sub.command, 'SUBSCRIBE');
  assert.equal(sub.headers.destination, '/topic/phys');
  assert.equal(sub.headers['x-since'], undefined, 'nothing seen yet');
  for (const id of ['5-1', '5-2', '5-3'])
    sockets[0].deliver('MESSAGE', { subscription: sub.headers.id, 'message-id': id, destination: '/topic/phys' }, id);

  sockets[0].close();                               // the server goes away
  await until(() => sockets.length === 2 && sockets[1].sent.length === 1);
  sockets[1].deliver('CONNECTED', { version: '1.2' });
  await until(() => sockets[1].sent.length === 2);
  const resub = sockets[1].sent[1];
  assert.equal(resub.headers['x-since'], '5-3', 'resume after the last id delivered');
  // the new server replays from its history; an overlap must not reach the app
  for (const id of ['5-2', '5-3', '5-4', '6-0'])
    sockets[1].deliver('MESSAGE', { subscription: resub.headers.id, 'message-id': id }, id);
  assert.deepEqual(got, ['5-1', '5-2', '5-3', '5-4', '6-0']);
  assert.deepEqual(states, ['connecting', 'online', 'reconnecting', 'online']);
  c.disconnect();
});

test('join with since: the first SUBSCRIBE starts after the history the app shows', async () => {
  const { FakeWS, sockets } = fakeServer();
  const c = new LecternClient('ws://x/ws', { WebSocket: FakeWS, heartbeat: { outgoing: 0, incoming: 0 } });
  c.join('r', { since: '9-9', presence: false });
  const p = c.connect();
  await until(() => sockets[0]?.sent.length === 1);
  sockets[0].deliver('CONNECTED', {});
  await p;
  assert.equal(sockets[0].sent[1].headers['x-since'], '9-9');
  c.disconnect();
});

test('sends resolve with the RECEIPT\'s message id; a refusal rejects; a drop or ERROR "Message not stored" sends again with the same key', async () => {
  const { FakeWS, sockets } = fakeServer();
  const c = new LecternClient('ws://x/ws', { WebSocket: FakeWS, heartbeat: { outgoing: 0, incoming: 0 },
    reconnect: { base: 1, cap: 2 } });
  c.on('error', () => {});
  const p = c.connect();
  await until(() => sockets[0]?.sent.length === 1);
  sockets[0].deliver('CONNECTED', {});
  await p;
  const ok = c.send('r', 'one');
  const refused = c.send('r', 'two');
  const unsure = c.send('r', 'three');
  const lost = c.send('r', 'four');
  const [s1, s2, s3, s4] = sockets[0].sent.slice(1);
  assert.equal(s1.command, 'SEND');
  assert.equal(s1.headers.destination, '/topic/r');
  assert.equal(s1.body, 'one');
  const keys = [s1, s2, s3, s4].map((f) => f.headers['x-idempotency-key']);
  for (const k of keys) assert.match(k, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(new Set(keys).size, 4, 'a key per send()');
  sockets[0].deliver('RECEIPT', { 'receipt-id': s1.headers.receipt, 'message-id': '7-1' });
  sockets[0].deliver('ERROR', { 'receipt-id': s2.headers.receipt, message: 'Muted' });
  sockets[0].deliver('ERROR', { 'receipt-id': s3.headers.receipt, message: 'Message not stored' });
  assert.equal(await ok, '7-1');
  await assert.rejects(refused, /Muted/);
  sockets[0].close();                               // the server closes after its ERROR
  await until(() => sockets.length === 2 && sockets[1].sent.length === 1);
  const later = c.send('r', 'five');                // while reconnecting: waits its turn
  sockets[1].deliver('CONNECTED', {});
  await until(() => sockets[1].sent.length === 4);
  const again = sockets[1].sent.slice(1);
  assert.deepEqual(again.map((f) => f.body), ['three', 'four', 'five']);
  assert.deepEqual(again.slice(0, 2).map((f) => f.headers['x-idempotency-key']), keys.slice(2),
    'the same keys as the first time');
  for (const [i, f] of again.entries())
    sockets[1].deliver('RECEIPT', { 'receipt-id': f.headers.receipt, 'message-id': `8-${i}` });
  assert.deepEqual(await Promise.all([unsure, lost, later]), ['8-0', '8-1', '8-2']);
  // a late RECEIPT of a first attempt changes nothing: each send() settles once
  sockets[1].deliver('RECEIPT', { 'receipt-id': s3.headers.receipt, 'message-id': '9-9' });
  c.disconnect();
});

test('a send() gives up after sendRetryMs, and when the client goes offline', async () => {
  const { FakeWS, sockets } = fakeServer();
  const c = new LecternClient('ws://x/ws', { WebSocket: FakeWS, heartbeat: { outgoing: 0, incoming: 0 },
    reconnect: { base: 1, cap: 2, maxAttempts: 1 }, sendRetryMs: 50 });
  c.on('error', () => {});
  const p = c.connect();
  await until(() => sockets[0]?.sent.length === 1);
  sockets[0].deliver('CONNECTED', {});
  await p;
  await assert.rejects(c.send('r', 'never receipted'), /may or may not have been stored/);
  const pending = c.send('r', 'cut off');
  sockets[0].close();
  // one reconnect attempt allowed: it fails too, and the client gives up
  await until(() => sockets.length === 2);
  sockets[1].close();
  await assert.rejects(pending, /closed/);
  await until(() => c.state === 'offline');
  await assert.rejects(c.send('r', 'offline'), /not online/);
});

test('a send() keeps the caller\'s own x-idempotency-key', async () => {
  const { FakeWS, sockets } = fakeServer();
  const c = new LecternClient('ws://x/ws', { WebSocket: FakeWS, heartbeat: { outgoing: 0, incoming: 0 } });
  const p = c.connect();
  await until(() => sockets[0]?.sent.length === 1);
  sockets[0].deliver('CONNECTED', {});
  await p;
  const s = c.send('r', 'x', { 'x-idempotency-key': 'order-42' });
  const f = sockets[0].sent[1];
  assert.equal(f.headers['x-idempotency-key'], 'order-42');
  sockets[0].deliver('RECEIPT', { 'receipt-id': f.headers.receipt, 'message-id': '1-0' });
  assert.equal(await s, '1-0');
  c.disconnect();
});

test('presence: snapshot, join and leave keep the member map and the count', async () => {
  const { FakeWS, sockets } = fakeServer();
  const c = new LecternClient('ws://x/ws', { WebSocket: FakeWS, heartbeat: { outgoing: 0, incoming: 0 } });
  const room = c.join('r');
  const events = [];
  room.on('presence', (e) => events.push(`${e.type}:${e.count}`));
  const p = c.connect();
  await until(() => sockets[0]?.sent.length === 1);
  sockets[0].deliver('CONNECTED', {});
  await p;
  const psub = sockets[0].sent.find((f) => f.headers.destination === '/presence/r');
  assert.ok(psub);
  const ev = (o) => sockets[0].deliver('MESSAGE', { subscription: psub.headers.id }, JSON.stringify(o));
  ev({ type: 'snapshot', count: 2, members: [{ id: 'a', name: 'A' }, { id: 'b', name: 'B' }] });
  ev({ type: 'join', count: 3, user: { id: 'c', name: 'C' } });
  ev({ type: 'leave', count: 2, user: { id: 'a', name: 'A' } });
  assert.deepEqual(events, ['snapshot:2', 'join:3', 'leave:2']);
  assert.deepEqual([...room.members.keys()].sort(), ['b', 'c']);
  assert.equal(room.count, 2);
  c.disconnect();
});

test('"Access refused" (a bad token, a room not permitted) goes offline instead of reconnecting; the token is the passcode', async () => {
  const { FakeWS, sockets } = fakeServer();
  const c = new LecternClient('ws://x/ws', { WebSocket: FakeWS, token: 'tok.en.sig',
    reconnect: { base: 1, cap: 2 }, heartbeat: { outgoing: 0, incoming: 0 } });
  const states = [], errors = [];
  c.on('state', (s) => states.push(s));
  c.on('error', (e) => errors.push(e.message));
  const p = c.connect();
  await until(() => sockets[0]?.sent.length === 1);
  assert.equal(sockets[0].sent[0].headers.passcode, 'tok.en.sig');
  sockets[0].deliver('ERROR', { message: 'Access refused' }, 'Authentication failed.');
  sockets[0].close();
  await assert.rejects(p, /could not connect/);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(sockets.length, 1, 'no reconnect');
  assert.deepEqual(states, ['connecting', 'offline']);
  assert.deepEqual(errors, ['Access refused']);
  assert.ok(c.denied);
});

/** An unsigned JWT-shaped token whose payload is `claims` (the client only reads exp). */
const fakeJwt = (claims) => ['{"alg":"HS256"}', JSON.stringify(claims), 'sig']
  .map((p, i) => (i < 2 ? Buffer.from(p).toString('base64url') : p)).join('.');

test('tokenExpiry reads exp (ms) from a JWT payload; null for anything else', () => {
  assert.equal(tokenExpiry(fakeJwt({ sub: 'a', exp: 1800000000 })), 1800000000000);
  assert.equal(tokenExpiry(fakeJwt({ sub: 'a' })), null);
  assert.equal(tokenExpiry('not-a-token'), null);
  assert.equal(tokenExpiry('a.%%%.c'), null);
  assert.equal(tokenExpiry(undefined), null);
});

test('refreshToken: before exp the fresh token goes to /token (with a receipt) and is used for history and reconnects', async () => {
  const { FakeWS, sockets } = fakeServer();
  const now = Math.floor(Date.now() / 1000);
  const first = fakeJwt({ sub: 'u', exp: now + 2 });     // 1-2 s left: refreshed halfway
  const fresh = fakeJwt({ sub: 'u', exp: now + 3600 });
  let calls = 0;
  const fetched = [];
  const c = new LecternClient('ws://x/ws', {
    WebSocket: FakeWS, token: first, refreshToken: async () => { calls++; return fresh; },
    reconnect: { base: 1, cap: 2 }, heartbeat: { outgoing: 0, incoming: 0 },
    fetch: async (url, init) => { fetched.push(init.headers.authorization); return { ok: true, json: async () => ({ messages: [] }) }; },
  });
  const accepted = [];
  c.on('token', (t) => accepted.push(t));
  const p = c.connect();
  await until(() => sockets[0]?.sent.length === 1);
  assert.equal(sockets[0].sent[0].headers.passcode, first);
  sockets[0].deliver('CONNECTED', { version: '1.2' });
  await p;
  await c.history('r');
  assert.deepEqual(fetched, [`Bearer ${first}`]);
  const t0 = Date.now();
  await until(() => sockets[0].sent.some((f) => f.headers.destination === '/token'));
  assert.ok(Date.now() < (now + 2) * 1000, 'sent before the first token expired');
  assert.ok(Date.now() - t0 < 2000);
  const send = sockets[0].sent.find((f) => f.headers.destination === '/token');
  assert.equal(send.command, 'SEND');
  assert.equal(send.headers.passcode, fresh);
  assert.equal(send.body, '');
  assert.ok(send.headers.receipt);
  assert.equal(calls, 1);
  sockets[0].deliver('RECEIPT', { 'receipt-id': send.headers.receipt });
  await until(() => accepted.length === 1);
  assert.deepEqual(accepted, [fresh]);
  await c.history('r');
  assert.equal(fetched[1], `Bearer ${fresh}`);
  // The fresh token lives an hour: nothing more is asked for now.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(calls, 1);
  assert.equal(sockets[0].sent.filter((f) => f.headers.destination === '/token').length, 1);
  // A reconnect presents the fresh token.
  sockets[0].close();
  await until(() => sockets.length === 2 && sockets[1].sent.length === 1);
  assert.equal(sockets[1].sent[0].headers.passcode, fresh);
  c.disconnect();
});

test('refreshToken: a token that has run out is replaced before CONNECT, not presented to be refused', async () => {
  const { FakeWS, sockets } = fakeServer();
  const now = Math.floor(Date.now() / 1000);
  const stale = fakeJwt({ sub: 'u', exp: now - 5 });
  const fresh = fakeJwt({ sub: 'u', exp: now + 3600 });
  const errors = [];
  let give = Promise.reject(new Error('identity provider down'));
  give.catch(() => {});
  const c = new LecternClient('ws://x/ws', {
    WebSocket: FakeWS, token: stale, refreshToken: () => give,
    reconnect: { base: 1, cap: 2 }, heartbeat: { outgoing: 0, incoming: 0 },
  });
  c.on('error', (e) => errors.push(e.message));
  // The provider fails: the client says so and connects with what it has.
  const p = c.connect();
  await until(() => sockets[0]?.sent.length === 1);
  assert.equal(sockets[0].sent[0].headers.passcode, stale);
  assert.match(errors[0], /token refresh failed: identity provider down/);
  sockets[0].deliver('CONNECTED', {});
  await p;
  // The server ends the session ("Token expired"); the reconnect asks again.
  give = Promise.resolve(fresh);
  sockets[0].deliver('ERROR', { message: 'Token expired' }, 'The token of this session expired');
  sockets[0].close();
  await until(() => sockets.length === 2 && sockets[1].sent.length === 1);
  assert.equal(sockets[1].sent[0].headers.passcode, fresh);
  assert.equal(c.token, fresh);
  assert.equal(c.denied, null);
  c.disconnect();
});

test('history: a busy server (503 with Retry-After) is asked again; other errors are not', async () => {
  const calls = [];
  const reply = (status, body, headers = {}) => ({
    status, ok: status === 200, headers: new Headers(headers), json: async () => body,
  });
  const answers = [
    reply(503, { error: 'busy' }, { 'retry-after': '0' }),
    reply(503, { error: 'busy' }, { 'retry-after': '0' }),
    reply(200, { room: 'phys', messages: [], more: false }),
    reply(503, { error: 'history store (MySQL) unavailable' }),
  ];
  const fetch = async (url) => { calls.push(url); return answers.shift(); };
  const c = new LecternClient('ws://h:1/ws', { WebSocket: fakeServer().FakeWS, fetch });
  const page = await c.history('phys', { limit: 5 });
  assert.deepEqual(page, { room: 'phys', messages: [], more: false });
  assert.equal(calls.length, 3);
  assert.match(calls[0], /\/api\/rooms\/phys\/messages\?limit=5$/);
  await assert.rejects(c.history('phys'), /MySQL/);
  assert.equal(calls.length, 4, 'a 503 without Retry-After is not retried');
});

test('a MESSAGE with x-redacts is a redact event (not a message) and a resume position; a tombstone carries redacted', async () => {
  const { FakeWS, sockets } = fakeServer();
  const c = new LecternClient('ws://x/ws', { WebSocket: FakeWS, reconnect: { base: 1, cap: 2 },
    heartbeat: { outgoing: 0, incoming: 0 } });
  const room = c.join('r', { presence: false });
  const msgs = [];
  const redactions = [];
  const all = [];
  room.on('message', (m) => msgs.push(m));
  room.on('redact', (r) => redactions.push(r));
  c.on('redact', (r) => all.push(r));
  const p = c.connect();
  await until(() => sockets[0]?.sent.length === 1);
  sockets[0].deliver('CONNECTED', {});
  await p;
  const sub = sockets[0].sent[1].headers.id;
  sockets[0].deliver('MESSAGE', { subscription: sub, 'message-id': '1-0', sender: 'ann' }, 'secret');
  sockets[0].deliver('MESSAGE', { subscription: sub, 'message-id': '2-0', 'x-redacts': '1-0',
    'x-redacted-by': 'prof', 'x-redacted-at': '1700' }, '');
  assert.deepEqual(msgs.map((m) => m.id), ['1-0']);
  assert.equal(msgs[0].redacted, undefined);
  assert.deepEqual(redactions, [{ id: '1-0', room: 'r', redactionId: '2-0', by: 'prof', at: 1700 }]);
  assert.deepEqual(all, redactions);

  sockets[0].close();
  await until(() => sockets.length === 2 && sockets[1].sent.length === 1);
  sockets[1].deliver('CONNECTED', {});
  await until(() => sockets[1].sent.length === 2);
  const resub = sockets[1].sent[1].headers;
  assert.equal(resub['x-since'], '2-0', 'the event counts as a place in the room');
  // A replay from earlier: the tombstone of a message not seen yet.
  sockets[1].deliver('MESSAGE', { subscription: resub.id, 'message-id': '3-0', sender: 'bob',
    'x-redacted-by': 'system', 'x-redacted-at': '1800' }, '');
  assert.deepEqual(msgs[1].redacted, { by: 'system', at: 1800 });
  assert.equal(msgs[1].body, '');
  c.disconnect();
});

test('a kicked or banned control MESSAGE ends the room for good: an event, UNSUBSCRIBE, no re-subscribe, never a resume position', async () => {
  const { FakeWS, sockets } = fakeServer();
  const c = new LecternClient('ws://x/ws', { WebSocket: FakeWS, reconnect: { base: 1, cap: 2 },
    heartbeat: { outgoing: 0, incoming: 0 } });
  const room = c.join('r', { presence: false });
  const other = c.join('o', { presence: false });
  const msgs = [];
  const kicks = [];
  const bans = [];
  room.on('message', (m) => msgs.push(m));
  room.on('kicked', (k) => kicks.push(k));
  c.on('banned', (b) => bans.push(b));
  const p = c.connect();
  await until(() => sockets[0]?.sent.length === 1);
  sockets[0].deliver('CONNECTED', {});
  await p;
  await until(() => sockets[0].sent.length === 3);
  const sub = sockets[0].sent.find((f) => f.headers.destination === '/topic/r').headers.id;
  const osub = sockets[0].sent.find((f) => f.headers.destination === '/topic/o').headers.id;
  sockets[0].deliver('MESSAGE', { subscription: sub, 'message-id': '1-0' }, 'hi');
  sockets[0].deliver('MESSAGE', { subscription: sub, destination: '/topic/r', 'message-id': 'kicked-1700',
    'x-lectern-event': 'kicked', 'x-reason': 'off topic', 'x-by': 'prof' },
  '{"type":"kicked","room":"r","reason":"off topic","by":"prof"}');
  assert.deepEqual(kicks, [{ type: 'kicked', room: 'r', reason: 'off topic', by: 'prof' }]);
  assert.deepEqual(msgs.map((m) => m.id), ['1-0']);
  assert.equal(c.rooms.has('r'), false);
  const unsub = sockets[0].sent.at(-1);
  assert.equal(unsub.command, 'UNSUBSCRIBE');
  assert.equal(unsub.headers.id, sub);
  // A later MESSAGE for it (already queued by the server) is dropped.
  sockets[0].deliver('MESSAGE', { subscription: sub, 'message-id': '2-0' }, 'late');
  assert.equal(msgs.length, 1);

  // Joined again, then banned: 'banned' with until; the room is not re-subscribed after a drop.
  const again = c.join('r', { presence: false });
  await until(() => sockets[0].sent.at(-1).command === 'SUBSCRIBE');
  const sub2 = sockets[0].sent.at(-1).headers.id;
  assert.equal(sockets[0].sent.at(-1).headers['x-since'], undefined, 'a kick is no resume position');
  const banned = [];
  again.on('banned', (b) => banned.push(b));
  sockets[0].deliver('MESSAGE', { subscription: sub2, 'message-id': 'banned-1800', 'x-lectern-event': 'banned',
    'x-reason': '', 'x-by': 'system', 'x-until': '9000' }, '{"type":"banned","room":"r","reason":"","by":"system","until":9000}');
  assert.deepEqual(banned, [{ type: 'banned', room: 'r', reason: '', by: 'system', until: 9000 }]);
  assert.deepEqual(bans, banned);
  sockets[0].close();
  await until(() => sockets.length === 2 && sockets[1].sent.length === 1);
  sockets[1].deliver('CONNECTED', {});
  await until(() => sockets[1].sent.length === 2);
  await tick();
  assert.deepEqual(sockets[1].sent.slice(1).map((f) => f.headers.destination), ['/topic/o']);
  assert.ok(osub);
  c.disconnect();
});
