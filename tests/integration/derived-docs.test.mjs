// The capacity figures of docs/scaling.md, operations.md and performance.md
// are computed from docs/benchmarks.jsonl by scripts/derive-docs.mjs: the
// committed pages must be exactly what it makes of the committed results,
// and a hand edit, a stale page, a hand-typed figure or a misquoted knob
// must make its --check fail. No services needed:
//   cd tests && node --test integration/derived-docs.test.mjs
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const script = path.join(repoRoot, 'scripts', 'derive-docs.mjs');
const run = promisify(execFile);
const { derive, parseRuns, parseKnobs, model } = await import(script);

// Run the deriver; {code, stderr}.
async function deriver(...args) {
  try {
    const r = await run('node', [script, ...args]);
    return { code: 0, stderr: r.stderr };
  } catch (e) {
    return { code: e.code, stderr: e.stderr };
  }
}

// A copy of what the deriver reads and writes, to break on purpose.
const FILES = ['benchmarks.jsonl', 'benchmarks.md', 'configuration.md', 'scaling.md', 'operations.md', 'performance.md',
  'security.md'];
// Redis's planning figure in the planning block.
const REDIS_PLAN = /plan \*\*([\d,]+) SENDs\/s\*\*/;

// Run fn(dir) on a scratch copy of the docs, removed afterwards.
async function inScratch(fn) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lectern-derived-'));
  try {
    for (const f of FILES) await cp(path.join(repoRoot, 'docs', f), path.join(dir, 'docs', f));
    // make soak's recorded run, when there is one (benchmarks.md quotes it).
    for (const f of ['soak.json', 'soak.png'])
      if (existsSync(path.join(repoRoot, 'docs', f))) await cp(path.join(repoRoot, 'docs', f), path.join(dir, 'docs', f));
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
async function edit(dir, file, from, to) {
  const p = path.join(dir, file);
  const text = await readFile(p, 'utf8');
  assert.ok(text.includes(from), `${file} contains ${JSON.stringify(from)}`);
  await writeFile(p, text.replace(from, to));
}
const block = (text, name) => {
  const m = text.match(new RegExp(`<!-- derived:${name} -->([\\s\\S]*?)<!-- /derived -->`));
  assert.ok(m, `a derived:${name} block`);
  return m[1];
};

describe('pages derived from docs/benchmarks.jsonl', () => {
  test('the committed pages are what scripts/derive-docs.mjs makes of the committed results', async () => {
    const r = await deriver('--check');
    assert.equal(r.code, 0, `${r.stderr}\nregenerate with: node scripts/derive-docs.mjs --write`);
  });

  test('scaling.md and operations.md give the same planning figures', async () => {
    const s = await readFile(path.join(repoRoot, 'docs', 'scaling.md'), 'utf8');
    const o = await readFile(path.join(repoRoot, 'docs', 'operations.md'), 'utf8');
    assert.equal(block(o, 'planning'), block(s, 'planning'));
    // The operations summary names the servers the sizing table names.
    const servers = [...block(s, 'sizing').matchAll(/\*\*(\d[\d,]*)\*\*, or/g)].map((x) => x[1]);
    const summary = [...block(o, 'sizing-summary').matchAll(/\*\*(\d[\d,]*) servers\*\*/g)].map((x) => x[1]);
    assert.equal(servers.length, 3);
    assert.deepEqual(summary, servers);
  });

  test('a derived block edited by hand fails --check', () => inScratch(async (dir) => {
    const s = await readFile(path.join(dir, 'docs', 'scaling.md'), 'utf8');
    const redis = block(s, 'planning').match(REDIS_PLAN)[1];
    // A value the results cannot give (whatever they are): the derived one plus 1,111.
    const typed = (Number(redis.replace(/,/g, '')) + 1111).toLocaleString('en-US');
    await edit(dir, 'docs/scaling.md', `plan **${redis} SENDs/s**`, `plan **${typed} SENDs/s**`);
    const r = await deriver('--check', '--root', dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /docs\/scaling\.md:\d+: differs from what docs\/benchmarks\.jsonl gives/);
    assert.ok((await deriver('--write', '--root', dir)).code === 0, '--write repairs it');
    assert.equal((await deriver('--check', '--root', dir)).code, 0);
  }));

  test('a new measurement changes every page that quotes it, the same way', () => inScratch(async (dir) => {
    const f = path.join(dir, 'docs', 'benchmarks.jsonl');
    const runs = parseRuns(await readFile(f, 'utf8'));
    const cr = runs.find((r) => r.label === 'costs-redis');
    cr.servers.cpu_s *= 2; // Redis twice as slow per SEND
    await writeFile(f, runs.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const stale = await deriver('--check', '--root', dir);
    assert.equal(stale.code, 1, 'the pages are stale against the new results');
    assert.equal((await deriver('--write', '--root', dir)).code, 0);
    const before = block(await readFile(path.join(repoRoot, 'docs', 'scaling.md'), 'utf8'), 'planning');
    const s = block(await readFile(path.join(dir, 'docs', 'scaling.md'), 'utf8'), 'planning');
    const o = block(await readFile(path.join(dir, 'docs', 'operations.md'), 'utf8'), 'planning');
    const plan = (t) => Number(t.match(REDIS_PLAN)[1].replace(/,/g, ''));
    assert.equal(s, o);
    assert.ok(plan(s) < plan(before) * 0.6, `Redis's planning figure halves (${plan(before)} -> ${plan(s)})`);
  }));

  test('a measured-looking figure typed outside a derived block fails --check', () => inScratch(async (dir) => {
    await edit(dir, 'docs/performance.md', '## What the controls cost\n',
      '## What the controls cost\n\nThe servers reach 1.25M deliveries/s at 0.74 µs each.\n');
    const r = await deriver('--check', '--root', dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /performance\.md:\d+: "1\.25M deliveries\/s"|performance\.md:\d+: "0\.74 µs"/);
  }));

  test('a knob quoted with a value other than its default fails --check', () => inScratch(async (dir) => {
    await edit(dir, 'docs/scaling.md', '`relay.pull_ms` (1 s)', '`relay.pull_ms` (2 s)');
    const r = await deriver('--check', '--root', dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /`relay\.pull_ms` quoted as \(2 s\), its default is 1000/);
  }));

  test('a block removed from its page, or results without the full run, fail --check', () => inScratch(async (dir) => {
    const p = path.join(dir, 'docs', 'operations.md');
    const text = await readFile(p, 'utf8');
    await writeFile(p, text.replace(/<!-- derived:sizing-summary -->[\s\S]*?<!-- \/derived -->\n/, ''));
    let r = await deriver('--check', '--root', dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /operations\.md: no <!-- derived:sizing-summary --> block/);
    await writeFile(p, text);
    const f = path.join(dir, 'docs', 'benchmarks.jsonl');
    const runs = parseRuns(await readFile(f, 'utf8')).filter((x) => x.label !== 'fanout-idle');
    await writeFile(f, runs.map((x) => JSON.stringify(x)).join('\n') + '\n');
    r = await deriver('--check', '--root', dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /lacks fanout-idle/);
  }));

  test('what TLS costs (security.md, benchmarks.md) follows the tls runs, and says so when there are none', () => inScratch(async (dir) => {
    const f = path.join(dir, 'docs', 'benchmarks.jsonl');
    const others = parseRuns(await readFile(f, 'utf8')).filter((x) => !/^tls-/.test(x.label));
    // Two servers plain and TLS, with figures no real run gives together.
    const connect = (mode, p50, p99, us, rss) => ({ label: `tls-connect-${mode}`, system: 'lectern',
      args: '--scenario idle --idle 2000 --ramp 400 --duration 1', ...(mode === 'tls' ? { tls: 'TLSv1.3 TLS_AES_256_GCM_SHA384' } : {}),
      connections: { target: 2000, ok: 2000, failed: 0, connect_ms: { p50, p99 } },
      servers: { connect_cpu_us_per_conn: us, rss_per_conn_bytes: rss } });
    const fanout = (mode, p99, us) => ({ label: `tls-fanout-${mode}`, system: 'lectern', args: '--scenario fanout --rate 250',
      connections: { subscribers: 1000 }, steps: [{ rate: 250, seconds: 10, deliveries_per_s: 250000, expected: 2500000,
        received: 2500000, latency_ms: { p50: p99 / 2, p99 }, cpu_us_per_delivery: us }] });
    const tlsRuns = [connect('plain', 1.25, 3.75, 111, 1500), connect('tls', 4.5, 13.5, 999, 45000),
      fanout('plain', 7.25, 0.61), fanout('tls', 9.75, 0.97)];
    await writeFile(f, [...others, ...tlsRuns].map((x) => JSON.stringify(x)).join('\n') + '\n');
    assert.equal((await deriver('--check', '--root', dir)).code, 1, 'security.md is stale against the new runs');
    assert.equal((await deriver('--write', '--root', dir)).code, 0);
    const sec = path.join(dir, 'docs', 'security.md');
    const b = block(await readFile(sec, 'utf8'), 'tls-cost');
    assert.match(b, /\| connect p99 \| 3\.8 ms \| 13\.5 ms \| 3\.6× \|/);
    assert.match(b, /\| servers' CPU per connection made \| 111 µs \| 999 µs \| 9\.0× \|/);
    assert.match(b, /\| servers' CPU per delivery in that fan-out \| 0\.61 µs \| 0\.97 µs \| 1\.6× \|/);
    assert.match(b, /2,000 connections at 400\/s/);
    assert.match(b, /TLSv1\.3 TLS_AES_256_GCM_SHA384/);
    // The page of the same results has the TLS section with the same runs.
    const md = (await run('node', [path.join(repoRoot, 'scripts', 'bench-report.mjs'), f, 'make bench', 'm', 'c'])).stdout;
    assert.match(md, /## TLS\n[\s\S]*\| Connect p99 ms \| 3\.8 \| 13\.5 \| 3\.6× \|/);
    // A hand edit of the block fails --check.
    await edit(dir, 'docs/security.md', '| 111 µs | 999 µs |', '| 111 µs | 555 µs |');
    assert.equal((await deriver('--check', '--root', dir)).code, 1);
    // Results without the tls runs: the block says so, and the page has no TLS section.
    await writeFile(f, others.map((x) => JSON.stringify(x)).join('\n') + '\n');
    assert.equal((await deriver('--write', '--root', dir)).code, 0);
    assert.match(block(await readFile(sec, 'utf8'), 'tls-cost'), /holds no TLS runs/);
    const plain = (await run('node', [path.join(repoRoot, 'scripts', 'bench-report.mjs'), f, 'make bench', 'm', 'c'])).stdout;
    assert.doesNotMatch(plain, /## TLS/);
  }));

  test('the fast publisher (performance.md, benchmarks.md) follows the fastpub runs, and says so when there are none', () => inScratch(async (dir) => {
    const f = path.join(dir, 'docs', 'benchmarks.jsonl');
    const others = parseRuns(await readFile(f, 'utf8')).filter((x) => !/^fastpub-/.test(x.label));
    // One publisher into a room of 10 at each rate, three settings, with
    // figures no real run gives together; the reads1 publisher held back.
    const fast = (name, buf, reads, rate, sentPerS, got, p99, behind, more) => ({
      label: `fastpub-${name}-${rate}`, system: 'lectern', size: 1024, urls: ['ws://127.0.0.1:1/ws', 'ws://127.0.0.1:2/ws'], setting: name, rx_buffer: buf, rx_reads: reads,
      rx_more_reads: more, args: `--scenario fanout --subscribers 10 --rooms 1 --publishers 1 --rate ${rate}`,
      connections: { subscribers: 10 }, deliveries: { publisher_behind: behind },
      steps: [{ rate, seconds: 5, sent: sentPerS * 5, expected: sentPerS * 50, received: Math.round(sentPerS * 50 * got),
        latency_ms: { p50: p99 / 4, p99 } }] });
    const fastRuns = [];
    for (const rate of [2000, 8000]) {
      fastRuns.push(fast('default', 64, 64, rate, rate, 1, 23.75, 0, 333333),
        fast('reads1', 64, 1, rate, rate === 8000 ? 3125 : rate, rate === 8000 ? 0.5 : 1, 1234.5, rate === 8000 ? 777 : 0, 0),
        fast('buf256', 256, 1, rate, rate, 1, 187.75, 0, 0));
    }
    await writeFile(f, [...others, ...fastRuns].map((x) => JSON.stringify(x)).join('\n') + '\n');
    assert.equal((await deriver('--check', '--root', dir)).code, 1, 'performance.md is stale against the new runs');
    assert.equal((await deriver('--write', '--root', dir)).code, 0);
    const perf = path.join(dir, 'docs', 'performance.md');
    assert.equal(block(await readFile(perf, 'utf8'), 'fastpub'),
      'At 8,000 messages/s of 1 KiB from one connection (into a room of 10 over 2 servers), the defaults delivered 100% at p99 23.8 ms; ' +
      'one read per iteration with the same 64-byte buffer, p99 1234.5 ms (50.00% delivered, the publisher held to 3,125 messages/s); ' +
      'a 256-byte buffer read once, p99 187.8 ms (100% delivered).');
    // The page of the same results has the section with the same runs.
    const md = (await run('node', [path.join(repoRoot, 'scripts', 'bench-report.mjs'), f, 'make bench', 'm', 'c'])).stdout;
    assert.match(md, /## Fast publisher\n[\s\S]*\| 8,000 \| one read per iteration: `rx_buffer` 64, `rx_reads` 1 \| 3,125 \| 50\.00% \| 308\.6 \| 1234\.5 \| 777 \| 0 \|/);
    assert.match(md, /\| 8,000 \| defaults: `rx_buffer` 64, `rx_reads` 64 \| 8,000 \| 100\.00% \| 5\.9 \| 23\.8 \| 0 \| 333,333 \|/);
    // A hand edit of the sentence fails --check.
    await edit(dir, 'docs/performance.md', 'p99 23.8 ms', 'p99 13.8 ms');
    assert.equal((await deriver('--check', '--root', dir)).code, 1);
    // Results without the fastpub runs: the sentence says so, and the page has no section.
    await writeFile(f, others.map((x) => JSON.stringify(x)).join('\n') + '\n');
    assert.equal((await deriver('--write', '--root', dir)).code, 0);
    assert.match(block(await readFile(perf, 'utf8'), 'fastpub'), /holds no fast-publisher runs/);
    const plain = (await run('node', [path.join(repoRoot, 'scripts', 'bench-report.mjs'), f, 'make bench', 'm', 'c'])).stdout;
    assert.doesNotMatch(plain, /## Fast publisher/);
  }));

  test('the Soak section of benchmarks.md and the sentence in performance.md follow docs/soak.json', () => inScratch(async (dir) => {
    await rm(path.join(dir, 'docs', 'soak.json'), { force: true });
    await rm(path.join(dir, 'docs', 'soak.png'), { force: true });
    const soakReport = (...a) => run('node', [path.join(repoRoot, 'scripts', 'soak-report.mjs'), ...a, '--root', dir]);
    // No run recorded: no section, and the sentence says so.
    await soakReport('--write');
    assert.equal((await deriver('--write', '--root', dir)).code, 0);
    assert.equal((await deriver('--check', '--root', dir)).code, 0);
    const sk = {
      command: 'make soak', commit: 'abc1234', generated: '2026-01-02T03:04:05Z', duration_s: 1800, verdict: 'PASS', reasons: [],
      settings: { servers: 3, workers: 2, rooms: 60, room_members: 2, fanout_members: 250, fanout_rate: 10, churn_per_s: 2 },
      restart: { server: 2, begin: 900, ready: 903.5 },
      accounting: {
        sends: { confirmed: 777001, total: 777001 }, storage: { rows: 777001, missing: 0, stored_twice: 0 },
        delivery: { deliveries: 9876543, spans: 4321, lost: 0, duplicates_on_the_wire: 0 },
        churn: { network_drops: 100, app_resumes: 90, auto_reconnects: 600, reconnects: 500, room_switches: 400 },
        history: { checks: 180, mismatches: 0, walk_mismatches: 0 },
      },
      trend: { series: [{ name: 'rss server-1', kind: 'rss', level: 41943040, growth: 524288, growth_pct: 1.25, verdict: 'flat' }] },
    };
    await writeFile(path.join(dir, 'docs', 'soak.json'), JSON.stringify(sk));
    await writeFile(path.join(dir, 'docs', 'soak.png'), '');
    let r = await deriver('--check', '--root', dir);
    assert.equal(r.code, 1, 'a recorded run the pages do not show');
    assert.match(r.stderr, /benchmarks\.md: its Soak section is not what docs\/soak\.json gives/);
    assert.match(r.stderr, /performance\.md:\d+: differs/);
    await soakReport('--write');
    assert.equal((await deriver('--write', '--root', dir)).code, 0);
    assert.equal((await deriver('--check', '--root', dir)).code, 0);
    const bm = await readFile(path.join(dir, 'docs', 'benchmarks.md'), 'utf8');
    assert.match(bm, /## Soak\n[\s\S]*Verdict: \*\*PASS\*\*[\s\S]*9,876,543 in 4,321 memberships; 0 lost[\s\S]*\n\nWhy the numbers are what they are/);
    assert.equal(bm.match(/## Soak/g).length, 1);
    const perf = await readFile(path.join(dir, 'docs', 'performance.md'), 'utf8');
    assert.match(block(perf, 'soak-result'), /\*\*PASS\*\*; 9,876,543 deliveries, 0 lost/);
    // A figure of the section typed over by hand.
    await edit(dir, 'docs/benchmarks.md', '9,876,543 in', '9,876,999 in');
    r = await deriver('--check', '--root', dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /its Soak section is not what docs\/soak\.json gives/);
    // Writing it again is idempotent: one section, where it was.
    await soakReport('--write');
    await soakReport('--write');
    assert.equal(await readFile(path.join(dir, 'docs', 'benchmarks.md'), 'utf8'), bm);
  }));

  test('the sizing table holds what it claims: connections and burst deliveries fit with a server lost', async () => {
    const runs = parseRuns(await readFile(path.join(repoRoot, 'docs', 'benchmarks.jsonl'), 'utf8'));
    const knobs = parseKnobs(await readFile(path.join(repoRoot, 'docs', 'configuration.md'), 'utf8'));
    const m = model(runs, knobs);
    assert.deepEqual(m.missing, []);
    for (const z of m.sizes) {
      const serving = z.servers - z.spares;
      assert.ok(serving * m.planConns >= z.n, `${z.n}: ${serving} servers hold the connections`);
      assert.ok(serving * m.serverDeliveries >= z.deliveriesBurst, `${z.n}: ${serving} servers carry the bursts`);
      assert.ok(z.workers * m.planWorker >= z.sends, `${z.n}: the workers store the average`);
      assert.ok(z.servers >= 3 && z.workers >= 2);
    }
    // derive() is what --check runs: no errors on the committed tree.
    assert.deepEqual(derive(repoRoot).errors, []);
  });
});
