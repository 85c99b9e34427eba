// History over HTTP: GET /api/rooms/<room>/messages, answered from the Redis
// room log and MySQL (written by a real lectern-storage worker), seamlessly.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  httpGet, metric, service, sleep, sql, startCluster, startWorker, stompClient, waitFor,
} from './helpers.mjs';

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

async function storedCount(room) {
  const [[n]] = await sql(`SELECT COUNT(*) FROM messages WHERE room = '${room}'`);
  return Number(n);
}

describe('history over HTTP', () => {
  test('messages appear in history in order, with the MESSAGE ids and every field', async () => {
    const c = await startCluster({ n: 1 });
    const [s] = c.servers;
    const room = `h1-${c.cluster}`;
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
          headers: { receipt: 'bin', 'content-type': 'application/octet-stream', 'x-note': 'a:b' } });
      });
      await waitFor(() => got.length === 6, { what: '6 live messages' });
      const { status, json } = await history(s.port, room);
      assert.equal(status, 200);
      assert.equal(json.room, room);
      assert.equal(json.more, false);
      assert.deepEqual(json.messages.map((m) => m.id), got.map((m) => m.headers['message-id']));
      assert.equal(json.before, json.messages[0].id);
      assert.equal(json.after, json.messages[5].id);
      const m0 = json.messages[0];
      assert.equal(m0.body, 'm0');
      assert.equal(m0.sender, 'alice');
      assert.equal(m0.sender_name, 'Alice A.');
      assert.equal(m0.content_type, null);
      assert.equal(m0.seq, 1);
      assert.equal(m0.timestamp, Number(got[0].headers.timestamp));
      const bin = json.messages[5];
      assert.equal(bin.body, undefined);
      assert.equal(Buffer.from(bin.body_base64, 'base64').toString('hex'), 'ff0001');
      assert.equal(bin.content_type, 'application/octet-stream');
      assert.deepEqual(bin.headers, { 'x-note': 'a:b' });
      // limit and cursors within the log
      const p = await history(s.port, room, 'limit=2');
      assert.deepEqual(p.json.messages.map((m) => m.body), ['m4', undefined]);
      assert.equal(p.json.more, true);
      const older = await history(s.port, room, `limit=2&before=${p.json.before}`);
      assert.deepEqual(older.json.messages.map((m) => m.body), ['m2', 'm3']);
      const newer = await history(s.port, room, `limit=3&after=${json.messages[1].id}`);
      assert.deepEqual(newer.json.messages.map((m) => m.body), ['m2', 'm3', 'm4']);
      assert.equal(newer.json.more, true);
      const between = await history(s.port, room, `after=${json.messages[0].id}&before=${json.messages[3].id}`);
      assert.deepEqual(between.json.messages.map((m) => m.body), ['m1', 'm2']);
      assert.equal(between.json.more, false);
      const empty = await history(s.port, `nobody-${c.cluster}`);
      assert.equal(empty.status, 200);
      assert.deepEqual(empty.json.messages, []);
    } finally {
      await client.deactivate();
      assert.deepEqual(await c.stop(), [0]);
    }
  });

  test('bad parameters get 400 with a reason', async () => {
    const c = await startCluster({ n: 1, sets: { 'history.max_limit': 500 } });
    const [s] = c.servers;
    try {
      const cases = [
        ['room', 'bad$room', '', /room names/],
        ['limit 0', 'r', 'limit=0', /limit must be an integer/],
        ['limit over max', 'r', 'limit=501', /limit must be an integer/],
        ['limit not a number', 'r', 'limit=ten', /limit must be an integer/],
        ['limit negative', 'r', 'limit=-5', /limit must be an integer/],
        ['limit twice', 'r', 'limit=5&limit=6', /limit given twice/],
        ['bad after', 'r', 'after=yesterday', /after must be a message id/],
        ['bad before', 'r', 'before=1-2-3', /before must be a message id/],
        ['leading zero', 'r', 'before=01-2', /before must be a message id/],
        ['after twice', 'r', 'after=1-0&after=2-0', /after given twice/],
        ['after >= before', 'r', 'after=5-0&before=5-0', /after must be smaller than before/],
        ['unknown', 'r', 'since=1-0', /unknown parameter/],
      ];
      for (const [what, room, q, re] of cases) {
        const { status, json } = await history(s.port, room, q);
        assert.equal(status, 400, what);
        assert.match(json.error, re, what);
      }
      assert.equal((await history(s.port, 'r', 'limit=500')).status, 200);
      assert.equal((await httpGet(s.port, '/api/rooms/r/messagez')).status, 404);
    } finally {
      assert.deepEqual(await c.stop(), [0]);
    }
  });

  test('paging through 10,000 messages across the Redis/MySQL boundary: no gap, no duplicate, both directions', async () => {
    const c = await startCluster({ n: 2, sets: { 'registry.history_max': 100 } });
    const [s1, s2] = c.servers;
    const room = `h10k-${c.cluster}`;
    const w = await startWorker({ cluster: c.cluster });
    const clients = [];
    try {
      for (const s of c.servers) clients.push((await stompClient(s.wsUrl)).client);
      const N = 10000;
      await Promise.all(clients.map((cl, k) => sendMany(cl, room, N / 2, { body: (i) => `${k}:${i}` })));
      await waitFor(async () => (await storedCount(room)) === N, { timeout: 60000, interval: 200, what: '10,000 rows' });
      const t0 = Date.now();
      // Backwards from the newest, 500 at a time, alternating servers.
      const back = [];
      let q = 'limit=500';
      for (let page = 0; ; page++) {
        const { status, json } = await history(page % 2 ? s2.port : s1.port, room, q);
        assert.equal(status, 200);
        back.unshift(...json.messages);
        if (!json.more) break;
        q = `limit=500&before=${json.before}`;
      }
      const backSecs = (Date.now() - t0) / 1000;
      // Forwards from the start.
      const fwd = [];
      q = 'limit=700&after=0-0';
      for (;;) {
        const { status, json } = await history(s1.port, room, q);
        assert.equal(status, 200);
        fwd.push(...json.messages);
        if (!json.more) break;
        q = `limit=700&after=${json.after}`;
      }
      for (const [name, list] of [['backwards', back], ['forwards', fwd]]) {
        assert.equal(list.length, N, `${name}: every message`);
        assert.equal(new Set(list.map((m) => m.id)).size, N, `${name}: no duplicate`);
        for (let i = 1; i < N; i++) {
          assert.ok(idLess(list[i - 1].id, list[i].id), `${name}: ids increase at ${i}`);
          assert.equal(list[i].seq, list[i - 1].seq + 1, `${name}: no gap at ${i}`);
        }
      }
      assert.deepEqual(fwd.map((m) => m.id), back.map((m) => m.id));
      const fromRedis = await metric(s1.port, 'lectern_history_redis_messages_total');
      const fromMysql = await metric(s1.port, 'lectern_history_mysql_messages_total');
      assert.ok(fromRedis > 0 && fromMysql > 9000, `both stores answered (redis ${fromRedis}, mysql ${fromMysql})`);
      console.log(`# paged 10,000 backwards in ${backSecs.toFixed(2)} s (20 pages); redis ${fromRedis}, mysql ${fromMysql} on server 1`);
    } finally {
      await Promise.all(clients.map((cl) => cl.deactivate()));
      await w.stop();
      assert.deepEqual(await c.stop(), [0, 0]);
    }
  });

  test('a message missing from MySQL is waited for, then answered around; back in place, the page is whole', async () => {
    const c = await startCluster({ n: 1, sets: { 'registry.history_max': 10, 'history.hole_wait_ms': 400 } });
    const [s] = c.servers;
    const room = `hole-${c.cluster}`;
    const w = await startWorker({ cluster: c.cluster });
    const { client } = await stompClient(s.wsUrl);
    const tmp = `keep_${c.cluster.replace(/[^a-z0-9]/gi, '_')}`;
    try {
      await sendMany(client, room, 300);
      await waitFor(async () => (await storedCount(room)) === 300, { timeout: 30000, what: '300 rows' });
      await sql(`CREATE TABLE ${tmp} AS SELECT * FROM messages WHERE room = '${room}' AND seq = 50`);
      await sql(`DELETE FROM messages WHERE room = '${room}' AND seq = 50`);
      const retries0 = await metric(s.port, 'lectern_history_hole_retries_total');
      const t0 = Date.now();
      const { status, json } = await history(s.port, room, 'limit=100&after=0-0');
      const waited = Date.now() - t0;
      assert.equal(status, 200);
      assert.equal(json.messages.length, 100);
      assert.ok(!json.messages.some((m) => m.seq === 50), 'answered without the missing message');
      assert.ok(waited >= 350, `it waited for it first (${waited} ms)`);
      assert.ok(await metric(s.port, 'lectern_history_hole_retries_total') > retries0);
      assert.equal(await metric(s.port, 'lectern_history_holes_returned_total'), 1);
      await sql(`INSERT INTO messages SELECT * FROM ${tmp}`);
      const again = await history(s.port, room, 'limit=100&after=0-0');
      assert.deepEqual(again.json.messages.map((m) => m.seq), Array.from({ length: 100 }, (_, i) => i + 1));
    } finally {
      await sql(`DROP TABLE IF EXISTS ${tmp}`);
      await client.deactivate();
      await w.stop();
      assert.deepEqual(await c.stop(), [0]);
    }
  });

  test('MySQL down: ranges that need it get 503, ranges in the room log still 200', async () => {
    const c = await startCluster({ n: 1, sets: { 'registry.history_max': 10 } });
    const [s] = c.servers;
    const room = `down-${c.cluster}`;
    const w = await startWorker({ cluster: c.cluster });
    const { client } = await stompClient(s.wsUrl);
    try {
      await sendMany(client, room, 200);
      await waitFor(async () => (await storedCount(room)) === 200, { timeout: 30000, what: '200 rows' });
      await service('stop', 'mariadb');
      try {
        const old = await history(s.port, room, 'limit=50&after=0-0');
        assert.equal(old.status, 503);
        assert.match(old.json.error, /MySQL/);
        const recent = await history(s.port, room, 'limit=5');
        assert.equal(recent.status, 200);
        assert.equal(recent.json.messages.length, 5);
      } finally {
        await service('start', 'mariadb');
      }
      await waitFor(async () => (await history(s.port, room, 'limit=50&after=0-0')).status === 200,
        { timeout: 15000, interval: 300, what: 'history back after MySQL returns' });
    } finally {
      await client.deactivate();
      await w.stop();
      assert.deepEqual(await c.stop(), [0]);
    }
  });
});
