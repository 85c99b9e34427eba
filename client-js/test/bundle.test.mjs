// The page's copy of the library (client-js/public/lectern-client.js) is
// generated from client-js/src by scripts/bundle-client; it must be current.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

test('public/lectern-client.js is what scripts/bundle-client makes of src/', async () => {
  const fresh = execFileSync(path.join(root, 'scripts', 'bundle-client'), { encoding: 'utf8' });
  const committed = readFileSync(path.join(root, 'client-js', 'public', 'lectern-client.js'), 'utf8');
  assert.equal(committed, fresh, 'regenerate: scripts/bundle-client > client-js/public/lectern-client.js');
  const m = await import(path.join(root, 'client-js', 'public', 'lectern-client.js'));
  assert.equal(typeof m.LecternClient, 'function');
});
