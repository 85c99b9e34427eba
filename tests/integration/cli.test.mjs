// The program as an operator meets it: command line, config file, HTTP
// endpoints, logs, signals.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { httpGet, rawClient, repoRoot, serverBin, startServer, stompClient } from './helpers.mjs';

const run = promisify(execFile);

async function runServer(args) {
  try {
    const { stdout, stderr } = await run(serverBin, args);
    return { code: 0, stdout, stderr };
  } catch (e) {
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('command line', () => {
  test('--help describes the options and exits 0', async () => {
    const r = await runServer(['--help']);
    assert.equal(r.code, 0);
    for (const opt of ['--config', '--port', '--set', '--print-config', '--help'])
      assert.ok(r.stdout.includes(opt), `help mentions ${opt}`);
  });

  test('config/lectern.conf is exactly what --print-config prints (every knob, its default, its help)', async () => {
    const r = await runServer(['--print-config']);
    assert.equal(r.code, 0);
    const shipped = await readFile(path.join(repoRoot, 'config', 'lectern.conf'), 'utf8');
    assert.equal(shipped, r.stdout, 'regenerate with: bin/lectern-server --print-config > config/lectern.conf');
  });

  test('docs/configuration.md is what scripts/config-docs.mjs makes of both knob tables', async () => {
    const r = await run('node', [path.join(repoRoot, 'scripts', 'config-docs.mjs'), '--check'],
      { env: { ...process.env, LECTERN_SERVER_BIN: serverBin } }).then(() => 0, (e) => e.stderr);
    assert.equal(r, 0, 'regenerate with: node scripts/config-docs.mjs --write');
  });

  test('every knob can be set from its environment variable; --set wins over it; a bad value names the variable', async () => {
    const env = (vars) => ({ env: { ...process.env, ...vars } });
    const ok = await run(serverBin, ['--check-config'], env({ LECTERN_STOMP_MAX_FRAME: '1m', LECTERN_AUTH_MODE: 'none' }))
      .then(() => 0, (e) => e.stderr);
    assert.equal(ok, 0);
    const bad = await run(serverBin, ['--check-config'], env({ LECTERN_STOMP_MAX_FRAME: 'huge' })).then(() => null, (e) => e);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /environment LECTERN_STOMP_MAX_FRAME: stomp\.max_frame = 'huge'/);
    const over = await run(serverBin, ['--check-config', '--set', 'stomp.max_frame=1m'], env({ LECTERN_STOMP_MAX_FRAME: 'huge' }))
      .then(() => null, (e) => e);
    assert.equal(over.code, 2, 'the environment is applied before --set, so its error still stops the program');
    // And the value takes effect in a running server.
    process.env.LECTERN_HTTP_MAX_USERS = '2';
    let s;
    try {
      s = await startServer();
    } finally {
      delete process.env.LECTERN_HTTP_MAX_USERS;
    }
    try {
      assert.equal((await httpGet(s.port, '/api/presence?users=a,b')).status, 200);
      assert.equal((await httpGet(s.port, '/api/presence?users=a,b,c')).status, 400);
    } finally {
      await s.stop();
    }
  });

  test('--check-config finds what only a start would: a bad trusted proxy, a JWT setup without keys', async () => {
    const proxies = await runServer(['--check-config', '--set', 'limits.trusted_proxies=10.0.0.0/8,bogus']);
    assert.equal(proxies.code, 2);
    assert.match(proxies.stderr, /limits\.trusted_proxies: "bogus" is not an address/);
    const jwt = await runServer(['--check-config', '--set', 'auth.mode=jwt']);
    assert.equal(jwt.code, 2);
    assert.match(jwt.stderr, /auth\.mode=jwt needs auth\.keys/);
    const missing = await runServer(['--check-config', '--set', 'auth.mode=jwt', '--set', 'auth.keys=/nonexistent/keys']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read \/nonexistent\/keys/);
  });

  test('the shipped config file loads cleanly', async () => {
    const r = await runServer(['--config', path.join(repoRoot, 'config', 'lectern.conf'), '--check-config']);
    assert.equal(r.code, 0, r.stderr);
  });

  test('a bad value in a config file is reported as file:line: reason, and the server does not start', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'lectern-'));
    const file = path.join(dir, 'bad.conf');
    await writeFile(file, '[server]\nport = 1\n\n[stomp]\nmax_headers = lots\n');
    const r = await runServer(['--config', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5: stomp\\.max_headers = 'lots': not an integer`));
  });

  test('unknown knobs and sections are errors', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'lectern-'));
    const file = path.join(dir, 'unknown.conf');
    await writeFile(file, '[nosuch]\nknob = 1\n');
    assert.match((await runServer(['--config', file])).stderr, /:2: unknown knob 'nosuch\.knob'/);
    assert.match((await runServer(['--set', 'stomp.max_frame=1x'])).stderr, /--set: stomp\.max_frame = '1x'/);
    assert.match((await runServer(['--set', 'nonsense'])).stderr, /expected section\.key=value/);
  });

  test('a port already in use is a clear startup error', async () => {
    const s = await startServer();
    try {
      const r = await runServer(['--port', String(s.port)]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /event=startup_failed reason="cannot listen on port/);
    } finally {
      await s.stop();
    }
  });
});

describe('HTTP', () => {
  test('/healthz, /metrics, 404 and 405 on the WebSocket port', async () => {
    const s = await startServer();
    try {
      const h = await httpGet(s.port, '/healthz');
      assert.equal(h.status, 200);
      assert.equal(JSON.parse(h.text).status, 'ok');
      const m = await httpGet(s.port, '/metrics');
      assert.equal(m.status, 200);
      assert.match(m.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
      assert.match(m.text, /^# TYPE lectern_connections gauge$/m);
      const nf = await httpGet(s.port, '/nothing-here');
      assert.equal(nf.status, 404);
      assert.equal(JSON.parse(nf.text).error, 'no such resource');
      const post = await httpGet(s.port, '/healthz', { method: 'POST', body: 'x' });
      assert.equal(post.status, 405);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('static files are served from http.static_dir, and nothing outside it', async () => {
    const s = await startServer({ sets: { 'http.static_dir': path.join(repoRoot, 'client-js', 'public') } });
    try {
      const page = await httpGet(s.port, '/');
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type'), /^text\/html/);
      assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
      assert.match(page.text, /<title>Lectern/);
      assert.equal((await httpGet(s.port, '/index.html')).status, 200);
      for (const bad of ['/nope.html', '/../Makefile', '/..%2fMakefile', '/.hidden', '/a//b.html',
        '/%2e%2e/%2e%2e/etc/passwd', '/index.html.bak', '/public'])
        assert.equal((await httpGet(s.port, bad)).status, 404, bad);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('without http.static_dir no files are served', async () => {
    const s = await startServer();
    try {
      assert.equal((await httpGet(s.port, '/')).status, 404);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('metrics move with traffic', async () => {
    const s = await startServer();
    try {
      const { client } = await stompClient(s.wsUrl);
      const got = [];
      client.subscribe('/topic/metrics-room', (m) => got.push(m));
      await new Promise((r) => setTimeout(r, 50));
      for (let i = 0; i < 3; i++) client.publish({ destination: '/topic/metrics-room', body: String(i) });
      while (got.length < 3) await new Promise((r) => setTimeout(r, 10));
      const text = (await httpGet(s.port, '/metrics')).text;
      const val = (name) => Number(text.match(new RegExp(`^${name} (\\d+)$`, 'm'))[1]);
      assert.equal(val('lectern_connections'), 1);
      assert.equal(val('lectern_rooms'), 1);
      assert.equal(val('lectern_subscriptions'), 1);
      assert.equal(val('lectern_messages_published_total'), 3);
      assert.equal(val('lectern_deliveries_total'), 3);
      assert.match(text, /^lectern_frames_in_total\{command="SEND"\} 3$/m);
      await client.deactivate();
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });
});

describe('signals and logs', () => {
  test('SIGTERM with open connections closes them and exits 0 promptly', async () => {
    const s = await startServer();
    const a = await rawClient(s.wsUrl);
    await a.connect();
    a.frame('SUBSCRIBE', { id: '0', destination: '/topic/bye' });
    const b = await rawClient(s.wsUrl);
    await b.connect();
    const t0 = Date.now();
    const { code } = await s.stop();
    assert.equal(code, 0, s.logs.join('\n'));
    assert.ok(Date.now() - t0 < 5000, 'exits within 5 s');
    await a.waitClosed();
    await b.waitClosed();
    assert.ok(s.logs.some((l) => /event=shutdown reason=SIGTERM/.test(l)));
  });

  test('SIGINT also shuts down cleanly', async () => {
    const s = await startServer();
    s.proc.kill('SIGINT');
    const { code } = await s.waitExit();
    assert.equal(code, 0);
  });

  test('a second SIGTERM during shutdown does not kill the process', async () => {
    const s = await startServer();
    const c = await rawClient(s.wsUrl);
    await c.connect();
    s.proc.kill('SIGTERM');
    s.proc.kill('SIGTERM');
    const { code, signal } = await s.waitExit();
    assert.equal(signal, null);
    assert.equal(code, 0);
  });

  test('every log line is one line of key=value pairs with ts, level and event', async () => {
    const s = await startServer();
    const c = await rawClient(s.wsUrl);
    await c.connect();
    c.send('BOGUS\n\n\0'); // logs a stomp_error with client-controlled text quoted
    await c.waitClosed();
    await s.stop();
    assert.ok(s.logs.length >= 3);
    for (const line of s.logs) {
      assert.match(line, /^ts=\S+ level=(debug|info|warn|error) prog=lectern-server event=[a-z_]+( [a-z_]+=("([^"\\]|\\.)*"|\S+))*$/, line);
    }
  });
});
