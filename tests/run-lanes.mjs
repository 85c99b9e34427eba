#!/usr/bin/env node
// tests/run-lanes.mjs — run integration test files in lanes: each lane has
// services of its own (tests/run-integration.sh starts them and writes each
// lane's environment to a file), and runs one file at a time.
//
// The suite waits more than it computes (services restarting, heart-beat
// timeouts, fixed windows), so two lanes on two cores take about 70% of
// the time of one; tests with tight timing then fail now and then, which is
// why run-integration.sh runs one lane unless told otherwise. Files are
// handed out from one queue to whichever lane is free (no weights to keep
// up to date). A file that measures the CPU or the timing of the servers,
// or loads the whole machine, says so with a line `// lane: alone`: those
// run first, one at a time, while the other lanes wait.
//
// Each file's TAP output is printed whole when the file ends, so lanes
// never interleave their lines. Exit status 1 when any file failed.
//
// Usage: node run-lanes.mjs --env LANE1.env [--env LANE2.env ...] FILE|DIR...
//        (paths relative to the current directory, tests/)
// A lane file holds KEY=VALUE lines added to the environment of its files.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const timeoutMs = process.env.LECTERN_TEST_TIMEOUT_MS || '600000';

function parseArgs(argv) {
  const lanes = [];
  const targets = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--env') lanes.push(argv[++i]);
    else targets.push(argv[i]);
  }
  if (!lanes.length || !targets.length) {
    console.error('usage: run-lanes.mjs --env LANE.env [--env LANE.env ...] FILE|DIR...');
    process.exit(2);
  }
  return { lanes, targets };
}

function laneEnv(file) {
  const env = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = line.match(/^([A-Z_][A-Z0-9_]*)=(.*)$/);
    if (m) env[m[1]] = m[2];
  }
  return env;
}

function testFiles(targets) {
  const out = [];
  for (const t of targets) {
    if (statSync(t).isDirectory()) {
      for (const f of readdirSync(t).sort()) if (f.endsWith('.test.mjs')) out.push(path.join(t, f));
    } else {
      out.push(t);
    }
  }
  return out;
}

const alone = (file) => /^\/\/ lane: alone\b/m.test(readFileSync(file, 'utf8'));

// Run one file in a lane; resolves { ok, text, seconds }.
function runFile(file, env) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath,
      ['--test', '--test-concurrency=1', `--test-timeout=${timeoutMs}`, file],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks = [];
    child.stdout.on('data', (d) => chunks.push(d));
    child.stderr.on('data', (d) => chunks.push(d));
    child.on('close', (code, signal) => resolve({
      ok: code === 0, text: Buffer.concat(chunks).toString(), seconds: (Date.now() - t0) / 1000,
      status: signal || code,
    }));
  });
}

const { lanes, targets } = parseArgs(process.argv.slice(2));
const envs = lanes.map(laneEnv);
const files = testFiles(targets);
const solo = files.filter(alone);
const shared = files.filter((f) => !solo.includes(f));
const failed = [];
const t0 = Date.now();

function report(lane, file, r) {
  process.stdout.write(`# lane ${lane + 1}: ${file} (${r.seconds.toFixed(1)} s, ${r.ok ? 'ok' : `FAILED, status ${r.status}`})\n`);
  process.stdout.write(r.text.endsWith('\n') ? r.text : `${r.text}\n`);
  if (!r.ok) failed.push(file);
}

for (const file of solo) report(0, file, await runFile(file, envs[0]));
const queue = [...shared];
await Promise.all(envs.map(async (env, lane) => {
  for (let file; (file = queue.shift());) report(lane, file, await runFile(file, env));
}));

const took = ((Date.now() - t0) / 1000).toFixed(1);
console.log(`# lanes: ${files.length} files (${solo.length} alone) in ${envs.length} lane${envs.length > 1 ? 's' : ''}, ${took} s; `
  + `${failed.length ? `FAILED: ${failed.join(' ')}` : 'all passed'}`);
process.exit(failed.length ? 1 : 0);
