// Moderation over STOMP (server/session_control.c, server/control.c;
// docs/protocol.md "Moderation"): an instructor SENDs to /control/<room> to
// redact, mute, unmute and kick in a room their token lists; students and
// rooms outside the token are refused. Two servers with tokens required,
// real stompjs clients, a real storage worker.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  expectReceipt, repoRoot, sleep, sql, startCluster, startWorker, stompClient, subscribed, waitFor,
} from './helpers.mjs';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lectern-control-'));
const keys = path.join(dir, 'keys');
writeFileSync(keys, 'k1 HS256 control-secret-0123456789abcdef0123456789\n');
const mint = (...args) =>
  execFileSync(path.join(repoRoot, 'scripts', 'mint-token'), ['--keys', keys, ...args]).toString().trim();

describe('moderation over STOMP: /control/<room>', () => {
  let c;
  let worker;
  const clients = [];
  const room = `ctl-${Date.now().toString(36)}`;
  before(async () => {
    c = await startCluster({ n: 2, sets: { 'auth.mode': 'jwt', 'auth.keys': keys } });
    worker = await startWorker({ cluster: c.cluster });
  });
  after(async () => {
    for (const cl of clients) await cl.deactivate();
    await worker?.stop();
    await c?.stop();
  });

  // A connected client of `sub` with `role` for `rooms`; ERRORs after CONNECTED go to errors.
  async function who(srv, sub, role, rooms = [room]) {
    const { client } = await stompClient(srv.wsUrl, {
      connectHeaders: { passcode: mint('--sub', sub, '--name', sub, '--role', role, '--rooms', rooms.join(',')) },
    });
    clients.push(client);
    const errors = [];
    client.onStompError = (f) => errors.push(f);
    return { client, errors };
  }
  let receipts = 0;
  async function control(u, body, r = room) {
    const id = `ctl-${++receipts}`;
    const got = expectReceipt(u.client, id);
    u.client.publish({ destination: `/control/${r}`, body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', receipt: id } });
    return got;
  }
  async function say(u, text) {
    const id = `say-${++receipts}`;
    const got = expectReceipt(u.client, id);
    u.client.publish({ destination: `/topic/${room}`, body: text, headers: { receipt: id } });
    return got;
  }
  const errorOf = async (u, what) => {
    await waitFor(() => u.errors.length > 0, { what });
    return u.errors.shift();
  };

  test('an instructor redacts, mutes, unmutes and kicks; every server sees it', async () => {
    const [s1, s2] = c.servers;
    const prof = await who(s1, 'prof', 'instructor');
    const stu = await who(s2, 'stu', 'student');
    const watcher = await who(s1, 'watcher', 'student');
    const seen = await subscribed(watcher.client, `/topic/${room}`);
    const stuSub = await subscribed(stu.client, `/topic/${room}`);

    // Redact: a RECEIPT, then the x-redacts event on both servers; MySQL keeps the tombstone.
    const r1 = await say(stu, 'something rude');
    const id = r1.headers['message-id'] ?? (await seen.next(1))[0].headers['message-id'];
    await seen.next(1);
    await control(prof, { action: 'redact', id });
    const [, ev] = await seen.next(2);
    assert.equal(ev.headers['x-redacts'], id);
    assert.equal(ev.headers['x-redacted-by'], 'prof');
    await waitFor(async () => (stuSub.messages.some((m) => m.headers['x-redacts'] === id)),
      { what: 'the event on the other server' });
    await waitFor(async () => {
      const rows = await sql(`SELECT LENGTH(body), headers LIKE 'x-redacted-by:prof%' FROM messages WHERE room = '${room}' AND CONCAT(id_ms, '-', id_n) = '${id}'`);
      return rows.length === 1 && rows[0][0] === '0' && rows[0][1] === '1';
    }, { what: 'the tombstone in MySQL' });
    // Again: already redacted, still a RECEIPT.
    await control(prof, { action: 'redact', id });

    // Mute (ten minutes): the student's SEND is refused with ERROR Muted, on the other server.
    await control(prof, { action: 'mute', user: 'stu', duration_s: 600, reason: 'calm down' });
    stu.client.publish({ destination: `/topic/${room}`, body: 'still here' });
    const muted = await errorOf(stu, 'ERROR Muted');
    assert.equal(muted.headers.message, 'Muted');
    await stu.client.deactivate();
    const stu2 = await who(s2, 'stu', 'student');
    await control(prof, { action: 'unmute', user: 'stu' });
    await say(stu2, 'sorry');

    // Kick: the student's subscription on the other server ends with a control MESSAGE.
    const sub2 = await subscribed(stu2.client, `/topic/${room}`);
    await control(prof, { action: 'kick', user: 'stu', reason: 'out' });
    await waitFor(() => sub2.messages.some((m) => m.headers['x-lectern-event'] === 'kicked'),
      { what: 'the kicked control MESSAGE' });
    const k = sub2.messages.find((m) => m.headers['x-lectern-event'] === 'kicked');
    assert.equal(k.headers['x-by'], 'prof');
    assert.equal(k.headers['x-reason'], 'out');
    assert.equal(prof.errors.length, 0);
  });

  test('students, rooms outside the token, bad bodies and SUBSCRIBE are refused', async () => {
    const [s1] = c.servers;
    // A student: Access refused, and nothing happened (the message is not redacted).
    const stu = await who(s1, 'stu-b', 'student');
    const listen = await subscribed(stu.client, `/topic/${room}`);
    const r = await say(stu, 'keep me');
    await listen.next(1);
    const id = r.headers['message-id'] ?? listen.messages[0].headers['message-id'];
    stu.client.publish({ destination: `/control/${room}`, body: JSON.stringify({ action: 'redact', id }) });
    const e1 = await errorOf(stu, 'ERROR Access refused');
    assert.equal(e1.headers.message, 'Access refused');
    assert.match(e1.body, /instructors/);

    // An instructor in a room the token does not list.
    const prof = await who(s1, 'prof-b', 'instructor', ['elsewhere']);
    prof.client.publish({ destination: `/control/${room}`, body: JSON.stringify({ action: 'redact', id }) });
    assert.equal((await errorOf(prof, 'ERROR for another room')).headers.message, 'Access refused');

    // Bad bodies and an unknown message: Invalid control frame, each on a fresh connection.
    const bad = [
      'not json', { action: 'ban', user: 'x' }, { action: 'redact', id: 'nope' },
      { action: 'mute', user: 'x', duration_s: 0 }, { action: 'kick', user: 'x', reason: 'a\nb' },
      { action: 'kick', user: 'x', duration_s: 5 }, { action: 'redact', id: '1-1' },
    ];
    for (const b of bad) {
      const p = await who(s1, 'prof-c', 'instructor');
      p.client.publish({ destination: `/control/${room}`, body: typeof b === 'string' ? b : JSON.stringify(b) });
      const e = await errorOf(p, `ERROR for ${JSON.stringify(b)}`);
      assert.equal(e.headers.message, 'Invalid control frame', `${JSON.stringify(b)}: ${e.body}`);
    }
    const p = await who(s1, 'prof-d', 'instructor');
    p.client.subscribe(`/control/${room}`, () => {});
    assert.equal((await errorOf(p, 'ERROR for SUBSCRIBE')).headers.message, 'Unknown destination');

    // The student's message is untouched.
    await sleep(100);
    const rows = await sql(`SELECT body FROM messages WHERE room = '${room}' AND CONCAT(id_ms, '-', id_n) = '${id}'`);
    assert.ok(rows.length === 0 || rows[0][0] === 'keep me');
  });
});
