// Shared helpers for the integration tests: start a real lectern-server on a
// free port, connect real @stomp/stompjs clients (with the `ws` package as the
// WebSocket class, as Node 20 has none), and speak raw STOMP over a plain
// WebSocket for frames a polite client never sends.
//
// Servers are started from LECTERN_SERVER_BIN (the Makefile passes the
// sanitizer build) and stopped with SIGTERM; stop() resolves with the exit
// code, so a test can assert on a clean shutdown (ASan turns leaks into a
// non-zero exit). Every program a test starts goes through spawnReady (or
// spawnProcess): output collected, readiness polled against a deadline.
//
// Tests wait on events, not fixed sleeps: a subscription on its RECEIPT
// (subscribed), a client that cannot ask for one on a delivered probe
// (probeUntil), anything else by polling against a deadline (waitFor). A
// test that something does not arrive first proves that delivery happened:
// a later message on the same path must arrive. A fixed sleep is left only
// where the time is what is tested, and says so.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const serverBin = process.env.LECTERN_SERVER_BIN || path.join(repoRoot, 'bin', 'lectern-server');

// Sanitizer reports from any server or worker this test file started. The
// binaries under test are ASan+UBSan builds that abort on a report, but a
// process killed on purpose, or one whose exit code a test does not check,
// must not hide one: any report fails the file at exit.
const sanitizerReports = [];
const sanitizerLine = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;
export function collectLines(logs, what) {
  return (chunk) => {
    for (const line of chunk.toString().split('\n')) {
      if (!line) continue;
      logs.push(line);
      if (sanitizerLine.test(line)) sanitizerReports.push(`${what}: ${line}`);
    }
  };
}
process.on('exit', () => {
  if (sanitizerReports.length) {
    console.error(`# sanitizer reports (${sanitizerReports.length}):\n${sanitizerReports.join('\n')}`);
    process.exitCode = 1;
  }
});

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Poll `check` until it returns a truthy value or the deadline passes.
export async function waitFor(check, { timeout = 5000, interval = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

// CPU time (all threads) a process has used so far, in milliseconds: each
// thread's time on a CPU in nanoseconds (/proc/<pid>/task/<tid>/schedstat,
// first field). Exact, where utime + stime in /proc/<pid>/stat count 10 ms
// clock ticks charged to whichever thread a tick finds running.
export function cpuMs(pid) {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch { /* the thread ended meanwhile */ }
  }
  return ns / 1e6;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function httpGet(port, urlPath, init) {
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, init);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

// --- processes ----------------------------------------------------------------

// Spawn `cmd` with `argv` and collect its output, line by line, into `logs`
// (scanned for sanitizer reports, named `what`). Returns a handle:
//   proc, pid, logs   the child and its output so far
//   exited()          { code, signal } once it has exited, else null
//   waitExit()        resolves with { code, signal } when it exits
//   kill()            SIGKILL; resolves with { code, signal }
//   stop({timeout})   SIGTERM, SIGKILL after `timeout` ms (default
//                     `stopTimeout`); resolves with { code, signal }
export function spawnProcess(cmd, argv, { what = cmd, env, stopTimeout = 10000 } = {}) {
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: env && { ...process.env, ...env } });
  const logs = [];
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });
  const collect = collectLines(logs, what);
  proc.stdout.on('data', collect);
  proc.stderr.on('data', collect);
  return {
    proc,
    pid: proc.pid,
    logs,
    what,
    exited: () => exited,
    waitExit: () => exitPromise,
    kill() {
      if (!exited) proc.kill('SIGKILL');
      return exitPromise;
    },
    async stop({ timeout = stopTimeout } = {}) {
      if (!exited) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeout);
      const r = await exitPromise;
      clearTimeout(timer);
      return r;
    },
  };
}

