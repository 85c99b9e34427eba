// Nothing receipted that storage cannot hold (lib/storelimits.h,
// docs/security.md "Storage limits"). A SEND whose row MySQL could not take
// gets ERROR before any RECEIPT and is neither delivered nor stored; one at
// the limit gets its RECEIPT, is delivered (on the sender's server and,
// through RabbitMQ, on another), and MySQL holds it byte for byte. Every limit reachable through the frame limits is tried at the limit
// and one byte past it: the content-type column, the header block (the
// report's 20 headers of 4,000 bytes, and 64 KiB, the old BLOB), the whole
// row filled by the body, and by STOMP 1.0 header values whose colons
// double when stored as escaped 1.2 lines; SENDs in transactions are
// refused when buffered, so nothing in a COMMIT can fail storage. The worker
// counts no poison. A worker whose database cannot hold the largest row (a
// narrowed column, a small max_allowed_packet) refuses to consume, is not
// ready, and stores everything once the database is fixed.
//
// Real Redis, RabbitMQ, MariaDB, lectern-server and lectern-storage; raw
// STOMP over WebSocket (the frames are built byte for byte).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  clusterName, httpGet, metric, rawClient, repoRoot, serverBin, sleep, sql, startServer, startWorker, storageDrained,
  waitFor,
} from './helpers.mjs';

