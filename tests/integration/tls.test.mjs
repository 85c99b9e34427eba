// TLS served by lectern-server itself: wss:// and https:// (server.tls_cert,
// server.tls_key), the protocol and cipher floor, the checks at start, and
// the reload on SIGHUP. The links between hosts (RabbitMQ, MariaDB, Redis)
// are tls-links.test.mjs's; TLS ended by haproxy is tls-lb.test.mjs's.
//
// Every certificate comes from throw-away CAs made here with openssl
// (tlsca.mjs). Clients trust the test CA explicitly (ws's and https's `ca`
// option); nothing turns verification off.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import {
  freePort, serverBin, sleep, spawnProcess, startServer, stompClient, subscribed, waitFor,
} from './helpers.mjs';
import { https200, httpsMetric, httpsRequest, install, issue, makeCa, readPem, tlsProbe } from './tlsca.mjs';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lectern-tls-'));
let caA, caB, good1, good2, otherHost, fromB, expired, rsaLeaf;
before(() => {
  caA = makeCa(dir, 'a');
  caB = makeCa(dir, 'b');
  good1 = issue(caA, 'good1', { serial: 0x1001 });
  good2 = issue(caA, 'good2', { serial: 0x1002 });
  otherHost = issue(caA, 'other-host', { serial: 0x1003, sans: ['DNS:elsewhere.example'] });
  fromB = issue(caB, 'from-b', { serial: 0x2001 });
  expired = issue(caA, 'expired', { serial: 0x1004, days: 0 });
  rsaLeaf = issue(caA, 'rsa-leaf', { serial: 0x1005, rsa: true });
});
after(() => rmSync(dir, { recursive: true, force: true }));

// A server serving `pair` (copied to files of its own, so that a test can
// replace them before a SIGHUP); ready when /readyz answers over HTTPS
// trusting `ca`.
async function tlsServer(pair, { ca = caA.cert, sets = {}, cluster, ready = true, probe } = {}) {
  const own = mkdtempSync(path.join(dir, 'srv-'));
  const cert = path.join(own, 'cert.pem');
  const key = path.join(own, 'key.pem');
  install(pair, cert, key);
  const s = await startServer({ cluster, ready, probe: probe || https200(ca),
    sets: { 'server.tls_cert': cert, 'server.tls_key': key, ...sets } });
  return { ...s, cert, key, wssUrl: `wss://localhost:${s.port}/ws` };
}

// A STOMP client over wss:// trusting `ca` (a PEM path).
function wssClient(url, ca, options = {}) {
  return stompClient(url, { ...options,
    webSocketFactory: () => new WebSocket(url, ['v12.stomp'], { ca: readPem(ca) }) });
}

// A WebSocket handshake over wss:// trusting `ca`: resolves on open, rejects
// with the client's error (its code names the refusal).
function wssOpen(url, ca) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['v12.stomp'], { ca: readPem(ca), handshakeTimeout: 5000 });
    ws.once('open', () => { ws.close(); resolve(); });
    ws.once('error', reject);
  });
}

const logged = (h, re) => () => h.logs.some((l) => re.test(l));

