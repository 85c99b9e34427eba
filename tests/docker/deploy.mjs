// tests/docker/deploy.mjs — the compose deployment, exercised as users and an
// operator would (make docker-test; started by tests/docker/run.sh once
// `compose up --scale server=3 --scale storage-worker=2` has returned).
//
// Everything a client does goes through haproxy's published HTTPS port, as
// from a browser: wss:// and https://, trusting the throw-away CA run.sh made
// the certificate with (LECTERN_DT_CA, ws's and https's `ca` option; nothing
// turns verification off). The plain-HTTP port (LECTERN_HTTP_PORT) only
// redirects. The operator's side uses the compose command run.sh used (in
// LECTERN_DT_COMPOSE, a JSON array), `docker` and the containers' own
// addresses on the compose network (each server's /metrics on 9300, which
// haproxy does not publish). Tokens are minted here with the throw-away key
// file run.sh gave the servers (LECTERN_DT_KEYS).
//
// Not named *.test.mjs: `make docker-check` runs every such file in this
// folder, with no Docker engine.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { promisify } from 'node:util';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import { LecternClient } from '../../client-js/src/index.js';
import { assertIncreasing, isProbe, probeUntil as probe, sleep, waitFor as poll } from '../integration/helpers.mjs';

const run = promisify(execFile);
const composeCmd = JSON.parse(process.env.LECTERN_DT_COMPOSE);
const project = process.env.LECTERN_DT_PROJECT;
const front = `127.0.0.1:${process.env.LECTERN_PUBLIC_PORT}`;
const plainPort = Number(process.env.LECTERN_HTTP_PORT);
const ca = readFileSync(process.env.LECTERN_DT_CA);
const stats = `http://127.0.0.1:${process.env.LECTERN_STATS_PORT}/;csv`;
const prometheus = `http://127.0.0.1:${process.env.LECTERN_PROMETHEUS_PORT}`;
const wsUrl = `wss://${front}/ws`;
/** ws's WebSocket trusting the test CA, for clients that construct their
 * own (client-js calls `new WS(url, protocols)`). */
class TrustingWebSocket extends WebSocket {
  constructor(url, protocols, options = {}) {
    super(url, protocols, { ...options, ca });
  }
}

/** A request to the front over HTTPS trusting the CA (fetch() takes no CA):
 * { status, headers, text }. */
