#!/usr/bin/env node
// tests/soak/driver.mjs — the traffic, the accounting and the sampling of
// make soak (scripts/soak starts the cluster and runs this).
//
// Traffic, over the servers' own ports (127.0.0.1 only), for --minutes:
//   - small rooms (--rooms, --room-members each, members spread over every
//     server) with a trickle of messages (--room-rate per room), sent by
//     their members;
//   - one fan-out room of --fanout-members listeners and a lecturer
//     publishing --fanout-rate messages a second;
//   - churn (--churn actions a second): a member disconnects and a new one
//     connects in its place; a member leaves a small room and joins
//     another; a member's socket is cut (the client reconnects and resumes
//     by itself, x-since); a member's app restarts (a new client joins its
//     rooms with `since`: the last id it saw);
//   - every few seconds a history read over HTTP of a range some member
//     received, compared with what it received;
//   - halfway, --restart-cmd restarts one server (SIGTERM, drain, start
//     again): its clients reconnect to the others and resume; once it is
//     back, they move home again (their sockets are cut, they resume).
// Every member is a LecternClient (client-js) whose WebSocket class picks
// the member's home server, or another one while home is down.
//
// Accounting. Every message's body is "<n>:<ms sent>:<padding>", n unique
// in the run. A span is one member's membership of one room, from its
// join to its leave (reconnects and resumes continue a span). Per span the
// driver keeps the first and last id received, the count and a sum of id
// hashes; at the end the room order is read from MySQL, and a span must
// hold exactly the messages between its first and last (no hole, checked
// by count and hash), from at least the first message sent GRACE_MS after
// it joined to at least the last one confirmed GRACE_MS before it left.
// What it lacks is lost. Below client-js (which drops a repeated id), a
// tap on each socket counts every MESSAGE whose id is not above the
// previous one of its room: duplicates the server sent. MySQL must hold
// every confirmed message once (by n), and paging each room's history
// over HTTP must give MySQL's list.
//
// Sampling (every --sample-s): RSS and open files of every server and
// worker (/proc), Redis used_memory (redis-cli), RabbitMQ's queue depths
// (rabbitmqctl), the servers' own queues (/metrics) and the p99 delivery
// latency of the window (live deliveries only: a message replayed after a
// reconnect measures the outage, not delivery). tests/soak/trend.mjs
// judges the series; the report goes to --out as JSON, and the exit
// status is 0 for PASS, 1 for FAIL.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import WebSocket from 'ws';
import { compareIds, FrameReader, LecternClient } from '../../client-js/src/index.js';
import { analyze, FLOORS, GROWTH_PCT } from './trend.mjs';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const USAGE = `usage: node tests/soak/driver.mjs --var DIR --port-base P [options]
  --minutes M         run length (30)
  --var DIR           the cluster's LECTERN_VAR_DIR (pid files, credentials)
  --port-base P       servers listen on P+1 .. P+servers (LECTERN_PORT)
  --servers N         (3)          --workers N      (2)
  --storage-port P    first worker's HTTP port (LECTERN_STORAGE_PORT)
  --redis-port P      Redis (LECTERN_REDIS_PORT)
  --restart N         the server restarted halfway (2)
  --restart-cmd CMD   shell command that restarts it: prints "stopped" once the
                      old process is gone, exits 0 once the new one is ready
  --out FILE          the JSON report
  --command S --commit S --server-opts S   recorded in the report
  --rooms N (60) --room-members N (5) --room-rate R msg/s per room (0.5)
  --room-clients N    members of the small rooms (120)
  --fanout-members N (250) --fanout-rate R msg/s (10)
  --churn R           churn actions per second (2)
  --history-s S       a history check every S seconds (5)
  --prefill N         messages sent into every room before the clock starts (200)
  --sample-s S        sampling interval (10)
  --warmup-pct P      share of the run left out as warm-up (20; at least 60 s)
  --drop-every N      for testing the accounting: forget every Nth delivery (0: off)`;

