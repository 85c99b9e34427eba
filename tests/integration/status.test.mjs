// Friends' online status against real servers: SUBSCRIBE /status (a snapshot
// of the caller's contacts, then one `online` / `offline` event per change
// anywhere in the cluster), hiding (SEND /status {"invisible":...}), x-users,
// a server killed -9, a Redis restart (data lost and data kept), contact
// lists stored through the API and their changes reaching watchers on other
// servers, and GET /api/users/<id>/contacts/status.
//
// Tokens are HS256 JWTs minted here, because they carry a `contacts` claim.
// Every test names its users with a tag of its own: the servers of one
// describe share one cluster (one status hash, one hidden set in Redis) and
// the suite shares one MySQL.
//
// "Exactly once" is proved with a fence: after the events under test, a
// further contact (a fence user) connects through the server those events
// came from, and its `online` must arrive; the server publishes its events
// in order, so a duplicate (or a wrong `offline`) would have arrived first.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import {
  clusterName, expectReceipt, httpGet, metric, service, sleep, startServer, startWorker, stompClient, waitFor,
} from './helpers.mjs';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lectern-status-'));
const SECRET = 'status-test-secret-0123456789abcdef0123456789';
const keys = path.join(dir, 'keys');
writeFileSync(keys, `k1 HS256 ${SECRET}\n`);
after(() => rmSync(dir, { recursive: true, force: true }));

// Servers read contact lists from MySQL (a stored list wins over the
// claim), whose tables the storage worker's migrations create: one worker
// runs them, then stops.
before(async () => {
  const w = await startWorker({ cluster: clusterName() });
  assert.equal((await w.stop()).code, 0);
});

const JWT = { 'auth.mode': 'jwt', 'auth.keys': keys };
const API_KEY = 'status-test-api-key-0123456789abcdef';
const REDIS_PORT = String(process.env.LECTERN_REDIS_PORT || 6390);
const redis = (...args) => execFileSync('redis-cli', ['-p', REDIS_PORT, ...args]).toString().trim();

