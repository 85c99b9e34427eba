// The server API for a platform's backend (docs/api.md): GET /api/rooms
// (live rooms, cluster-wide, paged) and GET /api/users/<id>/sessions (where
// a user is connected) (server/http_admin.c), POST /api/rooms/<room>/messages
// (server/http_publish.c), with server-to-server keys only. Two servers,
// real stompjs clients, a real storage worker.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { metric, sql, startCluster, startServer, startWorker, stompClient, subscribed, waitFor } from './helpers.mjs';

const KEY = 'server-api-key-0123456789abcdef';

async function get(port, urlPath, headers = { 'x-api-key': KEY }) {
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, { headers });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json };
}

describe('server API: rooms and sessions', () => {
  test('rooms cluster-wide with member counts, in pages; a user\'s sessions over two servers; keys required', async () => {
    const c = await startCluster({ n: 2, sets: { 'api.keys': `${KEY},second-key-0123456789abcdef` } });
    const clients = [];
    try {
      const [a, b] = c.servers;
      const join = async (srv, login, rooms) => {
        const cl = await stompClient(srv.wsUrl, { connectHeaders: { login } });
        clients.push(cl);
        for (const r of rooms) await subscribed(cl.client, `/topic/${r}`);
        return cl;
      };
      // ada: two connections (A and B); bob on B; cleo on A.
      await join(a, 'ada', ['alpha', 'beta']);
      await join(b, 'ada', ['alpha']);
      await join(b, 'bob', ['alpha', 'gamma']);
      await join(a, 'cleo', ['beta']);

      const all = await get(a.port, '/api/rooms');
      assert.equal(all.status, 200);
      assert.deepEqual(all.json, {
        rooms: [
          { room: 'alpha', members: 2, servers: 2 },
          { room: 'beta', members: 2, servers: 1 },
          { room: 'gamma', members: 1, servers: 1 },
        ],
        next: null,
      });
      // Pages: limit=2, then after=<next>; the same answer from the other server.
      const p1 = await get(b.port, '/api/rooms?limit=2', { authorization: 'Bearer second-key-0123456789abcdef' });
      assert.equal(p1.status, 200);
      assert.deepEqual(p1.json.rooms.map((r) => r.room), ['alpha', 'beta']);
      assert.equal(p1.json.next, 'beta');
      const p2 = await get(b.port, `/api/rooms?limit=2&after=${p1.json.next}`);
      assert.deepEqual(p2.json, { rooms: [{ room: 'gamma', members: 1, servers: 1 }], next: null });

      const ada = await get(b.port, '/api/users/ada/sessions');
      assert.equal(ada.status, 200);
      assert.equal(ada.json.user, 'ada');
      assert.equal(ada.json.online, true);
      assert.equal(ada.json.connections, 2);
      assert.deepEqual(ada.json.servers.map((s) => [s.server, s.connections]).sort(),
        [[`${c.cluster}-s1`, 1], [`${c.cluster}-s2`, 1]]);
      assert.deepEqual(ada.json.rooms.sort(), ['alpha', 'beta']);
      const nobody = await get(a.port, '/api/users/nobody/sessions');
      assert.deepEqual(nobody.json, { user: 'nobody', online: false, connections: 0, servers: [], rooms: [] });

      // A room goes from the list with its last member.
      await clients[2].client.deactivate();
      await waitFor(async () => (await get(a.port, '/api/rooms')).json.rooms.every((r) => r.room !== 'gamma'),
        { what: 'gamma gone from /api/rooms' });
      const bob = await get(a.port, '/api/users/bob/sessions');
      assert.equal(bob.json.online, false);

      // Keys: none, a wrong one, a bearer JWT-looking value: 401; bad arguments: 400.
      assert.equal((await get(a.port, '/api/rooms', {})).status, 401);
      assert.equal((await get(a.port, '/api/rooms', { 'x-api-key': 'wrong-key-0123456789abcdef' })).status, 401);
      assert.equal((await get(a.port, '/api/users/ada/sessions', { authorization: 'Bearer eyJhbGciOi.x.y' })).status, 401);
      for (const q of ['limit=0', 'limit=abc', 'limit=1001', 'after=no%20spaces'])
        assert.equal((await get(a.port, `/api/rooms?${q}`)).status, 400, q);
      assert.equal((await get(a.port, '/api/users/a%01b/sessions')).status, 400);
      assert.equal((await get(a.port, '/api/users/ada/elsewhere')).status, 404);

      // The server API's own metrics and log lines (apilog.c): by route and status.
      assert.ok(await metric(a.port, 'lectern_api_requests_total{route="rooms",code="200"}') >= 2);
      assert.equal(await metric(a.port, 'lectern_api_requests_total{route="rooms",code="401"}'), 2);
      assert.equal(await metric(a.port, 'lectern_api_requests_total{route="rooms",code="400"}'), 4);
      assert.equal(await metric(a.port, 'lectern_api_requests_total{route="sessions",code="401"}'), 1);
      assert.equal(await metric(b.port, 'lectern_api_requests_total{route="sessions",code="200"}'), 1);
      assert.equal(await metric(b.port, 'lectern_api_requests_total{route="rooms",code="401"}'), 0);
      assert.ok(await metric(a.port, 'lectern_api_request_seconds_count') >= 10);
      await waitFor(() => a.logs.some((l) => /event=api_request route=rooms method=GET status=401 ms=[\d.]+ peer=127\.0\.0\.1/.test(l)),
        { what: 'an api_request log line' });
    } finally {
      for (const cl of clients) await cl.client.deactivate();
      await c.stop();
    }
  });

  test('POST /api/rooms/<room>/messages: stored, then answered with its id; delivered on every server with the sender the backend set; bad requests refused', async () => {
    const c = await startCluster({ n: 2, sets: { 'api.keys': KEY, 'api.max_body': '2k', 'api.broadcast_max': 3 } });
    const w = await startWorker({ cluster: c.cluster });
    const post = async (port, room, body, headers = { 'x-api-key': KEY }, urlPath = `/api/rooms/${room}/messages`) => {
      const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, {
        method: 'POST', headers: { 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let json = null;
      try { json = JSON.parse(text); } catch { /* not JSON */ }
      return { status: res.status, json };
    };
    const room = `api-${Date.now()}`;
    let cl;
    try {
      const [a, b] = c.servers;
      cl = await stompClient(b.wsUrl, { connectHeaders: { login: 'listener' } });
      const got = await subscribed(cl.client, `/topic/${room}`);
      // As the system (the defaults), then on behalf of an instructor.
      const r1 = await post(a.port, room, { body: 'The quiz starts now' });
      assert.equal(r1.status, 200, JSON.stringify(r1.json));
      assert.equal(r1.json.room, room);
      assert.match(r1.json.id, /^\d+-\d+$/);
      const r2 = await post(a.port, room, { body: '{"q":1}', content_type: 'application/json',
        sender: 'prof-x', sender_name: 'Prof. X', sender_role: 'instructor', headers: { 'x-kind': 'quiz' } });
      assert.equal(r2.status, 200, JSON.stringify(r2.json));
      const [m1, m2] = await got.next(2);
      assert.equal(m1.headers['message-id'], r1.json.id);
      assert.equal(m1.body, 'The quiz starts now');
      assert.equal(m1.headers.sender, 'system');
      assert.equal(m1.headers['sender-role'], 'system');
      assert.equal(m2.headers['message-id'], r2.json.id);
      assert.equal(m2.headers.sender, 'prof-x');
      assert.equal(m2.headers['sender-name'], 'Prof. X');
      assert.equal(m2.headers['sender-role'], 'instructor');
      assert.equal(m2.headers['x-kind'], 'quiz');
      assert.equal(m2.headers['content-type'], 'application/json');
      // The 200 came after the storage confirm: the worker writes both rows.
      await waitFor(async () => Number((await sql(`SELECT COUNT(*) FROM messages WHERE room = '${room}'`))[0][0]) === 2,
        { timeout: 15000, what: 'both rows in MySQL' });
      assert.deepEqual(await sql(`SELECT sender, body FROM messages WHERE room = '${room}' ORDER BY seq`),
        [['system', 'The quiz starts now'], ['prof-x', '{"q":1}']]);

      // A broadcast: one message per room, each with its own id, in the rooms' order.
      const other = `${room}-b`;
      const got2 = await subscribed(cl.client, `/topic/${other}`);
      const bc = await post(a.port, '', { rooms: [other, room], body: 'Lecture ends in 5 minutes' }, undefined, '/api/broadcast');
      assert.equal(bc.status, 200, JSON.stringify(bc.json));
      assert.deepEqual(bc.json.messages.map((m) => m.room), [other, room]);
      const [o1] = await got2.next(1);
      const [, , m3] = await got.next(3);
      assert.equal(o1.headers['message-id'], bc.json.messages[0].id);
      assert.equal(m3.headers['message-id'], bc.json.messages[1].id);
      assert.equal(o1.body, 'Lecture ends in 5 minutes');
      for (const [what, body] of [['no rooms', { body: 'x' }], ['empty rooms', { rooms: [], body: 'x' }],
        ['a room twice', { rooms: ['r1', 'r1'], body: 'x' }], ['a bad room', { rooms: ['a b'], body: 'x' }],
        ['over api.broadcast_max', { rooms: ['r1', 'r2', 'r3', 'r4'], body: 'x' }]]) {
        const r = await post(a.port, '', body, undefined, '/api/broadcast');
        assert.equal(r.status, 400, what);
        assert.ok(r.json.error, what);
      }
      assert.equal((await post(a.port, '', { rooms: [room], body: 'x' }, {}, '/api/broadcast')).status, 401);

      // Refusals, each with a reason; nothing more is delivered.
      assert.equal((await post(a.port, room, { body: 'x' }, {})).status, 401);
      assert.equal((await post(a.port, room, { body: 'x' }, { 'x-api-key': 'wrong-key-0123456789abcdef' })).status, 401);
      for (const [what, body] of [['not JSON', '{'], ['no body', { text: 'x' }], ['body not a string', { body: 1 }],
        ['bad role', { body: 'x', sender_role: 'root' }], ['bad sender', { body: 'x', sender: 'a,b' }],
        ['header not a string', { body: 'x', headers: { a: 1 } }]]) {
        const r = await post(a.port, room, body);
        assert.equal(r.status, 400, what);
        assert.ok(r.json.error, what);
      }
      assert.equal((await post(a.port, 'no%20room', { body: 'x' })).status, 400);
      assert.equal((await post(a.port, room, { body: 'x'.repeat(3000) })).status, 413);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(got.messages.length, 3);
      assert.equal(got2.messages.length, 1);
    } finally {
      if (cl) await cl.client.deactivate();
      await w.stop();
      await c.stop();
    }
  });

  test('with api.keys empty the server API is off: 403, whatever the request carries', async () => {
    const s = await startServer();
    try {
      const r = await get(s.port, '/api/rooms');
      assert.equal(r.status, 403);
      assert.match(r.json.error, /api\.keys is empty/);
      assert.equal((await get(s.port, '/api/users/ada/sessions')).status, 403);
      const p = await fetch(`http://127.0.0.1:${s.port}/api/rooms/r/messages`, { method: 'POST', body: '{"body":"x"}' });
      assert.equal(p.status, 403);
    } finally {
      await s.stop();
    }
  });
});
