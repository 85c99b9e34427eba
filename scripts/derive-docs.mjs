#!/usr/bin/env node
// scripts/derive-docs.mjs — compute the capacity figures of docs/scaling.md,
// docs/operations.md and docs/performance.md, and what TLS costs in
// docs/security.md, from the benchmark's raw results, so that those pages
// and docs/benchmarks.md never disagree.
//
//   node scripts/derive-docs.mjs            print every block, by name
//   node scripts/derive-docs.mjs --write    rewrite the blocks in the pages
//   node scripts/derive-docs.mjs --check    exit 1 when a page is not what --write makes of it
//   options: --root DIR (the tree to read and write; default this repository)
//
// Inputs: docs/benchmarks.jsonl (one JSON object per run of `make bench`),
// docs/benchmarks.md (its Targets table, quoted as it is), and the knob
// defaults of docs/configuration.md (itself generated from the code by
// scripts/config-docs.mjs); for the soak, docs/soak.json (make soak's
// recorded run, rendered by scripts/soak-report.mjs: --check also fails
// when benchmarks.md's Soak section is not what it gives). scripts/bench
// runs --write after every full benchmark, and scripts/soak after a run it
// records, so one `make bench` or `make soak` refreshes every page.
//
// A page holds derived text between markers, on their own lines for a
// block or inline within a sentence:
//
//   <!-- derived:NAME -->
//   ...what BLOCKS[NAME] renders...
//   <!-- /derived -->
//
// --check fails when
//   - a block differs from what the results give (edited by hand, or the
//     results changed without --write), or a page lacks a block it should
//     have, or names one this script does not know;
//   - a knob quoted with a value, "`section.key` (VALUE)", is quoted with
//     a value other than its default;
//   - a figure that looks measured (a number with a unit of time, size or
//     rate) stands outside a derived block and is not listed in FIXED
//     below with the reason it is not a measurement (on every page but
//     those of FIGURES_UNCHECKED). That keeps a page from growing a
//     second, hand-typed set of numbers.
//
// The model (how a figure follows from the measurements) is in model():
// every planning figure is a measured cost with the headroom said next to
// it; the workload of the sizing table is WORKLOAD, an assumption, printed
// with the table.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pageSection, readSoak, soakSection, soakSentence } from './soak-report.mjs';

// ------------------------------------------------------------------ inputs

