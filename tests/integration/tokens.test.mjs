// Tokens over a session's life, against real servers: auth.issuer and
// auth.audience at CONNECT, on /api and on refresh; a session ending with
// ERROR "Token expired" when its token runs out; a fresh token (SEND to
// /token) keeping it, and every way a fresh token is refused; client-js
// refreshing through its callback; and /api/presence?users= telling a
// student only about users present in rooms the student may read, with
// the Redis record behind it (user:U:rooms) following joins, leaves and
// the reaping of a dead server. Tokens come from scripts/mint-token.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import WebSocket from 'ws';
import { LecternClient } from '../../client-js/src/index.js';
import { clusterName, httpGet, metric, rawClient, repoRoot, sleep, startServer, waitFor } from './helpers.mjs';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lectern-tokens-'));
const keys = path.join(dir, 'keys');
writeFileSync(keys, 'k1 HS256 tokens-secret-0123456789abcdef0123456789\n');
const otherKeys = path.join(dir, 'other');
writeFileSync(otherKeys, 'k1 HS256 someone-elses-secret-0123456789abcdef01\n');

const mint = (args, keyFile = keys) =>
  execFileSync(path.join(repoRoot, 'scripts', 'mint-token'), ['--keys', keyFile, ...args]).toString().trim();
const expOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).exp;

const ISS = 'https://idp.example.edu';
const AUD = 'lectern';
const JWT = { 'auth.mode': 'jwt', 'auth.keys': keys };

async function connect(s, token) {
  const c = await rawClient(s.wsUrl);
  await c.connect({ 'accept-version': '1.2', host: '/', passcode: token });
  return c;
}

