// client.contacts() and client.setInvisible() against a scripted fake
// WebSocket speaking real STOMP frames: the /status SUBSCRIBE, the snapshot
// filling the map, live events (and those that change nothing emitting
// nothing), a reconnect that re-subscribes and emits only real differences,
// a contact-list snapshot replacing the list, close(), a refused
// subscription, and the invisible flag's SEND confirmed by its RECEIPT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../src/backoff.js';
import { LecternClient } from '../src/client.js';
import { fakeServer } from '../test-support/fake-server.mjs';

const tick = () => new Promise((r) => setTimeout(r, 5));
const until = async (cond) => { for (let i = 0; i < 200 && !cond(); i++) await tick(); assert.ok(cond()); };

/** A client online on sockets[n] (CONNECTED delivered). */
async function online(c, sockets, n = 0) {
  await until(() => sockets[n]?.sent.length >= 1);
  sockets[n].deliver('CONNECTED', { version: '1.2', 'heart-beat': '0,0' });
  await until(() => c.state === 'online');
}

const statusSub = (ws) => ws.sent.filter((f) => f.command === 'SUBSCRIBE' && f.headers.destination === '/status').at(-1);

/** Deliver a /status MESSAGE on the subscription `sub` (a SUBSCRIBE frame). */
const status = (ws, sub, body) => ws.deliver('MESSAGE', {
  subscription: sub.headers.id, destination: '/status', 'content-type': 'application/json',
  'message-id': `m${Math.random()}`,
}, JSON.stringify(body));

/** Record every event of a Contacts object as "event:user" (snapshot: "snapshot:<size>"). */
function record(list) {
  const log = [];
  for (const ev of ['online', 'offline', 'added', 'removed'])
    list.on(ev, (e) => log.push(`${ev}:${e.user}`));
  list.on('change', (e) => log.push(`change:${e.type}:${e.user}`));
  list.on('snapshot', (m) => log.push(`snapshot:${m.size}`));
  return log;
}

const snap = (...contacts) => ({ type: 'snapshot', contacts });
const on = (user, since, seen = null) => ({ user, online: true, since, seen });
const off = (user, seen = null) => ({ user, online: false, since: null, seen });
const plain = (map) => Object.fromEntries([...map].map(([k, v]) => [k, { ...v }]));

function newClient() {
  const { FakeWS, sockets } = fakeServer();
  const c = new LecternClient('ws://x/ws', { WebSocket: FakeWS, login: 'me',
    reconnect: { base: 1, cap: 2 }, heartbeat: { outgoing: 0, incoming: 0 } });
  c.on('error', () => {});
  return { c, sockets };
}

test('the first snapshot fills the map and emits only snapshot; events update it; an event that changes nothing emits nothing', async () => {
  const { c, sockets } = newClient();
  c.connect();
  await online(c, sockets);
  const list = c.contacts();
  const log = record(list);
  const sub = statusSub(sockets[0]);
  assert.ok(sub, 'SUBSCRIBE destination:/status sent once online');
  assert.equal(sub.headers['x-users'], undefined, 'no explicit list: the caller\'s contacts');
  assert.ok(sub.headers.receipt);
  sockets[0].deliver('RECEIPT', { 'receipt-id': sub.headers.receipt });

  status(sockets[0], sub, snap(on('ann', 1000, 500), off('bob', 900), off('cy')));
  assert.deepEqual(log, ['snapshot:3']);
  assert.deepEqual(plain(list.list()), {
    ann: { online: true, since: 1000, seen: 500 },
    bob: { online: false, since: null, seen: 900 },
    cy: { online: false, since: null, seen: null },
  });

  status(sockets[0], sub, { type: 'online', user: 'bob', since: 2000 });
  status(sockets[0], sub, { type: 'offline', user: 'ann', seen: 2100 });
  status(sockets[0], sub, { type: 'online', user: 'bob', since: 2000 });    // no change
  status(sockets[0], sub, { type: 'offline', user: 'cy' });                 // offline already
  status(sockets[0], sub, { type: 'online', user: 'stranger', since: 1 });  // not a contact
  status(sockets[0], sub, { type: 'weird', user: 'bob' });
  sockets[0].deliver('MESSAGE', { subscription: sub.headers.id }, 'not json');
  assert.deepEqual(log, ['snapshot:3', 'online:bob', 'change:online:bob', 'offline:ann', 'change:offline:ann']);
  assert.deepEqual(list.list().get('bob'), { online: true, since: 2000, seen: 900 });
  assert.deepEqual(list.list().get('ann'), { online: false, since: null, seen: 2100 });
  assert.equal(list.list().has('stranger'), false);

  const payloads = [];
  list.on('online', (e) => payloads.push(e));
  list.on('offline', (e) => payloads.push(e));
  status(sockets[0], sub, { type: 'online', user: 'cy', since: 3000 });
  status(sockets[0], sub, { type: 'offline', user: 'cy', seen: 3500 });
  assert.deepEqual(payloads, [{ user: 'cy', since: 3000 }, { user: 'cy', seen: 3500 }]);
  c.disconnect();
});

