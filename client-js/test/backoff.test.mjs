// backoff.js: the schedule's ceilings, full jitter, the cap and giving up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../src/backoff.js';

test('ceilings double from base up to cap', () => {
  const b = new Backoff({ base: 100, cap: 1000, random: () => 0.999999 });
  const got = [];
  for (let i = 0; i < 7; i++) got.push(b.next());
  assert.deepEqual(got, [100, 200, 400, 800, 1000, 1000, 1000]);
});

test('full jitter: anywhere from 0 to the ceiling', () => {
  const low = new Backoff({ base: 100, cap: 1000, random: () => 0 });
  assert.deepEqual([low.next(), low.next(), low.next()], [0, 0, 0]);
  const b = new Backoff({ base: 100, cap: 10000 });
  const seen = new Set();
  for (let i = 0; i < 200; i++) {
    b.reset();
    b.attempt = 3;                          // ceiling 800
    const d = b.next();
    assert.ok(d >= 0 && d <= 800, String(d));
    seen.add(Math.floor(d / 100));
  }
  assert.ok(seen.size >= 6, 'spread over the range');
});

test('gives up after maxAttempts, reset starts again', () => {
  const b = new Backoff({ base: 10, cap: 100, maxAttempts: 3, random: () => 0.5 });
  assert.notEqual(b.next(), null);
  assert.notEqual(b.next(), null);
  assert.notEqual(b.next(), null);
  assert.equal(b.next(), null);
  b.reset();
  assert.equal(b.next(), 5);
});

test('bad knobs are refused', () => {
  assert.throws(() => new Backoff({ base: 0 }), RangeError);
  assert.throws(() => new Backoff({ base: 100, cap: 10 }), RangeError);
});
