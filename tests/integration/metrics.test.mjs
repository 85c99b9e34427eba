// /metrics and /api/stats under traffic: every family is well-formed
// Prometheus text (HELP and TYPE before samples, cumulative histograms whose
// +Inf bucket is the count), and the numbers move the way the traffic says.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { httpGet, rawClient, sleep, startCluster, startWorker, waitFor } from './helpers.mjs';

// Parse Prometheus text format 0.0.4 strictly enough to catch a broken line.
function parseMetrics(text) {
  const types = new Map(), samples = new Map(), problems = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    let m;
    if ((m = line.match(/^# HELP ([a-z_][a-z0-9_]*) (.+)$/))) continue;
    if ((m = line.match(/^# TYPE ([a-z_][a-z0-9_]*) (counter|gauge|histogram)$/))) { types.set(m[1], m[2]); continue; }
    m = line.match(/^([a-z_][a-z0-9_]*)(\{[^}]*\})? (-?[0-9.e+]+)$/);
    if (!m) { problems.push(`bad line: ${line}`); continue; }
    const family = m[1].replace(/_(bucket|sum|count)$/, '');
    if (!types.has(m[1]) && !(types.get(family) === 'histogram')) problems.push(`no TYPE before ${m[1]}`);
    samples.set(m[1] + (m[2] || ''), Number(m[3]));
  }
  for (const [name, type] of types) {
    if (type !== 'histogram') continue;
    const buckets = [...samples].filter(([k]) => k.startsWith(`${name}_bucket{`)).map(([, v]) => v);
    for (let i = 1; i < buckets.length; i++) if (buckets[i] < buckets[i - 1]) problems.push(`${name}: buckets not cumulative`);
    if (samples.get(`${name}_bucket{le="+Inf"}`) !== samples.get(`${name}_count`)) problems.push(`${name}: +Inf != count`);
  }
  return { types, samples, problems };
}

async function scrape(port) {
  const r = await httpGet(port, '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const p = parseMetrics(r.text);
  assert.deepEqual(p.problems, []);
  return p.samples;
}

describe('metrics', () => {
  test('under traffic across two servers: frames, deliveries, bus, latency histograms, errors by reason, storage, /api/stats', async () => {
    const c = await startCluster({ n: 2 });
    const w = await startWorker({ cluster: c.cluster });
    const [a, b] = c.servers;
    try {
      const before = await scrape(a.port);
      const subs = [];
      for (const s of [a, b, b]) {
        const cl = await rawClient(s.wsUrl);
        await cl.connect();
        cl.frame('SUBSCRIBE', { id: '1', destination: '/topic/metrics', receipt: 'r' });
        await cl.waitFrame('RECEIPT');
        subs.push(cl);
      }
      const pub = await rawClient(a.wsUrl);
      await pub.connect();
      const N = 300;
      let stats = null;
      for (let i = 0; i < N; i++) {
        pub.frame('SEND', { destination: '/topic/metrics', receipt: `s${i}` }, `m${i}`);
        if (i % 50 === 49) {
          // Six pauses of 400 ms: the traffic spans more than one of the
          // whole seconds the rates are measured over, however fast the
          // servers started. The time is what is measured, so the pauses
          // are fixed ones.
          await sleep(400);
          const r = await httpGet(a.port, '/api/stats');
          const j = JSON.parse(r.text);
          if (!stats || j.messages.delivered_per_s > stats.messages.delivered_per_s) stats = j;
        }
      }
      await waitFor(() => subs.every((s) => s.frames.filter((f) => f.command === 'MESSAGE').length === N), { timeout: 15000, what: 'all delivered' });
      await waitFor(() => pub.frames.filter((f) => f.command === 'RECEIPT').length === N, { what: 'all receipted' });
      // One refused frame, counted by its reason.
      const bad = await rawClient(a.wsUrl);
      await bad.connect();
      bad.frame('SUBSCRIBE', { id: '1', destination: '/queue/nope' });
      await bad.waitFrame('ERROR');

      const sa = await scrape(a.port);
      const sb = await scrape(b.port);
      const d = (k) => sa.get(k) - (before.get(k) || 0);
      assert.equal(d('lectern_frames_in_total{command="SEND"}'), N);
      assert.equal(d('lectern_messages_published_total'), N);
      assert.equal(d('lectern_frames_out_total{command="RECEIPT"}'), N + 1);   // + the SUBSCRIBE's
      assert.equal(d('lectern_frames_out_total{command="MESSAGE"}'), N, 'one local subscriber on a');
      assert.equal(sb.get('lectern_frames_out_total{command="MESSAGE"}'), 2 * N, 'two on b');
      assert.equal(d('lectern_bus_published_total'), N, 'b has members: every message crosses');
      assert.equal(sb.get('lectern_bus_received_total'), N);
      assert.equal(sa.get('lectern_connections_state{state="connected"}'), 2, 'the subscriber and the publisher');
      // One latency sample per socket write that carries a MESSAGE: several
      // MESSAGEs can share a write, so at least one sample and at most one
      // per MESSAGE written (N on a, 2N on b), each a positive time (the
      // SEND's millisecond timestamp against a microsecond clock) well under
      // the length of this test.
      const da = { count: d('lectern_delivery_seconds_count'), sum: d('lectern_delivery_seconds_sum') };
      const db = { count: sb.get('lectern_delivery_seconds_count'), sum: sb.get('lectern_delivery_seconds_sum') };
      for (const [h, most, where] of [[da, N, 'a'], [db, 2 * N, 'b']]) {
        assert.ok(h.count >= 1 && h.count <= most, `${where}: ${h.count} delivery samples for ${most} MESSAGEs`);
        assert.ok(h.sum > 0, `${where}: delivery_seconds_sum ${h.sum} > 0`);
        assert.ok(h.sum / h.count < 30, `${where}: mean delivery ${h.sum / h.count} s`);
      }
      assert.equal(d('lectern_bus_confirm_seconds_count'), N, 'every storage copy confirmed');
      assert.equal(d('lectern_stomp_errors_by_reason_total{reason="Unknown destination"}'), 1);
      assert.equal(d('lectern_stomp_errors_total'), 1);

      // /api/stats for humans: rates while traffic flowed, quantiles after.
      assert.ok(stats && stats.messages.delivered_per_s > 0, JSON.stringify(stats));
      const after = JSON.parse((await httpGet(a.port, '/api/stats')).text);
      assert.equal(after.connections.connected, 2);
      assert.equal(after.messages.published, N);
      assert.ok(after.delivery_latency_ms.samples > 0 && after.delivery_latency_ms.p99 > 0);
      assert.ok(after.bus.confirm_p99_ms > 0);
      assert.equal(after.refused.errors_by_reason['Unknown destination'], 1);

      // The storage worker wrote them and says so.
      const wm = async () => parseMetrics((await httpGet(w.port, '/metrics')).text);
      await waitFor(async () => (await wm()).samples.get('lectern_storage_rows_written_total') >= N, { timeout: 15000, what: 'rows written' });
      const ws = await wm();
      assert.deepEqual(ws.problems, []);
      assert.ok(ws.samples.get('lectern_storage_commit_seconds_count') > 0);
      for (const cl of [...subs, pub, bad]) cl.close();
    } finally {
      await w.stop();
      await c.stop();
    }
  });
});
