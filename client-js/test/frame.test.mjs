// frame.js: encoding and the reader, fed whole, byte by byte and packed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, FrameReader, escapeHeader, unescapeHeader } from '../src/frame.js';

test('escaping round-trips every special character, CONNECT is not escaped', () => {
  const v = 'a:b\\c\nd\re';
  assert.equal(unescapeHeader(escapeHeader(v)), v);
  assert.equal(escapeHeader(v), 'a\\cb\\\\c\\nd\\re');
  assert.equal(encodeFrame('CONNECT', { login: 'a:b' }), 'CONNECT\nlogin:a:b\n\n\0');
  assert.equal(encodeFrame('SEND', { destination: '/topic/a:b' }), 'SEND\ndestination:/topic/a\\cb\n\n\0');
});

test('content-length counts UTF-8 bytes', () => {
  const f = encodeFrame('SEND', { destination: '/topic/x' }, 'héllo ☃ 😀'); // 1+2+3+1+3+1+4 bytes
  assert.match(f, /content-length:15\n/);
});

const wire =
  '\n' +
  'CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0' +
  'MESSAGE\nsubscription:0\nmessage-id:1-1\ndestination:/topic/a\ncontent-length:8\n\nab\0c ☃\0' +
  '\r\n' +
  'MESSAGE\r\nsubscription:0\r\nmessage-id:1-2\r\nsender:a\\cb\r\nsender:ignored\r\n\r\nplain\0' +
  'ERROR\nmessage:Access refused\n\nbye\0';

function check(frames) {
  const real = frames.filter((f) => f.command);
  assert.deepEqual(real.map((f) => f.command), ['CONNECTED', 'MESSAGE', 'MESSAGE', 'ERROR']);
  assert.equal(real[1].body, 'ab\0c ☃');
  assert.equal(real[1].headers['message-id'], '1-1');
  assert.equal(real[2].body, 'plain');
  assert.equal(real[2].headers.sender, 'a:b', 'unescaped, first occurrence wins');
  assert.equal(real[3].headers.message, 'Access refused');
  assert.equal(frames.filter((f) => !f.command).length, 2, 'two heart-beats');
}

test('the reader: whole, packed in one message', () => {
  check(new FrameReader().push(wire));
});

test('the reader: character by character gives the same frames', () => {
  const r = new FrameReader();
  const frames = [];
  for (const ch of wire) frames.push(...r.push(ch));
  check(frames);
});

test('the reader: malformed input throws', () => {
  assert.throws(() => new FrameReader().push('MESSAGE\nno-colon\n\n\0'), /malformed header/);
  assert.throws(() => new FrameReader().push('MESSAGE\ncontent-length:x\n\n\0'), /content-length/);
  assert.throws(() => new FrameReader().push('MESSAGE\ncontent-length:1\n\nab\0'), /longer than content-length/);
  assert.throws(() => new FrameReader({ maxFrame: 10 }).push('MESSAGE\nx:yyyyyyyyyyyy'), /too large/);
});
