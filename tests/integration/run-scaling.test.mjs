// `make run` rescaling: scripts/cluster start, run again on a running
// cluster with other SERVERS / WORKERS / CONNECTIONS, brings it to those
// counts without dropping an established connection. The cluster is a
// private one, as scripts/bench runs it: its own LECTERN_VAR_DIR, its own
// Redis, RabbitMQ and MariaDB on free ports, haproxy, servers and workers
// on a block of ports nobody listens on.
//
// One client stays connected through the front from the first start to the
// stop, and must answer a message round trip after every step with its
// WebSocket never closed. A reload that did not happen shows as a third
// server no new connection reaches; a second haproxy process that did not
// start, or did not share the port, as one listener on it.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, metric, repoRoot, stompClient, waitFor } from './helpers.mjs';

const script = path.join(repoRoot, 'scripts', 'cluster');
const perProcess = Number(execFileSync(path.join(repoRoot, 'scripts', 'haproxy-config'), ['--max-per-process']));
const varDir = mkdtempSync(path.join(os.tmpdir(), 'lectern-run-scaling-'));

// The front, its servers (front+1..) and the workers (front+50..) take runs
// of consecutive ports: a block of 100 below the ephemeral range with
// nobody listening in it, from a random place so that two runs on one
// machine are unlikely to pick the same one.
function freeBlock() {
  const listening = new Set(execFileSync('ss', ['-Htln']).toString().split('\n')
    .map((l) => l.trim().split(/\s+/)[3]).filter(Boolean).map((a) => Number(a.split(':').pop())));
  const start = Math.floor(Math.random() * 100);
  for (let i = 0; i < 100; i++) {
    const base = 20000 + ((start + i) % 100) * 100;
    let free = true;
    for (let p = base; p < base + 100 && free; p++) free = !listening.has(p);
    if (free) return base;
  }
  throw new Error('no free block of 100 ports in 20000-29999');
}

const front = freeBlock();
const env = { ...process.env, LECTERN_VAR_DIR: varDir, LECTERN_PORT: String(front),
  LECTERN_STORAGE_PORT: String(front + 50), LECTERN_START_TIMEOUT: '60' };
for (const k of ['SERVERS', 'WORKERS', 'CONNECTIONS', 'LECTERN_RABBIT_NODENAME']) delete env[k];
for (const k of ['REDIS', 'AMQP', 'RABBIT_DIST', 'EPMD', 'WEB_STOMP', 'MYSQL']) env[`LECTERN_${k}_PORT`] = String(await freePort());

// scripts/cluster CMD with extra environment; resolves with its output,
// rejects with it when the exit status is not 0.
function cluster(cmd, extra = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(script, [cmd], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`cluster ${cmd} exited ${code}:\n${out}`))));
  });
}

// Every pid scripts/cluster status reported (masters, workers, servers,
// services): none may be left running after the stop.
const seen = new Set();
async function status() {
  const out = await cluster('status');
  for (const m of out.matchAll(/\b(?:pid|worker)=(\d+)/g)) seen.add(Number(m[1]));
  return out;
}

const running = (pid) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};
const ppid = (pid) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1]);
const pidOf = (name) => Number(readFileSync(path.join(varDir, 'run', `${name}.pid`), 'utf8'));
// The processes listening on a port (haproxy: each process's worker).
const listeners = (port) => [...new Set([...execFileSync('ss', ['-Hltnp', `sport = :${port}`]).toString()
  .matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])))];
const connections = (n) => metric(front + n, 'lectern_connections');

const room = `/topic/run-scaling-${process.pid}`;
const clients = [];
after(async () => {
  for (const c of clients) await c.client.deactivate().catch(() => {});
  await cluster('stop').catch((e) => console.error(e.message));
  rmSync(varDir, { recursive: true, force: true });
});

// A stompjs client through the front that records how its WebSocket closed.
async function connect() {
  const c = await stompClient(`ws://127.0.0.1:${front}/ws`);
  c.got = [];
  c.closed = null;
  c.client.onWebSocketClose = (e) => { c.closed = e.code; };
  c.client.subscribe(room, (m) => c.got.push(m.body), { receipt: 'sub' });
  await new Promise((resolve) => c.client.watchForReceipt('sub', resolve));
  clients.push(c);
  return c;
}

// A SEND from c comes back to c: the connection works end to end.
let seq = 0;
async function roundTrip(c, what) {
  assert.equal(c.closed, null, `${what}: the established connection was closed (code ${c.closed})`);
  const body = `rt-${++seq}`;
  c.client.publish({ destination: room, body });
  await waitFor(() => c.got.includes(body), { timeout: 5000, what: `${what}: a round trip on the established connection` });
}

