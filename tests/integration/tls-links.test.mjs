// The links between hosts over TLS, with the peer verified: lectern-server
// and lectern-storage to RabbitMQ (bus.tls*, amqp.tls*), both to MariaDB
// (mysql.tls*), and the server to Redis through a TLS tunnel (haproxy with
// config/redis-tls-tunnel.cfg as shipped, in front of a Redis that speaks
// TLS only; hiredis 0.14 has no TLS).
//
// This file runs a service set of its own (scripts/services on free ports
// in a temporary LECTERN_VAR_DIR, stopped in `after`) with
// LECTERN_SERVICE_TLS_DIR holding a certificate from a throw-away CA
// (tlsca.mjs) and LECTERN_REDIS_TLS=on. Plain text cannot make a test pass:
// the programs are given the AMQPS port only, Redis has no plain port, and
// the MariaDB users they log in as are created REQUIRE SSL or REQUIRE X509.
// On top of that, RabbitMQ's own list of connections must say ssl=true for
// every one of them.
//
// The refusals: a CA that did not sign the broker's (or MariaDB's, or
// Redis's) certificate, a host name the certificate does not carry (the
// broker reached as 127.0.0.2 through a relay), and a broker that requires
// a client certificate (restarted with LECTERN_SERVICE_TLS_CLIENTS=require,
// last).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  clusterName, freePort, httpGet, metric, repoRoot, spawnReady, startServer, startWorker, stompClient,
  subscribed, waitFor,
} from './helpers.mjs';
import { issue, makeCa } from './tlsca.mjs';

// /tmp, not os.tmpdir(): MariaDB's socket path must stay under 108 bytes.
const dir = mkdtempSync('/tmp/lectern-tl-');
const tlsDir = path.join(dir, 'svc-tls');
const services = path.join(repoRoot, 'scripts', 'services');
let caA, caB, clientCert, svcEnv;

const [redisPort, amqpPort, distPort, epmdPort, webStompPort, mysqlPort, amqpsPort] =
  execFileSync('node', [path.join(repoRoot, 'tests', 'integration', 'free-ports.mjs'), '7'])
    .toString().trim().split(' ').map(Number);

