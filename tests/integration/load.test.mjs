// The load generator (tests/load/, make bench) against real servers: its
// numbers are what docs/benchmarks.md reports, so it must report complete
// delivery when delivery is complete, and loss when there is loss.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clusterName, metric, repoRoot, startCluster, startServer, startWorker, waitFor } from './helpers.mjs';
import { https200, issue, makeCa } from './tlsca.mjs';

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
      // the generator's own work over the same window: recv() and
      // epoll_wait() calls, at most about one recv() per delivery here
      assert.equal(r.generator.procs_cpu_s.length, r.procs);
      assert.ok(r.generator.cpu_s > 0, 'generator CPU sampled');
      assert.ok(r.generator.reads > 0 && r.generator.reads <= r.deliveries.received + r.connections.ok * 2,
        `generator reads ${r.generator.reads}`);
      assert.ok(r.generator.polls > 0, `generator polls ${r.generator.polls}`);
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

  // The friends'-status scenarios at a small size: the same code paths as
  // make bench's runs (10,000 / 5,000 users), with every count checked.
  test('status-churn: every watcher gets every offline and online of its contacts once, with latency and server CPU per event', async () => {
    const c = await startCluster({ n: 2 });
    try {
      const urls = c.servers.flatMap((s) => ['--url', s.wsUrl]);
      const pids = c.servers.flatMap((s) => ['--watch-pid', String(s.proc.pid)]);
      const { code, json: r, err } = await runLoad([...urls, ...pids, '--scenario', 'status-churn',
        '--users', '200', '--contacts', '20', '--churn', '20', '--churn-s', '2', '--gap-s', '0.5']).done;
      assert.equal(code, 0, err);
      assert.equal(r.connections.failed, 0);
      assert.equal(r.connections.ok, 220, '200 users and 20 log-ins again');
      assert.equal(r.snapshots.missing_entries, 0);
      assert.equal(r.setup.not_online, 0, 'after the setup every map showed every contact online');
      assert.equal(r.churn.changes, 40);
      // Users 0, 10, 20, ... churn; each has 20 watchers, 2 of them churners
      // themselves (no longer watching throughout): 18 x 20 x 2 changes.
      assert.equal(r.events.watchers, 180);
      assert.equal(r.events.expected, 720);
      assert.equal(r.events.received, 720);
      assert.equal(r.events.missing, 0);
      assert.equal(r.events.extra, 0);
      assert.equal(r.events.foreign, 0);
      assert.equal(r.final.not_online, 0);
      assert.ok(r.latency_ms.count >= 720 && r.latency_ms.p99 > 0, JSON.stringify(r.latency_ms));
      assert.ok(r.servers.cpu_s > 0 && r.servers.cpu_us_per_event > 0, 'server CPU sampled');
    } finally {
      await c.stop();
    }
  });

  test('status-surge: users connecting at once each see every contact online, no event repeated', async () => {
    const c = await startCluster({ n: 2 });
    try {
      const urls = c.servers.flatMap((s) => ['--url', s.wsUrl]);
      const { code, json: r, err } = await runLoad([...urls, '--scenario', 'status-surge',
        '--users', '200', '--contacts', '20', '--surge-s', '2']).done;
      assert.equal(code, 0, err);
      assert.equal(r.connections.ok, 200);
      assert.equal(r.connections.connect_ms.count, 200);
      assert.equal(r.snapshot_ms.count, 200);
      assert.equal(r.status.pairs, 4000);
      assert.equal(r.status.not_online, 0);
      assert.equal(r.status.offline, 0);
      assert.equal(r.status.redundant, 0);
      assert.ok(r.status.online > 0, 'later users came online as events');
    } finally {
      await c.stop();
    }
  });

  test('status-bigsnap: a list stored through the API gives a snapshot with every contact, exactly the online ones online', async () => {
    const key = 'load-test-api-key-0123456789abcdef';
    const c = await startCluster({ n: 2, sets: { 'api.keys': key } });
    try {
      const w = await startWorker({ cluster: c.cluster });   // applies the migrations (0003_contacts)
      await w.stop();
      const urls = c.servers.flatMap((s) => ['--url', s.wsUrl]);
      const { code, json: r, err } = await runLoad([...urls, '--scenario', 'status-bigsnap',
        '--contacts', '300', '--online', '50', '--rounds', '2', '--api-key', key]).done;
      assert.equal(code, 0, `${err}\n${JSON.stringify(r)}`);
      assert.equal(r.put.status, 200);
      for (const round of [r.cold, r.warm_last, r.other_server]) {
        assert.equal(round.entries, 300);
        assert.equal(round.online, 50);
        assert.equal(round.wrong, 0);
        assert.ok(round.ok && round.ms >= 0 && round.bytes > 300 * 20, JSON.stringify(round));
      }
      assert.ok(r.warm.ok);
    } finally {
      await c.stop();
    }
  });

  test('status-bigsnap without the right API key: the PUT is refused and the run says so', async () => {
    const c = await startCluster({ n: 1, sets: { 'api.keys': 'the-real-key-0123456789abcdef' } });
    try {
      const { code, json: r } = await runLoad(['--url', c.servers[0].wsUrl, '--scenario', 'status-bigsnap',
        '--contacts', '20', '--online', '5', '--rounds', '0', '--api-key', 'wrong-key']).done;
      assert.equal(code, 1);
      assert.equal(r.put.status, 401);
      assert.equal(r.cold.ok, false, 'no stored list: the snapshot is not the 20 contacts');
      assert.match(r.errors.first, /PUT contacts: 401/);
    } finally {
      await c.stop();
    }
  });

  // wss:// (tests/load/tlsio.c): the run make bench's tls scenario does, at
  // a small size, and the refusals that show the certificate is checked.
  describe('over TLS (wss://, --tls-ca)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lectern-load-tls-'));
    let caA, caB, good, ipless;
    before(() => {
      caA = makeCa(dir, 'a');
      caB = makeCa(dir, 'b');
      good = issue(caA, 'good');
      ipless = issue(caA, 'ipless', { sans: ['DNS:localhost'] });   // no IP address in it
    });
    after(() => rmSync(dir, { recursive: true, force: true }));
    const tlsServer = (pair, cluster) => startServer({ cluster, probe: https200(caA.cert),
      sets: { 'server.tls_cert': pair.cert, 'server.tls_key': pair.key } });
    const small = ['--rooms', '1', '--subscribers', '20', '--publishers', '1', '--rate', '20',
      '--duration', '1.5', '--connect-timeout', '10000'];

    test('with the server\'s CA: every connection is TLS, every delivery counted, the session reported', async () => {
      const cluster = clusterName();
      const s1 = await tlsServer(good, cluster), s2 = await tlsServer(good, cluster);
      try {
        const { code, json: r, err } = await runLoad([
          '--url', `wss://localhost:${s1.port}/ws`, '--url', `wss://127.0.0.1:${s2.port}/ws`,
          '--tls-ca', caA.cert, '--watch-pid', String(s1.proc.pid), ...small]).done;
        assert.equal(code, 0, `${err}\n${JSON.stringify(r && r.errors)}`);
        assert.deepEqual(r.urls, [`wss://localhost:${s1.port}/ws`, `wss://127.0.0.1:${s2.port}/ws`]);
        assert.match(r.tls, /^TLSv1\.[23] \S+/);
        assert.equal(r.connections.ok, 21);
        assert.equal(r.connections.connect_ms.count, 21);
        assert.ok(r.deliveries.sent >= 20, `sent ${r.deliveries.sent}`);
        assert.equal(r.deliveries.received, r.deliveries.sent * 20);
        assert.equal(r.deliveries.gaps, 0);
        assert.ok(r.servers.connect_cpu_s >= 0 && r.servers.connect_cpu_us_per_conn >= 0);
      } finally {
        await s1.stop();
        await s2.stop();
      }
    });

    test('another CA, or a certificate that does not name the URL\'s host: no connection, the reason reported', async () => {
      const cluster = clusterName();
      const s1 = await tlsServer(good, cluster), s2 = await tlsServer(ipless, cluster);
      try {
        for (const [url, ca, why] of [
          [`wss://localhost:${s1.port}/ws`, caB.cert, /TLS: certificate verify failed: unable to get local issuer certificate/],
          [`wss://127.0.0.1:${s2.port}/ws`, caA.cert, /TLS: certificate verify failed: IP address mismatch/],
        ]) {
          const { code, json: r } = await runLoad(['--url', url, '--tls-ca', ca, ...small]).done;
          assert.equal(code, 1, url);
          assert.equal(r.connections.ok, 0, url);
          assert.equal(r.connections.failed, 21, url);
          assert.match(r.errors.first, why);
        }
        // The same server is fine for a client that trusts its CA.
        const { code } = await runLoad(['--url', `wss://localhost:${s2.port}/ws`, '--tls-ca', caA.cert, ...small]).done;
        assert.equal(code, 0);
      } finally {
        await s1.stop();
        await s2.stop();
      }
    });

    test('a CA file that cannot be read stops the run before it connects', async () => {
      const { code, err } = await runLoad(['--url', 'wss://127.0.0.1:9/ws', '--tls-ca', path.join(dir, 'missing.pem')]).done;
      assert.equal(code, 2);
      assert.match(err, /cannot load CA certificates from .*missing\.pem/);
    });
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
      [['--scenario', 'status-churn', '--contacts', '7'], /--contacts must be even/],
      [['--scenario', 'status-churn', '--users', '20000'], /--users must be/],
      [['--scenario', 'status-bigsnap'], /--api-key .*is needed/],
    ]) {
      const { code, err } = await runLoad(['--url', 'ws://127.0.0.1:9/ws', ...args]).done;
      assert.equal(code, 2, args.join(' '));
      assert.match(err, re);
    }
  });
});
