// The program as an operator meets it: command line, config file, HTTP
// endpoints, logs, signals.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  httpGet, metric, rawClient, repoRoot, serverBin, startServer, stompClient, subscribed,
} from './helpers.mjs';

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

  test('docs/configuration.md and README.md\'s knob tables are what scripts/config-docs.mjs makes of both knob tables', async () => {
    const r = await run('node', [path.join(repoRoot, 'scripts', 'config-docs.mjs'), '--check'],
      { env: { ...process.env, LECTERN_SERVER_BIN: serverBin } }).then(() => 0, (e) => e.stderr);
    assert.equal(r, 0, 'regenerate with: node scripts/config-docs.mjs --write');
  });

  test('every knob can be set from its environment variable; --set wins over it; a bad value names the variable', async () => {
    const env = (vars) => ({ env: { ...process.env, ...vars } });
    const ok = await run(serverBin, ['--check-config'], env({ LECTERN_STOMP_MAX_FRAME: '1m', LECTERN_AUTH_MODE: 'none', LECTERN_SERVER_LISTEN: '127.0.0.1' }))
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
    const proxies = await runServer(['--check-config', '--set', 'server.listen=127.0.0.1', '--set', 'limits.trusted_proxies=10.0.0.0/8,bogus']);
    assert.equal(proxies.code, 2);
    assert.match(proxies.stderr, /limits\.trusted_proxies: "bogus" is not an address/);
    const jwt = await runServer(['--check-config', '--set', 'auth.mode=jwt']);
    assert.equal(jwt.code, 2);
    assert.match(jwt.stderr, /auth\.mode=jwt needs auth\.keys/);
    const missing = await runServer(['--check-config', '--set', 'auth.mode=jwt', '--set', 'auth.keys=/nonexistent/keys']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read \/nonexistent\/keys/);
  });

  test('the shipped config file loads cleanly, and as shipped (no authentication, every address) it is refused until told where or how', async () => {
    const conf = path.join(repoRoot, 'config', 'lectern.conf');
    const shipped = await runServer(['--config', conf, '--check-config']);
    assert.equal(shipped.code, 2, shipped.stderr);
    assert.match(shipped.stderr, /auth\.mode=none .* allowed only on loopback.*auth\.mode=jwt.*server\.listen=127\.0\.0\.1.*auth\.mode=insecure-dev/);
    for (const fix of [['server.listen=127.0.0.1'], ['server.listen=lo'], ['auth.mode=insecure-dev']]) {
      const r = await runServer(['--config', conf, '--check-config', ...fix.flatMap((f) => ['--set', f])]);
      assert.equal(r.code, 0, `${fix}: ${r.stderr}`);
    }
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
      const r = await runServer(['--port', String(s.port), '--set', 'server.listen=127.0.0.1']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`event=startup_failed reason="cannot listen on 127\\.0\\.0\\.1:${s.port}: Address already in use`));
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
      const got = await subscribed(client, '/topic/metrics-room');
      for (let i = 0; i < 3; i++) client.publish({ destination: '/topic/metrics-room', body: String(i) });
      await got.next(3);
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

// Where a server without authentication may run (docs/security.md, "Exposure
// and origins"): auth.mode=none only on loopback, checked against the address
// really bound; insecure-dev anywhere, loudly.
describe('exposure', () => {
  // A non-loopback IPv4 address of this host, if it has one.
  const external = Object.values(os.networkInterfaces()).flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

  test('a bare lectern-server (no authentication, every address) refuses to start: exit 2, naming the knobs that lift it', async () => {
    for (const args of [[], ['--set', 'server.listen=0.0.0.0'], ['--config', path.join(repoRoot, 'config', 'lectern.conf')]]) {
      const r = await runServer(args);
      assert.equal(r.code, 2, `${args}: ${r.stderr}`);
      assert.match(r.stderr, /configuration error: auth\.mode=none lets anyone connect as anyone and is allowed only on loopback/);
      for (const knob of ['auth.mode=jwt', 'auth.keys', 'server.listen=127.0.0.1', 'auth.mode=insecure-dev'])
        assert.ok(r.stderr.includes(knob), `the message names ${knob}`);
    }
  });

  test('server.listen is bound as written or refused: ::1, a host name, a short form and an unknown interface are errors, not every address', async () => {
    for (const listen of ['::1', 'localhost', '127.1', 'nosuchif0']) {
      const r = await runServer(['--set', `server.listen=${listen}`, '--set', 'auth.mode=insecure-dev']);
      assert.equal(r.code, 2, `${listen}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`server\\.listen: '${listen.replace('.', '\\.')}' is neither an IPv4 address`));
    }
  });

  test('auth.mode=none on a non-loopback address of this host is refused', { skip: !external && 'no non-loopback IPv4 address' }, async () => {
    const r = await runServer(['--set', `server.listen=${external}`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`server\\.listen='${external.replace(/\./g, '\\.')}' is not a loopback address`));
  });

  test('auth.mode=none on loopback (address or interface) starts and warns; insecure-dev starts on every address and warns; jwt does neither', async () => {
    for (const listen of ['127.0.0.1', 'lo']) {
      const s = await startServer({ sets: { 'server.listen': listen } });
      try {
        assert.ok(s.logs.some((l) => new RegExp(`event=listening port=${s.port} listen=127\\.0\\.0\\.1:${s.port} `).test(l)), listen);
        assert.ok(s.logs.some((l) => /level=warn .*event=auth_insecure mode=none listen=127\.0\.0\.1:/.test(l)));
        assert.equal(await metric(s.port, 'lectern_auth_insecure'), 1);
      } finally {
        assert.equal((await s.stop()).code, 0);
      }
    }
    const dev = await startServer({ sets: { 'server.listen': '', 'auth.mode': 'insecure-dev' } });
    try {
      assert.ok(dev.logs.some((l) => new RegExp(`level=warn .*event=auth_insecure mode=insecure-dev listen=0\\.0\\.0\\.0:${dev.port} `).test(l)));
      assert.equal(await metric(dev.port, 'lectern_auth_insecure'), 1);
      if (external) assert.equal((await fetch(`http://${external}:${dev.port}/healthz`)).status, 200, 'reachable on every address');
    } finally {
      assert.equal((await dev.stop()).code, 0);
    }
    const dir = await mkdtemp(path.join(os.tmpdir(), 'lectern-'));
    const keys = path.join(dir, 'keys');
    await writeFile(keys, 'k1 HS256 0123456789abcdef0123456789abcdef\n');
    const jwt = await startServer({ sets: { 'server.listen': '', 'auth.mode': 'jwt', 'auth.keys': keys } });
    try {
      assert.ok(!jwt.logs.some((l) => /event=auth_insecure/.test(l)));
      assert.equal(await metric(jwt.port, 'lectern_auth_insecure'), 0);
    } finally {
      assert.equal((await jwt.stop()).code, 0);
    }
  });
});
