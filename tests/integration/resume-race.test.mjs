// x-since on a busy room, on a server that is not the publisher's: the
// replay reads the room's Redis log, which is ahead of the bus (a message
// is in the log before its copy has crossed RabbitMQ to this server). A
// message the replay delivered must not be delivered again when its live
// copy arrives after the replay is done. Real Redis, RabbitMQ, two servers,
// @stomp/stompjs clients; many resumes against a steady stream, because
// the window is a few milliseconds wide.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { metric, sleep, startCluster, stompClient, subscribed, waitFor } from './helpers.mjs';

const idKey = (id) => id.split('-').map(BigInt);
const idLess = (a, b) => {
  const [a0, a1] = idKey(a);
  const [b0, b1] = idKey(b);
  return a0 < b0 || (a0 === b0 && a1 < b1);
};

test('resumes on the other server while a room is busy: every message once, in order, none missing', async () => {
  // A longer bus linger widens the window in which history is ahead of the bus.
  const c = await startCluster({ n: 2, sets: { 'bus.batch_linger_ms': '5' } });
  const [A, B] = c.servers;
  const room = `race-${c.cluster}`;
  const dest = `/topic/${room}`;
  const clients = [];
  let stop = false;
  try {
    const { client: pub } = await stompClient(A.wsUrl, { connectHeaders: { login: 'teacher' } });
    clients.push(pub);
    // A member on B all along: B is in the room, so A's messages cross the bus to it.
    const { client: watcher } = await stompClient(B.wsUrl, { connectHeaders: { login: 'watcher' } });
    clients.push(watcher);
    const all = await subscribed(watcher, dest);
    let n = 0;
    const sending = (async () => {
      while (!stop) {
        for (let k = 0; k < 5; k++) pub.publish({ destination: dest, body: `m${n++}` });
        await sleep(2);
      }
    })();
    await waitFor(() => all.messages.length >= 100, { timeout: 10000, what: 'the stream on B' });

    const ROUNDS = 40;
    const problems = [];
    for (let r = 0; r < ROUNDS; r++) {
      const since = all.messages[all.messages.length - 1].headers['message-id'];
      const { client: s } = await stompClient(B.wsUrl, { connectHeaders: { login: `student-${r}` } });
      const got = [];
      s.subscribe(dest, (m) => got.push(m.headers['message-id']), { 'x-since': since });
      await sleep(150);
      // Everything the watcher saw after `since`, up to the last this one saw,
      // must be exactly what this one saw.
      await s.deactivate();
      const ids = got;
      const seen = new Set();
      for (let i = 0; i < ids.length; i++) {
        if (seen.has(ids[i])) problems.push(`round ${r}: ${ids[i]} twice`);
        seen.add(ids[i]);
        if (i && !idLess(ids[i - 1], ids[i])) problems.push(`round ${r}: out of order at ${i}`);
      }
      if (ids.length) {
        const ref = all.messages.map((m) => m.headers['message-id']);
        const from = ref.indexOf(since), to = ref.indexOf(ids[ids.length - 1]);
        if (from >= 0 && to >= 0) {
          const want = ref.slice(from + 1, to + 1);
          const missing = want.filter((id) => !seen.has(id));
          if (missing.length) problems.push(`round ${r}: ${missing.length} missing, first ${missing[0]}`);
        }
      } else {
        problems.push(`round ${r}: nothing after x-since`);
      }
    }
    stop = true;
    await sending;
    const dropped = await metric(B.port, 'lectern_resume_overlap_dropped_total');
    console.log(`# ${ROUNDS} resumes, ${n} messages sent, ${dropped} live copies the replay had delivered dropped on B`);
    assert.deepEqual(problems, []);
    // The window was hit (else this test proves nothing): without the drop
    // each of these would have reached a subscriber twice.
    assert.ok(dropped > 0, 'some replayed message also came live afterwards');
  } finally {
    stop = true;
    for (const cl of clients) await cl.deactivate();
    await c.stop();
  }
});
