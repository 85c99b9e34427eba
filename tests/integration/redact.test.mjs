// Redaction (server/redact.c, server/http_redact.c, docs/api.md "Redact"):
// DELETE /api/rooms/<room>/messages/<id> turns a message into a tombstone
// in the Redis room log and in MySQL, and publishes a redaction event
// (x-redacts) to the room. Two servers, real stompjs clients, a real
// storage worker.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  collector, expectReceipt, httpGet, sql, startCluster, startServer, startWorker, stompClient,
  subscribed, waitFor,
} from './helpers.mjs';

const KEY = 'redact-api-key-0123456789abcdef';
const redis = (...args) => execFileSync('redis-cli',
  ['-p', String(process.env.LECTERN_REDIS_PORT || 6390), '--raw', ...args]).toString();

async function redact(port, room, id, { body, headers = { 'x-api-key': KEY } } = {}) {
  const init = { method: 'DELETE', headers: { ...headers } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const res = await fetch(`http://127.0.0.1:${port}/api/rooms/${room}/messages/${id}`, init);
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

async function history(port, room) {
  const r = await httpGet(port, `/api/rooms/${room}/messages?limit=100`);
  assert.equal(r.status, 200, r.text);
  return { json: JSON.parse(r.text), text: r.text };
}

async function send(client, room, body, headers = {}) {
  const id = `r-${Math.random().toString(36).slice(2)}`;
  const receipt = expectReceipt(client, id);
  client.publish({ destination: `/topic/${room}`, body, headers: { ...headers, receipt: id } });
  return receipt;
}

describe('redaction', () => {
  test('DELETE .../messages/<id>: live x-redacts on both servers, tombstones in history from Redis and MySQL and in a resume, repeat, 404, 400, 401/403, no forgery', async () => {
    const c = await startCluster({ n: 2, sets: { 'api.keys': KEY } });
    const w = await startWorker({ cluster: c.cluster });
    const room = `red-${Date.now()}`;
    const clients = [];
    const connect = async (srv, login) => {
      const cl = await stompClient(srv.wsUrl, { connectHeaders: { login } });
      clients.push(cl);
      return cl.client;
    };
    let off;
    try {
      const [a, b] = c.servers;
      const la = await subscribed(await connect(a, 'listener-a'), `/topic/${room}`);
      const lb = await subscribed(await connect(b, 'listener-b'), `/topic/${room}`);
      const sender = await connect(a, 'ada');
      await send(sender, room, 'first');
      await send(sender, room, 'the secret', { 'content-type': 'text/plain', 'x-kind': 'chat' });
      await send(sender, room, 'third');
      const [m1, m2, m3] = await la.next(3);
      await lb.next(3);
      assert.equal(m2.body, 'the secret');
      const id2 = m2.headers['message-id'];

      // The redaction, asked on the other server, by a named user.
      const r = await redact(b.port, room, id2, { body: { by: 'prof-x' } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.room, room);
      assert.equal(r.json.id, id2);
      assert.equal(r.json.redacted_by, 'prof-x');
      assert.match(r.json.redaction_id, /^\d+-\d+$/);
      assert.ok(Math.abs(r.json.redacted_at - Date.now()) < 60000);

      // Live: every subscriber, on both servers, gets the event.
      for (const l of [la, lb]) {
        const ev = (await l.next(4))[3];
        assert.equal(ev.headers['x-redacts'], id2);
        assert.equal(ev.headers['x-redacted-by'], 'prof-x');
        assert.equal(ev.headers['x-redacted-at'], String(r.json.redacted_at));
        assert.equal(ev.headers['message-id'], r.json.redaction_id);
        assert.equal(ev.body, '');
      }

      // History from the Redis log: the tombstone in place, the event at its own.
      const expectTomb = (msg, by = 'prof-x', at = r.json.redacted_at) => {
        assert.equal(msg.body, '');
        assert.equal(msg.content_type, null);
        assert.deepEqual(msg.redacted, { by, at });
        assert.deepEqual(msg.headers, { 'x-redacted-by': by, 'x-redacted-at': String(at) });
        assert.equal(msg.sender, 'ada');
      };
      let h = await history(a.port, room);
      assert.deepEqual(h.json.messages.map((m) => m.id),
        [m1.headers['message-id'], id2, m3.headers['message-id'], r.json.redaction_id]);
      expectTomb(h.json.messages[1]);
      assert.equal(h.json.messages[0].body, 'first');
      assert.equal(h.json.messages[0].redacted, undefined);
      assert.equal(h.json.messages[3].headers['x-redacts'], id2);
      assert.equal(h.json.messages[3].redacted, undefined);
      assert.ok(!h.text.includes('secret'));

      // A resume from before the redacted message: its tombstone, never the body.
      const rc = await connect(b, 'late');
      const resumed = collector(rc, `/topic/${room}`, { 'x-since': m1.headers['message-id'] });
      const rs = await resumed.next(3);
      assert.deepEqual(rs.map((m) => m.headers['message-id']), [id2, m3.headers['message-id'], r.json.redaction_id]);
      assert.equal(rs[0].body, '');
      assert.equal(rs[0].headers['x-redacted-by'], 'prof-x');
      assert.equal(rs[0].headers['x-kind'], undefined);
      assert.equal(rs[0].headers['content-type'], undefined);
      assert.equal(rs[2].headers['x-redacts'], id2);

      // A repeat: 200, already, no new event (the next message is a plain one).
      const again = await redact(a.port, room, id2);
      assert.equal(again.status, 200, again.text);
      assert.deepEqual(again.json, { room, id: id2, already: true, redacted_by: 'prof-x', redacted_at: r.json.redacted_at });
      // A redaction event is not itself redactable: 404, nothing changes.
      assert.equal((await redact(a.port, room, r.json.redaction_id)).status, 404);
      await send(sender, room, 'after');
      const m5 = (await la.next(5))[4];
      assert.equal(m5.body, 'after');

      // MySQL: the row is the tombstone, the event a row of its own.
      await waitFor(async () => Number((await sql(`SELECT COUNT(*) FROM messages WHERE room = '${room}'`))[0][0]) === 5,
        { timeout: 15000, what: 'five rows in MySQL' });
      const [idMs, idN] = id2.split('-');
      assert.deepEqual(await sql(`SELECT body, content_type IS NULL, headers, sender FROM messages WHERE room = '${room}' AND id_ms = ${idMs} AND id_n = ${idN}`),
        [['', '1', `x-redacted-by:prof-x\\nx-redacted-at:${r.json.redacted_at}\\n`, 'ada']]);

      // History from MySQL alone: the room's log gone (as when it expires).
      redis('DEL', `${c.cluster}:room:{${room}}:log`);
      h = await history(b.port, room);
      assert.equal(h.json.messages.length, 5);
      expectTomb(h.json.messages[1]);
      assert.equal(h.json.messages[3].headers['x-redacts'], id2);
      assert.ok(!h.text.includes('secret'));

      // Nor is an event only MySQL holds.
      assert.equal((await redact(a.port, room, r.json.redaction_id)).status, 404);

      // A message only MySQL holds: redacted in place, with an event.
      const id3 = m3.headers['message-id'];
      const r3 = await redact(a.port, room, id3);
      assert.equal(r3.status, 200, r3.text);
      assert.equal(r3.json.redacted_by, 'system');
      const ev3 = (await lb.next(6))[5];
      assert.equal(ev3.headers['x-redacts'], id3);
      assert.equal(ev3.headers['message-id'], r3.json.redaction_id);
      h = await history(a.port, room);
      expectTomb(h.json.messages.find((m) => m.id === id3), 'system', r3.json.redacted_at);
      assert.ok(!h.text.includes('third'));
      const again3 = await redact(b.port, room, id3);
      assert.deepEqual(again3.json, { room, id: id3, already: true, redacted_by: 'system', redacted_at: r3.json.redacted_at });

      // Unknown id: 404. Bad input: 400. Keys: 401.
      assert.equal((await redact(a.port, room, '1-1')).status, 404);
      assert.equal((await redact(a.port, `${room}-none`, id2)).status, 404);
      for (const [rm, id, body] of [[room, 'abc', undefined], [room, '12-x', undefined], ['a%20b', id2, undefined],
        [room, id2, { by: 'a,b' }], [room, id2, { by: 7 }], [room, id2, '[1]'], [room, id2, 'not json']]) {
        const bad = await redact(a.port, rm, id, { body });
        assert.equal(bad.status, 400, `${rm} ${id} ${JSON.stringify(body)}: ${bad.text}`);
        assert.ok(bad.json.error);
      }
      assert.equal((await redact(a.port, room, id2, { headers: {} })).status, 401);
      assert.equal((await redact(a.port, room, id2, { headers: { 'x-api-key': 'wrong-key-0123456789abcdef' } })).status, 401);
      assert.equal((await redact(a.port, room, id2, { headers: { authorization: `Bearer ${KEY}` } })).json.already, true);
      off = await startServer({ cluster: c.cluster });
      assert.equal((await redact(off.port, room, id2)).status, 403);

      // A SEND cannot forge a redaction: its x-redact* headers are dropped.
      const id1 = m1.headers['message-id'];
      await send(sender, room, 'forged', { 'x-redacts': id1, 'x-redacted-by': 'mallory', 'x-redacted-at': '1' });
      const forged = (await la.next(7))[6];
      assert.equal(forged.body, 'forged');
      assert.equal(forged.headers['x-redacts'], undefined);
      assert.equal(forged.headers['x-redacted-by'], undefined);
      h = await history(a.port, room);
      const first = h.json.messages.find((m) => m.id === id1);
      assert.equal(first.body, 'first');
      assert.equal(first.redacted, undefined);
      assert.equal(h.json.messages.at(-1).redacted, undefined);
    } finally {
      for (const cl of clients) await cl.client.deactivate();
      if (off) await off.stop();
      await w.stop();
      await c.stop();
    }
  });

  test('a redaction while Redis is unreachable answers 503 with a reason', async () => {
    // Its own Redis port with nothing there: the server never registers.
    const s = await startServer({ ready: false, sets: { 'api.keys': KEY, 'redis.port': 1 } });
    try {
      const r = await redact(s.port, 'room-x', '1-1');
      assert.equal(r.status, 503, r.text);
      assert.match(r.json.error, /Redis/);
    } finally {
      await s.stop();
    }
  });
});
