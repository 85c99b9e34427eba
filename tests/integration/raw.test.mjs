// Raw WebSocket tests: frames and handshakes a polite client never sends,
// and protocol details stompjs hides (WebSocket frame kinds, escaping, the
// exact ERROR frames).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { rawClient, sleep, startServer, waitFor } from './helpers.mjs';

let server;
const open = [];

async function raw(opts) {
  const c = await rawClient(server.wsUrl, opts);
  open.push(c);
  return c;
}

async function connected(opts) {
  const c = await raw(opts);
  await c.connect();
  return c;
}

// ERROR then close: the frame must arrive before the connection ends.
async function expectError(c, message) {
  const err = await c.waitFrame('ERROR');
  assert.equal(err.headers.message, message);
  assert.equal(err.headers['content-type'], 'text/plain');
  await c.waitClosed();
  return err;
}

before(async () => {
  server = await startServer({
    sets: {
      'stomp.max_frame': '4k',
      'stomp.max_headers': 16,
      'stomp.max_header_line': 256,
      'stomp.max_subscriptions': 4,
      'stomp.connect_timeout_ms': 400,
      'websocket.write_max': '8k',
    },
  });
});

after(async () => {
  for (const c of open) c.close();
  const { code } = await server.stop();
  assert.equal(code, 0, `server exit code (logs:\n${server.logs.join('\n')})`);
});

describe('handshake', () => {
  test('the highest STOMP subprotocol offered wins, whatever the order', async () => {
    assert.equal((await raw({ protocols: ['v10.stomp', 'v12.stomp', 'v11.stomp'] })).protocol, 'v12.stomp');
    assert.equal((await raw({ protocols: ['v10.stomp', 'v11.stomp'] })).protocol, 'v11.stomp');
    assert.equal((await raw({ protocols: ['foo', 'v10.stomp'] })).protocol, 'v10.stomp');
  });

  test('only unknown subprotocols get HTTP 400', async () => {
    await assert.rejects(raw({ protocols: ['mqtt', 'wamp'] }), /HTTP 400/);
  });

  test('an upgrade on another path gets HTTP 404', async () => {
    await assert.rejects(rawClient(server.wsUrl.replace('/ws', '/elsewhere')), /HTTP 404/);
  });

  test('a WebSocket without any subprotocol still speaks STOMP', async () => {
    const c = await raw({ protocols: [] });
    assert.equal(c.protocol, '');
    const f = await c.connect();
    assert.equal(f.headers.version, '1.2');
  });
});

