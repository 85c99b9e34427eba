// multihost.test.mjs — Lectern on three hosts survives the loss of any one
// part: a RabbitMQ node, the Redis master, a host's network link.
//
// Run by tests/cluster/run.sh, which made the hosts (hosts.mjs says how):
//
//   h1  server, worker, RabbitMQ node 1, Redis master, Sentinel
//   h2  server, worker, RabbitMQ node 2, Redis replica, Sentinel
//   h3  server, worker, RabbitMQ node 3,                Sentinel
//   db  MariaDB
//   cl  haproxy and every client (this process)
//
// The storage queue is a quorum queue (replicated on the three nodes);
// servers and workers are given the three nodes' addresses and the three
// Sentinels, and wait for one Redis replica on every message
// (redis.wait_replicas=1).
//
// Each scenario uses a room of its own: nine students (client-js, the
// reconnecting client with resume, heart-beats of 1 s) joined through
// haproxy, three publishers sending with receipts, one message per 100 ms
// each, before, during and after the fault. Then, for every message that got
// a RECEIPT:
//   - it is in MySQL exactly once (and no message is there twice);
//   - every student got it exactly once, each publisher's in send order;
// and the cluster converges: every server lists exactly the nine students
// as present, and every server and worker is ready again.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { LecternClient } from '../../client-js/src/index.js';
import { sleep, waitFor } from '../integration/helpers.mjs';
import {
  PORTS, cut, httpGet, ip, mode, pidOf, rabbitmqctl, ready, redisCli, restore, serverHosts,
  serverPort, services, sql, startHaproxy, startServer, startWorker, stopAll, workerPort,
} from './hosts.mjs';

const servers = {};
const lbUrl = () => `ws://${ip('cl')}:${PORTS.lb}/ws`;
const STUDENTS = 9;
const PUBLISHERS = 3;
const log = (...a) => console.log(`# ${new Date().toISOString().slice(11, 23)}`, ...a);

function client(login) {
  return new LecternClient(lbUrl(), {
    WebSocket, login, name: login,
    heartbeat: { outgoing: 1000, incoming: 1000 },
    reconnect: { base: 200, cap: 1000 },
  });
}

async function masterAddr() {
  for (const h of serverHosts) {
    try {
      const out = await redisCli(h, PORTS.sentinel, 'SENTINEL', 'get-master-addr-by-name', 'lectern');
      const [host, port] = out.trim().split('\n');
      if (host && port) return { host, port: Number(port) };
    } catch { /* try the next sentinel */ }
  }
  throw new Error('no sentinel knows the master');
}

const hostOf = (address) => serverHosts.find((h) => ip(h) === address);

before(async () => {
  log(`mode=${mode}`);
  await services('db', 'start', ['mariadb']);
  // Node 1 first: it forms the cluster; 2 and 3 join it as they boot.
  await services('h1', 'start', ['rabbitmq']);
  await Promise.all(['h2', 'h3'].map((h) => services(h, 'start', ['rabbitmq'])));
  await rabbitmqctl('h1', 'await_online_nodes', '3', '--timeout', '60');
  await services('h1', 'start', ['redis']);
  await services('h2', 'start', ['redis'], { LECTERN_REDIS_REPLICAOF: `${ip('h1')} ${PORTS.redis}` });
  await Promise.all(serverHosts.map((h) => services(h, 'start', ['sentinel'])));
  // Sentinels find each other and the replica through the master.
  await waitFor(async () => {
    const out = await redisCli('h1', PORTS.sentinel, 'SENTINEL', 'master', 'lectern');
    const f = out.trim().split('\n');
    const get = (k) => Number(f[f.indexOf(k) + 1]);
    return get('num-other-sentinels') === 2 && get('num-slaves') === 1;
  }, { timeout: 30000, interval: 200, what: 'three sentinels and a replica' });
  for (const h of serverHosts) startWorker(h);
  for (const h of serverHosts) servers[h] = startServer(h);
  await Promise.all(serverHosts.flatMap((h) => [ready(h), ready(h, workerPort(h))]));
  await startHaproxy();
  await waitFor(async () => {
    try { return (await httpGet('cl', PORTS.lb, '/readyz')).status === 200; } catch { return false; }
  }, { timeout: 20000, what: 'haproxy' });
  const q = await rabbitmqctl('h1', 'list_queues', '-q', 'name', 'type', 'members');
  log('queues:', q.trim().replace(/\s+/g, ' '));
  assert.match(q, /lectern\.storage\s+quorum/, 'the storage queue is a quorum queue');
}, { timeout: 300000 });