// The table's limits (#define STORELIMITS_<FIELD>_MAX <bytes>); the values
// of the table as first written stand in when the header is missing.
function readLimits() {
  const lim = { ROOM: 255, SENDER: 1024, SENDER_NAME: 1024, CONTENT_TYPE: 1024, ORIGIN: 255, ROW: 16711680 };
  const file = path.join(repoRoot, 'lib', 'storelimits.h');
  if (existsSync(file))
    for (const m of readFileSync(file, 'utf8').matchAll(/^#define STORELIMITS_(\w+)_MAX\s+(\d+)\b/gm))
      lim[m[1]] = Number(m[2]);
  return lim;
}
const LIMITS = readLimits();

const sha = (b) => createHash('sha256').update(b).digest('hex');
const esc12 = (s) => s.replace(/[\\\n\r:]/g, (c) => ({ '\\': '\\\\', '\n': '\\n', '\r': '\\r', ':': '\\c' }[c]));

// SQL as MariaDB's root, through the suite's socket (scripts/services).
function rootSql(query) {
  const sock = path.join(process.env.LECTERN_VAR_DIR || path.join(repoRoot, 'var'), 'mariadb', 'mysqld.sock');
  return new Promise((resolve, reject) => {
    execFile('mariadb', ['--no-defaults', `--socket=${sock}`, '-uroot', '-N', '-B', '-e', query], { timeout: 30000 },
      (err, stdout, stderr) => (err ? reject(new Error(`root sql: ${stderr || err.message}`))
        : resolve(stdout.split('\n').filter((l) => l.length).map((l) => l.split('\t')))));
  });
}

const LOGIN = `lim-${'u'.repeat(96)}`;   // 100 bytes: the stored row outgrows the frame
const NAME = 'Limit Tester';
const ROLE_LINE = 'sender-role:student\n';

// One raw STOMP connection sending as LOGIN/NAME with `version`.
async function sender(wsUrl, version = '1.2') {
  const c = await rawClient(wsUrl, { protocols: [version === '1.0' ? 'v10.stomp' : 'v12.stomp'] });
  await c.connect({ 'accept-version': version, host: '/', login: LOGIN, 'x-display-name': NAME });
  return c;
}

// The SEND as bytes. `custom` are [name, value] pairs as the application
// means them; a 1.2 frame carries them escaped, a 1.0 frame as they are.
function sendFrame({ room, ct, custom = [], body, version = '1.2', receipt, tx }) {
  const e = version === '1.0' ? (s) => s : esc12;
  let head = `SEND\ndestination:/topic/${room}\n`;
  if (tx) head += `transaction:${tx}\n`;
  if (ct !== undefined) head += `content-type:${e(ct)}\n`;
  for (const [k, v] of custom) head += `${e(k)}:${e(v)}\n`;
  head += `content-length:${body.length}\nreceipt:${receipt}\n\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body, Buffer.from([0])]);
}

// What the messages.headers column holds for these custom headers.
const storedHeaders = (custom) => ROLE_LINE + custom.map(([k, v]) => `${esc12(k)}:${esc12(v)}\n`).join('');

// The row's size as the table counts it (every stored field's bytes).
function rowBytes({ room, ct, custom = [], body }, origin) {
  return room.length + LOGIN.length + NAME.length + (ct === undefined ? 0 : ct.length) +
    Buffer.byteLength(storedHeaders(custom), 'latin1') + body.length + origin.length;
}

// Wait for the RECEIPT of `receipt` or an ERROR, whichever comes.
function outcome(c, receipt, timeout = 90000) {
  return waitFor(() => c.frames.find((f) => (f.command === 'RECEIPT' && f.headers['receipt-id'] === receipt) ||
    f.command === 'ERROR'), { timeout, interval: 50, what: `RECEIPT ${receipt} or ERROR` });
}

describe('storage limits: a SEND storage would refuse gets ERROR before any RECEIPT', () => {
  const cluster = clusterName();
  const origin = `${cluster}-limits-origin`;
  let srv; let other; let worker; let sub; let subB;
  const receipted = [];    // messages that got a RECEIPT: must be in MySQL byte for byte, once
  const refused = [];      // messages that got ERROR: neither delivered nor stored
  const rooms = new Set();
  let seq = 0;

  before(async () => {
    const sets = {
      'stomp.max_frame': LIMITS.ROW,            // the largest frame the table allows
      'stomp.max_header_line': '1m',
      'stomp.max_headers': 100,
      'stomp.max_pending': '256m',              // a subscriber gets 16 MiB messages
      'websocket.rx_buffer': '1m',
      // Two frames of 16 MiB in flight and the output queue above: the
      // per-connection budget must hold them (the server refuses less).
      'limits.conn_memory': '320m',
    };
    srv = await startServer({ cluster, sets: { ...sets, 'server.id': origin } });
    other = await startServer({ cluster, sets: { ...sets, 'server.id': `${cluster}-other` } });
    worker = await startWorker({ cluster });
    sub = await rawClient(srv.wsUrl);
    await sub.connect({ 'accept-version': '1.2', host: '/', login: 'lim-sub' });
    subB = await rawClient(other.wsUrl);
    await subB.connect({ 'accept-version': '1.2', host: '/', login: 'lim-sub-b' });
  });

  after(async () => {
    sub?.close();
    subB?.close();
    await worker?.stop();
    for (const s of [srv, other]) {
      const r = await s?.stop();
      assert.equal(r?.code, 0, 'the servers exit cleanly');
    }
  });

  // Subscribe once per room on both servers (with a receipt: the
  // subscription is live, cluster-wide, once it comes).
  async function room(suffix) {
    const name = `${cluster}-${suffix}`;
    if (!rooms.has(name)) {
      rooms.add(name);
      for (const c of [sub, subB]) {
        const r = `sub-${name}`;
        c.frame('SUBSCRIBE', { destination: `/topic/${name}`, id: name, receipt: r });
        await waitFor(() => c.frames.find((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === r),
          { timeout: 10000, what: `subscription to ${name}` });
      }
    }
    return name;
  }

  // Send m on a new connection (an ERROR closes it); returns the outcome.
  async function attempt(m) {
    const c = await sender(srv.wsUrl, m.version);
    try {
      const receipt = `r${seq++}`;
      const bytes = sendFrame({ ...m, receipt });
      assert.ok(bytes.length <= LIMITS.ROW, `the frame (${bytes.length} bytes) is within stomp.max_frame`);
      c.send(bytes);
      const f = await outcome(c, receipt);
      if (f.command === 'RECEIPT') receipted.push(m);
      else refused.push({ ...m, error: f });
      return f;
    } finally {
      c.close();
    }
  }

  async function accepted(m, what) {
    const f = await attempt(m);
    assert.equal(f.command, 'RECEIPT', `${what}: RECEIPT expected, got ${f.command} ${f.headers?.message} ${f.body}`);
  }

  // Wait until MySQL holds m (its room and body); the byte-for-byte
  // comparison of every field is the last test's.
  async function inMySQL(m, what) {
    await waitFor(async () => Number((await sql(`SELECT COUNT(*) FROM messages WHERE room = '${m.room}'
      AND SHA2(body, 256) = '${sha(m.body)}'`))[0][0]) === 1, { timeout: 30000, interval: 200, what: `${what} in MySQL` });
  }

  async function rejected(m, what, mention) {
    const f = await attempt(m);
    assert.equal(f.command, 'ERROR', `${what}: ERROR expected before any RECEIPT, got ${f.command}`);
    assert.equal(f.headers.message, 'Message too large for storage', what);
    const text = f.body.toString();
    for (const word of mention) assert.match(text, word, `${what}: the ERROR names ${word}: ${text}`);
    return f;
  }

  test('content-type: 1024 bytes is stored as sent, 1025 bytes gets ERROR', async () => {
    const r = await room('ct');
    const ct = (n) => `text/x-lim; k=a:b; pad=${'a'.repeat(n - 23)}`;   // one ':' (escaped in a 1.2 frame)
    assert.equal(ct(LIMITS.CONTENT_TYPE).length, LIMITS.CONTENT_TYPE);
    await accepted({ room: r, ct: ct(LIMITS.CONTENT_TYPE), body: Buffer.from('ct at the limit') }, 'content-type at the limit');
    await rejected({ room: r, ct: ct(LIMITS.CONTENT_TYPE + 1), body: Buffer.from('ct one past') }, 'content-type one byte past',
      [/content-type/, new RegExp(`\\b${LIMITS.CONTENT_TYPE + 1}\\b`), new RegExp(`\\b${LIMITS.CONTENT_TYPE}\\b`)]);
  });

  test('headers: 20 headers of 4,000 bytes, and 65,535 and 65,536 bytes of header lines, are stored', async () => {
    const r = await room('hdr');
    const twenty = Array.from({ length: 20 }, (_, i) => [`x-h${String(i).padStart(2, '0')}`, 'v'.repeat(4000 - 6)]);
    assert.equal(`${twenty[0][0]}:${twenty[0][1]}`.length, 4000);
    const m20 = { room: r, custom: twenty, body: Buffer.from('twenty headers') };
    await accepted(m20, '20 headers of 4,000 bytes');
    await inMySQL(m20, '20 headers of 4,000 bytes');
    for (const total of [65535, 65536]) {
      // ROLE_LINE + "x-big:" + value + "\n" = total bytes in messages.headers
      const custom = [['x-big', 'w'.repeat(total - ROLE_LINE.length - 7)]];
      assert.equal(storedHeaders(custom).length, total);
      const m = { room: r, custom, body: Buffer.from(`headers ${total}`) };
      await accepted(m, `${total} bytes of header lines`);
      await inMySQL(m, `${total} bytes of header lines`);
    }
  });

  test('the whole row: at the limit it is stored, one byte past it gets ERROR (filled by the body)', async () => {
    const r = await room('row-body');
    const base = { room: r, body: Buffer.alloc(0) };
    const room0 = rowBytes(base, origin);
    const body = randomBytes(LIMITS.ROW - room0);
    await accepted({ room: r, body }, 'row at the limit (body)');
    const over = Buffer.concat([body, Buffer.from('!')]);
    await rejected({ room: r, body: over }, 'row one byte past (body)', [new RegExp(`\\b${LIMITS.ROW + 1}\\b`), new RegExp(`\\b${LIMITS.ROW}\\b`)]);
  });

  test('STOMP 1.0 header values are counted as the escaped lines storage keeps (a colon is stored as \\c)', async () => {
    const r = await room('row-v10');
    // 8 values of 1,000,000 colons: 8 MB in the frame, 16 MB stored.
    const custom = Array.from({ length: 8 }, (_, i) => [`x-c${i}`, ':'.repeat(1000000)]);
    const fill = LIMITS.ROW - rowBytes({ room: r, custom, body: Buffer.alloc(0) }, origin);
    assert.ok(fill > 0 && fill < 1000000, `room for a body (${fill})`);
    const body = randomBytes(fill);
    await accepted({ room: r, custom, body, version: '1.0' }, 'row at the limit (1.0, colons)');
    await rejected({ room: r, custom, body: Buffer.concat([body, Buffer.from('!')]), version: '1.0' },
      'row one byte past (1.0, colons)', [new RegExp(`\\b${LIMITS.ROW + 1}\\b`)]);
  });

  test('transactions: a SEND storage would refuse gets ERROR when buffered; nothing of its transaction is delivered or stored', async () => {
    const r = await room('tx');
    const ct = (n) => `text/x-tx; pad=${'t'.repeat(n - 15)}`;
    // A transaction at the limit commits and is stored.
    const a = await sender(srv.wsUrl);
    try {
      a.frame('BEGIN', { transaction: 'ok' });
      const m = { room: r, ct: ct(LIMITS.CONTENT_TYPE), body: Buffer.from('tx at the limit'), tx: 'ok' };
      a.send(sendFrame({ ...m, receipt: 'tx-send' }));
      a.frame('COMMIT', { transaction: 'ok', receipt: 'tx-commit' });
      const f = await outcome(a, 'tx-commit');
      assert.equal(f.command, 'RECEIPT', `COMMIT: ${f.headers?.message} ${f.body}`);
      assert.ok(a.frames.find((x) => x.command === 'RECEIPT' && x.headers['receipt-id'] === 'tx-send'));
      receipted.push(m);
    } finally {
      a.close();
    }
    // One SEND one byte past: ERROR at once, before COMMIT; the transaction dies with the connection.
    const b = await sender(srv.wsUrl);
    try {
      b.frame('BEGIN', { transaction: 'bad' });
      const good = { room: r, ct: ct(LIMITS.CONTENT_TYPE), body: Buffer.from('tx sibling of a refused send'), tx: 'bad' };
      const bad = { room: r, ct: ct(LIMITS.CONTENT_TYPE + 1), body: Buffer.from('tx one past'), tx: 'bad' };
      b.send(sendFrame({ ...good, receipt: 'bad-1' }));
      b.send(sendFrame({ ...bad, receipt: 'bad-2' }));
      b.frame('COMMIT', { transaction: 'bad', receipt: 'bad-commit' });
      const f = await waitFor(() => b.frames.find((x) => x.command === 'ERROR'), { timeout: 10000, what: 'ERROR' });
      assert.equal(f.headers.message, 'Message too large for storage');
      assert.equal(f.headers['receipt-id'], 'bad-2', 'the ERROR answers the refused SEND');
      assert.match(f.body.toString(), /content-type/);
      await b.waitClosed(10000);
      assert.ok(!b.frames.find((x) => x.command === 'RECEIPT' && ['bad-2', 'bad-commit'].includes(x.headers['receipt-id'])),
        'no RECEIPT for the refused SEND or the COMMIT');
      refused.push(good, bad);
    } finally {
      b.close();
    }
  });

  test('every receipted message was delivered live and is in MySQL byte for byte; no refused one was; no poison', async () => {
    // A marker sent after everything: once it is delivered, anything refused
    // earlier would have been delivered before it.
    const r = await room('marker');
    await accepted({ room: r, body: Buffer.from('marker') }, 'marker');
    for (const [c, where] of [[sub, 'the sender\'s server'], [subB, 'another server']]) {
      await waitFor(() => c.frames.find((f) => f.command === 'MESSAGE' && f.headers.destination === `/topic/${r}`),
        { timeout: 30000, what: `the marker delivered on ${where}` });
      const live = c.frames.filter((f) => f.command === 'MESSAGE');
      const liveKeys = live.map((f) => `${f.headers.destination}|${sha(f.body)}|${f.headers['content-type'] ?? ''}`);
      for (const m of receipted)
        assert.equal(liveKeys.filter((k) => k === `/topic/${m.room}|${sha(m.body)}|${m.ct ?? ''}`).length, 1,
          `delivered once on ${where}: ${m.room} (${m.body.length} bytes)`);
      for (const m of refused)
        assert.ok(!liveKeys.some((k) => k.startsWith(`/topic/${m.room}|${sha(m.body)}|`)),
          `not delivered on ${where}: ${m.room} (${m.body.length} bytes)`);
      assert.equal(live.length, receipted.length, `nothing else was delivered on ${where}`);
      assert.ok(!c.frames.find((f) => f.command === 'ERROR'), `the subscriber on ${where} stays connected`);
    }

    const list = [...rooms].map((x) => `'${x}'`).join(',');
    await waitFor(async () => Number((await sql(`SELECT COUNT(*) FROM messages WHERE room IN (${list})`))[0][0]) >= receipted.length,
      { timeout: 120000, interval: 250, what: `${receipted.length} rows in MySQL` });
    await storageDrained(cluster);   // nothing can be stored later
    const rows = await sql(`SELECT room, LENGTH(body), SHA2(body, 256), IFNULL(LENGTH(content_type), -1),
      IFNULL(SHA2(content_type, 256), ''), IFNULL(LENGTH(headers), -1), IFNULL(SHA2(headers, 256), ''),
      HEX(sender), HEX(sender_name), HEX(origin) FROM messages WHERE room IN (${list})`);
    assert.equal(rows.length, receipted.length, 'MySQL holds exactly the receipted messages');
    const key = (room, bodySha) => `${room}|${bodySha}`;
    const byKey = new Map(rows.map((row) => [key(row[0], row[2]), row]));
    for (const m of receipted) {
      const row = byKey.get(key(m.room, sha(m.body)));
      assert.ok(row, `in MySQL: ${m.room} (${m.body.length} bytes)`);
      const hdr = Buffer.from(storedHeaders(m.custom || []), 'latin1');
      const ct = m.ct === undefined ? null : Buffer.from(m.ct, 'latin1');
      assert.deepEqual(row.slice(1), [
        String(m.body.length), sha(m.body),
        String(ct ? ct.length : -1), ct ? sha(ct) : '',
        String(hdr.length), sha(hdr),
        Buffer.from(LOGIN).toString('hex').toUpperCase(), Buffer.from(NAME).toString('hex').toUpperCase(),
        Buffer.from(origin).toString('hex').toUpperCase(),
      ], `stored byte for byte: ${m.room} (${m.body.length} bytes)`);
    }
    for (const m of refused)
      assert.ok(!byKey.has(key(m.room, sha(m.body))), `not stored: ${m.room} (${m.body.length} bytes)`);
    assert.equal(await metric(worker.port, 'lectern_storage_errors_total{kind="poison"}'), 0, 'no poison');
    assert.equal(await metric(srv.port, 'lectern_stomp_errors_by_reason_total{reason="Message too large for storage"}'),
      refused.length - 1, 'each refusal counted under its reason (the transaction had one)');
    console.log(`# ${receipted.length} receipted and stored byte for byte (largest row ${LIMITS.ROW} bytes), ${refused.length} refused`);
  });
});

