// ids.js: ordering of message ids and the per-room high-water mark.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareIds, parseId, Seen } from '../src/ids.js';

test('ids compare numerically, ms first then n', () => {
  assert.ok(compareIds('1795337242974-0', '1795337242974-1') < 0);
  assert.ok(compareIds('1795337242975-0', '1795337242974-99') > 0);
  assert.ok(compareIds('9-10', '9-9') > 0, 'not as strings');
  assert.equal(compareIds('5-5', '5-5'), 0);
  assert.equal(parseId('01-1'), null);
  assert.equal(parseId('1-'), null);
  assert.equal(parseId('abc'), null);
  assert.throws(() => compareIds('x', '1-1'), TypeError);
});

test('Seen delivers each id once per room, in increasing order only', () => {
  const s = new Seen();
  assert.ok(s.accept('a', '10-0'));
  assert.ok(s.accept('a', '10-1'));
  assert.ok(!s.accept('a', '10-1'), 'duplicate');
  assert.ok(!s.accept('a', '9-5'), 'older: a replay');
  assert.ok(s.accept('b', '9-5'), 'rooms are independent');
  assert.equal(s.lastId('a'), '10-1');
  assert.ok(s.accept('a', 'not-an-id'), 'foreign servers: no dedupe');
  s.forget('a');
  assert.equal(s.lastId('a'), undefined);
});
