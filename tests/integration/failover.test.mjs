// RabbitMQ node lists: servers and workers given several broker addresses
// (bus.host, amqp.host) move to the next one when theirs fails.
//
// The suite has one RabbitMQ; the "nodes" here are two TCP relays in front
// of it and one port nobody listens on. A relay can be frozen: it keeps
// every connection open and silently drops what flows either way, which is
// what a node looks like to its clients when it is SIGSTOPped, overloaded,
// or behind a cut link — no FIN, no RST, just silence. The clients must
// notice that by themselves (AMQP heartbeats) and fail over; the relay
// never tells them. Frozen connections stay open towards RabbitMQ too, as
// they would from a partitioned node, so RabbitMQ drops them only after its
// own heartbeat timeout: until then the server's exclusive queue is still
// held by the old connection, and the failover must get past that as well.
// The multi-host scenarios (tests/cluster) kill real cluster nodes.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  clusterName, freePort, httpGet, metric, rabbitmqctl, sleep, sql, startServer, startWorker,
  stompClient, subscribed, tcpRelay, waitFor,
} from './helpers.mjs';

const AMQP_PORT = Number(process.env.LECTERN_AMQP_PORT || 5690);
const relays = [];
after(() => { for (const r of relays) r.close(); });

const relay = (name) => tcpRelay(AMQP_PORT, name, relays);

// rabbitmqctl against the suite's broker (scripts/services env).
const deadPort = () => freePort(); // nothing listens there: connection refused

async function ready(port) {
  try { return (await httpGet(port, '/readyz')).status; } catch { return 0; }
}