function run(cmd, args, { env, timeout = 180000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env: { ...process.env, ...svcEnv, ...env }, timeout, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => (err ? reject(Object.assign(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`), { stderr }))
        : resolve(stdout)));
  });
}
const svc = (action, names, env) => run(services, [action, ...names], { env });

// rabbitmqctl against this file's broker.
function ctl(...args) {
  const script = 'set -a; eval "$("$0" env)"; HOME=$LECTERN_RABBIT_HOME exec /usr/lib/rabbitmq/bin/rabbitmqctl -q "$@"';
  return run('bash', ['-c', script, services, ...args], { timeout: 60000 });
}

// SQL as MariaDB's root (through the socket, no TLS needed there).
const rootSql = (q) => run('mariadb', ['--no-defaults', `--socket=${path.join(dir, 'var', 'mariadb', 'mysqld.sock')}`,
  '-uroot', '-N', '-B', '-e', q]);
// SQL over TCP as `user`, over TLS with the server verified, or in plain text.
const sqlAs = async (user, q, { plain = false, extra = [] } = {}) => (await run('mariadb', ['--no-defaults',
  '-h127.0.0.1', `-P${mysqlPort}`, `-u${user}`, `-p${user}`, '-N', '-B',
  ...(plain ? ['--skip-ssl'] : ['--ssl', `--ssl-ca=${caA.cert}`, '--ssl-verify-server-cert']), ...extra,
  'lectern', '-e', q])).split('\n').filter(Boolean).map((l) => l.split('\t'));

// The knobs of a program that reaches RabbitMQ (section "bus" or "amqp")
// and MariaDB over TLS, trusting `ca`.
const busTls = (section, { ca = caA.cert, host = '127.0.0.1', port = amqpsPort } = {}) => ({
  [`${section}.host`]: host, [`${section}.port`]: port, [`${section}.tls`]: true, [`${section}.tls_ca`]: ca,
});
const mysqlTls = ({ ca = caA.cert, user = 'tls', host = '127.0.0.1', port = mysqlPort } = {}) => ({
  'mysql.host': host, 'mysql.port': port, 'mysql.user': user, 'mysql.password': user,
  'mysql.tls': true, 'mysql.tls_ca': ca,
});

const logged = (h, re) => () => h.logs.some((l) => re.test(l));
const lines = (h, re) => h.logs.filter((l) => re.test(l)).join('\n');
// The reasons given on those lines.
const reasons = (h, re) => h.logs.filter((l) => re.test(l)).map((l) => l.replace(/.*? reason=/, '')).join('\n');

// A TCP relay listening on `host` (a loopback address) to 127.0.0.1:port.
async function relay(host, port) {
  const conns = new Set();
  const server = net.createServer((down) => {
    const up = net.connect(port, '127.0.0.1');
    for (const s of [down, up]) { conns.add(s); s.on('error', () => {}); s.on('close', () => conns.delete(s)); }
    down.pipe(up).pipe(down);
  });
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(0, host, resolve); });
  return {
    port: server.address().port,
    close: () => { for (const s of conns) s.destroy(); server.close(); },
  };
}

// haproxy with config/redis-tls-tunnel.cfg as shipped, to this file's Redis
// (TLS only), trusting `ca` and expecting `name`: { port, stop }.
async function tunnel({ ca = caA.cert, name = 'localhost' } = {}) {
  const port = await freePort();
  const h = await spawnReady('haproxy', ['-W', '-db', '-f', path.join(repoRoot, 'config', 'redis-tls-tunnel.cfg')], {
    what: `redis tunnel :${port}`, timeout: 10000,
    env: {
      LECTERN_REDIS_TUNNEL_BIND: `127.0.0.1:${port}`, LECTERN_REDIS_TLS_ADDR: `127.0.0.1:${redisPort}`,
      LECTERN_REDIS_TLS_NAME: name, LECTERN_REDIS_TLS_CA: ca,
    },
    ready: () => new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    }),
  });
  return { ...h, port };
}

before(async () => {
  caA = makeCa(dir, 'a');
  caB = makeCa(dir, 'b');
  const svcCert = issue(caA, 'services');   // localhost and 127.0.0.1
  clientCert = issue(caA, 'lectern-client', { client: true, sans: ['DNS:lectern-client'] });
  mkdirSync(tlsDir);
  copyFileSync(caA.cert, path.join(tlsDir, 'ca.pem'));
  copyFileSync(svcCert.cert, path.join(tlsDir, 'cert.pem'));
  copyFileSync(svcCert.key, path.join(tlsDir, 'key.pem'));
  svcEnv = {
    LECTERN_VAR_DIR: path.join(dir, 'var'),
    LECTERN_REDIS_PORT: String(redisPort), LECTERN_AMQP_PORT: String(amqpPort),
    LECTERN_RABBIT_DIST_PORT: String(distPort), LECTERN_EPMD_PORT: String(epmdPort),
    LECTERN_WEB_STOMP_PORT: String(webStompPort), LECTERN_MYSQL_PORT: String(mysqlPort),
    LECTERN_AMQPS_PORT: String(amqpsPort), LECTERN_SERVICE_TLS_DIR: tlsDir,
    LECTERN_REDIS_TLS: 'on', LECTERN_SERVICE_TLS_CLIENTS: 'optional',
  };
  await svc('start', ['redis', 'rabbitmq', 'mariadb']);
  // Users that can log in over TLS only, and with a client certificate only.
  await rootSql(`
    CREATE USER IF NOT EXISTS 'tls'@'127.0.0.1' IDENTIFIED BY 'tls' REQUIRE SSL;
    GRANT ALL PRIVILEGES ON lectern.* TO 'tls'@'127.0.0.1';
    CREATE USER IF NOT EXISTS 'x509'@'127.0.0.1' IDENTIFIED BY 'x509' REQUIRE X509;
    GRANT ALL PRIVILEGES ON lectern.* TO 'x509'@'127.0.0.1';`);
});

after(async () => {
  try {
    await svc('stop', ['redis', 'rabbitmq', 'mariadb']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('RabbitMQ and MariaDB over TLS', () => {
  test('two servers and a storage worker, every link TLS: a message crosses servers through the broker and is stored; the broker lists every connection as TLS, MariaDB refuses the users in plain text', async () => {
    // Plain text is no way in: the users require TLS.
    await assert.rejects(sqlAs('tls', 'SELECT 1', { plain: true }), /Access denied/);
    const [[, version]] = await sqlAs('tls', "SHOW SESSION STATUS LIKE 'Ssl_version'");
    assert.match(version, /^TLSv1\.[23]$/);
    const cluster = clusterName();
    const sets = { ...busTls('bus'), ...mysqlTls() };
    const s1 = await startServer({ cluster, sets: { ...sets, 'server.id': `${cluster}-s1` } });
    const s2 = await startServer({ cluster, sets: { ...sets, 'server.id': `${cluster}-s2` } });
    const w = await startWorker({ cluster, sets: { ...busTls('amqp'), ...mysqlTls() } });
    const clients = [];
    try {
      const room = `tls-${cluster}`;
      const sub = await stompClient(s2.wsUrl, { connectHeaders: { login: 'bob' } });
      const pub = await stompClient(s1.wsUrl, { connectHeaders: { login: 'ann' } });
      clients.push(sub.client, pub.client);
      const got = await subscribed(sub.client, `/topic/${room}`);
      await new Promise((resolve) => {
        pub.client.watchForReceipt('r1', resolve);
        pub.client.publish({ destination: `/topic/${room}`, body: 'across hosts, encrypted', headers: { receipt: 'r1' } });
      });
      const [m] = await got.next(1);
      assert.equal(m.body, 'across hosts, encrypted');
      assert.ok(await metric(s2.port, 'lectern_bus_received_total') >= 1, 'it came through the broker');
      // Stored by the worker, which logs in as the TLS-only user.
      await waitFor(async () => (await sqlAs('tls', `SELECT body FROM messages WHERE room = '${room}'`)).length === 1,
        { timeout: 20000, interval: 200, what: 'the message in MariaDB' });
      assert.ok(logged(w, /event=mysql_up /)(), 'the worker is connected to MariaDB');
      assert.ok(s1.logs.some((l) => /event=bus_up /.test(l)) && w.logs.some((l) => /event=amqp_up /.test(l)));
      // The broker's view: 2 connections per server, 1 for the worker, all TLS 1.2+.
      const conns = (await ctl('list_connections', '--no-table-headers', 'ssl', 'ssl_protocol', 'peer_port'))
        .split('\n').filter(Boolean).map((l) => l.split('\t'));
      assert.equal(conns.length, 5, `connections:\n${conns.join('\n')}`);
      for (const [ssl, proto] of conns) {
        assert.equal(ssl, 'true');
        assert.match(proto, /^tlsv1\.[23]$/);
      }
    } finally {
      await Promise.all(clients.map((c) => c.deactivate()));
      assert.equal((await w.stop()).code, 0);
      assert.equal((await s1.stop()).code, 0);
      assert.equal((await s2.stop()).code, 0);
    }
  });

  test('a CA that did not sign the broker\'s certificate: server and worker log the failed check, /readyz is 503, lectern_bus_up 0', async () => {
    const cluster = clusterName();
    const s = await startServer({ cluster, ready: false, sets: busTls('bus', { ca: caB.cert }) });
    const w = await startWorker({ cluster, ready: false, sets: { ...busTls('amqp', { ca: caB.cert }), ...mysqlTls() } });
    try {
      // The broker sends its CA along: OpenSSL finds a chain it does not trust.
      const verifyFailed = /certificate verify failed\): (self-signed certificate in certificate chain|unable to get local issuer certificate)"/;
      await waitFor(logged(s, /event=bus_down /), { timeout: 10000, what: 'bus_down' });
      assert.match(lines(s, /event=bus_down /), verifyFailed);
      assert.equal((await httpGet(s.port, '/readyz')).status, 503);
      assert.equal(await metric(s.port, 'lectern_bus_up'), 0);
      assert.ok(!logged(s, /event=bus_up /)(), 'never up');
      await waitFor(logged(w, /event=amqp_down /), { timeout: 10000, what: 'amqp_down' });
      assert.match(lines(w, /event=amqp_down /), verifyFailed);
      assert.equal((await httpGet(w.port, '/readyz')).status, 503);
    } finally {
      assert.equal((await s.stop()).code, 0);
      assert.equal((await w.stop()).code, 0);
    }
  });

  test('a CA that did not sign MariaDB\'s certificate: the worker logs mysql_down and is not ready', async () => {
    const cluster = clusterName();
    const w = await startWorker({ cluster, ready: false, sets: { ...busTls('amqp'), ...mysqlTls({ ca: caB.cert }) } });
    try {
      await waitFor(logged(w, /event=mysql_down /), { timeout: 15000, what: 'mysql_down' });
      // (Connector/C's error 2026, with OpenSSL's reason.)
      assert.match(reasons(w, /event=mysql_down /),
        /2026 TLS\/SSL error: (self-signed certificate in certificate chain|unable to get local issuer certificate)/);
      console.log(`# wrong CA, MariaDB: ${reasons(w, /event=mysql_down /)}`);
      assert.equal((await httpGet(w.port, '/readyz')).status, 503);
      assert.ok(!logged(w, /event=mysql_up /)(), 'never up');
    } finally {
      assert.equal((await w.stop()).code, 0);
    }
  });

  test('a host name the certificate does not carry (127.0.0.2): the broker and MariaDB are refused, and the log says why', async () => {
    const toBroker = await relay('127.0.0.2', amqpsPort);
    const toMysql = await relay('127.0.0.2', mysqlPort);
    const cluster = clusterName();
    let s, w;
    try {
      s = await startServer({ cluster, ready: false, sets: busTls('bus', { host: '127.0.0.2', port: toBroker.port }) });
      w = await startWorker({ cluster, ready: false,
        sets: { ...busTls('amqp'), ...mysqlTls({ host: '127.0.0.2', port: toMysql.port }) } });
      await waitFor(logged(s, /event=bus_down /), { timeout: 10000, what: 'bus_down' });
      assert.match(lines(s, /event=bus_down /), /certificate verify failed.*IP address mismatch/);
      assert.equal((await httpGet(s.port, '/readyz')).status, 503);
      await waitFor(logged(w, /event=mysql_down /), { timeout: 15000, what: 'mysql_down' });
      assert.match(reasons(w, /event=mysql_down /), /2026 TLS\/SSL error/);
      console.log(`# 127.0.0.2, MariaDB: ${reasons(w, /event=mysql_down /)}`);
      assert.equal((await httpGet(w.port, '/readyz')).status, 503);
      assert.ok(!logged(s, /event=bus_up /)() && !logged(w, /event=mysql_up /)(), 'never up');
    } finally {
      if (s) assert.equal((await s.stop()).code, 0);
      if (w) assert.equal((await w.stop()).code, 0);
      toBroker.close();
      toMysql.close();
    }
  });

  test('MariaDB user REQUIRE X509: refused without mysql.tls_cert, connected with it', async () => {
    await assert.rejects(sqlAs('x509', 'SELECT 1'), /Access denied/);
    const cluster = clusterName();
    const bare = await startWorker({ cluster, ready: false, sets: { ...busTls('amqp'), ...mysqlTls({ user: 'x509' }) } });
    try {
      await waitFor(logged(bare, /event=mysql_down /), { timeout: 15000, what: 'mysql_down' });
      assert.match(reasons(bare, /event=mysql_down /), /Access denied/);
      assert.equal((await httpGet(bare.port, '/readyz')).status, 503);
    } finally {
      assert.equal((await bare.stop()).code, 0);
    }
    const w = await startWorker({ cluster, sets: { ...busTls('amqp'), ...mysqlTls({ user: 'x509' }),
      'mysql.tls_cert': clientCert.cert, 'mysql.tls_key': clientCert.key } });
    assert.ok(logged(w, /event=mysql_up /)(), 'connected (its /readyz is 200)');
    assert.equal((await w.stop()).code, 0);
  });
});