describe('storage limits: a worker whose database cannot hold the largest row refuses to consume', () => {
  // Wait until /readyz has answered 503 for `ms` in a row; returns its last reason.
  async function staysUnready(w, ms) {
    const until = Date.now() + ms;
    let last;
    while (Date.now() < until) {
      last = await httpGet(w.port, '/readyz');
      assert.equal(last.status, 503, `/readyz stays 503 (${last.text})`);
      await sleep(100); // between probes of a window whose length is the check
    }
    return JSON.parse(last.text).reason;
  }

  test('a narrowed column: not ready, nothing consumed, no poison; widened again, the message is stored', async () => {
    const cluster = clusterName();
    const db = `lim_${cluster}`;
    await rootSql(`CREATE DATABASE ${db}; GRANT ALL PRIVILEGES ON ${db}.* TO 'lectern'@'127.0.0.1';
      GRANT ALL PRIVILEGES ON ${db}.* TO 'lectern'@'localhost'`);
    const sets = { 'mysql.database': db };
    let w; let srv;
    try {
      w = await startWorker({ cluster, sets });      // creates the schema
      await w.stop();
      await rootSql(`ALTER TABLE ${db}.messages MODIFY content_type VARBINARY(1000) NULL`);
      w = await startWorker({ cluster, sets, ready: false });
      srv = await startServer({ cluster });
      // A message within the server's limits, which this database cannot hold.
      const c = await sender(srv.wsUrl);
      const m = { room: `${cluster}-narrow`, ct: `text/x-${'n'.repeat(LIMITS.CONTENT_TYPE - 7)}`, body: Buffer.from('narrow') };
      c.send(sendFrame({ ...m, receipt: 'n1' }));
      assert.equal((await outcome(c, 'n1')).command, 'RECEIPT');
      c.close();
      const reason = await staysUnready(w, 3000);
      assert.match(reason, /content_type|schema|column/, `the reason says why: ${reason}`);
      assert.ok(w.logs.some((l) => /storage_incompatible/.test(l) && /content_type/.test(l) && /1000/.test(l)),
        `a log line names the column:\n${w.logs.join('\n')}`);
      assert.equal(await metric(w.port, 'lectern_storage_deliveries_total'), 0, 'nothing consumed');
      assert.equal(await metric(w.port, 'lectern_storage_errors_total{kind="poison"}'), 0, 'no poison');
      assert.equal(await metric(w.port, 'lectern_storage_incompatible'), 1);
      await rootSql(`ALTER TABLE ${db}.messages MODIFY content_type VARBINARY(1024) NULL`);
      await waitFor(async () => (await httpGet(w.port, '/readyz')).status === 200, { timeout: 20000, what: 'ready once widened' });
      await waitFor(async () => Number((await sql(`SELECT COUNT(*) FROM ${db}.messages WHERE LENGTH(content_type) = ${LIMITS.CONTENT_TYPE}`))[0][0]) === 1,
        { timeout: 20000, interval: 200, what: 'the message stored' });
      assert.equal(await metric(w.port, 'lectern_storage_errors_total{kind="poison"}'), 0, 'no poison');
      assert.equal(await metric(w.port, 'lectern_storage_incompatible'), 0);
    } finally {
      await w?.stop();
      if (srv) assert.equal((await srv.stop()).code, 0);
      await rootSql(`DROP DATABASE IF EXISTS ${db}`);
    }
  });

  test('max_allowed_packet below the largest row: not ready until MySQL is given a larger one', async () => {
    const [[orig]] = await rootSql('SELECT @@GLOBAL.max_allowed_packet');
    const cluster = clusterName();
    let w;
    try {
      await rootSql('SET GLOBAL max_allowed_packet = 8388608');
      w = await startWorker({ cluster, ready: false });
      const reason = await staysUnready(w, 2000);
      assert.match(reason, /max_allowed_packet|schema|column/, `the reason says why: ${reason}`);
      assert.ok(w.logs.some((l) => /storage_incompatible/.test(l) && /max_allowed_packet/.test(l) && /8388608/.test(l)),
        `a log line names max_allowed_packet:\n${w.logs.join('\n')}`);
      await rootSql(`SET GLOBAL max_allowed_packet = ${orig}`);
      await waitFor(async () => (await httpGet(w.port, '/readyz')).status === 200, { timeout: 20000, what: 'ready with the larger packet' });
    } finally {
      await rootSql(`SET GLOBAL max_allowed_packet = ${orig}`);
      await w?.stop();
    }
  });
});

