#!/usr/bin/env node
// tests/docker/validate.mjs — static validation of Lectern's Docker deployment
// (docker/Dockerfile, docker/compose.yaml, docker/haproxy.cfg,
// docker/prometheus/prometheus.yml, docker/grafana/, .dockerignore).
//
//   cd tests && node docker/validate.mjs [--root DIR]
//
// No Docker engine is needed (and none is used): the files are parsed and
// cross-checked against each other and against the programs themselves.
// `bin/lectern-server --print-config` and `bin/lectern-storage --print-config`
// give the knobs (so every LECTERN_* variable must name one), `--check-config`
// with the service's environment must accept the values, the metric names
// come from server/metrics.c and storage-worker/metrics.c, `ldd` + `dpkg -S`
// give the runtime packages, `haproxy -c` and (when installed) `promtool`
// check their files.
//
// Output is TAP-like: one `ok N - check` or `not ok N - check` line per check,
// details as `#` lines below a failure, a summary of the problems at the end.
// Exit status: 0 all checks passed, 1 some failed, 2 the validator itself
// could not run (bad arguments).
//
// Environment: LECTERN_SERVER_BIN, LECTERN_STORAGE_BIN (default
// <root>/bin/lectern-server, <root>/bin/lectern-storage): the programs asked
// for their knobs and to check the configuration. Release builds are
// expected (an ASan build's sanitizer libraries are ignored by the runtime
// library check). Compose variables (${VAR:-default}) are resolved from
// docker/.env when it exists, otherwise from their defaults only, never from
// this process's environment, so the result does not depend on the caller.

import { readFileSync, existsSync, statSync, mkdtempSync, writeFileSync, rmSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

// --- arguments --------------------------------------------------------------

const here = path.dirname(fileURLToPath(import.meta.url));
let root = path.resolve(here, '..', '..');
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--root' && argv[i + 1]) root = path.resolve(argv[++i]);
    else if (argv[i] === '-h' || argv[i] === '--help') {
      console.log('usage: node docker/validate.mjs [--root DIR]   (env LECTERN_SERVER_BIN, LECTERN_STORAGE_BIN)');
      process.exit(0);
    } else {
      console.error(`validate.mjs: unknown argument ${argv[i]}`);
      process.exit(2);
    }
  }
}
const dockerDir = path.join(root, 'docker');
const composePath = path.join(dockerDir, 'compose.yaml');
const rel = (p) => path.relative(root, p) || '.';
const BINS = {
  'lectern-server': process.env.LECTERN_SERVER_BIN || path.join(root, 'bin', 'lectern-server'),
  'lectern-storage': process.env.LECTERN_STORAGE_BIN || path.join(root, 'bin', 'lectern-storage'),
};

// --- reporting --------------------------------------------------------------

let n = 0;
const problems = [];
console.log('TAP version 13');
console.log(`# validating ${root}`);

// One named check. `fn` returns nothing or an array of problem strings
// (empty: ok), or the string 'skip: reason'; a throw is a failure too.
function check(name, fn) {
  let res;
  try {
    res = fn();
  } catch (e) {
    res = [String(e && e.message ? e.message : e)];
  }
  n++;
  if (typeof res === 'string' && res.startsWith('skip:')) {
    console.log(`ok ${n} - ${name} # SKIP ${res.slice(5).trim()}`);
    return true;
  }
  const errs = (res || []).filter(Boolean);
  if (errs.length === 0) {
    console.log(`ok ${n} - ${name}`);
    return true;
  }
  console.log(`not ok ${n} - ${name}`);
  for (const e of errs) {
    for (const line of String(e).split('\n')) console.log(`  # ${line}`);
    problems.push(`${name}: ${String(e).split('\n')[0]}`);
  }
  return false;
}
const note = (s) => console.log(`# ${s}`);

function finish() {
  console.log(`1..${n}`);
  if (problems.length) {
    console.log(`# ${problems.length} problem(s):`);
    for (const p of problems) console.log(`#   - ${p}`);
    process.exit(1);
  }
  console.log('# all checks passed');
  process.exit(0);
}

// --- helpers ----------------------------------------------------------------

const isFile = (p) => { try { return statSync(p).isFile(); } catch { return false; } };
const isDir = (p) => { try { return statSync(p).isDirectory(); } catch { return false; } };
const read = (p) => readFileSync(p, 'utf8');
function run(cmd, args, opts = {}) {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: 30000, ...opts });
}
function have(cmd) {
  return run('sh', ['-c', `command -v ${cmd}`]).status === 0;
}
const asArray = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);

// IPv4 only: the compose network is IPv4 (the servers listen with IPv6 off).
function ip4(s) {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  const o = m.slice(1).map(Number);
  if (o.some((x) => x > 255)) return null;
  return ((o[0] << 24) >>> 0) + (o[1] << 16) + (o[2] << 8) + o[3];
}
function cidr(s) {
  const [a, len] = s.split('/');
  const addr = ip4(a);
  const bits = len === undefined ? 32 : Number(len);
  if (addr === null || !Number.isInteger(bits) || bits < 0 || bits > 32 || (len !== undefined && !/^\d+$/.test(len))) return null;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { base: (addr & mask) >>> 0, mask, bits };
}
const inCidr = (addr, c) => ((addr & c.mask) >>> 0) === c.base;
const isIPv6ish = (s) => /^[0-9a-fA-F:]+(\/\d{1,3})?$/.test(s) && s.includes(':');

// A file under docker/secrets/: the operator's, never committed.
function isOperatorSecret(file) {
  const p = path.resolve(dockerDir, file);
  return p.startsWith(path.join(dockerDir, 'secrets') + path.sep);
}

// Compose variable interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d},
// ${VAR:?e}, ${VAR?e}, ${VAR:+a}, ${VAR+a}. `vars` holds docker/.env.
function interpolate(str, vars, where, errs) {
  return str.replace(/\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (all, dollar, name, op, arg, bare) => {
      if (dollar === '$') return '$';
      const v = name || bare;
      const set = Object.prototype.hasOwnProperty.call(vars, v);
      const val = set ? vars[v] : undefined;
      const empty = !set || val === '';
      switch (op) {
        case ':-': return empty ? arg : val;
        case '-': return set ? val : arg;
        case ':?': case '?':
          if ((op === ':?' && empty) || (op === '?' && !set)) errs.push(`${where}: \${${v}} is required and not set (${arg})`);
          return val ?? '';
        case ':+': return empty ? '' : arg;
        case '+': return set ? arg : '';
        default:
          if (!set) errs.push(`${where}: \${${v}} has no default and is not set in docker/.env`);
          return val ?? '';
      }
    });
}
function interpolateAll(node, vars, where, errs) {
  if (typeof node === 'string') return interpolate(node, vars, where, errs);
  if (Array.isArray(node)) return node.map((x, i) => interpolateAll(x, vars, `${where}[${i}]`, errs));
  if (node && typeof node === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(node)) out[k] = interpolateAll(v, vars, where ? `${where}.${k}` : k, errs);
    return out;
  }
  return node;
}
function parseDotenv(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m || line.trim().startsWith('#')) continue;
    out[m[1]] = m[2].replace(/^(['"])(.*)\1$/, '$2');
  }
  return out;
}

// A service's environment as a plain object (list or map form).
function envOf(svc) {
  const e = svc.environment;
  if (!e) return {};
  if (Array.isArray(e)) {
    const out = {};
    for (const item of e) {
      const s = String(item);
      const i = s.indexOf('=');
      if (i < 0) out[s] = undefined; else out[s.slice(0, i)] = s.slice(i + 1);
    }
    return out;
  }
  const out = {};
  for (const [k, v] of Object.entries(e)) out[k] = v === null || v === undefined ? undefined : String(v);
  return out;
}

// Bind mounts of a service: [{source (absolute), target, raw}].
function bindMounts(svc) {
  const out = [];
  for (const v of asArray(svc.volumes)) {
    if (typeof v === 'string') {
      const parts = v.split(':');
      const src = parts[0];
      if (parts.length >= 2 && (src.startsWith('.') || src.startsWith('/') || src.startsWith('~'))) {
        out.push({ source: path.resolve(dockerDir, src), target: parts[1], raw: v });
      }
    } else if (v && v.type === 'bind') {
      out.push({ source: path.resolve(dockerDir, v.source), target: v.target, raw: `${v.source}:${v.target}` });
    }
  }
  return out;
}
// The host file behind a path inside the container, through the bind mounts.
function hostPathOf(svc, containerPath) {
  for (const m of bindMounts(svc)) {
    const t = m.target.replace(/\/+$/, '');
    if (containerPath === t) return m.source;
    if (containerPath.startsWith(t + '/')) return path.join(m.source, containerPath.slice(t.length + 1));
  }
  return null;
}

// The host file behind a container path: a bind mount, or a compose secret
// with a file (mounted at /run/secrets/<name> or its target). null if none.
function hostFileOf(svc, containerPath) {
  const bound = hostPathOf(svc, containerPath);
  if (bound) return bound;
  for (const ref of asArray(svc.secrets)) {
    const src = typeof ref === 'string' ? ref : ref.source;
    const target = typeof ref === 'string' ? `/run/secrets/${ref}`
      : ref.target && ref.target.startsWith('/') ? ref.target : `/run/secrets/${ref.target || ref.source}`;
    const def = compose.secrets && compose.secrets[src];
    if (target === containerPath && def && def.file) return path.resolve(dockerDir, def.file);
  }
  return null;
}

function dependsOn(svc) {
  const d = svc.depends_on;
  if (!d) return {};
  if (Array.isArray(d)) return Object.fromEntries(d.map((s) => [s, { condition: 'service_started' }]));
  return Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v || { condition: 'service_started' }]));
}

// Container ports a service publishes on the host.
function publishedPorts(svc) {
  const out = [];
  for (const p of asArray(svc.ports)) {
    if (typeof p === 'object' && p) { out.push(Number(p.target)); continue; }
    const s = String(p).replace(/\/(tcp|udp)$/, '');
    const parts = s.split(':');
    out.push(Number(parts[parts.length - 1]));
  }
  return out;
}

// Published ports with their host side: [{ip, host, target}] (ip '' = every
// interface).
function publishedFull(svc) {
  const out = [];
  for (const p of asArray(svc.ports)) {
    if (typeof p === 'object' && p) {
      out.push({ ip: p.host_ip || '', host: Number(p.published), target: Number(p.target) });
      continue;
    }
    const parts = String(p).replace(/\/(tcp|udp)$/, '').split(':');
    const target = Number(parts.pop());
    const host = parts.length ? Number(parts.pop()) : target;
    out.push({ ip: parts.join(':'), host, target });
  }
  return out;
}
const isLoopback = (ip) => /^(127\.|localhost$|::1$|\[::1\]$)/.test(ip);

// --- Dockerfile -------------------------------------------------------------

