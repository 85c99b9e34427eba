// Security: every rejection path of docs/security.md against a real server.
// Tokens are minted by scripts/mint-token (the tool operators use), so a
// mismatch between the tool and the server fails here too.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { httpGet, metric, rawClient, repoRoot, sql, startServer, startWorker, waitFor } from './helpers.mjs';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lectern-sec-'));
const keys = path.join(dir, 'keys');
const SECRET1 = 'k1-secret-0123456789abcdef0123456789';
const SECRET2 = 'k2-secret-0123456789abcdef0123456789';
writeFileSync(keys, `# old key, still accepted while tokens signed with it live\nk1 HS256 ${SECRET1}\nk2 HS256 ${SECRET2}\n`);
const otherKeys = path.join(dir, 'other');
writeFileSync(otherKeys, 'k1 HS256 not-our-secret-0123456789abcdefgh\n');

function mintRaw(args) {
  return execFileSync(path.join(repoRoot, 'scripts', 'mint-token'), args).toString().trim();
}
const mint = (args, keyFile = keys) => mintRaw(['--keys', keyFile, ...args]);
const student = (extra = []) => mint(['--sub', 'stu', '--name', 'Stu Dent', '--rooms', 'physics,cs-*,announce-main', ...extra]);

const JWT = {
  'auth.mode': 'jwt', 'auth.keys': keys, 'auth.instructor_rooms': 'announce*',
};

async function expectRefused(c, message = 'Access refused') {
  const err = await c.waitFrame('ERROR');
  assert.equal(err.headers.message, message);
  await c.waitClosed();
  return err;
}