test('contacts({users}) sends x-users; bad ids are refused before anything is sent', async () => {
  const { c, sockets } = newClient();
  c.connect();
  await online(c, sockets);
  c.contacts({ users: ['ann', 'bob'] });
  assert.equal(statusSub(sockets[0]).headers['x-users'], 'ann,bob');
  assert.throws(() => c.contacts({ users: ['a,b'] }), TypeError);
  assert.throws(() => c.contacts({ users: ['x\ny'] }), TypeError);
  assert.throws(() => c.contacts({ users: [''] }), TypeError);
  assert.throws(() => c.contacts({ users: [] }), TypeError);
  assert.equal(sockets[0].sent.filter((f) => f.headers.destination === '/status').length, 1);
  c.disconnect();
});

test('a reconnect re-subscribes with the same options and emits only real differences, without clearing the map', async () => {
  const { c, sockets } = newClient();
  const list = c.contacts({ users: ['ann', 'bob', 'cy', 'dee'] });   // made before connecting
  const log = record(list);
  c.connect();
  await online(c, sockets);
  const sub = statusSub(sockets[0]);
  status(sockets[0], sub, snap(on('ann', 1000), off('bob', 900), on('cy', 1200), off('dee')));
  const annEntry = list.list().get('ann');

  // While the map was shown, the connection drops; nothing is emitted.
  const sizes = [];
  list.on('change', () => sizes.push(list.list().size));
  sockets[0].close();
  await until(() => sockets.length === 2);
  assert.equal(list.list().size, 4, 'the map is kept while reconnecting');
  await online(c, sockets, 1);
  const sub2 = statusSub(sockets[1]);
  assert.ok(sub2, 're-subscribed');
  assert.equal(sub2.headers['x-users'], 'ann,bob,cy,dee', 'with the same options');
  assert.notEqual(sub2.headers.id, sub.headers.id);
  // The old subscription is gone: its events count no more. Neither do the
  // new one's before its snapshot (the snapshot holds them).
  status(sockets[1], sub, { type: 'offline', user: 'ann', seen: 5 });
  status(sockets[1], sub2, { type: 'offline', user: 'cy', seen: 6 });
  assert.deepEqual(log, ['snapshot:4']);
  // Meanwhile bob came online, cy went offline, dee came and went (a new
  // seen): ann did not change.
  status(sockets[1], sub2, snap(on('ann', 1000), on('bob', 4000, 900), off('cy', 4100), off('dee', 4200)));
  assert.deepEqual(log, ['snapshot:4', 'online:bob', 'change:online:bob', 'offline:cy', 'change:offline:cy',
    'change:update:dee', 'snapshot:4']);
  assert.ok(sizes.every((n) => n === 4), 'never a cleared or partial map while emitting');
  assert.equal(list.list().get('ann'), annEntry, 'an unchanged entry is the very same object');
  assert.deepEqual(list.list().get('dee'), { online: false, since: null, seen: 4200 });

  // A reconnect where nothing changed: only snapshot.
  sockets[1].close();
  await until(() => sockets.length === 3);
  await online(c, sockets, 2);
  status(sockets[2], statusSub(sockets[2]), snap(on('ann', 1000), on('bob', 4000, 900), off('cy', 4100), off('dee', 4200)));
  assert.deepEqual(log.slice(7), ['snapshot:4']);
  c.disconnect();
});

test('a snapshot on a live subscription (the contact list changed) is diffed: added, removed, changed', async () => {
  const { c, sockets } = newClient();
  c.connect();
  await online(c, sockets);
  const list = c.contacts();
  const log = record(list);
  const sub = statusSub(sockets[0]);
  status(sockets[0], sub, snap(on('ann', 1000), off('bob')));
  status(sockets[0], sub, snap(off('bob'), on('eve', 3000), off('fay', 10)));
  assert.deepEqual(log, ['snapshot:2', 'added:eve', 'change:added:eve', 'added:fay', 'change:added:fay',
    'removed:ann', 'change:removed:ann', 'snapshot:3']);
  assert.deepEqual([...list.list().keys()], ['bob', 'eve', 'fay'], 'in the snapshot\'s order');
  // an event for a removed user changes nothing
  status(sockets[0], sub, { type: 'offline', user: 'ann', seen: 9 });
  assert.equal(log.length, 8);
  // an empty list: everyone removed
  status(sockets[0], sub, snap());
  assert.deepEqual(log.slice(8), ['removed:bob', 'change:removed:bob', 'removed:eve', 'change:removed:eve',
    'removed:fay', 'change:removed:fay', 'snapshot:0']);
  c.disconnect();
});