describe('Redis through the TLS tunnel (config/redis-tls-tunnel.cfg)', () => {
  test('Redis speaks TLS only; two servers reach it through their tunnels: presence across servers, a message delivered', async () => {
    // No plain text on Redis's port.
    await assert.rejects(run('redis-cli', ['-h', '127.0.0.1', '-p', String(redisPort), 'ping'], { timeout: 10000 })
      .then((out) => { if (!/PONG/.test(out)) throw new Error(out); }));
    const t1 = await tunnel();
    const t2 = await tunnel();
    const cluster = clusterName();
    const s1 = await startServer({ cluster, sets: { ...busTls('bus'), 'redis.port': t1.port, 'server.id': `${cluster}-s1` } });
    const s2 = await startServer({ cluster, sets: { ...busTls('bus'), 'redis.port': t2.port, 'server.id': `${cluster}-s2` } });
    const clients = [];
    try {
      const room = `tunnel-${cluster}`;
      const sub = await stompClient(s2.wsUrl, { connectHeaders: { login: 'bob' } });
      const pub = await stompClient(s1.wsUrl, { connectHeaders: { login: 'ann' } });
      clients.push(sub.client, pub.client);
      const got = await subscribed(sub.client, `/topic/${room}`);
      // bob's membership, held in Redis, seen from the other server.
      await waitFor(async () => JSON.parse((await httpGet(s1.port, `/api/rooms/${room}/presence`)).text)
        .members?.some((m) => m.id === 'bob'), { timeout: 5000, what: 'bob present, seen from s1' });
      pub.client.publish({ destination: `/topic/${room}`, body: 'through the tunnel' });
      const [m] = await got.next(1);
      assert.equal(m.body, 'through the tunnel');
      // The servers' connections are Redis's TLS clients (haproxy's).
      const list = await run('redis-cli', ['--tls', '--cacert', caA.cert, '-h', '127.0.0.1', '-p', String(redisPort),
        'client', 'list'], { timeout: 10000 });
      assert.ok(list.split('\n').filter((l) => /cmd=/.test(l)).length >= 4, `Redis's clients:\n${list}`);
    } finally {
      await Promise.all(clients.map((c) => c.deactivate()));
      assert.equal((await s1.stop()).code, 0);
      assert.equal((await s2.stop()).code, 0);
      await t1.stop();
      await t2.stop();
    }
  });

  test('a tunnel trusting another CA, or expecting another name: the server cannot reach Redis, /readyz is 503', async () => {
    for (const opts of [{ ca: caB.cert }, { name: 'elsewhere.example' }]) {
      const t = await tunnel(opts);
      const s = await startServer({ ready: false, sets: { ...busTls('bus'), 'redis.port': t.port } });
      try {
        await waitFor(logged(s, /event=redis_connect_failed .*during the handshake/), { timeout: 10000,
          what: `redis_connect_failed (${JSON.stringify(opts)})` });
        // The tunnel's line for it: the server side of the connection failed (SC).
        assert.ok(logged(t, / redis redis\/redis .* SC /)(), `the tunnel's log:\n${t.logs.join('\n')}`);
        assert.equal((await httpGet(s.port, '/readyz')).status, 503);
        assert.ok(!logged(s, /event=redis_up /)(), `never up:\n${s.logs.join('\n')}`);
      } finally {
        assert.equal((await s.stop()).code, 0);
        await t.stop();
      }
    }
  });
});

