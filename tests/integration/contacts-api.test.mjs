// The contacts API for other services: PUT/PATCH/DELETE/GET
// /api/users/<id>/contacts (server/http_contacts.c, docs/protocol.md
// "Contacts"). Lists are stored in MySQL (the schema comes from a real
// lectern-storage worker's migrations); each write drops the Redis copy
// and is published on P contacts before the 200.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clusterName, metric, repoRoot, service, sql, startServer, startWorker, waitFor } from './helpers.mjs';

const KEY = 'contacts-key-0123456789abcdef';
const KEY2 = 'other-service-key-0123456789';
const dir = mkdtempSync(path.join(os.tmpdir(), 'lectern-contacts-'));
const keys = path.join(dir, 'keys');
writeFileSync(keys, 'k1 HS256 contacts-secret-0123456789abcdef0123456789\n');
const mint = (args) =>
  execFileSync(path.join(repoRoot, 'scripts', 'mint-token'), ['--keys', keys, ...args]).toString().trim();
const redisPort = process.env.LECTERN_REDIS_PORT || 6390;
const redis = (...args) => execFileSync('redis-cli', ['-p', String(redisPort), '--raw', ...args]).toString();

async function call(port, method, user, { body, key = KEY, header = 'bearer', raw } = {}) {
  const headers = {};
  if (key && header === 'bearer') headers.authorization = `Bearer ${key}`;
  if (key && header === 'x-api-key') headers['x-api-key'] = key;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`http://127.0.0.1:${port}/api/users/${encodeURIComponent(user)}/contacts`, {
    method, headers, body: raw !== undefined ? raw : body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

// A redis-cli SUBSCRIBE on `channel`, collecting the messages' payloads.
async function subscribe(channel) {
  const p = spawn('redis-cli', ['-p', String(redisPort), '--raw', 'SUBSCRIBE', channel]);
  const lines = [];
  p.stdout.on('data', (d) => lines.push(...d.toString().split('\n').filter((l) => l.length)));
  // "subscribe", channel, 1 once the subscription is in place.
  await waitFor(() => lines.length >= 3, { what: `SUBSCRIBE ${channel}` });
  return {
    payloads: () => {
      const out = [];
      for (let i = 3; i + 2 < lines.length + 0; i += 3) if (lines[i] === 'message') out.push(lines[i + 2]);
      return out;
    },
    close: () => p.kill(),
  };
}

describe('contacts API', () => {
  let srv;
  let cluster;
  before(async () => {
    cluster = clusterName();
    const w = await startWorker({ cluster });     // applies the migrations (0003_contacts)
    await w.stop();
    srv = await startServer({
      cluster,
      sets: { 'api.keys': `${KEY}, ${KEY2}`, 'api.max_body': '4k', 'contacts.max': 5,
        'auth.mode': 'jwt', 'auth.keys': keys, 'server.listen': '127.0.0.1' },
    });
  });
  after(async () => {
    if (srv) assert.equal((await srv.stop()).code, 0);
  });

  test('PUT, PATCH, DELETE and GET with a key: GET reflects each write, and MySQL holds the rows', async () => {
    const u = `u-${cluster}`;
    let r = await call(srv.port, 'GET', u);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { user: u, contacts: [], stored: false });

    r = await call(srv.port, 'PUT', u, { body: { contacts: ['b', 'a', 'b'] } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { user: u, count: 2 });
    r = await call(srv.port, 'GET', u, { header: 'x-api-key', key: KEY2 });
    assert.deepEqual(r.json, { user: u, contacts: ['a', 'b'], stored: true });
    assert.deepEqual(await sql(`SELECT contact_id FROM contacts WHERE user_id = '${u}' ORDER BY contact_id`),
      [['a'], ['b']]);

    r = await call(srv.port, 'PATCH', u, { body: { add: ['c', 'd'], remove: ['a'] }, header: 'x-api-key' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { user: u, count: 3 });
    r = await call(srv.port, 'GET', u);
    assert.deepEqual(r.json.contacts, ['b', 'c', 'd']);

    // More than contacts.max (5) after the patch: refused, nothing changed.
    r = await call(srv.port, 'PATCH', u, { body: { add: ['e', 'f', 'g'] } });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error, /contacts\.max/);
    assert.deepEqual((await call(srv.port, 'GET', u)).json.contacts, ['b', 'c', 'd']);

    // An empty stored list is still a stored list.
    r = await call(srv.port, 'PUT', u, { body: { contacts: [] } });
    assert.deepEqual(r.json, { user: u, count: 0 });
    assert.deepEqual((await call(srv.port, 'GET', u)).json, { user: u, contacts: [], stored: true });

    r = await call(srv.port, 'DELETE', u, { header: 'x-api-key' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { user: u, count: 0 });
    assert.deepEqual((await call(srv.port, 'GET', u)).json, { user: u, contacts: [], stored: false });
    assert.deepEqual(await sql(`SELECT COUNT(*) FROM contact_lists WHERE user_id = '${u}'`), [['0']]);
    assert.ok(await metric(srv.port, 'lectern_contacts_writes_total') >= 4);
  });

  test('a write deletes the Redis copy and publishes the user on P contacts', async () => {
    const u = `r-${cluster}`;
    const key = `${cluster}:contacts:${u}`;
    const sub = await subscribe(`${cluster}:contacts`);
    try {
      redis('SET', key, 'L\nstale');
      const r = await call(srv.port, 'PUT', u, { body: { contacts: ['x'] } });
      assert.equal(r.status, 200, r.text);
      assert.equal(redis('EXISTS', key).trim(), '0');
      await waitFor(() => sub.payloads().includes(u), { what: 'the PUBLISH on P contacts' });
      redis('SET', key, 'L\nstale');
      await call(srv.port, 'DELETE', u);
      assert.equal(redis('EXISTS', key).trim(), '0');
      await waitFor(() => sub.payloads().filter((p) => p === u).length === 2, { what: 'a second PUBLISH' });
    } finally {
      sub.close();
    }
  });

  test('no key or a wrong key is 401, a student token is no key', async () => {
    const student = mint(['--sub', 'stu', '--rooms', 'physics']);
    const admin = mint(['--sub', 'root', '--role', 'admin']);
    for (const method of ['GET', 'PUT', 'PATCH', 'DELETE']) {
      const body = method === 'PUT' ? { contacts: ['a'] } : method === 'PATCH' ? { add: ['a'] } : undefined;
      assert.equal((await call(srv.port, method, 'v', { body, key: null })).status, 401, method);
      assert.equal((await call(srv.port, method, 'v', { body, key: 'wrong-key-0123456789abcdef' })).status, 401);
      assert.equal((await call(srv.port, method, 'v', { body, key: 'wrong', header: 'x-api-key' })).status, 401);
      assert.equal((await call(srv.port, method, 'stu', { body, key: student })).status, 401);
      assert.equal((await call(srv.port, method, 'stu', { body, key: admin })).status, 401);
    }
    assert.deepEqual(await sql("SELECT COUNT(*) FROM contact_lists WHERE user_id IN ('v', 'stu')"), [['0']]);
  });

  test('bad JSON, bad ids and too many contacts are 400 with a reason; a body over api.max_body is 413', async () => {
    const bad = [
      { raw: '{"contacts": [' },
      { raw: '[]' },
      { body: { contacts: 'a' } },
      { body: { contacts: [1] } },
      { body: { contacts: ['a,b'] } },
      { body: { contacts: [''] } },
      { body: { contacts: ['x'.repeat(129)] } },
      { body: { contacts: ['tab\there'] } },
      { body: { contacts: ['a', 'b', 'c', 'd', 'e', 'f'] } },
      { body: { contacts: ['a'], extra: 1 } },
      { body: {} },
    ];
    for (const b of bad) {
      const r = await call(srv.port, 'PUT', 'w', b);
      assert.equal(r.status, 400, JSON.stringify(b));
      assert.equal(typeof r.json.error, 'string');
    }
    let r = await call(srv.port, 'PATCH', 'w', { body: { add: ['a'], remove: ['a'] } });
    assert.equal(r.status, 400);
    r = await call(srv.port, 'PUT', 'bad,id', { body: { contacts: [] } });
    assert.equal(r.status, 400);
    r = await call(srv.port, 'PUT', 'w', { raw: JSON.stringify({ contacts: ['y'.repeat(100)] }) + ' '.repeat(5000) });
    assert.equal(r.status, 413, r.text);
    assert.match(r.json.error, /api\.max_body/);
    // A body well over the limit is counted, never kept: the connection still answers.
    r = await call(srv.port, 'PUT', 'w', { raw: ' '.repeat(2 << 20) });
    assert.equal(r.status, 413);
    assert.deepEqual(await sql("SELECT COUNT(*) FROM contact_lists WHERE user_id = 'w'"), [['0']]);
  });

  test('with tokens required, a server key also reads any room\'s history and presence, and /api/stats; nothing without one', async () => {
    const get = (p, headers = {}) => fetch(`http://127.0.0.1:${srv.port}${p}`, { headers })
      .then(async (res) => ({ status: res.status, text: await res.text() }));
    for (const p of ['/api/rooms/some-room/messages?limit=5', '/api/rooms/some-room/presence', '/api/stats',
      '/api/presence?users=a,b']) {
      const ok = await get(p, { 'x-api-key': KEY });
      assert.equal(ok.status, 200, `${p}: ${ok.text}`);
      assert.equal((await get(p, { authorization: `Bearer ${KEY2}` })).status, 200, p);
      assert.equal((await get(p)).status, 401, p);
      assert.equal((await get(p, { 'x-api-key': 'not-a-key-0123456789abcdef' })).status, 401, p);
    }
    // A student's token reads only its rooms: the key is not a way around that for tokens.
    const tok = mint(['--sub', 'stu', '--rooms', 'own-room']);
    assert.equal((await get('/api/rooms/some-room/messages', { authorization: `Bearer ${tok}` })).status, 403);
  });

  test('MySQL down: 503, and writes work again once it is back', async () => {
    await service('stop', 'mariadb');
    try {
      const r = await call(srv.port, 'PUT', 'm', { body: { contacts: ['a'] } });
      assert.equal(r.status, 503, r.text);
      assert.match(r.json.error, /MySQL/);
      assert.equal((await call(srv.port, 'GET', 'm')).status, 503);
    } finally {
      await service('start', 'mariadb');
    }
    await waitFor(async () => (await call(srv.port, 'PUT', 'm', { body: { contacts: ['a'] } })).status === 200,
      { timeout: 20000, what: 'a write after MySQL is back' });
  });
});

describe('contacts API with api.keys empty', () => {
  test('every method is 403 with a reason', async () => {
    const srv = await startServer({});
    try {
      for (const method of ['GET', 'PUT', 'PATCH', 'DELETE']) {
        const r = await call(srv.port, method, 'z', { body: method === 'PUT' || method === 'PATCH' ? {} : undefined });
        assert.equal(r.status, 403, method);
        assert.match(r.json.error, /api\.keys/);
      }
    } finally {
      assert.equal((await srv.stop()).code, 0);
    }
  });
});
