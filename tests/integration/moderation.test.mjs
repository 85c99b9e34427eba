// Kick, ban, mute (server/moderation.c, server/session_moderation.c,
// server/http_moderation.c; docs/api.md "Kick, ban, mute", docs/protocol.md
// "Kicked and banned"): POST /api/rooms/<room>/{kick,ban,unban,mute,unmute}
// and GET /api/rooms/<room>/moderation on two servers, with real stompjs
// clients of one user connected to both.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  expectReceipt, httpGet, metric, sleep, startCluster, startServer, stompClient, subscribed,
  waitFor,
} from './helpers.mjs';

const KEY = 'moderation-api-key-0123456789abcdef';

async function act(port, room, action, body, { headers = { 'x-api-key': KEY } } = {}) {
  const init = { method: 'POST', headers: { ...headers } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const res = await fetch(`http://127.0.0.1:${port}/api/rooms/${room}/${action}`, init);
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

async function listing(port, room, headers = { 'x-api-key': KEY }) {
  const r = await httpGet(port, `/api/rooms/${room}/moderation`, { headers });
  let json = null;
  try { json = JSON.parse(r.text); } catch { /* not JSON */ }
  return { status: r.status, json, text: r.text };
}

// A client whose ERROR frames (after CONNECTED) are kept in `errors`.
async function connect(srv, login, clients) {
  const cl = await stompClient(srv.wsUrl, { connectHeaders: { login } });
  clients.push(cl);
  const errors = [];
  cl.client.onStompError = (f) => errors.push(f);
  return { client: cl.client, errors };
}

async function send(client, room, body) {
  const id = `r-${Math.random().toString(36).slice(2)}`;
  const receipt = expectReceipt(client, id);
  client.publish({ destination: `/topic/${room}`, body, headers: { receipt: id } });
  return receipt;
}

// The control MESSAGE that ended a subscription.
function assertControl(m, { type, room, reason, by, subId }) {
  assert.equal(m.headers['x-lectern-event'], type);
  assert.equal(m.headers.destination, `/topic/${room}`);
  assert.equal(m.headers.subscription, subId);
  assert.equal(m.headers['x-reason'], reason);
  assert.equal(m.headers['x-by'], by);
  assert.match(m.headers['message-id'], new RegExp(`^${type}-\\d+$`));
  const body = JSON.parse(m.body);
  assert.equal(body.type, type);
  assert.equal(body.room, room);
  assert.equal(body.reason, reason);
  assert.equal(body.by, by);
  return body;
}

// After a marker message reached `listener`, none of `quiet` got more than `n`.
async function nothingMore(sender, listener, room, quiet, n, marker) {
  const before = listener.messages.length;
  await send(sender, room, marker);
  await listener.next(before + 1);
  await sleep(150);
  for (const q of quiet) {
    assert.equal(q.messages.length, n, `${marker}: ${q.messages.map((m) => m.body).join(' | ')}`);
    assert.ok(!q.messages.some((m) => m.body === marker), `${marker} reached a removed subscription`);
  }
}

describe('moderation', () => {
  test('kick and ban reach the user on both servers; a ban refuses SUBSCRIBE and SEND until it ends; unban lifts it', async () => {
    const c = await startCluster({ n: 2, sets: { 'api.keys': KEY } });
    const room = `mod-${Date.now()}`;
    const other = `${room}-other`;
    const clients = [];
    try {
      const [a, b] = c.servers;
      const prof = await connect(a, 'prof', clients);
      const listen = await subscribed(prof.client, `/topic/${room}`);
      const stuA = await connect(a, 'stu', clients);
      const stuOnB = await connect(b, 'stu', clients);
      const sa = await subscribed(stuA.client, `/topic/${room}`);
      const sb = await subscribed(stuOnB.client, `/topic/${room}`);
      const sOther = await subscribed(stuA.client, `/topic/${other}`);
      await send(prof.client, room, 'hello');
      await sa.next(1);
      await sb.next(1);

      // Kick, asked on B: both of stu's subscriptions end with the control MESSAGE.
      const k = await act(b.port, room, 'kick', { user: 'stu', reason: 'off topic' });
      assert.equal(k.status, 200, k.text);
      assert.equal(k.json.room, room);
      assert.equal(k.json.user, 'stu');
      assert.equal(k.json.action, 'kick');
      assert.equal(k.json.by, 'system');
      assert.ok(Math.abs(k.json.at - Date.now()) < 60000);
      for (const s of [sa, sb]) {
        const m = (await s.next(2))[1];
        assertControl(m, { type: 'kicked', room, reason: 'off topic', by: 'system', subId: s.sub.id });
      }
      await nothingMore(prof.client, listen, room, [sa, sb], 2, 'after the kick');
      // Other rooms and other users go on.
      await send(prof.client, other, 'elsewhere');
      await sOther.next(1);
      // The kicked subscription is still known: UNSUBSCRIBE is receipted, not an ERROR.
      const unsub = expectReceipt(stuA.client, 'unsub-kicked');
      sa.sub.unsubscribe({ receipt: 'unsub-kicked' });
      await unsub;
      assert.deepEqual(stuA.errors, []);
      // A kicked user may come back.
      const back = await subscribed(stuA.client, `/topic/${room}`);
      await send(prof.client, room, 'welcome back');
      assert.equal((await back.next(1))[0].body, 'welcome back');
      assert.equal(await metric(b.port, 'lectern_moderation_actions_total{action="kick"}'), 1);
      for (const srv of [a, b])
        assert.equal(await metric(srv.port, 'lectern_moderation_ended_subscriptions_total'), 1);

      // A ban of 2 s, asked on A: ends stu's subscriptions (the new one on A,
      // the kicked-but-known one on B is not ended twice), refuses the rest.
      const sb2 = await subscribed(stuOnB.client, `/topic/${room}`, { id: 'again-b' });
      const ban = await act(a.port, room, 'ban', { user: 'stu', duration_s: 2, reason: 'spam', by: 'prof' });
      assert.equal(ban.status, 200, ban.text);
      assert.equal(ban.json.action, 'ban');
      assert.equal(ban.json.by, 'prof');
      assert.ok(ban.json.until > Date.now() && ban.json.until < Date.now() + 5000, ban.text);
      const control = async (s) => {
        await waitFor(() => s.messages.some((x) => x.headers['x-lectern-event']), { what: 'a control MESSAGE' });
        assert.ok(s.messages.at(-1).headers['x-lectern-event'], 'the control MESSAGE is the last');
        return s.messages.at(-1);
      };
      for (const s of [back, sb2]) {
        const m = await control(s);
        const body = assertControl(m, { type: 'banned', room, reason: 'spam', by: 'prof', subId: s.sub.id });
        assert.equal(body.until, ban.json.until);
        assert.equal(m.headers['x-until'], String(ban.json.until));
      }
      assert.equal(sb.messages.length, 2);
      await nothingMore(prof.client, listen, room, [back], 2, 'after the ban');
      assert.equal(sb2.messages.length, 1);
      const l = await listing(b.port, room);
      assert.equal(l.status, 200, l.text);
      assert.deepEqual(l.json, {
        room, mutes: [],
        bans: [{ user: 'stu', until: ban.json.until, reason: 'spam', by: 'prof', at: ban.json.at }],
      });

      // While it lasts: SUBSCRIBE refused (ERROR Banned), SEND refused (ERROR Banned).
      const subTry = await connect(b, 'stu', clients);
      const got = [];
      subTry.client.subscribe(`/topic/${room}`, (m) => got.push(m));
      await waitFor(() => subTry.errors.length, { what: 'ERROR Banned on SUBSCRIBE' });
      assert.equal(subTry.errors[0].headers.message, 'Banned');
      assert.match(subTry.errors[0].body, /until/);
      assert.deepEqual(got, []);
      const sendTry = await connect(a, 'stu', clients);
      sendTry.client.publish({ destination: `/topic/${room}`, body: 'let me in' });
      await waitFor(() => sendTry.errors.length, { what: 'ERROR Banned on SEND' });
      assert.equal(sendTry.errors[0].headers.message, 'Banned');
      assert.ok(await metric(b.port, 'lectern_moderation_banned_subscribes_total') >= 1);

      // After it ends: both work again (the listing no longer shows it).
      await waitFor(() => Date.now() > ban.json.until + 50, { timeout: 5000, what: 'the ban to end' });
      const after = await connect(b, 'stu', clients);
      const sAfter = await subscribed(after.client, `/topic/${room}`);
      await send(after.client, room, 'I am back');
      assert.equal((await sAfter.next(1))[0].body, 'I am back');
      assert.deepEqual((await listing(a.port, room)).json, { room, bans: [], mutes: [] });

      // A ban without end, lifted by unban.
      const forever = await act(b.port, room, 'ban', { user: 'stu' });
      assert.equal(forever.status, 200, forever.text);
      assert.equal(forever.json.until, null);
      assertControl((await sAfter.next(2))[1], { type: 'banned', room, reason: '', by: 'system', subId: sAfter.sub.id });
      assert.equal((await listing(a.port, room)).json.bans[0].until, null);
      const refused = await connect(a, 'stu', clients);
      refused.client.subscribe(`/topic/${room}`, () => {});
      await waitFor(() => refused.errors.length, { what: 'ERROR Banned' });
      assert.match(refused.errors[0].body, /lifted/);
      const unban = await act(a.port, room, 'unban', { user: 'stu' });
      assert.equal(unban.status, 200, unban.text);
      assert.deepEqual(unban.json, { room, user: 'stu', action: 'unban', lifted: true });
      assert.equal((await act(a.port, room, 'unban', { user: 'stu' })).json.lifted, false);
      const free = await connect(a, 'stu', clients);
      await subscribed(free.client, `/topic/${room}`);
      await send(free.client, room, 'free again');
      assert.deepEqual(free.errors, []);
    } finally {
      for (const cl of clients) await cl.client.deactivate();
      await c.stop();
    }
  });

  test('mute refuses SEND only, on every server; unmute lifts it; the listing shows it', async () => {
    const c = await startCluster({ n: 2, sets: { 'api.keys': KEY } });
    const room = `mute-${Date.now()}`;
    const clients = [];
    try {
      const [a, b] = c.servers;
      const prof = await connect(a, 'prof', clients);
      const listen = await subscribed(prof.client, `/topic/${room}`);
      const m = await act(a.port, room, 'mute', { user: 'stu', reason: 'shouting' });
      assert.equal(m.status, 200, m.text);
      assert.equal(m.json.until, null);
      const l = await listing(b.port, room);
      assert.equal(l.json.mutes.length, 1);
      assert.deepEqual({ ...l.json.mutes[0], at: 0 }, { user: 'stu', until: null, reason: 'shouting', by: 'system', at: 0 });
      assert.deepEqual(l.json.bans, []);
      // Reads: a SUBSCRIBE is fine and receives.
      const stu = await connect(b, 'stu', clients);
      const s = await subscribed(stu.client, `/topic/${room}`);
      await send(prof.client, room, 'lecture');
      assert.equal((await s.next(1))[0].body, 'lecture');
      // Speaks: refused.
      stu.client.publish({ destination: `/topic/${room}`, body: 'LOUD' });
      await waitFor(() => stu.errors.length, { what: 'ERROR Muted' });
      assert.equal(stu.errors[0].headers.message, 'Muted');
      // Unmute (on the other server): speaking works again.
      const u = await act(b.port, room, 'unmute', { user: 'stu' });
      assert.deepEqual(u.json, { room, user: 'stu', action: 'unmute', lifted: true });
      const stu2 = await connect(a, 'stu', clients);
      await send(stu2.client, room, 'sorry');
      const heard = await listen.next(2);
      assert.equal(heard[1].body, 'sorry');
      assert.ok(!heard.some((x) => x.body === 'LOUD'));
      // A timed mute ends by itself.
      const t = await act(a.port, room, 'mute', { user: 'stu', duration_s: 1 });
      assert.ok(t.json.until > Date.now());
      await waitFor(() => Date.now() > t.json.until + 50, { timeout: 4000, what: 'the mute to end' });
      await send(stu2.client, room, 'again');
      assert.deepEqual(stu2.errors, []);
    } finally {
      for (const cl of clients) await cl.client.deactivate();
      await c.stop();
    }
  });

  test('bad keys and bad input: 401, 403, 400 with a reason, 503 without Redis', async () => {
    const s = await startServer({ sets: { 'api.keys': KEY, 'moderation.max_duration_s': 100, 'moderation.max_reason': 10 } });
    const off = await startServer({});
    const down = await startServer({ ready: false, sets: { 'api.keys': KEY, 'redis.port': 1 } });
    try {
      const room = 'bad-input';
      assert.equal((await act(s.port, room, 'kick', { user: 'u' }, { headers: {} })).status, 401);
      assert.equal((await act(s.port, room, 'kick', { user: 'u' }, { headers: { 'x-api-key': 'wrong-key-0123456789abcdef' } })).status, 401);
      assert.equal((await act(off.port, room, 'kick', { user: 'u' })).status, 403);
      assert.equal((await listing(s.port, room, {})).status, 401);
      assert.equal((await listing(off.port, room)).status, 403);
      for (const [rm, action, body] of [
        ['a%20b', 'kick', { user: 'u' }],
        [room, 'kick', undefined],
        [room, 'kick', 'not json'],
        [room, 'kick', '[1]'],
        [room, 'kick', {}],
        [room, 'kick', { user: 'a,b' }],
        [room, 'kick', { user: 7 }],
        [room, 'kick', { user: 'u', duration_s: 5 }],
        [room, 'kick', { user: 'u', colour: 'red' }],
        [room, 'ban', { user: 'u', duration_s: 0 }],
        [room, 'ban', { user: 'u', duration_s: 101 }],
        [room, 'ban', { user: 'u', duration_s: 1.5 }],
        [room, 'mute', { user: 'u', duration_s: '10' }],
        [room, 'mute', { user: 'u', reason: 'far too long a reason' }],
        [room, 'mute', { user: 'u', reason: 'a\nb' }],
        [room, 'mute', { user: 'u', reason: 5 }],
        [room, 'unban', { user: 'u', reason: 'x' }],
        [room, 'unmute', { user: 'u', by: 'a,b' }],
      ]) {
        const r = await act(s.port, rm, action, body);
        assert.equal(r.status, 400, `${rm} ${action} ${JSON.stringify(body)}: ${r.text}`);
        assert.ok(r.json?.error, `${rm} ${action} ${JSON.stringify(body)}: ${r.text}`);
      }
      assert.equal((await listing(s.port, 'a%20b')).status, 400);
      // The limits are inclusive.
      const ok = await act(s.port, room, 'ban', { user: 'u', duration_s: 100, reason: '0123456789' });
      assert.equal(ok.status, 200, ok.text);
      assert.equal((await act(s.port, room, 'unban', { user: 'u' })).json.lifted, true);
      // GET of an action, POST of the listing: not routes.
      assert.equal((await httpGet(s.port, `/api/rooms/${room}/kick`, { headers: { 'x-api-key': KEY } })).status, 404);
      // Redis unreachable: 503 with a reason.
      const r = await act(down.port, room, 'kick', { user: 'u' });
      assert.equal(r.status, 503, r.text);
      assert.match(r.json.error, /Redis/);
      assert.equal((await listing(down.port, room)).status, 503);
    } finally {
      await s.stop();
      await off.stop();
      await down.stop();
    }
  });
  test('a ban whose announcement a server missed is enforced when its registry connection comes back', async () => {
    const c = await startCluster({ n: 1, sets: { 'api.keys': KEY } });
    const clients = [];
    const room = `sweep-${Date.now().toString(36)}`;
    try {
      const [s] = c.servers;
      const u = await connect(s, 'missed', clients);
      const sub = await subscribed(u.client, `/topic/${room}`);
      // A ban written while nobody listened: in Redis, never announced.
      const redisPort = process.env.LECTERN_REDIS_PORT || 6390;
      execFileSync('redis-cli', ['-p', String(redisPort), 'HSET', `${c.cluster}:room:{${room}}:ban`, 'missed', '0']);
      await sleep(200);
      assert.equal(sub.messages.length, 0, 'nothing happens without an announcement');
      // The server's subscriber connection drops and comes back: it sweeps its rooms' bans.
      execFileSync('redis-cli', ['-p', String(redisPort), 'CLIENT', 'KILL', 'TYPE', 'pubsub']);
      await waitFor(() => sub.messages.some((m) => m.headers['x-lectern-event'] === 'banned'),
        { timeout: 10000, what: 'the banned control MESSAGE after the reconnect' });
      const m = sub.messages.find((x) => x.headers['x-lectern-event'] === 'banned');
      assert.equal(m.headers.destination, `/topic/${room}`);
    } finally {
      for (const cl of clients) await cl.client.deactivate();
      await c.stop();
    }
  });
});