describe('TLS on the server itself (server.tls_cert)', () => {
  test('stompjs over wss:// with the test CA trusted: a SEND reaches a subscriber; the HTTP API and /metrics are served over HTTPS only', async () => {
    const s = await tlsServer(good1);
    try {
      const sub = await wssClient(s.wssUrl, caA.cert);
      const pub = await wssClient(s.wssUrl, caA.cert);
      const got = await subscribed(sub.client, '/topic/tls-room');
      pub.client.publish({ destination: '/topic/tls-room', body: 'over wss' });
      assert.equal((await got.next(1))[0].body, 'over wss');

      const health = await httpsRequest(s.port, '/healthz', caA.cert);
      assert.equal(health.status, 200);
      const expiry = await httpsMetric(s.port, caA.cert, 'lectern_tls_cert_expiry_timestamp_seconds');
      assert.ok(expiry > Date.now() / 1000 && expiry < Date.now() / 1000 + 2 * 86400, `expiry ${expiry}`);
      // Plain HTTP on the TLS port gets no answer.
      await assert.rejects(fetch(`http://127.0.0.1:${s.port}/healthz`, { signal: AbortSignal.timeout(5000) }));
      // The session: TLS 1.3 by default, ALPN http/1.1 only, the certificate served.
      const p = await tlsProbe(s.port, caA.cert, { ALPNProtocols: ['h2', 'http/1.1'] });
      assert.deepEqual([p.serial, p.protocol, p.alpn], [good1.serial, 'TLSv1.3', 'http/1.1']);
      assert.ok(s.logs.some((l) => /event=listening .*tls=on/.test(l)));
      assert.ok(s.logs.some((l) => new RegExp(`event=tls_cert .*serial=${good1.serial} `).test(l)));
      await sub.client.deactivate();
      await pub.client.deactivate();
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('a client refuses a certificate from a CA it does not trust, and one naming another host', async () => {
    const b = await tlsServer(fromB, { ca: caB.cert });
    // Ready once a client expecting the name the certificate carries gets in.
    const o = await tlsServer(otherHost, { probe: (port) => async () =>
      Boolean(await tlsProbe(port, caA.cert, { servername: 'elsewhere.example' })) });
    try {
      await assert.rejects(wssOpen(b.wssUrl, caA.cert),
        (e) => /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE/.test(e.code));
      await assert.rejects(wssClient(b.wssUrl, caA.cert), /WebSocket error/);
      await assert.rejects(wssOpen(o.wssUrl, caA.cert), (e) => e.code === 'ERR_TLS_CERT_ALTNAME_INVALID');
      // The same servers, trusted and named rightly: accepted, so the
      // refusals above were the certificates'.
      await wssOpen(b.wssUrl, caB.cert);
      await tlsProbe(o.port, caA.cert, { servername: 'elsewhere.example' });
    } finally {
      assert.equal((await b.stop()).code, 0);
      assert.equal((await o.stop()).code, 0);
    }
  });

  test('TLS 1.1 and ciphers without forward secrecy or AEAD are refused; server.tls_min_version=1.3 refuses TLS 1.2', async () => {
    // An RSA certificate: with it a server could agree to RSA key exchange
    // (no forward secrecy) if its cipher list let it; an ECDSA one never can.
    const s = await tlsServer(rsaLeaf);
    const s13 = await tlsServer(good1, { sets: { 'server.tls_min_version': '1.3' } });
    try {
      // The client's own floor is lowered, so that a refusal is the server's.
      const old = { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' };
      await assert.rejects(tlsProbe(s.port, caA.cert, old), /protocol version|no protocols available|unsupported protocol/i);
      for (const ciphers of ['AES128-SHA:AES256-GCM-SHA384:AES128-GCM-SHA256', 'ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384']) {
        await assert.rejects(tlsProbe(s.port, caA.cert, { maxVersion: 'TLSv1.2', ciphers: `${ciphers}:@SECLEVEL=0` }),
          /handshake failure|no shared cipher/i, ciphers);
      }
      const p12 = await tlsProbe(s.port, caA.cert, { maxVersion: 'TLSv1.2' });
      assert.equal(p12.protocol, 'TLSv1.2');
      assert.match(p12.cipher, /^ECDHE-/);
      await assert.rejects(tlsProbe(s13.port, caA.cert, { maxVersion: 'TLSv1.2' }), /protocol version/i);
      assert.equal((await tlsProbe(s13.port, caA.cert)).protocol, 'TLSv1.3');
    } finally {
      assert.equal((await s.stop()).code, 0);
      assert.equal((await s13.stop()).code, 0);
    }
  });

  test('a burst of handshakes failing at once among good ones: the server stays up and serves the good ones', async () => {
    // A connection whose first bytes are already waiting when it is accepted
    // fails its handshake inside the accept itself. The descriptor is then
    // lws's to close (it closes it once its poll handle has closed): a second
    // close by the acceptor would shut the next connection accepted on the
    // same number, and the event loop would abort on it. Plain HTTP and an
    // SSLv2-style hello on the TLS port, 40 of them at a time, with good
    // handshakes in between.
    const s = await tlsServer(good1);
    const bad = (bytes) => new Promise((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port: s.port }, () => c.write(bytes));
      c.on('data', () => {});
      c.on('error', () => resolve());
      c.on('close', () => resolve());
      c.setTimeout(5000, () => c.destroy());
    });
    try {
      let good = 0;
      for (let round = 0; round < 10; round++) {
        const burst = [];
        for (let i = 0; i < 40; i++) {
          burst.push(bad(i % 2 ? 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' : Buffer.from('8003010000000000', 'hex')));
          if (i % 8 === 0)
            burst.push(tlsProbe(s.port, caA.cert).then(() => { good++; }));
        }
        await Promise.all(burst);
      }
      assert.equal(good, 50);
      assert.equal(s.exited(), null, 'the server is still running');
      assert.equal((await tlsProbe(s.port, caA.cert)).serial, good1.serial);
    } finally {
      assert.deepEqual(await s.stop(), { code: 0, signal: null });
    }
  });

  test('SIGHUP: an open connection keeps working, new ones get the new certificate; a bad pair is refused and the old one stays', async () => {
    const s = await tlsServer(good1);
    try {
      const before = await wssClient(s.wssUrl, caA.cert);
      const got = await subscribed(before.client, '/topic/reload');
      assert.equal((await tlsProbe(s.port, caA.cert)).serial, good1.serial);

      install(good2, s.cert, s.key);
      s.proc.kill('SIGHUP');
      await waitFor(logged(s, new RegExp(`event=tls_reloaded .*serial=${good2.serial} `)),
        { what: 'tls_reloaded' });
      assert.equal((await tlsProbe(s.port, caA.cert)).serial, good2.serial);
      // A client on the new certificate reaches the one opened before the reload.
      const afterwards = await wssClient(s.wssUrl, caA.cert);
      afterwards.client.publish({ destination: '/topic/reload', body: 'after the reload' });
      assert.equal((await got.next(1))[0].body, 'after the reload');
      assert.ok(before.client.connected, 'the connection opened before SIGHUP is still open');
      assert.equal(await httpsMetric(s.port, caA.cert, 'lectern_tls_reloads_total'), 1);

      // A key that is not the certificate's, then an expired pair: refused,
      // logged, counted; the server keeps serving good2.
      copyFileSync(good1.cert, s.cert);
      copyFileSync(fromB.key, s.key);
      s.proc.kill('SIGHUP');
      await waitFor(logged(s, /event=tls_reload_failed .*does not match|event=tls_reload_failed .*cannot load/),
        { what: 'tls_reload_failed (key)' });
      await sleep(1100);  // `expired` has notAfter = notBefore: expired after this
      install(expired, s.cert, s.key);
      s.proc.kill('SIGHUP');
      await waitFor(logged(s, /event=tls_reload_failed .*has expired/), { what: 'tls_reload_failed (expired)' });
      assert.equal(await httpsMetric(s.port, caA.cert, 'lectern_tls_reload_failures_total'), 2);
      assert.equal((await tlsProbe(s.port, caA.cert)).serial, good2.serial);
      // The first client is still served.
      afterwards.client.publish({ destination: '/topic/reload', body: 'still here' });
      assert.equal((await got.next(2))[1].body, 'still here');
      await before.client.deactivate();
      await afterwards.client.deactivate();
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('the server refuses to start with an expired certificate, a key that is not its certificate\'s, or half a pair', async () => {
    await sleep(1100);
    const cases = [
      [{ 'server.tls_cert': expired.cert, 'server.tls_key': expired.key }, /has expired/],
      [{ 'server.tls_cert': good1.cert, 'server.tls_key': fromB.key }, /does not match|cannot load/],
      [{ 'server.tls_cert': good1.cert }, /server\.tls_cert and server\.tls_key go together/],
      [{ 'server.tls_cert': path.join(dir, 'missing.pem'), 'server.tls_key': good1.key }, /server\.tls_cert: cannot load/],
    ];
    for (const [sets, reason] of cases) {
      const argv = ['--port', String(await freePort()), '--set', 'server.listen=127.0.0.1'];
      for (const [k, v] of Object.entries(sets)) argv.push('--set', `${k}=${v}`);
      const h = spawnProcess(serverBin, argv, { what: 'lectern-server (bad TLS)' });
      const { code } = await h.waitExit();
      assert.notEqual(code, 0, JSON.stringify(sets));
      assert.ok(h.logs.some((l) => reason.test(l)), `${reason} in:\n${h.logs.join('\n')}`);
    }
  });
});