// spawnProcess, then poll `ready()` until it returns a truthy value: a
// readiness probe that throws counts as "not yet". Exiting first, or not
// being ready within `timeout` ms, kills the process and throws with its
// log. Resolves with the handle.
export async function spawnReady(cmd, argv, { ready, timeout = 20000, interval, ...opts } = {}) {
  const h = spawnProcess(cmd, argv, opts);
  try {
    await waitFor(async () => {
      const gone = h.exited();
      if (gone) throw new Error(`${h.what} exited early (${JSON.stringify(gone)}):\n${h.logs.join('\n')}`);
      try { return await ready(); } catch { return false; }
    }, { timeout, interval, what: `${h.what} ready` });
  } catch (e) {
    h.proc.kill('SIGKILL');
    throw e;
  }
  return h;
}

// An HTTP probe for spawnReady: GET `urlPath` answers 200.
export const http200 = (port, urlPath) => async () => (await httpGet(port, urlPath)).status === 200;

// A fresh cluster namespace: servers given the same one form a cluster;
// different ones never see each other (own Redis keys, own exchange).
export function clusterName() {
  return `t${process.pid}x${Math.random().toString(36).slice(2, 8)}`;
}

// Start lectern-server against the suite's Redis and RabbitMQ (ports from
// tests/run-integration.sh). `sets` are --set knob=value overrides;
// `cluster` names the cluster (default: a new one of its own); `ready`
// waits for /readyz (the registry and bus connected) instead of /healthz;
// `env` adds to the server's environment; `probe(port, path)` replaces the
// plain-HTTP readiness check (a server with server.tls_cert answers HTTPS
// only: tlsca.mjs).
export async function startServer({ sets = {}, args = [], timeout = 20000, cluster, ready = true,
  port: fixedPort, env, probe } = {}) {
  const port = fixedPort || await freePort();
  const ns = cluster || clusterName();
  const base = {
    // Loopback only: test servers run without authentication (auth.mode
    // none), which the server allows on loopback alone.
    'server.listen': '127.0.0.1',
    'redis.port': process.env.LECTERN_REDIS_PORT || 6390,
    'bus.port': process.env.LECTERN_AMQP_PORT || 5690,
    'mysql.port': process.env.LECTERN_MYSQL_PORT || 3390,
    'redis.prefix': `${ns}:`,
    'bus.exchange': ns,
    'storage.queue': `${ns}.storage`,
    'redis.backoff_max_ms': 500,
    'bus.backoff_max_ms': 500,
    // Tests publish far faster than people, from one address: the abuse
    // limits are off unless a test (security.test.mjs) turns them on.
    'limits.send_rate': 0,
    'limits.frame_rate': 0,
    'limits.send_bytes_rate': 0,
    'limits.max_conns_per_ip': 0,
  };
  const argv = ['--port', String(port), ...args];
  for (const [k, v] of Object.entries({ ...base, ...sets })) argv.push('--set', `${k}=${v}`);
  const h = await spawnReady(serverBin, argv, {
    what: `lectern-server :${port}`, env, timeout,
    ready: (probe || http200)(port, ready ? '/readyz' : '/healthz'),
  });
  return {
    ...h,
    port,
    cluster: ns,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
  };
}

// A connected @stomp/stompjs client. Resolves once CONNECTED arrived.
export function stompClient(wsUrl, options = {}) {
  const { protocols = ['v12.stomp', 'v11.stomp', 'v10.stomp'], ...rest } = options;
  return new Promise((resolve, reject) => {
    const client = new Client({
      webSocketFactory: () => new WebSocket(wsUrl, protocols),
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      connectionTimeout: 5000,
      ...rest,
    });
    client.onConnect = (frame) => resolve({ client, connected: frame });
    client.onStompError = (frame) => reject(new Error(`STOMP ERROR: ${frame.headers.message}`));
    client.onWebSocketError = (e) => reject(new Error(`WebSocket error: ${e.message || e}`));
    // A socket closed before CONNECTED (stompjs's connectionTimeout, or the
    // server's close) settles the promise too: with reconnectDelay 0 nothing
    // else would, and the test would wait forever instead of failing.
    client.onWebSocketClose = (e) => reject(new Error(`WebSocket closed before CONNECTED (code ${e.code})`));
    client.activate();
  });
}

// Collects MESSAGE frames for a subscription; `next(n)` waits for n of them.
export function collector(client, destination, headers = {}) {
  const messages = [];
  const sub = client.subscribe(destination, (m) => messages.push(m), headers);
  return {
    sub,
    messages,
    async next(n, timeout = 5000) {
      await waitFor(() => messages.length >= n, { timeout, what: `${n} messages on ${destination}` });
      return messages.slice(0, n);
    },
  };
}

