// websocket.rx_reads: a connection with more queued than one read of
// websocket.rx_buffer takes is read again within the same loop iteration,
// so a small per-connection buffer does not starve a fast publisher.
// lectern_rx_more_reads_total counts those reads.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { metric, rawClient, startServer, stompClient, subscribed } from './helpers.mjs';

// Forty SENDs of 1 KiB in one WebSocket message: one write of ~42 KB, so
// the kernel holds far more than a 64-byte read after the first one.
function burst(room, n, size) {
  const frames = [];
  for (let i = 0; i < n; i++) {
    const body = `${String(i).padStart(4, '0')}:`.padEnd(size, 'x');
    frames.push(Buffer.from(`SEND\ndestination:/topic/${room}\ncontent-type:text/plain\n\n${body}\0`));
  }
  return Buffer.concat(frames);
}

async function publishBurst(s, room) {
  const { client } = await stompClient(s.wsUrl);
  const got = await subscribed(client, `/topic/${room}`);
  const pub = await rawClient(s.wsUrl);
  await pub.connect();
  pub.send(burst(room, 40, 1024));
  const msgs = await got.next(40, 10000);
  assert.deepEqual(msgs.map((m) => m.body.slice(0, 4)),
    Array.from({ length: 40 }, (_, i) => String(i).padStart(4, '0')), 'all forty, in order');
  assert.ok(msgs.every((m) => m.body.length === 1024));
  pub.close();
  await client.deactivate();
}

describe('websocket.rx_reads', () => {
  test('with a 64-byte buffer, a burst of 40 KiB is read in several reads per iteration and arrives whole, in order', async () => {
    const s = await startServer({ sets: { 'websocket.rx_buffer': 64, 'websocket.rx_reads': 64 } });
    try {
      await publishBurst(s, 'rxreads-on');
      // ~42 KB in reads of 80 bytes: hundreds of reads, nearly all of them
      // beyond epoll's one per iteration.
      assert.ok(await metric(s.port, 'lectern_rx_more_reads_total') >= 100);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('rx_reads=1: one read per iteration, as epoll reports; the burst still arrives whole', async () => {
    const s = await startServer({ sets: { 'websocket.rx_buffer': 64, 'websocket.rx_reads': 1 } });
    try {
      await publishBurst(s, 'rxreads-off');
      assert.equal(await metric(s.port, 'lectern_rx_more_reads_total'), 0);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });
});
