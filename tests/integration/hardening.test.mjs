// Hardening: the secure defaults and the small holes of docs/security.md
// ("Exposure and origins"), each against a real server.
//
//   - websocket.allowed_origins: listed origins upgrade, others get 403,
//     an upgrade without Origin (not a browser) is let through;
//   - redis.user / redis.password: AUTH on every connection (a Redis with
//     requirepass and an ACL user, one behind a Sentinel), retried while
//     refused;
//   - metrics.listen: /metrics on its own listener, 404 on the public port;
//   - a 600-byte X-Forwarded-For through a trusted proxy counts the client it
//     names, not the proxy;
//   - HTTP exchanges refused at once (Redis down) or whose header write fails
//     (the client reset) are freed: the sanitizer build reports any leak at
//     exit, which fails the server's exit code and this file;
//   - a symbolic link in http.static_dir leading out of it is 404.
//
// Start refusals (auth.mode=none off loopback) are in cli.test.mjs.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import {
  freePort, httpGet, metric, rawClient, sleep, spawnReady, startServer, stompClient, subscribed, waitFor,
} from './helpers.mjs';

const dirs = [];
const procs = [];
after(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir() {
  const d = mkdtempSync(path.join(os.tmpdir(), 'lectern-hard-'));
  dirs.push(d);
  return d;
}

// An upgrade's outcome: { status: 101 } when it opened, else the HTTP status
// and body of the refusal.
function upgrade(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['v12.stomp'], { headers });
    ws.once('open', () => { ws.terminate(); resolve({ status: 101 }); });
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    ws.once('error', reject);
  });
}

// GET with a Host header of our choosing (fetch does not let one set it).
function statusWithHost(port, urlPath, host) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, headers: { Host: host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
  });
}

