// History over HTTP: GET /api/rooms/<room>/messages, answered from the Redis
// room log and MySQL, seamlessly (server/history.c, docs/protocol.md).
//
// MySQL is filled by a real lectern-storage worker when LECTERN_STORAGE_BIN
// names an executable (and LECTERN_HISTORY_SEED is not set). Otherwise the
// test seeds MySQL itself with exactly the rows the room log holds: the
// servers keep a long log while the messages are sent, the whole log is
// copied into MySQL, then the log is trimmed to the length the test wants
// (as registry.history_max would have done).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  httpGet, metric, repoRoot, service, sql, startCluster, startWorker, stompClient, waitFor,
} from './helpers.mjs';

function executable(file) {
  if (!file) return false;
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const seeding = !!process.env.LECTERN_HISTORY_SEED || !executable(process.env.LECTERN_STORAGE_BIN);
const SEED_LOG_MAX = 20000;

const idKey = (id) => id.split('-').map(BigInt);
const idLess = (a, b) => {
  const [a0, a1] = idKey(a);
  const [b0, b1] = idKey(b);
  return a0 < b0 || (a0 === b0 && a1 < b1);
};

async function history(port, room, query = '') {
  const r = await httpGet(port, `/api/rooms/${room}/messages${query ? `?${query}` : ''}`);
  return { status: r.status, json: JSON.parse(r.text) };
}

// Send n messages to room with receipts, at most `window` in flight.
async function sendMany(client, room, n, { window = 50, body = (i) => `m${i}` } = {}) {
  let next = 0;
  let done = 0;
  await new Promise((resolve) => {
    const pump = () => {
      while (next < n && next - done < window) {
        const i = next++;
        client.watchForReceipt(`h${i}`, () => {
          done++;
          if (done === n) resolve();
          else pump();
        });
        client.publish({ destination: `/topic/${room}`, body: body(i), headers: { receipt: `h${i}` } });
      }
    };
    pump();
  });
}

// --- Redis, spoken directly (binary-safe, for reading and trimming a room log) ---

function respParse(b, i) {
  const nl = b.indexOf('\r\n', i);
  if (nl < 0) return null;
  const line = b.toString('latin1', i + 1, nl);
  switch (String.fromCharCode(b[i])) {
    case '+': return { value: line, next: nl + 2 };
    case '-': return { value: new Error(line), next: nl + 2 };
    case ':': return { value: Number(line), next: nl + 2 };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, next: nl + 2 };
      if (b.length < nl + 2 + n + 2) return null;
      return { value: b.subarray(nl + 2, nl + 2 + n), next: nl + 4 + n };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next: nl + 2 };
      const arr = [];
      let j = nl + 2;
      for (let k = 0; k < n; k++) {
        const r = respParse(b, j);
        if (!r) return null;
        arr.push(r.value);
        j = r.next;
      }
      return { value: arr, next: j };
    }
    default: throw new Error(`bad RESP reply at ${i}`);
  }
}

function redis(...args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(process.env.LECTERN_REDIS_PORT || 6390), '127.0.0.1');
    let data = Buffer.alloc(0);
    sock.on('connect', () => {
      const parts = [Buffer.from(`*${args.length}\r\n`)];
      for (const a of args) {
        const v = Buffer.from(String(a));
        parts.push(Buffer.from(`$${v.length}\r\n`), v, Buffer.from('\r\n'));
      }
      sock.write(Buffer.concat(parts));
    });
    sock.on('data', (d) => {
      data = Buffer.concat([data, d]);
      const r = respParse(data, 0);
      if (!r) return;
      sock.end();
      if (r.value instanceof Error) reject(r.value);
      else resolve(r.value);
    });
    sock.on('error', reject);
  });
}

const logKey = (cluster, room) => `${cluster}:room:{${room}}:log`;

// The room log's entries as { id, f: { q, e, t, ... } } (field values are Buffers).
async function readLog(cluster, room, count) {
  const args = ['XRANGE', logKey(cluster, room), '-', '+'];
  if (count) args.push('COUNT', count);
  const entries = await redis(...args);
  return entries.map(([id, fields]) => {
    const f = {};
    for (let i = 0; i < fields.length; i += 2) f[fields[i].toString()] = fields[i + 1];
    return { id: id.toString(), f };
  });
}