// A signed token; `contacts` (an array) becomes the claim of that name.
function mint(sub, { role = 'student', contacts, rooms = ['physics'], ttl = 3600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const claims = { sub, role, iat: now, exp: now + ttl, rooms };
  if (contacts) claims.contacts = contacts;
  const input = `${enc({ alg: 'HS256', typ: 'JWT', kid: 'k1' })}.${enc(claims)}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

// User ids of one test: tag('bob') -> "bob-<random>".
function tagger() {
  const t = Math.random().toString(36).slice(2, 8);
  return (name) => `${name}-${t}`;
}

// A connection of `sub` (a "tab"), with its token's claims.
async function online(server, sub, opts = {}) {
  const { reconnectDelay = 0, ...claims } = opts;
  const { client } = await stompClient(server.wsUrl, { connectHeaders: { passcode: mint(sub, claims) }, reconnectDelay });
  return client;
}

// Close a tab and wait until its server has let the connection go, so that
// what the close causes has been published before anything done after.
async function closeTab(server, client) {
  const before = await metric(server.port, 'lectern_connections');
  await client.deactivate();
  await waitFor(async () => (await metric(server.port, 'lectern_connections')) <= before - 1,
    { what: `the connection closed on :${server.port}` });
}

// A watcher: a @stomp/stompjs client subscribed to /status, subscribing
// again on every (re)connect. `view` is what a client knows, built the way
// a client builds it: a snapshot replaces it, an event changes one entry.
// `frames` keeps every MESSAGE (headers, body) for checks on the frame.
async function watch(server, { token, sub, contacts, role, headers = {}, reconnectDelay = 0 } = {}) {
  const w = { frames: [], snapshots: [], events: [], view: new Map(), errors: [], connects: 0, redundant: [] };
  const client = new Client({
    webSocketFactory: () => new WebSocket(server.wsUrl, ['v12.stomp']),
    connectHeaders: { passcode: token || mint(sub, { contacts, role }) },
    reconnectDelay,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    connectionTimeout: 5000,
  });
  w.client = client;
  client.onConnect = () => {
    w.connects++;
    client.subscribe('/status', (m) => {
      const body = JSON.parse(m.body);
      w.frames.push({ headers: m.headers, body });
      if (body.type === 'snapshot') {
        w.snapshots.push(body);
        w.view = new Map(body.contacts.map((c) => [c.user, { online: c.online, since: c.since, seen: c.seen }]));
      } else {
        w.events.push({ ...body, at: Date.now() });
        const cur = w.view.get(body.user) || {};
        // An event must change what the client knows: one that repeats it
        // (a change already in the snapshot, or sent twice) is a defect.
        if (!w.view.has(body.user) || cur.online === (body.type === 'online')) w.redundant.push(body);
        if (body.type === 'online') w.view.set(body.user, { ...cur, online: true, since: body.since });
        if (body.type === 'offline') w.view.set(body.user, { ...cur, online: false, since: null, seen: body.seen });
      }
    }, headers);
  };
  client.onStompError = (f) => w.errors.push(f);
  client.activate();
  w.snapshot = async (n = 1, timeout = 5000) => {
    await waitFor(() => w.snapshots.length >= n || w.errors.length,
      { timeout, what: `snapshot ${n} on /status` });
    if (w.snapshots.length < n) throw new Error(`ERROR instead of a snapshot: ${w.errors[0].headers.message}`);
    return w.snapshots[n - 1];
  };
  w.of = (user, type) => w.events.filter((e) => e.user === user && (!type || e.type === type));
  w.event = (user, type, n = 1, timeout = 5000) =>
    waitFor(() => w.of(user, type)[n - 1], { timeout, what: `${type} #${n} for ${user}` });
  w.deactivate = () => client.deactivate();
  return w;
}

// Snapshot entries by user.
const byUser = (entries) => Object.fromEntries(entries.map((c) => [c.user, c]));
const sorted = (entries) => [...entries].sort((a, b) => (a.user < b.user ? -1 : 1));

// A ms timestamp the server took between `lo` and `hi` (this machine's clock).
function assertTime(v, lo, hi, what) {
  assert.equal(typeof v, 'number', `${what}: a number (${v})`);
  assert.ok(Number.isInteger(v), `${what}: whole ms (${v})`);
  assert.ok(v >= lo - 5 && v <= hi + 5, `${what}: ${v} within [${lo}, ${hi}]`);
}

// A fence: `user` connects on `server` (and stays); resolves with its tab
// once the watcher has its `online`.
async function fence(w, server, user) {
  const tab = await online(server, user);
  await w.event(user, 'online');
  return tab;
}

const serverPair = async (sets) => {
  const cluster = clusterName();
  const A = await startServer({ cluster, sets: { 'server.id': `${cluster}-a`, ...sets } });
  const B = await startServer({ cluster, sets: { 'server.id': `${cluster}-b`, ...sets } });
  return [A, B];
};

const stopAll = async (servers, codes = servers.map(() => 0)) => {
  const got = [];
  for (const s of servers) got.push((await s.stop()).code);
  assert.deepEqual(got, codes, 'servers exit cleanly');
};

const T = { timeout: 90000 };

describe('friends\' online status: token claims, two servers', () => {
  let A, B;
  before(async () => { [A, B] = await serverPair(JWT); });
  after(async () => { await stopAll([A, B]); });

  test('the snapshot on SUBSCRIBE /status lists each contact of the token claim: online with since, offline with seen (or null)', async () => {
    const u = tagger();
    const [me, bob, carol, dave] = ['me', 'bob', 'carol', 'dave'].map(u);
    const contacts = [bob, carol, dave];
    const tabs = [];
    try {
      // A first watcher sees bob come online and dave come and go: then the
      // cluster has settled, and a second watcher's snapshot must show it.
      const probe = await watch(A, { sub: u('probe'), contacts });
      tabs.push(probe);
      await probe.snapshot();
      const t0 = Date.now();
      tabs.push(await online(B, bob));
      const daveTab = await online(A, dave);
      await probe.event(bob, 'online');
      await probe.event(dave, 'online');
      const t1 = Date.now();
      await closeTab(A, daveTab);
      await probe.event(dave, 'offline');
      const t2 = Date.now();

      const w = await watch(A, { sub: me, contacts });
      tabs.push(w);
      const snap = await w.snapshot();
      const t3 = Date.now();
      const f = w.frames[0];
      assert.equal(f.headers.destination, '/status');
      assert.match(f.headers['content-type'], /^application\/json/);
      assert.equal(snap.type, 'snapshot');
      assert.deepEqual(snap.contacts.map((c) => c.user).sort(), [...contacts].sort(), 'exactly the claimed contacts');
      const c = byUser(snap.contacts);
      assert.equal(c[bob].online, true);
      assertTime(c[bob].since, t0, t1, 'bob since');
      assert.equal(c[bob].seen, null, 'bob never went offline');
      assert.equal(c[dave].online, false);
      assert.equal(c[dave].since, null);
      assertTime(c[dave].seen, t1, t2, 'dave seen');
      assert.deepEqual(c[carol], { user: carol, online: false, since: null, seen: null }, 'carol never came');
      // The probe's events agree with the snapshot.
      assert.equal(probe.of(bob, 'online')[0].since, c[bob].since);
      assert.equal(probe.of(dave, 'offline')[0].seen, c[dave].seen);
      assert.ok(t3 >= t2);
      assert.deepEqual(w.events, [], 'nothing after the snapshot (no change happened)');
    } finally {
      await Promise.all(tabs.map((t) => t.deactivate()));
    }
  }, T);

  test('live: a watcher on server A gets `online` then `offline` of a contact on server B, exactly once each', async () => {
    const u = tagger();
    const [bob, f1] = [u('bob'), u('fence1')];
    const w = await watch(A, { sub: u('me'), contacts: [bob, f1] });
    const tabs = [];
    try {
      const snap = await w.snapshot();
      assert.equal(byUser(snap.contacts)[bob].online, false);
      const t0 = Date.now();
      const tab = await online(B, bob);
      const on = await w.event(bob, 'online');
      assertTime(on.since, t0, on.at, 'online since');
      const t1 = Date.now();
      await tab.deactivate();
      const off = await w.event(bob, 'offline');
      assertTime(off.seen, t1, off.at, 'offline seen');
      assert.ok(off.seen >= on.since);
      tabs.push(await fence(w, B, f1));
      assert.deepEqual(w.of(bob).map((e) => e.type), ['online', 'offline'], 'one online, one offline');
      assert.deepEqual(w.redundant, []);
      assert.equal(w.snapshots.length, 1);
      assert.deepEqual(w.view.get(bob).online, false);
    } finally {
      await Promise.all(tabs.map((t) => t.deactivate()));
      await w.deactivate();
    }
  }, T);

  test('multi-tab: two connections of a contact on two servers are one `online`; closing one is nothing; closing the last is one `offline`', async () => {
    const u = tagger();
    const [bob, f1, f2, f3] = ['bob', 'f1', 'f2', 'f3'].map(u);
    const w = await watch(A, { sub: u('me'), contacts: [bob, f1, f2, f3] });
    const tabs = [];
    try {
      await w.snapshot();
      const tabA = await online(A, bob);
      await w.event(bob, 'online');
      const tabB = await online(B, bob);
      // The second tab's login went through B: B's fence shows it caused nothing.
      tabs.push(await fence(w, B, f1));
      assert.deepEqual(w.of(bob).map((e) => e.type), ['online'], 'the second tab is no second online');
      await closeTab(A, tabA);
      tabs.push(await fence(w, A, f2));
      assert.deepEqual(w.of(bob).map((e) => e.type), ['online'], 'closing one of two tabs is no offline');
      assert.equal(w.view.get(bob).online, true);
      await closeTab(B, tabB);
      await w.event(bob, 'offline');
      tabs.push(await fence(w, B, f3));
      assert.deepEqual(w.of(bob).map((e) => e.type), ['online', 'offline'], 'the last tab closing is one offline');
      assert.deepEqual(w.redundant, []);
    } finally {
      await Promise.all(tabs.map((t) => t.deactivate()));
      await w.deactivate();
    }
  }, T);

  test('hiding: SEND /status {"invisible":true} (RECEIPT) makes a contact offline to watchers and to new snapshots, across sessions, until {"invisible":false}', async () => {
    const u = tagger();
    const [bob, f1, f2, f3] = ['bob', 'f1', 'f2', 'f3'].map(u);
    const contacts = [bob, f1, f2, f3];
    const w = await watch(A, { sub: u('me'), contacts });
    const tabs = [];
    let bobTab;
    const invisible = async (client, value, id) => {
      const r = expectReceipt(client, id);
      client.publish({ destination: '/status', body: JSON.stringify({ invisible: value }),
        headers: { receipt: id, 'content-type': 'application/json' } });
      await r;
    };
    try {
      await w.snapshot();
      bobTab = await online(B, bob);
      await w.event(bob, 'online');

      await invisible(bobTab, true, 'hide');
      await w.event(bob, 'offline');
      const w2 = await watch(B, { sub: u('other'), contacts });
      tabs.push(w2);
      const c2 = byUser((await w2.snapshot()).contacts)[bob];
      assert.equal(c2.online, false, 'a new snapshot shows the hidden user offline');
      assert.equal(c2.since, null);

      // Still hidden in a new session of bob's.
      await closeTab(B, bobTab);
      bobTab = await online(B, bob);
      tabs.push(await fence(w, B, f1));
      await w2.event(f1, 'online');
      assert.deepEqual(w.of(bob).map((e) => e.type), ['online', 'offline'], 'hidden: no online on a new session');
      assert.deepEqual(w2.of(bob), [], 'hidden: nothing for the second watcher either');

      await invisible(bobTab, false, 'show');
      const on = await w.event(bob, 'online', 2);
      assertTime(on.since, w.of(bob, 'online')[0].since, on.at, 'since after showing');
      await w2.event(bob, 'online');
      tabs.push(await fence(w, B, f2));
      assert.deepEqual(w.of(bob).map((e) => e.type), ['online', 'offline', 'online'], 'shown: one online');
      assert.deepEqual(w2.of(bob).map((e) => e.type), ['online']);
    } finally {
      await bobTab?.deactivate();
      await Promise.all(tabs.map((t) => t.deactivate()));
      await w.deactivate();
    }
  }, T);

  test('watchers subscribing while their contacts come and go: snapshot plus events end at the truth, and no event repeats what the client knew', async () => {
    const u = tagger();
    const users = [0, 1, 2, 3, 4].map((i) => u(`c${i}`));
    const f1 = u('f1');
    const contacts = [...users, f1];
    const watchers = [];
    const stay = [];
    try {
      // Each contact connects and disconnects through B, three times, while
      // watchers subscribe on A one after another; then the even ones stay.
      const churn = users.map(async (user, i) => {
        for (let k = 0; k < 3; k++) {
          const tab = await online(B, user);
          await sleep(30 + 17 * i); // pacing: the changes interleave with the subscriptions
          await tab.deactivate();
        }
        if (i % 2 === 0) stay.push(await online(B, user));
      });
      for (let k = 0; k < 8; k++) {
        watchers.push(await watch(A, { sub: u(`w${k}`), contacts }));
        await sleep(40); // pacing: spreads the subscriptions over the churn
      }
      await Promise.all(churn);
      await Promise.all(watchers.map((w) => w.snapshot()));
      // Every close has reached B before the fence logs in through B.
      await waitFor(async () => (await metric(B.port, 'lectern_connections')) === stay.length,
        { what: `${stay.length} connections left on B` });
      stay.push(await online(B, f1));
      for (const w of watchers) await w.event(f1, 'online');
      const truth = Object.fromEntries(users.map((x, i) => [x, i % 2 === 0]));
      watchers.forEach((w, k) => {
        assert.deepEqual(Object.fromEntries(users.map((x) => [x, w.view.get(x)?.online])), truth, `watcher ${k}'s view`);
        assert.deepEqual(w.redundant, [], `watcher ${k}: no event repeats what it knew`);
        assert.equal(w.snapshots.length, 1);
      });
      console.log(`# churn: ${watchers.map((w) => w.events.length).join(',')} events per watcher`);
    } finally {
      await Promise.all([...watchers, ...stay].map((t) => t.deactivate()));
    }
  }, T);

  test('x-users: a subset of the contacts is watched alone; a user outside them is an ERROR; an admin may watch anyone', async () => {
    const u = tagger();
    const [bob, carol, dave, eve] = ['bob', 'carol', 'dave', 'eve'].map(u);
    const contacts = [bob, carol, dave];
    const tabs = [];
    try {
      const w = await watch(A, { sub: u('me'), contacts, headers: { 'x-users': `${bob},${carol}` } });
      tabs.push(w);
      const snap = await w.snapshot();
      assert.deepEqual(snap.contacts.map((c) => c.user).sort(), [bob, carol].sort());
      tabs.push(await online(B, dave)); // a contact, but not asked for
      tabs.push(await online(B, bob));
      await w.event(bob, 'online');
      assert.deepEqual(w.of(dave), [], 'no event for a contact outside x-users');

      const bad = await watch(A, { sub: u('me'), contacts, headers: { 'x-users': `${bob},${eve}` } });
      tabs.push(bad);
      await waitFor(() => bad.errors.length, { what: 'ERROR for a user outside the contacts' });
      assert.deepEqual(bad.snapshots, [], 'no snapshot');
      console.log(`# x-users outside the contacts: ERROR "${bad.errors[0].headers.message}"`);

      const noClaim = await watch(A, { sub: u('nobody'), headers: { 'x-users': bob } });
      tabs.push(noClaim);
      await waitFor(() => noClaim.errors.length, { what: 'ERROR for a student without contacts' });

      const admin = await watch(B, { sub: u('admin'), role: 'admin', headers: { 'x-users': `${bob},${eve}` } });
      tabs.push(admin);
      const a = byUser((await admin.snapshot()).contacts);
      assert.deepEqual(Object.keys(a).sort(), [bob, eve].sort());
      assert.equal(a[bob].online, true);
      assert.equal(a[eve].online, false);
      tabs.push(await online(A, eve));
      await admin.event(eve, 'online');
    } finally {
      await Promise.all(tabs.map((t) => t.deactivate()));
    }
  }, T);

  test('GET /api/users/<id>/contacts/status: the owner gets the snapshot entries (200), another student 403, no token 401; ?users= a subset', async () => {
    const u = tagger();
    const [me, bob, carol, dave] = ['me', 'bob', 'carol', 'dave'].map(u);
    const contacts = [bob, carol, dave];
    const tabs = [];
    const get = (p, token) => httpGet(A.port, p, token ? { headers: { authorization: `Bearer ${token}` } } : undefined);
    const url = `/api/users/${encodeURIComponent(me)}/contacts/status`;
    try {
      const w = await watch(B, { sub: u('probe'), contacts });
      tabs.push(w);
      await w.snapshot();
      tabs.push(await online(B, bob));
      const d = await online(A, dave);
      await w.event(bob, 'online');
      await w.event(dave, 'online');
      await d.deactivate();
      await w.event(dave, 'offline');
      const mine = await watch(A, { sub: me, contacts });
      tabs.push(mine);
      const snap = await mine.snapshot();

      const own = await get(url, mint(me, { contacts }));
      assert.equal(own.status, 200, own.text);
      assert.match(own.headers.get('content-type'), /^application\/json/);
      const body = JSON.parse(own.text);
      assert.equal(body.user, me);
      assert.deepEqual(sorted(body.contacts), sorted(snap.contacts), 'the same entries as the STOMP snapshot');

      const sub = JSON.parse((await get(`${url}?users=${bob},${carol}`, mint(me, { contacts }))).text);
      assert.deepEqual(sorted(sub.contacts), sorted(snap.contacts.filter((c) => c.user === bob || c.user === carol)));

      const other = await get(url, mint(u('other'), { contacts }));
      assert.equal(other.status, 403, other.text);
      assert.ok(JSON.parse(other.text).error, 'a reason');
      const none = await get(url);
      assert.equal(none.status, 401, none.text);
      const outside = await get(`${url}?users=${bob},${u('eve')}`, mint(me, { contacts }));
      assert.equal(outside.status, 403, `?users= outside the contacts: ${outside.text}`);
      assert.ok(JSON.parse(outside.text).error, 'a reason');

      // An admin names the users (the server does not know a claim of
      // someone else's token; a stored list is checked in its own test).
      const admin = await get(`${url}?users=${contacts.join(',')}`, mint(u('admin'), { role: 'admin' }));
      assert.equal(admin.status, 200, admin.text);
      assert.deepEqual(sorted(JSON.parse(admin.text).contacts), sorted(snap.contacts), "an admin reads anyone's");
    } finally {
      await Promise.all(tabs.map((t) => t.deactivate()));
    }
  }, T);
});

test('auth.mode none: x-users may name anyone', async () => {
  const s = await startServer();
  const u = tagger();
  const tabs = [];
  try {
    const { client } = await stompClient(s.wsUrl, { connectHeaders: { login: u('me') } });
    tabs.push(client);
    const snaps = [];
    client.subscribe('/status', (m) => snaps.push(JSON.parse(m.body)), { 'x-users': `${u('a')},${u('b')}` });
    await waitFor(() => snaps.length, { what: 'snapshot' });
    assert.deepEqual(snaps[0].contacts.map((c) => c.user).sort(), [u('a'), u('b')].sort());
    const { client: a } = await stompClient(s.wsUrl, { connectHeaders: { login: u('a') } });
    tabs.push(a);
    await waitFor(() => snaps.some((e) => e.type === 'online' && e.user === u('a')), { what: 'online of a' });
  } finally {
    await Promise.all(tabs.map((t) => t.deactivate()));
    assert.equal((await s.stop()).code, 0);
  }
}, T);

describe('a server killed -9', () => {
  test("its users go offline for watchers on the other server within registry.ttl_ms + registry.reap_ms; the survivors' status and live events go on", async () => {
    const ttl = 1500, reap = 300;
    const [A, B] = await serverPair({ ...JWT, 'registry.ttl_ms': ttl, 'registry.reap_ms': reap, 'registry.heartbeat_ms': 300 });
    const u = tagger();
    const [bob, carol, dave, f1] = ['bob', 'carol', 'dave', 'f1'].map(u);
    const contacts = [bob, carol, dave, f1];
    const tabs = [];
    let bobTab, killed = false;
    try {
      const w = await watch(A, { sub: u('me'), contacts });
      tabs.push(w);
      await w.snapshot();
      bobTab = await online(B, bob);
      tabs.push(await online(A, carol));
      await w.event(bob, 'online');
      await w.event(carol, 'online');

      B.proc.kill('SIGKILL');
      killed = true;
      const t0 = Date.now();
      const off = await w.event(bob, 'offline', 1, ttl + reap + 5000);
      const took = off.at - t0;
      console.log(`# killed server: offline after ${took} ms (ttl ${ttl}, reap ${reap})`);
      assert.ok(took <= ttl + 2 * reap + 1500, `offline after ${took} ms (ttl ${ttl}, reap ${reap})`);
      assert.ok(off.seen >= t0 - ttl - 5 && off.seen <= off.at + 5, `seen ${off.seen} near the death (${t0})`);
      // A snapshot taken now says the same.
      const w2 = await watch(A, { sub: u('late'), contacts });
      tabs.push(w2);
      const c = byUser((await w2.snapshot()).contacts);
      assert.equal(c[bob].online, false);
      assert.equal(c[carol].online, true, 'a user of the surviving server stays online');
      // Live events go on: bob comes back through A.
      tabs.push(await online(A, bob));
      await w.event(bob, 'online', 2);
      await w2.event(bob, 'online');
      tabs.push(await fence(w, A, f1));
      assert.deepEqual(w.of(bob).map((e) => e.type), ['online', 'offline', 'online']);
      assert.deepEqual(w.of(carol).map((e) => e.type), ['online'], 'nothing for carol (on A)');
      assert.deepEqual(w.redundant, []);
    } finally {
      bobTab?.forceDisconnect();
      bobTab?.deactivate();
      await Promise.all(tabs.map((t) => t.deactivate()));
      await stopAll([A, B], [0, killed ? null : 0]);
    }
  }, T);
});

describe('a Redis restart', () => {
  // Redis is restarted with its data (SAVE, then the restart loads
  // dump.rdb, removed again so later restarts come back empty) or without.
  const dump = path.join(process.env.LECTERN_VAR_DIR || '', 'redis', 'dump.rdb');
  for (const kept of [false, true]) {
    test(`data ${kept ? 'kept' : 'lost'}: watchers end with the right status (changes during the outage included) and live events work afterwards`, async () => {
      const [A, B] = await serverPair(JWT);
      const u = tagger();
      const [bob, carol, dave, f1] = ['bob', 'carol', 'dave', 'f1'].map(u);
      const contacts = [bob, carol, dave, f1];
      const tabs = [];
      try {
        const w = await watch(A, { sub: u('me'), contacts, reconnectDelay: 200 });
        tabs.push(w);
        await w.snapshot();
        const bobTab = await online(B, bob, { reconnectDelay: 200 });
        tabs.push(bobTab);
        const carolTab = await online(A, carol, { reconnectDelay: 200 });
        tabs.push(carolTab);
        await w.event(bob, 'online');
        await w.event(carol, 'online');

        if (kept) redis('SAVE');
        await service('stop', 'redis');
        await waitFor(async () => (await httpGet(A.port, '/readyz')).status === 503, { timeout: 15000, what: '/readyz 503' });
        await carolTab.deactivate(); // gone while Redis is down
        await service('start', 'redis');
        if (kept) rmSync(dump, { force: true });
        for (const s of [A, B])
          await waitFor(async () => (await httpGet(s.port, '/readyz')).status === 200,
            { timeout: 30000, what: `/readyz 200 on ${s.port}` });

        const want = { [bob]: true, [carol]: false, [dave]: false, [f1]: false };
        await waitFor(() => Object.entries(want).every(([k, v]) => (w.view.get(k)?.online ?? null) === v),
          { timeout: 15000, what: `the watcher's view ${JSON.stringify(want)}` });
        const late = await watch(B, { sub: u('late'), contacts });
        tabs.push(late);
        const c = byUser((await late.snapshot()).contacts);
        assert.deepEqual(Object.fromEntries(Object.entries(c).map(([k, v]) => [k, v.online])), want,
          'a fresh snapshot agrees');

        // Live events afterwards, both ways and through both servers.
        const n = w.of(dave, 'online').length;
        tabs.push(await online(B, dave));
        await w.event(dave, 'online', n + 1, 10000);
        await late.event(dave, 'online', 1, 10000);
        const m = w.of(bob, 'offline').length;
        await bobTab.deactivate();
        await w.event(bob, 'offline', m + 1, 10000);
        await late.event(bob, 'offline', 1, 10000);
        tabs.push(await fence(w, A, f1));
        assert.equal(w.view.get(bob).online, false);
        assert.equal(w.view.get(dave).online, true);
        console.log(`# redis restart (data ${kept ? 'kept' : 'lost'}): watcher reconnected ${w.connects - 1} time(s), ` +
          `${w.snapshots.length} snapshot(s), ${w.events.length} event(s)`);
      } finally {
        if (kept) rmSync(dump, { force: true });
        await Promise.all(tabs.map((t) => t.deactivate()));
        await stopAll([A, B]);
      }
    }, { timeout: 120000 });
  }
});

describe('contact lists stored through the API', () => {
  let A, B;
  before(async () => { [A, B] = await serverPair({ ...JWT, 'api.keys': API_KEY }); });
  after(async () => { await stopAll([A, B]); });

  const api = async (server, method, user, body, { key = API_KEY, suffix = '' } = {}) => {
    const headers = { 'x-api-key': key };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`http://127.0.0.1:${server.port}/api/users/${encodeURIComponent(user)}/contacts${suffix}`,
      { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, text: await res.text(), json() { return JSON.parse(this.text); } };
  };
  const put = async (server, user, contacts) => {
    const r = await api(server, 'PUT', user, { contacts });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { user, count: contacts.length });
  };

  test('a stored list is the snapshot, and wins over the token claim (an empty one too)', async () => {
    const u = tagger();
    const [me, bob, carol, x] = ['me', 'bob', 'carol', 'x'].map(u);
    const tabs = [];
    try {
      await put(A, me, [bob, carol]);
      const g = await api(B, 'GET', me);
      assert.equal(g.status, 200, g.text);
      assert.deepEqual({ ...g.json(), contacts: g.json().contacts.sort() }, { user: me, contacts: [bob, carol].sort(), stored: true });
      tabs.push(await online(A, bob));
      const w = await watch(B, { sub: me, contacts: [x] });
      tabs.push(w);
      const c = byUser((await w.snapshot()).contacts);
      assert.deepEqual(Object.keys(c).sort(), [bob, carol].sort(), 'the stored list, not the claim');
      assert.equal(c[bob].online, true);
      assert.equal(c[carol].online, false);

      const empty = u('empty');
      await put(B, empty, []);
      const w2 = await watch(A, { sub: empty, contacts: [bob] });
      tabs.push(w2);
      assert.deepEqual((await w2.snapshot()).contacts, [], 'a stored empty list wins over the claim');
      const r = await api(A, 'GET', u('nolist'));
      assert.deepEqual(r.json(), { user: u('nolist'), contacts: [], stored: false });
    } finally {
      await Promise.all(tabs.map((t) => t.deactivate()));
    }
  }, T);

  test('a change through the API on server A reaches a watcher on server B as a new snapshot within 1 s (PUT, PATCH, DELETE back to the claim), and events follow the new list', async () => {
    const u = tagger();
    const [me, bob, carol, dave, x, f1] = ['me', 'bob', 'carol', 'dave', 'x', 'f1'].map(u);
    const tabs = [];
    const within = async (w, n, call, what) => {
      const t0 = Date.now();
      await call();
      const t1 = Date.now();
      await waitFor(() => w.snapshots.length >= n, { timeout: 1000, what: `new snapshot within 1 s of the 200 (${what})` });
      console.log(`# ${what}: request ${t1 - t0} ms, snapshot ${Date.now() - t1} ms after the 200`);
      return w.snapshots[n - 1].contacts.map((c) => c.user).sort();
    };
    try {
      const w = await watch(B, { sub: me, contacts: [x] });
      tabs.push(w);
      assert.deepEqual((await w.snapshot()).contacts.map((c) => c.user), [x], 'the claim, before any stored list');

      assert.deepEqual(await within(w, 2, () => put(A, me, [bob, carol, f1]), 'PUT'), [bob, carol, f1].sort());
      tabs.push(await online(A, x));     // no longer a contact: no event
      tabs.push(await online(A, bob));
      await w.event(bob, 'online');
      assert.deepEqual(w.of(x), [], 'no event for a user dropped from the list');

      assert.deepEqual(await within(w, 3, async () => {
        const r = await api(A, 'PATCH', me, { add: [dave], remove: [carol] });
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json(), { user: me, count: 3 });
      }, 'PATCH'), [bob, dave, f1].sort());
      const s3 = byUser(w.snapshots[2].contacts);
      assert.equal(s3[bob].online, true, 'the new snapshot carries the status');
      tabs.push(await online(A, dave));
      await w.event(dave, 'online');

      assert.deepEqual(await within(w, 4, async () => {
        const r = await api(A, 'DELETE', me);
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json(), { user: me, count: 0 });
      }, 'DELETE'), [x], 'no stored list: the claim again');
      assert.equal(byUser(w.snapshots[3].contacts)[x].online, true);

      // No event was repeated across the snapshots.
      for (const who of [bob, dave]) assert.equal(w.of(who).length, 1, `one event for ${who}`);
    } finally {
      await Promise.all(tabs.map((t) => t.deactivate()));
    }
  }, T);

  test('x-users and GET .../contacts/status follow the stored list, not the claim; an API key may read the status', async () => {
    const u = tagger();
    const [me, bob, x] = ['me', 'bob', 'x'].map(u);
    const tabs = [];
    try {
      await put(B, me, [bob]);
      const ok = await watch(A, { sub: me, contacts: [x], headers: { 'x-users': bob } });
      tabs.push(ok);
      assert.deepEqual((await ok.snapshot()).contacts.map((c) => c.user), [bob]);
      const bad = await watch(A, { sub: me, contacts: [x], headers: { 'x-users': x } });
      tabs.push(bad);
      await waitFor(() => bad.errors.length, { what: 'ERROR: x is in the claim but not in the stored list' });

      const url = `/api/users/${encodeURIComponent(me)}/contacts/status`;
      const own = await httpGet(B.port, url, { headers: { authorization: `Bearer ${mint(me, { contacts: [x] })}` } });
      assert.equal(own.status, 200, own.text);
      assert.deepEqual(JSON.parse(own.text).contacts.map((c) => c.user), [bob]);
      const byKey = await httpGet(B.port, url, { headers: { 'x-api-key': API_KEY } });
      assert.equal(byKey.status, 200, byKey.text);
      assert.deepEqual(JSON.parse(byKey.text), JSON.parse(own.text));
      const byAdmin = await httpGet(B.port, url, { headers: { authorization: `Bearer ${mint(u('admin'), { role: 'admin' })}` } });
      assert.equal(byAdmin.status, 200, byAdmin.text);
      assert.deepEqual(JSON.parse(byAdmin.text), JSON.parse(own.text), 'an admin reads the stored list');
      const wrongKey = await httpGet(B.port, url, { headers: { 'x-api-key': `${API_KEY}x` } });
      assert.equal(wrongKey.status, 401, wrongKey.text);
    } finally {
      await Promise.all(tabs.map((t) => t.deactivate()));
    }
  }, T);
});
