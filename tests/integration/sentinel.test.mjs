// Redis high availability: the registry behind Redis Sentinel.
//
// Each test starts its own Redis processes on free loopback ports (a master,
// a replica, three Sentinels with quorum 2, each with its own writable
// config file, as Sentinel rewrites it), plain child processes killed at the
// end. RabbitMQ and MariaDB are the suite's. Servers find the master through
// the Sentinels (redis.sentinels), check its ROLE, follow a failover, and
// hold each message until a replica has it (redis.wait_replicas).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  clusterName, finishSender, freePort, httpGet, metric, sleep, spawnReady, startServer, steadySender, stompClient,
  waitFor,
} from './helpers.mjs';

const procs = [];
const servers = [];
const fakes = [];
const dirs = [];

after(async () => {
  for (const s of servers) await s.stop();
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const f of fakes) f.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir() {
  const d = mkdtempSync(path.join(os.tmpdir(), 'lectern-sentinel-'));
  dirs.push(d);
  return d;
}

function cli(port, ...args) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5000 },
      (err, stdout, stderr) => (err ? reject(new Error(`redis-cli ${args.join(' ')}: ${stderr || err.message}`))
        : resolve(stdout.trim())));
  });
}

// A redis-server (or Sentinel) in the foreground; resolves once it answers PING.
async function redisProcess(port, args) {
  const h = await spawnReady('redis-server', args, {
    what: `redis-server :${port}`, timeout: 10000, ready: async () => (await cli(port, 'PING')) === 'PONG',
  });
  procs.push(h.proc);
  return { port, proc: h.proc, logs: h.logs };
}

function startRedis(dir, port, replicaOf) {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', 'no', '--dbfilename', `dump-${port}.rdb`];
  if (replicaOf) args.push('--replicaof', '127.0.0.1', String(replicaOf));
  return redisProcess(port, args);
}

async function startSentinel(dir, port, masterPort) {
  const conf = path.join(dir, `sentinel-${port}.conf`);
  writeFileSync(conf, [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    'sentinel resolve-hostnames no',
    `sentinel monitor lectern 127.0.0.1 ${masterPort} 2`,
    'sentinel down-after-milliseconds lectern 1000',
    'sentinel failover-timeout lectern 5000',
    '',
  ].join('\n'));
  return redisProcess(port, [conf, '--sentinel']);
}

// SENTINEL MASTER's flat field list as an object.
async function sentinelView(port) {
  const lines = (await cli(port, 'SENTINEL', 'MASTER', 'lectern')).split('\n');
  const o = {};
  for (let i = 0; i + 1 < lines.length; i += 2) o[lines[i]] = lines[i + 1];
  return o;
}

// Master + replica + 3 Sentinels that know each other and the replica.
async function startGroup() {
  const dir = tempDir();
  const master = await startRedis(dir, await freePort());
  const replica = await startRedis(dir, await freePort(), master.port);
  await waitFor(async () => /master_link_status:up/.test(await cli(replica.port, 'INFO', 'replication')),
    { timeout: 10000, what: 'replica in sync' });
  const sentinels = [];
  for (let i = 0; i < 3; i++) sentinels.push(await startSentinel(dir, await freePort(), master.port));
  // A failover needs each Sentinel to know the replica and the other two.
  await waitFor(async () => {
    for (const s of sentinels) {
      const v = await sentinelView(s.port);
      if (v['num-slaves'] !== '1' || v['num-other-sentinels'] !== '2') return false;
    }
    return true;
  }, { timeout: 20000, interval: 100, what: 'Sentinels know the replica and each other' });
  return { dir, master, replica, sentinels, list: sentinels.map((s) => `127.0.0.1:${s.port}`).join(',') };
}

async function server(cluster, id, sets) {
  const s = await startServer({ cluster, sets: { 'server.id': id, ...sets } });
  servers.push(s);
  return s;
}