// --- MySQL ------------------------------------------------------------------

// Run SQL text (any length) through the mariadb client's stdin.
function sqlScript(text) {
  return new Promise((resolve, reject) => {
    const p = spawn('mariadb', ['--no-defaults', '-h127.0.0.1', `-P${process.env.LECTERN_MYSQL_PORT || 3390}`,
      '-ulectern', '-plectern', 'lectern'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mariadb: ${err}`))));
    p.stdin.end(text);
  });
}

async function storedCount(room) {
  const [[n]] = await sql(`SELECT COUNT(*) FROM messages WHERE room = '${room}'`);
  return Number(n);
}

const hex = (b) => `X'${Buffer.from(b).toString('hex')}'`;

// Copy the whole room log into MySQL (idempotent), as the worker would.
async function seedFromLog(cluster, room) {
  const log = await readLog(cluster, room);
  for (let i = 0; i < log.length; i += 1000) {
    const rows = log.slice(i, i + 1000).map(({ id, f }) => {
      const [ms, n] = id.split('-');
      const opt = (v) => (v ? hex(v) : 'NULL');
      return `(${hex(room)},${ms},${n},${f.e},${f.q},${f.t},${hex(f.s || '')},${hex(f.n || '')},`
        + `${opt(f.c)},${opt(f.h)},${hex(f.b || '')},${hex(f.o || '')})`;
    });
    await sqlScript('INSERT IGNORE INTO messages (room, id_ms, id_n, epoch, seq, ts_ms, sender, '
      + `sender_name, content_type, headers, body, origin) VALUES\n${rows.join(',\n')};\n`);
  }
}

// MySQL's side of a test: a worker, or the table for seeding.
async function startStorage(cluster) {
  if (!seeding) return startWorker({ cluster });
  await sqlScript(readFileSync(path.join(repoRoot, 'storage-worker', 'schema', '0001_messages.sql'), 'utf8'));
  return { stop: async () => ({ code: 0 }) };
}

// registry.history_max for a test that wants a log of about `max` entries.
const logMax = (max) => ({ 'registry.history_max': seeding ? SEED_LOG_MAX : max });

// Wait until MySQL holds all n messages of room (seeding them first when
// there is no worker, then trimming the log to `keep` entries).
async function settle(cluster, room, n, keep) {
  if (seeding) {
    await seedFromLog(cluster, room);
    if (keep) await redis('XTRIM', logKey(cluster, room), 'MAXLEN', keep);
  }
  await waitFor(async () => (await storedCount(room)) === n,
    { timeout: 60000, interval: 200, what: `${n} rows of ${room} in MySQL` });
}

const seqs = (json) => json.messages.map((m) => m.seq);
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe(`history over HTTP (MySQL ${seeding ? 'seeded by the test' : 'written by lectern-storage'})`, () => {
  test('messages sent over STOMP appear in history in order, with the MESSAGE ids and every field', async () => {
    const c = await startCluster({ n: 1 });
    const [s] = c.servers;
    const room = `h1-${c.cluster}`;
    const store = await startStorage(c.cluster);
    const { client } = await stompClient(s.wsUrl, { connectHeaders: { login: 'alice', 'x-display-name': 'Alice A.' } });
    try {
      const got = [];
      await new Promise((resolve) => {
        client.watchForReceipt('s', resolve);
        client.subscribe(`/topic/${room}`, (m) => got.push(m), { receipt: 's' });
      });
      await sendMany(client, room, 5);
      await new Promise((resolve) => {
        client.watchForReceipt('bin', resolve);
        client.publish({ destination: `/topic/${room}`, binaryBody: new Uint8Array([0xff, 0, 1]),
          headers: { receipt: 'bin', 'content-type': 'application/octet-stream', 'x-note': 'a:b\nc' } });
      });
      await waitFor(() => got.length === 6, { what: '6 live messages' });
      await settle(c.cluster, room, 6);
      const { status, json } = await history(s.port, room);
      assert.equal(status, 200);
      assert.equal(json.room, room);
      assert.equal(json.more, false);
      assert.deepEqual(json.messages.map((m) => m.id), got.map((m) => m.headers['message-id']));
      assert.deepEqual(seqs(json), range(1, 6));
      assert.equal(json.before, json.messages[0].id);
      assert.equal(json.after, json.messages[5].id);
      const m0 = json.messages[0];
      assert.deepEqual(Object.keys(m0).sort(),
        ['body', 'content_type', 'id', 'room', 'sender', 'sender_name', 'sender_role', 'seq', 'timestamp']);
      assert.equal(m0.room, room);
      assert.equal(m0.sender_role, 'student');
      assert.equal(m0.body, 'm0');
      assert.equal(m0.sender, 'alice');
      assert.equal(m0.sender_name, 'Alice A.');
      assert.equal(m0.content_type, null);
      assert.equal(m0.timestamp, Number(got[0].headers.timestamp));
      const bin = json.messages[5];
      assert.equal(bin.body, undefined);
      assert.equal(Buffer.from(bin.body_base64, 'base64').toString('hex'), 'ff0001');
      assert.equal(bin.content_type, 'application/octet-stream');
      assert.deepEqual(bin.headers, { 'x-note': 'a:b\nc' });
      // limit and cursors
      const p = await history(s.port, room, 'limit=2');
      assert.deepEqual(p.json.messages.map((m) => m.body), ['m4', undefined]);
      assert.equal(p.json.more, true);
      const older = await history(s.port, room, `limit=2&before=${p.json.before}`);
      assert.deepEqual(older.json.messages.map((m) => m.body), ['m2', 'm3']);
      assert.equal(older.json.more, true);
      const oldest = await history(s.port, room, `limit=2&before=${older.json.before}`);
      assert.deepEqual(oldest.json.messages.map((m) => m.body), ['m0', 'm1']);
      assert.equal(oldest.json.more, false);
      const newer = await history(s.port, room, `limit=3&after=${json.messages[1].id}`);
      assert.deepEqual(newer.json.messages.map((m) => m.body), ['m2', 'm3', 'm4']);
      assert.equal(newer.json.more, true);
      const last = await history(s.port, room, `limit=3&after=${newer.json.after}`);
      assert.deepEqual(seqs(last.json), [6]);
      assert.equal(last.json.more, false);
      const none = await history(s.port, room, `after=${last.json.after}`);
      assert.deepEqual(none.json, { room, messages: [], more: false, before: null, after: null });
      const between = await history(s.port, room, `after=${json.messages[0].id}&before=${json.messages[3].id}`);
      assert.deepEqual(between.json.messages.map((m) => m.body), ['m1', 'm2']);
      assert.equal(between.json.more, false);
      const empty = await history(s.port, `nobody-${c.cluster}`);
      assert.equal(empty.status, 200);
      assert.deepEqual(empty.json, { room: `nobody-${c.cluster}`, messages: [], more: false, before: null, after: null });
    } finally {
      await client.deactivate();
      await store.stop();
      assert.deepEqual(await c.stop(), [0]);
    }
  });

  test('bad parameters get 400 with a reason', async () => {
    const c = await startCluster({ n: 1, sets: { 'history.max_limit': 500, 'stomp.max_room_name': 20 } });
    const [s] = c.servers;
    const store = await startStorage(c.cluster);
    try {
      const cases = [
        ['bad room name', 'bad$room', '', /room names/],
        ['room name too long', 'r'.repeat(21), '', /room names/],
        ['limit 0', 'r', 'limit=0', /limit must be an integer from 1/],
        ['limit over max', 'r', 'limit=501', /limit must be an integer/],
        ['limit not a number', 'r', 'limit=ten', /limit must be an integer/],
        ['limit not an integer', 'r', 'limit=1.5', /limit must be an integer/],
        ['limit empty', 'r', 'limit=', /limit must be an integer/],
        ['limit negative', 'r', 'limit=-5', /limit must be an integer/],
        ['limit twice', 'r', 'limit=5&limit=6', /limit given twice/],
        ['bad after', 'r', 'after=yesterday', /after must be a message id/],
        ['bad before', 'r', 'before=1-2-3', /before must be a message id/],
        ['leading zero', 'r', 'before=01-2', /before must be a message id/],
        ['id too big', 'r', 'after=18446744073709551616-0', /after must be a message id/],
        ['after twice', 'r', 'after=1-0&after=2-0', /after given twice/],
        ['before twice', 'r', 'before=1-0&before=2-0', /before given twice/],
        ['after = before', 'r', 'after=5-0&before=5-0', /after must be smaller than before/],
        ['after > before', 'r', 'after=5-1&before=5-0', /after must be smaller than before/],
        ['unknown', 'r', 'since=1-0', /unknown parameter/],
        ['unknown among good ones', 'r', 'limit=5&x=1', /unknown parameter/],
      ];
      for (const [what, room, q, re] of cases) {
        const { status, json } = await history(s.port, room, q);
        assert.equal(status, 400, what);
        assert.match(json.error, re, what);
      }
      const ok = await history(s.port, 'r'.repeat(20), 'limit=500&after=1-0&before=99999999999999-0');
      assert.equal(ok.status, 200);
      assert.deepEqual(ok.json.messages, []);
      assert.equal((await httpGet(s.port, '/api/rooms/r/messagez')).status, 404);
    } finally {
      await store.stop();
      assert.deepEqual(await c.stop(), [0]);
    }
  });

  test('paging through 10,000 messages across the Redis/MySQL boundary: no gap, no duplicate, both directions', async () => {
    const c = await startCluster({ n: 2, sets: logMax(100) });
    const [s1, s2] = c.servers;
    const room = `h10k-${c.cluster}`;
    const store = await startStorage(c.cluster);
    const clients = [];
    try {
      for (const s of c.servers) clients.push((await stompClient(s.wsUrl)).client);
      const N = 10000;
      await Promise.all(clients.map((cl, k) => sendMany(cl, room, N / 2, { body: (i) => `${k}:${i}` })));
      await settle(c.cluster, room, N, 100);
      const logLen = (await readLog(c.cluster, room)).length;
      assert.ok(logLen >= 100 && logLen < 1000, `the log holds a short tail (${logLen})`);
      const redis0 = await metric(s1.port, 'lectern_history_redis_messages_total');
      const mysql0 = await metric(s1.port, 'lectern_history_mysql_messages_total');
      // Backwards from the newest, 500 at a time, alternating servers.
      let t0 = Date.now();
      const back = [];
      let q = 'limit=500';
      let pages = 0;
      for (;;) {
        const { status, json } = await history(pages++ % 2 ? s2.port : s1.port, room, q);
        assert.equal(status, 200);
        back.unshift(...json.messages);
        if (!json.more) break;
        q = `limit=500&before=${json.before}`;
      }
      const backMs = Date.now() - t0;
      // Forwards from the start, 700 at a time.
      t0 = Date.now();
      const fwd = [];
      q = 'limit=700&after=0-0';
      for (;;) {
        const { status, json } = await history(s1.port, room, q);
        assert.equal(status, 200);
        fwd.push(...json.messages);
        if (!json.more) break;
        q = `limit=700&after=${json.after}`;
      }
      const fwdMs = Date.now() - t0;
      for (const [name, list] of [['backwards', back], ['forwards', fwd]]) {
        assert.equal(list.length, N, `${name}: every message`);
        assert.equal(new Set(list.map((m) => m.id)).size, N, `${name}: no duplicate`);
        assert.equal(list[0].seq, 1, `${name}: starts at the first message`);
        for (let i = 1; i < N; i++) {
          assert.ok(idLess(list[i - 1].id, list[i].id), `${name}: ids increase at ${i}`);
          assert.equal(list[i].seq, list[i - 1].seq + 1, `${name}: no gap at ${i}`);
        }
      }
      assert.deepEqual(fwd.map((m) => m.id), back.map((m) => m.id));
      assert.equal(new Set(fwd.map((m) => m.body)).size, N, 'every body once');
      // A window across the boundary, both bounds given.
      const lo = back[N - logLen - 30];
      const hi = back[N - logLen + 20];
      const win = await history(s2.port, room, `after=${lo.id}&before=${hi.id}&limit=1000`);
      assert.deepEqual(seqs(win.json), range(lo.seq + 1, hi.seq - 1));
      assert.equal(win.json.more, false);
      const fromRedis = await metric(s1.port, 'lectern_history_redis_messages_total') - redis0;
      const fromMysql = await metric(s1.port, 'lectern_history_mysql_messages_total') - mysql0;
      assert.ok(fromRedis > 0 && fromMysql > 9000, `both stores answered (redis ${fromRedis}, mysql ${fromMysql})`);
      assert.equal(await metric(s1.port, 'lectern_history_holes_returned_total'), 0);
      console.log(`# 10,000 messages: backwards ${pages} pages of 500 in ${backMs} ms, forwards 15 pages of 700 `
        + `in ${fwdMs} ms (log ${logLen}; server 1: redis ${fromRedis}, mysql ${fromMysql})`);
    } finally {
      await Promise.all(clients.map((cl) => cl.deactivate()));
      await store.stop();
      assert.deepEqual(await c.stop(), [0, 0]);
    }
  });

  test('a message missing from MySQL is waited for, then answered around; back in place, pages are whole', async () => {
    const c = await startCluster({ n: 1, sets: { ...logMax(10), 'history.hole_wait_ms': 400 } });
    const [s] = c.servers;
    const room = `hole-${c.cluster}`;
    const store = await startStorage(c.cluster);
    const { client } = await stompClient(s.wsUrl);
    const tmp = `keep_${c.cluster.replace(/[^a-z0-9]/gi, '_')}`;
    try {
      await sendMany(client, room, 300);
      await settle(c.cluster, room, 300, 10);
      const [oldest] = await readLog(c.cluster, room, 1);
      const s0 = Number(oldest.f.q);
      assert.ok(s0 > 100, `the log starts at seq ${s0}`);
      await sql(`CREATE TABLE ${tmp} AS SELECT * FROM messages WHERE room = '${room}' AND seq IN (50, 80, ${s0 - 1})`);
      await sql(`DELETE FROM messages WHERE room = '${room}' AND seq IN (50, 80, ${s0 - 1})`);
      const retries0 = await metric(s.port, 'lectern_history_hole_retries_total');
      const holeCases = [
        // within one MySQL page, reading forwards
        ['forwards', 'limit=100&after=0-0', range(1, 102).filter((x) => x !== 50 && x !== 80)],
        // just below the page's upper bound (the row at `before` anchors it)
        ['backwards', `limit=5&before=${(await idOfSeq(room, 81))}`, [75, 76, 77, 78, 79]],
        // where MySQL meets the log: the row just before its oldest entry
        ['at the log', `limit=${300 - s0 + 4}`, [s0 - 4, s0 - 3, s0 - 2].concat(range(s0, 300))],
      ];
      for (const [what, q, want] of holeCases) {
        const t0 = Date.now();
        const { status, json } = await history(s.port, room, q);
        const waited = Date.now() - t0;
        assert.equal(status, 200, what);
        assert.deepEqual(seqs(json), want, `${what}: answered without the missing message`);
        assert.ok(waited >= 350, `${what}: it waited for it first (${waited} ms)`);
      }
      assert.ok(await metric(s.port, 'lectern_history_hole_retries_total') >= retries0 + 3);
      assert.equal(await metric(s.port, 'lectern_history_holes_returned_total'), 3);
      // Complete ranges around the holes are answered at once.
      const t1 = Date.now();
      assert.deepEqual(seqs((await history(s.port, room, 'limit=40&after=0-0')).json), range(1, 40));
      assert.deepEqual(seqs((await history(s.port, room, `limit=10&before=${await idOfSeq(room, 61)}`)).json),
        range(51, 60));
      assert.deepEqual(seqs((await history(s.port, room, `limit=10&after=${await idOfSeq(room, 50 - 11)}`)).json),
        range(40, 49));
      assert.ok(Date.now() - t1 < 350, 'no waiting for complete ranges');
      await sql(`INSERT INTO messages SELECT * FROM ${tmp}`);
      assert.deepEqual(seqs((await history(s.port, room, 'limit=100&after=0-0')).json), range(1, 100));
      assert.deepEqual(seqs((await history(s.port, room, `limit=${300 - s0 + 4}`)).json), range(s0 - 3, 300));
      assert.equal(await metric(s.port, 'lectern_history_holes_returned_total'), 3);
    } finally {
      await sql(`DROP TABLE IF EXISTS ${tmp}`);
      await client.deactivate();
      await store.stop();
      assert.deepEqual(await c.stop(), [0]);
    }
  });

  test('MySQL down: ranges that need it get 503, ranges in the room log still 200', async () => {
    const c = await startCluster({ n: 1, sets: logMax(10) });
    const [s] = c.servers;
    const room = `down-${c.cluster}`;
    const store = await startStorage(c.cluster);
    const { client } = await stompClient(s.wsUrl);
    try {
      await sendMany(client, room, 200);
      await settle(c.cluster, room, 200, 10);
      assert.equal((await history(s.port, room, 'limit=50&after=0-0')).status, 200);  // a pooled connection
      const errors0 = await metric(s.port, 'lectern_history_mysql_errors_total');
      await service('stop', 'mariadb');
      try {
        const old = await history(s.port, room, 'limit=50&after=0-0');
        assert.equal(old.status, 503);
        assert.match(old.json.error, /MySQL/);
        const older = await history(s.port, room, 'limit=150');
        assert.equal(older.status, 503);
        const recent = await history(s.port, room, 'limit=5');
        assert.equal(recent.status, 200);
        assert.deepEqual(seqs(recent.json), range(196, 200));
        assert.ok(await metric(s.port, 'lectern_history_mysql_errors_total') > errors0);
      } finally {
        await service('start', 'mariadb');
      }
      await waitFor(async () => (await history(s.port, room, 'limit=50&after=0-0')).status === 200,
        { timeout: 15000, interval: 300, what: 'history back after MySQL returns' });
      assert.deepEqual(seqs((await history(s.port, room, 'limit=200')).json), range(1, 200));
      // A restart between two requests costs no failed request: a pooled
      // connection found gone is replaced and the query run again.
      const errors1 = await metric(s.port, 'lectern_history_mysql_errors_total');
      await service('stop', 'mariadb');
      await service('start', 'mariadb');
      for (let i = 0; i < 4; i++) {
        const r = await history(s.port, room, `limit=50&after=${i}-0`);
        assert.equal(r.status, 200, `request ${i} after the restart`);
        assert.deepEqual(seqs(r.json), range(1, 50));
      }
      assert.equal(await metric(s.port, 'lectern_history_mysql_errors_total'), errors1);
    } finally {
      await client.deactivate();
      await store.stop();
      assert.deepEqual(await c.stop(), [0]);
    }
  });

  test('Redis down: ranges below a stored message are answered from MySQL, the newest ones get 503', async () => {
    const c = await startCluster({ n: 1, sets: logMax(10) });
    const [s] = c.servers;
    const room = `rdown-${c.cluster}`;
    const store = await startStorage(c.cluster);
    const { client } = await stompClient(s.wsUrl);
    let redisUp = true;
    try {
      await sendMany(client, room, 200);
      await settle(c.cluster, room, 200, 10);
      const id100 = await idOfSeq(room, 100);
      await client.deactivate();
      await service('stop', 'redis');
      redisUp = false;
      await waitFor(async () => (await httpGet(s.port, '/readyz')).status === 503, { what: 'registry down' });
      const below = await history(s.port, room, `limit=20&before=${id100}`);
      assert.equal(below.status, 200);
      assert.deepEqual(seqs(below.json), range(80, 99));
      assert.equal(below.json.more, true);
      const first = await history(s.port, room, 'limit=50&after=0-0');
      assert.equal(first.status, 200);
      assert.deepEqual(seqs(first.json), range(1, 50));
      assert.equal(first.json.more, true);
      const next = await history(s.port, room, `limit=50&after=${id100}`);
      assert.equal(next.status, 200);
      assert.deepEqual(seqs(next.json), range(101, 150));
      for (const q of ['limit=20', `limit=150&after=${id100}`, `limit=5&before=99999999999999-0`]) {
        const r = await history(s.port, room, q);
        assert.equal(r.status, 503, q);
        assert.match(r.json.error, /Redis/, q);
      }
    } finally {
      if (!redisUp) await service('start', 'redis');
      await store.stop();
      assert.deepEqual(await c.stop(), [0]);
    }
  });
});

// The id of a room's message with the given seq (from MySQL).
async function idOfSeq(room, seq) {
  const [[ms, n]] = await sql(`SELECT id_ms, id_n FROM messages WHERE room = '${room}' AND seq = ${seq}`);
  return `${ms}-${n}`;
}