async function subscribed(c, dest, id = dest) {
  c.frame('SUBSCRIBE', { id, destination: dest, receipt: `sub-${id}` });
  await waitFor(() => c.frames.find((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === `sub-${id}`),
    { what: `subscribed to ${dest}` });
}

async function refused(c, message = 'Access refused') {
  const err = await c.waitFrame('ERROR');
  assert.equal(err.headers.message, message);
  await c.waitClosed();
  return err;
}

const receipts = (c) => c.frames.filter((f) => f.command === 'RECEIPT').map((f) => f.headers['receipt-id']);

describe('issuer and audience', () => {
  let s;
  before(async () => { s = await startServer({ sets: { ...JWT, 'auth.issuer': ISS, 'auth.audience': AUD } }); });
  after(async () => { assert.equal((await s.stop()).code, 0); });

  const tok = (extra) => mint(['--sub', 'stu', '--rooms', 'physics', ...extra]);

  test('CONNECT: the right iss and an aud naming the server (string or array) connect; a missing or wrong one is refused', async () => {
    for (const t of [tok(['--iss', ISS, '--aud', AUD]), tok(['--iss', ISS, '--aud', `grades,${AUD}`])])
      (await connect(s, t)).close();
    const before = await metric(s.port, 'lectern_auth_failures_total');
    const bad = [
      tok(['--aud', AUD]),                                       // no iss
      tok(['--iss', 'https://evil.example', '--aud', AUD]),       // another issuer
      tok(['--iss', `${ISS}/`, '--aud', AUD]),                    // not exactly it
      tok(['--iss', ISS]),                                        // no aud
      tok(['--iss', ISS, '--aud', 'grades']),                     // a token for another service
      tok(['--iss', ISS, '--aud', 'grades,lectern-staging']),
    ];
    for (const t of bad) {
      const c = await rawClient(s.wsUrl);
      c.frame('CONNECT', { 'accept-version': '1.2', host: '/', passcode: t });
      const err = await refused(c);
      assert.equal(err.body.toString(), 'Authentication failed.');
    }
    assert.equal(await metric(s.port, 'lectern_auth_failures_total'), before + bad.length);
    for (const reason of ['bad_issuer', 'bad_audience'])
      assert.ok(s.logs.some((l) => l.includes('event=auth_failed') && l.includes(`reason=${reason}`)), reason);
  });

  test('/api: the same rule (401 for a token meant for another service)', async () => {
    const get = (t) => httpGet(s.port, '/api/rooms/physics/presence', { headers: { authorization: `Bearer ${t}` } });
    assert.equal((await get(tok(['--iss', ISS, '--aud', AUD]))).status, 200);
    assert.equal((await get(tok(['--iss', ISS, '--aud', 'grades']))).status, 401);
    assert.equal((await get(tok(['--aud', AUD]))).status, 401);
    const online = await httpGet(s.port, '/api/presence?users=stu', { headers: { authorization: `Bearer ${tok(['--iss', ISS])}` } });
    assert.equal(online.status, 401);
  });

  test('a fresh token (SEND to /token) must carry them too', async () => {
    const c = await connect(s, tok(['--iss', ISS, '--aud', AUD]));
    c.frame('SEND', { destination: '/token', passcode: tok(['--iss', ISS, '--aud', AUD]), receipt: 'ok' });
    await waitFor(() => receipts(c).includes('ok'), { what: 'refresh receipt' });
    c.frame('SEND', { destination: '/token', passcode: tok(['--iss', ISS, '--aud', 'grades']), receipt: 'bad' });
    const err = await refused(c);
    assert.equal(err.headers['receipt-id'], 'bad');
    assert.equal(err.body.toString(), 'Authentication failed.');
  });
});

describe('expiry and refresh', () => {
  let s;
  // No clock skew, so that a token's exp is the session's end.
  before(async () => { s = await startServer({ sets: { ...JWT, 'auth.clock_skew_s': 0 } }); });
  after(async () => { assert.equal((await s.stop()).code, 0); });

  const tok = (ttl, extra = []) => mint(['--sub', 'stu', '--rooms', 'physics', '--ttl', String(ttl), ...extra]);

  test('a session whose token expires gets ERROR "Token expired" (saying how to refresh) and is closed, at exp and not before', async () => {
    const reason = 'lectern_stomp_errors_by_reason_total{reason="Token expired"}';
    const before = await metric(s.port, 'lectern_token_expiries_total');
    const beforeReason = await metric(s.port, reason);
    const t = tok(2);
    const c = await connect(s, t);
    await subscribed(c, '/topic/physics');
    const err = await c.waitFrame('ERROR', 6000);
    const at = Date.now();
    assert.equal(err.headers.message, 'Token expired');
    assert.match(err.body.toString(), /destination:\/token/);
    assert.match(err.body.toString(), /passcode/);
    assert.ok(at >= expOf(t) * 1000 - 250, `ERROR ${expOf(t) * 1000 - at} ms before exp`);
    assert.ok(at <= expOf(t) * 1000 + 1500, `ERROR ${at - expOf(t) * 1000} ms after exp`);
    console.log(`# ERROR "Token expired" came ${at - expOf(t) * 1000} ms after exp`);
    await c.waitClosed();
    assert.equal(await metric(s.port, 'lectern_token_expiries_total'), before + 1);
    assert.equal(await metric(s.port, reason), beforeReason + 1);
  });

  test('a fresh token sent before exp keeps the session past the first exp; its claims replace the old ones, its exp included', async () => {
    const before = await metric(s.port, 'lectern_token_refreshes_total');
    const first = tok(2);
    const c = await connect(s, first);
    await subscribed(c, '/topic/physics');
    // Not yet permitted: chemistry.
    const second = tok(5, ['--rooms', 'physics,chemistry']);
    c.frame('SEND', { destination: '/token', passcode: second, receipt: 'fresh' });
    await waitFor(() => receipts(c).includes('fresh'), { what: 'RECEIPT of the fresh token' });
    assert.equal(await metric(s.port, 'lectern_token_refreshes_total'), before + 1);
    // Past the first token's expiry, the session goes on.
    await waitFor(() => Date.now() > expOf(first) * 1000 + 1200, { timeout: 5000, what: 'the first exp' });
    c.frame('SEND', { destination: '/topic/physics', receipt: 'after' }, 'still here');
    await waitFor(() => receipts(c).includes('after'), { what: 'a SEND after the first exp' });
    await waitFor(() => c.frames.some((f) => f.command === 'MESSAGE' && f.body.toString() === 'still here'), { what: 'delivery' });
    await subscribed(c, '/topic/chemistry');       // the new token's rooms
    assert.equal(c.frames.find((f) => f.command === 'ERROR'), undefined);
    assert.equal(c.closed, null);
    // And the second token's exp ends it.
    const err = await c.waitFrame('ERROR', 8000);
    assert.equal(err.headers.message, 'Token expired');
    assert.ok(Date.now() >= expOf(second) * 1000 - 250, "not before the second exp");
    await c.waitClosed();
  });

  test('a fresh token expiring sooner than the first ends the session at its own exp', async () => {
    const c = await connect(s, tok(60));
    await subscribed(c, '/topic/physics');
    const second = tok(2);
    c.frame('SEND', { destination: '/token', passcode: second, receipt: 'sooner' });
    await waitFor(() => receipts(c).includes('sooner'), { what: 'RECEIPT of the fresh token' });
    const err = await c.waitFrame('ERROR', 6000);
    const at = Date.now();
    assert.equal(err.headers.message, 'Token expired');
    assert.ok(at >= expOf(second) * 1000 - 250, `ERROR ${expOf(second) * 1000 - at} ms before exp`);
    assert.ok(at <= expOf(second) * 1000 + 1500, `ERROR ${at - expOf(second) * 1000} ms after exp`);
    await c.waitClosed();
  });

  test('fresh tokens that are refused end the session: another sub, forged, expired, missing, and one not permitting a subscribed room', async () => {
    const failures = await metric(s.port, 'lectern_auth_failures_total');
    const denied = await metric(s.port, 'lectern_access_denied_total');
    const good = tok(60);
    const [h, p] = good.split('.');
    const cases = [
      { passcode: mint(['--sub', 'prof', '--role', 'admin', '--ttl', '60']), body: 'Authentication failed.' },
      { passcode: mint(['--sub', 'stu', '--rooms', 'physics', '--ttl', '60'], otherKeys), body: 'Authentication failed.' },
      { passcode: `${h}.${Buffer.from('{"sub":"stu","role":"admin","exp":9999999999}').toString('base64url')}.${good.split('.')[2]}`, body: 'Authentication failed.' },
      { passcode: tok(-5), body: 'Authentication failed.' },
      { passcode: undefined, body: 'Authentication failed.' },
      { passcode: tok(60, ['--rooms', 'chemistry']), body: 'Not permitted to read: /topic/physics' },
      { passcode: tok(60, ['--rooms', 'physics']), presence: true, body: 'Not permitted to read: /presence/chemistry' },
    ];
    for (const k of cases) {
      const c = await connect(s, tok(60, ['--rooms', 'physics,chemistry']));
      await subscribed(c, '/topic/physics');
      if (k.presence) await subscribed(c, '/presence/chemistry');
      c.frame('SEND', { destination: '/token', receipt: 'r', ...(k.passcode ? { passcode: k.passcode } : {}) });
      const err = await refused(c);
      assert.equal(err.headers['receipt-id'], 'r');
      assert.equal(err.body.toString(), k.body);
      assert.ok(!receipts(c).includes('r'));
    }
    assert.equal(await metric(s.port, 'lectern_auth_failures_total'), failures + 5);
    assert.equal(await metric(s.port, 'lectern_access_denied_total'), denied + 2);
    assert.ok(s.logs.some((l) => l.includes('event=auth_failed') && l.includes('reason=refresh_other_sub')));
  });

  test('client-js keeps its connection past exp by refreshing through its callback', async () => {
    let calls = 0;
    const client = new LecternClient(s.wsUrl, {
      WebSocket, token: tok(3), refreshToken: async () => { calls++; return tok(3); },
      reconnect: { base: 100, cap: 500 }, heartbeat: { outgoing: 0, incoming: 0 },
    });
    const states = [];
    const errors = [];
    client.on('state', (st) => states.push(st));
    client.on('error', (e) => errors.push(e.message));
    try {
      await client.connect();
      const room = client.join('physics', { presence: false });
      const got = [];
      room.on('message', (m) => got.push(m.body));
      const t0 = Date.now();
      let n = 0;
      while (Date.now() - t0 < 7000) {            // beyond two token lifetimes
        await room.send(`m${n++}`);
        await sleep(250); // the sending rate over the token lifetimes under test
      }
      await waitFor(() => got.length === n, { what: 'every message' });
      assert.ok(calls >= 2, `refreshToken called ${calls} times`);
      console.log(`# client-js: ${n} sends over ${Date.now() - t0} ms with 3 s tokens, ${calls} refreshes, no reconnect`);
      assert.deepEqual(states, ['connecting', 'online'], 'never dropped');
      assert.deepEqual(errors, []);
    } finally {
      client.disconnect();
    }
  });

  test('with auth.mode=none there is no token to replace: a SEND to /token is receipted and changes nothing', async () => {
    const u = await startServer();
    try {
      const c = await rawClient(u.wsUrl);
      await c.connect({ 'accept-version': '1.2', host: '/', login: 'dev' });
      c.frame('SEND', { destination: '/token', passcode: 'anything', receipt: 't' });
      await waitFor(() => receipts(c).includes('t'), { what: 'receipt' });
      assert.equal(c.closed, null);
      c.close();
    } finally {
      assert.equal((await u.stop()).code, 0);
    }
  });
});

// redis-cli against the suite's Redis.
function redis(...args) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-p', String(process.env.LECTERN_REDIS_PORT || 6390), '--raw', ...args], (err, out) =>
      (err ? reject(err) : resolve(out.split('\n').filter((l) => l.length))));
  });
}

