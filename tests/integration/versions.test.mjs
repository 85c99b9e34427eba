// Per-version MESSAGE encoding: a STOMP 1.2 sender's header values may hold
// CR, LF, ':' and '\'. Each subscriber must get a frame valid for the version
// it negotiated and read by that version's rules alone (docs/protocol.md):
//   1.2  escapes \r \n \c \\;
//   1.1  escapes \n \c \\ only (\r is undefined, a fatal error): a header
//        holding a CR is omitted;
//   1.0  no escapes at all: a header whose name holds ':' or whose name or
//        value holds LF or CR is omitted, the rest travel raw.
// The subscribers here are raw WebSockets that parse strictly by their
// version, live and when a subscription resumes from history (x-since).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rawClient, startServer, waitFor } from './helpers.mjs';

let server;
const open = [];

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const c of open) c.close();
  const { code } = await server.stop();
  assert.equal(code, 0, `server exit code (logs:\n${server.logs.join('\n')})`);
});

// Decode a header name or value by the escape rules of `version`; an
// escape the version does not define throws, as the spec says it must.
function unescape(s, version) {
  if (version === '1.0') return s;
  const allowed = version === '1.2' ? { r: '\r', n: '\n', c: ':', '\\': '\\' } : { n: '\n', c: ':', '\\': '\\' };
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '\\') { out += s[i]; continue; }
    const e = s[++i];
    if (!(e in allowed)) throw new Error(`undefined escape \\${e ?? '(end)'} for STOMP ${version} in ${JSON.stringify(s)}`);
    out += allowed[e];
  }
  return out;
}

// Frames from a byte stream, strictly by one version's rules: EOL is LF or
// CRLF (1.2 only), a bare CR is an error, the first ':' splits a header,
// content-length decides the body.
function strictFrames(bytes, version) {
  const frames = [];
  let i = 0;
  while (i < bytes.length) {
    if (bytes[i] === 0x0a) { i++; continue; }
    const headEnd = bytes.indexOf('\n\n', i);
    if (headEnd < 0) break;
    const lines = bytes.subarray(i, headEnd).toString('utf8').split('\n');
    const command = lines.shift();
    const headers = [];
    for (const line of lines) {
      if (line.includes('\r')) throw new Error(`CR in a ${version} header line: ${JSON.stringify(line)}`);
      const c = line.indexOf(':');
      if (c <= 0) throw new Error(`header line without a name: ${JSON.stringify(line)}`);
      headers.push([unescape(line.slice(0, c), version), unescape(line.slice(c + 1), version)]);
    }
    const first = (name) => headers.find(([n]) => n === name)?.[1];
    const bodyStart = headEnd + 2;
    const cl = first('content-length');
    const bodyEnd = cl !== undefined ? bodyStart + Number(cl) : bytes.indexOf(0, bodyStart);
    if (bodyEnd < 0 || bodyEnd >= bytes.length) break;
    assert.equal(bytes[bodyEnd], 0, 'NUL after the body');
    frames.push({ command, headers, first, body: bytes.subarray(bodyStart, bodyEnd).toString() });
    i = bodyEnd + 1;
  }
  return frames;
}

// A raw subscriber speaking `version` on /topic/<room>; its MESSAGE frames,
// parsed strictly, come from messages().
async function subscriber(version, room, subHeaders = {}) {
  const c = await rawClient(server.wsUrl, { protocols: [`v${version.replace('.', '')}.stomp`] });
  open.push(c);
  const f = await c.connect({ 'accept-version': version, host: '/' });
  assert.equal(f.headers.version, version);
  c.frame('SUBSCRIBE', { id: '0', destination: `/topic/${room}`, receipt: 'sub', ...subHeaders });
  await waitFor(() => c.messages.some((m) => m.bytes.toString().startsWith('RECEIPT')), { what: 'subscribe receipt' });
  c.messages_ = () => strictFrames(Buffer.concat(c.messages.map((m) => m.bytes)), version)
    .filter((fr) => fr.command === 'MESSAGE');
  return c;
}