after(async () => {
  const codes = await stopAll();
  log('exits:', JSON.stringify(codes));
}, { timeout: 120000 });

// Students joined to `room`, each recording the bodies it was given and
// how often it had to reconnect.
async function students(room) {
  const list = [];
  for (let i = 0; i < STUDENTS; i++) {
    const c = client(`${room}-student${i}`);
    const s = { c, got: [], login: `${room}-student${i}`, reconnects: 0 };
    c.on('state', (st) => { if (st === 'reconnecting') s.reconnects++; });
    await c.connect();
    c.join(room, { presence: false }).on('message', (m) => s.got.push(m.body));
    list.push(s);
  }
  // Joined everywhere: every server lists all of them.
  await converged(room, list, 15000);
  return list;
}

async function presentOn(h, room) {
  const r = await httpGet(h, serverPort(h), `/api/rooms/${room}/presence`);
  if (r.status !== 200) return null;
  return JSON.parse(r.text).members.map((m) => m.id).sort();
}

async function converged(room, list, timeout) {
  const want = list.map((s) => s.login).sort();
  let seen;
  await waitFor(async () => {
    seen = {};
    for (const h of serverHosts) {
      try { seen[h] = await presentOn(h, room); } catch (e) { seen[h] = String(e.message); }
    }
    return serverHosts.every((h) => JSON.stringify(seen[h]) === JSON.stringify(want));
  }, { timeout, interval: 250, what: `presence of ${room} on every server (last: ${JSON.stringify(seen)})` })
    .catch((e) => { throw new Error(`${e.message}: ${JSON.stringify(seen)}`); });
}

// Publishers sending one message per `interval` ms each until stopped.
function publishers(room) {
  const state = { promised: [], refused: 0, stop: false, firstRefusal: 0, lastRefusal: 0, runs: [] };
  for (let p = 0; p < PUBLISHERS; p++) {
    const c = client(`${room}-teacher${p}`);
    state.runs.push((async () => {
      await c.connect();
      for (let i = 0; !state.stop; i++) {
        const body = `${room}/p${p}/${i}`;
        try {
          await c.send(room, body);
          state.promised.push(body);
        } catch {
          state.refused++;
          state.lastRefusal = Date.now();
          if (!state.firstRefusal) state.firstRefusal = Date.now();
        }
        await sleep(100); // the sending rate
      }
      c.disconnect();
    })());
  }
  return state;
}

// What a failed convergence needs to be understood from CI output alone:
// each student's client, and each server's registry and connection events.
function diagnose(room, list) {
  for (const s of list) log(`diag ${s.login}: state=${s.c.state} reconnects=${s.reconnects} got=${s.got.length}`);
  const interesting = /registry_|heartbeat_timeout|redis_|shutdown|access|stomp_error/;
  for (const h of serverHosts) {
    const lines = (servers[h]?.logs || []).filter((l) => interesting.test(l) && !l.includes('level=debug'));
    log(`diag server ${h}: ${lines.length} registry/connection lines, the last 40:`);
    for (const l of lines.slice(-40)) log(`  ${l.slice(0, 300)}`);
  }
}

