// Durable history end to end: servers publish every message to the storage
// queue with publisher confirms, lectern-storage workers write MySQL, and a
// client resumes with x-since after its server died. Real Redis, RabbitMQ,
// MariaDB, servers and workers; @stomp/stompjs clients.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  httpGet, metric, service, sleep, sql, startCluster, startWorker, stompClient, storageDrained, waitFor,
} from './helpers.mjs';

const idKey = (id) => id.split('-').map(BigInt);
const idLess = (a, b) => {
  const [a0, a1] = idKey(a);
  const [b0, b1] = idKey(b);
  return a0 < b0 || (a0 === b0 && a1 < b1);
};

// Rows of `room` in MySQL: [count, distinct bodies].
async function stored(room) {
  const [[n, d]] = await sql(`SELECT COUNT(*), COUNT(DISTINCT body) FROM messages WHERE room = '${room}'`);
  return [Number(n), Number(d)];
}

// Bodies of `room` in MySQL that occur more than once (should be none).
async function duplicates(room) {
  return sql(`SELECT body, COUNT(*) c FROM messages WHERE room = '${room}' GROUP BY body HAVING c > 1 LIMIT 5`);
}

// A sender that keeps `inflight` SENDs with receipts outstanding on a
// reconnecting stompjs client; `acked` holds the bodies that got a RECEIPT,
// `errors` counts ERROR frames (refusals while a service is down).
function steadySender(wsUrl, { room, name, inflight = 10, login = name }) {
  const st = { acked: new Set(), sent: 0, errors: 0, running: true, client: null };
  let seq = 0;
  let outstanding = 0;
  const pump = () => {
    const c = st.client;
    while (st.running && c && c.connected && outstanding < inflight) {
      const body = `${name}:${seq++}`;
      const receipt = `r-${body}`;
      outstanding++;
      st.sent++;
      c.watchForReceipt(receipt, () => {
        st.acked.add(body);
        outstanding--;
        setImmediate(pump);
      });
      c.publish({ destination: `/topic/${room}`, body, headers: { receipt } });
    }
  };
  st.start = async () => {
    const { client } = await stompClient(wsUrl, { connectHeaders: { login }, reconnectDelay: 200 });
    client.onStompError = () => { st.errors++; };
    client.onConnect = () => { outstanding = 0; setImmediate(pump); };
    st.client = client;
    pump();
    return st;
  };
  st.stop = async () => {
    st.running = false;
    // The last RECEIPT covers everything before it: one more, then done.
    const c = st.client;
    await waitFor(() => c.connected, { timeout: 30000, what: `${name} connected` });
    await new Promise((resolve) => {
      c.watchForReceipt(`final-${name}`, resolve);
      c.publish({ destination: `/topic/${room}`, body: `${name}:final`, headers: { receipt: `final-${name}` } });
    });
    st.acked.add(`${name}:final`);
    await c.deactivate();
  };
  return st;
}

async function waitStored(room, want, timeout) {
  await waitFor(async () => (await stored(room))[0] >= want, { timeout, interval: 250, what: `${want} rows of ${room} in MySQL` });
}