function httpsFront(urlPath, { headers = {}, trust = ca } = {}) {
  return new Promise((resolve, reject) => {
    const [host, port] = front.split(':');
    const req = https.request({ host, port: Number(port), path: urlPath, headers, ca: trust || undefined, agent: false, timeout: 15000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} timed out`)));
    req.on('error', reject);
    req.end();
  });
}
const mysqlPassword = process.env.MARIADB_PASSWORD || 'lectern-demo';

/** The integration tests' waitFor with this file's pace (containers take
 * seconds), where a check that throws (a container not answering yet)
 * counts as "not yet"; a timeout names the last such error. */
async function waitFor(check, { timeout = 30000, interval = 250, what = 'condition' } = {}) {
  let last;
  try {
    await poll(async () => {
      try {
        return await check();
      } catch (e) {
        last = e;
        return false;
      }
    }, { timeout, interval, what });
  } catch (e) {
    throw last ? new Error(`${e.message}: ${last.message}`) : e;
  }
}
const compose = (...args) => run(composeCmd[0], [...composeCmd.slice(1), ...args], { maxBuffer: 1 << 24 });
const docker = async (...args) => (await run('docker', args, { maxBuffer: 1 << 24 })).stdout.trim();

/** The running containers of a compose service: [{id, name, ip, health}]. */
async function containers(service) {
  const ids = (await docker('ps', '-q', '--filter', `label=com.docker.compose.project=${project}`,
    '--filter', `label=com.docker.compose.service=${service}`)).split('\n').filter(Boolean);
  if (!ids.length) return [];
  const out = await docker('inspect', '-f',
    '{{.Id}} {{.Name}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}',
    ...ids);
  return out.split('\n').map((l) => {
    const [id, name, ip, health] = l.split(' ');
    return { id, name: name.replace(/^\//, ''), ip, health };
  });
}
const allHealthy = async (service, n) => {
  const c = await containers(service);
  return c.length === n && c.every((x) => x.health === 'healthy');
};

/** haproxy's view: how many of the server slots are UP. */
async function haproxyUp() {
  const csv = await (await fetch(stats)).text();
  return csv.split('\n').filter((l) => l.startsWith('lectern_servers,server') && l.split(',')[17] === 'UP').length;
}

async function metric(ip, name) {
  const text = await (await fetch(`http://${ip}:9300/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

// An HS256 token from the key file's first line ("<kid> HS256 <secret>").
const [kid, , secret] = readFileSync(process.env.LECTERN_DT_KEYS, 'utf8').trim().split(/\s+/);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
function token(sub, rooms, role = 'student') {
  const now = Math.floor(Date.now() / 1000);
  const head = `${b64({ alg: 'HS256', typ: 'JWT', kid })}.${b64({ sub, name: sub, role, rooms, iat: now, exp: now + 3600 })}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

/** A connected @stomp/stompjs client (the library browsers use). */
function stomp(user, rooms) {
  return new Promise((resolve, reject) => {
    const client = new Client({
      brokerURL: wsUrl, webSocketFactory: () => new TrustingWebSocket(wsUrl, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
      connectHeaders: { login: user, passcode: token(user, rooms) },
      reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0,
    });
    const timer = setTimeout(() => reject(new Error(`${user}: no CONNECTED`)), 15000);
    client.onConnect = () => { clearTimeout(timer); resolve(client); };
    client.onStompError = (f) => { clearTimeout(timer); reject(new Error(`${user}: ERROR ${f.headers.message}`)); };
    client.onWebSocketError = () => {};
    client.activate();
  });
}
function subscribe(client, room, onMessage) {
  return new Promise((resolve, reject) => {
    const receipt = `sub-${Math.random().toString(36).slice(2)}`;
    const timer = setTimeout(() => reject(new Error('no RECEIPT for SUBSCRIBE')), 15000);
    client.watchForReceipt(receipt, () => { clearTimeout(timer); resolve(); });
    client.subscribe(`/topic/${room}`, onMessage, { receipt });
  });
}

/** Send probes until `delivered()` holds: every member's join has reached
 * every server (a receipt says the SUBSCRIBE is done on its own server). */
const probeUntil = (send, delivered, what) => probe(send, delivered, { timeout: 30000, what: `a probe at ${what}` });

async function mysqlIds(room) {
  const [db] = await containers('mariadb');
  const out = await docker('exec', db.id, 'mariadb', '-ulectern', `-p${mysqlPassword}`, 'lectern', '-N', '-B', '-e',
    `SELECT CONCAT(id_ms, '-', id_n) FROM messages WHERE room = '${room}' ORDER BY seq`);
  return out ? out.split('\n') : [];
}

async function history(room, user) {
  const res = await httpsFront(`/api/rooms/${room}/messages?limit=1000`,
    { headers: { authorization: `Bearer ${token(user, [room])}` } });
  assert.equal(res.status, 200, `history of ${room}`);
  return JSON.parse(res.text).messages;
}

describe('the compose deployment (docker/compose.yaml), through haproxy', { concurrency: 1 }, () => {
  const stompClients = [];
  const lecternClients = [];
  const room = `deploy-${Date.now()}`;
  let delivered;     // ids in room order, as every stompjs client saw them

  before(async () => {
    await waitFor(async () => (await allHealthy('server', 3)) && (await allHealthy('storage-worker', 2)),
      { timeout: 120000, what: '3 servers and 2 workers healthy' });
    await waitFor(async () => (await haproxyUp()) === 3, { timeout: 60000, what: 'haproxy: 3 servers UP' });
  });
  after(async () => {
    for (const c of stompClients) await c.deactivate().catch(() => {});
    for (const c of lecternClients) c.disconnect();
  });

  test('TLS at haproxy: HTTP is a 301 to HTTPS, HSTS on answers, /metrics 403 on the public side, a client trusting another CA refused', async () => {
    const res = await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: plainPort, path: '/api/rooms/x/messages?limit=1', agent: false },
        (r) => { r.resume(); resolve(r); }).on('error', reject);
    });
    assert.equal(res.statusCode, 301);
    // haproxy.cfg redirects to the same host on 443 (what the public sees;
    // here 443 is published on another port, so the redirect is not followed).
    assert.equal(res.headers.location, 'https://127.0.0.1/api/rooms/x/messages?limit=1');
    const page = await httpsFront('/');
    assert.equal(page.status, 200);
    assert.match(page.headers['strict-transport-security'] || '', /^max-age=\d+/);
    for (const p of ['/metrics', '//Metrics', '/%6detrics']) {
      const m = await httpsFront(p);
      assert.equal(m.status, 403, p);
      assert.match(m.headers['strict-transport-security'] || '', /^max-age=\d+/, `${p}: HSTS on haproxy's own answers too`);
    }
    // A client with only the system's CAs does not know the throw-away one.
    await assert.rejects(httpsFront('/', { trust: null }), (e) => /UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER/.test(e.code));
  });

  test('stompjs clients in one room, spread over the three servers, get every message once and in order', async () => {
    const N = 9, SENDERS = 3, PER = 20;
    for (let i = 0; i < N; i++) stompClients.push(await stomp(`student-${i}`, [room]));
    const servers = await containers('server');
    const per = await Promise.all(servers.map((s) => metric(s.ip, 'lectern_connections')));
    assert.deepEqual(per, [3, 3, 3], 'leastconn spread 9 connections over 3 servers');
    const got = stompClients.map(() => []);
    await Promise.all(stompClients.map((c, i) => subscribe(c, room, (m) => got[i].push(m))));
    await probeUntil(async (b) => stompClients[0].publish({ destination: `/topic/${room}`, body: b }),
      () => got.every((g) => g.some((m) => isProbe(m.body))), 'every client');

    for (let k = 0; k < PER; k++)
      for (let s = 0; s < SENDERS; s++)
        stompClients[s].publish({ destination: `/topic/${room}`, body: JSON.stringify({ s, k }) });
    const real = (g) => g.filter((m) => !isProbe(m.body));
    await waitFor(() => got.every((g) => real(g).length >= SENDERS * PER), { what: 'every delivery' });
    await sleep(300);   // a duplicate would arrive now
    const order = real(got[0]).map((m) => m.headers['message-id']);
    for (let i = 0; i < N; i++) {
      const ids = real(got[i]).map((m) => m.headers['message-id']);
      assert.equal(ids.length, SENDERS * PER, `client ${i}: each message once`);
      assert.equal(new Set(ids).size, ids.length, `client ${i}: no duplicates`);
      assertIncreasing(ids, `client ${i}`);
      assert.deepEqual(ids, order, `client ${i} saw the room's order`);
      const lastK = new Map();
      for (const m of real(got[i])) {
        const { s, k } = JSON.parse(m.body);
        assert.ok(k > (lastK.get(s) ?? -1), `client ${i}: sender ${s} in order`);
        lastK.set(s, k);
      }
    }
    delivered = order;
  });

  test('history over HTTP (a Bearer token) lists the same messages, with the same ids, in the same order', async () => {
    const ids = (await history(room, 'student-0')).filter((m) => !isProbe(m.body)).map((m) => m.id);
    assert.deepEqual(ids, delivered);
  });

  test('the storage workers wrote every message to MySQL, once', async () => {
    let ids = [];
    await waitFor(async () => {
      ids = await mysqlIds(room);
      return ids.length >= delivered.length;
    }, { what: 'the rows in MySQL' });
    for (const id of delivered) assert.ok(ids.includes(id), `row ${id}`);
    assert.equal(new Set(ids).size, ids.length);
  });

  test('Prometheus lists every server and worker as an up target', async () => {
    const want = async () => [...(await containers('server')), ...(await containers('storage-worker'))]
      .map((c) => c.ip).sort();
    await waitFor(async () => {
      const body = await (await fetch(`${prometheus}/api/v1/targets`)).json();
      const up = body.data.activeTargets.filter((t) => t.health === 'up').map((t) => t.labels.instance.split(':')[0]).sort();
      return JSON.stringify(up) === JSON.stringify(await want());
    }, { timeout: 60000, interval: 1000, what: 'Prometheus: 3 servers and 2 workers up' });
  });

  test('--scale server=4: haproxy finds the new server and sends it the new connections; Prometheus scrapes it', async () => {
    const before4 = new Set((await containers('server')).map((c) => c.id));
    await compose('up', '-d', '--no-recreate', '--scale', 'server=4', '--scale', 'storage-worker=2');
    await waitFor(() => allHealthy('server', 4), { timeout: 90000, what: '4 servers healthy' });
    await waitFor(async () => (await haproxyUp()) === 4, { timeout: 60000, what: 'haproxy: 4 servers UP' });
    const added = (await containers('server')).find((c) => !before4.has(c.id));
    assert.ok(added, 'a fourth server');
    assert.equal(await metric(added.ip, 'lectern_connections'), 0);
    for (let i = 0; i < 3; i++) stompClients.push(await stomp(`late-${i}`, [room]));
    // leastconn: the new server has none, each old one three.
    assert.equal(await metric(added.ip, 'lectern_connections'), 3, 'the three new connections went to the new server');
    await waitFor(async () => {
      const body = await (await fetch(`${prometheus}/api/v1/targets`)).json();
      return body.data.activeTargets.some((t) => t.health === 'up' && t.labels.instance === `${added.ip}:9300`);
    }, { timeout: 60000, interval: 1000, what: 'Prometheus scraping the new server' });
  });

  test('docker kill of a server: its client-js clients resume on the others, nothing lost, nothing twice', async () => {
    for (const c of stompClients.splice(0)) await c.deactivate();
    const servers = await containers('server');
    await waitFor(async () => (await Promise.all(servers.map((s) => metric(s.ip, 'lectern_connections'))))
      .every((n) => n === 0), { what: 'the stompjs clients gone' });
    const room2 = `${room}-kill`;
    const N = 8, TOTAL = 120;
    const got = [];
    for (let i = 0; i < N + 1; i++) {
      const user = i < N ? `listener-${i}` : 'speaker';
      const c = new LecternClient(wsUrl, {
        WebSocket: TrustingWebSocket, token: token(user, [room2]), reconnect: { base: 100, cap: 1000 },
        heartbeat: { outgoing: 0, incoming: 0 },
      });
      c.on('error', () => {});
      await c.connect();
      lecternClients.push(c);
    }
    const rooms = lecternClients.map((c, i) => {
      const r = c.join(room2, { presence: false });
      got[i] = [];
      r.on('message', (m) => got[i].push(m));
      return r;
    });
    const speaker = rooms[N];
    await probeUntil((b) => speaker.send(b), () => got.slice(0, N).every((g) => g.some((m) => isProbe(m.body))), 'every listener');
    const conns = await Promise.all(servers.map((s) => metric(s.ip, 'lectern_connections')));
    const victim = servers[conns.indexOf(Math.max(...conns))];
    assert.ok(Math.max(...conns) >= 2, `the victim holds clients (${conns})`);

    const sent = [];
    let killed = false;
    for (let k = 0; k < TOTAL; k++) {
      if (k === TOTAL / 3) {
        await docker('kill', victim.id);
        killed = true;
      }
      sent.push(await speaker.send(`m-${k}`));
      await sleep(10);
    }
    assert.ok(killed);
    assert.equal(new Set(sent).size, TOTAL, 'send() resolved once per message, each with its own id');
    const real = (g) => g.filter((m) => !isProbe(m.body));
    await waitFor(() => got.slice(0, N).every((g) => real(g).length >= TOTAL), { timeout: 60000, what: 'every listener has every message' });
    await sleep(500);
    for (let i = 0; i < N; i++) {
      const bodies = real(got[i]).map((m) => m.body);
      assert.deepEqual(bodies, sent.map((_, k) => `m-${k}`), `listener ${i}: every message once, in order`);
      assert.deepEqual(real(got[i]).map((m) => m.id), sent, `listener ${i}: the ids send() returned`);
    }
    // `docker kill` counts as a manual stop: restart: unless-stopped leaves it down.
    assert.ok(!(await containers('server')).some((s) => s.id === victim.id), 'the killed server stays down');
    const moved = await Promise.all((await containers('server')).map((s) => metric(s.ip, 'lectern_connections')));
    assert.equal(moved.reduce((a, b) => a + b, 0), N + 1, 'every client is connected to a surviving server');
    const hist = (await history(room2, 'listener-0')).filter((m) => !isProbe(m.body)).map((m) => m.id);
    assert.deepEqual(hist, sent, 'history holds each message once');
  });
});