const { values: o } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    var: { type: 'string' },
    'port-base': { type: 'string' },
    servers: { type: 'string', default: '3' },
    workers: { type: 'string', default: '2' },
    'storage-port': { type: 'string' },
    'redis-port': { type: 'string' },
    restart: { type: 'string', default: '2' },
    'restart-cmd': { type: 'string' },
    out: { type: 'string' },
    command: { type: 'string', default: '' },
    commit: { type: 'string', default: '' },
    'server-opts': { type: 'string', default: '' },
    rooms: { type: 'string', default: '60' },
    'room-members': { type: 'string', default: '5' },
    'room-rate': { type: 'string', default: '0.5' },
    'room-clients': { type: 'string', default: '120' },
    'fanout-members': { type: 'string', default: '250' },
    'fanout-rate': { type: 'string', default: '10' },
    churn: { type: 'string', default: '2' },
    'history-s': { type: 'string', default: '5' },
    prefill: { type: 'string', default: '200' },
    'sample-s': { type: 'string', default: '10' },
    'warmup-pct': { type: 'string', default: '20' },
    'drop-every': { type: 'string', default: '0' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (o.help) { console.log(USAGE); process.exit(0); }
if (!o.var || !o['port-base'] || !o.out) { console.error(USAGE); process.exit(2); }

const num = (k) => {
  const v = Number(o[k]);
  if (!Number.isFinite(v) || v < 0) { console.error(`--${k}: not a number >= 0: ${o[k]}`); process.exit(2); }
  return v;
};
const DURATION_S = num('minutes') * 60;
const VAR = path.resolve(o.var);
const BASE = num('port-base');
const SERVERS = num('servers'), WORKERS = num('workers');
const STORAGE_PORT = o['storage-port'] ? num('storage-port') : BASE + 50;
const RESTART = num('restart');
const ROOMS = num('rooms'), ROOM_MEMBERS = num('room-members'), ROOM_RATE = num('room-rate');
const ROOM_CLIENTS = num('room-clients');
const FAN_MEMBERS = num('fanout-members'), FAN_RATE = num('fanout-rate');
const CHURN = num('churn'), HISTORY_S = num('history-s'), PREFILL = num('prefill');
const SAMPLE_S = num('sample-s');
const WARMUP_S = Math.max(60, (DURATION_S * num('warmup-pct')) / 100);
const DROP_EVERY = num('drop-every');
/** A span must hold what was sent this long after it joined, up to what
 * was confirmed this long before it left. */
const GRACE_MS = 3000;
/** Received messages a span keeps for history checks. */
const RING = 64;
/** Below api.idempotency_window_s, which scripts/soak sets. */
const SEND_RETRY_MS = 45000;
// Rooms of this run only (a cluster used before keeps its rooms' logs).
const TAG = `soak${Date.now().toString(36)}`;
const FANOUT = `${TAG}-fanout`;
const roomName = (i) => `${TAG}-room-${i}`;
const PAD = 'x'.repeat(80);

const say = (s) => console.error(`soak: ${s}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let t0 = 0;
const since0 = (ms = Date.now()) => Math.round((ms - t0) / 100) / 10;

// ------------------------------------------------------------------ state

const stats = {
  deliveries: 0, wire_messages: 0, wire_duplicates: 0, app_out_of_order: 0,
  sends: 0, confirmed: 0, unconfirmed: 0,
  connects: 0, connect_failures: 0, reconnect_churn: 0, room_switches: 0,
  network_drops: 0, app_resumes: 0, auto_reconnects: 0, rebalanced: 0,
  history_checks: 0, history_mismatches: 0, history_errors: 0,
  dropped_on_purpose: 0,
};
const errors = new Map();      // STOMP ERRORs and other failures -> count
const examples = [];           // a few details of what went wrong
const note = (kind, detail) => {
  errors.set(kind, (errors.get(kind) || 0) + 1);
  if (examples.length < 20) examples.push({ t: since0(), kind, ...detail });
};

const up = new Map();          // server index -> true while it takes clients
for (let i = 1; i <= SERVERS; i++) up.set(i, true);
const sends = new Map();       // n -> {room, tCall, tResolved, id, state}
const lastConfirmed = new Map(); // room -> greatest confirmed id
const lastCall = new Map();    // room -> time of the last send() into it
const spans = [];              // every span of the run
const roomMembers = new Map(); // room -> Set(member)
let members = [];
let seq = 0, memberSeq = 0, socketSerial = 0;
let stopping = false;

/** FNV-1a of an id: spans sum these to be compared with MySQL's order. */
function idHash(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

// ------------------------------------------------------------------ members

function pickServer(m) {
  if (up.get(m.home)) return m.home;
  const live = [...up].filter(([, ok]) => ok).map(([i]) => i);
  return live.length ? live[m.num % live.length] : m.home;
}

/** A WebSocket class for member m: connects to its home server (another
 * while home is down) and taps every MESSAGE for ids that go backwards. */
function socketClass(m) {
  return class extends WebSocket {
    constructor(_url, protocols) {
      const srv = pickServer(m);
      super(`ws://127.0.0.1:${BASE + srv}/ws`, protocols);
      m.srv = srv;
      this.serial = ++socketSerial;
      this.server = srv;
      this.opened = Date.now();
      const reader = new FrameReader();
      this.addEventListener('message', (ev) => tap(m, this, reader, ev.data));
    }
  };
}

function tap(m, ws, reader, data) {
  const c = m.client;
  if (!c || c.ws !== ws) return;
  let frames;
  try {
    frames = reader.push(typeof data === 'string' ? data : Buffer.from(data).toString());
  } catch {
    return;      // client-js drops the connection too
  }
  for (const f of frames) {
    if (f.command !== 'MESSAGE') continue;
    const sub = c.subs.get(f.headers.subscription);
    if (!sub || sub.kind !== 'topic') continue;
    const id = f.headers['message-id'];
    stats.wire_messages++;
    const last = m.wire.get(sub.room);
    if (last !== undefined && compareIds(id, last.id) <= 0) {
      stats.wire_duplicates++;
      // Where it came from: the same connection as the one before, or the
      // first messages after a resume (x-since) on a new one.
      note('duplicate on the wire', { member: m.id, room: sub.room, id, after: last.id,
        same_connection: last.serial === ws.serial, server: ws.server, previous_server: last.server,
        ms_since_connect: Date.now() - ws.opened, last_action: m.lastAction });
      continue;
    }
    m.wire.set(sub.room, { id, serial: ws.serial, server: ws.server });
  }
}

