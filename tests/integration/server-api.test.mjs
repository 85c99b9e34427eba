// The server API's read routes for a platform's backend (server/http_admin.c,
// docs/api.md): GET /api/rooms (live rooms, cluster-wide, paged) and
// GET /api/users/<id>/sessions (where a user is connected), with
// server-to-server keys only. Two servers, real stompjs clients.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startServer, stompClient, subscribed, waitFor } from './helpers.mjs';

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
    } finally {
      for (const cl of clients) await cl.client.deactivate();
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
    } finally {
      await s.stop();
    }
  });
});
