// Graceful drain: SIGTERM closes clients with 1012 after their operations
// are done, and a rolling restart of every server under traffic loses and
// duplicates nothing — live (client-js resumes with x-since) or stored.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { LecternClient } from '../../client-js/src/index.js';
import {
  clusterName, isProbe, metric, probeUntil, rawClient, sleep, sql, startHaproxy, startServer, startWorker, waitFor,
} from './helpers.mjs';

const opts = (login) => ({
  WebSocket, login, name: login, reconnect: { base: 100, cap: 800 }, heartbeat: { outgoing: 0, incoming: 0 },
});

describe('drain', () => {
  test('SIGTERM: receipts for what was sent, then close 1012; the server deregisters and exits 0', { timeout: 60000 }, async () => {
    const s = await startServer({ sets: { 'server.drain_timeout_ms': 5000 } });
    const other = await startServer({ cluster: s.cluster });
    const c = await rawClient(s.wsUrl);
    await c.connect();
    for (let i = 0; i < 200; i++) c.frame('SEND', { destination: '/topic/drain', receipt: `r${i}` }, `m${i}`);
    const t0 = Date.now();
    s.proc.kill('SIGTERM');
    const closed = await c.waitClosed(8000);
    assert.equal(closed.code, 1012);
    // Whatever the server read before the signal was answered first; what
    // it had not read gets no receipt (the client sends it again elsewhere).
    const receipts = c.frames.filter((f) => f.command === 'RECEIPT').map((f) => f.headers['receipt-id']);
    assert.deepEqual(receipts, receipts.map((_, i) => `r${i}`));
    assert.equal(c.frames.filter((f) => f.command === 'ERROR').length, 0);
    const { code } = await s.waitExit();
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 8000);
    const drained = s.logs.find((l) => /event=drained/.test(l));
    assert.ok(drained, 'drained');
    console.log(`# drain with 200 SENDs in flight: ${receipts.length} receipted, exit after ${Date.now() - t0} ms (${drained.match(/waited_ms=\d+/)[0]})`);
    // The other server no longer counts it as a member of the cluster.
    await waitFor(async () => (await metric(other.port, 'lectern_registry_up')) === 1);
    assert.equal((await other.stop()).code, 0);
  });

  test('rolling restart of every server under traffic: every confirmed message reaches every student once, and MySQL once', { timeout: 120000 }, async () => {
    const cluster = clusterName();
    const sets = { 'server.drain_timeout_ms': 5000 };
    const rname = `roll-${cluster}`;
    const servers = [];
    for (let i = 0; i < 2; i++) servers.push(await startServer({ cluster, sets: { ...sets, 'server.id': `${cluster}-a${i}` } }));
    const ports = servers.map((s) => s.port);
    const lb = await startHaproxy(ports);
    const worker = await startWorker({ cluster });
    const students = ['s1', 's2', 's3'].map((n) => new LecternClient(lb.wsUrl, opts(n)));
    const sender = new LecternClient(lb.wsUrl, opts('prof'));
    const got = students.map(() => []);
    const sent = [];
    let stop = false, retries = 0;
    try {
      await Promise.all([...students, sender].map((c) => c.connect()));
      const probed = students.map(() => 0);
      students.forEach((c, i) => c.join(rname).on('message', (m) => (isProbe(m.body) ? probed[i]++ : got[i].push(m.body))));
      const room = sender.join(rname, { presence: false });
      const probes = await probeUntil((b) => room.send(b), () => probed.every((n) => n > 0),
        { what: 'every student subscribed' });
      // Twenty SENDs in flight at a time, so that a drain always finds some
      // the server has read and not yet confirmed: those must be answered
      // before the close. A send refused by a drain is sent again; it was
      // never read, so that cannot make a duplicate.
      const pump = (async () => {
        for (let i = 0; !stop; i += 20) {
          let batch = Array.from({ length: 20 }, (_, k) => `n${i + k}`);
          while (batch.length) {
            const results = await Promise.allSettled(batch.map((b) => room.send(b)));
            const failed = batch.filter((_, k) => results[k].status === 'rejected');
            sent.push(...batch.filter((_, k) => results[k].status === 'fulfilled'));
            if (failed.length) {
              retries += failed.length;
              await waitFor(() => sender.state === 'online', { timeout: 20000, what: 'sender back' });
            }
            batch = failed;
          }
          await sleep(5); // pacing of the traffic
        }
      })();
      for (let i = 0; i < servers.length; i++) {
        await waitFor(() => sent.length >= 400 * (i + 1), { timeout: 20000, what: 'traffic' });
        const { code } = await servers[i].stop({ timeout: 15000 });
        assert.equal(code, 0, `server ${i} exit code`);
        servers[i] = await startServer({ cluster, port: ports[i], sets: { ...sets, 'server.id': `${cluster}-b${i}` } });
      }
      await waitFor(() => sent.length >= 400 * (servers.length + 1), { timeout: 20000, what: 'traffic after the restarts' });
      stop = true;
      await pump;
      await waitFor(() => got.every((g) => g.length >= sent.length), { timeout: 20000, what: 'everything delivered' });
      // One more message, after all of them: a duplicate would arrive before it.
      await room.send('fence');
      sent.push('fence');
      await waitFor(() => got.every((g) => g.includes('fence')), { what: 'the fence delivered' });
      // Once each (a resent message arrives after its successors).
      const want = [...sent].sort();
      for (const g of got) assert.deepEqual([...g].sort(), want, 'exactly once');
      // The probes got RECEIPTs too: they are stored like the rest.
      const stored = sent.length + probes;
      await waitFor(async () => Number((await sql(`SELECT COUNT(*) FROM messages WHERE room = '${rname}'`))[0][0]) >= stored,
        { timeout: 20000, what: 'all stored' });
      const [[rows, distinct]] = await sql(`SELECT COUNT(*), COUNT(DISTINCT body) FROM messages WHERE room = '${rname}'`);
      assert.equal(Number(rows), stored, 'stored once each');
      assert.equal(Number(distinct), stored);
      console.log(`# rolling restart: ${sent.length} messages, ${retries} sends retried after a drain`);
    } finally {
      stop = true;
      for (const c of [...students, sender]) c.disconnect();
      await lb.stop();
      await worker.stop();
      for (const s of servers) await s.stop();
    }
  });
});