test('close() unsubscribes, stops events and is not re-subscribed after a reconnect', async () => {
  const { c, sockets } = newClient();
  c.connect();
  await online(c, sockets);
  const list = c.contacts();
  const log = record(list);
  const sub = statusSub(sockets[0]);
  status(sockets[0], sub, snap(off('bob')));
  list.close();
  const unsub = sockets[0].sent.at(-1);
  assert.equal(unsub.command, 'UNSUBSCRIBE');
  assert.equal(unsub.headers.id, sub.headers.id);
  status(sockets[0], sub, { type: 'online', user: 'bob', since: 1 });
  assert.deepEqual(log, ['snapshot:1']);
  list.close();                                           // twice: nothing more
  assert.equal(sockets[0].sent.filter((f) => f.command === 'UNSUBSCRIBE').length, 1);
  sockets[0].close();
  await until(() => sockets.length === 2);
  await online(c, sockets, 1);
  assert.equal(statusSub(sockets[1]), undefined, 'not re-subscribed');
  c.disconnect();
});

test('a refused subscription (ERROR naming its receipt) closes the list, so the rooms reconnect without it; "Service unavailable" is asked again after a backoff, not by the reconnect', async () => {
  const { c, sockets } = newClient();
  c.join('r', { presence: false });
  c.connect();
  await online(c, sockets);
  const busy = c.contacts();
  busy.retry = new Backoff({ base: 40, cap: 40, random: () => 1 });   // 40 ms, for the test
  const errors = [];
  busy.on('error', (e) => errors.push(e.message));
  let sub = statusSub(sockets[0]);
  sockets[0].deliver('ERROR', { 'receipt-id': sub.headers.receipt, message: 'Service unavailable' });
  sockets[0].close();
  await until(() => sockets.length === 2);
  await online(c, sockets, 1);
  assert.deepEqual(errors, ['Service unavailable']);
  assert.equal(busy.closed, false);
  assert.equal(statusSub(sockets[1]), undefined, 'the reconnect does not ask again at once');
  assert.ok(sockets[1].sent.some((f) => f.headers.destination === '/topic/r'), 'the room is back');
  await until(() => statusSub(sockets[1]));
  sub = statusSub(sockets[1]);
  // Refused for good this time (a server without /status, say).
  sockets[1].deliver('ERROR', { 'receipt-id': sub.headers.receipt, message: 'Unknown destination' }, '/status');
  sockets[1].close();
  await until(() => sockets.length === 3);
  await online(c, sockets, 2);
  assert.deepEqual(errors, ['Service unavailable', 'Unknown destination']);
  assert.equal(busy.closed, true);
  assert.equal(busy.error.message, 'Unknown destination');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(statusSub(sockets[2]), undefined, 'not subscribed again');
  assert.ok(sockets[2].sent.some((f) => f.headers.destination === '/topic/r'), 'the room is');
  c.disconnect();
});

test('an Access refused after the RECEIPT names the subscription: only that list closes; the rooms reconnect', async () => {
  const { c, sockets } = newClient();
  c.join('r', { presence: false });
  c.connect();
  await online(c, sockets);
  const list = c.contacts({ users: ['stranger'] });
  const sub = statusSub(sockets[0]);
  sockets[0].deliver('RECEIPT', { 'receipt-id': sub.headers.receipt });
  sockets[0].deliver('ERROR', { subscription: sub.headers.id, message: 'Access refused' },
    'x-users may only list your contacts; not one of them: stranger');
  sockets[0].close();
  await until(() => list.closed);
  assert.equal(list.error.message, 'Access refused');
  await until(() => sockets.length === 2);
  await online(c, sockets, 1);
  assert.ok(sockets[1].sent.some((f) => f.headers.destination === '/topic/r'), 'the room is back');
  assert.equal(statusSub(sockets[1]), undefined, 'the refused list is not asked again');
  c.disconnect();
});

test('setInvisible sends {"invisible":…} to /status and resolves on its RECEIPT; rejects on ERROR or when offline', async () => {
  const { c, sockets } = newClient();
  await assert.rejects(c.setInvisible(true), /not online/);
  c.connect();
  await online(c, sockets);
  const hide = c.setInvisible(true);
  const show = c.setInvisible(0);
  const [s1, s2] = sockets[0].sent.filter((f) => f.command === 'SEND');
  assert.equal(s1.headers.destination, '/status');
  assert.equal(s1.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(s1.body), { invisible: true });
  assert.deepEqual(JSON.parse(s2.body), { invisible: false });
  let done = false;
  hide.then(() => { done = true; });
  await tick();
  assert.equal(done, false, 'pending until the RECEIPT');
  sockets[0].deliver('RECEIPT', { 'receipt-id': s1.headers.receipt });
  await hide;
  sockets[0].deliver('ERROR', { 'receipt-id': s2.headers.receipt, message: 'Service unavailable' });
  await assert.rejects(show, /Service unavailable/);
  c.disconnect();
});