describe('storage limits: the server\'s knobs agree with the table', () => {
  function checkConfig(sets) {
    // A budget that holds the largest frames, so that only the knob under
    // test decides.
    const argv = ['--check-config', '--set', 'server.listen=127.0.0.1', '--set', 'limits.conn_memory=1g'];
    for (const [k, v] of Object.entries(sets)) argv.push('--set', `${k}=${v}`);
    return new Promise((resolve) => execFile(serverBin, argv, { timeout: 10000 },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stderr })));
  }

  test('stomp.max_frame may be the largest row, not one byte more; server.id may be as long as the origin column, not longer', async () => {
    assert.equal((await checkConfig({ 'stomp.max_frame': LIMITS.ROW })).code, 0);
    const frame = await checkConfig({ 'stomp.max_frame': LIMITS.ROW + 1 });
    assert.equal(frame.code, 2);
    assert.match(frame.stderr, new RegExp(`stomp\\.max_frame.*out of range.*${LIMITS.ROW}`));
    assert.equal((await checkConfig({ 'server.id': 'o'.repeat(LIMITS.ORIGIN) })).code, 0);
    const id = await checkConfig({ 'server.id': 'o'.repeat(LIMITS.ORIGIN + 1) });
    assert.equal(id.code, 2);
    assert.match(id.stderr, new RegExp(`server\\.id is ${LIMITS.ORIGIN + 1} bytes.*at most ${LIMITS.ORIGIN}`));
    const room = await checkConfig({ 'stomp.max_room_name': LIMITS.ROOM + 1 });
    assert.equal(room.code, 2);
  });
});
