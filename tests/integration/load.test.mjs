// The load generator (tests/load/, make bench) against real servers: its
// numbers are what docs/benchmarks.md reports, so it must report complete
// delivery when delivery is complete, and loss when there is loss.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { metric, repoRoot, startCluster, waitFor } from './helpers.mjs';

const loadBin = process.env.LECTERN_LOAD_BIN ||
  path.join(repoRoot, 'build', 'release', 'tests', 'lectern-load');

function runLoad(args) {
  const proc = spawn(loadBin, [...args, '--no-progress'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { err += d; });
  const done = new Promise((resolve) => proc.on('exit', (code) => {
    let json = null;
    try { json = JSON.parse(out); } catch { /* left null: the test says what it got */ }
    resolve({ code, json, out, err });
  }));
  return { proc, done };
}

describe('lectern-load', () => {
  test('fan-out over two servers with a rising rate: every delivery counted once, latency and cross-server latency measured, server CPU sampled', async () => {
    const c = await startCluster({ n: 2 });
    try {
      const urls = c.servers.flatMap((s) => ['--url', s.wsUrl]);
      const pids = c.servers.flatMap((s) => ['--watch-pid', String(s.proc.pid)]);
      const { code, json: r, err } = await runLoad([...urls, ...pids, '--scenario', 'fanout',
        '--subscribers', '40', '--rate', '20', '--rate-step', '20', '--rate-max', '40', '--step', '1.5',
        '--login', 'student-%u', '--slo', '10000']).done;
      assert.equal(code, 0, err);
      assert.equal(r.connections.ok, 42);
      assert.equal(r.connections.failed, 0);
      assert.equal(r.steps.length, 2);
      assert.ok(r.deliveries.sent > 60, `sent ${r.deliveries.sent}`);
      assert.equal(r.deliveries.expected, r.deliveries.sent * 40);
      assert.equal(r.deliveries.received, r.deliveries.expected);
      assert.equal(r.deliveries.ratio, 1);
      assert.equal(r.deliveries.gaps, 0);
      assert.equal(r.deliveries.duplicates, 0);
      assert.equal(r.latency_ms.count, r.deliveries.received);
      // half the subscribers are on the other server than each publisher
      assert.equal(r.remote_latency_ms.count, r.deliveries.received / 2);
      assert.ok(r.latency_ms.p50 > 0 && r.latency_ms.p99 >= r.latency_ms.p50);
      assert.ok(r.servers.cpu_s > 0, 'server CPU sampled');
      assert.ok(r.servers.rss_connected_kib > 0);
    } finally {
      await c.stop();
    }
  });

  test('a server killed mid-run: the generator reports the dropped connections and the missing deliveries', async () => {
    const c = await startCluster({ n: 2 });
    try {
      const urls = c.servers.flatMap((s) => ['--url', s.wsUrl]);
      const run = runLoad([...urls, '--rooms', '1', '--subscribers', '20', '--publishers', '1',
        '--rate', '50', '--duration', '4', '--drain', '2000']);
      // Publishing starts once all 21 are connected; kill once the server
      // to survive has taken a few messages (the run lasts 4 s).
      await waitFor(async () => (await metric(c.servers[0].port, 'lectern_messages_published_total')) +
        (await metric(c.servers[1].port, 'lectern_messages_published_total')) >= 20,
      { timeout: 10000, what: 'publishing under way' });
      c.servers[1].proc.kill('SIGKILL');
      const { code, json: r } = await run.done;
      assert.equal(code, 0);
      assert.equal(r.connections.dropped, 10, 'the 10 subscribers of the killed server');
      assert.ok(r.deliveries.ratio < 0.9, `ratio ${r.deliveries.ratio}`);
      assert.ok(r.deliveries.received >= r.deliveries.sent * 10, 'the live server\'s subscribers got theirs');
      assert.match(r.errors.first, /closed|reset/);
    } finally {
      await c.stop();
    }
  });

  test('refuses a target that is not on this machine', async () => {
    const { code, err } = await runLoad(['--url', 'ws://10.1.2.3:80/ws']).done;
    assert.equal(code, 2);
    assert.match(err, /non-loopback/);
  });

  test('refuses bad counts and durations with a reason', async () => {
    for (const [args, re] of [
      [['--duration', '0'], /--duration/],
      [['--subscribers', '200000'], /connections must total/],
      [['--size', '10'], /--size/],
      [['--scenario', 'nope'], /unknown scenario/],
    ]) {
      const { code, err } = await runLoad(['--url', 'ws://127.0.0.1:9/ws', ...args]).done;
      assert.equal(code, 2, args.join(' '));
      assert.match(err, re);
    }
  });
});