// Resolves with the RECEIPT frame `id` on a @stomp/stompjs client, or
// rejects after `timeout` ms. Call it before sending the frame that asks
// for the receipt; await it after.
export function expectReceipt(client, id, timeout = 5000) {
  let frame = null;
  client.watchForReceipt(id, (f) => { frame = f; });
  return waitFor(() => frame, { timeout, what: `RECEIPT ${id}` });
}

// A collector whose SUBSCRIBE asked for a RECEIPT and got it: the
// subscription is in place, so a message sent after this resolves must
// reach it.
let subscribeReceipts = 0;
export async function subscribed(client, destination, headers = {}) {
  const id = `subscribed-${++subscribeReceipts}`;
  const receipt = expectReceipt(client, id);
  const c = collector(client, destination, { ...headers, receipt: id });
  await receipt;
  return c;
}

// For clients that cannot ask for a SUBSCRIBE's RECEIPT (client-js,
// RabbitMQ Web-STOMP): `send(body)` probes (bodies "probe-<n>", resolving
// when sent) until `delivered()` says they arrive where the test needs them,
// against a deadline. Resolves with the number of probes sent; the test's
// message handlers set probes aside.
export const isProbe = (body) => String(body).startsWith('probe-');

// Message ids ("<ms>-<n>") strictly increase along `ids`: the room's order.
export function assertIncreasing(ids, what) {
  const key = (id) => id.split('-').map(BigInt);
  for (let i = 1; i < ids.length; i++) {
    const [p0, p1] = key(ids[i - 1]);
    const [c0, c1] = key(ids[i]);
    assert.ok(c0 > p0 || (c0 === p0 && c1 > p1), `${what}: ${ids[i - 1]} then ${ids[i]}`);
  }
}
export async function probeUntil(send, delivered, { timeout = 10000, what = 'a probe delivered' } = {}) {
  let n = 0;
  await waitFor(async () => {
    if (delivered()) return true;
    await send(`probe-${n++}`);
    return false;
  }, { timeout, interval: 50, what });
  return n;
}

// --- raw STOMP over a plain WebSocket ------------------------------------

// Parse a byte stream into STOMP frames (only for the tests: it trusts
// content-length and splits headers on the first ':', undoing 1.2 escapes
// unless the command is CONNECTED).
export function parseFrames(bytes) {
  const frames = [];
  let i = 0;
  while (i < bytes.length) {
    if (bytes[i] === 0x0a) { frames.push({ command: 'HEARTBEAT' }); i++; continue; }
    if (bytes[i] === 0x0d && bytes[i + 1] === 0x0a) { frames.push({ command: 'HEARTBEAT' }); i += 2; continue; }
    const headEnd = bytes.indexOf('\n\n', i) >= 0 ? bytes.indexOf('\n\n', i) : -1;
    if (headEnd < 0) break;
    const head = bytes.subarray(i, headEnd).toString('utf8').split('\n');
    const command = head.shift();
    const headers = {};
    const rawHeaders = [];
    for (const line of head) {
      const c = line.indexOf(':');
      let name = line.slice(0, c);
      let value = line.slice(c + 1);
      if (command !== 'CONNECTED') {
        const un = (s) => s.replace(/\\(.)/g, (_, ch) => ({ r: '\r', n: '\n', c: ':', '\\': '\\' }[ch]));
        name = un(name);
        value = un(value);
      }
      rawHeaders.push([name, value]);
      if (!(name in headers)) headers[name] = value;
    }
    const bodyStart = headEnd + 2;
    let bodyEnd;
    if (headers['content-length'] !== undefined) bodyEnd = bodyStart + Number(headers['content-length']);
    else bodyEnd = bytes.indexOf(0, bodyStart);
    if (bodyEnd < 0 || bodyEnd >= bytes.length) break;
    frames.push({ command, headers, rawHeaders, body: bytes.subarray(bodyStart, bodyEnd) });
    i = bodyEnd + 1;
  }
  return { frames, rest: bytes.subarray(i) };
}

