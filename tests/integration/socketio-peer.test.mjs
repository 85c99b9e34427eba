// The benchmarks' Socket.IO peer (tests/peers/socketio/server.mjs) and the
// generator's --protocol socketio: docs/benchmarks.md compares Lectern with
// them, so the peer must deliver across its processes through Redis and the
// generator must count what a Socket.IO client receives as it counts STOMP.
//
// One redis-server of its own (a plain child process on a free port) and
// two peer processes sharing it, as scripts/bench runs them.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, http200, repoRoot, spawnReady } from './helpers.mjs';

const loadBin = process.env.LECTERN_LOAD_BIN ||
  path.join(repoRoot, 'build', 'release', 'tests', 'lectern-load');
const peerScript = path.join(repoRoot, 'tests', 'peers', 'socketio', 'server.mjs');

const handles = [];
const dirs = [];
after(async () => {
  for (const h of handles.reverse()) await h.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function redisPing(port) {
  return new Promise((resolve) => execFile('redis-cli', ['-p', String(port), 'PING'],
    (err, stdout) => resolve(!err && stdout.trim() === 'PONG')));
}

async function startRedis() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lectern-sio-'));
  dirs.push(dir);
  const port = await freePort();
  const h = await spawnReady('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--save', '', '--appendonly', 'no'], { what: `redis-server :${port}`, timeout: 10000, ready: () => redisPing(port) });
  handles.push(h);
  return { port, pid: h.pid };
}

async function startPeer(redisPort) {
  const port = await freePort();
  const h = await spawnReady(process.execPath, [peerScript, '--port', String(port),
    '--redis', `redis://127.0.0.1:${redisPort}`], { what: `socketio peer :${port}`, ready: http200(port, '/healthz') });
  handles.push(h);
  return { ...h, port, url: `ws://127.0.0.1:${port}/` };
}

function runLoad(args) {
  return new Promise((resolve) => {
    const proc = spawn(loadBin, [...args, '--no-progress'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { err += d; });
    proc.on('exit', (code) => {
      let json = null;
      try { json = JSON.parse(out); } catch { /* left null: the assertions say what came */ }
      resolve({ code, json, out, err });
    });
  });
}

describe('Socket.IO peer', () => {
  test('lectern-load --protocol socketio over two peer processes: every message reaches every member of its room, across processes through Redis, and the peers stop cleanly', async () => {
    const redis = await startRedis();
    const a = await startPeer(redis.port);
    const b = await startPeer(redis.port);
    const { code, json: r, out, err } = await runLoad(['--protocol', 'socketio', '--url', a.url, '--url', b.url,
      '--watch-pid', String(a.pid), '--watch-pid', String(b.pid), '--watch-extra', `redis=${redis.pid}`,
      '--scenario', 'small', '--duration', '2']);
    assert.equal(code, 0, `${err}\n${out}`);
    assert.equal(r.protocol, 'socketio');
    assert.equal(r.errors.first, '', 'no error');
    assert.equal(r.connections.ok, 110, '100 subscribers (ready at their join ack) and 10 publishers');
    assert.equal(r.connections.failed, 0);
    assert.equal(r.connections.dropped, 0);
    // small: 10 rooms of 10, one publisher each at 10 msg/s for 2 s
    assert.ok(r.deliveries.sent >= 150, `sent ${r.deliveries.sent}`);
    assert.equal(r.deliveries.expected, r.deliveries.sent * 10);
    assert.equal(r.deliveries.received, r.deliveries.expected, 'nothing lost');
    assert.equal(r.deliveries.gaps, 0);
    assert.equal(r.deliveries.duplicates, 0);
    assert.equal(r.deliveries.foreign, 0, 'no publisher got its own message back');
    assert.equal(r.deliveries.bad_body, 0);
    assert.equal(r.latency_ms.count, r.deliveries.received);
    // Half of each room's members are on the other process than its
    // publisher: those deliveries went through the Redis adapter.
    assert.equal(r.remote_latency_ms.count, r.deliveries.received / 2);
    assert.ok(r.latency_ms.p50 > 0 && r.latency_ms.p99 >= r.latency_ms.p50);
    assert.ok(r.servers.cpu_s > 0, 'peer CPU sampled');
    // The peer's Redis, sampled apart (make bench counts it in "all processes").
    assert.equal(r.servers.pids, 2);
    assert.equal(r.extra.pids, 1);
    assert.equal(r.extra.by_name.redis.pids, 1);
    assert.ok(r.extra.by_name.redis.rss_connected_kib > 0, 'Redis RSS sampled');
    assert.equal(typeof r.steps[0].extra_cpu_s, 'number');
    for (const p of [a, b]) {
      const { code: exit, signal } = await p.stop();
      assert.equal(signal, null, `${p.what} ended by ${signal}:\n${p.logs.join('\n')}`);
      assert.equal(exit, 0, `${p.what} exit ${exit}:\n${p.logs.join('\n')}`);
    }
  });
});
