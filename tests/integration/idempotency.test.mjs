// Idempotent sends (docs/protocol.md "Idempotent sends"): a SEND's
// x-idempotency-key, an API publish's Idempotency-Key. Within
// api.idempotency_window_s the same key in the same room from the same
// sender is stored and delivered once, and every RECEIPT (every API answer)
// names the first copy's id. Real servers, a real storage worker, MySQL
// rows counted; RabbitMQ is stopped with SIGSTOP to force a confirm
// timeout, and a server is killed with SIGKILL under client-js.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { LecternClient } from '../../client-js/src/index.js';
import {
  isProbe, metric, probeUntil, rawClient, sleep, sql, startCluster, startHaproxy, startServer, startWorker,
  storageDrained, stompClient, subscribed, waitFor,
} from './helpers.mjs';

const KEY = 'idempotency-api-key-0123456789';
let nextReceipt = 0;

// One SEND over a fresh raw connection as `login`, with a receipt; resolves
// with the RECEIPT or ERROR that answers it (the connection is closed).
async function sendOnce(url, login, headers, body = 'x') {
  const c = await rawClient(url);
  try {
    await c.connect({ 'accept-version': '1.2', host: '/', login });
    const receipt = `r${++nextReceipt}`;
    c.frame('SEND', { receipt, ...headers }, body);
    const f = await waitFor(() => c.frames.find((x) =>
      (x.command === 'RECEIPT' && x.headers['receipt-id'] === receipt) || x.command === 'ERROR'),
    { timeout: 15000, what: `the answer to ${receipt}` });
    return { ...f, receipt, body: f.body?.toString() };
  } finally {
    c.close();
  }
}

// The rows MySQL holds for room (body, id as "<ms>-<n>"), in room order.
async function rows(room) {
  return (await sql(`SELECT body, CONCAT(id_ms, '-', id_n) FROM messages WHERE room = '${room}' ORDER BY seq`))
    .map(([body, id]) => ({ body, id }));
}

async function post(port, urlPath, body, headers = {}) {
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY, ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

// The suite's RabbitMQ (tests/run-integration.sh starts it under LECTERN_VAR_DIR).
function rabbitPid() {
  const dir = process.env.LECTERN_VAR_DIR || path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'var');
  return Number(readFileSync(path.join(dir, 'rabbitmq', 'rabbitmq.pid'), 'utf8').trim());
}