describe('who is online: /api/presence?users=', () => {
  test('a student learns only about users present in rooms the student may read; an admin about everyone; the record follows leaves and a dead server', async () => {
    const cluster = clusterName();
    const sets = { ...JWT, 'registry.ttl_ms': 1000, 'registry.heartbeat_ms': 200, 'registry.reap_ms': 200 };
    const A = await startServer({ cluster, sets: { ...sets, 'server.id': `${cluster}-a` } });
    const B = await startServer({ cluster, sets: { ...sets, 'server.id': `${cluster}-b` } });
    const clients = [];
    try {
      const user = async (srv, sub, rooms, dests) => {
        const c = await connect(srv, mint(['--sub', sub, '--rooms', rooms]));
        for (const d of dests) await subscribed(c, d);
        clients.push(c);
        return c;
      };
      const bob = await user(A, 'bob', 'physics', ['/topic/physics']);
      await user(B, 'carol', 'chemistry', ['/topic/chemistry']);
      await user(A, 'dave', 'physics', []);                         // online, in no room
      await user(B, 'erin', 'cs-*', ['/topic/cs-101']);
      await user(B, 'fay', 'physics,chemistry', ['/presence/physics']); // watches, is not present
      const ask = async (srv, token) => {
        const r = await httpGet(srv.port, '/api/presence?users=bob,carol,dave,erin,fay,nobody',
          { headers: { authorization: `Bearer ${token}` } });
        assert.equal(r.status, 200, r.text);
        return JSON.parse(r.text).online;
      };
      const stu = mint(['--sub', 'stu', '--rooms', 'physics,cs-*']);
      const admin = mint(['--sub', 'root', '--role', 'admin']);
      const teacher = mint(['--sub', 'prof', '--role', 'instructor', '--rooms', 'chemistry']);
      for (const srv of [A, B]) {
        assert.deepEqual(await ask(srv, stu),
          { bob: true, carol: false, dave: false, erin: true, fay: false, nobody: false });
        assert.deepEqual(await ask(srv, teacher),
          { bob: false, carol: true, dave: false, erin: false, fay: false, nobody: false });
        assert.deepEqual(await ask(srv, admin),
          { bob: true, carol: true, dave: true, erin: true, fay: true, nobody: false });
      }
      // The record: one set per present user, holding their rooms.
      assert.deepEqual(await redis('SMEMBERS', `${cluster}:user:bob:rooms`), ['physics']);
      assert.deepEqual(await redis('SMEMBERS', `${cluster}:user:dave:rooms`), []);

      // bob leaves the room (still online): the student no longer sees him.
      bob.frame('UNSUBSCRIBE', { id: '/topic/physics', receipt: 'left' });
      await waitFor(() => receipts(bob).includes('left'), { what: 'unsubscribed' });
      await waitFor(async () => (await ask(A, stu)).bob === false, { what: 'bob gone for the student' });
      assert.equal((await ask(A, admin)).bob, true);
      assert.equal(await redis('EXISTS', `${cluster}:user:bob:rooms`).then((r) => r[0]), '0');

      // B dies: A reaps it, and its users' records go with their presence.
      B.proc.kill('SIGKILL');
      await waitFor(async () => (await ask(A, admin)).erin === false, { timeout: 10000, what: 'B reaped' });
      assert.deepEqual(await ask(A, teacher),
        { bob: false, carol: false, dave: false, erin: false, fay: false, nobody: false });
      for (const u of ['carol', 'erin'])
        assert.equal((await redis('EXISTS', `${cluster}:user:${u}:rooms`))[0], '0', u);
      for (const c of clients) c.close();
      await waitFor(async () => (await redis('KEYS', `${cluster}:user:*`)).length === 0,
        { what: 'no user records left' });
    } finally {
      for (const c of clients) c.close();
      assert.equal((await A.stop()).code, 0);
      await B.stop();
    }
  });
});