async function stopClean(s) {
  const r = await s.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}; log:\n${s.logs.slice(-40).join('\n')}`);
}

describe('websocket.allowed_origins', () => {
  test('a listed origin upgrades (any case, default port or none), another gets 403 with the reason, no Origin is let through', async () => {
    const s = await startServer({ sets: { 'websocket.allowed_origins': 'https://lectures.example.edu, http://localhost:8080' } });
    try {
      assert.ok(s.logs.some((l) => /event=origins allowed=2/.test(l)), 'the policy is logged at start');
      for (const origin of ['https://lectures.example.edu', 'HTTPS://Lectures.Example.EDU:443', 'http://localhost:8080'])
        assert.equal((await upgrade(s.wsUrl, { Origin: origin })).status, 101, origin);
      for (const origin of ['https://evil.example', 'https://lectures.example.edu.evil.example', 'http://lectures.example.edu',
        'https://lectures.example.edu:8443', 'null', 'https://lectures.example.edu/page']) {
        const r = await upgrade(s.wsUrl, { Origin: origin });
        assert.equal(r.status, 403, origin);
        assert.match(r.body, /websocket\.allowed_origins/);
      }
      assert.equal(await metric(s.port, 'lectern_origin_rejects_total'), 6);
      // No Origin header: a native client or a tool, which could write any
      // Origin anyway; it connects and speaks STOMP.
      const c = await rawClient(s.wsUrl);
      await c.connect();
      c.close();
    } finally {
      await stopClean(s);
    }
  });

  test('an empty list lets every origin in and says so at start; a malformed entry stops the server', async () => {
    const s = await startServer();
    try {
      assert.ok(s.logs.some((l) => /level=warn .*event=origins_any/.test(l)));
      assert.equal((await upgrade(s.wsUrl, { Origin: 'https://anywhere.example' })).status, 101);
    } finally {
      await stopClean(s);
    }
    await assert.rejects(startServer({ sets: { 'websocket.allowed_origins': 'lectures.example.edu' } }),
      /websocket\.allowed_origins: 'lectures\.example\.edu' is not scheme:\/\/host\[:port\]/);
  });
});

// --- Redis credentials --------------------------------------------------------------

function redisCli(port, args, auth = []) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...auth, ...args], { timeout: 5000 },
      (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout.trim())));
  });
}

// A redis-server from a config file (ACL users cannot be given on the
// command line), in the foreground; resolves once it answers.
async function redisWithConfig(lines, { sentinel = false, pass } = {}) {
  const dir = tempDir();
  const port = await freePort();
  const conf = path.join(dir, 'redis.conf');
  writeFileSync(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'save ""', 'appendonly no', ...lines, ''].join('\n'));
  const auth = pass ? ['--no-auth-warning', '-a', pass] : [];
  const { proc } = await spawnReady('redis-server', sentinel ? [conf, '--sentinel'] : [conf], {
    what: `redis-server :${port}`, timeout: 10000, ready: async () => (await redisCli(port, ['PING'], auth)) === 'PONG',
  });
  procs.push(proc);
  return { port, proc, auth };
}

async function roundTrip(s) {
  const { client } = await stompClient(s.wsUrl);
  try {
    const got = await subscribed(client, '/topic/auth');
    client.publish({ destination: '/topic/auth', body: 'through an authenticated registry' });
    const [m] = await got.next(1);
    assert.equal(m.body, 'through an authenticated registry');
  } finally {
    await client.deactivate();
  }
}

describe('redis.user and redis.password', () => {
  test('a Redis with requirepass and an ACL user: the server AUTHs as either; without the password it is not ready, logs why and retries until Redis accepts it', async () => {
    const r = await redisWithConfig(['requirepass first-secret', 'user lectern on >acl-secret ~* &* +@all'], { pass: 'first-secret' });
    const withPass = await startServer({ sets: { 'redis.port': r.port, 'redis.password': 'first-secret' } });
    const withUser = await startServer({ sets: { 'redis.port': r.port, 'redis.user': 'lectern', 'redis.password': 'acl-secret' } });
    try {
      await roundTrip(withPass);
      await roundTrip(withUser);
    } finally {
      await stopClean(withPass);
      await stopClean(withUser);
    }

    const none = await startServer({ ready: false, sets: { 'redis.port': r.port } });
    const later = await startServer({ ready: false, sets: { 'redis.port': r.port, 'redis.password': 'second-secret' } });
    try {
      await waitFor(() => none.logs.some((l) => /event=redis_auth_failed .*NOAUTH.*set redis\.password/.test(l)),
        { what: 'NOAUTH logged' });
      await waitFor(() => later.logs.filter((l) => /event=redis_auth_failed conn=registry .*WRONGPASS/.test(l)).length >= 2,
        { what: 'a refused AUTH, retried' });
      assert.equal((await httpGet(none.port, '/readyz')).status, 503);
      assert.equal((await httpGet(later.port, '/readyz')).status, 503);
      // The operator changes Redis's password: the retrying server gets in.
      await redisCli(r.port, ['CONFIG', 'SET', 'requirepass', 'second-secret'], r.auth);
      await waitFor(async () => (await httpGet(later.port, '/readyz')).status === 200,
        { timeout: 10000, what: 'ready once Redis accepts the password' });
      await roundTrip(later);
    } finally {
      await stopClean(none);
      await stopClean(later);
    }
  });

  test('a master found through a Sentinel gets the same AUTH', async () => {
    const master = await redisWithConfig(['requirepass master-secret'], { pass: 'master-secret' });
    const sentinel = await redisWithConfig([
      'sentinel resolve-hostnames no',
      `sentinel monitor lectern 127.0.0.1 ${master.port} 1`,
      'sentinel auth-pass lectern master-secret',
    ], { sentinel: true });
    const s = await startServer({
      sets: { 'redis.sentinels': `127.0.0.1:${sentinel.port}`, 'redis.password': 'master-secret', 'redis.port': 1 },
    });
    try {
      assert.ok(s.logs.some((l) => new RegExp(`event=redis_up conn=registry host=127\\.0\\.0\\.1 port=${master.port}`).test(l)));
      await roundTrip(s);
    } finally {
      await stopClean(s);
    }
  });
});

// --- metrics.listen -----------------------------------------------------------------

describe('metrics.listen', () => {
  test('/metrics is served on its own listener only: 404 on the public port; the metrics port serves nothing else and no WebSocket', async () => {
    const mport = await freePort();
    const s = await startServer({ sets: { 'metrics.listen': `127.0.0.1:${mport}` } });
    try {
      assert.ok(s.logs.some((l) => new RegExp(`event=listening .*metrics_listen=127\\.0\\.0\\.1:${mport}`).test(l)));
      const m = await httpGet(mport, '/metrics');
      assert.equal(m.status, 200);
      assert.match(m.text, /^lectern_connections \d+$/m);
      assert.equal((await httpGet(s.port, '/metrics')).status, 404);
      assert.equal((await httpGet(s.port, '/healthz')).status, 200, 'the public port keeps its other routes');
      for (const p of ['/healthz', '/api/stats', '/index.html'])
        assert.equal((await httpGet(mport, p)).status, 404, p);
      // lws picks a vhost by the Host header; the listener decides here.
      assert.equal(await statusWithHost(mport, '/healthz', 'default'), 404);
      assert.equal((await upgrade(`ws://127.0.0.1:${mport}/ws`)).status, 404);
      // The counters are the server's: a connection on the public port shows.
      const c = await rawClient(s.wsUrl);
      await c.connect();
      assert.match((await httpGet(mport, '/metrics')).text, /^lectern_connections 1$/m);
      c.close();
    } finally {
      await stopClean(s);
    }
  });

  test('a metrics.listen that is not host:port stops the server', async () => {
    await assert.rejects(startServer({ sets: { 'metrics.listen': '9300' } }), /metrics\.listen: '9300' is not host:port/);
  });
});