describe('authentication', () => {
  let s;
  before(async () => { s = await startServer({ sets: JWT }); });
  after(async () => { assert.equal((await s.stop()).code, 0); });

  test('a valid token connects: as passcode, as an Authorization header, signed by either key (rotation)', async () => {
    for (const headers of [
      { passcode: student() },
      { Authorization: `Bearer ${student()}` },
      { passcode: student(['--kid', 'k2']) },
    ]) {
      const c = await rawClient(s.wsUrl);
      const connected = await c.connect({ 'accept-version': '1.2', host: '/', ...headers });
      assert.equal(connected.headers.version, '1.2');
      // The token is the identity: a message sent in one of its rooms
      // carries its subject and name.
      c.frame('SUBSCRIBE', { id: '1', destination: '/topic/physics', receipt: 's' });
      c.frame('SEND', { destination: '/topic/physics', receipt: 'p' }, 'who am I');
      const m = await c.waitFrame('MESSAGE');
      assert.equal(m.headers.sender, 'stu');
      assert.equal(m.headers['sender-name'], 'Stu Dent');
      const receipts = () => c.frames.filter((f) => f.command === 'RECEIPT').map((f) => f.headers['receipt-id']);
      await waitFor(() => receipts().length === 2, { what: 'RECEIPTs of the SUBSCRIBE and the SEND' });
      assert.deepEqual(receipts().sort(), ['p', 's']);
      assert.equal(c.frames.find((f) => f.command === 'ERROR'), undefined);
      c.close();
    }
  });

  test('expired, not-yet-valid, forged, unknown-kid, alg-none and missing tokens get ERROR "Access refused" and a close, with no detail', async () => {
    const before = await metric(s.port, 'lectern_auth_failures_total');
    const good = student();
    const [h, p] = good.split('.');
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`;
    const bad = [
      student(['--ttl', '-120']),                        // expired beyond the 60 s skew
      student(['--nbf', '600']),                         // not valid for 10 minutes
      mint(['--sub', 'stu', '--rooms', '*'], otherKeys), // a key we do not hold
      mintRaw(['--sub', 'stu', '--kid', 'k3', '--secret', SECRET1]),
      none,
      `${h}.${Buffer.from('{"sub":"stu","role":"admin","exp":9999999999}').toString('base64url')}.${good.split('.')[2]}`,
      'not-a-token',
      '',
    ];
    for (const token of bad) {
      const c = await rawClient(s.wsUrl);
      c.frame('CONNECT', { 'accept-version': '1.2', host: '/', login: 'stu', ...(token ? { passcode: token } : {}) });
      const err = await expectRefused(c);
      assert.equal(err.body.toString(), 'Authentication failed.');
    }
    assert.equal(await metric(s.port, 'lectern_auth_failures_total'), before + bad.length);
  });

  test('HTTP API: 401 with a Bearer challenge without a valid token, 403 outside the token\'s rooms', async () => {
    const none = await httpGet(s.port, '/api/rooms/physics/presence');
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate'), /^Bearer/);
    assert.deepEqual(JSON.parse(none.text), { error: 'authentication required' });
    const expired = await httpGet(s.port, '/api/rooms/physics/messages', { headers: { authorization: `Bearer ${student(['--ttl', '-120'])}` } });
    assert.equal(expired.status, 401);
    const auth = { headers: { authorization: `Bearer ${student()}` } };
    assert.equal((await httpGet(s.port, '/api/rooms/physics/presence', auth)).status, 200);
    assert.equal((await httpGet(s.port, '/api/rooms/cs-101/presence', auth)).status, 200);
    const denied = await httpGet(s.port, '/api/rooms/chemistry/messages', auth);
    assert.equal(denied.status, 403);
    assert.equal((await httpGet(s.port, '/api/presence?users=stu')).status, 401);
    assert.equal((await httpGet(s.port, '/api/presence?users=stu', auth)).status, 200);
    // Operators' endpoints stay open (they belong behind the load balancer).
    assert.equal((await httpGet(s.port, '/healthz')).status, 200);
  });
});

describe('authorization and identity', () => {
  let s;
  before(async () => { s = await startServer({ sets: JWT }); });
  after(async () => { assert.equal((await s.stop()).code, 0); });

  const connect = async (token) => {
    const c = await rawClient(s.wsUrl);
    await c.connect({ 'accept-version': '1.2', host: '/', passcode: token });
    return c;
  };

  test('SUBSCRIBE, presence and SEND outside the token\'s rooms are refused', async () => {
    const before = await metric(s.port, 'lectern_access_denied_total');
    for (const [cmd, dest] of [['SUBSCRIBE', '/topic/chemistry'], ['SUBSCRIBE', '/presence/chemistry'],
      ['SEND', '/topic/chemistry'], ['SUBSCRIBE', '/topic/cs']]) {
      const c = await connect(student());
      c.frame(cmd, { id: '1', destination: dest, receipt: 'r' }, cmd === 'SEND' ? 'x' : '');
      const err = await expectRefused(c);
      assert.equal(err.headers['receipt-id'], 'r');
      assert.match(err.body.toString(), new RegExp(dest.replace(/\//g, '\\/')));
    }
    assert.equal(await metric(s.port, 'lectern_access_denied_total'), before + 4);
  });

  test('announcement rooms: students read, only instructors send; sender identity comes from the token, never from headers', async () => {
    const stu = await connect(student());
    stu.frame('SUBSCRIBE', { id: 'a', destination: '/topic/announce-main', receipt: 's1' });
    stu.frame('SUBSCRIBE', { id: 'p', destination: '/topic/physics', receipt: 's2' });
    await waitFor(() => stu.frames.filter((f) => f.command === 'RECEIPT').length === 2, { what: 'subscribed' });
    const prof = await connect(mint(['--sub', 'prof', '--name', 'Prof X', '--role', 'instructor', '--rooms', 'announce-*,physics']));
    prof.frame('SEND', { destination: '/topic/announce-main', receipt: 'a1' }, 'exam on friday');
    await prof.waitFrame('RECEIPT');
    // The student speaks in physics, dressed up as someone else.
    stu.frame('SEND', {
      destination: '/topic/physics', receipt: 'p1', sender: 'prof', 'sender-name': 'Prof X',
      'sender-role': 'instructor', 'Sender-Role': 'admin', 'user-id': 'prof', 'x-lectern-sender': 'prof', 'x-note': 'kept',
    }, 'hello');
    await waitFor(() => stu.frames.filter((f) => f.command === 'MESSAGE').length === 2, { what: 'two messages' });
    const [ann, mine] = stu.frames.filter((f) => f.command === 'MESSAGE');
    assert.equal(ann.body.toString(), 'exam on friday');
    assert.equal(ann.headers.sender, 'prof');
    assert.equal(ann.headers['sender-role'], 'instructor');
    assert.equal(mine.headers.sender, 'stu');
    assert.equal(mine.headers['sender-name'], 'Stu Dent');
    assert.equal(mine.headers['sender-role'], 'student');
    assert.equal(mine.headers['x-note'], 'kept');
    for (const h of ['Sender-Role', 'user-id', 'x-lectern-sender']) assert.equal(mine.headers[h], undefined, h);
    // The raw frame carries sender-role once.
    const raw = stu.messages.map((m) => m.bytes.toString()).join('');
    assert.equal(raw.split('sender-role:').length - 1, 2);
    // And the student may not announce.
    stu.frame('SEND', { destination: '/topic/announce-main', receipt: 'a2' }, 'no class!');
    const err = await expectRefused(stu);
    assert.match(err.body.toString(), /Not permitted to send/);
    prof.close();
  });

  test('an admin token may use every room', async () => {
    const c = await connect(mint(['--sub', 'root', '--role', 'admin']));
    c.frame('SUBSCRIBE', { id: '1', destination: '/topic/anything', receipt: 'r' });
    await c.waitFrame('RECEIPT');
    c.close();
  });

  test('mint-token --rooms \'*\' (and cs-*) name patterns, whatever files the current directory holds', async () => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'lectern-glob-'));
    for (const f of ['a.txt', 'cs-1']) writeFileSync(path.join(cwd, f), '');
    const tok = execFileSync(path.join(repoRoot, 'scripts', 'mint-token'),
      ['--keys', keys, '--sub', 'u', '--rooms', '*,cs-*', '--contacts', '*'], { cwd }).toString().trim();
    const claims = JSON.parse(Buffer.from(tok.split('.')[1], 'base64url').toString());
    assert.deepEqual(claims.rooms, ['*', 'cs-*']);
    assert.deepEqual(claims.contacts, ['*']);
    const c = await connect(tok);
    c.frame('SUBSCRIBE', { id: '1', destination: '/topic/anything', receipt: 'r' });
    await c.waitFrame('RECEIPT');
    c.close();
  });
});

describe('limits', () => {
  test('SENDs over limits.send_rate are slowed down (backpressure), not dropped', async () => {
    const s = await startServer({ sets: { 'limits.send_rate': 50, 'limits.send_burst': 10 } });
    try {
      const sub = await rawClient(s.wsUrl);
      await sub.connect();
      sub.frame('SUBSCRIBE', { id: '0', destination: '/topic/rl', receipt: 's' });
      await sub.waitFrame('RECEIPT');
      const pub = await rawClient(s.wsUrl);
      await pub.connect();
      const t0 = Date.now();
      for (let i = 0; i < 110; i++) pub.frame('SEND', { destination: '/topic/rl', ...(i === 109 ? { receipt: 'last' } : {}) }, `m${i}`);
      await pub.waitFrame('RECEIPT', 10000);
      const took = Date.now() - t0;
      // 10 at once (+1 on credit), the other 99 at 50/s: about 2 s.
      assert.ok(took >= 1500, `110 SENDs took ${took} ms`);
      console.log(`# rate limit 50/s, burst 10: 110 SENDs took ${took} ms`);
      await waitFor(() => sub.frames.filter((f) => f.command === 'MESSAGE').length === 110, { what: 'all 110' });
      assert.deepEqual(sub.frames.filter((f) => f.command === 'MESSAGE').map((f) => f.body.toString()),
        Array.from({ length: 110 }, (_, i) => `m${i}`));
      assert.ok(await metric(s.port, 'lectern_throttled_total') > 0);
      assert.equal(pub.closed, null);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('SEND bytes over limits.send_bytes_rate are slowed down too', async () => {
    const s = await startServer({ sets: { 'limits.send_bytes_rate': '50k', 'limits.send_bytes_burst': '10k' } });
    try {
      const pub = await rawClient(s.wsUrl);
      await pub.connect();
      const t0 = Date.now();
      for (let i = 0; i < 10; i++) pub.frame('SEND', { destination: '/topic/bytes', ...(i === 9 ? { receipt: 'last' } : {}) }, 'b'.repeat(10000));
      await pub.waitFrame('RECEIPT', 10000);
      const took = Date.now() - t0;
      assert.ok(took >= 1200, `100 kB took ${took} ms`);   // (100k - 10k - one frame of credit) / 50k/s
      console.log(`# byte limit 50 kB/s, burst 10 kB: 100 kB of SENDs took ${took} ms`);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('limits.max_conns_per_ip: one more upgrade from the address gets 429; X-Forwarded-For counts only from trusted proxies', async () => {
    const s = await startServer({ sets: { 'limits.max_conns_per_ip': 2, 'limits.trusted_proxies': '127.0.0.1' } });
    try {
      const a = await rawClient(s.wsUrl);
      const b = await rawClient(s.wsUrl);
      await assert.rejects(rawClient(s.wsUrl), /HTTP 429/);
      // Behind the (trusted) proxy, clients are told apart by X-Forwarded-For.
      const x1 = await rawClient(s.wsUrl, { headers: { 'X-Forwarded-For': '198.51.100.1' } });
      const x2 = await rawClient(s.wsUrl, { headers: { 'X-Forwarded-For': '203.0.113.9, 198.51.100.1' } });
      await assert.rejects(rawClient(s.wsUrl, { headers: { 'X-Forwarded-For': '198.51.100.1' } }), /HTTP 429/);
      assert.equal(await metric(s.port, 'lectern_conn_limit_rejects_total'), 2);
      // A closed connection frees its place.
      a.close();
      await waitFor(async () => { try { (await rawClient(s.wsUrl)).close(); return true; } catch { return false; } }, { what: 'a place' });
      for (const c of [b, x1, x2]) c.close();
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
    // Without trusted proxies the header is ignored: the same address is full.
    const u = await startServer({ sets: { 'limits.max_conns_per_ip': 1 } });
    try {
      const a = await rawClient(u.wsUrl);
      await assert.rejects(rawClient(u.wsUrl, { headers: { 'X-Forwarded-For': '198.51.100.1' } }), /HTTP 429/);
      a.close();
    } finally {
      assert.equal((await u.stop()).code, 0);
    }
  });

  test('slowloris: an unfinished handshake, a frame dripped forever and a silent connection are all closed', async () => {
    const s = await startServer({
      sets: { 'limits.handshake_timeout_s': 2, 'stomp.frame_timeout_ms': 1000, 'stomp.idle_timeout_ms': 1500 },
    });
    try {
      // 1. Half an HTTP request, then nothing.
      const sock = net.connect(s.port, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      sock.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n');
      const t0 = Date.now();
      await new Promise((r) => sock.once('close', r));
      const took = Date.now() - t0;
      assert.ok(took >= 1500 && took < 6000, `handshake closed after ${took} ms`);

      // 2. A frame dripped a byte every 300 ms: input keeps coming, the frame never ends.
      const drip = await rawClient(s.wsUrl);
      await drip.connect({ 'accept-version': '1.2', host: '/', 'heart-beat': '0,0' });
      const text = 'SEND\ndestination:/topic/drip\n\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx';
      let i = 0;
      const timer = setInterval(() => { if (!drip.closed && i < text.length) drip.send(text[i++]); }, 300);
      try {
        const err = await drip.waitFrame('ERROR', 6000);
        assert.equal(err.headers.message, 'Frame timeout');
        await drip.waitClosed();
      } finally {
        clearInterval(timer);
      }
      assert.equal(await metric(s.port, 'lectern_frame_timeouts_total'), 1);

      // 3. Connected without heart-beats and silent.
      const idle = await rawClient(s.wsUrl);
      await idle.connect({ 'accept-version': '1.2', host: '/', 'heart-beat': '0,0' });
      await idle.waitClosed(5000);
      assert.equal(await metric(s.port, 'lectern_idle_timeouts_total'), 1);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });
});

describe('SQL', () => {
  test('hostile text in every stored field goes through prepared statements and comes back as data', async () => {
    const s = await startServer({ sets: { 'history.hole_wait_ms': 5000 } });
    const cluster = s.cluster;
    const room = `sqli-${cluster}`;       // its own rows, however often the suite runs
    const w = await startWorker({ cluster });
    try {
      const evil = `x'); DROP TABLE messages; -- " \` ; SELECT SLEEP(5); #`;
      const c = await rawClient(s.wsUrl);
      await c.connect({ 'accept-version': '1.2', host: '/', login: `bob' OR '1'='1`, 'x-display-name': evil });
      c.frame('SEND', { destination: `/topic/${room}`, receipt: 'r', 'content-type': `text/plain'; --`, 'x-evil': evil }, evil);
      await c.waitFrame('RECEIPT');
      c.frame('SEND', { destination: `/topic/${room}`, receipt: 'r2' }, 'after');
      await c.waitFrame('RECEIPT');
      // Read back from MySQL (the room log is bypassed by asking below a
      // message id that only MySQL can answer for once both are stored).
      await waitFor(async () => (await sql(`SELECT COUNT(*) FROM messages WHERE room = '${room}'`))[0][0] === '2',
        { timeout: 15000, what: 'both rows stored' });
      const rows = await sql(`SELECT sender, sender_name, body FROM messages WHERE room = '${room}' ORDER BY id_ms, id_n LIMIT 1`);
      assert.deepEqual(rows[0], [`bob' OR '1'='1`, evil, evil]);
      const page = JSON.parse((await httpGet(s.port, `/api/rooms/${room}/messages?limit=10`)).text);
      assert.equal(page.messages[0].body, evil);
      assert.equal(page.messages[0].sender_name, evil);
      assert.equal(page.messages[0].headers['x-evil'], evil);
      c.close();
    } finally {
      await w.stop();
      assert.equal((await s.stop()).code, 0);
    }
  });
});