function newMember(kind, home) {
  const num = memberSeq++;
  return { id: `soak-${kind}-${num}`, num, kind, home, rooms: new Map(), client: null, srv: 0,
           pending: 0, busy: false, onlineSince: Infinity, wire: new Map(), WS: null };
}

function newSpan(m, room) {
  const sp = { room, member: m.id, start: Date.now(), end: null, first: undefined, last: undefined,
               count: 0, hash: 0, ring: [] };
  spans.push(sp);
  return sp;
}

/** Open a client for m and join `joins` ([{room, since, span}]); resolves
 * once joined, or with false when it could not connect. */
async function bringOnline(m, joins) {
  if (!m.WS) m.WS = socketClass(m);
  const c = new LecternClient('ws://soak.invalid/ws', {
    WebSocket: m.WS, login: m.id, name: m.id,
    reconnect: { base: 250, cap: 5000 }, sendRetryMs: SEND_RETRY_MS,
  });
  m.client = c;
  let wasOnline = false;
  c.on('state', (s) => {
    if (s !== 'online' || m.client !== c) return;
    m.onlineSince = Date.now();
    if (wasOnline) stats.auto_reconnects++;
    wasOnline = true;
  });
  c.on('error', (e) => note(`ERROR ${e.message}`, { member: m.id }));
  stats.connects++;
  let timer;
  const ok = await Promise.race([
    c.connect().then(() => true, () => false),
    new Promise((r) => { timer = setTimeout(() => r(false), 30000); }),
  ]);
  clearTimeout(timer);
  if (!ok || m.client !== c) {
    stats.connect_failures++;
    note('connect failed', { member: m.id, server: m.srv });
    if (m.client === c) c.disconnect();
    return false;
  }
  for (const j of joins) joinRoom(m, j.room, j.since, j.span);
  return true;
}

function joinRoom(m, room, since, span) {
  const c = m.client;
  const r = c.join(room, since ? { since } : {});
  const sp = span || newSpan(m, room);
  if (!span) m.wire.delete(room);
  else if (since) m.wire.set(room, { id: since, serial: 0, server: 0 });
  m.rooms.set(room, sp);
  if (!roomMembers.has(room)) roomMembers.set(room, new Set());
  roomMembers.get(room).add(m);
  r.on('message', (msg) => { if (m.client === c) received(m, sp, msg); });
}

function leaveRoom(m, room, now = Date.now()) {
  const sp = m.rooms.get(room);
  if (sp) sp.end = now;
  m.rooms.delete(room);
  roomMembers.get(room)?.delete(m);
  m.client?.leave(room);
}

let win = { lat: [] };
function received(m, sp, msg) {
  const now = Date.now();
  if (sp.end !== null) return;
  if (sp.last !== undefined && compareIds(msg.id, sp.last) <= 0) {
    stats.app_out_of_order++;
    note('out of order', { member: m.id, room: sp.room, id: msg.id, after: sp.last });
    return;
  }
  stats.deliveries++;
  // A deliberately broken accounting (--drop-every), to prove the checks
  // catch a loss: the message is forgotten as if it never came.
  if (DROP_EVERY && stats.deliveries % DROP_EVERY === 0) { stats.dropped_on_purpose++; return; }
  if (sp.first === undefined) sp.first = msg.id;
  sp.last = msg.id;
  sp.count++;
  sp.hash = (sp.hash + idHash(msg.id)) >>> 0;
  sp.ring.push({ id: msg.id, body: msg.body, at: now });
  if (sp.ring.length > RING) sp.ring.shift();
  const tCall = Number(msg.body.split(':')[1]);
  // Live deliveries only: a replay after a reconnect measures the outage.
  if (tCall >= m.onlineSince) win.lat.push(now - tCall);
}

function canSend(m) {
  const s = m.client?.state;
  return !m.busy && (s === 'online' || s === 'reconnecting');
}

function publish(m, room) {
  const n = ++seq;
  const tCall = Date.now();
  const rec = { room, tCall, state: 'pending' };
  sends.set(n, rec);
  lastCall.set(room, tCall);
  stats.sends++;
  m.pending++;
  return m.client.send(room, `${n}:${tCall}:${PAD}`).then((id) => {
    rec.id = id;
    rec.tResolved = Date.now();
    rec.state = 'ok';
    stats.confirmed++;
    const last = lastConfirmed.get(room);
    if (id && (last === undefined || compareIds(id, last) > 0)) lastConfirmed.set(room, id);
  }, (e) => {
    rec.state = 'failed';
    stats.unconfirmed++;
    note(`send not confirmed: ${e.message}`, { member: m.id, room, n });
  }).finally(() => { m.pending--; });
}

// ------------------------------------------------------------------ churn

const rnd = (n) => Math.floor(Math.random() * n);
const pick = (xs) => xs[rnd(xs.length)];
const idle = (m) => !m.busy && m.pending === 0 && m.client?.state === 'online';

/** A member goes for good and a new one takes its place (same home, rooms). */
async function reconnectChurn() {
  const cands = members.filter((x) => x.kind !== 'lecturer' && idle(x));
  if (!cands.length) return;
  const m = pick(cands);
  m.busy = true;
  const rooms = [...m.rooms.keys()];
  const now = Date.now();
  for (const r of rooms) leaveRoom(m, r, now);
  const c = m.client;
  m.client = null;
  c.disconnect();
  const n = newMember(m.kind, m.home);
  members[members.indexOf(m)] = n;
  stats.reconnect_churn++;
  n.busy = true;
  await bringOnline(n, rooms.map((room) => ({ room })));
  n.busy = false;
}