// The sender's headers, as it writes them by 1.2 rules, and their values.
const sent = {
  'x-cr': ['a\\rb', 'a\rb'],
  'x-lf': ['a\\nb', 'a\nb'],
  'x-colon': ['a\\cb', 'a:b'],
  'x-back': ['a\\\\b', 'a\\b'],
  'x-all': ['\\r\\n\\c\\\\', '\r\n:\\'],
  'x\\cname': ['v', 'v'],            // a ':' in the name
  'x-plain': ['plain', 'plain'],
};
// What each version must see: header name -> value, or undefined (omitted).
const expected = {
  '1.2': { 'x-cr': 'a\rb', 'x-lf': 'a\nb', 'x-colon': 'a:b', 'x-back': 'a\\b', 'x-all': '\r\n:\\', 'x:name': 'v', 'x-plain': 'plain' },
  '1.1': { 'x-cr': undefined, 'x-lf': 'a\nb', 'x-colon': 'a:b', 'x-back': 'a\\b', 'x-all': undefined, 'x:name': 'v', 'x-plain': 'plain' },
  '1.0': { 'x-cr': undefined, 'x-lf': undefined, 'x-colon': 'a:b', 'x-back': 'a\\b', 'x-all': undefined, 'x:name': undefined, 'x-plain': 'plain' },
};

async function send(room, body) {
  const c = await rawClient(server.wsUrl, { protocols: ['v12.stomp'] });
  open.push(c);
  await c.connect();
  const headers = { destination: `/topic/${room}`, receipt: 'r' };
  for (const [name, [wire]] of Object.entries(sent)) headers[name] = wire;
  c.frame('SEND', headers, body);
  await c.waitFrame('RECEIPT');
}

function check(frame, version) {
  const names = frame.headers.map(([n]) => n);
  for (const [name, want] of Object.entries(expected[version])) {
    if (want === undefined) assert.ok(!names.includes(name), `STOMP ${version}: ${JSON.stringify(name)} is omitted`);
    else assert.equal(frame.first(name), want, `STOMP ${version}: ${JSON.stringify(name)}`);
  }
  assert.equal(frame.body, 'body with \\r and \\c kept');
  assert.equal(frame.first('content-length'), String(Buffer.byteLength(frame.body)));
}

describe('MESSAGE frames follow the subscriber\'s STOMP version', () => {
  test('live: 1.2, 1.1 and 1.0 subscribers each read a 1.2 sender\'s CR, LF, colon and backslash by their own rules', async () => {
    const room = 'versions-live';
    const subs = {};
    for (const v of ['1.2', '1.1', '1.0']) subs[v] = await subscriber(v, room);
    await send(room, 'body with \\r and \\c kept');
    for (const [v, c] of Object.entries(subs)) {
      await waitFor(() => c.messages.some((m) => m.bytes.toString().startsWith('MESSAGE')), { what: `MESSAGE for ${v}` });
      const [m] = c.messages_();
      assert.ok(m, `a MESSAGE that STOMP ${v} can parse`);
      assert.equal(m.first('subscription'), '0');
      check(m, v);
      assert.equal(c.closed, null);
    }
  });

  test('an id holding escapes comes back in each MESSAGE\'s subscription header by the subscriber\'s rules', async () => {
    const room = 'versions-subid';
    // The id as each version writes it on SUBSCRIBE, and what it means.
    const ids = { '1.2': ['s\\c1\\\\x\\ny', 's:1\\x\ny'], '1.1': ['s\\c1\\\\x\\ny', 's:1\\x\ny'], '1.0': ['s:1\\x', 's:1\\x'] };
    const subs = {};
    for (const [v, [wire]] of Object.entries(ids)) subs[v] = await subscriber(v, room, { id: wire });
    await send(room, 'body with \\r and \\c kept');
    for (const [v, c] of Object.entries(subs)) {
      await waitFor(() => c.messages_().length >= 1, { what: `MESSAGE for ${v}` });
      assert.equal(c.messages_()[0].first('subscription'), ids[v][1], `STOMP ${v}: subscription header`);
    }
  });

  test('replayed from history (x-since): each version gets its own encoding too', async () => {
    const room = 'versions-replay';
    const first = await subscriber('1.2', room);
    const c = await rawClient(server.wsUrl, { protocols: ['v12.stomp'] });
    open.push(c);
    await c.connect();
    c.frame('SEND', { destination: `/topic/${room}`, receipt: 'r0' }, 'before');
    await c.waitFrame('RECEIPT');
    await send(room, 'body with \\r and \\c kept');
    await waitFor(() => first.messages_().length === 2, { what: 'both messages live' });
    const since = first.messages_()[0].first('message-id');
    for (const v of ['1.2', '1.1', '1.0']) {
      const r = await subscriber(v, room, { 'x-since': since });
      await waitFor(() => r.messages_().length >= 1, { what: `replay for ${v}` });
      const [m] = r.messages_();
      check(m, v);
    }
  });
});
