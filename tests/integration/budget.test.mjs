// Per-connection memory (limits.conn_memory) and the input rate limits of
// every frame kind (limits.frame_rate, limits.send_bytes_rate), against a
// real server: each way a client can make the server hold memory is driven
// to its limit, round after round, while the server's resident memory
// (VmRSS) is sampled; it must stay within what the budget allows and not
// grow from one round to the next.
//
// RSS is a process-wide measure: these tests bound the growth above the
// server's RSS at the start of the test, with slack for the allocator and
// lws. Under ASan (the build `make integration SANITIZE=1` uses) every
// allocation carries a header and redzones, so the same objects take up to
// about twice the heap; ALLOC says how much heap a charged byte may cost.
// The servers run with a small ASan quarantine so that freed memory is
// reused as it would be in production.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  httpGet, metric, rawClient, serverBin, sleep, startServer, tcpRelay, waitFor,
} from './helpers.mjs';

const ASAN = /\/asan\//.test(serverBin);
const ALLOC = ASAN ? 2.5 : 1.5;
const MiB = 1 << 20;
const SLACK = 16 * MiB;       // lws, libuv, Redis/AMQP buffers, allocator caches
const FLAT = 6 * MiB;         // a later round may exceed the first by this much
const env = { ASAN_OPTIONS: [process.env.ASAN_OPTIONS, 'quarantine_size_mb=1'].filter(Boolean).join(':') };

// A small budget: frames up to 64 KiB, 256 KiB of output, 1 MiB in all.
const SMALL = { 'limits.conn_memory': '1m', 'stomp.max_frame': '64k', 'stomp.max_pending': '256k' };

