// TLS at the load balancer: haproxy with the configuration
// scripts/haproxy-config --tls writes (TLS=1 make run uses the same), in
// front of two real servers speaking plain HTTP, with the certificate
// scripts/tls-ca makes. Clients trust the CA explicitly (ws's and https's
// `ca` option; Chromium the key's pin, --ignore-certificate-errors-spki-list):
// nothing turns verification off, so a connection that works is one whose
// certificate checked out. The certificates that must be refused (another
// CA's, an expired one) come from tlsca.mjs.
//
// What is checked: stompjs over wss:// delivers; another CA and an expired
// certificate are refused; only TLS 1.2+ with forward-secret AEAD ciphers;
// plain HTTP gets a 301 to the same path over HTTPS; every answer has
// Strict-Transport-Security; /metrics is 403 through the front (spelt any
// way) while haproxy's stats and metrics answer on the admin port only; the
// lecture-room page loads over https:// in Chromium and its STOMP
// connection over wss:// carries a message. And scripts/tls-ca itself:
// the files it makes, their form, and that a second run keeps them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import {
  freePort, httpGet, metric, repoRoot, spawnReady, startCluster, startWorker, stompClient, subscribed, waitFor,
} from './helpers.mjs';
import { issue, makeCa, readPem, tlsProbe } from './tlsca.mjs';

const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const dir = mkdtempSync(path.join(os.tmpdir(), 'lectern-tls-lb-'));
const varDir = path.join(dir, 'var');
const tlsCa = path.join(repoRoot, 'scripts', 'tls-ca');

// scripts/tls-ca CMD with this file's LECTERN_VAR_DIR: { out, err }.
function tlsCaRun(cmd) {
  const r = execFileSync(tlsCa, [cmd], { env: { ...process.env, LECTERN_VAR_DIR: varDir },
    stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  return r;
}
const parsePaths = (out) => Object.fromEntries(out.trim().split('\n').map((l) => l.split('=')));

// haproxy on the configuration scripts/haproxy-config writes for `args`
// (before the ports); ready when /readyz answers 200 over HTTPS trusting
// `ca`, or, with `ready: false`, once it listens.
async function startTlsHaproxy(pem, serverPorts, { ca, redirect, admin, extra = [] } = {}) {
  const port = await freePort();
  const args = ['--tls', pem, ...extra];
  if (redirect) args.push('--redirect', String(redirect));
  if (admin) args.push('--admin', String(admin));
  const cfg = execFileSync(path.join(repoRoot, 'scripts', 'haproxy-config'), [...args, String(port), ...serverPorts.map(String)]);
  const file = path.join(mkdtempSync(path.join(dir, 'lb-')), 'haproxy.cfg');
  writeFileSync(file, cfg);
  const listening = () => new Promise((resolve) => {
    const s = https.request({ host: '127.0.0.1', port, path: '/readyz', servername: 'localhost',
      ca: ca && readPem(ca), rejectUnauthorized: !!ca, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    s.on('error', (e) => resolve(!ca && e.code !== 'ECONNREFUSED'));
    s.end();
  });
  const h = await spawnReady('haproxy', ['-W', '-db', '-f', file],
    { what: `haproxy :${port}`, timeout: 10000, ready: listening });
  return { port, cfg: cfg.toString(), wssUrl: `wss://localhost:${port}/ws`, stop: () => h.stop(), logs: h.logs };
}

// GET over HTTPS (server name localhost) trusting `ca`: { status, headers, text }.
function httpsGet(port, urlPath, ca) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: urlPath, servername: 'localhost', ca: readPem(ca),
      agent: false, timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('timeout', () => req.destroy(new Error('HTTPS request timed out')));
    req.on('error', reject);
    req.end();
  });
}

// A WebSocket handshake over wss:// trusting `ca`: resolves on open,
// rejects with the client's error (its code names the refusal).
function wssOpen(url, ca) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['v12.stomp'], { ca: readPem(ca), handshakeTimeout: 5000 });
    ws.once('open', () => { ws.close(); resolve(); });
    ws.once('error', reject);
  });
}
const wssClient = (url, ca) => stompClient(url, {
  webSocketFactory: () => new WebSocket(url, ['v12.stomp'], { ca: readPem(ca) }) });

let paths, cluster, worker, lb, redirectPort, adminPort, other, expiredPem, otherCa;
const HSTS = 'max-age=31536000';