describe('durable history', () => {
  test('100,000 messages through two servers while a storage worker is killed -9 twice: MySQL holds each exactly once', async () => {
    const c = await startCluster({ n: 2 });
    const room = `load-${c.cluster}`;
    let w1 = await startWorker({ cluster: c.cluster });
    const w2 = await startWorker({ cluster: c.cluster });
    const clients = [];
    try {
      const PER_SERVER = 4, TOTAL = 100000;
      for (const s of c.servers)
        for (let k = 0; k < PER_SERVER; k++) clients.push((await stompClient(s.wsUrl, { connectHeaders: { login: `p${clients.length}` } })).client);
      const per = TOTAL / clients.length;
      let errors = 0;
      for (const cl of clients) cl.onStompError = () => { errors++; };
      let sentTotal = 0;
      const t0 = Date.now();
      // Each client sends `per` messages; every 250th carries a receipt and
      // is awaited (flow control). The last one's RECEIPT covers them all.
      const send = async (cl, ci) => {
        for (let i = 0; i < per; i++) {
          const body = `${ci}:${i}`;
          if (i % 250 === 249 || i === per - 1) {
            await new Promise((resolve) => {
              cl.watchForReceipt(`r${ci}-${i}`, resolve);
              cl.publish({ destination: `/topic/${room}`, body, headers: { receipt: `r${ci}-${i}` } });
            });
          } else {
            cl.publish({ destination: `/topic/${room}`, body });
          }
          sentTotal++;
        }
      };
      const killer = (async () => {
        await waitFor(() => sentTotal >= TOTAL * 0.2, { timeout: 120000, what: '20% sent' });
        await w1.kill();
        await sleep(500); // the worker stays down a while (the scenario)
        w1 = await startWorker({ cluster: c.cluster });
        await waitFor(() => sentTotal >= TOTAL * 0.6, { timeout: 120000, what: '60% sent' });
        await w1.kill();
        await sleep(500); // the worker stays down a while (the scenario)
        w1 = await startWorker({ cluster: c.cluster });
      })();
      await Promise.all(clients.map(send));
      await killer;
      const sendSecs = (Date.now() - t0) / 1000;
      assert.equal(errors, 0, 'no SEND was refused');
      await waitStored(room, TOTAL, 120000);
      const storeSecs = (Date.now() - t0) / 1000;
      await storageDrained(c.cluster); // nothing can be stored later
      const [n, distinct] = await stored(room);
      assert.equal(n, TOTAL, 'rows');
      assert.equal(distinct, TOTAL, 'distinct bodies');
      assert.deepEqual(await duplicates(room), []);
      const confirmed = (await metric(c.servers[0].port, 'lectern_bus_stored_total')) +
        (await metric(c.servers[1].port, 'lectern_bus_stored_total'));
      assert.equal(confirmed, TOTAL, 'every storage copy was confirmed by RabbitMQ');
      console.log(`# 100k: sent in ${sendSecs.toFixed(1)} s (${Math.round(TOTAL / sendSecs)} msg/s), ` +
        `all in MySQL after ${storeSecs.toFixed(1)} s`);
    } finally {
      await Promise.all(clients.map((cl) => cl.deactivate()));
      await w1.stop();
      await w2.stop();
      assert.deepEqual(await c.stop(), [0, 0]);
    }
  });

  test('RabbitMQ restarted mid-stream: every message that got a RECEIPT is in MySQL exactly once', async () => {
    const c = await startCluster({ n: 2 });
    const room = `rabbit-${c.cluster}`;
    const w = await startWorker({ cluster: c.cluster });
    const senders = [];
    try {
      for (const [i, s] of c.servers.entries())
        for (let k = 0; k < 2; k++) senders.push(await steadySender(s.wsUrl, { room, name: `s${i}${k}` }).start());
      await sleep(1000); // traffic before the restart (the scenario)
      await service('stop', 'rabbitmq');
      await sleep(500); // RabbitMQ stays down a while (the scenario)
      await service('start', 'rabbitmq');
      await waitFor(async () => (await httpGet(c.servers[0].port, '/readyz')).status === 200 &&
        (await httpGet(c.servers[1].port, '/readyz')).status === 200, { timeout: 30000, what: 'servers ready again' });
      await sleep(1000); // traffic after the restart (the scenario)
      await Promise.all(senders.map((s) => s.stop()));
      const acked = new Set();
      for (const s of senders) for (const b of s.acked) acked.add(b);
      await waitFor(async () => {
        const rows = await sql(`SELECT body FROM messages WHERE room = '${room}'`);
        const have = new Set(rows.map((r) => r[0]));
        return [...acked].every((b) => have.has(b));
      }, { timeout: 60000, interval: 500, what: 'every RECEIPTed message in MySQL' });
      assert.deepEqual(await duplicates(room), [], 'no message stored twice');
      const refused = senders.reduce((a, s) => a + s.errors, 0);
      console.log(`# rabbit restart: ${acked.size} receipted, all stored; ${refused} SENDs refused meanwhile`);
      assert.ok(acked.size > 200, `traffic flowed (${acked.size})`);
    } finally {
      await w.stop();
      assert.deepEqual(await c.stop(), [0, 0]);
    }
  });

  test('MySQL stopped for 10 s mid-stream: SENDs keep their receipts, workers retry, nothing lost or duplicated', async () => {
    const c = await startCluster({ n: 2 });
    const room = `mysql-${c.cluster}`;
    const w = await startWorker({ cluster: c.cluster });
    const senders = [];
    try {
      for (const [i, s] of c.servers.entries())
        senders.push(await steadySender(s.wsUrl, { room, name: `m${i}`, inflight: 5 }).start());
      await sleep(500); // traffic before the outage (the scenario)
      await service('stop', 'mariadb');
      await waitFor(async () => (await httpGet(w.port, '/readyz')).status === 503,
        { timeout: 10000, what: 'worker not ready while MySQL is down' });
      const during = senders.reduce((a, s) => a + s.acked.size, 0);
      await sleep(10000); // the outage's length is what is tested
      const after10 = senders.reduce((a, s) => a + s.acked.size, 0);
      assert.ok(after10 > during + 100, `SENDs kept getting receipts while MySQL was down (${during} -> ${after10})`);
      await service('start', 'mariadb');
      await waitFor(async () => (await httpGet(w.port, '/readyz')).status === 200,
        { timeout: 30000, what: 'worker ready again' });
      await Promise.all(senders.map((s) => s.stop()));
      const acked = new Set();
      for (const s of senders) for (const b of s.acked) acked.add(b);
      await waitStored(room, acked.size, 60000);
      await storageDrained(c.cluster); // nothing can be stored later
      const [n, distinct] = await stored(room);
      assert.equal(n, acked.size, 'every message once');
      assert.equal(distinct, acked.size);
      assert.equal(senders.reduce((a, s) => a + s.errors, 0), 0, 'no SEND refused');
    } finally {
      await w.stop();
      assert.deepEqual(await c.stop(), [0, 0]);
    }
  });
});

