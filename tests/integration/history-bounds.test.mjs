// History is bounded per request and per server (server/http_history.c,
// history.c, db.c; docs/security.md "History reads"):
//   - a page ends at history.max_bytes of JSON as well as at its limit (at
//     least one message), says more, and paging on from its cursors returns
//     every message exactly once, in order -- from the Redis log and from
//     MySQL alike;
//   - at most http.max_inflight history reads at once: beyond, 503 with
//     Retry-After; x-since replays wait their turn instead;
//   - a client that stops reading loses its response (and slot) after
//     http.write_timeout_s;
//   - the server's peak RSS under many concurrent limit=1000 requests of big
//     messages stays bounded.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import {
  metric, sleep, sql, startCluster, startWorker, stompClient, waitFor,
} from './helpers.mjs';

const MiB = 1 << 20;

// GET as raw bytes: { status, headers, body: Buffer }.
function get(port, path) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

async function page(port, room, query) {
  const r = await get(port, `/api/rooms/${room}/messages?${query}`);
  return { ...r, json: JSON.parse(r.body.toString('utf8')) };
}

// The server's resident memory: VmRSS and its peak VmHWM (bytes).
function memory(pid) {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(st.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'))[1]) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

// Start counting the peak afresh (proc(5): clear_refs 5 resets VmHWM).
function resetPeak(pid) {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

// Send bodies[i] (string or Uint8Array) to room, with receipts, `window` in flight.
async function sendAll(client, room, bodies, window = 4) {
  let next = 0;
  let done = 0;
  await new Promise((resolve) => {
    const pump = () => {
      while (next < bodies.length && next - done < window) {
        const i = next++;
        client.watchForReceipt(`b${i}`, () => {
          if (++done === bodies.length) resolve();
          else pump();
        });
        const b = bodies[i];
        client.publish(typeof b === 'string'
          ? { destination: `/topic/${room}`, body: b, headers: { receipt: `b${i}` } }
          : { destination: `/topic/${room}`, binaryBody: b, headers: { receipt: `b${i}`, 'content-type': 'application/octet-stream' } });
      }
    };
    pump();
  });
}

// Big bodies of three kinds: plain text (JSON as long as the body), control
// characters (JSON up to six times the body), binary (base64: 4/3).
function bigBody(i, kb = 200) {
  const n = kb * 1024;
  switch (i % 3) {
    case 0: return `t${i}:`.padEnd(n, 'abcdefghij');
    case 1: {
      let s = `c${i}:`;
      while (s.length < n / 4) s += '\x01\x02\x1f\x00\x7f"\\\n';
      return s;
    }
    default: {
      const b = new Uint8Array(Math.floor(n * 0.7));
      for (let k = 0; k < b.length; k++) b[k] = (k * 7 + i) & 0xff;
      b[0] = 0xff;
      return b;
    }
  }
}

// A message's JSON as the server writes it (same escaping length as
// jansson's: \u00XX for control bytes, UTF-8 as is).
const jsonLen = (m) => Buffer.byteLength(JSON.stringify(m));

// Walk the whole room with `limit` per page, backwards (before=) or
// forwards (after=); check every page's bounds. Returns the messages,
// oldest first, and the pages.
async function walk(port, room, { limit = 1000, forward = false, maxBytes }) {
  const pages = [];
  let q = forward ? `limit=${limit}&after=0-0` : `limit=${limit}`;
  for (;;) {
    const r = await page(port, room, q);
    assert.equal(r.status, 200, `${q}: ${r.body.toString().slice(0, 200)}`);
    const msgs = r.json.messages;
    assert.ok(msgs.length >= 1 || !r.json.more, 'a page that says more holds a message');
    const bytes = msgs.reduce((a, m) => a + jsonLen(m), 0) + Math.max(msgs.length - 1, 0);
    const largest = Math.max(0, ...msgs.map(jsonLen));
    assert.ok(msgs.length <= limit);
    assert.ok(bytes <= maxBytes || msgs.length === 1,
      `${q}: ${msgs.length} messages, ${bytes} bytes of JSON > max_bytes ${maxBytes}`);
    assert.ok(r.body.length <= maxBytes + largest + 512, `${q}: response of ${r.body.length} bytes`);
    pages.push({ msgs, bytes, more: r.json.more });
    if (!r.json.more) break;
    q = forward ? `limit=${limit}&after=${r.json.after}` : `limit=${limit}&before=${r.json.before}`;
  }
  if (!forward) pages.reverse();
  // Each page that stopped short of its limit is as full as max_bytes
  // allows: its neighbour in the paging direction would not have fitted.
  for (let i = 0; i + 1 < pages.length; i++) {
    const p = forward ? pages[i] : pages[i + 1];
    const next = forward ? pages[i + 1].msgs[0] : pages[i].msgs.at(-1);
    if (p.msgs.length < limit)
      // (+2: the server counts a comma for every message, the first too)
      assert.ok(p.bytes + 2 + jsonLen(next) > maxBytes, `page ${i} was cut early (${p.bytes} bytes)`);
  }
  return { msgs: pages.flatMap((p) => p.msgs), pages };
}

// The messages sent, in order, as history lists them.
function checkAll(msgs, bodies, what) {
  assert.equal(msgs.length, bodies.length, `${what}: every message`);
  for (let i = 0; i < msgs.length; i++) {
    assert.equal(msgs[i].seq, i + 1, `${what}: seq ${i + 1} in place`);
    const b = bodies[i];
    if (typeof b === 'string') assert.equal(msgs[i].body, b, `${what}: body ${i}`);
    else assert.deepEqual(Buffer.from(msgs[i].body_base64, 'base64'), Buffer.from(b), `${what}: binary body ${i}`);
  }
}

async function storedCount(room) {
  const [[n]] = await sql(`SELECT COUNT(*) FROM messages WHERE room = '${room}'`);
  return Number(n);
}

async function idOfSeq(room, seq) {
  const [[ms, n]] = await sql(`SELECT id_ms, id_n FROM messages WHERE room = '${room}' AND seq = ${seq}`);
  return `${ms}-${n}`;
}

describe('history bounds', () => {
  test('pages of big messages from the Redis log end at history.max_bytes of JSON; paging returns each message once, in order', async () => {
    const c = await startCluster({ n: 1, sets: { 'history.max_bytes': '1m' } });
    const [s] = c.servers;
    const room = `big-${c.cluster}`;
    const w = await startWorker({ cluster: c.cluster });    // the end of a room is checked in MySQL
    const { client } = await stompClient(s.wsUrl);
    try {
      const bodies = Array.from({ length: 36 }, (_, i) => bigBody(i));
      await sendAll(client, room, bodies);
      const cut0 = await metric(s.port, 'lectern_history_pages_cut_total');
      const back = await walk(s.port, room, { maxBytes: MiB });
      checkAll(back.msgs, bodies, 'backwards');
      const fwd = await walk(s.port, room, { maxBytes: MiB, forward: true });
      checkAll(fwd.msgs, bodies, 'forwards');
      assert.ok(back.pages.length >= 8 && back.pages.some((p) => p.msgs.length > 1),
        `pages of several messages (${back.pages.map((p) => p.msgs.length)})`);
      // A small limit still ends a page first; a big one alone is a page.
      const two = await page(s.port, room, 'limit=2');
      assert.equal(two.json.messages.length, 2);
      assert.equal(two.json.more, true);
      const one = await page(s.port, room, `limit=1000&before=${back.msgs[2].id}`);
      assert.deepEqual(one.json.messages.map((m) => m.seq), [1, 2]);
      assert.equal(one.json.more, false);
      assert.ok(await metric(s.port, 'lectern_history_pages_cut_total') >= cut0 + back.pages.length + fwd.pages.length - 2);
      console.log(`# 36 messages of ~200 KB (text, control bytes, binary): ${back.pages.length} pages backwards `
        + `(${back.pages.map((p) => p.msgs.length).join(',')}), ${fwd.pages.length} forwards; `
        + `largest page ${Math.max(...back.pages.map((p) => p.bytes))} bytes of JSON`);
    } finally {
      await client.deactivate();
      await w.stop();
      assert.deepEqual(await c.stop(), [0]);
    }
  });

  test('pages reaching into MySQL (past a short room log) are bounded the same way, with no false holes', async () => {
    const c = await startCluster({ n: 1, sets: {
      'history.max_bytes': '1m', 'registry.history_max': 10, 'history.hole_wait_ms': 800,
    } });
    const [s] = c.servers;
    const room = `bigdb-${c.cluster}`;
    const w = await startWorker({ cluster: c.cluster });
    const { client } = await stompClient(s.wsUrl);
    const tmp = `gone_${c.cluster.replace(/[^a-z0-9]/gi, '_')}`;
    try {
      const bodies = Array.from({ length: 45 }, (_, i) => bigBody(i, i % 5 === 4 ? 20 : 200));
      await sendAll(client, room, bodies);
      await waitFor(async () => (await storedCount(room)) === bodies.length,
        { timeout: 60000, interval: 200, what: 'every message in MySQL' });
      const mysql0 = await metric(s.port, 'lectern_history_mysql_messages_total');
      const back = await walk(s.port, room, { maxBytes: MiB });
      checkAll(back.msgs, bodies, 'backwards');
      const fwd = await walk(s.port, room, { maxBytes: MiB, forward: true });
      checkAll(fwd.msgs, bodies, 'forwards');
      // Small limits in both stores, across the seam.
      const small = await walk(s.port, room, { maxBytes: MiB, forward: true, limit: 3 });
      checkAll(small.msgs, bodies, 'forwards, limit=3');
      const fromMysql = await metric(s.port, 'lectern_history_mysql_messages_total') - mysql0;
      assert.ok(fromMysql >= 2 * 30, `MySQL answered most of it (${fromMysql})`);
      // A MySQL read cut by bytes does not reach the log: the page must not
      // be checked against the log's oldest entry (a false hole would wait
      // history.hole_wait_ms). Rows after the anchor m1: m2 (tiny, the
      // page's first, not counted), m3..m6 (4 x 200 KB counted), m7 (250 KB:
      // the read is cut there, and the page of m2..m6 is all it read).
      const room2 = `cut-${c.cluster}`;
      const seam = ['m1', 'm2', ...Array.from({ length: 4 }, (_, i) => `m${i + 3}:`.padEnd(200 * 1024, 'x')),
        'm7:'.padEnd(250 * 1024, 'y'), ...Array.from({ length: 12 }, (_, i) => `s${i}`)];
      await sendAll(client, room2, seam);
      await waitFor(async () => (await storedCount(room2)) === seam.length,
        { timeout: 60000, interval: 200, what: 'every message in MySQL' });
      const t0 = Date.now();
      const cutPage = await page(s.port, room2, `limit=1000&after=${await idOfSeq(room2, 1)}`);
      assert.deepEqual(cutPage.json.messages.map((m) => m.seq), [2, 3, 4, 5, 6]);
      assert.equal(cutPage.json.more, true);
      assert.ok(Date.now() - t0 < 1500, 'answered without waiting for a hole');
      checkAll((await walk(s.port, room2, { maxBytes: MiB, forward: true })).msgs, seam, 'the seam room');
      assert.equal(await metric(s.port, 'lectern_history_holes_returned_total'), 0);
      assert.equal(await metric(s.port, 'lectern_history_hole_retries_total'), 0, 'a cut read is no hole');
      // A real hole inside a page cut by bytes is still seen: waited for,
      // then answered around.
      await sql(`CREATE TABLE ${tmp} AS SELECT * FROM messages WHERE room = '${room}' AND seq = 6`);
      await sql(`DELETE FROM messages WHERE room = '${room}' AND seq = 6`);
      const t1 = Date.now();
      const holed = await page(s.port, room, `limit=1000&after=${await idOfSeq(room, 3)}`);
      const seqs = holed.json.messages.map((m) => m.seq);
      assert.deepEqual(seqs.slice(0, 3), [4, 5, 7], 'answered without the missing message');
      assert.ok(seqs.length < 20 && holed.json.more, `a page cut by bytes (${seqs})`);
      assert.ok(Date.now() - t1 >= 700, 'after waiting for it');
      assert.equal(await metric(s.port, 'lectern_history_holes_returned_total'), 1);
      console.log(`# 45 messages, log of ~10: ${back.pages.length} pages backwards, ${fwd.pages.length} forwards `
        + `(${fwd.pages.map((p) => p.msgs.length).join(',')}); ${fromMysql} messages from MySQL`);
    } finally {
      await sql(`DROP TABLE IF EXISTS ${tmp}`);
      await client.deactivate();
      await w.stop();
      assert.deepEqual(await c.stop(), [0]);
    }
  });

  test('beyond http.max_inflight history reads: 503 with Retry-After; an x-since replay waits its turn', async () => {
    const c = await startCluster({ n: 1, sets: {
      'http.max_inflight': 2, 'history.hole_wait_ms': 3000, 'registry.history_max': 10,
    } });
    const [s] = c.servers;
    const room = `busy-${c.cluster}`;
    const w = await startWorker({ cluster: c.cluster });
    const { client } = await stompClient(s.wsUrl);
    let sub = null;
    const tmp = `keep_${c.cluster.replace(/[^a-z0-9]/gi, '_')}`;
    try {
      await sendAll(client, room, Array.from({ length: 60 }, (_, i) => `m${i + 1}`), 20);
      await waitFor(async () => (await storedCount(room)) === 60, { timeout: 30000, interval: 200, what: '60 rows' });
      const id40 = await idOfSeq(room, 40);
      // A hole at seq 20 makes a read of it wait history.hole_wait_ms.
      await sql(`CREATE TABLE ${tmp} AS SELECT * FROM messages WHERE room = '${room}' AND seq = 20`);
      await sql(`DELETE FROM messages WHERE room = '${room}' AND seq = 20`);
      const rejected0 = await metric(s.port, 'lectern_history_rejected_total');
      const t0 = Date.now();
      const slow = [page(s.port, room, 'limit=30&after=0-0'), page(s.port, room, 'limit=25&after=0-0')];
      await waitFor(async () => (await metric(s.port, 'lectern_history_inflight')) === 2, { what: 'two reads in flight' });
      for (let i = 0; i < 3; i++) {
        const t = Date.now();
        const r = await page(s.port, room, 'limit=5');
        assert.equal(r.status, 503);
        assert.equal(r.headers['retry-after'], '1');
        assert.match(r.json.error, /http\.max_inflight/);
        assert.ok(Date.now() - t < 1000, 'refused at once');
      }
      // A replay cannot be refused: it waits for a slot, and meanwhile HTTP
      // requests do not overtake it.
      const got = [];
      ({ client: sub } = await stompClient(s.wsUrl));
      sub.subscribe(`/topic/${room}`, (m) => got.push(m), { 'x-since': id40 });
      await waitFor(async () => (await metric(s.port, 'lectern_history_waiting')) === 1, { what: 'the replay in line' });
      assert.equal(got.length, 0);
      assert.equal((await page(s.port, room, 'limit=5')).status, 503, 'no overtaking the replay');
      const answered = await Promise.all(slow);
      assert.ok(Date.now() - t0 >= 2800, 'the slow reads held their slots');
      for (const r of answered) assert.equal(r.status, 200);
      await waitFor(() => got.length === 20, { timeout: 10000, what: 'the replay after the slots came free' });
      assert.deepEqual(got.map((m) => m.body), Array.from({ length: 20 }, (_, i) => `m${41 + i}`));
      assert.equal((await page(s.port, room, 'limit=5')).status, 200);
      assert.equal(await metric(s.port, 'lectern_history_rejected_total'), rejected0 + 4);
      await waitFor(async () => (await metric(s.port, 'lectern_history_inflight')) === 0, { what: 'every slot back' });
    } finally {
      await sql(`DROP TABLE IF EXISTS ${tmp}`);
      if (sub) await sub.deactivate();
      await client.deactivate();
      await w.stop();
      assert.deepEqual(await c.stop(), [0]);
    }
  });

  test('a client that stops reading its history response is dropped after http.write_timeout_s, and its slot freed', async () => {
    const c = await startCluster({ n: 1, sets: {
      'http.max_inflight': 1, 'http.write_timeout_s': 2, 'history.max_bytes': '64m',
    } });
    const [s] = c.servers;
    const room = `stall-${c.cluster}`;
    const { client } = await stompClient(s.wsUrl);
    let sock = null;
    try {
      // ~30 MB of JSON: more than the kernel's socket buffers hold.
      const body = '\x01'.repeat(200 * 1024);
      await sendAll(client, room, Array.from({ length: 25 }, () => body));
      sock = net.connect(s.port, '127.0.0.1');
      await new Promise((resolve) => sock.on('connect', resolve));
      sock.pause();
      sock.write(`GET /api/rooms/${room}/messages?limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n`);
      await waitFor(async () => (await metric(s.port, 'lectern_history_inflight')) === 1, { what: 'the stalled read holds the slot' });
      const t0 = Date.now();
      assert.equal((await page(s.port, room, 'limit=1')).status, 503);
      await waitFor(async () => (await metric(s.port, 'lectern_history_inflight')) === 0,
        { timeout: 8000, interval: 100, what: 'the slot given back' });
      const held = Date.now() - t0;
      assert.ok(held >= 1000 && held < 6000, `dropped after about 2 s (${held} ms)`);
      assert.equal((await page(s.port, room, 'limit=1')).status, 200);
    } finally {
      sock?.destroy();
      await client.deactivate();
      assert.deepEqual(await c.stop(), [0]);
    }
  });

  test('peak RSS stays bounded under 16 concurrent walks of limit=1000 over 10 MB of control characters, from the Redis log and from MySQL', async () => {
    // ASan keeps freed memory in quarantine (256 MB by default), which would
    // count as resident: off for this server, so RSS is what the code holds.
    const asan = process.env.ASAN_OPTIONS;
    process.env.ASAN_OPTIONS = `${asan ? `${asan}:` : ''}quarantine_size_mb=0`;
    let c;
    try {
      c = await startCluster({ n: 1 });
    } finally {
      if (asan === undefined) delete process.env.ASAN_OPTIONS;
      else process.env.ASAN_OPTIONS = asan;
    }
    const [s] = c.servers;
    const w = await startWorker({ cluster: c.cluster });
    const { client } = await stompClient(s.wsUrl);
    const N = 50;
    const body = '\x01\x02\x03\x04'.repeat(50 * 1024);    // 200 KB; 1.2 MB of JSON
    // Each walker follows `before` to the start, keeping only the tail of
    // each response (the cursors).
    const walker = async (room) => {
      let q = 'limit=1000';
      let pages = 0;
      let bytes = 0;
      for (;;) {
        const r = await new Promise((resolve, reject) => {
          http.get({ host: '127.0.0.1', port: s.port, path: `/api/rooms/${room}/messages?${q}`, agent: false }, (res) => {
            let tail = '';
            let len = 0;
            res.on('data', (d) => { len += d.length; tail = (tail + d.toString('latin1')).slice(-300); });
            res.on('end', () => resolve({ status: res.statusCode, tail, len }));
            res.on('error', reject);
          }).on('error', reject);
        });
        assert.equal(r.status, 200);
        const [, more, before] = r.tail.match(/"more":(true|false),"before":(null|"[^"]*"),"after":(null|"[^"]*")\}$/);
        bytes += r.len;
        pages++;
        if (more !== 'true') return { pages, bytes };
        q = `limit=1000&before=${JSON.parse(before)}`;
      }
    };
    // 16 walkers at once over room; the server's peak RSS above what it
    // held before.
    const measure = async (room, what) => {
      const pid = s.proc.pid;
      await sleep(200); // lets the previous round's memory settle before the baseline is read
      const base = memory(pid);
      resetPeak(pid);
      const t0 = Date.now();
      const settled = await Promise.allSettled(Array.from({ length: 16 }, () => walker(room)));
      const ms = Date.now() - t0;
      const peak = memory(pid).hwm - base.rss;
      const done = settled.filter((r) => r.status === 'fulfilled').map((r) => r.value);
      const total = done.reduce((a, r) => a + r.bytes, 0);
      console.log(`# ${what}: 16 walkers (${done.length} finished) x ${done[0]?.pages} pages, `
        + `${(total / MiB).toFixed(0)} MB of JSON in ${ms} ms: RSS ${(base.rss / MiB).toFixed(0)} MB before, `
        + `peak +${(peak / MiB).toFixed(0)} MB`);
      assert.ok(peak < 160 * MiB, `${what}: peak RSS grew by ${(peak / MiB).toFixed(0)} MB`);
      for (const r of settled) if (r.status === 'rejected') throw r.reason;
      assert.ok(total >= 16 * N * 1.2e6 * 0.95, `${what}: every walker read the whole room`);
    };
    try {
      const logRoom = `rss-${c.cluster}`;
      await sendAll(client, logRoom, Array.from({ length: N }, () => body));
      await measure(logRoom, 'from the Redis log');
      // The same from MySQL alone: the room's log emptied once stored.
      const dbRoom = `rssdb-${c.cluster}`;
      await sendAll(client, dbRoom, Array.from({ length: N }, () => body));
      await waitFor(async () => (await storedCount(dbRoom)) === N, { timeout: 60000, interval: 200, what: 'stored' });
      await new Promise((resolve, reject) => execFile('redis-cli', ['-p', String(process.env.LECTERN_REDIS_PORT || 6390),
        'XTRIM', `${c.cluster}:room:{${dbRoom}}:log`, 'MAXLEN', '0'], (e) => (e ? reject(e) : resolve())));
      await measure(dbRoom, 'from MySQL');
    } finally {
      await client.deactivate();
      await w.stop();
      assert.deepEqual(await c.stop(), [0]);
    }
  });
});