// --- X-Forwarded-For ------------------------------------------------------------------

describe('X-Forwarded-For', () => {
  test('a 600-byte X-Forwarded-For through a trusted proxy counts the client it ends with: the per-address limit applies to that client, not to the proxy', async () => {
    const s = await startServer({ sets: { 'limits.trusted_proxies': '127.0.0.1', 'limits.max_conns_per_ip': 2 } });
    const open = [];
    try {
      // What a client may prepend before the proxy appends its address.
      const pad = Array.from({ length: 60 }, (_, i) => `10.0.${i}.1`).join(', ');
      const xff = (client) => ({ 'X-Forwarded-For': `${pad}, ${client}` });
      assert.ok(xff('203.0.113.5')['X-Forwarded-For'].length >= 600);
      open.push(await rawClient(s.wsUrl, { headers: xff('203.0.113.5') }));
      open.push(await rawClient(s.wsUrl, { headers: xff('203.0.113.5') }));
      await assert.rejects(rawClient(s.wsUrl, { headers: xff('203.0.113.5') }), /HTTP 429/, 'the client is at its limit');
      // Other clients behind the same proxy, and the proxy itself, are not.
      open.push(await rawClient(s.wsUrl, { headers: xff('203.0.113.6') }));
      open.push(await rawClient(s.wsUrl));
      assert.ok(s.logs.some((l) => /event=conn_limit addr=203\.0\.113\.5 /.test(l)));
    } finally {
      for (const c of open) c.close();
      await stopClean(s);
    }
  });
});

// --- HTTP exchanges freed on every path ------------------------------------------------

// Send one HTTP request on a raw TCP connection and reset the connection at
// once, so that the answer may meet a reset socket. That happens only when
// the reset arrives after the server read the request and before it wrote
// the answer's headers (the path that leaked), a window of microseconds:
// how often depends on the machine's load, so the tries vary the padding
// (lws parses it in that window) and when the reset follows the write.
function requestAndReset(port, urlPath, pad, early) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      const req = `GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'p'.repeat(pad)}\r\n\r\n`;
      if (early) {
        sock.write(req);
        sock.resetAndDestroy();
        resolve();
      } else {
        sock.write(req, () => { sock.resetAndDestroy(); resolve(); });
      }
    });
    sock.on('error', () => resolve());
  });
}

