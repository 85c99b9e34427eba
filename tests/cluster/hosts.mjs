// hosts.mjs — the test hosts of the multi-host scenarios, and the services
// on them.
//
// tests/cluster/run.sh made the hosts before this process started: network
// namespaces <prefix>-h1 … -cl on one bridge (LECTERN_MH_MODE=netns; this
// process then runs inside <prefix>-cl, the clients' host), or loopback
// addresses (LECTERN_MH_MODE=loopback). Everything here is the same in both
// modes but for three things: a command runs on a host through
// `ip netns exec`, epmd is shared on loopback (it always listens on
// 127.0.0.1 as well, so one per host would clash), and a cut link is a
// switch port set down rather than SIGSTOP of the host's processes.
//
// Services run through scripts/services (the same script `make run` uses),
// one set per host, with the host's address (LECTERN_BIND_ADDRESS) and its
// own directory under LECTERN_MH_VAR. Lectern programs are spawned directly
// and their output is scanned for sanitizer reports (helpers.mjs).
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot, spawnProcess, waitFor } from '../integration/helpers.mjs';

export const mode = process.env.LECTERN_MH_MODE || 'loopback';
const prefix = process.env.LECTERN_MH_PREFIX || 'lx';
const varDir = process.env.LECTERN_MH_VAR || '/tmp/lectern-mh';
const last = { h1: 11, h2: 12, h3: 13, db: 20, cl: 30 };

export const PORTS = {
  redis: 6391, sentinel: 26391, amqp: 5691, dist: 25691, epmd: 4391, webStomp: 15691,
  mysql: 3391, server: 8391, worker: 9391, lb: 8390,
};

export function ip(host) {
  return mode === 'netns' ? `10.231.0.${last[host]}` : `127.0.1.${last[host]}`;
}

export const serverHosts = ['h1', 'h2', 'h3'];

// libwebsockets listens on every address whatever the address asked for, so
// on loopback the hosts' Lectern programs need ports of their own.
export function serverPort(host) {
  return PORTS.server + (mode === 'netns' ? 0 : serverHosts.indexOf(host));
}
export function workerPort(host) {
  return PORTS.worker + (mode === 'netns' ? 0 : serverHosts.indexOf(host));
}
// On loopback the hosts share one epmd, which knows nodes by name and
// distribution port: each node needs its own of both there.
const rabbitNode = (h) => (mode === 'netns' ? `rabbit@${ip(h)}` : `rabbit-${h}@${ip(h)}`);
const distPort = (h) => PORTS.dist + (mode === 'netns' ? 0 : serverHosts.indexOf(h));

// argv prefix that runs a command on `host`.
function on(host) {
  return mode === 'netns' ? ['ip', 'netns', 'exec', `${prefix}-${host}`] : [];
}