export function parseRuns(text) {
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

// Knob defaults from docs/configuration.md: Map 'section.key' -> [default
// per program] (storage.batch_max exists in both programs, with different
// defaults).
export function parseKnobs(text) {
  const knobs = new Map();
  let program = '';
  for (const line of text.split('\n')) {
    const h = line.match(/^## (\S+)/);
    if (h) program = h[1];
    const m = line.match(/^\| `([a-z0-9_]+\.[a-z0-9_]+)` \| (?:`([^`]*)`|\(empty\)) \|/);
    if (!m) continue;
    const list = knobs.get(m[1]) || [];
    list.push({ program, def: m[2] === undefined ? '' : m[2] });
    knobs.set(m[1], list);
  }
  return knobs;
}

// The Targets table of docs/benchmarks.md, as it stands.
export function parseTargets(text) {
  const m = text.match(/## Targets\n\n(\| Target[\s\S]*?)\n\n/);
  return m ? m[1] : null;
}

// ------------------------------------------------------------------ format

const bad = (x) => x === undefined || x === null || Number.isNaN(x) || !Number.isFinite(x);
const n0 = (x) => (bad(x) ? '–' : Math.round(x).toLocaleString('en-US'));
const f1 = (x) => (bad(x) ? '–' : x.toFixed(1));
const f2 = (x) => (bad(x) ? '–' : x.toFixed(2));
// A core count: two decimals below 1, one below 10, whole above.
const cores = (x) => (bad(x) ? '–' : x < 0.01 ? x.toFixed(3) : x < 1 ? x.toFixed(2) : x < 10 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US'));
// A planning figure: rounded down to two significant digits, so it never
// claims more than was measured.
function plan(x) {
  if (bad(x) || x <= 0) return undefined;
  const p = 10 ** Math.max(0, Math.floor(Math.log10(x)) - 1);
  return Math.floor(x / p) * p;
}
function bytes(x) {
  if (bad(x)) return '–';
  if (x >= 1e9) return `${(x / 1e9).toFixed(1)} GB`;
  if (x >= 1e6) return `${Math.round(x / 1e6).toLocaleString('en-US')} MB`;
  return `${Math.round(x / 1e3).toLocaleString('en-US')} KB`;
}
const students = (n) => (n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}M` : n0(n));
const ceil = (x) => (bad(x) ? undefined : Math.ceil(x - 1e-9));

// ------------------------------------------------------------------ model

// The workload the sizing table assumes (not a measurement: what a lecture
// service is taken to do). Every student holds one connection and is in
// one room; bursts are every room at BURST messages/s at once.
export const WORKLOAD = {
  students: [10000, 100000, 1000000],
  room: 50, // members of a room (a seminar; lectures of 1,000 send fewer SENDs for the same deliveries)
  rate: 1, // messages per second per room, on average
  burst: 5, // messages per second per room in a burst (the benchmark's rooms publish at this rate)
  serversPerMachine: 4, // server processes on one 8-core machine
  rabbitNodeCores: 4, // the largest RabbitMQ node before a deployment is split (When to shard)
  headroom: 2, // planning figures are the measured capacity divided by this
  rabbitNodes: 3, // a RabbitMQ cluster: the smallest for quorum queues
};

// The highest step that delivered everything, at any latency
// (bench-report.mjs's "highest step with no loss" uses it too).
export function completeStep(r) {
  if (!r || !r.steps) return null;
  let best = null;
  for (const s of r.steps)
    if (s.expected && s.received === s.expected && (!best || s.deliveries_per_s > best.deliveries_per_s)) best = s;
  return best;
}

// What TLS costs (scripts/bench's tls scenario: tls-connect-MODE and
// tls-fanout-MODE, MODE plain or tls, on servers 1 and 2): per mode the
// connect run's time and the servers' CPU and RSS per connection, and the
// fan-out's one step. null when the results hold no pair of runs (older
// results, a run of other scenarios).
export function tlsRuns(runs) {
  const find = (label) => runs.find((r) => r.system === 'lectern' && r.label === label);
  const arg = (r, name) => {
    const m = r && r.args && r.args.match(new RegExp(`--${name} (\\S+)`));
    return m ? Number(m[1]) : undefined;
  };
  const mode = (name) => {
    const c = find(`tls-connect-${name}`), f = find(`tls-fanout-${name}`);
    if (!c || !f || !f.steps || !f.steps.length) return null;
    const s = f.steps[0];
    return {
      conns: c.connections.ok, target: c.connections.target, failed: c.connections.failed, ramp: arg(c, 'ramp'),
      p50: c.connections.connect_ms.p50, p99: c.connections.connect_ms.p99,
      connUs: c.servers ? c.servers.connect_cpu_us_per_conn : undefined,
      rss: c.servers ? c.servers.rss_per_conn_bytes : undefined,
      room: f.connections.subscribers, rate: s.rate, seconds: s.seconds, per_s: s.deliveries_per_s,
      complete: s.expected ? s.received / s.expected : 0,
      fp50: s.latency_ms.p50, fp99: s.latency_ms.p99, us: s.cpu_us_per_delivery,
      session: c.tls || f.tls, run: c.run,
    };
  };
  const plain = mode('plain'), tls = mode('tls');
  return plain && tls ? { plain, tls } : null;
}

// The write-coalescing curve (scripts/bench's wdelay-D-R runs: the fan-out
// as one step at R msg/s with websocket.write_delay_ms D): the delays and
// rates measured, and cell(D, R) -> {p99, us, perWrite, complete}.
export function writeDelayRuns(runs) {
  const cells = new Map(), delays = new Set(), rates = new Set();
  let room, seconds;
  for (const r of runs) {
    const m = r.system === 'lectern' && r.label && r.label.match(/^wdelay-(\d+)-(\d+)$/);
    if (!m || !r.steps || !r.steps.length) continue;
    const d = Number(m[1]), rate = Number(m[2]), s = r.steps[0];
    delays.add(d);
    rates.add(rate);
    room = r.connections.subscribers;
    seconds = s.seconds;
    cells.set(`${d}/${rate}`, {
      p99: s.latency_ms.p99, us: s.cpu_us_per_delivery,
      perWrite: r.ws_messages_out ? r.server_deliveries / r.ws_messages_out : undefined,
      complete: s.expected ? s.received / s.expected : 0,
    });
  }
  const num = (a, b) => a - b;
  return { delays: [...delays].sort(num), rates: [...rates].sort(num), room, seconds, cell: (d, r) => cells.get(`${d}/${r}`) };
}

// One fast publisher (scripts/bench's fastpub-SETTING-RATE runs: one
// publisher into a small room at RATE msg/s, servers 1 and 2 restarted with
// the websocket.rx_buffer and rx_reads each record carries): the settings
// (in FASTPUB_ORDER, then any other) and rates measured, the body size as
// pages write it (body), and
// cell(SETTING, RATE) -> {sent, complete, p50, p99, behind, more, error}. null
// when the results hold none.
export const FASTPUB_ORDER = ['default', 'reads1', 'buf256'];
export function fastpubRuns(runs) {
  const cells = new Map(), knobs = new Map(), rates = new Set();
  let room, servers, size, seconds, run;
  for (const r of runs) {
    const m = r.system === 'lectern' && r.label && r.label.match(/^fastpub-([a-z0-9]+)-(\d+)$/);
    if (!m || !r.steps || !r.steps.length) continue;
    const name = m[1], rate = Number(m[2]), s = r.steps[0];
    knobs.set(name, { rx_buffer: r.rx_buffer, rx_reads: r.rx_reads });
    rates.add(rate);
    room = r.connections.subscribers;
    servers = r.urls ? r.urls.length : undefined;
    size = r.size;
    seconds = s.seconds;
    run = run || r.run;
    cells.set(`${name}/${rate}`, {
      sent: s.seconds > 0 ? s.sent / s.seconds : undefined, complete: s.expected ? s.received / s.expected : 0,
      p50: s.latency_ms.p50, p99: s.latency_ms.p99, behind: r.deliveries.publisher_behind, more: r.rx_more_reads,
      error: (r.errors && r.errors.first) || '',
    });
  }
  if (!cells.size) return null;
  const rank = (x) => (FASTPUB_ORDER.includes(x) ? FASTPUB_ORDER.indexOf(x) : FASTPUB_ORDER.length);
  const settings = [...knobs.keys()].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return {
    settings, rates: [...rates].sort((a, b) => a - b), room, servers, size, seconds, run,
    body: size % 1024 === 0 ? `${size / 1024} KiB` : `${n0(size)} bytes`,
    knobs: (name) => knobs.get(name), cell: (name, rate) => cells.get(`${name}/${rate}`),
  };
}

export function model(runs, knobs) {
  const find = (label, system = 'lectern') => runs.find((r) => r.label === label && r.system === system);
  const knob = (name, program = 'lectern-server') => {
    const k = (knobs.get(name) || []).find((x) => x.program === program);
    return k ? k.def : undefined;
  };
  const m = {};

  // Memory and connections.
  const idle = find('idle');
  m.rssPerConn = idle && idle.servers ? idle.servers.rss_per_conn_bytes : undefined;
  m.idleConns = idle ? idle.connections.ok : undefined;
  const fi = find('fanout-idle');
  if (fi && fi.connections) {
    // The idle connections actually held (a failed or dropped one is not),
    // per server, rounded down to a planning figure.
    const c = fi.connections;
    const held = Math.min(c.idle, c.ok - c.subscribers - c.publishers - (c.dropped || 0));
    m.connsPerServer = plan(held / fi.urls.length);
    m.connsServers = fi.urls.length;
    m.connsStep = completeStep(fi);
    m.connsRoom = fi.connections.subscribers;
  }
  const conns = find('connections');
  if (conns) m.machineConns = { ok: conns.connections.ok, target: conns.connections.target, procs: conns.urls.length, failed: conns.connections.failed };

  // Server CPU per delivery at lecture rates: the side-by-side scenarios
  // (rooms of 20-50 at 5-10 messages/s, where no two messages to a
  // connection share a write); the most expensive one is the one planned
  // with.
  m.lecture = [];
  for (const label of ['medium', 'rooms', 'large']) {
    const r = find(label);
    if (!r || !r.servers || !r.steps || r.steps.length !== 1) continue;
    const s = r.steps[0];
    m.lecture.push({ label, room: r.connections.subscribers / r.rooms, rate: s.rate, us: r.servers.cpu_us_per_delivery, complete: r.deliveries.ratio });
  }
  const worst = m.lecture.filter((x) => x.complete === 1).sort((a, b) => b.us - a.us)[0];
  m.lectureUs = worst ? worst.us : undefined;
  m.lectureWorst = worst;
  // One room of 1,000 at its highest loss-free step: writes coalesce.
  const fo = find('fanout');
  const fs = completeStep(fo);
  if (fs) m.fanout = { us: fs.cpu_us_per_delivery, per_s: fs.deliveries_per_s, rate: fs.rate, room: fo.connections.subscribers, servers: fo.urls.length, p99: fs.latency_ms.p99, cores: fs.cpu_s / fs.seconds };

  // The shared parts, from the costs runs (the rooms scenario sampling
  // Redis, then RabbitMQ). The cluster had conns.urls.length servers on the
  // fanout exchange, so a SEND was that many room copies plus one storage
  // copy.
  const cr = find('costs-redis'), cq = find('costs-rabbitmq');
  if (cr && cr.servers && cr.deliveries.sent) {
    m.redisUs = (cr.servers.cpu_s * 1e6) / cr.deliveries.sent;
    m.costSends = cr.deliveries.sent;
    const grew = (cr.servers.rss_after_kib - cr.servers.rss_connected_kib) * 1024;
    if (grew > 0) m.redisEntryBytes = grew / cr.deliveries.sent;
    m.bodyBytes = cr.size;
  }
  m.benchServers = conns ? conns.urls.length : undefined;
  if (cq && cq.servers && cq.deliveries.sent && m.benchServers) {
    m.rabbitUs = (cq.servers.cpu_s * 1e6) / cq.deliveries.sent;
    m.copiesPerSend = m.benchServers + 1;
    m.copyUs = m.rabbitUs / m.copiesPerSend;
  }

  // Storage: two workers draining a backlog; the queue's intake.
  const st = runs.find((r) => r.label === 'storage'), stq = runs.find((r) => r.label === 'storage-quorum');
  if (st && st.stored >= st.messages) {
    m.storageRows = st.stored / st.drain_s;
    m.storageWorkers = st.workers;
    m.workerRows = m.storageRows / st.workers;
    m.storageMessages = st.messages;
    m.intakeClassic = st.messages / st.published_s;
  }
  if (stq && stq.stored >= stq.messages) {
    m.intakeQuorum = stq.messages / stq.published_s;
    m.storageRowsQuorum = stq.stored / stq.drain_s;
  }

  // The headline step (target-1m): one step, so its first is the one.
  const tr = find('target-1m');
  if (tr && tr.steps && tr.steps.length) {
    const s0 = tr.steps[0];
    m.target = { per_s: s0.deliveries_per_s, cores: s0.cpu_s / s0.seconds, us: s0.cpu_us_per_delivery, p99: s0.latency_ms.p99,
                 servers: tr.urls.length, idle: tr.connections.idle / tr.urls.length };
    // The generator's own CPU over the same window (publishing and drain),
    // when the run recorded it.
    if (tr.generator && s0.seconds > 0)
      m.target.genCores = tr.generator.cpu_s / s0.seconds;
  }

  // The write-coalescing curve and what TLS costs (not needed for the
  // rest: their blocks say when they are missing).
  m.writeDelay = writeDelayRuns(runs);
  m.writeDelayDefault = Number(knob('websocket.write_delay_ms'));
  m.tls = tlsRuns(runs);
  m.fastpub = fastpubRuns(runs);

  // Knobs the model uses.
  m.historyMax = Number(knob('registry.history_max'));

  // What the model cannot do without (a --quick run lacks some of it).
  const need = {
    'idle (memory)': m.rssPerConn, 'fanout-idle (connections per server)': m.connsPerServer,
    'medium/rooms/large (CPU per delivery)': m.lectureUs, 'fanout': m.fanout, 'costs-redis': m.redisUs,
    'costs-redis RSS growth': m.redisEntryBytes, 'costs-rabbitmq with connections (servers)': m.rabbitUs,
    'storage': m.workerRows, 'storage-quorum': m.intakeQuorum, 'registry.history_max': m.historyMax,
  };
  m.missing = Object.entries(need).filter(([, v]) => v === undefined || (typeof v === 'number' && bad(v))).map(([k]) => k);

  // Planning figures.
  const H = WORKLOAD.headroom;
  m.planConns = m.connsPerServer;
  m.serverDeliveries = plan(1e6 / m.lectureUs); // one core's worth, at full CPU
  m.planRedis = plan(1e6 / m.redisUs / H);
  m.planCopiesPerCore = plan(1e6 / m.copyUs / H);
  m.planWorker = plan(m.workerRows / H);

  // The sizing table.
  m.sizes = WORKLOAD.students.map((n) => sizeFor(n, m));
  return m;
}

function sizeFor(n, m) {
  const w = WORKLOAD;
  const z = { n };
  z.rooms = n / w.room;
  z.sends = z.rooms * w.rate;
  z.sendsBurst = z.rooms * w.burst;
  z.deliveries = n * w.rate;
  z.deliveriesBurst = n * w.burst;
  z.byConns = ceil(n / m.planConns);
  z.byCpu = ceil(z.deliveriesBurst / m.serverDeliveries);
  z.base = Math.max(z.byConns || 0, z.byCpu || 0);
  z.spares = Math.max(1, ceil(z.base / 10));
  z.servers = Math.max(3, z.base + z.spares);
  // On 8-core machines the same rule, counted in machines.
  z.machinesBase = ceil(z.base / w.serversPerMachine);
  z.machines = Math.max(3, z.machinesBase + Math.max(1, ceil(z.machinesBase / 10)));
  // Each server's share with one server (a host) lost: the spares exist
  // for that.
  z.serverRss = Math.min(n / (z.servers - z.spares), m.planConns) * m.rssPerConn;
  // The bus: with least-connections placement and the fanout exchange every
  // SEND reaches every server's queue; placed by room (hash on the room) a
  // room's members share a server and only the storage copy travels.
  z.fanoutCopies = z.sends * (z.servers + 1);
  z.fanoutCopiesBurst = z.sendsBurst * (z.servers + 1);
  z.fanoutCores = (z.fanoutCopies * m.copyUs) / 1e6;
  z.fanoutCoresBurst = (z.fanoutCopiesBurst * m.copyUs) / 1e6;
  z.hashCores = (z.sends * m.copyUs) / 1e6;
  z.hashCoresBurst = (z.sendsBurst * m.copyUs) / 1e6;
  // Fanout is fine while a burst fits in one core of each node, with the
  // headroom; beyond that rooms are placed.
  z.fanoutOk = z.fanoutCoresBurst * w.headroom <= w.rabbitNodes;
  const busBurst = z.fanoutOk ? z.fanoutCoresBurst : z.hashCoresBurst;
  z.rabbitCoresPerNode = Math.max(2, ceil((busBurst * w.headroom) / w.rabbitNodes));
  z.redisCores = (z.sends * m.redisUs) / 1e6;
  z.redisCoresBurst = (z.sendsBurst * m.redisUs) / 1e6;
  z.redisMemory = z.rooms * m.historyMax * m.redisEntryBytes;
  z.workers = Math.max(2, ceil(z.sends / m.planWorker));
  z.workersBurstOk = z.sendsBurst <= z.workers * m.workerRows;
  z.rowsPerHour = z.sends * 3600;
  return z;
}

// ------------------------------------------------------------------ blocks

const may = (x, s) => (bad(x) ? 'not measured' : s);
const part = (h) => (h === 2 ? 'half' : `1/${h}`);

// Each block renders from the model; a block's text is on its own lines
// unless INLINE lists it.
export const BLOCKS = {
  // scaling.md: what the units cost.
  'unit-costs': (m) => {
    const rows = ['| unit | measured | benchmarks.md section |', '| --- | --- | --- |'];
    rows.push(`| server RSS per idle subscribed connection | ${may(m.rssPerConn, `**${n0(m.rssPerConn)} bytes** (${n0(m.idleConns)} connections on one server)`)} | Memory per idle subscribed connection |`);
    rows.push(`| connections held per server process while it delivers | ${may(m.connsPerServer, `**${n0(m.connsPerServer)}** (${m.connsServers} servers held ${n0(m.connsPerServer * m.connsServers)} idle connections while delivering ${n0(m.connsStep && m.connsStep.deliveries_per_s)}/s to a room of ${n0(m.connsRoom)})`)}${m.machineConns ? `; ${n0(m.machineConns.ok)} of ${n0(m.machineConns.target)} over ${m.machineConns.procs} server processes on one machine` : ''} | Fan-out; 50,000-connection run |`);
    rows.push(`| server CPU per delivery at lecture rates (one socket write per delivery) | ${may(m.lectureUs, `**${f2(m.lectureUs)} µs** (${m.lecture.map((x) => `${x.label}: rooms of ${n0(x.room)} at ${n0(x.rate)} msg/s, ${f2(x.us)}`).join('; ')})`)} | side by side |`);
    rows.push(`| server CPU per delivery, one room of ${n0(m.fanout && m.fanout.room)} (messages to one subscriber share a write) | ${may(m.fanout && m.fanout.us, `**${f2(m.fanout && m.fanout.us)} µs** at ${n0(m.fanout && m.fanout.per_s)} deliveries/s`)} | Fan-out |`);
    rows.push(`| Redis CPU per SEND (the publish script: sequence number, room log, which servers have members) | ${may(m.redisUs, `**${f1(m.redisUs)} µs**`)} | What a message costs the shared parts |`);
    rows.push(`| Redis memory per room-log entry (${n0(m.bodyBytes)}-byte body) | ${may(m.redisEntryBytes, `**${n0(m.redisEntryBytes)} bytes**: Redis's RSS growth over the ${n0(m.costSends)} SENDs of its costs run (an upper bound: it counts whatever else the run added)`)} | (docs/benchmarks.jsonl, costs-redis) |`);
    rows.push(`| RabbitMQ CPU per SEND, fanout to ${n0(m.benchServers)} server queues + 1 storage copy | ${may(m.rabbitUs, `**${f1(m.rabbitUs)} µs**, so **${f1(m.copyUs)} µs per copy** (the fixed part counted in every copy: pessimistic)`)} | What a message costs the shared parts |`);
    rows.push(`| storage worker, rows into MariaDB | ${may(m.workerRows, `**${n0(m.workerRows)} rows/s per worker** (${n0(m.storageRows)} rows/s with ${m.storageWorkers}, draining ${n0(m.storageMessages)} messages)`)} | Storage |`);
    rows.push(`| storage queue intake, persistent, confirmed, batches of 100 | ${may(m.intakeClassic, `${n0(m.intakeClassic)} copies/s classic, ${n0(m.intakeQuorum)} quorum (one node)`)} | Storage |`);
    return rows.join('\n');
  },

  // scaling.md and operations.md: the planning figures.
  planning: (m) => {
    const H = WORKLOAD.headroom;
    return [
      `- **Servers**: at most **${n0(m.planConns)} connections** per server process (as many as the benchmark held while delivering; memory is not what limits them: ${n0(m.planConns)} × ${n0(m.rssPerConn)} bytes is ${bytes(m.planConns * m.rssPerConn)} of RSS, plus the kernel's socket buffers) and **${n0(m.serverDeliveries)} deliveries/s** at lecture rates (one core at ${f2(m.lectureUs)} µs per delivery), whichever comes first. The sizing table fits a burst in every room at once into that, so the average load keeps ${WORKLOAD.burst / WORKLOAD.rate}× headroom.`,
      `- **Redis** is single-threaded: plan **${n0(m.planRedis)} SENDs/s** per instance (${part(H)} a core at ${f1(m.redisUs)} µs), with presence changes (a join or leave is one script of the same order) counted as SENDs.`,
      `- **RabbitMQ**: plan **${n0(m.planCopiesPerCore)} copies/s per core** (${part(H)} a core at ${f1(m.copyUs)} µs per copy). A SEND is one copy per server queue it reaches (every server's with \`bus.mode = fanout\`) plus one storage copy.`,
      `- **Storage**: plan **${n0(m.planWorker)} rows/s per worker** (${part(H)} the ${n0(m.workerRows)} measured; MySQL's disk decides on real hardware), at least two workers.`,
    ].join('\n');
  },

  // scaling.md: the workload the table assumes.
  workload: () => {
    const w = WORKLOAD;
    return `Workload assumed: every student holds one connection and sits in a room of **${n0(w.room)}**; every room receives **${w.rate} message per second** on average (questions, answers, instructor posts) and bursts of **${w.burst}/s**, sized as if every room burst at once. Deliveries per second = students × messages per second per room. "Servers" are server processes with two cores each (an 8-core machine runs ${w.serversPerMachine}); spares: one in ten, at least one, and at least three servers in all (one per host).`;
  },

  // scaling.md: the table.
  sizing: (m) => {
    const S = m.sizes;
    const row = (name, f) => `| ${name} | ${S.map(f).join(' | ')} |`;
    const out = [
      `| | ${S.map((z) => `${students(z.n)} students`).join(' | ')} |`,
      `| --- | ${S.map(() => '---').join(' | ')} |`,
      row(`rooms of ${n0(WORKLOAD.room)}`, (z) => n0(z.rooms)),
      row('SENDs/s, average (burst)', (z) => `${n0(z.sends)} (${n0(z.sendsBurst)})`),
      row('deliveries/s, average (burst)', (z) => `${n0(z.deliveries)} (${n0(z.deliveriesBurst)})`),
      row('servers needed for the connections / for the burst deliveries', (z) => `${n0(z.byConns)} / ${n0(z.byCpu)}`),
      row('**Lectern servers** (with spares)', (z) => `**${n0(z.servers)}**, or ${n0(z.machines)} 8-core machine${z.machines === 1 ? '' : 's'}`),
      row('server RSS for its connections, with one server lost', (z) => bytes(z.serverRss)),
      row('room placement', (z) => (z.fanoutOk ? 'least connections (fanout)' : '**hash on the room** (fanout would not fit, below)')),
      row('bus copies/s with least connections and fanout, average (burst)', (z) => `${n0(z.fanoutCopies)} (${n0(z.fanoutCopiesBurst)}): ${cores(z.fanoutCores)} (${cores(z.fanoutCoresBurst)}) RabbitMQ cores`),
      row('bus copies/s with the room hashed (storage copies only)', (z) => `${n0(z.sends)} (${n0(z.sendsBurst)}): ${cores(z.hashCores)} (${cores(z.hashCoresBurst)}) cores`),
      row(`**RabbitMQ**`, (z) => `${WORKLOAD.rabbitNodes} nodes × ${z.rabbitCoresPerNode} cores, quorum storage queue`),
      row('**Redis** CPU, average (burst)', (z) => `${cores(z.redisCores)} (${cores(z.redisCoresBurst)}) core${z.redisCoresBurst > 1 ? ': bursts queue, or shard (below)' : ''}`),
      row(`Redis memory for room logs (\`registry.history_max\` ${n0(m.historyMax)})`, (z) => bytes(z.redisMemory)),
      row('**storage workers**', (z) => `${n0(z.workers)}${z.workersBurstOk ? '' : ' (bursts queue in the storage queue)'}`),
      row('**MySQL** rows/s, average (burst)', (z) => `${n0(z.sends)} (${n0(z.sendsBurst)})`),
      row('MySQL rows per lecture hour', (z) => n0(z.rowsPerHour)),
    ];
    return out.join('\n');
  },

  // scaling.md: how the rows follow from the costs.
  'sizing-notes': (m) => {
    const H = WORKLOAD.headroom;
    return m.sizes.map((z) => {
      const parts = [];
      parts.push(`**${students(z.n)}**: ${n0(z.n)} / ${n0(m.planConns)} → ${n0(z.byConns)} server${z.byConns === 1 ? '' : 's'} by connections; bursts of ${n0(z.deliveriesBurst)} deliveries/s at ${n0(m.serverDeliveries)} per server need ${n0(z.byCpu)}, so ${z.byConns >= z.byCpu ? 'connections decide' : 'delivery CPU decides'}; with spares ${n0(z.servers)}.`);
      if (z.fanoutOk)
        parts.push(`Fanout to ${n0(z.servers)} servers costs RabbitMQ ${n0(z.sends)} SENDs/s × ${n0(z.servers + 1)} copies × ${f1(m.copyUs)} µs = ${cores(z.fanoutCores)} core on average, ${cores(z.fanoutCoresBurst)} in bursts: least-connections placement is fine.`);
      else
        parts.push(`With least connections a room's members spread over many servers, and fanout copies every SEND to all ${n0(z.servers)} queues: ${n0(z.fanoutCopies)} copies/s, ${cores(z.fanoutCores)} RabbitMQ cores on average and ${cores(z.fanoutCoresBurst)} in bursts, more than ${WORKLOAD.rabbitNodes} nodes carry with ${H}× headroom. Hashing on the room makes almost every delivery local, and the bus carries the storage copies only (${cores(z.hashCores)} core, ${cores(z.hashCoresBurst)} in bursts).`);
      if (z.redisCoresBurst > 1)
        parts.push(`Redis: ${cores(z.redisCores)} core on average, but a burst in every room is ${cores(z.redisCoresBurst)} cores, beyond one single-threaded Redis: size for the average and let bursts queue (their latency rises by the backlog), or shard.`);
      else
        parts.push(`Redis: ${cores(z.redisCores)} core on average, ${cores(z.redisCoresBurst)} in bursts.`);
      parts.push(`Storage: ${n0(z.sends)} rows/s on average against ${n0(m.planWorker)} planned per worker: ${n0(z.workers)} workers${z.workersBurstOk ? ', which take bursts too' : '; bursts wait in the storage queue'}.`);
      return `- ${parts.join(' ')}`;
    }).join('\n');
  },

  // scaling.md: when one deployment is not enough.
  'shard-when': (m) => {
    const w = WORKLOAD;
    return [
      `- sustained SENDs exceed **${n0(m.planRedis)}/s** (Redis's planning figure), or bursts must not queue;`,
      `- the bus must carry more than **${n0(m.planCopiesPerCore * w.rabbitNodes * w.rabbitNodeCores)} copies/s** after room placement (${w.rabbitNodes} nodes of ${w.rabbitNodeCores} cores at ${n0(m.planCopiesPerCore)} copies/s per core), for example a fanout deployment with many servers and busy rooms;`,
      `- the storage queue's leader, one node, needs more than about a core: a quorum queue is ordered by one Raft leader (${n0(m.planCopiesPerCore)} storage copies/s per core, planned).`,
    ].join('\n');
  },

  // operations.md: the sizing table's answer in one paragraph.
  'sizing-summary': (m) => m.sizes.map((z) =>
    `- **${students(z.n)} students** (rooms of ${n0(WORKLOAD.room)}, ${n0(z.sends)} SENDs/s on average): **${n0(z.servers)} servers** (${n0(z.machines)} 8-core machine${z.machines === 1 ? '' : 's'}), ${z.fanoutOk ? 'least-connections balancing' : '**hash on the room** at the balancer'}, RabbitMQ ${WORKLOAD.rabbitNodes} nodes × ${z.rabbitCoresPerNode} cores, one Redis (${cores(z.redisCores)} core on average), **${n0(z.workers)} storage workers**, MySQL ${n0(z.sends)} rows/s.`).join('\n'),

  // Inline figures.
  'conns-per-server': (m) => `${n0(m.planConns)} connections per server process`,
  'worker-rows': (m) => `${n0(m.workerRows)} rows/s per worker measured`,
  'write-cost': (m) => `${f1((m.fanout ? m.fanout.room : 1000) * m.lectureUs / 1000)} ms of CPU at ${f2(m.lectureUs)} µs per delivery`,

  // performance.md.
  coalescing: (m) => `What coalescing saves shows in the server's CPU per delivery: ${f2(m.fanout && m.fanout.us)} µs in the fan-out (one room of ${n0(m.fanout && m.fanout.room)} at ${n0(m.fanout && m.fanout.rate)} messages/s, where a write carries several messages to one subscriber) against ${f2(m.lectureUs)} µs in the \`${m.lectureWorst ? m.lectureWorst.label : '–'}\` scenario (rooms of ${n0(m.lectureWorst && m.lectureWorst.room)} at ${n0(m.lectureWorst && m.lectureWorst.rate)} messages/s: one write per delivery).`,
  'shared-costs': (m) => `Per SEND in the benchmark's rooms scenario RabbitMQ spent ${f1(m.rabbitUs)} µs of CPU (${n0(m.copiesPerSend)} copies: one per server queue, one storage copy) and Redis ${f1(m.redisUs)} µs.`,
  'memory-total': (m) => `Measured, all of it together: **${n0(m.rssPerConn)} bytes** of server RSS per idle subscribed connection (${n0(m.idleConns)} connections on a fresh server, each a distinct user).`,
  // make soak's recorded run (docs/soak.json), not make bench's.
  'soak-result': (m, ctx) => soakSentence(ctx.soak),
  'write-delay': (m) => {
    // The default delay (docs/configuration.md) against none, or the
    // longest measured when the default was not.
    const w = m.writeDelay;
    const def = m.writeDelayDefault;
    const top = def > 0 && w.delays.includes(def) ? def : w.delays[w.delays.length - 1];
    if (!w.delays.includes(0) || !top) return 'docs/benchmarks.jsonl holds no curve for it (the wdelay runs of the full `make bench`).';
    const at = (r) => {
      const a = w.cell(0, r), b = w.cell(top, r);
      if (!a || !b) return null;
      return `${n0(r)} messages/s, from ${f2(a.us)} to ${f2(b.us)} µs (deliveries per write ${f2(a.perWrite)} → ${f2(b.perWrite)}; p99 ${f1(a.p99)} → ${f1(b.p99)} ms)`;
    };
    const parts = w.rates.map(at).filter(Boolean);
    const which = top === def ? `the default delay of ${top} ms` : `a delay of ${top} ms`;
    return `Measured in the fan-out (one room of ${n0(w.room)}), ${which} took the servers' CPU per delivery at ${parts.join('; at ')}.`;
  },
  // The three settings of scripts/bench's fastpub runs at the highest rate
  // all three ran.
  fastpub: (m) => {
    const f = m.fastpub;
    const none = 'docs/benchmarks.jsonl holds no fast-publisher runs (the fastpub runs of `make bench`, or `scripts/bench fastpub`).';
    if (!f) return none;
    const rate = f.rates.filter((r) => FASTPUB_ORDER.every((n) => f.cell(n, r))).pop();
    if (rate === undefined) return none;
    const [d, o, b] = FASTPUB_ORDER.map((n) => f.cell(n, rate));
    const pct = (c) => `${(c.complete * 100).toFixed(c.complete === 1 ? 0 : 2)}%`;
    // A publisher the server did not keep up with sent less than asked.
    const sent = (c) => (c.sent < rate * 0.99 ? `, the publisher held to ${n0(c.sent)} messages/s` : '');
    const kd = f.knobs('default'), kb = f.knobs('buf256');
    const where = (n) => (n === 1 ? 'on one server' : n ? `over ${n} servers` : 'over the servers');
    return `At ${n0(rate)} messages/s of ${f.body} from one connection (into a room of ${n0(f.room)} ${where(f.servers)}), the defaults delivered ${pct(d)} at p99 ${f1(d.p99)} ms${sent(d)}; ` +
      `one read per iteration with the same ${n0(kd.rx_buffer)}-byte buffer, p99 ${f1(o.p99)} ms (${pct(o)} delivered${sent(o)}); ` +
      `a ${n0(kb.rx_buffer)}-byte buffer read once, p99 ${f1(b.p99)} ms (${pct(b)} delivered${sent(b)}).`;
  },
  'fanout-cores': (m) => `At the fan-out's highest loss-free step (${n0(m.fanout && m.fanout.per_s)} deliveries/s) the ${n0(m.fanout && m.fanout.servers)} servers together used ${cores(m.fanout && m.fanout.cores)} cores`,
  'target-cores': (m) => m.target
    ? `At the headline step (${n0(m.target.per_s)} deliveries/s beside ${n0(m.target.idle)} idle connections per server, p99 ${f1(m.target.p99)} ms) the ${n0(m.target.servers)} servers together used ${cores(m.target.cores)} cores, ${f2(m.target.us)} µs per delivery${m.target.genCores === undefined ? '' : `, and the load generator ${cores(m.target.genCores)} cores`}`
    : 'docs/benchmarks.jsonl holds no headline step (the target-1m run of the full `make bench`)',
  targets: (m, ctx) => ctx.targets || '(docs/benchmarks.md has no Targets table)',

  // security.md: the same servers plain and serving TLS themselves.
  'tls-cost': (m) => {
    const t = m.tls;
    if (!t) return 'docs/benchmarks.jsonl holds no TLS runs (the tls scenario of `make bench`, or `scripts/bench tls`).';
    const { plain: a, tls: b } = t;
    const x = (p, q) => (bad(p) || bad(q) || p <= 0 ? '–' : `${(q / p).toFixed(1)}×`);
    const full = (r) => (r.complete < 1 ? ` (${(r.complete * 100).toFixed(2)}% delivered)` : '');
    return [
      '| measured on two servers | plain | TLS | TLS / plain |',
      '| --- | --- | --- | --- |',
      `| connect p50 (${n0(b.conns)} connections at ${n0(b.ramp)}/s: TCP, handshake, upgrade, CONNECTED, SUBSCRIBE receipt) | ${f1(a.p50)} ms | ${f1(b.p50)} ms | ${x(a.p50, b.p50)} |`,
      `| connect p99 | ${f1(a.p99)} ms | ${f1(b.p99)} ms | ${x(a.p99, b.p99)} |`,
      `| servers' CPU per connection made | ${n0(a.connUs)} µs | ${n0(b.connUs)} µs | ${x(a.connUs, b.connUs)} |`,
      `| server RSS per idle subscribed connection | ${n0(a.rss)} bytes | ${n0(b.rss)} bytes | ${x(a.rss, b.rss)} |`,
      `| fan-out p99 (one room of ${n0(b.room)} at ${n0(b.rate)} msg/s, ${n0(b.per_s)} deliveries/s) | ${f1(a.fp99)} ms${full(a)} | ${f1(b.fp99)} ms${full(b)} | ${x(a.fp99, b.fp99)} |`,
      `| servers' CPU per delivery in that fan-out | ${f2(a.us)} µs | ${f2(b.us)} µs | ${x(a.us, b.us)} |`,
      '',
      `TLS here: ${b.session || 'protocol not recorded'}, a P-256 ECDSA certificate, a full handshake per connection (no session resumed); docs/benchmarks.md, "TLS", has the runs.`,
    ].join('\n');
  },
};
// Blocks that need no measurement, or quote benchmarks.md as it is;
// tls-cost and fastpub check their own inputs (the tls and fastpub runs),
// apart from the model's.
const FREE = new Set(['workload', 'targets', 'soak-result', 'target-cores', 'tls-cost', 'fastpub']);
function renderBlock(name, m, ctx) {
  if (m.missing.length && !FREE.has(name))
    return `(not computed: docs/benchmarks.jsonl lacks ${m.missing.join(', ')}; run the full \`make bench\`)`;
  return BLOCKS[name](m, ctx);
}
export const INLINE = new Set(['target-cores', 'soak-result', 'conns-per-server', 'worker-rows', 'write-cost', 'fanout-cores', 'coalescing', 'shared-costs', 'write-delay', 'fastpub']);

// Which page holds which blocks: --check fails when one is missing.
export const PAGES = {
  'docs/scaling.md': ['unit-costs', 'planning', 'workload', 'sizing', 'sizing-notes', 'shard-when'],
  'docs/operations.md': ['planning', 'sizing-summary', 'conns-per-server', 'worker-rows', 'tls-cost'],
  'docs/performance.md': ['coalescing', 'write-cost', 'shared-costs', 'memory-total', 'fanout-cores', 'target-cores', 'write-delay', 'fastpub', 'targets', 'soak-result'],
  'docs/security.md': ['tls-cost'],
};

// Pages whose text outside the derived blocks is not searched for
// measured-looking figures: security.md states limits, defaults and
// protocol sizes throughout (settings, not measurements); its one measured
// part is a derived block all the same.
export const FIGURES_UNCHECKED = new Set(['docs/security.md']);

// Figures outside derived blocks that are not measurements, by page: the
// text as it stands in the page, and why it is not a measurement.
export const FIXED = {
  'docs/scaling.md': [
    ['15 s or more', 'a setting advised for storage.confirm_timeout_ms on a cluster'],
    ['60 s by default: 45–75 s', "RabbitMQ's net_ticktime default, from RabbitMQ's documentation"],
    ['(e.g. 15 s)', 'a setting advised for net_ticktime'],
  ],
  'docs/operations.md': [
    ['< 50 ms', 'an alert threshold'],
    ['> 250 ms for 5 min', 'an alert threshold'],
    ['0 for 1 min', 'an alert threshold'],
    ['for 10 min, lag > 60 s', 'an alert threshold'],
    ['lag < 5 s', 'an alert threshold'],
    ['9,900 connections', "haproxy's maxconn per process in make run (scripts/haproxy-config), a setting"],
  ],
  'docs/performance.md': [
    ['18,000 connections', "the load generator's own split (tests/load: --procs default)"],
  ],
};

// Knob quotes "`section.key` (VALUE)" outside and inside blocks: VALUE must
// be the knob's default, in the units the page may use for it.
const UNIT = { ms: 1, s: 1000, min: 60000, b: 1, bytes: 1, kib: 1024, mib: 1048576, gib: 1073741824, k: 1024, m: 1048576, g: 1073741824 };
function quantity(text) {
  const q = text.match(/^(\d[\d,]*(?:\.\d+)?)\s*(ms|s|min|bytes|B|KiB|MiB|GiB|k|m|g)?(?:\/s)?$/);
  if (!q) return null;
  return { n: Number(q[1].replace(/,/g, '')), unit: q[2] ? q[2].toLowerCase() : '' };
}
export function knobQuoteErrors(page, text, knobs) {
  const errors = [];
  const re = /`([a-z0-9_]+\.[a-z0-9_]+)`\s+\(([^)]*)\)/g;
  for (const mm of text.matchAll(re)) {
    const defs = knobs.get(mm[1]);
    const q = quantity(mm[2].trim());
    if (!defs || !q) continue; // not a knob, or not a value in the parentheses
    const ok = defs.some(({ def }) => {
      const d = quantity(def);
      if (!d) return false;
      // A knob's default in its own unit: _ms knobs in ms, _s in s, sizes
      // in bytes (4m = 4 MiB), plain numbers as they are.
      const base = mm[1].endsWith('_ms') ? 1 : mm[1].endsWith('_s') ? 1000 : 1;
      const want = d.n * (d.unit ? UNIT[d.unit] : base);
      const got = q.n * (q.unit ? UNIT[q.unit] : base);
      return Math.abs(want - got) < 1e-9;
    });
    if (!ok) errors.push(`${page}: \`${mm[1]}\` quoted as (${mm[2]}), its default is ${defs.map((d) => d.def).join(' or ')} (docs/configuration.md)`);
  }
  return errors;
}

// Text with the derived blocks, code, knob quotes and FIXED phrases blanked
// out, then searched for numbers with a unit of time, size or rate.
// (Seconds and minutes only after a space: "503s" are HTTP answers.)
const FIGURE = /(?<![\w.\-/])\d[\d,]*(?:\.\d+)?(?:\s?(?:µs|us\b|ms\b|KiB|MiB|GiB|KB\b|MB\b|GB\b|bytes|B\b|k\/s|M\/s|[A-Za-z]*\/s|rows\b|copies\b|deliveries\b|connections\b|cores?\b|%)|\s(?:s|min)\b)/g;
export function figureErrors(page, text, knobs) {
  let t = text.replace(/<!-- derived:[\s\S]*?<!-- \/derived -->/g, (s) => s.replace(/[^\n]/g, ' '));
  t = t.replace(/```[\s\S]*?```/g, (s) => s.replace(/[^\n]/g, ' '));
  // Knob quotes are checked by knobQuoteErrors.
  t = t.replace(/`([a-z0-9_]+\.[a-z0-9_]+)`\s+\([^)]*\)/g, (s, name) => (knobs.has(name) ? s.replace(/[^\n]/g, ' ') : s));
  t = t.replace(/`[^`\n]*`/g, (s) => ' '.repeat(s.length));
  // A FIXED phrase may be wrapped over lines in the page.
  const esc = (x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const errors = [];
  for (const [phrase] of FIXED[page] || []) {
    const re = new RegExp(phrase.split(/\s+/).map(esc).join('\\s+'), 'g');
    if (!re.test(t)) errors.push(`${page}: FIXED lists "${phrase}", which the page no longer says (drop it from FIXED)`);
    t = t.replace(re, (x) => x.replace(/[^\n]/g, ' '));
  }
  t.split('\n').forEach((line, i) => {
    for (const f of line.matchAll(FIGURE))
      errors.push(`${page}:${i + 1}: "${f[0]}" looks measured but stands outside a derived block (derive it, or list it in FIXED with the reason)`);
  });
  return errors;
}

// ------------------------------------------------------------------ pages

const MARK = /<!-- derived:([a-z0-9-]+) -->([\s\S]*?)<!-- \/derived -->/g;

// The page with each derived block rendered again; names are checked
// against PAGES[page].
export function renderPage(page, text, m, ctx) {
  const seen = new Set(), errors = [];
  const out = text.replace(MARK, (all, name, body) => {
    const f = BLOCKS[name];
    if (!f) {
      errors.push(`${page}: unknown block derived:${name}`);
      return all;
    }
    seen.add(name);
    const block = body.startsWith('\n');
    if (block === INLINE.has(name)) errors.push(`${page}: derived:${name} must be ${INLINE.has(name) ? 'inline' : 'on lines of its own'}`);
    const r = renderBlock(name, m, ctx);
    return `<!-- derived:${name} -->${block ? `\n${r}\n` : r}<!-- /derived -->`;
  });
  for (const name of PAGES[page] || []) if (!seen.has(name)) errors.push(`${page}: no <!-- derived:${name} --> block`);
  return { text: out, errors };
}

export function derive(root) {
  const read = (f) => readFileSync(path.join(root, f), 'utf8');
  const runs = parseRuns(read('docs/benchmarks.jsonl'));
  const knobs = parseKnobs(read('docs/configuration.md'));
  const ctx = { targets: parseTargets(read('docs/benchmarks.md')), soak: readSoak(root) };
  const m = model(runs, knobs);
  const pages = {}, errors = [];
  if (m.missing.length) errors.push(`docs/benchmarks.jsonl lacks ${m.missing.join(', ')}: the pages' figures are not computed (run the full make bench)`);
  if (!ctx.targets) errors.push('docs/benchmarks.md has no Targets table');
  // benchmarks.md's Soak section is docs/soak.json's (scripts/soak-report.mjs).
  if (pageSection(read('docs/benchmarks.md')) !== (ctx.soak ? soakSection(ctx.soak) : ''))
    errors.push('docs/benchmarks.md: its Soak section is not what docs/soak.json gives (run node scripts/soak-report.mjs --write)');
  for (const page of Object.keys(PAGES)) {
    const text = read(page);
    const r = renderPage(page, text, m, ctx);
    pages[page] = { before: text, after: r.text };
    errors.push(...r.errors, ...knobQuoteErrors(page, r.text, knobs),
      ...(FIGURES_UNCHECKED.has(page) ? [] : figureErrors(page, r.text, knobs)));
  }
  return { m, ctx, pages, errors };
}

function main(argv) {
  const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const i = argv.indexOf('--root');
  const root = i >= 0 ? path.resolve(argv[i + 1]) : here;
  const mode = argv.includes('--write') ? 'write' : argv.includes('--check') ? 'check' : 'print';
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 10).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
    return 0;
  }
  const { m, ctx, pages, errors } = derive(root);
  if (mode === 'print') {
    for (const name of Object.keys(BLOCKS)) process.stdout.write(`<!-- derived:${name} -->\n${renderBlock(name, m, ctx)}\n\n`);
    return 0;
  }
  let status = 0;
  for (const [page, { before, after }] of Object.entries(pages)) {
    if (before === after) continue;
    if (mode === 'write') writeFileSync(path.join(root, page), after);
    else {
      const a = before.split('\n'), b = after.split('\n');
      let k = 0;
      while (k < a.length && a[k] === b[k]) k++;
      console.error(`${page}:${k + 1}: differs from what docs/benchmarks.jsonl gives (a derived block edited by hand, or stale):\n  page:    ${a[k]}\n  derived: ${b[k]}`);
      status = 1;
    }
  }
  for (const e of errors) console.error(e);
  if (errors.length) status = 1;
  if (status && mode === 'check') console.error('regenerate with: node scripts/derive-docs.mjs --write');
  return status;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exit(main(process.argv.slice(2)));