// Stages: [{name, from, line, instrs: [{op, args, line}]}]. Continuation
// lines are joined; comment lines (also inside a continuation) dropped.
function parseDockerfile(text) {
  const lines = text.split('\n');
  const instrs = [];
  let cur = null;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    const t = raw.trim();
    if (t.startsWith('#') || (t === '' && !cur)) continue;
    if (!cur) cur = { text: '', line: i + 1 };
    if (t.endsWith('\\')) { cur.text += t.slice(0, -1) + ' '; continue; }
    cur.text += t;
    const m = /^(\S+)\s*(.*)$/.exec(cur.text.trim());
    if (m) instrs.push({ op: m[1].toUpperCase(), args: m[2], line: cur.line });
    cur = null;
  }
  const stages = [];
  for (const ins of instrs) {
    if (ins.op === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$/i.exec(ins.args);
      stages.push({ name: m && m[2] ? m[2] : String(stages.length), from: m ? m[1] : ins.args, line: ins.line, instrs: [] });
    } else if (stages.length) {
      stages[stages.length - 1].instrs.push(ins);
    }
  }
  return stages;
}
// Shell-ish words of a JSON-form or shell-form instruction.
function words(args) {
  const a = args.trim();
  if (a.startsWith('[')) {
    try { return JSON.parse(a); } catch { /* fall through to shell form */ }
  }
  return a.match(/"[^"]*"|'[^']*'|\S+/g)?.map((w) => w.replace(/^(['"])(.*)\1$/, '$2')) || [];
}
function stageEnv(stage) {
  const env = {};
  for (const ins of stage.instrs.filter((x) => x.op === 'ENV')) {
    const a = ins.args.trim();
    if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(a)) {
      for (const m of a.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S*)/g)) env[m[1]] = m[2].replace(/^(['"])(.*)\1$/, '$2');
    } else {
      const m = /^(\S+)\s+(.*)$/.exec(a);
      if (m) env[m[1]] = m[2];
    }
  }
  return env;
}
// Packages named by `apt-get install` in a stage's RUN instructions.
function aptPackages(stage) {
  const pkgs = [];
  let noRecommends = true;
  let any = false;
  for (const ins of stage.instrs.filter((x) => x.op === 'RUN')) {
    for (const cmd of ins.args.split(/&&|;|\|\|/)) {
      const w = cmd.trim().split(/\s+/);
      const i = w.findIndex((x, k) => (x === 'apt-get' || x === 'apt') && w[k + 1] === 'install');
      if (i < 0) continue;
      any = true;
      const rest = w.slice(i + 2);
      if (!rest.includes('--no-install-recommends')) noRecommends = false;
      for (const x of rest) if (x && !x.startsWith('-')) pkgs.push(x.replace(/[:=].*$/, ''));
    }
  }
  return { pkgs, noRecommends, any };
}
// COPY instructions: [{from, sources, dest}].
function copies(stage) {
  const out = [];
  for (const ins of stage.instrs.filter((x) => x.op === 'COPY' || x.op === 'ADD')) {
    let w = words(ins.args);
    let from = null;
    const flags = w.filter((x) => x.startsWith('--'));
    for (const f of flags) if (f.startsWith('--from=')) from = f.slice(7);
    w = w.filter((x) => !x.startsWith('--'));
    out.push({ from, sources: w.slice(0, -1), dest: w[w.length - 1], line: ins.line });
  }
  return out;
}
// Where a container path comes from in a stage: {from, source} or null.
function copiedFrom(stage, containerPath) {
  for (const c of copies(stage)) {
    for (const s of c.sources) {
      const dest = c.dest.endsWith('/') ? path.posix.join(c.dest, path.posix.basename(s.replace(/\/+$/, ''))) : c.dest;
      const d = c.dest.replace(/\/+$/, '');
      // COPY dir/ /dest/ copies the directory's contents into /dest.
      if (s.endsWith('/') && (containerPath === d || containerPath.startsWith(d + '/'))) {
        return { from: c.from, source: path.posix.join(s, containerPath.slice(d.length + 1)) };
      }
      if (containerPath === dest || containerPath === d) return { from: c.from, source: s };
    }
  }
  return null;
}

// --- .dockerignore ----------------------------------------------------------

