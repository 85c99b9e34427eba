// make soak's verdict on its samples (tests/soak/trend.mjs): flat series
// pass however noisy, leaks fail, and what a restart does to the levels
// (clients moving between servers, a fresh process warming up) is not
// taken for a leak. Synthetic series, no services:
//   cd tests && node --test integration/soak-trend.test.mjs
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { analyze, FLOORS, GROWTH_PCT, judgeSeries, segmentedSlope } from '../soak/trend.mjs';

const MIN = 60;
const RUN = 30 * MIN;            // the soak's length
const WARMUP = 6 * MIN;          // its first fifth
const STEP = 10;                 // a sample every 10 s
const MiB = 1048576;

/** A repeatable pseudo-random source (mulberry32), so a failure can be replayed. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Points every STEP seconds over the run: f(t) plus noise of +-noise. */
function series(f, { noise = 0, seed = 1, spikes = 0 } = {}) {
  const r = random(seed);
  const pts = [];
  for (let t = 0; t <= RUN; t += STEP) {
    let v = f(t) * (1 + noise * (2 * r() - 1));
    if (spikes && r() < spikes) v *= 5;                     // a p99 spike, a slow sample
    pts.push([t, v]);
  }
  return pts;
}
const judge = (points, o = {}) => judgeSeries({ points, duration: RUN, from: WARMUP, ...o });