// A fake Sentinel speaking just enough RESP: it answers
// get-master-addr-by-name with `master` (changeable), confirms SUBSCRIBEs and
// can publish a +switch-master to its subscribers. With two independent
// masters behind it, a test controls exactly what a server hears.
async function fakeSentinel(masterPort) {
  const bulk = (x) => `$${Buffer.byteLength(String(x))}\r\n${x}\r\n`;
  const state = { master: masterPort, subscribers: new Set() };
  const srv = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('error', () => {});
    sock.on('close', () => state.subscribers.delete(sock));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        // *N\r\n then N times $len\r\n<bytes>\r\n
        const text = buf.toString('latin1');
        const m = /^\*(\d+)\r\n/.exec(text);
        if (!m) return;
        let at = m[0].length;
        const args = [];
        for (let i = 0; i < Number(m[1]); i++) {
          const h = /^\$(\d+)\r\n/.exec(text.slice(at));
          if (!h || text.length < at + h[0].length + Number(h[1]) + 2) return;
          at += h[0].length;
          args.push(text.slice(at, at + Number(h[1])));
          at += Number(h[1]) + 2;
        }
        buf = buf.subarray(at);
        const cmd = args.map((a) => a.toLowerCase());
        if (cmd[0] === 'sentinel' && cmd[1] === 'get-master-addr-by-name')
          sock.write(`*2\r\n${bulk('127.0.0.1')}${bulk(state.master)}`);
        else if (cmd[0] === 'subscribe') {
          state.subscribers.add(sock);
          sock.write(`*3\r\n${bulk('subscribe')}${bulk(args[1])}:1\r\n`);
        } else sock.write('-ERR unknown command\r\n');
      }
    });
  });
  fakes.push(srv);
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  state.port = srv.address().port;
  state.switchMaster = (from, to) => {
    state.master = to;
    const msg = `lectern 127.0.0.1 ${from} 127.0.0.1 ${to}`;
    for (const sock of state.subscribers) sock.write(`*3\r\n${bulk('message')}${bulk('+switch-master')}${bulk(msg)}`);
  };
  return state;
}

const upOn = (s, conn, port) => s.logs.some((l) => l.includes('event=redis_up') && l.includes(`conn=${conn} `)
  && l.includes(`port=${port}`));

async function presence(port, room) {
  const r = await httpGet(port, `/api/rooms/${room}/presence`);
  return r.status === 200 ? JSON.parse(r.text) : null;
}

// Two independent Redis masters x and y, a fake Sentinel naming x, and a
// server that found x through it.
async function behindFakeSentinel() {
  const dir = tempDir();
  const x = await startRedis(dir, await freePort());
  const y = await startRedis(dir, await freePort());
  const fake = await fakeSentinel(x.port);
  const cluster = clusterName();
  const s = await server(cluster, `${cluster}-a`, { 'redis.sentinels': `127.0.0.1:${fake.port}` });
  return { x, y, fake, cluster, s };
}