/** A small-room member leaves one room and joins another. */
function roomSwitch() {
  const cands = members.filter((x) => x.kind === 'room' && idle(x) && x.rooms.size);
  if (!cands.length) return;
  const m = pick(cands);
  const others = [];
  for (let i = 0; i < ROOMS; i++) if (!m.rooms.has(roomName(i))) others.push(roomName(i));
  if (!others.length) return;
  leaveRoom(m, pick([...m.rooms.keys()]));
  joinRoom(m, pick(others));
  stats.room_switches++;
}

/** The network drops: the client reconnects (maybe elsewhere) and resumes itself. */
function networkDrop(m) {
  if (!m) {
    const cands = members.filter((x) => !x.busy && x.client?.state === 'online');
    if (!cands.length) return;
    m = pick(cands);
  }
  m.lastAction = { what: 'network drop', t: since0(), server: m.srv };
  m.client?.ws?.terminate();
  stats.network_drops++;
}

/** The app restarts: a new client joins each room with the last id seen. */
async function appResume() {
  const cands = members.filter((x) => x.kind !== 'lecturer' && idle(x));
  if (!cands.length) return;
  const m = pick(cands);
  m.busy = true;
  const c = m.client;
  m.client = null;              // from here on the old client's messages are ignored
  c.disconnect();
  const joins = [];
  const now = Date.now();
  for (const [room, sp] of m.rooms) {
    if (sp.last !== undefined) joins.push({ room, since: sp.last, span: sp });
    else {
      // Nothing received yet: there is no place to resume from.
      sp.end = now;
      joins.push({ room });
    }
  }
  m.rooms.clear();
  m.lastAction = { what: 'app resume', t: since0(), server: m.srv };
  stats.app_resumes++;
  await bringOnline(m, joins);
  m.busy = false;
}

async function churnTick() {
  const r = Math.random();
  try {
    if (r < 0.3) await reconnectChurn();
    else if (r < 0.6) roomSwitch();
    else if (r < 0.8) networkDrop();
    else await appResume();
  } catch (e) {
    note('churn failed', { error: String(e) });
  }
}

// ------------------------------------------------------------------ history checks

function liveServerPort() {
  const live = [...up].filter(([, ok]) => ok).map(([i]) => i);
  return BASE + pick(live.length ? live : [1]);
}

async function historyPage(room, q) {
  const r = await fetch(`http://127.0.0.1:${liveServerPort()}/api/rooms/${room}/messages?${q}`,
    { signal: AbortSignal.timeout(10000) });
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  return r.json();
}

/** A range a member received, read over HTTP: the same ids and bodies. */
async function historyCheck() {
  const now = Date.now();
  const cands = spans.filter((sp) => sp.end === null && sp.ring.length >= 4);
  if (!cands.length) return;
  const sp = pick(cands);
  const ring = sp.ring.filter((e) => now - e.at > 2000);
  if (ring.length < 3) return;
  const a = ring[0], b = ring[ring.length - 1];
  const want = ring.slice(1, -1);
  stats.history_checks++;
  try {
    const page = await historyPage(sp.room, `after=${a.id}&before=${b.id}&limit=1000`);
    const got = page.messages.map((x) => `${x.id} ${x.body}`).join('\n');
    if (got !== want.map((x) => `${x.id} ${x.body}`).join('\n')) {
      stats.history_mismatches++;
      note('history differs from what a member received', {
        room: sp.room, member: sp.member, after: a.id, before: b.id,
        received: want.length, history: page.messages.length,
      });
    }
  } catch (e) {
    stats.history_errors++;
    note(`history read failed: ${e.message}`, { room: sp.room });
  }
}

// ------------------------------------------------------------------ restart

let restart = null;
async function restartServer() {
  if (!o['restart-cmd']) return;
  const n = RESTART;
  restart = { proc: `server-${n}`, server: n, begin: since0(), stopped: null, ready: null, ok: false };
  say(`restarting server ${n}`);
  up.set(n, false);
  const child = spawn('bash', ['-c', o['restart-cmd']], { stdio: ['ignore', 'pipe', 'inherit'] });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => { if (/stopped/.test(d) && restart.stopped === null) restart.stopped = since0(); });
  const code = await new Promise((r) => child.on('exit', (c) => r(c)));
  restart.ready = since0();
  if (code !== 0) {
    note('restart failed', { exit: code });
    return;
  }
  restart.ok = true;
  up.set(n, true);
  say(`server ${n} back after ${(restart.ready - restart.begin).toFixed(1)} s; its members move home`);
  // Home again: the members of that server reconnect to it (and resume).
  const away = members.filter((m) => m.home === n && m.srv !== n && m.client?.state === 'online');
  for (const m of away) {
    setTimeout(() => {
      if (stopping || m.busy || m.srv === n || m.client?.state !== 'online') return;
      stats.rebalanced++;
      networkDrop(m);
    }, Math.random() * 15000);
  }
}

// ------------------------------------------------------------------ sampling

function pidOf(name) {
  try { return Number(readFileSync(path.join(VAR, 'run', `${name}.pid`), 'utf8').trim()); } catch { return 0; }
}