describe('soak trend analysis (tests/soak/trend.mjs)', () => {
  test('a flat series is flat', () => {
    const j = judge(series(() => 40 * MiB), { floor: FLOORS.rss });
    assert.equal(j.verdict, 'flat');
    assert.equal(j.growth, 0);
  });

  test('a noisy flat series with spikes is flat (RSS wobbling by 5%, p99 spiking)', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rss = judge(series(() => 40 * MiB, { noise: 0.05, seed }), { floor: FLOORS.rss });
      assert.equal(rss.verdict, 'flat', `RSS, seed ${seed}: ${JSON.stringify(rss)}`);
      assert.ok(Math.abs(rss.growth_pct) < GROWTH_PCT / 2, `seed ${seed}: ${rss.growth_pct}%`);
      const p99 = judge(series(() => 8, { noise: 0.5, seed, spikes: 0.05 }), { floor: FLOORS.latency });
      assert.equal(p99.verdict, 'flat', `p99, seed ${seed}: ${JSON.stringify(p99)}`);
    }
  });

  test('a leak fails: RSS rising 0.5 MiB a minute under the same noise', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const j = judge(series((t) => 40 * MiB + (t / MIN) * 0.5 * MiB, { noise: 0.05, seed }), { floor: FLOORS.rss });
      assert.equal(j.verdict, 'growth', `seed ${seed}: ${JSON.stringify(j)}`);
      assert.ok(j.growth_pct > GROWTH_PCT);
    }
  });

  test('open files leaking one descriptor a minute fail; counts moving with churn do not', () => {
    const r = random(7);
    const churn = series(() => 130).map(([t]) => [t, 130 + Math.round(10 * (r() - 0.5))]);
    assert.equal(judge(churn, { floor: FLOORS.fds }).verdict, 'flat');
    const leak = churn.map(([t, v]) => [t, v + Math.floor(t / MIN)]);
    assert.equal(judge(leak, { floor: FLOORS.fds }).verdict, 'growth');
  });

  test('a queue near zero is judged by its floor: jitter passes, a backlog building up fails', () => {
    const jitter = series(() => 20, { noise: 1, seed: 3 });
    assert.equal(judge(jitter, { floor: FLOORS.messages }).verdict, 'flat');
    const backlog = series((t) => (t / MIN) * 100, { noise: 0.2, seed: 3 });
    assert.equal(judge(backlog, { floor: FLOORS.messages }).verdict, 'growth');
  });

  test('a slow drift below the threshold is reported but not a failure', () => {
    const j = judge(series((t) => 40 * MiB * (1 + (0.05 * t) / RUN)), { floor: FLOORS.rss });
    assert.equal(j.verdict, 'flat');
    assert.ok(j.growth_pct > 4 && j.growth_pct < 6, `${j.growth_pct}%`);
  });

  test('growth during the warm-up only is left out', () => {
    const ramp = (w) => series((t) => 20 * MiB + (Math.min(t, w) / w) * 20 * MiB, { noise: 0.02 });
    const j = judge(ramp(WARMUP), { floor: FLOORS.rss });
    assert.equal(j.verdict, 'flat');
    assert.equal(j.n, (RUN - WARMUP) / STEP + 1);
    // A warm-up long enough to outweigh the median: judged from its end
    // it is flat, judged from the start a leak. The cut is what passes it.
    const long = 12 * MIN;
    assert.equal(judge(ramp(long), { from: long, floor: FLOORS.rss }).verdict, 'flat');
    assert.equal(judge(ramp(long), { from: 0, floor: FLOORS.rss }).verdict, 'growth');
  });

  test('a level that steps up at the restart is no slope within the segments', () => {
    const restart = 15 * MIN;
    const step = series((t) => (t < restart ? 40 : 52) * MiB, { noise: 0.02, seed: 5 });
    const j = judge(step, { floor: FLOORS.rss, breaks: [restart], exclude: [[restart - 10, restart + 60]] });
    assert.equal(j.verdict, 'flat', JSON.stringify(j));
    // One line through both levels would call it a leak.
    assert.equal(judge(step, { floor: FLOORS.rss }).verdict, 'growth');
    // A leak still shows within the segments.
    const leak = step.map(([t, v]) => [t, v + (t / MIN) * 0.5 * MiB]);
    assert.equal(judge(leak, { floor: FLOORS.rss, breaks: [restart], exclude: [[restart - 10, restart + 60]] }).verdict, 'growth');
  });

  test('segmentedSlope takes pairs within a segment only', () => {
    const pts = [[0, 0], [1, 0], [2, 0], [3, 10], [4, 10], [5, 10]];
    assert.deepEqual(segmentedSlope(pts, [3]), { slope: 0, pairs: 6 });
    assert.ok(segmentedSlope(pts).slope > 0);
  });

  test('too few points gives no verdict rather than a guess', () => {
    assert.equal(judge([[400, 1], [410, 2], [420, 3]]).verdict, 'too few points');
  });

  // Whole reports: samples as tests/soak/driver.mjs writes them.
  function samples({ leak = null, restart = null }) {
    const r = random(11);
    const out = [];
    for (let t = 0; t <= RUN; t += STEP) {
      const procs = {};
      for (const p of ['server-1', 'server-2', 'server-3', 'worker-1', 'worker-2']) {
        let rss = (p.startsWith('server') ? 40 : 12) * MiB * (1 + 0.03 * (2 * r() - 1));
        let fds = p.startsWith('server') ? 130 + Math.round(6 * (r() - 0.5)) : 30;
        if (restart && t >= restart.begin) {
          if (p === restart.proc) {
            // Down, then a fresh process that warms up again.
            if (t < restart.ready) { rss = null; fds = null; } else rss = 15 * MiB + Math.min(1, (t - restart.ready) / 300) * 25 * MiB;
          } else if (t < restart.ready + 30) {
            fds += 65;                       // its clients came over, then go home again
            rss += 6 * MiB;
          } else rss += 6 * MiB;             // and malloc keeps what it got
        }
        if (p === leak) rss += (t / MIN) * 0.5 * MiB;
        procs[p] = { rss, fds };
      }
      out.push({
        t, procs,
        redis: { used_memory: 9 * MiB * (1 + 0.02 * (2 * r() - 1)) },
        rabbitmq: { messages: Math.round(5 * r()) },
        servers: { 'server-1': { bus_messages: Math.round(3 * r()), held_bytes: 20000 * r() } },
        latency: { p99: 6 + 4 * r() + (restart && Math.abs(t - restart.begin) < 20 ? 2000 : 0) },
      });
    }
    return out;
  }

  test('a healthy run with a restart in the middle passes', () => {
    const restart = { proc: 'server-2', begin: 900, ready: 903 };
    const a = analyze({ samples: samples({ restart }), duration: RUN, warmup: WARMUP, restart });
    assert.equal(a.verdict, 'flat', JSON.stringify(a.series.filter((s) => s.verdict !== 'flat')));
    assert.equal(a.series.length, 15);
    assert.ok(a.series.every((s) => s.verdict === 'flat'));
  });

  test('the same run with one server leaking fails, naming that series only', () => {
    const restart = { proc: 'server-2', begin: 900, ready: 903 };
    const a = analyze({ samples: samples({ restart, leak: 'server-3' }), duration: RUN, warmup: WARMUP, restart });
    assert.equal(a.verdict, 'growth');
    assert.deepEqual(a.series.filter((s) => s.verdict === 'growth').map((s) => s.name), ['rss server-3']);
  });

  test('the restarted server is judged without its second warm-up, the others without a minute', () => {
    const restart = { proc: 'server-2', begin: 900, ready: 903 };
    const a = analyze({ samples: samples({ restart }), duration: RUN, warmup: WARMUP, restart });
    const n = (name) => a.series.find((x) => x.name === name).n;
    const all = (RUN - WARMUP) / STEP + 1;
    // 890 .. 903 + 60 s left out for everyone; 890 .. 903 + the warm-up for server 2.
    assert.equal(n('rss server-1'), all - 8);
    assert.equal(n('rss server-2'), all - 8 - (WARMUP - 60) / STEP);
    assert.equal(n('p99 delivery ms'), all - 8);
    assert.equal(a.series.find((x) => x.name === 'rss server-2').verdict, 'flat');
  });
});