function run(host, cmd, args, { env = {}, timeout = 120000 } = {}) {
  const argv = [...on(host), cmd, ...args];
  return new Promise((resolve, reject) => {
    execFile(argv[0], argv.slice(1), { env: { ...process.env, ...env }, timeout, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => (err
        ? reject(new Error(`${host}: ${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`))
        : resolve(stdout)));
  });
}

// --- services ----------------------------------------------------------------

function serviceEnv(host, extra = {}) {
  const rabbitHosts = serverHosts.map(ip);
  return {
    LECTERN_VAR_DIR: path.join(varDir, host),
    LECTERN_BIND_ADDRESS: ip(host),
    LECTERN_REDIS_PORT: PORTS.redis,
    LECTERN_AMQP_PORT: PORTS.amqp,
    LECTERN_RABBIT_DIST_PORT: serverHosts.includes(host) ? distPort(host) : PORTS.dist,
    LECTERN_EPMD_PORT: PORTS.epmd,
    LECTERN_WEB_STOMP_PORT: PORTS.webStomp,
    LECTERN_MYSQL_PORT: PORTS.mysql,
    LECTERN_SENTINEL_PORT: PORTS.sentinel,
    LECTERN_RABBIT_NODENAME: rabbitNode(host),
    LECTERN_RABBIT_CLUSTER: serverHosts.map(rabbitNode).join(','),
    LECTERN_RABBIT_COOKIE: 'lectern-multihost-cookie',
    LECTERN_EPMD_ADDRESS: mode === 'netns' ? ip(host) : rabbitHosts.join(','),
    LECTERN_SENTINEL_MASTER: `${ip('h1')} ${PORTS.redis}`,
    LECTERN_SENTINEL_QUORUM: 2,
    LECTERN_SENTINEL_DOWN_MS: 1000,
    LECTERN_SENTINEL_FAILOVER_MS: 3000,
    LECTERN_SERVICE_TIMEOUT: 90,
    ...extra,
  };
}

export function services(host, action, names, extra = {}) {
  return run(host, path.join(repoRoot, 'scripts', 'services'), [action, ...names],
    { env: serviceEnv(host, extra) });
}

export function rabbitmqctl(host, ...args) {
  const script = 'set -a; eval "$("$0" env)"; HOME=$LECTERN_RABBIT_HOME exec /usr/lib/rabbitmq/bin/rabbitmqctl "$@"';
  return run(host, 'bash', ['-c', script, path.join(repoRoot, 'scripts', 'services'), ...args],
    { env: serviceEnv(host) });
}

export function pidOf(host, file) {
  return Number(readFileSync(path.join(varDir, host, file), 'utf8').trim());
}

export function redisCli(host, port, ...args) {
  return run('cl', 'redis-cli', ['-h', ip(host), '-p', String(port), ...args], { timeout: 10000 });
}

export function sql(query) {
  return run('cl', 'mariadb', ['--no-defaults', `-h${ip('db')}`, `-P${PORTS.mysql}`, '-ulectern', '-plectern',
    '-N', '-B', 'lectern', '-e', query], { timeout: 30000 })
    .then((out) => out.split('\n').filter((l) => l.length).map((l) => l.split('\t')));
}

// --- Lectern programs ----------------------------------------------------------

const procs = [];

function program(host, bin, argv, what) {
  const cmd = [...on(host), bin, ...argv];
  const h = spawnProcess(cmd[0], cmd.slice(1), { what, stopTimeout: 15000 });
  const p = { ...h, host, exit: h.waitExit(), stop: (t = 15000) => h.stop({ timeout: t }) };
  procs.push(p);
  return p;
}

function setsArgv(sets) {
  return Object.entries(sets).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
}

const amqpList = () => serverHosts.map((h) => `${ip(h)}:${PORTS.amqp}`).join(',');
const sentinelList = () => serverHosts.map((h) => `${ip(h)}:${PORTS.sentinel}`).join(',');

export function startServer(host, sets = {}) {
  return program(host, process.env.LECTERN_SERVER_BIN, ['--port', String(serverPort(host)), ...setsArgv({
    'server.id': `server-${host}`,
    // Each test host listens on its own address (not loopback in network
    // namespaces): without tokens that takes insecure-dev.
    'auth.mode': 'insecure-dev',
    'bus.host': amqpList(),
    'bus.port': PORTS.amqp,
    'bus.heartbeat_s': 2,
    'bus.backoff_max_ms': 1000,
    'storage.queue_type': 'quorum',
    'storage.confirm_timeout_ms': 30000,
    'redis.sentinels': sentinelList(),
    'redis.wait_replicas': 1,
    'redis.backoff_max_ms': 1000,
    'registry.ttl_ms': 4000,
    'log.level': process.env.MH_LOG_LEVEL || 'info',
    'mysql.host': ip('db'),
    'mysql.port': PORTS.mysql,
    'limits.send_rate': 0,
    'limits.frame_rate': 0,
    'limits.send_bytes_rate': 0,
    'limits.max_conns_per_ip': 0,
    'limits.trusted_proxies': ip('cl'),
    ...sets,
  })], `lectern-server ${host}`);
}

export function startWorker(host, sets = {}) {
  return program(host, process.env.LECTERN_STORAGE_BIN, setsArgv({
    'amqp.host': amqpList(),
    'amqp.port': PORTS.amqp,
    'amqp.heartbeat_s': 2,
    'amqp.backoff_max_ms': 1000,
    'log.level': process.env.MH_LOG_LEVEL || 'info',
    'storage.queue_type': 'quorum',
    'mysql.host': ip('db'),
    'mysql.port': PORTS.mysql,
    'mysql.backoff_max_ms': 1000,
    'http.port': workerPort(host),
    ...sets,
  }), `lectern-storage ${host}`);
}

export function startHaproxy() {
  // The config is generated by the project's own script (scripts/haproxy-config).
  return run('cl', path.join(repoRoot, 'scripts', 'haproxy-config'),
    [`${ip('cl')}:${PORTS.lb}`, ...serverHosts.map((h) => `${ip(h)}:${serverPort(h)}`)])
    .then(async (cfg) => {
      const { writeFileSync, mkdirSync } = await import('node:fs');
      mkdirSync(path.join(varDir, 'cl'), { recursive: true });
      const file = path.join(varDir, 'cl', 'haproxy.cfg');
      writeFileSync(file, cfg);
      return program('cl', 'haproxy', ['-W', '-db', '-f', file], 'haproxy');
    });
}

export async function httpGet(host, port, urlPath) {
  const r = await fetch(`http://${ip(host)}:${port}${urlPath}`, { signal: AbortSignal.timeout(3000) });
  return { status: r.status, text: await r.text() };
}

export async function ready(host, port = serverPort(host), timeout = 60000) {
  await waitFor(async () => {
    try { return (await httpGet(host, port, '/readyz')).status === 200; } catch { return false; }
  }, { timeout, interval: 200, what: `/readyz on ${host}:${port}` });
}

// --- faults ------------------------------------------------------------------------

// Processes of a host (loopback mode: the ones this run started there).
function hostPids(host) {
  const pids = procs.filter((p) => p.host === host && !p.exited()).map((p) => p.proc.pid);
  for (const f of ['rabbitmq/rabbitmq.pid', 'redis/redis.pid', 'sentinel/sentinel.pid']) {
    try { pids.push(pidOf(host, f)); } catch { /* not running there */ }
  }
  return pids;
}

let stopped = [];

// Cut `host` off the network: its switch port goes down (netns), or every
// process of it is stopped (loopback).
export async function cut(host) {
  if (mode === 'netns') {
    await run('cl', 'ip', ['-n', `${prefix}-sw`, 'link', 'set', host, 'down']);
    return;
  }
  stopped = hostPids(host);
  for (const pid of stopped) try { process.kill(pid, 'SIGSTOP'); } catch { /* gone */ }
}

export async function restore(host) {
  if (mode === 'netns') {
    await run('cl', 'ip', ['-n', `${prefix}-sw`, 'link', 'set', host, 'up']);
    return;
  }
  for (const pid of stopped) try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
  stopped = [];
}

export async function stopAll() {
  for (const pid of stopped) try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
  const codes = {};
  for (const p of [...procs].reverse()) {
    const r = await p.stop();
    codes[p.what] = r;
  }
  // MH_LOG_DIR=dir keeps every program's log lines there (for diagnosis).
  if (process.env.MH_LOG_DIR) {
    mkdirSync(process.env.MH_LOG_DIR, { recursive: true });
    for (const p of procs) {
      writeFileSync(path.join(process.env.MH_LOG_DIR, `${p.what.replace(/\W+/g, '-')}.log`), `${p.logs.join('\n')}\n`);
    }
  }
  return codes;
}