describe('frames', () => {
  test('a frame split into single bytes across WebSocket messages is parsed', async () => {
    const c = await raw();
    const frame = 'CONNECT\r\naccept-version:1.2\r\nhost:/\r\n\r\n\0';
    for (const ch of frame) c.send(ch);
    const f = await c.waitFrame('CONNECTED');
    assert.equal(f.headers.version, '1.2');
  });

  test('several frames in one WebSocket message are all handled', async () => {
    const c = await raw();
    c.send('CONNECT\naccept-version:1.2\nhost:/\n\n\0\n\nSUBSCRIBE\nid:0\ndestination:/topic/multi\nreceipt:r1\n\n\0' +
      'SEND\ndestination:/topic/multi\n\nbody\0');
    const m = await c.waitFrame('MESSAGE');
    assert.equal(m.body.toString(), 'body');
    assert.ok(c.frames.find((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'r1'));
  });

  test('text and binary WebSocket messages from the client are both accepted', async () => {
    const c = await raw();
    c.send(Buffer.from('CONNECT\naccept-version:1.2\nhost:/\n\n\0'), { binary: true });
    await c.waitFrame('CONNECTED');
    c.send('SUBSCRIBE\nid:0\ndestination:/topic/kinds\n\n\0', { binary: false });
    c.send(Buffer.from('SEND\ndestination:/topic/kinds\n\nvia binary\0'), { binary: true });
    const m = await c.waitFrame('MESSAGE');
    assert.equal(m.body.toString(), 'via binary');
  });

  test('a UTF-8 MESSAGE travels in a text frame, a non-UTF-8 one in a binary frame', async () => {
    const c = await connected();
    c.frame('SUBSCRIBE', { id: '0', destination: '/topic/kinds2' });
    c.send(Buffer.from('SEND\ndestination:/topic/kinds2\n\nh\u00e9llo\0'));
    c.send(Buffer.concat([Buffer.from('SEND\ndestination:/topic/kinds2\ncontent-length:4\n\n'),
      Buffer.from([0xff, 0x00, 0xc3, 0x28]), Buffer.from([0])]));
    await waitFor(() => c.frames.filter((f) => f.command === 'MESSAGE').length === 2, { what: 'two messages' });
    const kinds = c.messages.filter((m) => m.bytes.toString('latin1').startsWith('MESSAGE')).map((m) => m.isBinary);
    assert.deepEqual(kinds, [false, true]);
    const [, bin] = c.frames.filter((f) => f.command === 'MESSAGE');
    assert.deepEqual([...bin.body], [0xff, 0x00, 0xc3, 0x28]);
  });

  test('a body with NUL bytes and content-length arrives byte for byte', async () => {
    const c = await connected();
    c.frame('SUBSCRIBE', { id: '0', destination: '/topic/nul' });
    const body = Buffer.from([0, 1, 0, 2, 0]);
    c.send(Buffer.concat([Buffer.from(`SEND\ndestination:/topic/nul\ncontent-length:${body.length}\n\n`), body, Buffer.from([0])]));
    const m = await c.waitFrame('MESSAGE');
    assert.equal(m.headers['content-length'], '5');
    assert.deepEqual([...m.body], [...body]);
  });

  test('header values are escaped on the way out and the first repeated header wins', async () => {
    const c = await connected();
    c.frame('SUBSCRIBE', { id: 'sub\\cone', destination: '/topic/esc' });
    c.frame('SEND', { destination: '/topic/esc', 'x-a': 'colon\\cnew\\nline\\\\back', 'x-b': 'first' });
    c.send('SEND\ndestination:/topic/esc\nx-dup:first\nx-dup:second\n\n\0');
    await waitFor(() => c.frames.filter((f) => f.command === 'MESSAGE').length === 2, { what: 'two messages' });
    const [m1, m2] = c.frames.filter((f) => f.command === 'MESSAGE');
    assert.equal(m1.headers.subscription, 'sub:one');
    assert.equal(m1.headers['x-a'], 'colon:new\nline\\back');
    assert.equal(m2.headers['x-dup'], 'first');
  });

  test('CONNECT headers are not unescaped (backslashes are literal there)', async () => {
    const c = await raw();
    c.send('CONNECT\naccept-version:1.2\nhost:/\nlogin:a\\qb\n\n\0');
    const f = await c.waitFrame('CONNECTED');
    assert.equal(f.headers.version, '1.2');
  });

  test('a large MESSAGE is sent as a fragmented WebSocket message and arrives whole', async () => {
    const s = await startServer({ sets: { 'websocket.write_max': '1k', 'stomp.max_frame': '64k' } });
    try {
      const c = await rawClient(s.wsUrl);
      await c.connect();
      c.frame('SUBSCRIBE', { id: '0', destination: '/topic/big' });
      const body = 'x'.repeat(20000);
      c.frame('SEND', { destination: '/topic/big' }, body);
      const m = await c.waitFrame('MESSAGE');
      assert.equal(m.body.toString(), body);
      c.close();
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });
});

describe('errors', () => {
  test('a malformed frame gets ERROR "Malformed frame" with the reason, then the connection closes', async () => {
    const c = await connected();
    c.send('SEND\nno colon here\n\n\0');
    const err = await expectError(c, 'Malformed frame');
    assert.match(err.body.toString(), /header line without ':'/);
  });

  test('an unknown command gets ERROR', async () => {
    const c = await connected();
    c.send('PUBLISH\n\n\0');
    const err = await expectError(c, 'Malformed frame');
    assert.match(err.body.toString(), /unknown command/);
  });

  test('an invalid escape in a header gets ERROR', async () => {
    const c = await connected();
    c.send('SEND\ndestination:/topic/x\nbad:a\\tb\n\n\0');
    const err = await expectError(c, 'Malformed frame');
    assert.match(err.body.toString(), /invalid escape/);
  });

  test('a frame over stomp.max_frame gets ERROR "frame too large" before it is complete', async () => {
    const c = await connected();
    c.send('SEND\ndestination:/topic/x\n\n' + 'y'.repeat(5000)); // no NUL: never complete
    const err = await expectError(c, 'Malformed frame');
    assert.match(err.body.toString(), /frame too large/);
  });

  test('a content-length over the limit is refused at once', async () => {
    const c = await connected();
    c.send('SEND\ndestination:/topic/x\ncontent-length:999999\n\n');
    const err = await expectError(c, 'Malformed frame');
    assert.match(err.body.toString(), /frame too large/);
  });

  test('too many headers get ERROR', async () => {
    const c = await connected();
    let s = 'SEND\ndestination:/topic/x\n';
    for (let i = 0; i < 20; i++) s += `h${i}:v\n`;
    c.send(s + '\n\0');
    const err = await expectError(c, 'Malformed frame');
    assert.match(err.body.toString(), /too many headers/);
  });

  test('a frame before CONNECT gets ERROR "Not connected"', async () => {
    const c = await raw();
    c.frame('SEND', { destination: '/topic/x' }, 'hi');
    await expectError(c, 'Not connected');
  });

  test('no common version gets ERROR with a version header listing ours', async () => {
    const c = await raw();
    c.frame('CONNECT', { 'accept-version': '2.0,3.1', host: '/' });
    const err = await expectError(c, 'Supported protocol versions are 1.0,1.1,1.2');
    assert.equal(err.headers.version, '1.0,1.1,1.2');
  });

  test('an invalid heart-beat header gets ERROR', async () => {
    const c = await raw();
    c.frame('CONNECT', { 'accept-version': '1.2', host: '/', 'heart-beat': '10;20' });
    await expectError(c, 'Invalid heart-beat header');
  });

  test('the ERROR for a frame with a receipt header carries receipt-id', async () => {
    const c = await connected();
    c.frame('SUBSCRIBE', { id: '1', destination: '/queue/nope', receipt: 'want-77' });
    const err = await expectError(c, 'Unknown destination');
    assert.equal(err.headers['receipt-id'], 'want-77');
    assert.match(err.body.toString(), /\/queue\/nope/);
  });

  test('SEND without destination, SUBSCRIBE without id get "Missing header"', async () => {
    const a = await connected();
    a.frame('SEND', {}, 'x');
    assert.match((await expectError(a, 'Missing header')).body.toString(), /destination/);
    const b = await connected();
    b.frame('SUBSCRIBE', { destination: '/topic/x' });
    assert.match((await expectError(b, 'Missing header')).body.toString(), /'id'/);
  });

  test('an invalid room name gets ERROR "Invalid destination"', async () => {
    const c = await connected();
    c.frame('SUBSCRIBE', { id: '1', destination: '/topic/has space' });
    await expectError(c, 'Invalid destination');
  });

  test('UNSUBSCRIBE of an unknown id, a bad ack mode, and COMMIT of an unknown transaction get ERROR', async () => {
    const a = await connected();
    a.frame('UNSUBSCRIBE', { id: 'ghost' });
    await expectError(a, 'Unknown subscription');
    const b = await connected();
    b.frame('SUBSCRIBE', { id: '1', destination: '/topic/x', ack: 'sometimes' });
    await expectError(b, 'Invalid ack mode');
    const c = await connected();
    c.frame('COMMIT', { transaction: 'nope' });
    await expectError(c, 'Unknown transaction');
  });

  test('a second BEGIN of the same transaction gets ERROR', async () => {
    const c = await connected();
    c.frame('BEGIN', { transaction: 't' });
    c.frame('BEGIN', { transaction: 't' });
    await expectError(c, 'Duplicate transaction');
  });

  test('more subscriptions than stomp.max_subscriptions get ERROR', async () => {
    const c = await connected();
    for (let i = 0; i < 5; i++) c.frame('SUBSCRIBE', { id: String(i), destination: '/topic/many' });
    await expectError(c, 'Too many subscriptions');
  });

  test('ACK without id (STOMP 1.2) gets ERROR', async () => {
    const c = await connected();
    c.frame('ACK', { subscription: '0' });
    await expectError(c, 'Missing header');
  });

  test('a server frame sent by a client gets ERROR', async () => {
    const c = await connected();
    c.frame('MESSAGE', { destination: '/topic/x' }, 'x');
    await expectError(c, 'Unexpected frame');
  });

  test('a second CONNECT gets ERROR', async () => {
    const c = await connected();
    c.frame('CONNECT', { 'accept-version': '1.2', host: '/' });
    await expectError(c, 'Already connected');
  });

  test('the server keeps serving others after all those errors', async () => {
    const c = await connected();
    c.frame('SUBSCRIBE', { id: '0', destination: '/topic/still-up' });
    c.frame('SEND', { destination: '/topic/still-up' }, 'alive');
    assert.equal((await c.waitFrame('MESSAGE')).body.toString(), 'alive');
  });
});

describe('connection lifecycle', () => {
  test('DISCONNECT with a receipt gets RECEIPT, then the server closes', async () => {
    const c = await connected();
    c.frame('DISCONNECT', { receipt: 'bye-1' });
    const r = await c.waitFrame('RECEIPT');
    assert.equal(r.headers['receipt-id'], 'bye-1');
    const closed = await c.waitClosed();
    assert.equal(closed.code, 1000);
  });

  test('a connection that never sends CONNECT is closed after stomp.connect_timeout_ms', async () => {
    const c = await raw();
    const t0 = Date.now();
    await c.waitClosed(3000);
    assert.ok(Date.now() - t0 >= 300, 'not closed too early');
  });

  test('a frame left unfinished gets ERROR "Frame timeout" after stomp.frame_timeout_ms, with no other timer near', async () => {
    // No heart-beats, no idle timeout, CONNECT's timeout far off: only the
    // partial frame itself brings the session's timer this near.
    const s = await startServer({ sets: { 'stomp.frame_timeout_ms': 500, 'stomp.connect_timeout_ms': 30000 } });
    try {
      const c = await rawClient(s.wsUrl);
      await c.connect();
      c.send('SEND\ndestination:/topic/unfinished\n\nno end yet');
      const t0 = Date.now();
      const err = await c.waitFrame('ERROR', 5000);
      const took = Date.now() - t0;
      assert.equal(err.headers.message, 'Frame timeout');
      assert.ok(took >= 400, `ERROR after ${took} ms`);
      await c.waitClosed();
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('heart-beats: the server sends them, and closes a client that stops sending', async () => {
    const s = await startServer({ sets: { 'heartbeat.send_ms': 100, 'heartbeat.recv_ms': 100, 'heartbeat.grace': 2 } });
    try {
      const c = await rawClient(s.wsUrl);
      c.frame('CONNECT', { 'accept-version': '1.2', host: '/', 'heart-beat': '100,100' });
      const f = await c.waitFrame('CONNECTED');
      assert.equal(f.headers['heart-beat'], '100,100');
      // Keep sending EOLs for a while: the connection must stay up.
      const t = setInterval(() => c.send('\n'), 50);
      await sleep(600); // the time beating is what is tested: a fixed one
      clearInterval(t);
      assert.equal(c.closed, null, 'alive while beating');
      const beats = c.frames.filter((x) => x.command === 'HEARTBEAT').length;
      assert.ok(beats >= 3, `server sent heart-beats (${beats})`);
      // Go silent: closed after about 2 x 100 ms.
      const t0 = Date.now();
      await c.waitClosed(3000);
      const silent = Date.now() - t0;
      assert.ok(silent >= 150 && silent < 1500, `closed after ${silent} ms of silence`);
      const metrics = await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text();
      assert.match(metrics, /^lectern_heartbeat_timeouts_total 1$/m);
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('a subscriber that stops reading is dropped as a slow consumer; the publisher is not', async () => {
    const s = await startServer({ sets: { 'stomp.max_pending': '256k', 'stomp.max_frame': '128k' } });
    try {
      const slow = await rawClient(s.wsUrl);
      await slow.connect();
      slow.frame('SUBSCRIBE', { id: '0', destination: '/topic/firehose', receipt: 's' });
      await slow.waitFrame('RECEIPT');
      slow.ws._socket.pause(); // stop reading: kernel buffers fill, then our queue
      const pub = await rawClient(s.wsUrl);
      await pub.connect();
      const body = 'z'.repeat(100000);
      // Far more than the socket buffers on both sides plus max_pending.
      for (let i = 0; i < 400 && !slow.closed; i++) {
        pub.frame('SEND', { destination: '/topic/firehose' }, body);
        if (i % 20 === 19) await sleep(10); // lets the server read the publisher while the queue fills
      }
      await waitFor(async () => /^lectern_slow_consumers_total 1$/m.test(
        await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text()), { what: 'slow consumer dropped' });
      pub.frame('DISCONNECT', { receipt: 'still-here' });
      assert.equal((await pub.waitFrame('RECEIPT')).headers['receipt-id'], 'still-here');
      // Reading again, it gets what the kernel held, then the close: 1008.
      slow.ws._socket.resume();
      assert.deepEqual(await slow.waitClosed(10000), { code: 1008, reason: 'slow consumer' });
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('a connection dropped mid-frame leaves the server healthy', async () => {
    const sock = net.connect(server.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    // The server has taken the upgrade when its answer arrives; then the
    // connection drops.
    const answer = await new Promise((r) => sock.once('data', r));
    assert.match(answer.toString(), /^HTTP\/1\.1 101 /);
    sock.destroy();
    const c = await connected();
    c.frame('DISCONNECT', { receipt: 'r' });
    await c.waitFrame('RECEIPT');
  });
});
