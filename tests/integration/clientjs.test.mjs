// client-js (LecternClient) in Node against a real cluster: rooms, sends
// confirmed by RECEIPT, presence, history, and the promise it makes to an
// app: every message exactly once, in order, across the loss of the server
// it was connected to.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { LecternClient } from '../../client-js/src/index.js';
import {
  isProbe, metric, probeUntil, sleep, startCluster, startHaproxy, waitFor,
} from './helpers.mjs';

const opts = (login, extra = {}) => ({
  WebSocket, login, name: login.toUpperCase(),
  reconnect: { base: 100, cap: 1000 }, heartbeat: { outgoing: 0, incoming: 0 }, ...extra,
});

describe('client-js', () => {
  test('two clients in a room: sends are confirmed, received in order with ids, presence lists both, history pages back', async () => {
    const c = await startCluster({ n: 2 });
    const a = new LecternClient(c.servers[0].wsUrl, opts('alice'));
    const b = new LecternClient(c.servers[1].wsUrl, opts('bob'));
    try {
      const states = [];
      b.on('state', (s) => states.push(s));
      await a.connect();
      await b.connect();
      assert.deepEqual(states, ['connecting', 'online']);
      const ra = a.join('cjs-room');
      const rb = b.join('cjs-room');
      const got = [];
      rb.on('message', (m) => got.push(m));
      await waitFor(() => ra.count === 2 && rb.count === 2, { what: 'presence of both' });
      assert.deepEqual([...rb.members.keys()].sort(), ['alice', 'bob']);
      for (let i = 0; i < 20; i++) await ra.send(`m${i}`);
      await waitFor(() => got.length === 20, { what: '20 messages' });
      assert.deepEqual(got.map((m) => m.body), Array.from({ length: 20 }, (_, i) => `m${i}`));
      assert.ok(got.every((m) => /^\d+-\d+$/.test(m.id) && m.sender === 'alice' && m.senderName === 'ALICE'));
      const page = await rb.history({ limit: 5 });
      assert.deepEqual(page.messages.map((m) => m.body), ['m15', 'm16', 'm17', 'm18', 'm19']);
      const older = await rb.history({ limit: 5, before: page.messages[0].id });
      assert.deepEqual(older.messages.map((m) => m.body), ['m10', 'm11', 'm12', 'm13', 'm14']);
      a.leave('cjs-room');
      await waitFor(() => rb.count === 1 && !rb.members.has('alice'), { what: 'alice left' });
    } finally {
      a.disconnect();
      b.disconnect();
      await c.stop();
    }
  });

  test('the server a client is on is killed: it reconnects through the load balancer and sees every message exactly once, in order', async () => {
    const c = await startCluster({ n: 3 });
    const lb = await startHaproxy([c.servers[0].port, c.servers[1].port]);
    const sender = new LecternClient(c.servers[2].wsUrl, opts('teacher'));
    const student = new LecternClient(lb.wsUrl, opts('student'));
    try {
      await sender.connect();
      await student.connect();
      const rs = sender.join('cjs-failover', { presence: false });
      const rt = student.join('cjs-failover', { presence: false });
      const got = [];
      let probed = 0;
      rt.on('message', (m) => (isProbe(m.body) ? probed++ : got.push(m.body)));
      const states = [];
      student.on('state', (s) => states.push(s));
      // the student's server: the one of the two with a connection
      await waitFor(async () => (await metric(c.servers[0].port, 'lectern_connections')) +
        (await metric(c.servers[1].port, 'lectern_connections')) === 1, { what: 'student connected' });
      const victim = (await metric(c.servers[0].port, 'lectern_connections')) === 1 ? 0 : 1;
      await probeUntil((b) => rs.send(b), () => probed > 0, { what: "the student's subscription in place" });
      const sent = [];
      let stop = false;
      const pump = (async () => {
        for (let i = 0; !stop && i < 400; i++) {
          await rs.send(`n${i}`);
          sent.push(`n${i}`);
          await sleep(5); // pacing of the traffic
        }
      })();
      await waitFor(() => got.length >= 50, { what: 'traffic flowing' });
      c.servers[victim].proc.kill('SIGKILL');
      await waitFor(() => states.includes('reconnecting') && student.state === 'online',
        { timeout: 15000, what: 'reconnected' });
      await waitFor(() => got.length >= 150, { timeout: 15000, what: 'traffic after the failover' });
      stop = true;
      await pump;
      await waitFor(() => got.length >= sent.length, { timeout: 15000, what: 'everything' });
      // One more message, after all of them: a duplicate would arrive before it.
      await rs.send('fence');
      sent.push('fence');
      await waitFor(() => got.includes('fence'), { what: 'the fence delivered' });
      assert.deepEqual(got, sent, 'every message exactly once, in order');
    } finally {
      sender.disconnect();
      student.disconnect();
      await lb.stop();
      await c.stop();
    }
  });

  test('the plain subset works against RabbitMQ Web-STOMP: join, confirmed send, receive', async () => {
    const url = `ws://127.0.0.1:${process.env.LECTERN_WEB_STOMP_PORT || 15690}/ws`;
    const o = { WebSocket, login: 'guest', token: 'guest', heartbeat: { outgoing: 0, incoming: 0 },
      reconnect: { base: 100, cap: 500, maxAttempts: 3 } };
    const a = new LecternClient(url, o), b = new LecternClient(url, o);
    try {
      await a.connect();
      await b.connect();
      const rb = b.join('cjs-rabbit', { presence: false });
      const got = [];
      let probed = 0;
      rb.on('message', (m) => (isProbe(m.body) ? probed++ : got.push(m.body)));
      // RabbitMQ binds the subscription's queue; a probe arriving says it has.
      await probeUntil((body) => a.send('cjs-rabbit', body), () => probed > 0, { what: 'the queue bound' });
      for (let i = 0; i < 5; i++) await a.send('cjs-rabbit', `r${i}`);
      await waitFor(() => got.length === 5, { what: 'five messages through RabbitMQ' });
      assert.deepEqual(got, ['r0', 'r1', 'r2', 'r3', 'r4']);
    } finally {
      a.disconnect();
      b.disconnect();
    }
  });

  test('send while offline is refused; disconnect() goes offline and stays there', async () => {
    const c = await startCluster({ n: 1 });
    const a = new LecternClient(c.servers[0].wsUrl, opts('carol'));
    try {
      await assert.rejects(a.send('x', 'hi'), /not online/);
      await a.connect();
      a.disconnect();
      await waitFor(() => a.state === 'offline', { what: 'offline' });
      // Three reconnect delays (reconnect.base is 100 ms) with no attempt:
      // the window is the check, so its length is fixed.
      await sleep(300);
      assert.equal(a.state, 'offline');
    } finally {
      a.disconnect();
      await c.stop();
    }
  });
});