async function verify(room, list, pubs) {
  const promised = pubs.promised;
  // Every student has every promised message, exactly once, each publisher's in order.
  for (const s of list) {
    await waitFor(() => promised.every((b) => s.got.includes(b)), {
      timeout: 30000, interval: 200,
      what: `${s.login} to have all ${promised.length} promised messages (missing ${promised.filter((b) => !s.got.includes(b)).slice(0, 5)})`,
    });
  }
  // A fixed wait for a duplicate to show: the publishers' connections are
  // closed by now, so no later message of theirs can take the same paths.
  await sleep(500);
  for (const s of list) {
    assert.equal(new Set(s.got).size, s.got.length, `${s.login} got a message twice`);
    for (let p = 0; p < PUBLISHERS; p++) {
      const mine = s.got.filter((b) => b.startsWith(`${room}/p${p}/`)).map((b) => Number(b.split('/')[2]));
      for (let i = 1; i < mine.length; i++) assert.ok(mine[i] > mine[i - 1], `${s.login}: p${p} out of order`);
    }
    assert.equal(s.c.state, 'online', `${s.login} is online`);
  }
  // MySQL: each promised message exactly once, nothing twice.
  let rows;
  await waitFor(async () => {
    rows = new Map((await sql(`SELECT body, COUNT(*) FROM messages WHERE room = '${room}' GROUP BY body`))
      .map(([b, n]) => [b, Number(n)]));
    return promised.every((b) => rows.has(b));
  }, { timeout: 60000, interval: 500, what: 'every promised message in MySQL' });
  for (const [b, n] of rows) assert.equal(n, 1, `${b} stored ${n} times`);
  // Presence converges on every server.
  await converged(room, list, 30000).catch((e) => {
    diagnose(room, list);
    throw e;
  });
  for (const h of serverHosts) {
    await ready(h);
    await ready(h, workerPort(h));
  }
}

// Sum of a counter over the servers (0 for a server that does not answer).
async function counter(name) {
  let total = 0;
  for (const h of serverHosts) {
    try {
      const { text } = await httpGet(h, serverPort(h), '/metrics');
      const m = text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
      total += m ? Number(m[1]) : 0;
    } catch { /* not answering */ }
  }
  return total;
}

async function scenario(name, fault) {
  const room = `mh-${name}-${process.pid}`;
  const list = await students(room);
  const pubs = publishers(room);
  try {
    await waitFor(() => pubs.promised.length >= 30, { timeout: 20000, what: 'traffic before the fault' });
    const t0 = Date.now();
    await fault();
    const atFault = pubs.promised.length;
    await waitFor(() => pubs.promised.length >= atFault + 30, { timeout: 60000, what: 'traffic after the fault' });
    pubs.stop = true;
    await Promise.all(pubs.runs);
    log(`${name}: ${pubs.promised.length} messages with a RECEIPT, ${pubs.refused} refused`
      + (pubs.firstRefusal ? ` between +${pubs.firstRefusal - t0} and +${pubs.lastRefusal - t0} ms` : ''));
    await verify(room, list, pubs);
    const moved = list.filter((s) => s.reconnects > 0).length;
    log(`${name}: verified (${Date.now() - t0} ms after the fault); ${moved} of ${list.length} students reconnected`);
    return { moved, pubs };
  } finally {
    pubs.stop = true;
    await Promise.all(pubs.runs).catch(() => {});
    for (const s of list) s.c.disconnect();
  }
}