describe('HTTP exchanges are freed', () => {
  test('presence and online lookups refused at once (Redis down) answer 503 and leak nothing (clean exit under the sanitizers)', async () => {
    const nowhere = await freePort();
    const s = await startServer({ ready: false, sets: { 'redis.port': nowhere, 'redis.backoff_max_ms': 200 } });
    try {
      for (let i = 0; i < 20; i++) {
        const a = await httpGet(s.port, '/api/rooms/physics/presence');
        assert.equal(a.status, 503);
        assert.match(a.text, /registry \(Redis\) unavailable/);
        assert.equal((await httpGet(s.port, '/api/presence?users=a,b')).status, 503);
      }
    } finally {
      await stopClean(s);
    }
    assert.ok(!s.logs.some((l) => /LeakSanitizer/.test(l)), 'no leak report');
  });

  test('answers whose header write fails (the client reset the connection) leak nothing', async (t) => {
    const s = await startServer({ sets: { 'log.level': 'debug' } });
    const failed = () => s.logs.filter((l) => /event=http_write_failed .*part=headers/.test(l)).length;
    let tries = 0;
    try {
      // Until the path has been taken a few times (each failure is logged at
      // debug level), for at most 30 s.
      const deadline = Date.now() + 30000;
      for (let round = 0; failed() < 5 && Date.now() < deadline; round++) {
        const pad = [0, 1000, 3000][round % 3];
        const early = round % 2 === 1;
        for (let i = 0; i < 50; i++, tries++)
          await requestAndReset(s.port, i % 2 ? '/healthz' : '/nosuchfile', pad, early);
        await sleep(20); // a breath between rounds of resets (the loop's deadline is the wait)
      }
      t.diagnostic(`header writes failed ${failed()} times in ${tries} tries`);
      assert.ok(failed() >= 1, `no header write failed in ${tries} tries: the path was not exercised`);
      // The server still serves.
      assert.equal((await httpGet(s.port, '/healthz')).status, 200);
    } finally {
      await stopClean(s);
    }
    assert.ok(!s.logs.some((l) => /LeakSanitizer/.test(l)), 'no leak report');
  });
});

// --- static files ----------------------------------------------------------------------

describe('http.static_dir', () => {
  test('a symbolic link leading out of static_dir is 404; one that stays inside is served', async () => {
    const root = tempDir();
    const pub = path.join(root, 'public');
    mkdirSync(path.join(pub, 'sub'), { recursive: true });
    writeFileSync(path.join(pub, 'index.html'), '<p>lecture room</p>');
    writeFileSync(path.join(root, 'secret.txt'), 'database password');
    symlinkSync(path.join(root, 'secret.txt'), path.join(pub, 'leak.txt'));
    symlinkSync('../secret.txt', path.join(pub, 'relative.txt'));
    symlinkSync('/etc/passwd', path.join(pub, 'passwd.txt'));
    symlinkSync(root, path.join(pub, 'up'));
    symlinkSync('index.html', path.join(pub, 'alias.html'));
    symlinkSync('..', path.join(pub, 'sub', 'parent'));
    const s = await startServer({ sets: { 'http.static_dir': pub } });
    try {
      for (const p of ['/leak.txt', '/relative.txt', '/passwd.txt', '/up/secret.txt', '/sub/parent/index.html']) {
        const r = await httpGet(s.port, p);
        assert.equal(r.status, p === '/sub/parent/index.html' ? 200 : 404, p);
        assert.doesNotMatch(r.text, /database password|root:/, p);
      }
      const alias = await httpGet(s.port, '/alias.html');
      assert.equal(alias.status, 200);
      assert.equal(alias.text, '<p>lecture room</p>');
    } finally {
      await stopClean(s);
    }
  });
});