describe('idempotent sends', () => {
  test('the same key twice from one sender: one delivery, one MySQL row, the same id in both RECEIPTs; another sender, room or key is a message of its own', async () => {
    const c = await startCluster({ n: 2 });
    const w = await startWorker({ cluster: c.cluster });
    const room = `idem-${Date.now()}`, other = `${room}-b`;
    let watcher;
    try {
      const [a, b] = c.servers;
      watcher = await stompClient(b.wsUrl, { connectHeaders: { login: 'watcher' } });
      const got = await subscribed(watcher.client, `/topic/${room}`);
      const gotOther = await subscribed(watcher.client, `/topic/${other}`);
      const dest = `/topic/${room}`;
      const first = await sendOnce(a.wsUrl, 'ann', { destination: dest, 'x-idempotency-key': 'k-1' }, 'hello');
      assert.equal(first.command, 'RECEIPT', first.body);
      const id = first.headers['message-id'];
      assert.match(id, /^\d+-\d+$/);
      // The repeat through the other server (a client that failed over), body
      // changed or not: the first copy's id, nothing delivered again.
      const again = await sendOnce(b.wsUrl, 'ann', { destination: dest, 'x-idempotency-key': 'k-1' }, 'hello');
      assert.equal(again.command, 'RECEIPT');
      assert.equal(again.headers['message-id'], id, 'the first copy\'s id');
      const third = await sendOnce(a.wsUrl, 'ann', { destination: dest, 'x-idempotency-key': 'k-1' }, 'hello');
      assert.equal(third.headers['message-id'], id);
      // Independent: another sender with the same key, another room, another key, no key.
      const bob = await sendOnce(a.wsUrl, 'bob', { destination: dest, 'x-idempotency-key': 'k-1' }, 'from bob');
      const elsewhere = await sendOnce(a.wsUrl, 'ann', { destination: `/topic/${other}`, 'x-idempotency-key': 'k-1' }, 'elsewhere');
      const k2 = await sendOnce(a.wsUrl, 'ann', { destination: dest, 'x-idempotency-key': 'k-2' }, 'hello');
      const plain = await sendOnce(a.wsUrl, 'ann', { destination: dest }, 'no key');
      const ids = [id, bob, elsewhere, k2, plain].map((f) => (typeof f === 'string' ? f : f.headers['message-id']));
      assert.equal(new Set(ids).size, 5, 'each its own message');
      // Inside a transaction: the key goes with the SEND on COMMIT.
      for (const n of [1, 2]) {
        const t = await rawClient(a.wsUrl);
        await t.connect({ 'accept-version': '1.2', host: '/', login: 'ann' });
        t.frame('BEGIN', { transaction: 'tx' });
        t.frame('SEND', { destination: dest, transaction: 'tx', 'x-idempotency-key': 'k-tx' }, 'in a transaction');
        t.frame('COMMIT', { transaction: 'tx', receipt: `commit-${n}` });
        await t.waitFrame('RECEIPT');
        t.close();
      }
      // A last message, after all: a duplicate would arrive before it.
      await sendOnce(a.wsUrl, 'ann', { destination: dest }, 'fence');
      await waitFor(() => got.messages.some((m) => m.body === 'fence'), { what: 'the fence' });
      assert.deepEqual(got.messages.map((m) => m.body), ['hello', 'from bob', 'hello', 'no key', 'in a transaction', 'fence']);
      assert.equal(got.messages[0].headers['message-id'], id);
      assert.equal(got.messages[0].headers['x-idempotency-key'], undefined, 'the key is not relayed');
      await gotOther.next(1);
      assert.equal(gotOther.messages[0].headers['message-id'], elsewhere.headers['message-id']);
      // Repeats were counted where they arrived.
      assert.equal(await metric(b.port, 'lectern_idempotent_repeats_total'), 1);
      assert.equal(await metric(a.port, 'lectern_idempotent_repeats_total'), 2);
      // MySQL: one row per message; the repeats' storage copies (same id) add none.
      await storageDrained(c.cluster);
      const stored = await rows(room);
      assert.deepEqual(stored.map((r) => r.body), ['hello', 'from bob', 'hello', 'no key', 'in a transaction', 'fence']);
      assert.equal(stored[0].id, id);
    } finally {
      if (watcher) await watcher.client.deactivate();
      await w.stop();
      await c.stop();
    }
  });

  test('bad keys are refused with ERROR "Invalid x-idempotency-key", in a transaction too; nothing is sent', async () => {
    const s = await startServer();
    const room = `idem-bad-${Date.now()}`;
    let watcher;
    try {
      watcher = await stompClient(s.wsUrl, { connectHeaders: { login: 'watcher' } });
      const got = await subscribed(watcher.client, `/topic/${room}`);
      for (const [what, key] of [['empty', ''], ['129 bytes', 'k'.repeat(129)], ['a space', 'a b'],
        ['not ASCII', 'clé'], ['a control character', 'a\tb']]) {
        const f = await sendOnce(s.wsUrl, 'ann', { destination: `/topic/${room}`, 'x-idempotency-key': key }, what);
        assert.equal(f.command, 'ERROR', what);
        assert.equal(f.headers.message, 'Invalid x-idempotency-key', what);
        assert.equal(f.headers['receipt-id'], f.receipt, what);
        assert.match(f.body, /1 to 128 printable ASCII/, what);
      }
      const ok = await sendOnce(s.wsUrl, 'ann', { destination: `/topic/${room}`, 'x-idempotency-key': 'k'.repeat(128) }, '128 bytes');
      assert.equal(ok.command, 'RECEIPT');
      const t = await rawClient(s.wsUrl);
      await t.connect({ 'accept-version': '1.2', host: '/', login: 'ann' });
      t.frame('BEGIN', { transaction: 'tx' });
      t.frame('SEND', { destination: `/topic/${room}`, transaction: 'tx', 'x-idempotency-key': 'a b', receipt: 'in-tx' }, 'in tx');
      const e = await t.waitFrame('ERROR');
      assert.equal(e.headers.message, 'Invalid x-idempotency-key');
      assert.equal(e.headers['receipt-id'], 'in-tx');
      t.close();
      await sendOnce(s.wsUrl, 'ann', { destination: `/topic/${room}` }, 'fence');
      await waitFor(() => got.messages.some((m) => m.body === 'fence'), { what: 'the fence' });
      assert.deepEqual(got.messages.map((m) => m.body), ['128 bytes', 'fence']);
    } finally {
      if (watcher) await watcher.client.deactivate();
      await s.stop();
    }
  });

  test('after api.idempotency_window_s the key is forgotten: the same key is a new message', async () => {
    const s = await startServer({ sets: { 'api.idempotency_window_s': 1 } });
    const room = `idem-exp-${Date.now()}`;
    try {
      const dest = `/topic/${room}`;
      const f1 = await sendOnce(s.wsUrl, 'ann', { destination: dest, 'x-idempotency-key': 'k' }, 'one');
      const f2 = await sendOnce(s.wsUrl, 'ann', { destination: dest, 'x-idempotency-key': 'k' }, 'one');
      assert.equal(f2.headers['message-id'], f1.headers['message-id'], 'within the window');
      await sleep(1300); // the window is what is tested: 1 s, and a margin
      const f3 = await sendOnce(s.wsUrl, 'ann', { destination: dest, 'x-idempotency-key': 'k' }, 'one');
      assert.equal(f3.command, 'RECEIPT');
      assert.notEqual(f3.headers['message-id'], f1.headers['message-id'], 'a new message after the window');
    } finally {
      await s.stop();
    }
  });

  test('a confirm timeout (RabbitMQ stopped): ERROR "Message not stored" names the SEND; the resend with its key gets the first id, and MySQL holds one row', async () => {
    const s = await startServer({ sets: { 'storage.confirm_timeout_ms': 500 } });
    const w = await startWorker({ cluster: s.cluster });
    const room = `idem-conf-${Date.now()}`;
    const pid = rabbitPid();
    let watcher, stopped = false;
    try {
      watcher = await stompClient(s.wsUrl, { connectHeaders: { login: 'watcher' } });
      const got = await subscribed(watcher.client, `/topic/${room}`);
      process.kill(pid, 'SIGSTOP');
      stopped = true;
      const f1 = await sendOnce(s.wsUrl, 'ann', { destination: `/topic/${room}`, 'x-idempotency-key': 'conf-1' }, 'unsure');
      assert.equal(f1.command, 'ERROR');
      assert.equal(f1.headers.message, 'Message not stored');
      assert.equal(f1.headers['receipt-id'], f1.receipt, 'the ERROR names the SEND');
      // It was delivered (the room log has it) though its storage was not confirmed.
      await waitFor(() => got.messages.length === 1, { what: 'the first copy delivered' });
      const firstId = got.messages[0].headers['message-id'];
      process.kill(pid, 'SIGCONT');
      stopped = false;
      await waitFor(async () => (await fetch(`http://127.0.0.1:${s.port}/readyz`)).status === 200,
        { timeout: 30000, what: 'the server ready again' });
      const f2 = await waitFor(async () => {
        const f = await sendOnce(s.wsUrl, 'ann', { destination: `/topic/${room}`, 'x-idempotency-key': 'conf-1' }, 'unsure');
        return f.command === 'RECEIPT' ? f : null;         // the bus may still be reconnecting
      }, { timeout: 30000, interval: 200, what: 'the resend confirmed' });
      assert.equal(f2.headers['message-id'], firstId);
      await sendOnce(s.wsUrl, 'ann', { destination: `/topic/${room}` }, 'fence');
      await waitFor(() => got.messages.some((m) => m.body === 'fence'), { what: 'the fence' });
      assert.deepEqual(got.messages.map((m) => m.body), ['unsure', 'fence']);
      await storageDrained(s.cluster);
      const stored = await rows(room);
      assert.deepEqual(stored.map((x) => x.body), ['unsure', 'fence'], 'one row for the message sent twice');
      assert.equal(stored[0].id, firstId);
    } finally {
      if (stopped) process.kill(pid, 'SIGCONT');
      if (watcher) await watcher.client.deactivate();
      await w.stop();
      await s.stop();
    }
  });

  test('the server is killed (SIGKILL) while a client-js send waits for its confirm: the client resends through the other server, send() resolves once with the first id, MySQL holds one row', async () => {
    const c = await startCluster({ n: 2 });
    const w = await startWorker({ cluster: c.cluster });
    const lb = await startHaproxy(c.servers.map((s) => s.port));
    const room = `idem-kill-${Date.now()}`;
    const pid = rabbitPid();
    const client = new LecternClient(lb.wsUrl, {
      WebSocket, login: 'ann', reconnect: { base: 100, cap: 1000 }, heartbeat: { outgoing: 0, incoming: 0 },
    });
    client.on('error', () => {});
    const watchers = [];
    let stopped = false;
    try {
      await client.connect();
      const count = async (i) => metric(c.servers[i].port, 'lectern_connections');
      await waitFor(async () => (await count(0)) + (await count(1)) === 1, { what: 'the client connected' });
      const victim = (await count(0)) === 1 ? 0 : 1, survivor = 1 - victim;
      const watch = async (i) => {
        const cl = await stompClient(c.servers[i].wsUrl, { connectHeaders: { login: `watcher${i}` } });
        watchers.push(cl);
        return subscribed(cl.client, `/topic/${room}`);
      };
      const onVictim = await watch(victim), onSurvivor = await watch(survivor);
      const r = client.join(room, { presence: false });
      let probed = 0;
      r.on('message', (m) => { if (isProbe(m.body)) probed++; });
      await probeUntil((b) => r.send(b), () => probed > 0, { what: 'the client\'s room ready' });
      // RabbitMQ stops: the SEND is in the room log and delivered on its
      // server, but its storage confirm cannot come; then the server dies.
      process.kill(pid, 'SIGSTOP');
      stopped = true;
      let settled = 0;
      const sent = r.send('exactly once').finally(() => settled++);
      await waitFor(() => onVictim.messages.some((m) => m.body === 'exactly once'), { what: 'delivered on the victim' });
      const firstId = onVictim.messages.find((m) => m.body === 'exactly once').headers['message-id'];
      c.servers[victim].proc.kill('SIGKILL');
      await c.servers[victim].waitExit();
      process.kill(pid, 'SIGCONT');
      stopped = false;
      assert.equal(await sent, firstId, 'send() resolves with the first copy\'s id');
      await sleep(200); // a second settlement would come now: none may (checked below)
      assert.equal(settled, 1);
      // The survivor's watcher: the message once (a fence through the survivor follows it).
      const fence = await r.send('fence');
      assert.match(fence, /^\d+-\d+$/);
      await waitFor(() => onSurvivor.messages.some((m) => m.body === 'fence'), { timeout: 15000, what: 'the fence' });
      assert.equal(onSurvivor.messages.filter((m) => m.body === 'exactly once').length, 1);
      await storageDrained(c.cluster);
      const stored = (await rows(room)).filter((x) => !isProbe(x.body));
      assert.deepEqual(stored, [{ body: 'exactly once', id: firstId }, { body: 'fence', id: fence }]);
    } finally {
      if (stopped) process.kill(pid, 'SIGCONT');
      client.disconnect();
      for (const cl of watchers) await cl.client.deactivate().catch(() => {});
      await lb.stop();
      await w.stop();
      await c.stop();
    }
  });

  test('the API\'s Idempotency-Key: the same id twice ("duplicate": true), one row; per room for a broadcast; a bad key is a 400', async () => {
    const c = await startCluster({ n: 1, sets: { 'api.keys': KEY } });
    const w = await startWorker({ cluster: c.cluster });
    const room = `idem-api-${Date.now()}`, other = `${room}-b`;
    try {
      const [a] = c.servers;
      const url = `/api/rooms/${room}/messages`;
      const p1 = await post(a.port, url, { body: 'quiz' }, { 'idempotency-key': 'lms-1' });
      assert.equal(p1.status, 200, JSON.stringify(p1.json));
      assert.equal(p1.json.duplicate, undefined);
      const p2 = await post(a.port, url, { body: 'quiz' }, { 'idempotency-key': 'lms-1' });
      assert.equal(p2.status, 200);
      assert.deepEqual(p2.json, { room, id: p1.json.id, duplicate: true });
      // The sender is part of it: on behalf of a user, the same key is another message.
      const p3 = await post(a.port, url, { body: 'quiz', sender: 'prof' }, { 'idempotency-key': 'lms-1' });
      assert.notEqual(p3.json.id, p1.json.id);
      // Broadcast: per room; the room already holding the key answers with its first id.
      const b1 = await post(a.port, '/api/broadcast', { rooms: [room, other], body: 'quiz' }, { 'idempotency-key': 'lms-1' });
      assert.equal(b1.status, 200);
      assert.deepEqual(b1.json.messages, [{ room, id: p1.json.id, duplicate: true }, { room: other, id: b1.json.messages[1].id }]);
      const b2 = await post(a.port, '/api/broadcast', { rooms: [room, other], body: 'quiz' }, { 'idempotency-key': 'lms-1' });
      assert.deepEqual(b2.json.messages.map((m) => m.id), [p1.json.id, b1.json.messages[1].id]);
      for (const bad of ['a b', 'k'.repeat(129), 'é']) {
        const r = await fetch(`http://127.0.0.1:${a.port}${url}`, { method: 'POST',
          headers: { 'x-api-key': KEY, 'idempotency-key': Buffer.from(bad).toString('latin1') }, body: '{"body":"x"}' });
        assert.equal(r.status, 400, bad);
        assert.match((await r.json()).error, /Idempotency-Key/);
      }
      await storageDrained(c.cluster);
      assert.deepEqual((await rows(room)).map((x) => x.body), ['quiz', 'quiz']);   // system's, prof's
      assert.deepEqual((await rows(other)).map((x) => x.body), ['quiz']);
    } finally {
      await w.stop();
      await c.stop();
    }
  });
});