function rss(s) {
  return Number(readFileSync(`/proc/${s.proc.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/)[1]) * 1024;
}

const mib = (n) => (n / MiB).toFixed(1);

// A counter that may not have been rendered yet (labelled rows) counts 0.
async function count(s, name) {
  try {
    return await metric(s.port, name);
  } catch {
    return 0;
  }
}
const memoryCloses = async (s) => await count(s, 'lectern_slow_consumers_total') +
  await count(s, 'lectern_stomp_errors_by_reason_total{reason="Connection memory limit"}');

// Run `round` n times, sampling the server's RSS every 10 ms; returns the
// peak of each round above the RSS before the first.
async function rounds(s, n, what, round) {
  const base = rss(s);
  const peaks = [];
  for (let i = 0; i < n; i++) {
    let peak = rss(s);
    const timer = setInterval(() => { try { peak = Math.max(peak, rss(s)); } catch { /* exited */ } }, 10);
    const t0 = Date.now();
    try {
      await round(i);
    } finally {
      clearInterval(timer);
    }
    peak = Math.max(peak, rss(s));
    peaks.push(peak - base);
    console.log(`# ${what}: round ${i + 1}: RSS peak +${mib(peak - base)} MiB (base ${mib(base)} MiB), ${Date.now() - t0} ms`);
  }
  return peaks;
}

// Every round within `bound`, and none more than FLAT above the first.
function assertBounded(peaks, bound, what) {
  for (const [i, p] of peaks.entries())
    assert.ok(p <= bound, `${what}: round ${i + 1} RSS +${mib(p)} MiB > bound ${mib(bound)} MiB`);
  for (let i = 1; i < peaks.length; i++)
    assert.ok(peaks[i] <= peaks[0] + FLAT,
      `${what}: RSS grows from round to round: ${peaks.map(mib).join(', ')} MiB`);
}

async function connectAll(s, n) {
  const cs = await Promise.all(Array.from({ length: n }, () => rawClient(s.wsUrl)));
  await Promise.all(cs.map((c) => c.connect()));
  return cs;
}

// The first RECEIPT or ERROR after the frames already seen.
const firstOf = (c, commands, timeout = 20000) =>
  waitFor(() => c.frames.find((f) => commands.includes(f.command)), { timeout, what: commands.join(' or ') });

const receipts = (c) => c.frames.filter((f) => f.command === 'RECEIPT').map((f) => f.headers['receipt-id']);

async function expectMemoryError(c, timeout = 20000) {
  const err = await waitFor(() => c.frames.find((f) => f.command === 'ERROR'),
    { timeout, what: 'ERROR "Connection memory limit"' });
  assert.equal(err.headers.message, 'Connection memory limit', err.body?.toString());
  assert.match(err.body.toString(), /limits\.conn_memory/);
  assert.deepEqual(await c.waitClosed(10000), { code: 1002, reason: 'STOMP ERROR' });
  return err;
}

describe('limits.conn_memory', () => {
  test('ACK and NACK inside a transaction hold nothing: thousands of them, RSS flat, COMMIT receipted', async () => {
    const s = await startServer({ sets: SMALL, env });
    try {
      const pad = 'p'.repeat(3000);
      const n = 1500;   // x 3 KiB: 4.5 MiB per transaction, 4.5 times the budget
      const peaks = await rounds(s, 3, 'ACK/NACK transactions', async () => {
        const cs = await connectAll(s, 4);
        for (const c of cs) c.frame('BEGIN', { transaction: 't' });
        for (let i = 0; i < n; i++)
          for (const c of cs) c.frame(i % 2 ? 'NACK' : 'ACK', { id: `m${i}`, transaction: 't', 'x-pad': pad });
        for (const c of cs) c.frame('COMMIT', { transaction: 't', receipt: 'done' });
        for (const c of cs) {
          const f = await firstOf(c, ['RECEIPT', 'ERROR']);
          assert.equal(f.command, 'RECEIPT', `${f.headers.message}: ${f.body?.toString()}`);
          assert.equal(f.headers['receipt-id'], 'done');
          c.close();
        }
      });
      assertBounded(peaks, SLACK, 'ACK/NACK transactions');
      assert.equal(await metric(s.port, 'lectern_conn_memory_closes_total'), 0);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('SENDs buffered in transactions are charged what they will hold in flight: a transaction that fits commits, more gets ERROR "Connection memory limit"', async () => {
    const s = await startServer({ sets: SMALL, env });
    try {
      const body = 'b'.repeat(8000);
      // What fits commits whole: every SEND delivered.
      const [sub, pub] = await connectAll(s, 2);
      sub.frame('SUBSCRIBE', { id: '1', destination: '/topic/txn', receipt: 'sub' });
      await sub.waitFrame('RECEIPT');
      pub.frame('BEGIN', { transaction: 'ok' });
      for (let i = 0; i < 25; i++) pub.frame('SEND', { destination: '/topic/txn', transaction: 'ok' }, body);
      pub.frame('COMMIT', { transaction: 'ok', receipt: 'committed' });
      const f = await firstOf(pub, ['RECEIPT', 'ERROR']);
      assert.equal(f.command, 'RECEIPT', `${f.headers.message}: ${f.body?.toString()}`);
      await waitFor(() => sub.frames.filter((m) => m.command === 'MESSAGE').length === 25, { what: '25 messages' });
      sub.close();
      pub.close();

      // Four transactions of 200 x 8 KB each would be 6.4 MB; the budget
      // (1 MiB, a buffered SEND charged twice its bytes) stops it near 60.
      const conns = 8;
      const peaks = await rounds(s, 3, 'transactions of SENDs', async () => {
        const cs = await connectAll(s, conns);
        for (const c of cs) for (let t = 0; t < 4; t++) c.frame('BEGIN', { transaction: `t${t}` });
        for (let i = 0; i < 200; i++)
          for (const c of cs) c.frame('SEND', { destination: '/topic/txn', transaction: `t${i % 4}`, receipt: `s${i}` }, body);
        for (const c of cs) {
          const err = await expectMemoryError(c);
          const got = receipts(c);
          // 1 MiB / ~16.4 KB charged a SEND (two copies of 8 KB): at most 63.
          assert.ok(got.length > 30 && got.length <= 64, `${got.length} SENDs buffered`);
          assert.equal(err.headers['receipt-id'], `s${got.length}`, 'the first SEND that did not fit');
          assert.match(err.body.toString(), /open transactions [0-9.]+ (KiB|MiB)/);
        }
      });
      assertBounded(peaks, conns * MiB * ALLOC + SLACK, 'transactions of SENDs');
      assert.equal(await metric(s.port, 'lectern_conn_memory_closes_total'), 3 * conns);
      assert.equal(await metric(s.port, 'lectern_stomp_errors_by_reason_total{reason="Connection memory limit"}'), 3 * conns);
      await waitFor(async () => await metric(s.port, 'lectern_conn_memory_bytes') === 0, { what: 'nothing held' });
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('receipts waiting behind an operation Redis never answers are charged: ERROR "Connection memory limit", RSS flat', async () => {
    const relay = await tcpRelay(Number(process.env.LECTERN_REDIS_PORT || 6390), 'redis');
    const s = await startServer({
      sets: { ...SMALL, 'redis.port': relay.port, 'redis.reply_timeout_ms': 600000 }, env,
    });
    try {
      const id = (i) => `r${i}-`.padEnd(2000, 'x');
      const conns = 8;
      relay.pause();
      const peaks = await rounds(s, 3, 'receipts waiting', async (round) => {
        const cs = await connectAll(s, conns);
        cs.forEach((c, k) => {
          // Half wait behind a SEND to /status (a Redis command), half behind a
          // SEND. (A topic SUBSCRIBE holds the connection's input until its ban
          // check answers instead: nothing more is read, so nothing is charged.)
          if (k % 2) c.frame('SEND', { destination: '/status', receipt: 'first' }, `{"invisible":${round % 2 === 0}}`);
          else c.frame('SEND', { destination: '/topic/wait', receipt: 'first' }, 'never stored');
        });
        for (let i = 0; i < 1000; i++) for (const c of cs) c.frame('ACK', { id: 'm', receipt: id(i) });
        for (const c of cs) {
          const err = await expectMemoryError(c);
          assert.deepEqual(receipts(c), [], 'every receipt waits');
          assert.match(err.headers['receipt-id'], /^r\d+-x+$/);
          const n = Number(err.headers['receipt-id'].match(/^r(\d+)/)[1]);
          assert.ok(n > 300 && n < 520, `ERROR at the ${n}th receipt of 2 KB`);
          assert.match(err.body.toString(), /operations and receipts waiting [0-9.]+ (KiB|MiB)/);
        }
      });
      assertBounded(peaks, conns * MiB * ALLOC + SLACK, 'receipts waiting');
      assert.equal(await metric(s.port, 'lectern_conn_memory_closes_total'), 3 * conns);
    } finally {
      relay.resume();
      await waitFor(async () => (await httpGet(s.port, '/readyz')).status === 200, { timeout: 15000, what: '/readyz' })
        .catch(() => {});
      const code = (await s.stop()).code;
      relay.close();
      assert.equal(code, 0);
    }
  });

  test('output a client does not read is charged with its per-frame cost: tiny frames end it as a slow consumer (1008) before stomp.max_pending', async () => {
    // 2 MiB budget, 1 MiB of output bytes: a flood of ~30-byte RECEIPTs
    // would stay under max_pending for 35,000 frames while the server holds
    // several times their bytes; the budget counts what each one costs.
    const s = await startServer({ sets: { 'limits.conn_memory': '2m', 'stomp.max_pending': '1m' }, env });
    const open = [];
    try {
      const big = (i) => `b${i}-`.padEnd(4000, 'x');
      const conns = 2;
      let closes = 0;
      const peaks = await rounds(s, 3, 'output not read', async () => {
        const cs = await connectAll(s, conns);
        open.push(...cs);
        // Stop reading, then fill the kernel's socket buffers (several MB
        // on loopback) with large RECEIPTs, one connection at a time, until
        // the server starts queueing.
        for (const c of cs) {
          c.ws._socket.pause();
          const before = await metric(s.port, 'lectern_pending_bytes');
          for (let i = 0; await metric(s.port, 'lectern_pending_bytes') <= before; i++) {
            for (let k = 0; k < 50; k++) c.frame('ACK', { id: 'm', receipt: big(i * 50 + k) });
            await sleep(20); // between rounds of a bounded poll (i < 2000)
            assert.ok(i < 2000, 'the server never queued');
          }
        }
        for (let i = 0; i < 30000; i++) for (const c of cs) c.frame('ACK', { id: 'm', receipt: `r${i}` });
        closes += conns;
        await waitFor(async () => await memoryCloses(s) === closes,
          { timeout: 30000, what: 'both closed over limits.conn_memory' });
        for (const c of cs) c.ws._socket.resume();
        // Mostly the output queue overflows (a slow consumer); when the last
        // bytes of the budget go to a frame split across reads instead, the
        // input side answers with ERROR. Either way the connection ends.
        for (const c of cs) {
          const closed = await c.waitClosed(10000);
          if (closed.code === 1002)
            assert.equal(c.frames.find((f) => f.command === 'ERROR')?.headers.message, 'Connection memory limit');
          else
            assert.deepEqual(closed, { code: 1008, reason: 'slow consumer' });
        }
      });
      assertBounded(peaks, conns * 2 * MiB * ALLOC + SLACK, 'output not read');
      // The budget, not stomp.max_pending, dropped them.
      const drops = s.logs.filter((l) => l.includes('event=slow_consumer'));
      assert.ok(drops.length >= 1 && drops.length <= 3 * conns, `${drops.length} slow consumers`);
      for (const l of drops) {
        const [, pending, limit] = l.match(/pending=(\d+) limit=(\d+)/).map(Number);
        assert.ok(pending < limit * 0.75, `dropped at ${pending} bytes queued: ${l}`);
      }
      console.log(`# output not read: ${drops.length} of ${3 * conns} connections closed as slow consumers (1008), ${3 * conns - drops.length} by ERROR`);
      assert.equal(await metric(s.port, 'lectern_conn_memory_closes_total'), 3 * conns);
    } finally {
      for (const c of open) c.close();
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('partial frames: 40 connections each holding a nearly complete 256 KiB frame are charged and bounded; each gets ERROR "Frame timeout"', async () => {
    const s = await startServer({ sets: { 'stomp.frame_timeout_ms': 1500 }, env });
    try {
      const conns = 40;
      const head = Buffer.from('SEND\ndestination:/topic/partial\n\n');
      const part = Buffer.alloc(250 * 1024 - head.length, 'z');
      let charged = 0;
      const peaks = await rounds(s, 3, 'partial frames', async () => {
        const cs = await connectAll(s, conns);
        const before = await metric(s.port, 'lectern_received_bytes_total');
        for (const c of cs) c.send(Buffer.concat([head, part.subarray(0, 100000)]));
        for (const c of cs) c.send(part.subarray(100000));
        await waitFor(async () => await metric(s.port, 'lectern_received_bytes_total') - before >= conns * 250 * 1024,
          { what: 'every partial frame received' });
        charged = Math.max(charged, await metric(s.port, 'lectern_conn_memory_bytes'));
        for (const c of cs) {
          const err = await c.waitFrame('ERROR', 10000);
          assert.equal(err.headers.message, 'Frame timeout');
          await c.waitClosed();
        }
      });
      // Each connection's input buffer (256 KiB) is charged to it.
      assert.ok(charged >= conns * 250 * 1024, `charged ${charged}`);
      assertBounded(peaks, conns * 256 * 1024 * ALLOC + SLACK, 'partial frames');
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('a partial frame is charged with the rest: a connection whose transactions fill its budget gets ERROR "Connection memory limit" while the frame is still arriving', async () => {
    const s = await startServer({ sets: SMALL, env });
    try {
      const c = (await connectAll(s, 1))[0];
      c.frame('BEGIN', { transaction: 't' });
      const body = 'b'.repeat(8000);
      // Fill to within 50 KB of the budget (1 MiB): some 60 SENDs.
      for (let i = 0; (await count(s, 'lectern_conn_memory_bytes')) < MiB - 50000; i++) {
        assert.ok(i < 200, 'the budget never filled');
        c.frame('SEND', { destination: '/topic/p', transaction: 't', receipt: `s${i}` }, body);
        const f = await firstOf(c, ['RECEIPT', 'ERROR']);
        assert.equal(f.command, 'RECEIPT', `${f.headers.message}: ${f.body?.toString()}`);
        c.frames.length = 0;
      }
      const held = await metric(s.port, 'lectern_conn_memory_bytes');
      // 60 KB of a SEND: the input buffer's 64 KiB do not fit any more.
      c.send(Buffer.concat([Buffer.from('SEND\ndestination:/topic/p\n\n'), Buffer.alloc(60000, 'y')]));
      const err = await expectMemoryError(c);
      assert.equal(err.headers['receipt-id'], undefined);
      assert.match(err.body.toString(), /and needed 64\.0 KiB more/, 'the input buffer asked for more');
      console.log(`# held ${held} bytes of 1 MiB before the partial frame; ERROR: ${err.body.toString()}`);
      await waitFor(async () => await metric(s.port, 'lectern_conn_memory_bytes') === 0, { what: 'all released' });
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('a subscription is released with exactly what it was charged: SUBSCRIBE/UNSUBSCRIBE cycles leave nothing held', async () => {
    const s = await startServer({ sets: SMALL, env });
    try {
      const [c] = await connectAll(s, 1);
      const base = await metric(s.port, 'lectern_conn_memory_bytes');
      // A room name longer than malloc's 16-byte rounding: a release that
      // left the name out would leave bytes charged at every cycle.
      const room = `/topic/${'cycle-room-'.repeat(6)}`;
      for (let i = 0; i < 50; i++) {
        c.frame('SUBSCRIBE', { id: `s${i}`, destination: room, receipt: `a${i}` });
        c.frame('UNSUBSCRIBE', { id: `s${i}`, receipt: `u${i}` });
      }
      await waitFor(() => c.frames.some((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'u49'),
        { what: 'the last UNSUBSCRIBE receipt' });
      assert.equal(await metric(s.port, 'lectern_conn_memory_bytes'), base);
      c.close();
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('limits.conn_memory too small for a frame and the output queue: the server refuses to start', async () => {
    await assert.rejects(startServer({ sets: { 'limits.conn_memory': '1m', 'stomp.max_pending': '1m' }, timeout: 5000 }),
      /limits\.conn_memory \(1048576\) must be at least/);
  });
});

describe('rate limits of every frame kind', () => {
  // 110 frames with receipts against 50/s after a burst of 10: about 2 s.
  async function paced(sets, send) {
    const s = await startServer({ sets, env });
    try {
      const c = (await connectAll(s, 1))[0];
      const t0 = Date.now();
      const ids = send(c);
      await waitFor(() => receipts(c).length === ids.length, { timeout: 15000, what: `${ids.length} receipts` });
      const took = Date.now() - t0;
      assert.deepEqual(receipts(c), ids, 'nothing dropped, in order');
      assert.equal(c.closed, null);
      assert.ok(await metric(s.port, 'lectern_throttled_total') > 0);
      c.close();
      return took;
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  }

  test('an ACK flood is slowed to limits.frame_rate (backpressure), not dropped', async () => {
    const took = await paced({ 'limits.frame_rate': 50, 'limits.frame_burst': 10 }, (c) => {
      const ids = [];
      for (let i = 0; i < 110; i++) {
        ids.push(`a${i}`);
        c.frame(i % 2 ? 'NACK' : 'ACK', { id: `m${i}`, receipt: `a${i}` });
      }
      return ids;
    });
    console.log(`# frame rate 50/s, burst 10: 110 ACK/NACK took ${took} ms`);
    assert.ok(took >= 1500, `110 ACKs took ${took} ms`);
  });

  test('a SUBSCRIBE/UNSUBSCRIBE flood is slowed to limits.frame_rate too', async () => {
    const took = await paced({ 'limits.frame_rate': 50, 'limits.frame_burst': 10 }, (c) => {
      const ids = [];
      for (let i = 0; i < 55; i++) {
        ids.push(`s${i}`, `u${i}`);
        c.frame('SUBSCRIBE', { id: `${i}`, destination: `/topic/flood-${i}`, receipt: `s${i}` });
        c.frame('UNSUBSCRIBE', { id: `${i}`, receipt: `u${i}` });
      }
      return ids;
    });
    console.log(`# frame rate 50/s, burst 10: 55 SUBSCRIBE + 55 UNSUBSCRIBE took ${took} ms`);
    assert.ok(took >= 1500, `110 frames took ${took} ms`);
  });

  test('limits.send_bytes_rate counts the bytes of every frame, not only SENDs', async () => {
    const pad = 'h'.repeat(3300);
    const took = await paced({ 'limits.send_bytes_rate': '50k', 'limits.send_bytes_burst': '10k' }, (c) => {
      const ids = [];
      for (let i = 0; i < 10; i++) {
        ids.push(`b${i}`);
        c.frame('ACK', { id: `m${i}`, receipt: `b${i}`, 'x-a': pad, 'x-b': pad, 'x-c': pad });
      }
      return ids;
    });
    console.log(`# byte limit 50 kB/s, burst 10 kB: 100 kB of ACKs took ${took} ms`);
    assert.ok(took >= 1200, `100 kB of ACKs took ${took} ms`);
  });
});