before(async () => {
  paths = parsePaths(tlsCaRun('make'));
  // The refused ones: a certificate from another CA, and an expired one
  // from a CA the client trusts.
  otherCa = makeCa(dir, 'other');
  other = issue(otherCa, 'other-leaf');
  const expiredCa = makeCa(dir, 'exp');
  const expired = issue(expiredCa, 'expired-leaf', { days: 0 });
  expiredPem = path.join(dir, 'expired.pem');
  writeFileSync(expiredPem, Buffer.concat([readPem(expired.cert), readPem(expiredCa.cert), readPem(expired.key)]));
  writeFileSync(path.join(dir, 'other.pem'), Buffer.concat([readPem(other.cert), readPem(otherCa.cert), readPem(other.key)]));
  other.pem = path.join(dir, 'other.pem');
  other.ca = expiredCa.cert;   // the CA that signed the expired one

  cluster = await startCluster({ n: 2, sets: { 'http.static_dir': path.join(repoRoot, 'client-js', 'public') } });
  worker = await startWorker({ cluster: cluster.cluster });   // the history schema the page reads
  redirectPort = await freePort();
  adminPort = await freePort();
  lb = await startTlsHaproxy(paths.pem, cluster.servers.map((s) => s.port),
    { ca: paths.ca, redirect: redirectPort, admin: adminPort });
});
after(async () => {
  await lb?.stop();
  await worker?.stop();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('scripts/tls-ca', () => {
  test('makes a CA, a P-256 server certificate for localhost and 127.0.0.1 valid about 30 days, and haproxy\'s combined PEM; keys private', () => {
    for (const k of ['ca', 'cert', 'key', 'pem']) {
      assert.ok(existsSync(paths[k]), `${k}: ${paths[k]}`);
      assert.equal(path.dirname(paths[k]), path.join(varDir, 'tls'), `${k} under $LECTERN_VAR_DIR/tls`);
    }
    assert.equal(statSync(paths.key).mode & 0o077, 0, 'the key is readable by its owner only');
    assert.equal(statSync(paths.pem).mode & 0o077, 0, 'the combined PEM (it holds the key) is readable by its owner only');
    const text = execFileSync('openssl', ['x509', '-in', paths.cert, '-noout', '-text'], { encoding: 'utf8' });
    assert.match(text, /DNS:localhost/);
    assert.match(text, /IP Address:127\.0\.0\.1/);
    assert.match(text, /prime256v1|P-256/);
    const days = (new Date(text.match(/Not After : (.*)/)[1]) - Date.now()) / 86400e3;
    assert.ok(days > 25 && days <= 31, `valid for ${days.toFixed(1)} days`);
    execFileSync('openssl', ['verify', '-CAfile', paths.ca, paths.cert], { stdio: 'ignore' });
    // server.pem: the leaf, the CA certificate, the key, in that order.
    const pem = readFileSync(paths.pem, 'utf8');
    const blocks = [...pem.matchAll(/-----BEGIN ([A-Z ]+)-----/g)].map((m) => m[1]);
    assert.deepEqual(blocks, ['CERTIFICATE', 'CERTIFICATE', 'PRIVATE KEY']);
    assert.ok(pem.startsWith(readFileSync(paths.cert, 'utf8')), 'the leaf first');
    assert.ok(pem.includes(readFileSync(paths.ca, 'utf8')), 'then the CA');
    assert.ok(pem.endsWith(readFileSync(paths.key, 'utf8')), 'then the key');
  });

  test('a second run keeps a valid certificate; a removed one is made again from the same CA', () => {
    const before1 = readFileSync(paths.pem);
    const caBefore = readFileSync(paths.ca);
    const out = execFileSync(tlsCa, ['make'], { env: { ...process.env, LECTERN_VAR_DIR: varDir }, encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'] });
    assert.deepEqual(parsePaths(out), paths);
    assert.deepEqual(readFileSync(paths.pem), before1, 'kept as it was');
    assert.deepEqual(parsePaths(tlsCaRun('paths')), paths);
    // spki: the pin Chromium is given, computed here from the key as well.
    const spki = tlsCaRun('spki').trim();
    const der = execFileSync('openssl', ['pkey', '-in', paths.key, '-pubout', '-outform', 'der']);
    assert.equal(spki, execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der }).toString('base64'));
    // Not the running haproxy's files: a copy of the directory.
    const copy = path.join(dir, 'var-copy');
    execFileSync('cp', ['-a', varDir, copy]);
    rmSync(path.join(copy, 'tls', 'server.crt'));
    const env = { ...process.env, LECTERN_VAR_DIR: copy };
    execFileSync(tlsCa, ['make'], { env, stdio: 'ignore' });
    assert.deepEqual(readFileSync(path.join(copy, 'tls', 'ca.pem')), caBefore, 'the CA is kept');
    assert.notDeepEqual(readFileSync(path.join(copy, 'tls', 'server.pem')), before1, 'a new certificate');
    execFileSync('openssl', ['verify', '-CAfile', paths.ca, path.join(copy, 'tls', 'server.crt')], { stdio: 'ignore' });
  });
});

describe('haproxy terminates TLS (scripts/haproxy-config --tls)', () => {
  test('stompjs over wss:// through haproxy, the CA trusted: a SEND reaches a subscriber on the other server', async () => {
    const sub = await wssClient(lb.wssUrl, paths.ca);
    const pub = await wssClient(lb.wssUrl, paths.ca);
    try {
      // leastconn put the two on different servers: the message crosses the bus.
      const conns = await Promise.all(cluster.servers.map((s) => metric(s.port, 'lectern_connections')));
      assert.deepEqual(conns, [1, 1]);
      const room = `/topic/tls-lb-${process.pid}`;
      const got = await subscribed(sub.client, room);
      pub.client.publish({ destination: room, body: 'over wss through haproxy' });
      const [m] = await got.next(1);
      assert.equal(m.body, 'over wss through haproxy');
    } finally {
      await sub.client.deactivate();
      await pub.client.deactivate();
    }
  });

  test('a client that trusts another CA is refused; so is a certificate that has expired', async () => {
    await assert.rejects(wssOpen(lb.wssUrl, otherCa.cert),
      (e) => /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/.test(e.code), 'another CA');
    const stale = await startTlsHaproxy(expiredPem, cluster.servers.map((s) => s.port));
    try {
      await assert.rejects(wssOpen(stale.wssUrl, other.ca), (e) => e.code === 'CERT_HAS_EXPIRED', 'expired');
      // The same client takes a current certificate of that CA: the refusal is the expiry.
      const fresh = issue({ dir, name: 'exp', cert: other.ca, key: other.ca.replace(/\.pem$/, '.key') }, 'fresh-leaf');
      const freshPem = path.join(dir, 'fresh.pem');
      writeFileSync(freshPem, Buffer.concat([readPem(fresh.cert), readPem(fresh.key)]));
      const ok = await startTlsHaproxy(freshPem, cluster.servers.map((s) => s.port), { ca: other.ca });
      try {
        await wssOpen(ok.wssUrl, other.ca);
      } finally {
        await ok.stop();
      }
    } finally {
      await stale.stop();
    }
  });

  test('TLS 1.2 and 1.3 only, forward-secret AEAD ciphers, ALPN http/1.1', async () => {
    const t13 = await tlsProbe(lb.port, paths.ca);
    assert.equal(t13.protocol, 'TLSv1.3');
    assert.equal(t13.alpn, 'http/1.1');
    const t12 = await tlsProbe(lb.port, paths.ca, { maxVersion: 'TLSv1.2' });
    assert.equal(t12.protocol, 'TLSv1.2');
    assert.match(t12.cipher, /^ECDHE-ECDSA-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/);
    // A client offering only CBC suites the ECDSA key could sign for is
    // refused. (Suites without forward secrecy, static RSA key exchange,
    // cannot go with an ECDSA key at all.)
    await assert.rejects(tlsProbe(lb.port, paths.ca, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA' }));
  });

  test('plain HTTP gets a 301 to the same host, path and query over HTTPS', async () => {
    for (const [host, want] of [[`127.0.0.1:${redirectPort}`, `127.0.0.1:${lb.port}`], ['localhost', `localhost:${lb.port}`]]) {
      // node:http, as fetch() does not let a caller set Host.
      const res = await new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: redirectPort, path: '/api/rooms/physics/messages?limit=5',
          headers: { host }, agent: false }, (r) => { r.resume(); resolve(r); }).on('error', reject);
      });
      assert.equal(res.statusCode, 301);
      assert.equal(res.headers.location, `https://${want}/api/rooms/physics/messages?limit=5`);
    }
    // Followed, the redirect ends on the page over HTTPS.
    const res = await fetch(`http://127.0.0.1:${redirectPort}/`, { redirect: 'manual' });
    const followed = await httpsGet(lb.port, new URL(res.headers.get('location')).pathname, paths.ca);
    assert.equal(followed.status, 200);
    assert.match(followed.text, /<html/i);
  });

  test('every HTTPS answer carries Strict-Transport-Security', async () => {
    for (const p of ['/', '/readyz', '/no-such-page', '/metrics']) {
      const r = await httpsGet(lb.port, p, paths.ca);
      assert.equal(r.headers['strict-transport-security'], HSTS, `${p} (${r.status})`);
    }
    // --hsts-max-age
    const short = await startTlsHaproxy(paths.pem, cluster.servers.map((s) => s.port),
      { ca: paths.ca, extra: ['--hsts-max-age', '600'] });
    try {
      assert.equal((await httpsGet(short.port, '/', paths.ca)).headers['strict-transport-security'], 'max-age=600');
    } finally {
      await short.stop();
    }
  });

  test('/metrics is 403 on the public side, however spelt; haproxy\'s stats and metrics are on the admin port only', async () => {
    for (const p of ['/metrics', '/metrics/', '/METRICS', '//metrics', '/%6Detrics', '/metrics?x=1', '/metrics;x']) {
      const r = await httpsGet(lb.port, p, paths.ca);
      assert.equal(r.status, 403, p);
      assert.doesNotMatch(r.text, /lectern_/, p);
    }
    // The servers' own /metrics is still there for Prometheus (their port).
    assert.match((await httpGet(cluster.servers[0].port, '/metrics')).text, /^lectern_connections /m);
    // haproxy's stats page and its metrics: the admin port, not the front.
    const stats = await httpGet(adminPort, '/;csv');
    assert.equal(stats.status, 200);
    assert.match(stats.text, /^lectern_servers,s1,/m);
    const prom = await httpGet(adminPort, '/metrics');
    assert.equal(prom.status, 200);
    assert.match(prom.text, /^haproxy_process_/m);
    assert.notEqual((await httpsGet(lb.port, '/;csv', paths.ca)).text.includes('lectern_servers,s1'), true);
    assert.match(lb.cfg, new RegExp(`bind 127\\.0\\.0\\.1:${adminPort}\\n`), 'the admin port is on loopback');
  });

  test('the lecture-room page over https:// in Chromium, the key pinned; its STOMP connection over wss:// carries a message', async () => {
    assert.ok(existsSync(browserPath), `Chromium not found at ${browserPath} (make deps installs it)`);
    const spki = tlsCaRun('spki').trim();
    const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'];
    const url = `https://localhost:${lb.port}/`;
    // Without the pin Chromium refuses the certificate: the pin is what trusts it.
    const plain = await chromium.launch({ executablePath: browserPath, args });
    try {
      const page = await plain.newPage();
      await assert.rejects(page.goto(url), /ERR_CERT_AUTHORITY_INVALID/);
    } finally {
      await plain.close();
    }
    const browser = await chromium.launch({ executablePath: browserPath,
      args: [...args, `--ignore-certificate-errors-spki-list=${spki}`] });
    const room = `tls-page-${Date.now().toString(36)}`;
    const listener = await wssClient(lb.wssUrl, paths.ca);
    try {
      const got = await subscribed(listener.client, `/topic/${room}`);
      const page = await browser.newPage();
      const res = await page.goto(url);
      assert.equal(res.status(), 200);
      assert.equal(res.headers()['strict-transport-security'], HSTS);
      await page.fill('#join input[name=name]', 'Ada');
      await page.fill('#join input[name=room]', room);
      await page.click('#join button');
      await page.waitForSelector('#state[data-state=online]', { timeout: 15000 });
      assert.equal(await page.evaluate(() => location.protocol), 'https:');
      await page.fill('#say input[name=text]', 'hello over wss');
      await page.click('#say button');
      // The server echoed it to the page (delivered) and to the stompjs listener.
      await page.waitForSelector('#log li.mine.delivered', { timeout: 10000 });
      assert.deepEqual(await page.$$eval('#log li .body', (els) => els.map((e) => e.textContent)), ['hello over wss']);
      await waitFor(() => got.messages.some((m) => m.body.includes('hello over wss')),
        { what: 'the page\'s message at a wss:// stompjs client' });
    } finally {
      await listener.client.deactivate();
      await browser.close();
    }
  });
});
