// The cluster: N lectern-server processes sharing Redis (registry, room logs)
// and RabbitMQ (the bus), with haproxy in front where it matters. Real
// services, real @stomp/stompjs clients.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  assertIncreasing, clusterName, finishSender, freePort, httpGet, metric, service, startCluster, startServer,
  steadySender, stompClient, tcpRelay, waitFor,
} from './helpers.mjs';


async function subscribeAll(clients, destination, sink) {
  await Promise.all(clients.map((cl, i) => new Promise((resolve) => {
    cl.watchForReceipt(`sub-${i}`, resolve);
    cl.subscribe(destination, (m) => sink(i, m), { receipt: `sub-${i}` });
  })));
}

async function sum(servers, name) {
  let total = 0;
  for (const s of servers) total += await metric(s.port, name);
  return total;
}

// Every test runs in both bus modes: fanout (every server's queue gets every
// room message) and dynamic (queues bound per room).
for (const mode of ['fanout', 'dynamic']) describe(`cluster (${mode} mode)`, () => {
  const M = { 'bus.mode': mode };
  {
    test('300 stompjs clients on 3 servers behind haproxy, 50 senders: every client gets every message exactly once, in one room order', async () => {
      const c = await startCluster({ n: 3, lb: true, sets: M });
      const clients = [];
      try {
        const N = 300, SENDERS = 50, PER = 10, TOTAL = SENDERS * PER;
        for (let i = 0; i < N; i += 50) {
          const batch = await Promise.all(Array.from({ length: 50 }, (_, k) =>
            stompClient(c.lb.wsUrl, { connectHeaders: { login: `user-${i + k}` } })));
          clients.push(...batch.map((b) => b.client));
        }
        const got = clients.map(() => []);
        await subscribeAll(clients, '/topic/lecture-hall', (i, m) => got[i].push(m));
        for (const s of c.servers)
          assert.ok(await metric(s.port, 'lectern_connections') >= 60, 'haproxy spread the clients');

        for (let k = 0; k < PER; k++)
          for (let s = 0; s < SENDERS; s++)
            clients[s].publish({ destination: '/topic/lecture-hall', body: JSON.stringify({ s, k }) });
        await waitFor(() => got.every((g) => g.length >= TOTAL), { timeout: 60000, what: 'every delivery' });
        // One more round, after every delivery: each sender's last message
        // takes the paths its earlier ones took, so a duplicate of any of
        // them arrives before it.
        for (let s = 0; s < SENDERS; s++)
          clients[s].publish({ destination: '/topic/lecture-hall', body: JSON.stringify({ s, k: PER }) });
        const ALL = TOTAL + SENDERS;
        const lasts = (g) => g.filter((m) => JSON.parse(m.body).k === PER).length;
        await waitFor(() => got.every((g) => lasts(g) === SENDERS), { timeout: 60000, what: "every sender's last message" });

        const order = got[0].map((m) => m.headers['message-id']);
        for (let i = 0; i < N; i++) {
          const ids = got[i].map((m) => m.headers['message-id']);
          assert.equal(ids.length, ALL, `client ${i} got each message once`);
          assert.equal(new Set(ids).size, ALL, `client ${i}: no duplicates`);
          assertIncreasing(ids, `client ${i} ids`);
          assert.deepEqual(ids, order, `client ${i} saw the room order`);
          const lastK = new Map();
          for (const m of got[i]) {
            const { s, k } = JSON.parse(m.body);
            assert.ok(k > (lastK.get(s) ?? -1), `client ${i}: sender ${s} in order`);
            lastK.set(s, k);
          }
        }
        // Every server had members: each message went to the bus exactly once.
        assert.equal(await sum(c.servers, 'lectern_bus_published_total'), ALL);
        assert.equal(await sum(c.servers, 'lectern_bus_skipped_total'), 0);
      } finally {
        await Promise.all(clients.map((cl) => cl.deactivate()));
        assert.deepEqual(await c.stop(), [0, 0, 0]);
      }
    });
  }

  test('local bypass: a room whose members are all on one server costs the bus nothing', async () => {
    const c = await startCluster({ n: 2, sets: M });
    const [A, B] = c.servers;
    const clients = [];
    try {
      for (const s of [A, A, B]) clients.push((await stompClient(s.wsUrl)).client);
      const [a1, a2, b1] = clients;
      const got = [[], [], []];
      await subscribeAll([a1, a2], '/topic/solo', (i, m) => got[i].push(m.body));
      await subscribeAll([b1], '/topic/elsewhere', () => {});
      for (let i = 0; i < 20; i++) a1.publish({ destination: '/topic/solo', body: `m${i}` });
      await waitFor(() => got[1].length === 20, { what: '20 local deliveries' });
      assert.equal(await metric(A.port, 'lectern_bus_published_total'), 0, 'nothing published to the bus');
      assert.equal(await metric(A.port, 'lectern_bus_skipped_total'), 20);
      assert.equal(await metric(B.port, 'lectern_bus_received_total'), 0);
      assert.equal(await metric(B.port, 'lectern_bus_no_room_total'), 0, "nothing reached B's queue");

      // A member elsewhere: from now on the message crosses the bus, once.
      await new Promise((resolve) => {
        b1.watchForReceipt('join', resolve);
        b1.subscribe('/topic/solo', (m) => got[2].push(m.body), { receipt: 'join' });
      });
      a1.publish({ destination: '/topic/solo', body: 'now shared' });
      await waitFor(() => got[2].length === 1, { what: 'delivery on B' });
      assert.equal(got[2][0], 'now shared');
      assert.equal(await metric(A.port, 'lectern_bus_published_total'), 1);
    } finally {
      await Promise.all(clients.map((cl) => cl.deactivate()));
      assert.deepEqual(await c.stop(), [0, 0]);
    }
  });

  test('kill -9 of a server: its members leave presence within the configured time; the others keep delivering', async () => {
    const ttl = 1500, reap = 300;
    const c = await startCluster({
      n: 3,
      sets: { ...M, 'registry.ttl_ms': ttl, 'registry.reap_ms': reap, 'registry.heartbeat_ms': 300 },
    });
    const [A, B, C] = c.servers;
    const clients = [];
    try {
      const users = [['u1', A], ['u2', B], ['u3', C]];
      for (const [login, s] of users)
        clients.push((await stompClient(s.wsUrl, { connectHeaders: { login } })).client);
      const got = [[], [], []];
      await subscribeAll(clients, '/topic/k9', (i, m) => got[i].push(m.body));
      const { client: watcher } = await stompClient(A.wsUrl, { connectHeaders: { login: 'watcher' } });
      clients.push(watcher);
      const events = [];
      watcher.subscribe('/presence/k9', (m) => events.push(JSON.parse(m.body)));
      await waitFor(() => events.length >= 1, { what: 'presence snapshot' });
      assert.equal(events[0].type, 'snapshot');
      assert.equal(events[0].count, 3);

      C.proc.kill('SIGKILL');
      const t0 = Date.now();
      await waitFor(async () => {
        const p = JSON.parse((await httpGet(A.port, '/api/rooms/k9/presence')).text);
        return p.count === 2 && !p.members.some((m) => m.id === 'u3');
      }, { timeout: ttl + reap + 5000, what: 'u3 gone from presence' });
      const took = Date.now() - t0;
      assert.ok(took <= ttl + 2 * reap + 1500, `reaped after ${took} ms (ttl ${ttl}, reap ${reap})`);
      await waitFor(() => events.some((e) => e.type === 'leave' && e.user.id === 'u3' && e.count === 2),
        { what: 'leave event for u3' });
      const online = JSON.parse((await httpGet(B.port, '/api/presence?users=u1,u2,u3')).text);
      assert.deepEqual(online, { online: { u1: true, u2: true, u3: false } });

      clients[0].publish({ destination: '/topic/k9', body: 'still here' });
      await waitFor(() => got[1].includes('still here') && got[0].includes('still here'),
        { what: 'delivery after the kill' });
    } finally {
      await Promise.all([clients[0], clients[1], clients[3]].map((cl) => cl.deactivate()));
      clients[2].forceDisconnect();
      clients[2].deactivate();
      const codes = await c.stop();
      assert.deepEqual(codes, [0, 0, null]);
    }
  });

  // Sends through an outage; only "Service unavailable" counts as refused.
  const outageSender = (url, room) => steadySender(url, room,
    { settle: 50, refusal: (f) => f.headers.message === 'Service unavailable' });

  for (const name of ['rabbitmq', 'redis']) {
    test(`${name} restart mid-traffic: SEND is refused while it is down, /readyz says so, and delivery resumes without a server restart`, async () => {
      const c = await startCluster({ n: 2, sets: M });
      const [A, B] = c.servers;
      const clients = [];
      let sender;
      try {
        const { client: sub } = await stompClient(B.wsUrl, { connectHeaders: { login: 'listener' } });
        clients.push(sub);
        const got = [];
        await subscribeAll([sub], '/topic/outage', (i, m) => got.push(m.body));
        sender = outageSender(A.wsUrl, 'outage');
        await waitFor(() => sender.promised.length >= 20, { what: 'traffic before the outage' });

        await service('stop', name);
        const reason = name === 'redis' ? /registry/ : /bus/;
        await waitFor(async () => {
          const r = await httpGet(A.port, '/readyz');
          return r.status === 503 && reason.test(JSON.parse(r.text).reason);
        }, { timeout: 15000, what: '/readyz 503' });
        await waitFor(() => sender.refused > 0, { timeout: 10000, what: 'a SEND refused with ERROR' });
        const refusedDuring = sender.refused;

        await service('start', name);
        for (const s of [A, B])
          await waitFor(async () => (await httpGet(s.port, '/readyz')).status === 200,
            { timeout: 60000, what: `/readyz 200 on ${s.port}` });
        // Every message that got a RECEIPT reaches the subscriber on the
        // other server, exactly once, in order.
        await finishSender(sender, got, 'outage');
        assert.ok(refusedDuring > 0);
        const metricName = name === 'redis' ? 'lectern_registry_reconnects_total' : 'lectern_bus_reconnects_total';
        assert.ok(await metric(A.port, metricName) >= 1, 'the reconnect is counted');
        if (name === 'redis') {
          // Redis came back empty: the servers registered their members again.
          await waitFor(async () => JSON.parse((await httpGet(A.port, '/api/rooms/outage/presence')).text)
            .members.some((m) => m.id === 'listener'), { timeout: 10000, what: 'presence rebuilt' });
        }
      } finally {
        if (sender) {
          sender.stopped = true;
          await sender.done;
        }
        await Promise.all(clients.map((cl) => cl.deactivate()));
        assert.deepEqual(await c.stop(), [0, 0]);
      }
    });
  }

  // A server whose link to Redis is cut keeps queueing commands. Meanwhile
  // the others reap it, and its student reconnects to another server. When
  // the link returns, the queued leave of the student's old connection runs
  // after all that: it must not take the student's new presence away.
  test('a server cut off from Redis: the leave it queued does not remove the same user from presence on another server', async () => {
    const cluster = clusterName();
    const relay = await tcpRelay(Number(process.env.LECTERN_REDIS_PORT || 6390), 'redis');
    const fast = { 'registry.ttl_ms': 1000, 'registry.reap_ms': 200, 'registry.heartbeat_ms': 200 };
    // A cut shorter than redis.reply_timeout_ms: A keeps its connection and
    // its queued commands.
    const A = await startServer({ cluster, sets: { ...M, ...fast, 'redis.port': relay.port, 'redis.reply_timeout_ms': 60000 } });
    const B = await startServer({ cluster, sets: { ...M, ...fast } });
    const present = async (s) => JSON.parse((await httpGet(s.port, '/api/rooms/cut/presence')).text);
    const online = async (s) => JSON.parse((await httpGet(s.port, '/api/presence?users=u1')).text).online.u1;
    const clients = [];
    try {
      const { client: first } = await stompClient(A.wsUrl, { connectHeaders: { login: 'u1' } });
      clients.push(first);
      await subscribeAll([first], '/topic/cut', () => {});
      await waitFor(async () => (await present(B)).count === 1, { what: 'u1 present' });

      relay.pause();
      await first.deactivate();          // A queues the leave (and offline) behind the cut
      await waitFor(async () => (await present(B)).count === 0, { timeout: 10000, what: 'A reaped' });
      const { client: again } = await stompClient(B.wsUrl, { connectHeaders: { login: 'u1' } });
      clients.push(again);
      await subscribeAll([again], '/topic/cut', () => {});
      await waitFor(async () => (await present(B)).count === 1, { what: 'u1 present through B' });

      relay.resume();
      await waitFor(async () => (await httpGet(A.port, '/readyz')).status === 200, { timeout: 10000, what: 'A back' });
      await waitFor(() => A.logs.some((l) => l.includes('event=registry_reaped')), { what: 'A learnt it was reaped' });
      // A's commands run in order on its one Redis connection: the queued
      // leave ran before the command that told A it was reaped, and B hears
      // of it before anything A does later. u2 joining through A is that
      // later thing: once B shows u2, a wrong removal of u1 would show too.
      const { client: second } = await stompClient(A.wsUrl, { connectHeaders: { login: 'u2' } });
      clients.push(second);
      await subscribeAll([second], '/topic/cut', () => {});
      await waitFor(async () => (await present(B)).members.some((m) => m.id === 'u2'), { what: 'u2 (through A) present on B' });
      const p = await present(B);
      assert.deepEqual(p.members.map((m) => m.id).sort(), ['u1', 'u2'], 'u1 is still present (connected to B)');
      assert.equal(await online(B), true, 'u1 is still online');
      assert.equal(await online(A), true);
    } finally {
      relay.close();
      await Promise.all(clients.map((cl) => cl.deactivate()));
      assert.deepEqual([await A.stop(), await B.stop()], [{ code: 0, signal: null }, { code: 0, signal: null }]);
    }
  });

  test('a Redis gone silent (no FIN): the server drops it after redis.reply_timeout_ms, answers SENDs with ERROR instead of silence, and comes back', async () => {
    const relay = await tcpRelay(Number(process.env.LECTERN_REDIS_PORT || 6390), 'redis');
    const A = await startServer({
      sets: { ...M, 'redis.port': relay.port, 'redis.reply_timeout_ms': 1000, 'redis.backoff_max_ms': 300 },
    });
    const { client } = await stompClient(A.wsUrl, { connectHeaders: { login: 'u1' }, reconnectDelay: 200 });
    // 'receipt', 'error' or 'nothing' (within ms).
    const send = (body, ms = 8000) => new Promise((resolve) => {
      const timer = setTimeout(() => resolve('nothing'), ms);
      client.onStompError = () => { clearTimeout(timer); resolve('error'); };
      client.watchForReceipt(`r-${body}`, () => { clearTimeout(timer); resolve('receipt'); });
      client.publish({ destination: '/topic/silent', body, headers: { receipt: `r-${body}` } });
    });
    try {
      assert.equal(await send('before'), 'receipt');
      relay.freeze();
      const t0 = Date.now();
      assert.equal(await send('during'), 'error', 'an ERROR, not silence');
      const took = Date.now() - t0;
      assert.ok(took < 4000, `ERROR after ${took} ms`);
      assert.equal((await httpGet(A.port, '/readyz')).status, 503);
      assert.ok(A.logs.some((l) => /event=redis_down conn=registry .*no reply for 1000 ms/.test(l)), 'the watchdog dropped it');
      relay.thaw();
      await waitFor(async () => (await httpGet(A.port, '/readyz')).status === 200, { timeout: 15000, what: '/readyz 200 again' });
      await waitFor(() => client.connected, { timeout: 10000, what: 'client reconnected' });
      assert.equal(await send('after'), 'receipt');
    } finally {
      relay.close();
      await client.deactivate();
      assert.deepEqual(await A.stop(), { code: 0, signal: null });
    }
  });

  test('both Redis connections of a server have TCP keepalive on (the presence subscriber sends nothing that would reveal a dead path)', async () => {
    const A = await startServer({ sets: M });
    try {
      const port = Number(process.env.LECTERN_REDIS_PORT || 6390);
      const out = await new Promise((resolve, reject) => execFile('ss',
        ['-tnopH', 'state', 'established', `( dport = :${port} )`], (err, stdout) => (err ? reject(err) : resolve(stdout))));
      const mine = out.split('\n').filter((l) => l.includes(`pid=${A.proc.pid},`));
      assert.equal(mine.length, 2, `registry and presence connections:\n${out}`);
      for (const l of mine) assert.match(l, /timer:\(keepalive,/, l);
    } finally {
      assert.deepEqual(await A.stop(), { code: 0, signal: null });
    }
  });

  test('two server processes share one port (SO_REUSEPORT), each a full cluster member', async () => {
    const port = await freePort();
    const cluster = clusterName();
    const s1 = await startServer({ cluster, port, sets: { ...M, 'server.reuseport': true, 'server.id': `${cluster}-a` } });
    // The shared port's /readyz may be answered by s1: s2 is ready when its
    // own log says it listens and is registered.
    const s2 = await startServer({ cluster, port, sets: { ...M, 'server.reuseport': true, 'server.id': `${cluster}-b` } });
    const clients = [];
    try {
      await waitFor(() => ['listening', 'registry_up', 'bus_up conn=consumer'].every((e) =>
        s2.logs.some((l) => l.includes(`event=${e}`))), { what: 's2 listening and registered' });
      const url = `ws://127.0.0.1:${port}/ws`;
      for (let i = 0; i < 20; i++) clients.push((await stompClient(url)).client);
      const got = clients.map(() => []);
      await subscribeAll(clients, '/topic/shared-port', (i, m) => got[i].push(m.body));
      clients.forEach((cl, i) => cl.publish({ destination: '/topic/shared-port', body: `x${i}` }));
      await waitFor(() => got.every((g) => g.length === 20), { what: 'all deliveries' });
      // The kernel spread the connections over both processes, and each
      // registered its members: the room's server table in Redis says so.
      const { execFileSync } = await import('node:child_process');
      const out = execFileSync('redis-cli', ['-p', String(process.env.LECTERN_REDIS_PORT || 6390),
        'HGETALL', `${cluster}:room:{shared-port}:srv`]).toString().trim().split('\n');
      const table = {};
      for (let i = 0; i + 1 < out.length; i += 2) table[out[i]] = Number(out[i + 1]);
      assert.deepEqual(Object.keys(table).sort(), [`${cluster}-a`, `${cluster}-b`]);
      assert.equal(table[`${cluster}-a`] + table[`${cluster}-b`], 20);
    } finally {
      await Promise.all(clients.map((cl) => cl.deactivate()));
      assert.equal((await s1.stop()).code, 0);
      assert.equal((await s2.stop()).code, 0);
    }
  });
  test('registry keys do not outlive their room: who/cnt/srv go with the last member, the log and sequence expire', async () => {
    const c = await startCluster({ n: 2, sets: { ...M, 'registry.history_ttl_ms': 60000 } });
    const [A, B] = c.servers;
    const { execFileSync } = await import('node:child_process');
    const redis = (...args) => execFileSync('redis-cli',
      ['-p', String(process.env.LECTERN_REDIS_PORT || 6390), ...args]).toString().trim();
    const keys = () => redis('--scan', '--pattern', `${c.cluster}:room:{ephemeral}:*`).split('\n').filter(Boolean).sort();
    const clients = [];
    try {
      for (const [s, login] of [[A, 'a'], [B, 'b']])
        clients.push((await stompClient(s.wsUrl, { connectHeaders: { login } })).client);
      await subscribeAll(clients, '/topic/ephemeral', () => {});
      clients[0].publish({ destination: '/topic/ephemeral', body: 'hello', headers: { receipt: 'r' } });
      await new Promise((r) => clients[0].watchForReceipt('r', r));
      assert.ok(keys().length >= 6, `room keys while in use: ${keys()}`);
      await Promise.all(clients.map((cl) => cl.deactivate()));
      clients.length = 0;
      const prefix = `${c.cluster}:room:{ephemeral}:`;
      await waitFor(() => keys().every((k) => ['log', 'seq', 'pv'].includes(k.slice(prefix.length))),
        { what: 'membership keys gone' });
      for (const k of keys()) {
        const ttl = Number(redis('PTTL', k));
        assert.ok(ttl > 0 && ttl <= 60000, `${k} expires (pttl ${ttl})`);
      }
      assert.equal(redis('SCARD', `${c.cluster}:srv:${c.cluster}-s1:rooms`), '0');
      assert.equal(redis('HLEN', `${c.cluster}:online`), '0');
    } finally {
      await Promise.all(clients.map((cl) => cl.deactivate()));
      assert.deepEqual(await c.stop(), [0, 0]);
    }
  });

  test('a large room stays cheap: presence always counts, lists at most registry.presence_max', async () => {
    const c = await startCluster({ n: 1, sets: { ...M, 'registry.presence_max': 2 } });
    const [A] = c.servers;
    const clients = [];
    try {
      for (let i = 0; i < 5; i++)
        clients.push((await stompClient(A.wsUrl, { connectHeaders: { login: `p${i}` } })).client);
      await subscribeAll(clients, '/topic/big', () => {});
      const p = JSON.parse((await httpGet(A.port, '/api/rooms/big/presence')).text);
      assert.equal(p.count, 5);
      assert.equal(p.members.length, 2);
      assert.equal(p.truncated, true);
      const bad = await httpGet(A.port, '/api/rooms/bad%20name/presence');
      assert.equal(bad.status, 400);
      assert.equal((await httpGet(A.port, '/api/presence')).status, 400);
    } finally {
      await Promise.all(clients.map((cl) => cl.deactivate()));
      assert.deepEqual(await c.stop(), [0]);
    }
  });
});