describe(`multi-host (${mode === 'netns' ? 'network namespaces' : 'LOOPBACK FALLBACK: no network namespaces'})`, () => {
  test('kill -9 of a RabbitMQ node mid-traffic: nothing confirmed is lost, every student gets everything', async () => {
    // The victim: the node holding the most servers' own queues, so that
    // at least one server's consumer must move to another node (a server's
    // publisher starts at the same node as its consumer).
    const out = await rabbitmqctl('h1', 'list_queues', '-q', 'name', 'pid');
    const onNode = Object.fromEntries(serverHosts.map((h) => [h, 0]));
    for (const [, node] of out.matchAll(/\.server\.\S+\s+<rabbit[^@]*@(\d+\.\d+\.\d+\.\d+)\./g)) onNode[hostOf(node)]++;
    const leaderOf = async () => {
      const lead = (await rabbitmqctl('h1', 'list_queues', '-q', 'name', 'leader'))
        .match(/lectern\.storage\s+rabbit[^@]*@(\d+\.\d+\.\d+\.\d+)/);
      return lead ? hostOf(lead[1]) : null;
    };
    const leader = await leaderOf();
    const victim = serverHosts.reduce((a, b) => (onNode[b] > onNode[a] || (onNode[b] === onNode[a] && b === leader) ? b : a));
    log(`server queues per node: ${JSON.stringify(onNode)}, storage queue leader: ${leader}, victim: ${victim}`);
    // The victim also leads the quorum storage queue: its death costs an
    // election, during which RabbitMQ refuses storage copies, and the
    // servers reopen their publishers on the survivors while it runs (a
    // channel opened then may go on refusing after the election: see
    // storage.nack_reopen_ms). Whatever the placement, every run has both.
    if (leader !== victim) {
      const id = (h) => `{'%2F_lectern.storage', 'rabbit@${ip(h)}'}`;
      await rabbitmqctl(leader, 'eval', `ra:transfer_leadership(${id(leader)}, ${id(victim)}).`);
      await waitFor(async () => (await leaderOf()) === victim,
        { timeout: 20000, interval: 250, what: `the storage queue's leadership on ${victim}` });
    }
    const nacks = await counter('lectern_bus_nacks_total');
    const reconnects = await counter('lectern_bus_reconnects_total');
    const reopens = await counter('lectern_bus_nack_reopens_total');
    const storeFailures = await counter('lectern_bus_store_failures_total');
    await scenario('rabbit', async () => {
      const pid = pidOf(victim, 'rabbitmq/rabbitmq.pid');
      log(`killing RabbitMQ node on ${victim} (pid ${pid})`);
      process.kill(pid, 'SIGKILL');
      await sleep(5000); // the node stays down while traffic goes on (the scenario)
    });
    log(`rabbit: storage copies refused by RabbitMQ and retried: ${await counter('lectern_bus_nacks_total') - nacks}, `
      + `publishers reopened after refusals: ${await counter('lectern_bus_nack_reopens_total') - reopens}`);
    assert.ok(onNode[victim] > 0, 'a server queue was on the killed node');
    // Every storage copy refused during the election was taken once a
    // leader was back, within storage.confirm_timeout_ms: no SEND got
    // ERROR for want of a confirm (a publisher left refusing would).
    assert.equal(await counter('lectern_bus_store_failures_total') - storeFailures, 0,
      'storage copies left unconfirmed after the election');
    assert.ok(await counter('lectern_bus_reconnects_total') > reconnects, 'a server failed over to another node');
    // The node comes back and rejoins; the quorum queue has three members again.
    await services(victim, 'start', ['rabbitmq']);
    await rabbitmqctl('h2' === victim ? 'h3' : 'h2', 'await_online_nodes', '3', '--timeout', '60');
  }, { timeout: 300000 });

  test('kill -9 of the Redis master mid-traffic: Sentinel promotes the replica, the servers follow', async () => {
    const before = await masterAddr();
    const h = hostOf(before.host);
    await scenario('redis', async () => {
      const pid = pidOf(h, 'redis/redis.pid');
      log(`killing the Redis master on ${h} (pid ${pid})`);
      process.kill(pid, 'SIGKILL');
      await waitFor(async () => (await masterAddr()).host !== before.host,
        { timeout: 30000, interval: 200, what: 'a new master' });
      log(`new master: ${JSON.stringify(await masterAddr())}`);
    });
    // The old master returns as a replica of the new one.
    const now = await masterAddr();
    await services(h, 'start', ['redis'], { LECTERN_REDIS_REPLICAOF: `${now.host} ${now.port}` });
  }, { timeout: 300000 });

  test('h3 loses its network link for 20 s: its clients move, and it rejoins when the link returns', async () => {
    const { moved } = await scenario('link', async () => {
      log('cutting h3');
      await cut('h3');
      await sleep(Number(process.env.MH_CUT_MS || 20000)); // MH_CUT_MS: other lengths, by hand
      await restore('h3');
      log('h3 restored');
    });
    assert.ok(moved > 0, 'students of h3 had to move');
  }, { timeout: 300000 });
});