// A raw WebSocket speaking STOMP by hand. `frames` accumulates parsed frames
// (heart-beats included), `messages` the raw WebSocket messages with their
// text/binary kind.
export async function rawClient(wsUrl, { protocols = ['v12.stomp'], headers } = {}) {
  const ws = new WebSocket(wsUrl, protocols, { headers });
  ws.binaryType = 'nodebuffer';
  const state = { ws, frames: [], messages: [], closed: null, pending: Buffer.alloc(0) };
  ws.on('message', (data, isBinary) => {
    const bytes = Buffer.isBuffer(data) ? data : Buffer.concat(data);
    state.messages.push({ isBinary, bytes });
    state.pending = Buffer.concat([state.pending, bytes]);
    const { frames, rest } = parseFrames(state.pending);
    state.frames.push(...frames);
    state.pending = Buffer.from(rest);
  });
  ws.on('close', (code, reason) => { state.closed = { code, reason: reason.toString() }; });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  state.protocol = ws.protocol;
  state.send = (data, opts) => ws.send(data, opts);
  state.frame = (command, headers = {}, body = '') => {
    let s = command + '\n';
    for (const [k, v] of Object.entries(headers)) s += `${k}:${v}\n`;
    ws.send(Buffer.concat([Buffer.from(s + '\n'), Buffer.from(body), Buffer.from([0])]));
  };
  state.waitFrame = (command, timeout = 5000) =>
    waitFor(() => state.frames.find((f) => f.command === command), { timeout, what: `${command} frame` });
  state.waitClosed = (timeout = 5000) => waitFor(() => state.closed, { timeout, what: 'close' });
  state.connect = async (headers = { 'accept-version': '1.2', host: '/' }) => {
    state.frame('CONNECT', headers);
    return state.waitFrame('CONNECTED');
  };
  state.close = () => ws.terminate();
  return state;
}

// --- clusters --------------------------------------------------------------

// A metric's value from a server's /metrics (labels included in `name`).
export async function metric(port, name) {
  const text = (await httpGet(port, '/metrics')).text;
  const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = text.match(new RegExp(`^${esc} (\\d+)$`, 'm'));
  if (!m) throw new Error(`no metric ${name} on port ${port}`);
  return Number(m[1]);
}