function procStat(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    if (/^State:\s+Z/m.test(status)) return { pid, rss: null, fds: null };
    const rss = Number(/^VmRSS:\s+(\d+)/m.exec(status)[1]) * 1024;
    return { pid, rss, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return { pid, rss: null, fds: null };
  }
}

const creds = {};
try {
  for (const line of readFileSync(path.join(VAR, 'credentials'), 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) creds[m[1]] = m[2];
  }
} catch { /* no credentials: Redis without a password */ }

async function redisMemory() {
  if (!o['redis-port']) return null;
  try {
    const env = { ...process.env };
    if (creds.LECTERN_REDIS_PASSWORD) env.REDISCLI_AUTH = creds.LECTERN_REDIS_PASSWORD;
    const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', o['redis-port'], 'INFO', 'memory'],
      { env, timeout: 5000 });
    const m = /^used_memory:(\d+)/m.exec(stdout);
    return m ? { used_memory: Number(m[1]) } : null;
  } catch {
    return null;
  }
}

// RabbitMQ's CLI needs the broker's environment (scripts/services env).
let rabbitEnv = null;
try {
  const out = execFileSync('bash', ['-c', 'set -a; eval "$("$0" env)"; env -0', path.join(root, 'scripts', 'services')],
    { env: { ...process.env, LECTERN_VAR_DIR: VAR }, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  rabbitEnv = {};
  for (const kv of out.split('\0')) {
    const i = kv.indexOf('=');
    if (i > 0) rabbitEnv[kv.slice(0, i)] = kv.slice(i + 1);
  }
  rabbitEnv.HOME = rabbitEnv.LECTERN_RABBIT_HOME;
} catch { /* queue depths from RabbitMQ are left out */ }

async function rabbitQueues() {
  if (!rabbitEnv) return null;
  try {
    const { stdout } = await run('/usr/lib/rabbitmq/bin/rabbitmqctl',
      ['-q', 'list_queues', 'name', 'messages', '--no-table-headers'], { env: rabbitEnv, timeout: 8000 });
    const queues = {};
    let messages = 0;
    for (const line of stdout.split('\n')) {
      const [name, n] = line.trim().split(/\s+/);
      if (!name || !/^\d+$/.test(n || '')) continue;
      // A server's queue carries a random suffix per start: name it by server.
      const key = name.replace(/\.[0-9a-f]{6,}$/, '');
      queues[key] = (queues[key] || 0) + Number(n);
      messages += Number(n);
    }
    return { messages, queues };
  } catch {
    return null;
  }
}

const SERVER_METRICS = ['lectern_connections', 'lectern_bus_queued', 'lectern_bus_unconfirmed',
  'lectern_bus_inbound_bytes', 'lectern_pending_bytes', 'lectern_conn_memory_bytes'];
async function serverMetrics(i) {
  if (!up.get(i)) return null;
  try {
    const r = await fetch(`http://127.0.0.1:${BASE + i}/metrics`, { signal: AbortSignal.timeout(3000) });
    const text = await r.text();
    const v = {};
    for (const line of text.split('\n')) {
      const sp = line.indexOf(' ');
      const name = line.slice(0, sp);
      if (SERVER_METRICS.includes(name)) v[name.replace(/^lectern_/, '')] = Number(line.slice(sp + 1));
    }
    return {
      connections: v.connections,
      bus_messages: (v.bus_queued ?? 0) + (v.bus_unconfirmed ?? 0),
      held_bytes: (v.conn_memory_bytes ?? 0) + (v.bus_inbound_bytes ?? 0),
      pending_bytes: v.pending_bytes,
    };
  } catch {
    return null;
  }
}

function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const loopDelay = monitorEventLoopDelay({ resolution: 10 });
let cpuMark = process.cpuUsage(), cpuAt = Date.now();
const samples = [];
async function sample() {
  const at = Date.now();
  const lat = win.lat.sort((a, b) => a - b);
  win = { lat: [] };
  const procs = {};
  for (let i = 1; i <= SERVERS; i++) procs[`server-${i}`] = procStat(pidOf(`lectern-server-${i}`));
  for (let i = 1; i <= WORKERS; i++) procs[`worker-${i}`] = procStat(pidOf(`lectern-storage-${i}`));
  const servers = {};
  const [redis, rabbitmq, ...sm] = await Promise.all([redisMemory(), rabbitQueues(),
    ...[...Array(SERVERS)].map((_, i) => serverMetrics(i + 1))]);
  sm.forEach((v, i) => { if (v) servers[`server-${i + 1}`] = v; });
  const cpu = process.cpuUsage(cpuMark);
  const cpuPct = (100 * (cpu.user + cpu.system)) / 1000 / Math.max(1, Date.now() - cpuAt);
  cpuMark = process.cpuUsage();
  cpuAt = Date.now();
  samples.push({
    t: since0(at), procs, redis, rabbitmq, servers,
    latency: { count: lat.length, p50: pct(lat, 50), p99: pct(lat, 99), max: lat.length ? lat[lat.length - 1] : null },
    driver: { cpu_pct: Math.round(cpuPct), loop_p99_ms: Math.round(loopDelay.percentile(99) / 1e5) / 10,
              rss: process.memoryUsage().rss, connections: members.filter((m) => m.client?.state === 'online').length },
  });
  loopDelay.reset();
}

// ------------------------------------------------------------------ the end

async function mysql(sql) {
  const { stdout } = await run('mariadb', ['--socket', path.join(VAR, 'mariadb', 'mysqld.sock'), '-uroot', '-N', '-B',
    'lectern', '-e', sql], { maxBuffer: 1 << 30, timeout: 120000 });
  return stdout.split('\n').filter(Boolean).map((l) => l.split('\t'));
}

async function waitCaughtUp(deadlineMs) {
  for (;;) {
    const behind = spans.filter((sp) => {
      if (sp.end !== null) return false;
      const last = lastConfirmed.get(sp.room);
      if (last === undefined || (lastCall.get(sp.room) ?? 0) < sp.start + GRACE_MS) return false;
      return sp.last === undefined || compareIds(sp.last, last) < 0;
    });
    if (!behind.length || Date.now() > deadlineMs) return behind.length;
    await sleep(200);
  }
}

/** The accounting against MySQL and history; fills `acc`. */
async function account(acc, tEnd) {
  const confirmed = [...sends.values()].filter((r) => r.state === 'ok').length;
  // Storage catches up: the workers write what the servers sent.
  let rows = 0, stable = 0;
  const deadline = Date.now() + 120000;
  while (Date.now() < deadline) {
    const n = Number((await mysql(`SELECT COUNT(*) FROM messages WHERE room LIKE '${TAG}-%'`))[0][0]);
    stable = n === rows ? stable + 1 : 0;
    rows = n;
    if (rows >= confirmed && stable >= 3) break;
    await sleep(1000);
  }
  const table = await mysql("SELECT room, CONCAT(id_ms, '-', id_n), body FROM messages " +
    `WHERE room LIKE '${TAG}-%' ORDER BY room, id_ms, id_n`);
  const order = new Map();     // room -> {ids, n, idx: Map id -> i, pre: prefix hash sums}
  const byN = new Map();       // n -> stored copies
  let unknownRows = 0;
  for (const [room, id, body] of table) {
    if (!order.has(room)) order.set(room, { ids: [], ns: [], idx: new Map() });
    const r = order.get(room);
    const n = Number(body.split(':')[0]);
    r.idx.set(id, r.ids.length);
    r.ids.push(id);
    r.ns.push(n);
    if (!sends.has(n)) unknownRows++;
    byN.set(n, (byN.get(n) || 0) + 1);
  }
  for (const r of order.values()) {
    r.pre = [0];
    for (const id of r.ids) r.pre.push((r.pre[r.pre.length - 1] + idHash(id)) >>> 0);
  }
  let missing = 0, duplicates = 0, idMismatch = 0, unconfirmedStored = 0;
  for (const [n, rec] of sends) {
    const copies = byN.get(n) || 0;
    if (copies > 1) { duplicates += copies - 1; note('stored twice', { n, room: rec.room, copies }); }
    if (rec.state === 'ok') {
      const r = order.get(rec.room);
      if (!copies || !r?.idx.has(rec.id)) { missing++; note('confirmed but not in MySQL', { n, room: rec.room, id: rec.id }); }
      else if (r.ns[r.idx.get(rec.id)] !== n) { idMismatch++; note('RECEIPT id holds another message', { n, id: rec.id }); }
    } else if (copies) unconfirmedStored++;
  }
  acc.storage = { rows: table.length, confirmed, missing, stored_twice: duplicates, unknown_rows: unknownRows,
                  receipt_id_mismatch: idMismatch, unconfirmed_but_stored: unconfirmedStored };

  // Every span against the room order.
  let lost = 0, unknownIds = 0, badSpans = 0;
  for (const sp of spans) {
    const end = sp.end ?? tEnd;
    const r = order.get(sp.room) || { ids: [], ns: [], idx: new Map(), pre: [0] };
    const tCallOf = (i) => sends.get(r.ns[i])?.tCall ?? 0;
    const tResOf = (i) => sends.get(r.ns[i])?.tResolved ?? Infinity;
    const due = (i) => tCallOf(i) >= sp.start + GRACE_MS && tResOf(i) <= end - GRACE_MS;
    let spanLost = 0;
    if (sp.count === 0) {
      for (let i = 0; i < r.ids.length; i++) if (due(i)) spanLost++;
    } else {
      const i0 = r.idx.get(sp.first), i1 = r.idx.get(sp.last);
      if (i0 === undefined || i1 === undefined) {
        unknownIds++;
        note('received an id MySQL does not hold', { room: sp.room, member: sp.member, first: sp.first, last: sp.last });
        continue;
      }
      const holes = i1 - i0 + 1 - sp.count;
      const sum = (r.pre[i1 + 1] - r.pre[i0]) >>> 0;
      if (holes < 0 || (holes === 0 && sum !== sp.hash)) {
        badSpans++;
        note('received messages differ from the room order', { room: sp.room, member: sp.member });
      }
      spanLost += Math.max(0, holes);
      // Due before the first received one, or after the last.
      for (let i = 0; i < i0; i++) if (due(i)) spanLost++;
      for (let i = i1 + 1; i < r.ids.length; i++) if (due(i)) spanLost++;
    }
    if (spanLost) note('span missed messages', { room: sp.room, member: sp.member, lost: spanLost,
      start: since0(sp.start), end: since0(end), first: sp.first, last: sp.last });
    lost += spanLost;
  }
  acc.delivery = { spans: spans.length, deliveries: stats.deliveries, lost, duplicates_on_the_wire: stats.wire_duplicates,
                   out_of_order: stats.app_out_of_order, spans_not_matching: badSpans, unknown_ids: unknownIds,
                   dropped_on_purpose: stats.dropped_on_purpose };

  // Each room's whole history over HTTP is MySQL's list, once each.
  let walked = 0, walkMismatch = 0;
  for (const [room, r] of order) {
    const ids = [];
    let after = '0-0';
    try {
      for (let pages = 0; pages < 10000; pages++) {
        const page = await historyPage(room, `after=${after}&limit=1000`);
        for (const m of page.messages) ids.push(m.id);
        if (!page.more || !page.messages.length) break;
        after = page.after;
      }
    } catch (e) {
      walkMismatch++;
      note(`history walk failed: ${e.message}`, { room });
      continue;
    }
    walked += ids.length;
    if (ids.join(',') !== r.ids.join(',')) {
      walkMismatch++;
      note('history over HTTP differs from MySQL', { room, http: ids.length, mysql: r.ids.length });
    }
  }
  acc.history = { checks: stats.history_checks, mismatches: stats.history_mismatches, errors: stats.history_errors,
                  walked_rooms: order.size, walked_messages: walked, walk_mismatches: walkMismatch };
}

// ------------------------------------------------------------------ main

async function main() {
  say(`${DURATION_S / 60} min over ${SERVERS} servers (ports ${BASE + 1}..${BASE + SERVERS}), ` +
      `${ROOMS} rooms, ${ROOM_CLIENTS} room members, fan-out ${FAN_MEMBERS} at ${FAN_RATE}/s`);
  // Members: homes round-robin over the servers; room r takes consecutive
  // members, so every room has members on different servers.
  const lecturer = newMember('lecturer', Math.min(RESTART, SERVERS) || 1);
  const roomClients = [...Array(ROOM_CLIENTS)].map((_, i) => newMember('room', (i % SERVERS) + 1));
  const fans = [...Array(FAN_MEMBERS)].map((_, i) => newMember('fan', (i % SERVERS) + 1));
  members = [lecturer, ...roomClients, ...fans];
  const plan = new Map(members.map((m) => [m, []]));
  plan.get(lecturer).push(FANOUT);
  for (const f of fans) plan.get(f).push(FANOUT);
  if (ROOM_CLIENTS) {
    for (let r = 0; r < ROOMS; r++) {
      for (let j = 0; j < ROOM_MEMBERS; j++) plan.get(roomClients[(r * ROOM_MEMBERS + j) % ROOM_CLIENTS]).push(roomName(r));
    }
  }
  // Connect in batches (a reconnect storm is not the point here).
  for (let i = 0; i < members.length; i += 25) {
    await Promise.all(members.slice(i, i + 25).map((m) => bringOnline(m, plan.get(m).map((room) => ({ room })))));
  }
  say(`${members.filter((m) => m.client?.state === 'online').length} of ${members.length} connected`);

  // Fill every room's Redis log to its bound before the clock starts, so
  // that Redis's memory is in its steady state from the start.
  const fill = [[lecturer, FANOUT]];
  for (let r = 0; r < ROOMS; r++) {
    const m = [...(roomMembers.get(roomName(r)) || [])][0];
    if (m) fill.push([m, roomName(r)]);
  }
  await Promise.all(fill.map(async ([m, room]) => {
    for (let k = 0; k < PREFILL; k++) await publish(m, room);
  }));
  say(`prefilled ${fill.length} rooms with ${PREFILL} messages each`);

  t0 = Date.now();
  win = { lat: [] };
  loopDelay.enable();
  cpuMark = process.cpuUsage();
  cpuAt = Date.now();
  await sample();
  const timers = [];
  timers.push(setInterval(() => { sample().catch((e) => note('sample failed', { error: String(e) })); }, SAMPLE_S * 1000));
  if (FAN_RATE > 0) timers.push(setInterval(() => { if (canSend(lecturer)) publish(lecturer, FANOUT); }, 1000 / FAN_RATE));
  const TICK = 100;
  timers.push(setInterval(() => {
    for (let r = 0; r < ROOMS; r++) {
      if (Math.random() >= (ROOM_RATE * TICK) / 1000) continue;
      const room = roomName(r);
      const cands = [...(roomMembers.get(room) || [])].filter(canSend);
      if (cands.length) publish(pick(cands), room);
    }
  }, TICK));
  if (CHURN > 0) timers.push(setInterval(churnTick, 1000 / CHURN));
  if (HISTORY_S > 0) timers.push(setInterval(() => { historyCheck(); }, HISTORY_S * 1000));
  const restartAt = setTimeout(() => { restartServer().catch((e) => note('restart failed', { error: String(e) })); },
    (DURATION_S * 1000) / 2);

  const progress = setInterval(() => {
    const s = samples[samples.length - 1];
    say(`t=${Math.round(since0())} s: ${stats.deliveries} delivered, ${stats.confirmed}/${stats.sends} confirmed, ` +
        `p99 ${s?.latency.p99 ?? '-'} ms, ${stats.network_drops + stats.app_resumes} resumes, ${stats.reconnect_churn} reconnects`);
  }, 60000);

  await sleep(DURATION_S * 1000);
  stopping = true;
  for (const t of timers) clearInterval(t);
  clearInterval(progress);
  clearTimeout(restartAt);
  while (restart && !restart.ready) await sleep(200);
  say(`traffic stopped at t=${since0()} s; waiting for sends and deliveries to settle`);

  // Settle: every send confirmed or failed, every member caught up.
  const settleBy = Date.now() + SEND_RETRY_MS + 5000;
  while ([...sends.values()].some((r) => r.state === 'pending') && Date.now() < settleBy) await sleep(200);
  const behind = await waitCaughtUp(Date.now() + 30000);
  if (behind) note('members not caught up at the end', { spans: behind });
  const tEnd = Date.now();
  for (const m of members) {
    for (const r of [...m.rooms.keys()]) leaveRoom(m, r, tEnd);
    const c = m.client;
    m.client = null;
    c?.disconnect();
  }

  const acc = {};
  await account(acc, tEnd);
  acc.sends = { total: stats.sends, confirmed: stats.confirmed, not_confirmed: stats.unconfirmed,
                prefill: PREFILL * fill.length };
  acc.churn = { connects: stats.connects, connect_failures: stats.connect_failures, reconnects: stats.reconnect_churn,
                room_switches: stats.room_switches, network_drops: stats.network_drops, app_resumes: stats.app_resumes,
                auto_reconnects: stats.auto_reconnects, moved_home: stats.rebalanced };

  const trend = analyze({ samples, duration: DURATION_S, warmup: WARMUP_S,
    restart: restart?.ok ? { proc: restart.proc, begin: restart.begin, ready: restart.ready } : null });
  const reasons = [];
  const lost = acc.storage.missing + acc.delivery.lost + acc.delivery.unknown_ids;
  const dup = acc.storage.stored_twice + acc.delivery.duplicates_on_the_wire + acc.delivery.out_of_order;
  if (lost) reasons.push(`${lost} messages lost`);
  if (dup) reasons.push(`${dup} duplicates`);
  if (acc.delivery.spans_not_matching) reasons.push(`${acc.delivery.spans_not_matching} members got messages out of the room order`);
  if (acc.storage.unknown_rows || acc.storage.receipt_id_mismatch) reasons.push('MySQL holds messages nobody sent, or under other ids');
  if (stats.unconfirmed) reasons.push(`${stats.unconfirmed} sends not confirmed`);
  if (stats.history_mismatches || acc.history.walk_mismatches) reasons.push('history over HTTP differs from what was received or stored');
  if (stats.connect_failures) reasons.push(`${stats.connect_failures} connections failed`);
  if (o['restart-cmd'] && !restart?.ok) reasons.push('the restart failed');
  for (const s of trend.series) if (s.verdict === 'growth') reasons.push(`${s.name} grows ${s.growth_pct}% over the run`);
  const verdict = reasons.length ? 'FAIL' : 'PASS';

  const report = {
    kind: 'lectern-soak',
    command: o.command, commit: o.commit, generated: new Date().toISOString(),
    machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 1073741824)} GiB`,
    verdict, reasons,
    settings: {
      minutes: DURATION_S / 60, sample_s: SAMPLE_S, warmup_s: WARMUP_S, grace_ms: GRACE_MS,
      servers: SERVERS, workers: WORKERS, rooms: ROOMS, room_members: ROOM_MEMBERS, room_rate: ROOM_RATE,
      room_clients: ROOM_CLIENTS, fanout_members: FAN_MEMBERS, fanout_rate: FAN_RATE, churn_per_s: CHURN,
      history_check_s: HISTORY_S, prefill: PREFILL, server_opts: o['server-opts'],
      growth_pct: GROWTH_PCT, floors: FLOORS, drop_every: DROP_EVERY,
    },
    duration_s: DURATION_S,
    restart,
    accounting: acc,
    errors: Object.fromEntries(errors),
    examples,
    trend,
    samples,
  };
  writeFileSync(o.out, JSON.stringify(report, null, 1) + '\n');
  say(`accounting: ${acc.sends.confirmed}/${acc.sends.total} sends confirmed; ${acc.storage.rows} rows in MySQL ` +
      `(${acc.storage.missing} missing, ${acc.storage.stored_twice} twice); ${acc.delivery.deliveries} deliveries in ` +
      `${acc.delivery.spans} spans, ${acc.delivery.lost} lost, ${acc.delivery.duplicates_on_the_wire} duplicates on the wire; ` +
      `${acc.history.checks} history checks, ${acc.history.mismatches} mismatches; whole history of ${acc.history.walked_rooms} rooms ` +
      `read, ${acc.history.walk_mismatches} differ`);
  for (const s of trend.series) {
    say(`  ${s.verdict.padEnd(14)} ${s.name}${s.level !== undefined ? `: level ${Math.round(s.level)}, growth ${Math.round(s.growth)} (${s.growth_pct}%) over the run` : ''}`);
  }
  say(`${verdict}${reasons.length ? ': ' + reasons.join('; ') : ''}`);
  return verdict === 'PASS' ? 0 : 1;
}

process.on('unhandledRejection', (e) => note('unhandled rejection', { error: String(e) }));
main().then((code) => process.exit(code), (e) => { console.error(e); process.exit(1); });