function dockerignore(text) {
  const rules = [];
  for (let line of text.split('\n')) {
    line = line.trim();
    if (!line || line.startsWith('#')) continue;
    const neg = line.startsWith('!');
    let p = (neg ? line.slice(1) : line).trim().replace(/^\/+/, '').replace(/\/+$/, '');
    p = path.posix.normalize(p);
    let re = '';
    for (let i = 0; i < p.length; i++) {
      const ch = p[i];
      if (ch === '*' && p[i + 1] === '*') {
        if (p[i + 2] === '/') { re += '(?:.*/)?'; i += 2; } else { re += '.*'; i += 1; }
      } else if (ch === '*') re += '[^/]*';
      else if (ch === '?') re += '[^/]';
      else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    rules.push({ neg, re: new RegExp(`^${re}$`), pattern: line });
  }
  // Excluded when the last rule matching the path or one of its parents excludes.
  return (relPath) => {
    const parts = relPath.replace(/^\.\//, '').split('/');
    let excluded = false;
    for (const r of rules) {
      for (let k = 1; k <= parts.length; k++) {
        if (r.re.test(parts.slice(0, k).join('/'))) { excluded = !r.neg; break; }
      }
    }
    return excluded;
  };
}

// --- the programs' knobs and metrics -----------------------------------------

// --print-config: Map env name -> {section, key, value}.
function knobsOf(bin) {
  const r = run(bin, ['--print-config']);
  if (r.error || r.status !== 0) throw new Error(`${bin} --print-config failed: ${r.error ? r.error.message : r.stderr}`);
  const knobs = new Map();
  let section = null;
  let pendingEnv = null;
  for (const line of r.stdout.split('\n')) {
    let m;
    if ((m = /^\[([a-z0-9_]+)\]\s*$/.exec(line))) { section = m[1]; pendingEnv = null; }
    else if ((m = /^#.*\benv (LECTERN_[A-Z0-9_]+)\s*$/.exec(line))) pendingEnv = m[1];
    else if ((m = /^([a-z0-9_]+)\s*=\s*(.*?)\s*$/.exec(line)) && section) {
      const env = pendingEnv || `LECTERN_${section}_${m[1]}`.toUpperCase();
      knobs.set(env, { section, key: m[1], value: m[2] });
      pendingEnv = null;
    }
  }
  if (knobs.size === 0) throw new Error(`${bin} --print-config printed no knobs`);
  return knobs;
}
// A config file's values: Map "section.key" -> value.
function iniValues(text) {
  const out = new Map();
  let section = null;
  for (const line of text.split('\n')) {
    let m;
    if ((m = /^\s*\[([a-z0-9_]+)\]\s*$/.exec(line))) section = m[1];
    else if ((m = /^\s*([a-z0-9_]+)\s*=\s*(.*?)\s*$/.exec(line)) && section) out.set(`${section}.${m[1]}`, m[2]);
  }
  return out;
}
function exposedMetrics() {
  const names = new Set();
  // metrics.c of each program, and the modules that render their own
  // families (server/apilog.c).
  for (const f of ['server/metrics.c', 'server/apilog.c', 'storage-worker/metrics.c']) {
    const p = path.join(root, f);
    if (!isFile(p)) continue;
    for (const m of read(p).matchAll(/"(lectern_[a-z0-9_]+)/g)) names.add(baseMetric(m[1]));
  }
  return names;
}
const baseMetric = (s) => s.replace(/_(bucket|sum|count)$/, '');

// --- checks -------------------------------------------------------------------

// Metrics the Operations issue asks the dashboard to show.
const DASHBOARD_REQUIRED = [
  'lectern_connections', 'lectern_connections_state', 'lectern_rooms', 'lectern_subscriptions',
  'lectern_frames_in_total', 'lectern_frames_out_total', 'lectern_messages_published_total',
  'lectern_deliveries_total', 'lectern_bus_published_total', 'lectern_bus_skipped_total',
  'lectern_bus_received_total', 'lectern_delivery_seconds', 'lectern_bus_confirm_seconds',
  'lectern_registry_reconnects_total', 'lectern_bus_reconnects_total', 'lectern_storage_reconnects_total',
  'lectern_registry_up', 'lectern_bus_up', 'lectern_storage_up', 'lectern_stomp_errors_by_reason_total',
  'lectern_throttled_total', 'lectern_slow_consumers_total', 'lectern_auth_failures_total',
  'lectern_access_denied_total', 'lectern_storage_rows_written_total', 'lectern_storage_queue_messages',
  'lectern_storage_lag_seconds', 'lectern_storage_commit_seconds',
];
// The port a well-known service image listens on, by image repository.
const IMAGE_PORTS = {
  redis: 6379, rabbitmq: 5672, mariadb: 3306, mysql: 3306,
  'prom/prometheus': 9090, 'grafana/grafana': 3000,
};
const imageRepo = (img) => String(img || '').replace(/@.*$/, '').replace(/:[^/]*$/, '');
// Which knob names a dependency's host and port, per program.
const HOST_KNOBS = {
  'lectern-server': [['LECTERN_REDIS_HOST', 'LECTERN_REDIS_PORT', 'redis'],
                     ['LECTERN_BUS_HOST', 'LECTERN_BUS_PORT', 'rabbitmq'],
                     ['LECTERN_MYSQL_HOST', 'LECTERN_MYSQL_PORT', 'mariadb']],
  'lectern-storage': [['LECTERN_AMQP_HOST', 'LECTERN_AMQP_PORT', 'rabbitmq'],
                      ['LECTERN_MYSQL_HOST', 'LECTERN_MYSQL_PORT', 'mariadb']],
};
// Packages that every Debian image has (the runtime check does not ask for them).
const BASE_PKGS = new Set(['libc6', 'libgcc-s1', 'zlib1g']);
// scripts/deps build packages the image does not need: unit tests and fuzzing.
const TEST_ONLY_BUILD_PKGS = /^(libcmocka-dev|clang|libclang-rt-.*)$/;

// compose.yaml ---------------------------------------------------------------

let compose = null;
let services = {};
check('docker/compose.yaml exists and parses as YAML', () => {
  if (!isFile(composePath)) return ['docker/compose.yaml is missing'];
  const doc = YAML.parseDocument(read(composePath), { merge: true, uniqueKeys: true });
  if (doc.errors.length) return doc.errors.map((e) => e.message);
  const raw = doc.toJS({ maxAliasCount: 1000 });
  if (!raw || typeof raw !== 'object' || !raw.services) return ['no services: section'];
  const envFile = path.join(dockerDir, '.env');
  const vars = isFile(envFile) ? parseDotenv(read(envFile)) : {};
  const errs = [];
  // x- extension fields are only anchors; compose does not interpolate them.
  const body = Object.fromEntries(Object.entries(raw).filter(([k]) => !k.startsWith('x-')));
  compose = interpolateAll(body, vars, '', errs);
  services = compose.services || {};
  return errs;
});
if (!compose) finish();

const serviceNames = new Set(Object.keys(services));
note(`services: ${[...serviceNames].join(', ')}`);

// Dockerfiles per build, parsed once.
const dockerfiles = new Map();
function dockerfileOf(svc) {
  const b = typeof svc.build === 'string' ? { context: svc.build } : svc.build;
  const ctx = path.resolve(dockerDir, b.context || '.');
  const file = path.resolve(ctx, b.dockerfile || 'Dockerfile');
  if (!dockerfiles.has(file)) dockerfiles.set(file, isFile(file) ? parseDockerfile(read(file)) : null);
  return { ctx, file, stages: dockerfiles.get(file), target: b.target };
}

// Debian ships compose v1 (docker-compose 1.29), whose schema knows only
// these top-level keys (no `name:`: the project is named with -p); compose v2
// accepts them too. Grafana is not packaged by Debian: it stays in a profile,
// so `make docker-test` can start everything else.
check('compose.yaml is valid for compose v1 and v2: top-level keys v1 knows, no `name:`; Grafana in a profile', () => {
  const raw = YAML.parse(read(composePath), { merge: true, maxAliasCount: 1000 });
  const known = new Set(['version', 'services', 'networks', 'volumes', 'secrets', 'configs']);
  const errs = Object.keys(raw).filter((k) => !k.startsWith('x-') && !known.has(k))
    .map((k) => `top-level \`${k}\`: compose v1 rejects it${k === 'name' ? ' (name the project with -p)' : ''}`);
  if (services.grafana && !(services.grafana.profiles || []).length)
    errs.push('grafana has no profile: make docker-test could not leave it out');
  return errs;
});

check('the services to scale exist: server and storage-worker (docker compose up --scale server=N --scale storage-worker=M)', () => {
  return ['server', 'storage-worker'].filter((s) => !serviceNames.has(s)).map((s) => `no service ${s}`);
});

for (const [name, svc] of Object.entries(services)) {
  check(`service ${name}: has an image or a build whose context, Dockerfile and target exist`, () => {
    if (!svc || typeof svc !== 'object') return ['not a mapping'];
    if (!svc.build) return svc.image ? [] : ['neither image nor build'];
    const { ctx, file, stages, target } = dockerfileOf(svc);
    const errs = [];
    if (!isDir(ctx)) errs.push(`build context ${rel(ctx)} is not a directory`);
    if (!stages) errs.push(`Dockerfile ${rel(file)} does not exist`);
    else if (target && !stages.some((s) => s.name === target)) errs.push(`target ${target} is not a stage (FROM ... AS ${target}) of ${rel(file)}; stages: ${stages.map((s) => s.name).join(', ')}`);
    return errs;
  });
}

check('every bind-mounted file, env_file, config and secret file exists; named volumes and networks are declared', () => {
  const errs = [];
  const vols = new Set(Object.keys(compose.volumes || {}));
  const nets = new Set(['default', ...Object.keys(compose.networks || {})]);
  for (const [name, svc] of Object.entries(services)) {
    for (const m of bindMounts(svc)) if (!existsSync(m.source)) errs.push(`${name}: bind mount ${m.raw}: ${rel(m.source)} does not exist`);
    for (const v of asArray(svc.volumes)) {
      const src = typeof v === 'string' ? v.split(':')[0] : v && v.type === 'volume' ? v.source : null;
      const isNamed = typeof v === 'string' ? v.includes(':') && !/^[./~]/.test(src) : !!src;
      if (isNamed && !vols.has(src)) errs.push(`${name}: volume ${src} is not declared under volumes:`);
    }
    for (const f of asArray(svc.env_file)) {
      const p = path.resolve(dockerDir, typeof f === 'string' ? f : f.path);
      if (!isFile(p)) errs.push(`${name}: env_file ${rel(p)} does not exist`);
    }
    const netList = Array.isArray(svc.networks) ? svc.networks : Object.keys(svc.networks || {});
    for (const nn of netList) if (!nets.has(nn)) errs.push(`${name}: network ${nn} is not declared under networks:`);
    for (const kind of ['configs', 'secrets']) {
      for (const ref of asArray(svc[kind])) {
        const src = typeof ref === 'string' ? ref : ref.source;
        if (!compose[kind] || !compose[kind][src]) errs.push(`${name}: ${kind.slice(0, -1)} ${src} is not declared under ${kind}:`);
      }
    }
  }
  for (const kind of ['configs', 'secrets']) {
    for (const [k, v] of Object.entries(compose[kind] || {})) {
      if (!v || !v.file || isFile(path.resolve(dockerDir, v.file))) continue;
      // docker/secrets/ holds the operator's own files (git- and
      // docker-ignored): absent from a checkout, required by compose.
      if (kind === 'secrets' && isOperatorSecret(v.file)) note(`${kind}.${k}: ${v.file} is the operator's (not in the repository); compose refuses to start until it exists`);
      else errs.push(`${kind}.${k}: file ${v.file} does not exist`);
    }
  }
  return errs;
});

check('depends_on names existing services; service_healthy targets have a healthcheck', () => {
  const errs = [];
  for (const [name, svc] of Object.entries(services)) {
    for (const [dep, spec] of Object.entries(dependsOn(svc))) {
      if (!serviceNames.has(dep)) { errs.push(`${name} depends on ${dep}, which is not a service`); continue; }
      if (spec.condition === 'service_healthy') {
        const d = services[dep];
        let has = !!(d.healthcheck && !d.healthcheck.disable && d.healthcheck.test);
        if (!has && d.build) {
          const { stages, target } = dockerfileOf(d);
          const st = stages && (target ? stages.find((s) => s.name === target) : stages[stages.length - 1]);
          has = !!(st && st.instrs.some((i) => i.op === 'HEALTHCHECK' && !/^NONE\b/i.test(i.args)));
        }
        if (!has) errs.push(`${name} waits for ${dep} to be healthy, but ${dep} has no healthcheck`);
      }
    }
  }
  return errs;
});

check('server and storage-worker are scalable: no container_name, no host port, no fixed address', () => {
  const errs = [];
  for (const s of ['server', 'storage-worker']) {
    const svc = services[s];
    if (!svc) continue;
    if (svc.container_name) errs.push(`${s}: container_name ${svc.container_name} prevents --scale`);
    if (svc.ports) errs.push(`${s}: publishes host ports (${asArray(svc.ports).join(', ')}); replicas would collide`);
    for (const [nn, cfg] of Object.entries(Array.isArray(svc.networks) ? {} : svc.networks || {})) {
      if (cfg && (cfg.ipv4_address || cfg.ipv6_address)) errs.push(`${s}: fixed address on network ${nn}`);
    }
  }
  return errs;
});

check('network addresses: fixed addresses lie in their subnet, outside the dynamic ip_range', () => {
  const errs = [];
  for (const [name, svc] of Object.entries(services)) {
    for (const [nn, cfg] of Object.entries(Array.isArray(svc.networks) ? {} : svc.networks || {})) {
      if (!cfg || !cfg.ipv4_address) continue;
      const a = ip4(cfg.ipv4_address);
      const pools = (((compose.networks || {})[nn] || {}).ipam || {}).config || [];
      if (a === null) { errs.push(`${name}: ipv4_address ${cfg.ipv4_address} is not an IPv4 address`); continue; }
      const pool = pools.find((p) => p.subnet && cidr(p.subnet) && inCidr(a, cidr(p.subnet)));
      if (!pool) { errs.push(`${name}: ${cfg.ipv4_address} is in no ipam subnet of network ${nn} (a fixed address needs one)`); continue; }
      if (pool.ip_range && cidr(pool.ip_range) && inCidr(a, cidr(pool.ip_range))) errs.push(`${name}: ${cfg.ipv4_address} is inside ip_range ${pool.ip_range}: Docker may give it to another container`);
      if (pool.gateway && ip4(pool.gateway) === a) errs.push(`${name}: ${cfg.ipv4_address} is the gateway`);
    }
  }
  return errs;
});

// Dockerfile -----------------------------------------------------------------

const lecternServices = []; // {name, svc, program, stage, stages, ctx, file}
for (const [name, svc] of Object.entries(services)) {
  if (!svc.build) continue;
  const { ctx, file, stages, target } = dockerfileOf(svc);
  if (!stages) continue;
  const stage = target ? stages.find((s) => s.name === target) : stages[stages.length - 1];
  if (!stage) continue;
  const ep = stage.instrs.filter((i) => i.op === 'ENTRYPOINT').pop();
  const prog = ep ? path.posix.basename(words(ep.args)[0] || '') : '';
  lecternServices.push({ name, svc, program: prog, stage, stages, ctx, file });
}

check('the Dockerfile of each built service has a build stage on debian:bookworm running make, and runtime stages on debian:bookworm-slim', () => {
  const errs = [];
  const seen = new Set();
  for (const ls of lecternServices) {
    if (!seen.has(ls.file)) {
      seen.add(ls.file);
      const build = ls.stages.find((s) => s.instrs.some((i) => i.op === 'RUN' && /(^|[\s;&|])make(\s|$)/.test(i.args)));
      if (!build) errs.push(`${rel(ls.file)}: no stage runs make`);
      else if (!/^debian:bookworm(@|$)/.test(build.from)) errs.push(`${rel(ls.file)}: build stage ${build.name} is FROM ${build.from}, not debian:bookworm`);
    }
    if (!/^debian:bookworm-slim(@|$)/.test(ls.stage.from)) errs.push(`${ls.name}: target ${ls.stage.name} is FROM ${ls.stage.from}, not debian:bookworm-slim`);
  }
  return errs;
});

check('Dockerfile build stage installs the build packages of scripts/deps (less test and fuzz tools)', () => {
  const deps = path.join(root, 'scripts', 'deps');
  if (!isFile(deps)) return 'skip: scripts/deps not found';
  const m = /build_pkgs=\(([\s\S]*?)\)/.exec(read(deps));
  if (!m) return ['scripts/deps: no build_pkgs=( ... )'];
  const want = m[1].split('\n').map((l) => l.replace(/#.*$/, '')).join(' ').split(/\s+/).filter(Boolean)
    .filter((p) => !TEST_ONLY_BUILD_PKGS.test(p));
  const errs = [];
  const seen = new Set();
  for (const ls of lecternServices) {
    if (seen.has(ls.file)) continue;
    seen.add(ls.file);
    const build = ls.stages.find((s) => s.instrs.some((i) => i.op === 'RUN' && /(^|[\s;&|])make(\s|$)/.test(i.args)));
    if (!build) continue;
    const { pkgs } = aptPackages(build);
    const missing = [...want, 'make', 'gcc'].filter((p) => !pkgs.includes(p));
    if (missing.length) errs.push(`${rel(ls.file)} stage ${build.name} does not install: ${missing.join(' ')}`);
  }
  return errs;
});

for (const ls of lecternServices) {
  const { name, stage } = ls;
  check(`Dockerfile target ${stage.name} (${name}): installs no -dev or toolchain package, with --no-install-recommends`, () => {
    const { pkgs, noRecommends } = aptPackages(stage);
    const errs = pkgs.filter((p) => /-dev$/.test(p) || /^(gcc|g\+\+|cpp|make|build-essential|pkg-config|clang)$/.test(p))
      .map((p) => `installs ${p}`);
    if (!noRecommends) errs.push('apt-get install without --no-install-recommends');
    return errs;
  });
  check(`Dockerfile target ${stage.name} (${name}): runs as a non-root USER, has HEALTHCHECK, EXPOSE and ENTRYPOINT`, () => {
    const errs = [];
    const user = stage.instrs.filter((i) => i.op === 'USER').pop();
    if (!user) errs.push('no USER: runs as root');
    else if (/^(root|0)(:|$)/.test(user.args.trim())) errs.push(`USER ${user.args.trim()} is root`);
    const hc = stage.instrs.filter((i) => i.op === 'HEALTHCHECK').pop();
    if (!hc || /^NONE\b/i.test(hc.args.trim())) errs.push('no HEALTHCHECK');
    if (!stage.instrs.some((i) => i.op === 'EXPOSE')) errs.push('no EXPOSE');
    if (!ls.program) errs.push('no ENTRYPOINT');
    else if (!BINS[ls.program]) errs.push(`ENTRYPOINT runs ${ls.program}, which is neither lectern-server nor lectern-storage`);
    if (ls.svc.entrypoint || ls.svc.command) errs.push('compose overrides entrypoint/command: the validator cannot follow it');
    return errs;
  });
  check(`Dockerfile target ${stage.name} (${name}): copies ${ls.program || 'its program'} from the build stage and its --config file from the repository`, () => {
    const errs = [];
    const ep = words(stage.instrs.filter((i) => i.op === 'ENTRYPOINT').pop()?.args || '[]');
    const c = copiedFrom(stage, ep[0] || '');
    if (!c || !c.from) errs.push(`${ep[0]} is not copied from another stage`);
    else if (path.posix.basename(c.source) !== ls.program) errs.push(`${ep[0]} is copied from ${c.source}`);
    const ci = ep.indexOf('--config');
    if (ci < 0 || !ep[ci + 1]) { errs.push('ENTRYPOINT has no --config FILE'); return errs; }
    const cf = copiedFrom(stage, ep[ci + 1]);
    if (!cf || cf.from) errs.push(`${ep[ci + 1]} is not copied from the build context`);
    else if (!isFile(path.join(ls.ctx, cf.source))) errs.push(`${cf.source} does not exist`);
    else ls.configFile = path.join(ls.ctx, cf.source);
    return errs;
  });
}

check('.dockerignore excludes build outputs and keeps every file the images need', () => {
  const p = path.join(root, '.dockerignore');
  if (!isFile(p)) return ['.dockerignore is missing at the repository root'];
  const ignored = dockerignore(read(p));
  const errs = [];
  for (const x of ['build/release/x.o', 'bin/lectern-server', 'var/redis/dump.rdb', 'tests/node_modules/ws/index.js',
                   'client-js/node_modules/x/index.js', 'node_modules/x', 'tests/artifacts/lecture-room.png',
                   'docker/.env', 'docker/secrets/lectern-keys']) {
    if (!ignored(x)) errs.push(`${x} is not excluded`);
  }
  // Sources copied into the images, and every makefile `make` reads.
  const needed = new Set(['Makefile']);
  for (const ls of lecternServices) {
    for (const st of ls.stages) for (const c of copies(st)) if (!c.from) for (const s of c.sources) if (s !== '.') needed.add(s.replace(/\/+$/, ''));
  }
  const mk = path.join(root, 'Makefile');
  if (isFile(mk)) {
    for (const m of read(mk).matchAll(/^include\s+(.+)$/gm)) for (const f of m[1].trim().split(/\s+/)) if (!f.includes('$')) needed.add(f);
  }
  for (const f of needed) {
    if (!existsSync(path.join(root, f))) errs.push(`${f} (needed by the image build) does not exist`);
    else if (ignored(f)) errs.push(`${f} (needed by the image build) is excluded`);
  }
  for (const d of ['lib', 'server', 'storage-worker', 'scripts/embed-sql', 'scripts/embed-lua', 'tests/load']) {
    if (existsSync(path.join(root, d)) && ignored(d)) errs.push(`${d} (built by make) is excluded`);
  }
  return errs;
});

// What the build stage needs, from the sources and the Makefile: each system
// header the release build includes directly (#include <...> in lib/,
// server/, storage-worker/ and tests/load/), looked up the way the compiler
// finds it here; each pkg-config module the Makefile names, with the modules
// it requires; each -l library of the programs. The Debian package of each
// (dpkg -S) must be installed by the build stage or be a dependency of one it
// installs (headers a header includes come with that package's own
// dependencies).
check('Dockerfile build stage installs the package of every system header, pkg-config module and -l library the release build uses (dpkg -S)', () => {
  if (!have('dpkg') || !have('dpkg-query') || !have('gcc') || !have('pkg-config')) return 'skip: dpkg, gcc or pkg-config not available';
  const errs = [];
  const headers = new Set();
  for (const d of ['lib', 'server', 'storage-worker', 'tests/load']) {
    const dir = path.join(root, d);
    if (!isDir(dir)) continue;
    for (const f of readdirSync(dir).filter((x) => /\.[ch]$/.test(x))) {
      for (const m of read(path.join(dir, f)).matchAll(/^\s*#\s*include\s*<([^>]+)>/gm)) headers.add(m[1]);
    }
  }
  const mk = isFile(path.join(root, 'Makefile')) ? read(path.join(root, 'Makefile')) : '';
  const pcs = [...mk.matchAll(/^[A-Z_]*_PKGS\s*:?=\s*(.*)$/gm)].flatMap((m) => m[1].trim().split(/\s+/));
  const pcI = run('pkg-config', ['--cflags-only-I', ...new Set(pcs)]).stdout.match(/-I(\S+)/g)?.map((x) => x.slice(2)) || [];
  const multiarch = run('gcc', ['-print-multiarch']).stdout.trim();
  const gccInc = run('gcc', ['-print-file-name=include']).stdout.trim();
  const dirs = [...pcI, gccInc, '/usr/local/include', multiarch && `/usr/include/${multiarch}`, '/usr/include'].filter(Boolean);
  // `found`: what the build needs (label -> file here).
  const found = new Map();
  for (const h of headers) {
    const f = dirs.map((dd) => path.join(dd, h)).find(isFile);
    if (!f) errs.push(`<${h}> is not installed here (cannot tell its package)`);
    else found.set(`<${h}>`, f);
  }
  // The pkg-config modules the Makefile asks for, and those they require
  // (pkg-config fails, and the link with it, when one .pc file is missing).
  const mods = new Set(pcs);
  for (const m of mk.matchAll(/pkg-config --(?:libs|cflags)\s+([a-z0-9_.+ -]+?)\s*2>/g)) for (const x of m[1].trim().split(/\s+/)) if (!x.startsWith('$')) mods.add(x);
  const pendingMods = [...mods];
  while (pendingMods.length) {
    const m = pendingMods.pop();
    const pc = run('pkg-config', ['--path', m]).stdout.trim();
    if (!pc) { errs.push(`pkg-config module ${m} is not installed here (cannot tell its package)`); continue; }
    found.set(`pkg-config ${m}`, pc);
    const req = run('pkg-config', ['--print-requires', '--print-requires-private', m]).stdout;
    for (const line of req.split('\n')) {
      const r = line.trim().split(/\s/)[0];
      if (r && !mods.has(r)) { mods.add(r); pendingMods.push(r); }
    }
  }
  // -l libraries the programs link besides pkg-config's (-linih -ljansson -lm).
  const libDirs = [multiarch && `/usr/lib/${multiarch}`, '/usr/lib', '/lib'].filter(Boolean);
  for (const m of mk.matchAll(/^(?:SERVER|WORKER)_LIBS\s*:?=(.*)$/gm)) {
    for (const l of m[1].matchAll(/(?:^|\s)-l([A-Za-z0-9_+-]+)/g)) {
      const f = libDirs.flatMap((dd) => [path.join(dd, `lib${l[1]}.so`), path.join(dd, `lib${l[1]}.a`)]).find(isFile);
      if (!f) errs.push(`-l${l[1]}: no lib${l[1]}.so here (cannot tell its package)`);
      else found.set(`-l${l[1]}`, f);
    }
  }
  // dpkg knows a file by the path its package ships (merged /usr: /lib or /usr/lib).
  const variants = (f) => [f, f.startsWith('/usr/') ? f.slice(4) : `/usr${f}`];
  const d = run('dpkg', ['-S', ...new Set([...found.values()].flatMap(variants))]);
  const owner = new Map();
  for (const line of (d.stdout || '').split('\n')) {
    const m = /^([^:,\s]+)(?::[a-z0-9]+)?: (\S+)$/.exec(line);
    if (m) owner.set(m[2], m[1]);
  }
  // Every installed package's dependencies, for the closure of what the stage installs.
  const deps = new Map();
  for (const line of run('dpkg-query', ['-W', '-f=${Package}\t${Pre-Depends}, ${Depends}\n']).stdout.split('\n')) {
    const [pk, dd] = line.split('\t');
    if (pk) deps.set(pk, (dd || '').split(/[,|]/).map((x) => x.trim().split(/[\s:(]/)[0]).filter(Boolean));
  }
  const seen = new Set();
  for (const ls of lecternServices) {
    const build = ls.stages.find((st) => st.instrs.some((i) => i.op === 'RUN' && /(^|[\s;&|])make(\s|$)/.test(i.args)));
    if (!build || seen.has(build)) continue;
    seen.add(build);
    const closure = new Set();
    const queue = [...aptPackages(build).pkgs, 'libc6'];
    while (queue.length) {
      const pk = queue.pop();
      if (closure.has(pk)) continue;
      closure.add(pk);
      queue.push(...(deps.get(pk) || []));
    }
    for (const [h, f] of found) {
      const pk = variants(f).map((v) => owner.get(v)).find(Boolean);
      if (!pk) errs.push(`${h} (${f}): no Debian package owns it`);
      else if (!closure.has(pk)) errs.push(`${h} is in ${pk}, which stage ${build.name} does not install (nor anything it installs depends on)`);
    }
  }
  return errs;
});

// Debian package records (apt-cache show), one call for all names: Map name -> Depends.
const aptInfo = new Map();
function aptShow(names) {
  const want = [...new Set(names)].filter((x) => !aptInfo.has(x));
  if (!want.length) return;
  const r = run('apt-cache', ['show', '--no-all-versions', ...want]);
  for (const rec of (r.stdout || '').split(/\n\n+/)) {
    const pkg = /^Package: (\S+)/m.exec(rec);
    if (pkg) aptInfo.set(pkg[1], /^Depends: (.*)$/m.exec(rec)?.[1] || '');
  }
  for (const x of want) if (!aptInfo.has(x)) aptInfo.set(x, null);
}

check('runtime images install the Debian package of every shared library their program links (ldd + dpkg -S), and the libuv event plugin of libwebsockets', () => {
  if (!have('ldd') || !have('dpkg') || !have('apt-cache')) return 'skip: ldd, dpkg or apt-cache not available';
  const errs = [];
  // apt-cache takes a second per call: ask once for every package named.
  aptShow(lecternServices.flatMap((ls) => ls.stages.flatMap((st) => aptPackages(st).pkgs)));
  for (const ls of lecternServices) {
    const bin = BINS[ls.program];
    if (!bin || !isFile(bin)) { errs.push(`${ls.name}: ${bin} not found (build it with make, or set LECTERN_*_BIN)`); continue; }
    const l = run('ldd', [bin]);
    if (l.status !== 0) { errs.push(`${ls.name}: ldd ${bin} failed`); continue; }
    const libs = [...l.stdout.matchAll(/=>\s+(\/\S+)/g)].map((m) => m[1])
      .filter((f) => !/lib(asan|ubsan|lsan|tsan)\.so/.test(path.basename(f)));
    const notFound = [...l.stdout.matchAll(/^\s*(\S+) => not found/gm)].map((m) => m[1]);
    if (notFound.length) errs.push(`${ls.name}: ${bin} has unresolved libraries here: ${notFound.join(' ')}`);
    // Debian 12 has merged /usr: dpkg knows a file under /lib or /usr/lib.
    const variants = (f) => [f, f.startsWith('/usr/') ? f.slice(4) : `/usr${f}`];
    const d = run('dpkg', ['-S', ...libs.flatMap(variants)]);
    const byPath = new Map();
    for (const line of (d.stdout || '').split('\n')) {
      const m = /^([^:,\s]+)(?::[a-z0-9]+)?: (\S+)$/.exec(line);
      if (m) byPath.set(m[2], m[1]);
    }
    const owner = new Map();
    for (const lib of libs) {
      const pkg = variants(lib).map((v) => byPath.get(v)).find(Boolean);
      if (!pkg) errs.push(`${ls.name}: no Debian package owns ${lib}`);
      else owner.set(lib, pkg);
    }
    const { pkgs } = aptPackages(ls.stage);
    aptShow(pkgs);
    const covered = new Set([...pkgs, ...BASE_PKGS]);
    for (const p of pkgs) for (const x of (aptInfo.get(p) || '').split(/[,|]/)) covered.add(x.trim().split(/[\s:(]/)[0]);
    for (const [lib, pkg] of owner) if (!covered.has(pkg)) errs.push(`${ls.name}: ${path.basename(lib)} is in ${pkg}, which target ${ls.stage.name} does not install`);
    if ([...owner.values()].some((p) => p.startsWith('libwebsockets')) && !pkgs.includes('libwebsockets-evlib-uv')) {
      errs.push(`${ls.name}: libwebsockets runs on libuv through a plugin it dlopen()s: install libwebsockets-evlib-uv`);
    }
  }
  return errs;
});

check('every package the Dockerfile installs exists in Debian (apt-cache show)', () => {
  if (!have('apt-cache')) return 'skip: apt-cache not available';
  const all = new Set();
  for (const ls of lecternServices) for (const st of ls.stages) for (const p of aptPackages(st).pkgs) all.add(p);
  aptShow([...all]);
  return [...all].filter((p) => aptInfo.get(p) === null).map((p) => `no Debian package ${p}`);
});

// Lectern's configuration -----------------------------------------------------

const knobs = {};
for (const prog of new Set(lecternServices.map((l) => l.program).filter((p) => BINS[p]))) {
  check(`${prog} --print-config lists the knobs (${BINS[prog]})`, () => {
    if (!isFile(BINS[prog])) return [`${BINS[prog]} not found: build it with make (or set LECTERN_${prog === 'lectern-server' ? 'SERVER' : 'STORAGE'}_BIN)`];
    knobs[prog] = knobsOf(BINS[prog]);
    return [];
  });
}

// A throwaway JWT key file for --check-config (removed at exit).
let standIn = null;
function standInKeys() {
  if (!standIn) {
    const d = mkdtempSync(path.join(tmpdir(), 'lectern-validate-'));
    standIn = path.join(d, 'keys');
    writeFileSync(standIn, 'stand-in HS256 0123456789abcdef0123456789abcdef\n');
    process.on('exit', () => rmSync(d, { recursive: true, force: true }));
  }
  return standIn;
}

// The effective value of a knob in a service: config file, then the image's
// ENV, then compose's environment (as the program reads them).
function effective(ls, envName) {
  const k = knobs[ls.program]?.get(envName);
  const env = { ...stageEnv(ls.stage), ...envOf(ls.svc) };
  if (env[envName] !== undefined) return env[envName];
  if (k && ls.configFile) {
    const v = iniValues(read(ls.configFile)).get(`${k.section}.${k.key}`);
    if (v !== undefined) return v;
  }
  return k ? k.value : undefined;
}

for (const ls of lecternServices) {
  if (!knobs[ls.program]) continue;
  const kn = knobs[ls.program];
  const env = { ...stageEnv(ls.stage), ...envOf(ls.svc) };
  check(`service ${ls.name}: every LECTERN_* variable (compose and Dockerfile ENV) names a knob of ${ls.program}`, () => {
    const errs = [];
    for (const k of Object.keys(env)) {
      if (!k.startsWith('LECTERN_')) continue;
      if (!kn.has(k)) errs.push(`${k} is not a knob of ${ls.program} (see ${ls.program} --print-config)`);
      else if (env[k] === undefined) errs.push(`${k} has no value`);
    }
    return errs;
  });
  check(`service ${ls.name}: ${ls.program} --check-config accepts the configuration`, () => {
    if (!ls.configFile) return ['no config file (see the Dockerfile checks)'];
    const childEnv = {};
    for (const k of ['PATH', 'LD_LIBRARY_PATH', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) if (process.env[k]) childEnv[k] = process.env[k];
    for (const [k, v] of Object.entries(env)) if (v !== undefined) childEnv[k] = v;
    // --check-config reads the JWT key file: give it the host file mounted at
    // the container path. A key file that is not mounted or not there (the
    // operator's, absent from a checkout) is the business of the mount and
    // auth checks; here a stand-in key lets the rest be checked.
    if (childEnv.LECTERN_AUTH_KEYS) {
      const host = hostFileOf(ls.svc, childEnv.LECTERN_AUTH_KEYS);
      if (host && isFile(host)) childEnv.LECTERN_AUTH_KEYS = host;
      else childEnv.LECTERN_AUTH_KEYS = standInKeys();
    }
    const r = run(BINS[ls.program], ['--config', ls.configFile, '--check-config'], { env: childEnv });
    if (r.error) return [`${BINS[ls.program]}: ${r.error.message}`];
    if (r.status !== 0) return [`exit ${r.status}: ${(r.stderr + r.stdout).trim()}`];
    return [];
  });
  check(`service ${ls.name}: dependency hosts are compose services on their standard ports`, () => {
    const errs = [];
    for (const [hk, pk, want] of HOST_KNOBS[ls.program] || []) {
      if (!kn.has(hk)) continue;
      const host = effective(ls, hk);
      if (!serviceNames.has(host)) { errs.push(`${hk}=${host} is not a compose service`); continue; }
      const img = imageRepo(services[host].image);
      const std = IMAGE_PORTS[img];
      const port = Number(effective(ls, pk));
      if (std !== undefined && port !== std) errs.push(`${pk}=${port}, but ${host} (${img}) listens on ${std}`);
      if (want === 'mariadb' && !['mariadb', 'mysql'].includes(img)) errs.push(`${hk}=${host} runs ${img}, not MariaDB/MySQL`);
      if (want === 'rabbitmq' && img !== 'rabbitmq') errs.push(`${hk}=${host} runs ${img}, not RabbitMQ`);
      if (want === 'redis' && img !== 'redis') errs.push(`${hk}=${host} runs ${img}, not Redis`);
      if (!(host in dependsOn(ls.svc))) errs.push(`${ls.name} does not depend_on ${host}`);
    }
    for (const [k, v] of Object.entries(env)) {
      if (/^LECTERN_.*_HOST$/.test(k) && kn.has(k) && v && !serviceNames.has(v) && ip4(v) === null) errs.push(`${k}=${v} is not a compose service`);
    }
    return errs;
  });
  check(`service ${ls.name}: credentials match what the RabbitMQ, Redis and MariaDB services require`, () => {
    const errs = [];
    const pairs = ls.program === 'lectern-server'
      ? [['LECTERN_BUS_HOST', 'LECTERN_BUS_USER', 'LECTERN_BUS_PASSWORD', 'LECTERN_BUS_VHOST']]
      : [['LECTERN_AMQP_HOST', 'LECTERN_AMQP_USER', 'LECTERN_AMQP_PASSWORD', 'LECTERN_AMQP_VHOST']];
    for (const [hk, uk, pk, vk] of pairs) {
      const r = services[effective(ls, hk)];
      if (!r) continue;
      const re = envOf(r);
      const user = re.RABBITMQ_DEFAULT_USER ?? 'guest';
      const pass = re.RABBITMQ_DEFAULT_PASS ?? 'guest';
      const vhost = re.RABBITMQ_DEFAULT_VHOST ?? '/';
      if (user === 'guest') errs.push(`${effective(ls, hk)}: RabbitMQ's guest user only logs in from localhost: set RABBITMQ_DEFAULT_USER/PASS`);
      if (effective(ls, uk) !== user) errs.push(`${uk}=${effective(ls, uk)} but RabbitMQ creates user ${user}`);
      if (effective(ls, pk) !== pass) errs.push(`${pk} differs from RABBITMQ_DEFAULT_PASS`);
      if (effective(ls, vk) !== vhost) errs.push(`${vk}=${effective(ls, vk)} but RabbitMQ's vhost is ${vhost}`);
    }
    const rk = ls.program === 'lectern-server' && services[effective(ls, 'LECTERN_REDIS_HOST')];
    if (rk) {
      const cmd = asArray(rk.command).join(' ');
      const pass = /--requirepass\s+(\S+)/.exec(cmd)?.[1];
      if (!pass) errs.push(`${effective(ls, 'LECTERN_REDIS_HOST')}: Redis runs without a password (command: redis-server --requirepass ...)`);
      else if (effective(ls, 'LECTERN_REDIS_PASSWORD') !== pass) errs.push('LECTERN_REDIS_PASSWORD differs from the --requirepass of the Redis service');
    }
    const m = services[effective(ls, 'LECTERN_MYSQL_HOST')];
    if (m) {
      const me = envOf(m);
      const g = (a, b) => me[a] ?? me[b];
      if (effective(ls, 'LECTERN_MYSQL_USER') !== g('MARIADB_USER', 'MYSQL_USER')) errs.push(`LECTERN_MYSQL_USER=${effective(ls, 'LECTERN_MYSQL_USER')} but the database service creates ${g('MARIADB_USER', 'MYSQL_USER')}`);
      if (effective(ls, 'LECTERN_MYSQL_PASSWORD') !== g('MARIADB_PASSWORD', 'MYSQL_PASSWORD')) errs.push('LECTERN_MYSQL_PASSWORD differs from MARIADB_PASSWORD');
      if (effective(ls, 'LECTERN_MYSQL_DATABASE') !== g('MARIADB_DATABASE', 'MYSQL_DATABASE')) errs.push(`LECTERN_MYSQL_DATABASE=${effective(ls, 'LECTERN_MYSQL_DATABASE')} but the database service creates ${g('MARIADB_DATABASE', 'MYSQL_DATABASE')}`);
    }
    return errs;
  });
}

const serverLs = lecternServices.find((l) => l.program === 'lectern-server');
const workerLs = lecternServices.find((l) => l.program === 'lectern-storage');
const serverPort = serverLs && knobs['lectern-server'] ? Number(effective(serverLs, 'LECTERN_SERVER_PORT')) : null;
const workerPort = workerLs && knobs['lectern-storage'] ? Number(effective(workerLs, 'LECTERN_HTTP_PORT')) : null;
if (serverPort) note(`server.port in service ${serverLs.name}: ${serverPort}`);
// Where the server's /metrics is: metrics.listen's port, else server.port.
const serverMetricsListen = serverPort ? effective(serverLs, 'LECTERN_METRICS_LISTEN') || '' : '';
const serverMetricsPort = serverMetricsListen ? Number(serverMetricsListen.split(':').pop()) : serverPort;
if (workerPort) note(`http.port in service ${workerLs.name}: ${workerPort}`);

check('healthchecks probe /healthz on the port the program listens on; EXPOSE matches', () => {
  const errs = [];
  for (const [ls, port] of [[serverLs, serverPort], [workerLs, workerPort]]) {
    if (!ls || !port) continue;
    const env = { ...stageEnv(ls.stage), ...envOf(ls.svc) };
    const hc = ls.svc.healthcheck && ls.svc.healthcheck.test
      ? asArray(ls.svc.healthcheck.test).join(' ')
      : ls.stage.instrs.filter((i) => i.op === 'HEALTHCHECK').pop()?.args || '';
    const m = /https?:\/\/(?:127\.0\.0\.1|localhost):(\$\{([A-Z0-9_]+):-(\d+)\}|\d+)(\/\S*?)["'\s]/.exec(hc + ' ');
    if (!m) { errs.push(`${ls.name}: the healthcheck has no http://127.0.0.1:PORT/ URL`); continue; }
    const hport = m[2] ? Number(env[m[2]] ?? m[3]) : Number(m[1]);
    if (m[2] && knobs[ls.program] && !knobs[ls.program].has(m[2])) errs.push(`${ls.name}: the healthcheck reads ${m[2]}, which is not a knob`);
    if (m[2] && Number(m[3]) !== Number(knobs[ls.program]?.get(m[2])?.value)) errs.push(`${ls.name}: the healthcheck's default port ${m[3]} is not the knob's default ${knobs[ls.program]?.get(m[2])?.value}`);
    if (hport !== port) errs.push(`${ls.name}: the healthcheck probes port ${hport}, the program listens on ${port}`);
    if (m[4] !== '/healthz') errs.push(`${ls.name}: the healthcheck probes ${m[4]}, not /healthz`);
    const exposed = ls.stage.instrs.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map((x) => Number(x.split('/')[0]));
    const def = ls.configFile && Number(iniValues(read(ls.configFile)).get(ls.program === 'lectern-server' ? 'server.port' : 'http.port'));
    if (!exposed.includes(port) && !exposed.includes(def)) errs.push(`${ls.name}: EXPOSE ${exposed.join(' ')} does not include ${port}`);
  }
  return errs;
});

check('server: /metrics is not public: metrics.listen on a port of its own (haproxy forwards every path of server.port)', () => {
  if (!serverLs || !knobs['lectern-server']) return 'skip: no lectern-server service';
  if (!serverMetricsListen) return ['metrics.listen is empty: /metrics is served on server.port, which haproxy publishes'];
  if (!/^[^:]*:\d+$/.test(serverMetricsListen)) return [`metrics.listen=${serverMetricsListen} is not host:port`];
  if (serverMetricsPort === serverPort) return [`metrics.listen uses server.port ${serverPort}`];
  return [];
});

check('server: the lecture-room page (http.static_dir) is in the image', () => {
  if (!serverLs || !knobs['lectern-server']) return 'skip: no lectern-server service';
  const dir = effective(serverLs, 'LECTERN_HTTP_STATIC_DIR');
  if (!dir) return ['http.static_dir is empty: the page is not served'];
  const c = copiedFrom(serverLs.stage, dir);
  if (!c || c.from) return [`${dir} is not copied into target ${serverLs.stage.name} from the repository`];
  const src = path.join(serverLs.ctx, c.source);
  if (!isFile(path.join(src, 'index.html'))) return [`${rel(src)}/index.html does not exist`];
  return [];
});

check('server: compose requires keys: auth.mode=jwt, LECTERN_AUTH_KEYS a secret or bind mount of the operator\'s file under docker/secrets/ (no default key)', () => {
  if (!serverLs || !knobs['lectern-server']) return 'skip: no lectern-server service';
  const mode = effective(serverLs, 'LECTERN_AUTH_MODE');
  if (mode !== 'jwt') return [`auth.mode=${mode}: clients would connect as anyone; compose must run auth.mode=jwt with a key file`];
  const keys = effective(serverLs, 'LECTERN_AUTH_KEYS');
  if (!keys) return ['auth.mode=jwt without LECTERN_AUTH_KEYS'];
  const mounted = hostPathOf(serverLs.svc, keys)
    || asArray(serverLs.svc.secrets).some((s) => (typeof s === 'string' ? `/run/secrets/${s}` : s.target && s.target.startsWith('/') ? s.target : `/run/secrets/${s.target || s.source}`) === keys);
  if (!mounted) return [`LECTERN_AUTH_KEYS=${keys} is neither a bind mount nor a secret of ${serverLs.name}`];
  const host = hostFileOf(serverLs.svc, keys);
  if (host && !isOperatorSecret(path.relative(dockerDir, host)))
    return [`the key file ${rel(host)} is not under docker/secrets/: a key kept with the deployment files would be everyone's key`];
  return [];
});

// haproxy ----------------------------------------------------------------------

const haproxyEntry = Object.entries(services).find(([, s]) => imageRepo(s.image) === 'haproxy');
let haproxyCfgPath = null;
check('haproxy: its configuration is mounted at /usr/local/etc/haproxy/haproxy.cfg', () => {
  if (!haproxyEntry) return ['no haproxy service'];
  haproxyCfgPath = hostPathOf(haproxyEntry[1], '/usr/local/etc/haproxy/haproxy.cfg');
  if (!haproxyCfgPath) return ['no bind mount of /usr/local/etc/haproxy/haproxy.cfg'];
  if (!isFile(haproxyCfgPath)) return [`${rel(haproxyCfgPath)} does not exist`];
  return [];
});

if (haproxyCfgPath && isFile(haproxyCfgPath)) {
  const cfg = read(haproxyCfgPath).split('\n').map((l) => l.replace(/#.*$/, '').trim()).filter(Boolean);
  // Sections: [{kind, name, lines}]
  const sections = [];
  for (const l of cfg) {
    const m = /^(global|defaults|frontend|backend|listen|resolvers|peers|userlist)\b\s*(\S*)/.exec(l);
    if (m) sections.push({ kind: m[1], name: m[2], lines: [] });
    else if (sections.length) sections[sections.length - 1].lines.push(l);
  }
  const all = (kind) => sections.filter((s) => s.kind === kind);
  const backendServers = [];
  for (const b of [...all('backend'), ...all('listen')]) {
    for (const l of b.lines) {
      let m;
      if ((m = /^server-template\s+\S+\s+\S+\s+([^:\s]+):(\d+)(.*)$/.exec(l))) backendServers.push({ backend: b, host: m[1], port: Number(m[2]), opts: m[3], template: true });
      else if ((m = /^server\s+\S+\s+([^:\s]+):(\d+)(.*)$/.exec(l))) backendServers.push({ backend: b, host: m[1], port: Number(m[2]), opts: m[3], template: false });
    }
  }
  const defaultServer = (b) => b.lines.filter((l) => l.startsWith('default-server')).join(' ');
  check('haproxy.cfg: HTTP mode, option forwardfor, balance leastconn, health check GET /readyz', () => {
    const errs = [];
    const text = cfg.join('\n');
    if (!/^mode http$/m.test(text)) errs.push('no "mode http"');
    if (!/^option forwardfor\b/m.test(text)) errs.push('no "option forwardfor"');
    const backends = [...new Set(backendServers.map((s) => s.backend))];
    if (!backends.length) errs.push('no backend with servers');
    for (const b of backends) {
      if (!b.lines.includes('balance leastconn')) errs.push(`backend ${b.name}: not "balance leastconn"`);
      if (!b.lines.some((l) => /^option httpchk( GET)? \/readyz\b/.test(l))) errs.push(`backend ${b.name}: no "option httpchk GET /readyz"`);
    }
    for (const s of backendServers) if (!/\bcheck\b/.test(s.opts + ' ' + defaultServer(s.backend))) errs.push(`server ${s.host}:${s.port} is not health-checked`);
    return errs;
  });
  check('haproxy.cfg: the servers are found by DNS (server-template + resolvers nameserver 127.0.0.11:53), so --scale is followed', () => {
    const errs = [];
    const resolvers = new Map(all('resolvers').map((r) => [r.name, r]));
    const tmpl = backendServers.filter((s) => s.template);
    if (!tmpl.length) errs.push('no server-template: scaled replicas are not picked up');
    for (const s of tmpl) {
      const m = /\bresolvers\s+(\S+)/.exec(s.opts + ' ' + defaultServer(s.backend));
      if (!m) { errs.push(`server-template ${s.host}: no "resolvers" option`); continue; }
      const r = resolvers.get(m[1]);
      if (!r) errs.push(`server-template ${s.host}: resolvers ${m[1]} is not defined`);
      else if (!r.lines.some((l) => /^nameserver\s+\S+\s+127\.0\.0\.11:53$/.test(l))) errs.push(`resolvers ${m[1]}: no "nameserver ... 127.0.0.11:53" (Docker's DNS)`);
      if (!/\binit-addr\s+\S*none/.test(s.opts + ' ' + defaultServer(s.backend))) errs.push(`server-template ${s.host}: without "init-addr none" haproxy refuses to start before the servers exist`);
    }
    return errs;
  });
  check(`haproxy.cfg: backend servers are compose services on server.port (${serverPort})`, () => {
    const errs = [];
    for (const s of backendServers) {
      if (!serviceNames.has(s.host)) errs.push(`${s.host} is not a compose service`);
      else if (s.host === serverLs?.name && s.port !== serverPort) errs.push(`${s.host}:${s.port}, but the server listens on ${serverPort}`);
    }
    if (serverLs && !backendServers.some((s) => s.host === serverLs.name)) errs.push(`no backend server is the ${serverLs.name} service`);
    return errs;
  });
  check('haproxy: every port the service publishes is bound in haproxy.cfg', () => {
    const binds = new Set();
    for (const s of [...all('frontend'), ...all('listen')]) for (const l of s.lines) { const m = /^bind\s+\S*?:(\d+)/.exec(l); if (m) binds.add(Number(m[1])); }
    const pub = publishedPorts(haproxyEntry[1]);
    const errs = pub.filter((p) => !binds.has(p)).map((p) => `container port ${p} is published but haproxy binds only ${[...binds].join(', ')}`);
    if (!pub.length) errs.push('haproxy publishes no port');
    return errs;
  });

  // --- TLS at the load balancer --------------------------------------------
  // The frontends: their binds (port, options) and lines. A frontend that
  // binds a port compose publishes on every interface is public.
  const pubAll = publishedFull(haproxyEntry[1]);
  const publicPorts = new Set(pubAll.filter((p) => !isLoopback(p.ip)).map((p) => p.target));
  const fronts = [...all('frontend'), ...all('listen')].map((f) => ({
    ...f,
    binds: f.lines.filter((l) => l.startsWith('bind ')).map((l) => {
      const m = /^bind\s+\S*?:(\d+)\s*(.*)$/.exec(l);
      return { port: m ? Number(m[1]) : NaN, opts: m ? m[2] : '' };
    }),
  }));
  const isPublic = (f) => f.binds.some((b) => publicPorts.has(b.port));
  const serving = (f) => f.lines.some((l) => /^(default_backend|use_backend)\b/.test(l));
  const tlsFronts = fronts.filter((f) => isPublic(f) && serving(f));
  const globalLines = all('global').flatMap((g) => g.lines);
  const globalOpt = (k) => globalLines.filter((l) => l.startsWith(`${k} `)).map((l) => l.slice(k.length + 1).trim()).join(' ');
  check('haproxy.cfg: TLS on the public side: every public frontend that serves binds `ssl crt` (a mounted file), ALPN http/1.1, TLS 1.2+ and forward-secret AEAD ciphers only', () => {
    const errs = [];
    if (!tlsFronts.length) return ['no frontend binds a published port and forwards to the servers'];
    if (!publicPorts.has(443)) errs.push('compose does not publish port 443 (HTTPS) on every interface');
    for (const f of tlsFronts) {
      for (const b of f.binds) {
        const where = `frontend ${f.name} bind :${b.port}`;
        const crt = /(?:^|\s)ssl(\s|$)/.test(b.opts) ? /\bcrt\s+(\S+)/.exec(b.opts) : null;
        if (!crt) { errs.push(`${where}: no "ssl crt <file>": plain HTTP on the public side`); continue; }
        const host = hostFileOf(haproxyEntry[1], crt[1]);
        if (!host) errs.push(`${where}: crt ${crt[1]} is neither a bind mount nor a secret of the haproxy service`);
        const alpn = /\balpn\s+(\S+)/.exec(b.opts);
        if (!alpn || !alpn[1].split(',').includes('http/1.1')) errs.push(`${where}: no "alpn http/1.1"`);
        else if (alpn[1].split(',').includes('h2')) errs.push(`${where}: alpn offers h2, where WebSocket upgrades (HTTP/1.1) do not exist`);
        const minVer = /\bssl-min-ver\s+(\S+)/.exec(`${b.opts} ${globalOpt('ssl-default-bind-options')}`);
        if (!minVer || !/^TLSv1\.[23]$/.test(minVer[1])) errs.push(`${where}: no ssl-min-ver TLSv1.2 (on the bind or in ssl-default-bind-options): older versions accepted`);
      }
    }
    const ciphers = (/\bciphers\s+(\S+)/.exec(tlsFronts.flatMap((f) => f.binds.map((b) => b.opts)).join(' ')) || [])[1] || globalOpt('ssl-default-bind-ciphers');
    if (!ciphers) errs.push('no ssl-default-bind-ciphers (nor ciphers on the bind): OpenSSL\'s defaults include suites without forward secrecy');
    for (const c of (ciphers || '').split(':').filter(Boolean)) {
      if (!/^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/.test(c)) errs.push(`cipher ${c} is not forward-secret AEAD (ECDHE with AES-GCM or ChaCha20-Poly1305)`);
    }
    return errs;
  });
  check('haproxy.cfg: plain HTTP on the public side only redirects: 301 to https, no backend', () => {
    const errs = [];
    const plain = fronts.filter((f) => isPublic(f) && f.binds.some((b) => publicPorts.has(b.port) && !/(?:^|\s)ssl(\s|$)/.test(b.opts)));
    const redirects = plain.filter((f) => f.lines.some((l) => /^http-request\s+redirect\s+(scheme\s+https|location\s+https:\/\/)\S*.*\bcode\s+301\b/.test(l)));
    if (!redirects.length) errs.push('no public plain-HTTP frontend answers with "http-request redirect scheme https code 301" (or a location https://...)');
    for (const f of plain) {
      if (!redirects.includes(f)) errs.push(`frontend ${f.name} binds public port(s) ${f.binds.map((b) => b.port).join(', ')} without TLS and does not redirect`);
      if (serving(f)) errs.push(`frontend ${f.name} serves plain HTTP to the public (a backend)`);
    }
    if (!publicPorts.has(80)) errs.push('compose does not publish port 80 (the redirect) on every interface');
    return errs;
  });
  check('haproxy.cfg: HSTS: every HTTPS answer sets Strict-Transport-Security with max-age of at least 180 days', () => {
    const errs = [];
    for (const f of tlsFronts) {
      const l = f.lines.find((x) => /^http-(after-)?response\s+(set|add)-header\s+Strict-Transport-Security\b/i.test(x));
      if (!l) { errs.push(`frontend ${f.name}: no "http-after-response set-header Strict-Transport-Security"`); continue; }
      if (!/^http-after-response\b/.test(l)) errs.push(`frontend ${f.name}: HSTS set by http-response misses haproxy's own answers (403, 503): use http-after-response`);
      const m = /max-age=(\d+)/.exec(l);
      if (!m) errs.push(`frontend ${f.name}: Strict-Transport-Security without max-age`);
      else if (Number(m[1]) < 15552000) errs.push(`frontend ${f.name}: HSTS max-age=${m[1]} is less than 180 days (15552000)`);
    }
    return errs;
  });
  check('haproxy.cfg: /metrics is refused (403) on the public side; the stats page and haproxy\'s metrics only on a port published on 127.0.0.1', () => {
    const errs = [];
    for (const f of fronts.filter(isPublic)) {
      if (f.lines.some((l) => /^stats\s+(enable|uri)\b/.test(l))) errs.push(`frontend ${f.name}: stats page on a public port`);
      if (f.lines.some((l) => /prometheus-exporter/.test(l))) errs.push(`frontend ${f.name}: haproxy's metrics on a public port`);
    }
    for (const f of tlsFronts) {
      const acls = new Map(f.lines.map((l) => /^acl\s+(\S+)\s+(.*)$/.exec(l)).filter(Boolean).map((m) => [m[1], m[2]]));
      const denies = f.lines.filter((l) => /^http-request\s+deny\b/.test(l) && /\bdeny_status\s+403\b/.test(l));
      const covers = denies.some((l) => {
        const cond = /\b(?:if|unless)\s+(.*)$/.exec(l)?.[1] || '';
        if (/\{[^}]*\bmetrics\b[^}]*\}/.test(cond)) return true;
        return cond.split(/\s+/).some((w) => acls.has(w) && /\bpath\b/.test(acls.get(w)) && /metrics/.test(acls.get(w)));
      });
      if (!covers) errs.push(`frontend ${f.name}: no "http-request deny deny_status 403" for /metrics (a path acl naming it)`);
    }
    for (const f of fronts.filter((x) => x.lines.some((l) => /^stats\s+enable\b/.test(l) || /prometheus-exporter/.test(l)))) {
      for (const b of f.binds) {
        const pubs = pubAll.filter((p) => p.target === b.port);
        for (const p of pubs) if (!isLoopback(p.ip)) errs.push(`frontend ${f.name} (stats) on port ${b.port}, published on every interface`);
      }
    }
    return errs;
  });
  check('server: limits.trusted_proxies is valid and covers haproxy (X-Forwarded-For)', () => {
    if (!serverLs || !knobs['lectern-server']) return 'skip: no lectern-server service';
    const tp = (effective(serverLs, 'LECTERN_LIMITS_TRUSTED_PROXIES') || '').split(',').map((x) => x.trim()).filter(Boolean);
    if (!tp.length) return ['limits.trusted_proxies is empty: every client would share haproxy\'s address (max_conns_per_ip)'];
    // --check-config does not parse this list (the server does at start).
    const errs = tp.filter((x) => !cidr(x) && !isIPv6ish(x)).map((x) => `"${x}" is not an address or CIDR`);
    const nets = Array.isArray(haproxyEntry[1].networks) ? {} : haproxyEntry[1].networks || {};
    const fixed = Object.values(nets).map((c) => c && c.ipv4_address).filter(Boolean);
    const cover = (a) => tp.some((x) => cidr(x) && inCidr(ip4(a), cidr(x)));
    if (fixed.length) {
      for (const a of fixed) if (!cover(a)) errs.push(`haproxy's address ${a} is not in ${tp.join(',')}`);
    } else {
      const subnets = Object.values(compose.networks || {}).flatMap((nw) => ((nw || {}).ipam || {}).config || []).map((p) => p.subnet).filter(Boolean);
      if (!subnets.length) errs.push('haproxy has no fixed address and the network no ipam subnet: trusted_proxies cannot be known');
      for (const s of subnets) if (!tp.some((x) => cidr(x) && cidr(s) && cidr(x).bits <= cidr(s).bits && inCidr(cidr(s).base, cidr(x)))) errs.push(`subnet ${s} (haproxy's) is not in ${tp.join(',')}`);
    }
    return errs;
  });
  check('haproxy -c accepts haproxy.cfg', () => {
    if (!have('haproxy')) return 'skip: haproxy not installed';
    const r = run('haproxy', ['-c', '-f', haproxyCfgPath]);
    const out = (r.stdout + r.stderr).trim();
    const warnings = out.split('\n').filter((l) => /\[(WARNING|ALERT)\]/.test(l));
    if (r.status === 0 && !warnings.length) return [];
    // Docker's resolver (127.0.0.11), the service names and the files
    // compose mounts (the certificate, a secret) exist only in the
    // container: check a copy with the resolver and the servers replaced by
    // 127.0.0.1 and each crt by its host file, or, for the operator's
    // certificate absent from a checkout, a throw-away self-signed one.
    if (/resolv|could not resolve|127\.0\.0\.11|nameserver|SSL certificate/i.test(out)) {
      const dir = mkdtempSync(path.join(tmpdir(), 'lectern-haproxy-'));
      try {
        let text = read(haproxyCfgPath).replace(/127\.0\.0\.11/g, '127.0.0.1');
        for (const s of backendServers) text = text.replaceAll(`${s.host}:${s.port}`, `127.0.0.1:${s.port}`);
        const mapped = [];
        text = text.replace(/(\bcrt\s+)(\S+)/g, (all2, kw, p) => {
          let host = hostFileOf(haproxyEntry[1], p);
          if (!host || !isFile(host)) {
            host = path.join(dir, `self-signed-${mapped.length}.pem`);
            const gen = run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
              '-keyout', `${host}.key`, '-out', `${host}.crt`, '-days', '1', '-subj', '/CN=localhost']);
            if (gen.status !== 0) throw new Error(`openssl could not make a stand-in certificate: ${gen.stderr}`);
            writeFileSync(host, read(`${host}.crt`) + read(`${host}.key`));
          }
          mapped.push(`${p} -> ${host}`);
          return kw + host;
        });
        const f = path.join(dir, 'haproxy.cfg');
        writeFileSync(f, text);
        const r2 = run('haproxy', ['-c', '-f', f]);
        const out2 = (r2.stdout + r2.stderr).trim();
        if (r2.status === 0 && !/\[(WARNING|ALERT)\]/.test(out2)) {
          note(`haproxy -c needed the container's view; a copy with 127.0.0.1 for the resolver and servers${mapped.length ? ` and ${mapped.join(', ')}` : ''} is valid`);
          return [];
        }
        return [`haproxy -c (with DNS names and certificates replaced) exit ${r2.status}:\n${out2}`];
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    return [`exit ${r.status}:\n${out}`];
  });
}

// Prometheus -------------------------------------------------------------------

const promEntry = Object.entries(services).find(([, s]) => imageRepo(s.image) === 'prom/prometheus');
let prom = null;
let promPath = null;
check('prometheus: prometheus.yml is mounted at /etc/prometheus/prometheus.yml and parses', () => {
  if (!promEntry) return ['no prom/prometheus service'];
  promPath = hostPathOf(promEntry[1], '/etc/prometheus/prometheus.yml');
  if (!promPath) return ['no bind mount of /etc/prometheus/prometheus.yml'];
  if (!isFile(promPath)) return [`${rel(promPath)} does not exist`];
  const doc = YAML.parseDocument(read(promPath), { uniqueKeys: true });
  if (doc.errors.length) return doc.errors.map((e) => e.message);
  prom = doc.toJS();
  return [];
});
if (prom) {
  check('prometheus.yml: each scrape_config has a unique job_name and targets; dns_sd_configs are type A with a port', () => {
    const errs = [];
    const sc = prom.scrape_configs;
    if (!Array.isArray(sc) || !sc.length) return ['no scrape_configs'];
    const jobs = new Set();
    for (const s of sc) {
      if (!s.job_name) errs.push('a scrape_config without job_name');
      else if (jobs.has(s.job_name)) errs.push(`job_name ${s.job_name} twice`);
      jobs.add(s.job_name);
      if (!s.dns_sd_configs && !s.static_configs) errs.push(`${s.job_name}: neither dns_sd_configs nor static_configs`);
      for (const d of asArray(s.dns_sd_configs)) {
        if (!Array.isArray(d.names) || !d.names.length) errs.push(`${s.job_name}: dns_sd_configs without names`);
        if ((d.type || 'SRV') !== 'A' && d.type !== 'AAAA') errs.push(`${s.job_name}: dns_sd_configs type ${d.type || 'SRV (default)'}: Docker's DNS answers A records`);
        if (!d.port) errs.push(`${s.job_name}: dns_sd_configs type A needs a port`);
      }
    }
    return errs;
  });
  check(`prometheus.yml: dns_sd names are compose services on their metrics ports (server ${serverMetricsPort}, storage-worker ${workerPort})`, () => {
    const errs = [];
    const scraped = new Set();
    for (const s of asArray(prom.scrape_configs)) {
      for (const d of asArray(s.dns_sd_configs)) {
        for (const nm of asArray(d.names)) {
          if (!serviceNames.has(nm)) { errs.push(`${s.job_name}: ${nm} is not a compose service`); continue; }
          scraped.add(nm);
          if (nm === serverLs?.name && d.port !== serverMetricsPort) {
            errs.push(serverMetricsListen
              ? `${s.job_name}: ${nm} port ${d.port}, but the server serves /metrics on ${serverMetricsPort} (metrics.listen)`
              : `${s.job_name}: ${nm} port ${d.port}, but server.port is ${serverPort}`);
          }
          if (nm === workerLs?.name && d.port !== workerPort) errs.push(`${s.job_name}: ${nm} port ${d.port}, but the worker's http.port is ${workerPort}`);
        }
        if (s.metrics_path && s.metrics_path !== '/metrics') errs.push(`${s.job_name}: metrics_path ${s.metrics_path}`);
      }
    }
    for (const ls of [serverLs, workerLs]) if (ls && !scraped.has(ls.name)) errs.push(`${ls.name} is not scraped through dns_sd_configs`);
    return errs;
  });
  check('promtool check config', () => {
    if (!have('promtool')) return 'skip: promtool not installed (Debian package prometheus)';
    const r = run('promtool', ['check', 'config', '--syntax-only', promPath]);
    const r2 = r.status === 0 ? r : run('promtool', ['check', 'config', promPath]);
    return r2.status === 0 ? [] : [`exit ${r2.status}: ${(r2.stdout + r2.stderr).trim()}`];
  });
}

// Grafana ------------------------------------------------------------------------

const grafEntry = Object.entries(services).find(([, s]) => imageRepo(s.image) === 'grafana/grafana');
const datasourceUids = new Set();
const dashboardFiles = [];
check('grafana: provisioning directories are mounted and their files parse', () => {
  if (!grafEntry) return ['no grafana/grafana service'];
  const errs = [];
  for (const kind of ['datasources', 'dashboards']) {
    const dir = hostPathOf(grafEntry[1], `/etc/grafana/provisioning/${kind}`);
    if (!dir || !isDir(dir)) { errs.push(`/etc/grafana/provisioning/${kind} is not a mounted directory`); continue; }
    const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
    if (!files.length) errs.push(`${rel(dir)}: no .yaml file`);
    for (const f of files) {
      const doc = YAML.parseDocument(read(path.join(dir, f)), { uniqueKeys: true });
      if (doc.errors.length) { errs.push(...doc.errors.map((e) => `${f}: ${e.message}`)); continue; }
      const y = doc.toJS();
      if (!y || y.apiVersion !== 1) errs.push(`${rel(path.join(dir, f))}: apiVersion is not 1`);
      if (kind === 'datasources') {
        for (const ds of asArray(y && y.datasources)) {
          if (ds.uid) datasourceUids.add(ds.uid);
          if (ds.type === 'prometheus') {
            let u;
            try { u = new URL(ds.url); } catch { errs.push(`datasource ${ds.name}: url ${ds.url} is not a URL`); continue; }
            if (!serviceNames.has(u.hostname)) errs.push(`datasource ${ds.name}: ${u.hostname} is not a compose service`);
            else if (imageRepo(services[u.hostname].image) !== 'prom/prometheus') errs.push(`datasource ${ds.name}: ${u.hostname} is not Prometheus`);
            else if (Number(u.port || 80) !== 9090) errs.push(`datasource ${ds.name}: port ${u.port || 80}, Prometheus listens on 9090`);
          }
        }
      } else {
        for (const p of asArray(y && y.providers)) {
          const target = p.options && p.options.path;
          if (!target) { errs.push(`provider ${p.name}: no options.path`); continue; }
          const host = hostPathOf(grafEntry[1], target);
          if (!host || !isDir(host)) errs.push(`provider ${p.name}: options.path ${target} is not a mounted directory`);
          else for (const d of readdirSync(host).filter((x) => x.endsWith('.json'))) dashboardFiles.push(path.join(host, d));
        }
      }
    }
  }
  const home = envOf(grafEntry[1]).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
  if (home && !isFile(hostPathOf(grafEntry[1], home) || '')) errs.push(`GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ${home} is not a mounted file`);
  if (!dashboardFiles.some((f) => path.basename(f) === 'lectern.json')) errs.push('no provider loads docker/grafana/dashboards/lectern.json');
  return errs;
});

const exposed = exposedMetrics();
note(`metrics in server/metrics.c and storage-worker/metrics.c: ${exposed.size}`);
for (const f of dashboardFiles) {
  let dash = null;
  check(`dashboard ${rel(f)}: parses as JSON, has a uid, title and panels`, () => {
    try { dash = JSON.parse(read(f)); } catch (e) { return [e.message]; }
    const errs = [];
    if (!dash.uid) errs.push('no uid');
    if (!dash.title) errs.push('no title');
    if (!Array.isArray(dash.panels) || !dash.panels.length) errs.push('no panels');
    const ids = new Set();
    const walkPanels = (ps) => { for (const p of ps || []) { if (ids.has(p.id)) errs.push(`panel id ${p.id} twice`); ids.add(p.id); walkPanels(p.panels); } };
    walkPanels(dash.panels);
    return errs;
  });
  if (!dash) continue;
  const exprs = [];
  const dsRefs = [];
  (function walk(x) {
    if (Array.isArray(x)) return x.forEach(walk);
    if (!x || typeof x !== 'object') return;
    if (typeof x.expr === 'string') exprs.push(x.expr);
    if (x.query && typeof x.query === 'string' && x.type === 'query') exprs.push(x.query);
    if (x.query && typeof x.query === 'object' && typeof x.query.query === 'string') exprs.push(x.query.query);
    if (x.datasource && typeof x.datasource === 'object' && x.datasource.uid) dsRefs.push(x.datasource.uid);
    Object.values(x).forEach(walk);
  })(dash);
  const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\blectern_[a-z0-9_]+/g)].map((m) => baseMetric(m[0]))));
  check(`dashboard ${rel(f)}: every lectern_* metric in its queries is exposed by server/metrics.c or storage-worker/metrics.c`, () => {
    const errs = [];
    if (!exprs.length) errs.push('no queries');
    for (const m of [...used].sort()) if (!exposed.has(m)) errs.push(`${m} is not exposed by the programs`);
    return errs;
  });
  check(`dashboard ${rel(f)}: queries use a provisioned datasource uid`, () => {
    return [...new Set(dsRefs)].filter((u) => !datasourceUids.has(u) && !/^(-- Grafana --|grafana|-- Mixed --|-- Dashboard --)$/.test(u))
      .map((u) => `datasource uid ${u} is not provisioned (have: ${[...datasourceUids].join(', ')})`);
  });
  if (path.basename(f) === 'lectern.json') {
    check(`dashboard ${rel(f)}: shows every metric the Operations issue asks for`, () => {
      return DASHBOARD_REQUIRED.filter((m) => !used.has(m)).map((m) => `no panel queries ${m}`);
    });
    // docs/operations.md says the dashboard has a panel for each metric of
    // its "Watch" table: keep the two in step.
    check(`dashboard ${rel(f)}: shows every metric of the Watch table in docs/operations.md`, () => {
      const ops = path.join(root, 'docs', 'operations.md');
      if (!isFile(ops)) return 'skip: no docs/operations.md';
      const m = /^## Watch\b([\s\S]*?)(?=^## |$(?![\s\S]))/m.exec(read(ops));
      if (!m) return 'skip: docs/operations.md has no "## Watch" section';
      const named = new Set([...m[1].matchAll(/\blectern_[a-z0-9_]*[a-z0-9]/g)].map((x) => baseMetric(x[0])));
      return [...named].filter((x) => !used.has(x)).map((x) => `docs/operations.md lists ${x}; no panel queries it`);
    });
  }
}

finish();