// SEND with a receipt; resolves true on RECEIPT, false on ERROR or after ms.
function sendReceipted(client, room, body, ms = 8000) {
  return new Promise((resolve) => {
    const receipt = `r-${body}`;
    const prev = client.onStompError;
    const done = (ok) => {
      clearTimeout(timer);
      client.onStompError = prev;
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    client.onStompError = (f) => { prev?.(f); done(false); };
    client.watchForReceipt(receipt, () => done(true));
    client.publish({ destination: `/topic/${room}`, body, headers: { receipt } });
  });
}

describe('RabbitMQ node lists (bus.host, amqp.host)', () => {
  test('a node that goes silent: the server and the worker move to the next live node, past a dead one, and lose nothing confirmed', async () => {
    const [p1, p2] = [await relay('p1'), await relay('p2')];
    const dead = await deadPort();
    // The dead node sits between the relays' positions once wrapped: from
    // p2 the next node is the dead one, from p1 it is p2.
    const list = `127.0.0.1:${dead},${p1.addr},${p2.addr}`;
    const a = await startServer({
      sets: { 'bus.host': list, 'bus.heartbeat_s': 1, 'bus.backoff_min_ms': 50, 'log.level': 'debug' },
      timeout: 30000,
    });
    const b = await startServer({ cluster: a.cluster });
    const w = await startWorker({
      cluster: a.cluster,
      sets: { 'amqp.host': list, 'amqp.heartbeat_s': 1, 'amqp.backoff_min_ms': 50, 'log.level': 'debug' },
      timeout: 30000,
    });
    const room = `fo-${a.cluster}`;
    const clients = [];
    const stomp = async (s, login) => {
      const { client } = await stompClient(s.wsUrl, { connectHeaders: { login }, reconnectDelay: 200 });
      clients.push(client);
      return client;
    };
    try {
      const onA = await subscribed(await stomp(a, 'student-a'), `/topic/${room}`);
      const onB = await subscribed(await stomp(b, 'student-b'), `/topic/${room}`);
      const sendA = await stomp(a, 'teacher-a');
      const sendB = await stomp(b, 'teacher-b');
      const acked = [];
      let seq = 0;
      // Both directions, with receipts: A's publisher (A -> B) and A's
      // consumer (B -> A) must work after every failover.
      const roundTrip = async (what) => {
        for (const [c, from] of [[sendA, 'a'], [sendB, 'b']]) {
          await waitFor(() => c.connected, { timeout: 10000, what: `teacher-${from} connected` });
          const body = `${what}-${from}-${seq++}`;
          assert.ok(await sendReceipted(c, room, body), `RECEIPT for ${body}`);
          acked.push(body);
        }
        const want = new Set(acked);
        for (const [col, who] of [[onA, 'A'], [onB, 'B']]) {
          await waitFor(() => [...want].every((x) => col.messages.some((m) => m.body === x)),
            { timeout: 15000, what: `student on ${who} has every acknowledged message (${what})` });
        }
      };
      await roundTrip('before');

      // Two rounds, each freezing the relay that holds A's connections: one
      // of them moves from p2 and must step over the dead port.
      const moves = [];
      for (let round = 0; round < 2; round++) {
        await waitFor(() => p1.live() + p2.live() >= 3, { timeout: 20000, what: 'server and worker connected' });
        const from = p1.live() >= p2.live() ? p1 : p2;
        const to = from === p1 ? p2 : p1;
        const busBefore = await metric(a.port, 'lectern_bus_reconnects_total');
        const t0 = Date.now();
        from.freeze();
        // Traffic during the freeze: what gets a RECEIPT must arrive.
        const during = (async () => {
          // A refusal (ERROR while the bus is down) closes the STOMP
          // session; the client reconnects and goes on.
          for (let i = 0; i < 20; i++) {
            await sleep(100); // spreads the SENDs over the freeze: pacing, not waiting
            if (!sendA.connected) continue;
            const body = `during${round}-${seq++}`;
            if (await sendReceipted(sendA, room, body, 10000)) acked.push(body);
          }
        })();
        await waitFor(async () => (await metric(a.port, 'lectern_bus_reconnects_total')) >= busBefore + 1
          && (await ready(a.port)) === 200, { timeout: 30000, interval: 50, what: `server moved off ${from.name}` });
        const ms = Date.now() - t0;
        await waitFor(() => to.live() >= 3, { timeout: 30000, what: `server and worker on ${to.name}` });
        moves.push(`${from.name}->${to.name} ${ms} ms`);
        await during;
        from.thaw();
        await roundTrip(`after${round}`);
      }
      console.log(`# failovers: ${moves.join(', ')}`);
      assert.ok(a.logs.some((l) => l.includes(`node=127.0.0.1:${dead}`)),
        'the server tried the dead node on its way round the list');
      assert.ok(w.logs.some((l) => /amqp_down .*node=127\.0\.0\.1:/.test(l)), 'the worker logged its failover');
      assert.ok(w.logs.filter((l) => l.includes('amqp_up')).length >= 2, 'the worker came up again on another node');

      // Everything acknowledged is stored exactly once.
      const inList = acked.map((x) => `'${x}'`).join(',');
      await waitFor(async () => Number((await sql(`SELECT COUNT(*) FROM messages WHERE room='${room}' AND body IN (${inList})`))[0][0]) === acked.length,
        { timeout: 30000, interval: 250, what: `${acked.length} acknowledged messages in MySQL` });
      const dup = await sql(`SELECT body, COUNT(*) c FROM messages WHERE room='${room}' GROUP BY body HAVING c > 1 LIMIT 3`);
      assert.deepEqual(dup, [], 'no message stored twice');
    } finally {
      await Promise.all(clients.map((c) => c.deactivate()));
      assert.deepEqual(await w.stop(), { code: 0, signal: null });
      assert.deepEqual(await b.stop(), { code: 0, signal: null });
      assert.deepEqual(await a.stop(), { code: 0, signal: null });
    }
  }, { timeout: 180000 });

  test('every node silent: /readyz says 503 and SENDs get an ERROR (no hang); both recover when a node answers again', async () => {
    const p1 = await relay('p1');
    const p2 = await relay('p2');
    const a = await startServer({
      sets: { 'bus.host': `${p1.addr},${p2.addr}`, 'bus.heartbeat_s': 1, 'bus.backoff_min_ms': 50 },
    });
    const room = `fo2-${a.cluster}`;
    const { client } = await stompClient(a.wsUrl, { connectHeaders: { login: 'teacher' }, reconnectDelay: 200 });
    const errors = [];
    client.onStompError = (f) => errors.push(f.headers.message);
    try {
      assert.ok(await sendReceipted(client, room, 'before'));
      p1.freeze();
      p2.freeze();
      const t0 = Date.now();
      await waitFor(async () => (await ready(a.port)) === 503, { timeout: 10000, interval: 50, what: '/readyz 503' });
      const down = Date.now() - t0;
      // Refused at once: the bus is down, so nothing would confirm it.
      const t1 = Date.now();
      assert.equal(await sendReceipted(client, room, 'while-frozen', 8000), false);
      await waitFor(() => errors.length > 0, { timeout: 8000, what: 'an ERROR frame' });
      const refusedIn = Date.now() - t1;
      p1.thaw();
      p2.thaw();
      const t2 = Date.now();
      await waitFor(async () => (await ready(a.port)) === 200, { timeout: 20000, interval: 50, what: '/readyz 200 again' });
      console.log(`# all nodes silent: /readyz 503 after ${down} ms, SEND refused in ${refusedIn} ms, ` +
        `ready ${Date.now() - t2} ms after a node answered (${errors[0]})`);
      await waitFor(() => client.connected, { timeout: 10000, what: 'client reconnected' });
      assert.ok(await sendReceipted(client, room, 'after'), 'SEND acknowledged again');
    } finally {
      await client.deactivate();
      assert.deepEqual(await a.stop(), { code: 0, signal: null });
    }
  }, { timeout: 120000 });

  // The consumer's half of the bus cannot come back (here: its user may not
  // declare the server's queue; in a cluster: the node that held the queue
  // is cut off, and no node can create a queue until the cluster gives up
  // on it). The server must keep taking SENDs (the publisher works) and keep
  // its students fed from the room logs.
  test('only the consumer is down: SENDs still get RECEIPTs and the students get the other servers\' messages from the room logs', async () => {
    const ns = clusterName();
    const user = `u-${ns}`;
    await rabbitmqctl('add_user', user, 'pw');
    await rabbitmqctl('set_permissions', '-p', '/', user, `^${ns}\\.(fanout|storage)$`, '.*', '.*');
    const a = await startServer({
      cluster: ns,
      ready: false,
      sets: { 'bus.user': user, 'bus.password': 'pw', 'relay.pull_ms': 200 },
    });
    const b = await startServer({ cluster: ns });
    const room = `half-${ns}`;
    const clients = [];
    try {
      const stomp = async (s, login) => {
        const { client } = await stompClient(s.wsUrl, { connectHeaders: { login } });
        clients.push(client);
        return client;
      };
      const onA = await subscribed(await stomp(a, 'student-a'), `/topic/${room}`);
      const onB = await subscribed(await stomp(b, 'student-b'), `/topic/${room}`);
      const sendA = await stomp(a, 'teacher-a');
      const sendB = await stomp(b, 'teacher-b');
      await waitFor(() => a.logs.some((l) => /bus_down conn=consumer .*ACCESS_REFUSED/.test(l)),
        { what: 'the consumer refused' });
      const r = await httpGet(a.port, '/readyz');
      assert.equal(r.status, 503, '/readyz: the server cannot receive');
      assert.match(r.text, /bus/);
      const t0 = Date.now();
      for (let i = 0; i < 5; i++) {
        assert.ok(await sendReceipted(sendB, room, `from-b-${i}`), 'B: RECEIPT');
        assert.ok(await sendReceipted(sendA, room, `from-a-${i}`), 'A: RECEIPT although A cannot receive');
      }
      // The last ones come from B alone: no later message of A's reveals
      // them as a gap, so only reading the room log brings them to A.
      for (let i = 5; i < 8; i++) assert.ok(await sendReceipted(sendB, room, `from-b-${i}`), 'B: RECEIPT');
      const all = [0, 1, 2, 3, 4].flatMap((i) => [`from-b-${i}`, `from-a-${i}`]).concat(['from-b-5', 'from-b-6', 'from-b-7']);
      for (const [col, who] of [[onA, 'A'], [onB, 'B']]) {
        await col.next(all.length, 10000);
        assert.deepEqual(col.messages.map((m) => m.body), all, `student on ${who}: everything, in order`);
      }
      console.log(`# consumer down: ${all.length} messages delivered on both servers in ${Date.now() - t0} ms`);
      assert.equal((await httpGet(a.port, '/readyz')).status, 503, 'still not ready');
    } finally {
      await Promise.all(clients.map((c) => c.deactivate()));
      assert.deepEqual(await b.stop(), { code: 0, signal: null });
      assert.deepEqual(await a.stop(), { code: 0, signal: null });
      await rabbitmqctl('delete_user', user).catch(() => {});
    }
  }, { timeout: 120000 });

  // A quorum queue whose leader died refuses publishes (basic.nack) until a
  // new leader is elected; here a length limit with reject-publish makes
  // the broker refuse every storage copy for as long as the policy stands.
  test('a storage copy RabbitMQ refuses (basic.nack) is published again until it is taken, or until storage.confirm_timeout_ms', async () => {
    const ns = clusterName();
    // Refusals alone here: no reopening (the next test has that).
    const patient = await startServer({ cluster: ns, sets: { 'storage.confirm_timeout_ms': 15000, 'storage.nack_retry_ms': 100, 'storage.nack_reopen_ms': 0 } });
    const hasty = await startServer({ cluster: ns, sets: { 'storage.confirm_timeout_ms': 1000, 'storage.nack_retry_ms': 100 } });
    const room = `nack-${ns}`;
    const policy = `nack-${ns}`;
    const { client: p } = await stompClient(patient.wsUrl, { connectHeaders: { login: 'p' } });
    const { client: h } = await stompClient(hasty.wsUrl, { connectHeaders: { login: 'h' } });
    const errors = [];
    h.onStompError = (f) => errors.push(f.headers.message);
    try {
      assert.ok(await sendReceipted(p, room, 'before'), 'RECEIPT before the policy');
      await rabbitmqctl('set_policy', '--apply-to', 'queues', policy, `^${ns}\\.storage$`,
        '{"max-length":0,"overflow":"reject-publish"}');
      // Wait until the broker refuses (the policy applies asynchronously).
      await waitFor(async () => (await metric(patient.port, 'lectern_bus_nacks_total')) > 0
        || !(await sendReceipted(p, room, `probe-${Date.now()}`, 300)), { timeout: 10000, interval: 100, what: 'a nack' });
      const nacks0 = await metric(patient.port, 'lectern_bus_nacks_total');
      let held = null;
      const t0 = Date.now();
      const heldP = sendReceipted(p, room, 'held', 14000).then((ok) => { held = ok; });
      const refusedP = sendReceipted(h, room, 'refused', 5000);
      // A window of fixed length: no RECEIPT within it while the broker
      // refuses, and the nacks retried every 100 ms fill it.
      await sleep(1500);
      assert.equal(held, null, 'no RECEIPT while the broker refuses');
      assert.ok(await metric(patient.port, 'lectern_bus_nacks_total') >= nacks0 + 5, 'nacked and retried every 100 ms');
      assert.equal(await refusedP, false, 'the hasty server gives up at its deadline');
      assert.deepEqual(errors, ['Message not stored']);
      await rabbitmqctl('clear_policy', policy);
      await heldP;
      assert.equal(held, true, `RECEIPT once the broker takes it (${Date.now() - t0} ms after the SEND)`);
      assert.ok(await metric(patient.port, 'lectern_bus_republished_total') > 0);
      console.log(`# nack: held ${Date.now() - t0} ms, ${await metric(patient.port, 'lectern_bus_nacks_total')} nacks, then a RECEIPT`);
    } finally {
      await rabbitmqctl('clear_policy', policy).catch(() => {});
      await p.deactivate();
      await h.deactivate();
      assert.deepEqual(await hasty.stop(), { code: 0, signal: null });
      assert.deepEqual(await patient.stop(), { code: 0, signal: null });
    }
  }, { timeout: 120000 });

  // RabbitMQ 3.10 can leave a channel opened during a quorum queue's
  // election refusing it after the election (tests/cluster has the real
  // thing); the server gives such a connection up after
  // storage.nack_reopen_ms of refusals without a confirm. The same policy
  // stands in for the refusing channel: every connection is refused, so
  // the server reopens again and again, and the SEND it holds meanwhile
  // still gets its RECEIPT once the broker takes copies again.
  test('storage copies refused for storage.nack_reopen_ms without a confirm: the publisher reopens its connection, the held SEND still gets its RECEIPT', async () => {
    const ns = clusterName();
    const s = await startServer({ cluster: ns, sets: {
      'storage.confirm_timeout_ms': 20000, 'storage.nack_retry_ms': 100, 'storage.nack_reopen_ms': 700 } });
    const room = `reopen-${ns}`;
    const policy = `reopen-${ns}`;
    const { client: p } = await stompClient(s.wsUrl, { connectHeaders: { login: 'p' } });
    try {
      assert.ok(await sendReceipted(p, room, 'before'), 'RECEIPT before the policy');
      const reopens0 = await metric(s.port, 'lectern_bus_nack_reopens_total');
      await rabbitmqctl('set_policy', '--apply-to', 'queues', policy, `^${ns}\\.storage$`,
        '{"max-length":0,"overflow":"reject-publish"}');
      await waitFor(async () => (await metric(s.port, 'lectern_bus_nacks_total')) > 0
        || !(await sendReceipted(p, room, `probe-${Date.now()}`, 300)), { timeout: 10000, interval: 100, what: 'a nack' });
      let held = null;
      const heldP = sendReceipted(p, room, 'held', 19000).then((ok) => { held = ok; });
      const t0 = Date.now();
      await waitFor(async () => (await metric(s.port, 'lectern_bus_nack_reopens_total')) >= reopens0 + 2,
        { timeout: 10000, interval: 100, what: 'two reopens' });
      const took = Date.now() - t0;
      assert.equal(held, null, 'no RECEIPT while the broker refuses');
      assert.ok(s.logs.some((l) => /event=bus_down conn=publisher .*reason="storage copies refused for 700 ms without a confirm"/.test(l)),
        'a bus_down line says why');
      await rabbitmqctl('clear_policy', policy);
      await heldP;
      assert.equal(held, true, 'RECEIPT for the SEND held across the reopens');
      assert.ok(await sendReceipted(p, room, 'after'), 'RECEIPT after the policy');
      console.log(`# reopen: two reopens ${took} ms after the refusals began (storage.nack_reopen_ms 700)`);
    } finally {
      await rabbitmqctl('clear_policy', policy).catch(() => {});
      await p.deactivate();
      assert.deepEqual(await s.stop(), { code: 0, signal: null });
    }
  }, { timeout: 120000 });
});