describe('RabbitMQ requiring client certificates (LECTERN_SERVICE_TLS_CLIENTS=require)', () => {
  before(async () => {
    await svc('stop', ['rabbitmq']);
    await svc('start', ['rabbitmq'], { LECTERN_SERVICE_TLS_CLIENTS: 'require' });
  });

  test('without bus.tls_cert the connection is refused; with a client certificate from the CA it works', async () => {
    const cluster = clusterName();
    const bare = await startServer({ cluster, ready: false, sets: busTls('bus') });
    try {
      await waitFor(logged(bare, /event=bus_down /), { timeout: 10000, what: 'bus_down' });
      assert.equal((await httpGet(bare.port, '/readyz')).status, 503);
      assert.equal(await metric(bare.port, 'lectern_bus_up'), 0);
      assert.ok(!logged(bare, /event=bus_up /)());
    } finally {
      assert.equal((await bare.stop()).code, 0);
    }
    const s = await startServer({ cluster, sets: { ...busTls('bus'), 'bus.tls_cert': clientCert.cert, 'bus.tls_key': clientCert.key } });
    const w = await startWorker({ cluster, sets: { ...busTls('amqp'), ...mysqlTls(),
      'amqp.tls_cert': clientCert.cert, 'amqp.tls_key': clientCert.key } });
    try {
      assert.equal(await metric(s.port, 'lectern_bus_up'), 1);
      const conns = (await ctl('list_connections', '--no-table-headers', 'ssl', 'peer_cert_subject'))
        .split('\n').filter(Boolean).map((l) => l.split('\t'));
      assert.equal(conns.length, 3, `connections:\n${conns.join('\n')}`);
      for (const [ssl, subject] of conns) {
        assert.equal(ssl, 'true');
        assert.match(subject, /CN=lectern-client/);
      }
    } finally {
      assert.equal((await w.stop()).code, 0);
      assert.equal((await s.stop()).code, 0);
    }
  });
});