describe('resume (x-since)', () => {
  // A subscriber on server A records every message; A is killed -9 while a
  // sender on B keeps sending; the subscriber reconnects to B with x-since =
  // its last id. `gapMs` is how long it stays away; `sets` configure the
  // servers (a small room log forces the resume through MySQL).
  async function failover({ gapMs, sets = {}, expectMysql }) {
    const c = await startCluster({ n: 2, sets });
    const [A, B] = c.servers;
    const room = `resume-${c.cluster}`;
    const w = await startWorker({ cluster: c.cluster });
    const got = [];
    let sub2 = null;
    const sender = steadySender(B.wsUrl, { room, name: 'snd', inflight: 3 });
    try {
      const { client: s1 } = await stompClient(A.wsUrl, { connectHeaders: { login: 'student' } });
      await new Promise((resolve) => {
        s1.watchForReceipt('sub', resolve);
        s1.subscribe(`/topic/${room}`, (m) => got.push(m), { receipt: 'sub' });
      });
      await sender.start();
      await waitFor(() => got.length >= 50, { timeout: 10000, what: 'live messages on A' });
      A.proc.kill('SIGKILL');
      await A.waitExit();
      s1.deactivate();
      await sleep(gapMs); // the time away is what is tested
      const last = got[got.length - 1].headers['message-id'];
      const before = got.length;
      ({ client: sub2 } = await stompClient(B.wsUrl, { connectHeaders: { login: 'student' } }));
      await new Promise((resolve) => {
        sub2.watchForReceipt('sub2', resolve);
        sub2.subscribe(`/topic/${room}`, (m) => got.push(m), { receipt: 'sub2', 'x-since': last });
      });
      await sleep(1000); // live traffic after the resume (the scenario)
      await sender.stop();
      const acked = [...sender.acked];
      await waitFor(() => got.length >= acked.length, { timeout: 30000, what: `all ${acked.length} messages` });
      // One more message through B, after all of them: a duplicate would
      // arrive before it.
      await new Promise((resolve) => {
        sub2.watchForReceipt('last', resolve);
        sub2.publish({ destination: `/topic/${room}`, body: 'last', headers: { receipt: 'last' } });
      });
      acked.push('last');
      await waitFor(() => got.some((m) => m.body === 'last'), { what: 'the last message' });
      const bodies = got.map((m) => m.body);
      const ids = got.map((m) => m.headers['message-id']);
      assert.equal(new Set(ids).size, ids.length, 'no duplicates');
      for (let i = 1; i < ids.length; i++) assert.ok(idLess(ids[i - 1], ids[i]), `in order at ${i}: ${ids[i - 1]} ${ids[i]}`);
      const have = new Set(bodies);
      const missing = acked.filter((b) => !have.has(b));
      assert.deepEqual(missing, [], 'every RECEIPTed message reached the subscriber');
      assert.equal(got.length, acked.length, 'and nothing else');
      const replayed = await metric(B.port, 'lectern_deliveries_replayed_total');
      assert.ok(replayed > 0, `B replayed history (${replayed})`);
      console.log(`# resume after ${gapMs} ms away: ${before} live on A, ${replayed} replayed by B, ${got.length} total`);
      if (expectMysql) {
        const text = (await httpGet(B.port, '/metrics')).text;
        const m = text.match(/^lectern_history_mysql_messages_total (\d+)$/m);
        assert.ok(m && Number(m[1]) > 0, 'the resume read MySQL');
      }
    } finally {
      if (sub2) await sub2.deactivate();
      await w.stop();
      const code = (await B.stop()).code;
      assert.equal(code, 0);
    }
  }

  test('a client whose server is killed resumes on another server: every message exactly once, in order, while the sender keeps sending', async () => {
    await failover({ gapMs: 500 });
  });

  test('resume across the Redis/MySQL boundary: a room log of ~10 entries, thousands of messages missed', async () => {
    await failover({ gapMs: 4000, sets: { 'registry.history_max': 10 }, expectMysql: true });
  });

  test('a replay much larger than stomp.max_pending follows the client instead of dropping it', async () => {
    const c = await startCluster({ n: 1, sets: { 'stomp.max_pending': '16k', 'history.resume_page': 200 } });
    const [s] = c.servers;
    const room = `pace-${c.cluster}`;
    const w = await startWorker({ cluster: c.cluster });
    const sender = steadySender(s.wsUrl, { room, name: 'p', inflight: 20 });
    let reader = null;
    try {
      await sender.start();
      await waitFor(() => sender.acked.size >= 3000, { timeout: 60000, what: '3,000 messages sent' });
      await sender.stop();
      const total = sender.acked.size;
      const first = (await httpGet(s.port, `/api/rooms/${room}/messages?limit=1&after=0-0`));
      const firstId = JSON.parse(first.text).messages[0].id;
      const got = [];
      ({ client: reader } = await stompClient(s.wsUrl));
      reader.subscribe(`/topic/${room}`, (m) => got.push(m), { 'x-since': firstId });
      await waitFor(() => got.length >= total - 1, { timeout: 60000, what: `${total - 1} replayed` });
      // One more message, after the replay: a duplicate would arrive before it.
      await new Promise((resolve) => {
        reader.watchForReceipt('last', resolve);
        reader.publish({ destination: `/topic/${room}`, body: 'last', headers: { receipt: 'last' } });
      });
      await waitFor(() => got.some((m) => m.body === 'last'), { what: 'the last message' });
      assert.equal(got.length, total, 'every message after x-since, once, then the last one');
      assert.equal(got[got.length - 1].body, 'last');
      assert.equal(await metric(s.port, 'lectern_slow_consumers_total'), 0, 'the reader was never dropped');
      const ids = got.map((m) => m.headers['message-id']);
      for (let i = 1; i < ids.length; i++) assert.ok(idLess(ids[i - 1], ids[i]), `in order at ${i}`);
    } finally {
      if (reader) await reader.deactivate();
      await w.stop();
      assert.deepEqual(await c.stop(), [0]);
    }
  });

  test('x-since must be a message id on a /topic/ destination', async () => {
    const c = await startCluster({ n: 1 });
    try {
      for (const [dest, since] of [['/topic/r', 'yesterday'], ['/topic/r', '1-2-3'], ['/presence/r', '1-0']]) {
        const { client } = await stompClient(c.servers[0].wsUrl);
        const err = await new Promise((resolve) => {
          client.onStompError = resolve;
          client.subscribe(dest, () => {}, { 'x-since': since });
        });
        assert.equal(err.headers.message, 'Invalid x-since');
        await client.deactivate();
      }
    } finally {
      assert.deepEqual(await c.stop(), [0]);
    }
  });
});