test('make run rescales a running cluster: servers, workers and haproxy processes follow, established connections stay up', { timeout: 180000 }, async () => {
  const t0 = Date.now();
  let out = await cluster('start', { SERVERS: '2', WORKERS: '1' });
  assert.match(out, new RegExp(`Front: +1 haproxy process x maxconn ${perProcess} = ${perProcess} connections`));
  const started = Date.now() - t0;
  const held = await connect();
  await roundTrip(held, 'first start');
  assert.equal((await connections(1)) + (await connections(2)), 1);
  await status();

  // Grow: a third server and a second worker; haproxy reloads.
  let t = Date.now();
  out = await cluster('start', { SERVERS: '3', WORKERS: '2' });
  const grow = Date.now() - t;
  assert.match(out, /lectern-storage 2 up/);
  await roundTrip(held, 'after SERVERS=3');
  // The reloaded worker balances its own connections (leastconn, counted
  // from zero): six new clients spread over the three servers, two each.
  const fresh = [];
  for (let i = 0; i < 6; i++) fresh.push(await connect());
  await waitFor(async () => (await connections(3)) >= 2, { timeout: 5000, what: 'new connections on the third server' });
  const spread = [await connections(1), await connections(2), await connections(3)];
  assert.equal(spread.reduce((a, b) => a + b), 7);
  const reloadMs = Number(out.match(/haproxy 1 reloaded in (\d+) ms/)?.[1]);
  assert.ok(reloadMs >= 0, `haproxy reloaded:\n${out}`);
  let st = await status();
  assert.match(st, /lectern-server-3 up/);
  assert.match(st, /lectern-storage-2 up/);
  // The worker that holds the first client was replaced and finishes it.
  assert.match(st, /haproxy-1 up .* workers_finishing=1/);

  // More connections than one haproxy process holds: two on the front port.
  t = Date.now();
  out = await cluster('start', { CONNECTIONS: String(perProcess + 1) });
  const twoLbs = Date.now() - t;
  assert.match(out, new RegExp(`Front: +2 haproxy processes x maxconn ${perProcess} = ${2 * perProcess} connections`));
  const masters = [pidOf('haproxy-1'), pidOf('haproxy-2')];
  const onFront = listeners(front);
  assert.equal(onFront.length, 2, `two haproxy processes listen on ${front}: ${onFront}`);
  assert.deepEqual(onFront.map(ppid).sort(), [...masters].sort(), 'each listener is the worker of one of the two masters');
  st = await status();
  assert.match(st, new RegExp(`front up port=${front} 2 haproxy processes x maxconn ${perProcess}`));
  await roundTrip(held, 'after CONNECTIONS for two processes');
  // A cluster started without the counts keeps them.
  out = await cluster('start');
  assert.match(out, /Lectern is running: 3 servers behind haproxy, 2 storage worker/);
  assert.match(out, /haproxy 1 already running .* configuration unchanged/);

  // Shrink: the third server drains (its clients get 1012), the second
  // haproxy process stops listening, the second worker stops.
  const third = pidOf('lectern-server-3');
  t = Date.now();
  out = await cluster('start', { SERVERS: '2', WORKERS: '1', CONNECTIONS: String(perProcess) });
  const shrink = Date.now() - t;
  assert.match(out, /lectern-server 3 stopped/);
  assert.match(out, /lectern-storage 2 stopped/);
  assert.ok(!running(third), 'the third server exited');
  // The close reaches the clients through haproxy: wait for it.
  const closedOnes = () => fresh.filter((c) => c.closed !== null);
  await waitFor(() => closedOnes().length >= spread[2], { what: 'the third server\'s clients closed' });
  const dropped = closedOnes();
  assert.equal(dropped.length, spread[2], 'exactly the third server\'s clients were closed');
  assert.ok(dropped.every((c) => c.closed === 1012), `closed with 1012: ${dropped.map((c) => c.closed)}`);
  await roundTrip(held, 'after SERVERS=2');
  for (const c of fresh.filter((x) => x.closed === null)) await roundTrip(c, 'a client of a remaining server');
  await waitFor(() => listeners(front).length === 1, { timeout: 10000, what: 'one haproxy process on the front' });
  await waitFor(() => !running(masters[1]), { timeout: 10000, what: 'the second haproxy process to exit (it held no connection)' });
  const again = await connect();
  await roundTrip(again, 'a new client after the shrink');
  st = await status();
  assert.doesNotMatch(st, /lectern-server-3|lectern-storage-2|haproxy-2/);
  assert.match(st, new RegExp(`front up port=${front} 1 haproxy process x maxconn ${perProcess}`));

  for (const c of clients) await c.client.deactivate();
  t = Date.now();
  await cluster('stop');
  const stop = Date.now() - t;
  const left = [...seen].filter(running);
  assert.deepEqual(left, [], 'nothing left running');
  for (const port of [front, front + 1, front + 2, front + 3, front + 50, front + 51]) {
    assert.deepEqual(listeners(port), [], `nothing listens on ${port}`);
  }
  // The servers and workers ran under the sanitizers (make integration
  // passes that build): any report in their logs fails the test.
  const logDir = path.join(varDir, 'log');
  for (const f of readdirSync(logDir)) {
    const text = readFileSync(path.join(logDir, f), 'utf8');
    assert.doesNotMatch(text, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/, f);
  }
  console.log(`# start ${started} ms; SERVERS 2->3 ${grow} ms (haproxy reload ${reloadMs} ms), connections per server ${spread.join('/')}; `
    + `CONNECTIONS ${perProcess + 1} (2 processes) ${twoLbs} ms; shrink ${shrink} ms (${dropped.length} clients closed 1012); stop ${stop} ms; `
    + `the held connection answered after every step; total ${Date.now() - t0} ms`);
});