describe('Redis Sentinel', () => {
  test('kill -9 of the Redis master mid-traffic: both servers follow to the promoted replica; every RECEIPTed message arrives once and in order; presence is rebuilt there', async () => {
    const g = await startGroup();
    const cluster = clusterName();
    const sets = { 'redis.sentinels': g.list, 'redis.wait_replicas': 1 };
    const A = await server(cluster, `${cluster}-a`, sets);
    const B = await server(cluster, `${cluster}-b`, sets);
    for (const s of [A, B])
      assert.ok(s.logs.some((l) => l.includes('event=redis_master') && l.includes(`port=${g.master.port}`)),
        'the server found the master through the Sentinels');

    const { client: sub } = await stompClient(B.wsUrl, { connectHeaders: { login: 'listener' } });
    const got = [];
    await new Promise((resolve) => {
      sub.watchForReceipt('s', resolve);
      sub.subscribe('/topic/failover', (m) => got.push(m.body), { receipt: 's' });
    });
    const sender = steadySender(A.wsUrl, 'failover');
    try {
      await waitFor(() => sender.promised.length >= 30, { timeout: 10000, what: 'traffic before the failover' });
      assert.equal(await metric(A.port, 'lectern_registry_unreplicated_total'), 0,
        'with the replica up every WAIT is satisfied');

      const killedAt = Date.now();
      g.master.proc.kill('SIGKILL');
      // Both servers notice (the sockets close), then come back on the new master.
      const seen503 = new Set();
      const back = {};
      await waitFor(async () => {
        for (const s of [A, B]) {
          if (back[s.port]) continue;
          let st = 0;
          try { st = (await httpGet(s.port, '/readyz')).status; } catch { st = 0; }
          if (st !== 200) seen503.add(s.port);
          else if (seen503.has(s.port)) back[s.port] = Date.now() - killedAt;
        }
        return back[A.port] && back[B.port];
      }, { timeout: 30000, interval: 20, what: '/readyz 200 again on both servers' });
      console.log(`# failover followed: /readyz 200 again after ${back[A.port]} ms (A), ${back[B.port]} ms (B)`);

      for (const s of [A, B]) {
        assert.ok(s.logs.some((l) => l.includes('event=redis_master') && l.includes(`port=${g.replica.port}`)),
          `server ${s.port} logs the new master`);
        assert.ok(await metric(s.port, 'lectern_registry_reconnects_total') >= 1, 'the reconnect is counted');
      }
      assert.match((await cli(g.replica.port, 'ROLE')).split('\n')[0], /^master$/, 'the replica was promoted');

      await finishSender(sender, got, 'failover');
      const num = got.map((b) => Number(b.slice(1)));
      for (let i = 1; i < num.length; i++) assert.ok(num[i] > num[i - 1], `delivered in send order: ${got[i - 1]} then ${got[i]}`);

      // Presence lives on the new master: the subscriber on B, seen from both servers.
      for (const s of [A, B]) {
        const p = await waitFor(async () => {
          const v = await presence(s.port, 'failover');
          return v && v.count === 1 && v.members.some((m) => m.id === 'listener') ? v : null;
        }, { timeout: 10000, what: `presence on ${s.port}` });
        assert.deepEqual(p.members.map((m) => m.id), ['listener']);
      }
      const who = await cli(g.replica.port, 'HKEYS', `${cluster}:room:{failover}:who`);
      assert.equal(who, 'listener', 'the new master holds the presence');
      const srvs = (await cli(g.replica.port, 'SMEMBERS', `${cluster}:servers`)).split('\n').sort();
      assert.deepEqual(srvs, [`${cluster}-a`, `${cluster}-b`], 'both servers registered on the new master');
    } finally {
      sender.stopped = true;
      await sender.done;
      await sub.deactivate();
    }
    for (const s of [A, B]) assert.deepEqual(await s.stop(), { code: 0, signal: null });
  });

  test('a dead Sentinel, a silent one, and one naming a replica are passed over: the server comes up on the master, and WAIT is satisfied by the replica', async () => {
    const dir = tempDir();
    const master = await startRedis(dir, await freePort());
    const replica = await startRedis(dir, await freePort(), master.port);
    await waitFor(async () => /master_link_status:up/.test(await cli(replica.port, 'INFO', 'replication')),
      { timeout: 10000, what: 'replica in sync' });
    const sentinel = await startSentinel(dir, await freePort(), master.port);

    const dead = await freePort();
    // Accepts and never answers: only a deadline gets past it.
    const silent = net.createServer(() => {});
    // Answers get-master-addr-by-name with the replica (a stale answer).
    const liar = net.createServer((sock) => sock.on('data', (d) => {
      if (/get-master-addr-by-name/i.test(d.toString())) {
        const p = String(replica.port);
        sock.write(`*2\r\n$9\r\n127.0.0.1\r\n$${p.length}\r\n${p}\r\n`);
      }
    }));
    for (const f of [silent, liar]) {
      fakes.push(f);
      await new Promise((r) => f.listen(0, '127.0.0.1', r));
    }
    const list = [dead, silent.address().port, liar.address().port, sentinel.port].map((p) => `127.0.0.1:${p}`).join(',');
    const cluster = clusterName();
    const t0 = Date.now();
    const s = await server(cluster, `${cluster}-a`, { 'redis.sentinels': list, 'redis.wait_replicas': 1 });
    console.log(`# up through the fourth Sentinel after ${Date.now() - t0} ms`);
    assert.ok(s.logs.some((l) => l.includes('event=redis_sentinel_failed') && l.includes(`:${dead} `)), 'the dead one failed');
    assert.ok(s.logs.some((l) => l.includes('event=redis_sentinel_failed') && l.includes(`:${silent.address().port} `)
      && l.includes('timeout')), 'the silent one timed out');
    assert.ok(s.logs.some((l) => l.includes('event=redis_not_master') && l.includes(`port=${replica.port}`)),
      'the replica named by the stale answer was refused (ROLE)');
    assert.ok(s.logs.some((l) => l.includes('event=redis_master') && l.includes(`port=${master.port}`)));
    assert.equal(await cli(master.port, 'SISMEMBER', `${cluster}:servers`, `${cluster}-a`), '1', 'registered on the master');
    await waitFor(() => s.logs.some((l) => l.includes('event=redis_sentinel_watch ') && l.includes(`:${sentinel.port} `)),
      { timeout: 10000, what: 'the +switch-master watch on the live Sentinel' });

    // With a replica in sync, WAIT 1 is satisfied: messages flow, none counted.
    const { client } = await stompClient(s.wsUrl, { connectHeaders: { login: 'u1' } });
    try {
      const got = [];
      await new Promise((resolve) => {
        client.watchForReceipt('s', resolve);
        client.subscribe('/topic/w', (m) => got.push(m.body), { receipt: 's' });
      });
      for (let i = 0; i < 10; i++) client.publish({ destination: '/topic/w', body: `b${i}` });
      await waitFor(() => got.length === 10, { what: '10 messages' });
      assert.equal(await metric(s.port, 'lectern_registry_unreplicated_total'), 0);
      assert.equal(await cli(replica.port, 'GET', `${cluster}:room:{w}:seq`), '10', 'the replica has every seq');
    } finally {
      await client.deactivate();
    }
  });

  test('+switch-master moves both connections to the new master, though no socket closed and the old master still accepts writes', async () => {
    const { x, y, fake, cluster, s } = await behindFakeSentinel();
    await waitFor(() => fake.subscribers.size === 1, { what: 'the +switch-master watch' });
    const { client } = await stompClient(s.wsUrl, { connectHeaders: { login: 'u1' } });
    try {
      await new Promise((resolve) => {
        client.watchForReceipt('s', resolve);
        client.subscribe('/topic/moved', () => {}, { receipt: 's' });
      });
      assert.equal(await cli(x.port, 'HKEYS', `${cluster}:room:{moved}:who`), 'u1');
      const reconnects = await metric(s.port, 'lectern_registry_reconnects_total');

      fake.switchMaster(x.port, y.port);
      await waitFor(() => upOn(s, 'registry', y.port) && upOn(s, 'presence', y.port),
        { timeout: 10000, what: 'both connections up on the new master' });
      assert.ok(s.logs.some((l) => l.includes('event=redis_switch_master')));
      assert.ok(s.logs.some((l) => l.includes('event=redis_master') && l.includes(`port=${y.port}`)));
      await waitFor(async () => (await cli(y.port, 'HKEYS', `${cluster}:room:{moved}:who`)) === 'u1',
        { what: 'the member replayed onto the new master' });
      assert.equal(await cli(y.port, 'SISMEMBER', `${cluster}:servers`, `${cluster}-a`), '1');
      assert.equal(await metric(s.port, 'lectern_registry_reconnects_total'), reconnects + 1);
      await waitFor(async () => (await httpGet(s.port, '/readyz')).status === 200, { what: '/readyz' });

      // Presence events now come from the new master's scripts.
      const { client: other } = await stompClient(s.wsUrl, { connectHeaders: { login: 'u2' } });
      const events = [];
      client.subscribe('/presence/moved', (m) => events.push(JSON.parse(m.body)));
      await waitFor(() => events.some((e) => e.type === 'snapshot'), { what: 'presence snapshot' });
      other.subscribe('/topic/moved', () => {});
      await waitFor(() => events.some((e) => e.type === 'join' && e.user.id === 'u2'),
        { what: 'a join event through the moved subscription' });
      await other.deactivate();
    } finally {
      await client.deactivate();
    }
  });

  test('a READONLY reply (the master was demoted, no failover message) makes both connections rediscover', async () => {
    const { x, y, fake, cluster, s } = await behindFakeSentinel();
    // The master moves without a word from the Sentinel: x becomes y's
    // replica and refuses the next write (a heartbeat at the latest).
    fake.master = y.port;
    await cli(x.port, 'REPLICAOF', '127.0.0.1', String(y.port));
    await waitFor(() => upOn(s, 'registry', y.port) && upOn(s, 'presence', y.port),
      { timeout: 10000, what: 'both connections up on the new master' });
    assert.ok(s.logs.some((l) => l.includes('event=redis_readonly')), 'READONLY seen');
    assert.ok(!s.logs.some((l) => l.includes('event=redis_switch_master')));
    await waitFor(async () => (await cli(y.port, 'SISMEMBER', `${cluster}:servers`, `${cluster}-a`)) === '1',
      { what: 'registered on the new master' });
    await waitFor(async () => (await httpGet(s.port, '/readyz')).status === 200, { what: '/readyz' });
  });

  test('WAIT without a replica: messages are held for redis.wait_timeout_ms, then flow and are counted as unreplicated', async () => {
    const dir = tempDir();
    const master = await startRedis(dir, await freePort());
    const cluster = clusterName();
    const WAIT_MS = 300;
    const s = await server(cluster, `${cluster}-a`, {
      'redis.port': master.port, 'redis.wait_replicas': 1, 'redis.wait_timeout_ms': WAIT_MS,
    });
    const { client } = await stompClient(s.wsUrl, { connectHeaders: { login: 'u1' } });
    try {
      const got = [];
      await new Promise((resolve) => {
        client.watchForReceipt('s', resolve);
        client.subscribe('/topic/lonely', (m) => got.push(m.body), { receipt: 's' });
      });
      const receipts = [];
      const sentAt = Date.now();
      let firstAt = 0;
      client.watchForReceipt('first', () => { firstAt = Date.now(); });
      client.publish({ destination: '/topic/lonely', body: 'first', headers: { receipt: 'first' } });
      await waitFor(() => firstAt, { what: 'the first RECEIPT' });
      assert.ok(firstAt - sentAt >= WAIT_MS - 20, `held until WAIT gave up (${firstAt - sentAt} ms)`);
      assert.deepEqual(got, ['first']);
      got.length = 0;
      // A burst shares WAITs: it does not cost WAIT_MS per message.
      const burstAt = Date.now();
      for (let i = 0; i < 20; i++) {
        client.watchForReceipt(`r${i}`, () => receipts.push(i));
        client.publish({ destination: '/topic/lonely', body: `b${i}`, headers: { receipt: `r${i}` } });
      }
      await waitFor(() => got.length === 20 && receipts.length === 20, { timeout: 10000, what: '20 messages and receipts' });
      assert.ok(Date.now() - burstAt < 5 * WAIT_MS, `the burst took ${Date.now() - burstAt} ms`);
      assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `b${i}`));
      assert.equal(await metric(s.port, 'lectern_registry_unreplicated_total'), 21);
      assert.ok(s.logs.some((l) => l.includes('event=registry_unreplicated')), 'logged once');
    } finally {
      await client.deactivate();
    }
  });
});