// haproxy in front of servers on `ports`, with the project's own config.
export async function startHaproxy(ports) {
  const { execFileSync } = await import('node:child_process');
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const os = await import('node:os');
  const port = await freePort();
  const cfg = execFileSync(path.join(repoRoot, 'scripts', 'haproxy-config'), [String(port), ...ports.map(String)]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lectern-lb-'));
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(file, cfg);
  const h = await spawnReady('haproxy', ['-W', '-db', '-f', file],
    { what: `haproxy :${port}`, timeout: 10000, ready: http200(port, '/readyz') });
  return {
    port,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    stop: () => h.stop(),
  };
}

// n servers forming one cluster (optionally behind haproxy).
export async function startCluster({ n = 3, sets = {}, lb = false } = {}) {
  const cluster = clusterName();
  const servers = [];
  for (let i = 0; i < n; i++)
    servers.push(await startServer({ cluster, sets: { 'server.id': `${cluster}-s${i + 1}`, ...sets } }));
  const proxy = lb ? await startHaproxy(servers.map((s) => s.port)) : null;
  return {
    cluster,
    servers,
    lb: proxy,
    async stop() {
      if (proxy) await proxy.stop();
      const codes = [];
      for (const s of servers) {
        const { code } = await s.stop();
        codes.push(code);
        if (code !== 0 && code !== null)
          console.error(`server on ${s.port} exited ${code}; its log:\n${s.logs.join('\n')}`);
      }
      return codes;
    },
  };
}

// Stop or start one of the suite's services (scripts/services, same env).
export async function service(action, name) {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    execFile(path.join(repoRoot, 'scripts', 'services'), [action, name], { timeout: 120000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${action} ${name}: ${stderr}`)) : resolve(stdout)));
  });
}

// SENDs with receipts over raw STOMP, one every `pause` ms, reconnecting
// whenever the server closes the connection (an ERROR closes it), until
// `stopped` is set; then `done` resolves. `promised` lists the bodies that
// got a RECEIPT, in order; `refused` counts the ERROR frames `refusal`
// accepts (default: all). After a connection closes, RECEIPTs still
// arriving within `settle` ms are counted.
export function steadySender(url, room, { pause = 15, settle = 300, refusal = () => true } = {}) {
  const state = { url, room, promised: [], refused: 0, stopped: false, n: 0 };
  state.done = (async () => {
    while (!state.stopped) {
      let c;
      try {
        c = await rawClient(url);
        await c.connect();
      } catch {
        await sleep(100); // before trying to connect again
        continue;
      }
      while (!state.stopped && !c.closed) {
        const body = `m${state.n++}`;
        c.frame('SEND', { destination: `/topic/${room}`, receipt: body }, body);
        await sleep(pause); // the sending rate
        for (const f of c.frames.splice(0)) {
          if (f.command === 'RECEIPT') state.promised.push(f.headers['receipt-id']);
          if (f.command === 'ERROR' && refusal(f)) state.refused++;
        }
      }
      await sleep(settle);
      for (const f of c.frames.splice(0))
        if (f.command === 'RECEIPT') state.promised.push(f.headers['receipt-id']);
      c.close();
    }
  })();
  return state;
}

// After an outage: wait for 20 more RECEIPTs, stop the sender, then check
// that `got` (the bodies a subscriber received) holds every promised
// message exactly once, in the order the RECEIPTs came. A last message
// through the same server, once all have arrived, is the proof that a
// duplicate would have arrived too: it would come before it.
export async function finishSender(sender, got, what) {
  const before = sender.promised.length;
  await waitFor(() => sender.promised.length >= before + 20, { timeout: 20000, what: `traffic after the ${what}` });
  sender.stopped = true;
  await sender.done;
  await waitFor(() => sender.promised.every((b) => got.includes(b)),
    { timeout: 20000, what: 'every promised message delivered' });
  const c = await rawClient(sender.url);
  await c.connect();
  const last = `m${sender.n++}`;
  c.frame('SEND', { destination: `/topic/${sender.room}`, receipt: last }, last);
  await c.waitFrame('RECEIPT');
  c.close();
  sender.promised.push(last);
  await waitFor(() => got.includes(last), { timeout: 20000, what: 'the last message delivered' });
  assert.equal(new Set(got).size, got.length, 'no duplicates');
  const idx = sender.promised.map((b) => got.indexOf(b));
  for (let i = 1; i < idx.length; i++) assert.ok(idx[i] > idx[i - 1], 'promised messages in order');
}

// A TCP relay on a free loopback port to 127.0.0.1:`port`, standing for a
// network path that tests can break in two ways:
//   freeze()  a node gone silent (SIGSTOP, power): nothing is forwarded
//             either way and nothing closed; the two sides learn of it only
//             from their own deadlines. thaw() then drops those connections
//             (the node was restarted); new ones work again.
//   pause()   a cut link: bytes wait in the relay, as TCP would retransmit
//             them, and resume() delivers them in order.
// live() counts connections that are neither frozen nor paused. `list`
// (optional) collects relays for cleanup: close() each one.
export async function tcpRelay(port, name = 'relay', list = null) {
  const conns = new Set();
  const r = { name, frozen: false, paused: false, conns };
  const server = net.createServer((down) => {
    const up = net.connect(port, '127.0.0.1');
    const pair = { down, up, frozen: r.frozen, held: [] };
    conns.add(pair);
    const gone = () => {
      conns.delete(pair);
      down.destroy();
      up.destroy();
    };
    const pass = (to) => (d) => {
      if (pair.frozen) return;
      if (r.paused) pair.held.push([to, d]);
      else to.write(d);
    };
    down.on('data', pass(up));
    up.on('data', pass(down));
    for (const s of [down, up]) {
      s.on('error', () => {});
      s.on('close', () => { if (!pair.frozen && !r.paused) gone(); });
    }
    pair.gone = gone;
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.port = server.address().port;
  r.addr = `127.0.0.1:${r.port}`;
  r.live = () => (r.paused ? 0 : [...conns].filter((p) => !p.frozen).length);
  r.freeze = () => {
    r.frozen = true;
    for (const p of conns) p.frozen = true;
  };
  r.thaw = () => {
    r.frozen = false;
    for (const p of [...conns]) if (p.frozen) p.gone();
  };
  r.pause = () => { r.paused = true; };
  r.resume = () => {
    r.paused = false;
    for (const p of [...conns]) {
      for (const [to, d] of p.held.splice(0)) if (!to.destroyed) to.write(d);
      if (p.down.destroyed || p.up.destroyed) {
        // One side closed meanwhile: the other gets what was held, then FIN.
        conns.delete(p);
        p.down.end();
        p.up.end();
      }
    }
  };
  r.close = () => {
    r.resume();
    r.thaw();
    server.close();
  };
  if (list) list.push(r);
  return r;
}

// --- storage -----------------------------------------------------------------

// rabbitmqctl against the suite's RabbitMQ (scripts/services, same env);
// resolves with its output.
export async function rabbitmqctl(...args) {
  const { execFile } = await import('node:child_process');
  const script = 'set -a; eval "$("$0" env)"; HOME=$LECTERN_RABBIT_HOME exec /usr/lib/rabbitmq/bin/rabbitmqctl -q "$@"';
  return new Promise((resolve, reject) => {
    execFile('bash', ['-c', script, path.join(repoRoot, 'scripts', 'services'), ...args], { timeout: 60000 },
      (err, stdout, stderr) => (err ? reject(new Error(`rabbitmqctl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

// Resolves once the storage queue of `cluster` holds nothing, ready or
// unacknowledged: a worker acknowledges a copy only after its row is
// committed, so every row there will be is in MySQL, and none can come
// later.
export async function storageDrained(cluster, timeout = 60000) {
  const queue = `${cluster}.storage`;
  await waitFor(async () => {
    const rows = (await rabbitmqctl('list_queues', 'name', 'messages')).split('\n').map((l) => l.split('\t'));
    const row = rows.find(([name]) => name === queue);
    return row && Number(row[1]) === 0;
  }, { timeout, interval: 250, what: `${queue} drained` });
}

export const storageBin = process.env.LECTERN_STORAGE_BIN || path.join(repoRoot, 'bin', 'lectern-storage');

// Run one SQL statement against the suite's MariaDB as the lectern user;
// resolves with the rows (tab-separated columns split into arrays).
export async function sql(query) {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    execFile('mariadb', ['--no-defaults', '-h127.0.0.1', `-P${process.env.LECTERN_MYSQL_PORT || 3390}`,
      '-ulectern', '-plectern', '-N', '-B', 'lectern', '-e', query], { timeout: 30000, maxBuffer: 256 << 20 },
    (err, stdout, stderr) => (err ? reject(new Error(`sql: ${stderr || err.message}`))
      : resolve(stdout.split('\n').filter((l) => l.length).map((l) => l.split('\t')))));
  });
}

// Start a lectern-storage worker for `cluster` (its storage queue is
// `<cluster>.storage`, as startServer sets for servers); waits for /readyz
// (/healthz with ready: false, for a worker expected to refuse to consume).
// kill() sends SIGKILL; stop() SIGTERM and resolves with { code, signal }.
export async function startWorker({ cluster, sets = {}, timeout = 20000, ready = true } = {}) {
  const port = await freePort();
  const base = {
    'amqp.port': process.env.LECTERN_AMQP_PORT || 5690,
    'mysql.port': process.env.LECTERN_MYSQL_PORT || 3390,
    'storage.queue': `${cluster}.storage`,
    'http.port': port,
    'amqp.backoff_max_ms': 500,
    'mysql.backoff_max_ms': 500,
  };
  const argv = [];
  for (const [k, v] of Object.entries({ ...base, ...sets })) argv.push('--set', `${k}=${v}`);
  const h = await spawnReady(storageBin, argv, {
    what: `lectern-storage :${port}`, timeout, stopTimeout: 15000,
    ready: http200(port, ready ? '/readyz' : '/healthz'),
  });
  return { ...h, port };
}
