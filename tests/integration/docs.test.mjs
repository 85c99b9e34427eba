// The Markdown pages as a reader meets them: they describe the software as
// it is (never how or when it was made), and every relative link leads to a
// file that exists and, with a #fragment, to a heading that page has.
// Needs no services: `cd tests && node --test integration/docs.test.mjs`.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Every .md of the project, relative to the root: not dependencies, build
 * output or local state. */
const SKIP_DIRS = new Set(['.git', 'node_modules', 'var', 'build', 'bin']);
function markdownFiles(dir = root) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name) && !e.name.startsWith('.')) out.push(...markdownFiles(path.join(dir, e.name)));
    } else if (e.name.endsWith('.md')) {
      out.push(path.relative(root, path.join(dir, e.name)));
    }
  }
  return out.sort();
}

/** Wording about the project's making rather than the software. CHANGELOG.md
 * is the one page whose subject is history. */
export const FORBIDDEN = [
  /\bissue\s*#?\d+/i,
  /\b(later|earlier|previous|next|future) issues?\b/i,
  /\bat the time of writing\b/i,
  /\b(page|file|script|change|test)s? (was|were) not committed\b/i,
  /\ba later (move|step|change|commit|version|release)\b/i,
  /\b(added|implemented|documented|fixed|done|written|measured) later\b/i,
  /\bfor now\b/i,
  /\b(TODO|FIXME|TBD)\b/,
  /\b(is|are|was|were) not yet (implemented|supported|written|documented|done)\b/i,
  /\bbefore [\w-]+ existed\b/i,
  /\bwhat we are building\b/i,
];

/** The text with fenced code blocks and inline code spans blanked, so that
 * code samples are not read as links (line numbers are kept). */
function prose(text) {
  return text
    .replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, (m) => m.replace(/[^\n]/g, ' '))
    .replace(/`[^`\n]*`/g, (m) => ' '.repeat(m.length));
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces
 * to hyphens; a repeated heading gets -1, -2, ... */
function anchors(text) {
  const seen = new Map();
  const out = new Set();
  for (const line of text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').split('\n')) {
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const base = h[1].replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase().replace(/[^\p{L}\p{N}\- _]/gu, '').replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n ? `${base}-${n}` : base);
  }
  return out;
}

/** The relative link targets of a page: [text](target) and [ref]: target. */
function links(text) {
  const p = prose(text);
  const out = [];
  const lineOf = (i) => p.slice(0, i).split('\n').length;
  for (const m of p.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ target: m[1], line: lineOf(m.index) });
  for (const m of p.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) out.push({ target: m[1], line: lineOf(m.index) });
  return out.filter((l) => !/^[a-z][a-z0-9+.-]*:/i.test(l.target));   // http:, mailto: ...
}

/** Problems with the links of page `file` (relative to root), as strings. */
export function brokenLinks(file, text = readFileSync(path.join(root, file), 'utf8')) {
  const problems = [];
  for (const { target, line } of links(text)) {
    const [p, frag] = target.split('#');
    const dest = p ? path.resolve(root, path.dirname(file), decodeURIComponent(p)) : path.join(root, file);
    if (!dest.startsWith(root + path.sep) && dest !== root) {
      problems.push(`${file}:${line}: ${target} leads out of the repository`);
      continue;
    }
    if (!existsSync(dest)) {
      problems.push(`${file}:${line}: ${target}: no such file`);
      continue;
    }
    if (frag === undefined || !dest.endsWith('.md') || !statSync(dest).isFile()) continue;
    if (!anchors(p ? readFileSync(dest, 'utf8') : text).has(decodeURIComponent(frag))) {
      problems.push(`${file}:${line}: ${target}: ${path.relative(root, dest)} has no heading #${frag}`);
    }
  }
  return problems;
}

/** Lines of page `file` with wording of FORBIDDEN, as strings. */
export function madeWording(file, text = readFileSync(path.join(root, file), 'utf8')) {
  const problems = [];
  text.split('\n').forEach((l, i) => {
    for (const re of FORBIDDEN) {
      const m = re.exec(l);
      if (m) problems.push(`${file}:${i + 1}: "${m[0]}" (${re})`);
    }
  });
  return problems;
}

/** The names the pages may quote, read from where they are defined: ERROR
 * reasons (server/error_reason.h), knobs (docs/configuration.md, generated
 * from the knob tables), metrics (the programs' sources). */
function definedNames() {
  const reasons = new Set([...readFileSync(path.join(root, 'server', 'error_reason.h'), 'utf8')
    .matchAll(/X\(\w+, "([^"]+)"\)/g)].map((m) => m[1]));
  const knobs = new Set([...readFileSync(path.join(root, 'docs', 'configuration.md'), 'utf8')
    .matchAll(/^\| `([a-z_]+\.[a-z_0-9]+)` \|/gm)].map((m) => m[1]));
  const metrics = new Set();
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const f = path.join(dir, e.name);
      if (e.isDirectory()) walk(f);
      else if (/\.[ch]$/.test(e.name))
        for (const m of readFileSync(f, 'utf8').matchAll(/"(lectern_[a-z0-9_]+)/g)) metrics.add(m[1]);
    }
  };
  for (const d of ['server', 'storage-worker', 'lib']) walk(path.join(root, d));
  return { reasons, knobs, metrics };
}
const FILE_EXT = /^(c|h|md|mjs|js|sql|lua|conf|cfg|yaml|yml|json|sh|pem|log|txt|html|css)$/;

/** Quoted names of page `file` that the code does not define, as strings:
 * ERROR `<reason>`, `section.knob` of a known section, `lectern_<metric>`. */
export function unknownNames(file, names, text = readFileSync(path.join(root, file), 'utf8')) {
  const problems = [];
  const sections = new Set([...names.knobs].map((k) => k.split('.')[0]));
  text.split('\n').forEach((l, i) => {
    const at = `${file}:${i + 1}`;
    for (const m of l.matchAll(/\bERROR `([^`]+)`/g))
      if (!names.reasons.has(m[1])) problems.push(`${at}: ERROR "${m[1]}" is not in server/error_reason.h`);
    for (const m of l.matchAll(/`([a-z_]+)\.([a-z_0-9]+)(?:\s*=[^`]*)?`/g))
      if (sections.has(m[1]) && !FILE_EXT.test(m[2]) && !names.knobs.has(`${m[1]}.${m[2]}`))
        problems.push(`${at}: knob ${m[1]}.${m[2]} is not in docs/configuration.md`);
    for (const m of l.matchAll(/(?<!['"])\blectern_[a-z0-9_]*[a-z0-9](?![a-z0-9_*])/g)) {   // not 'lectern_schema' (a lock name)
      const name = m[0].replace(/_(bucket|sum|count)$/, '');
      if (!names.metrics.has(m[0]) && !names.metrics.has(name))
        problems.push(`${at}: metric ${m[0]} is not defined in server/, storage-worker/ or lib/`);
    }
  });
  return problems;
}

const pages = markdownFiles();

describe('documentation', () => {
  test('the pages are found (README.md, docs/, client-js/README.md)', () => {
    for (const p of ['README.md', 'client-js/README.md', 'docs/protocol.md',
      'docs/migrating-from-web-stomp.md', 'docs/troubleshooting.md'])
      assert.ok(pages.includes(p), `${p} is scanned`);
  });

  test('no page but CHANGELOG.md speaks of how or when the project was made', () => {
    const problems = pages.filter((p) => p !== 'CHANGELOG.md').flatMap((p) => madeWording(p));
    assert.deepEqual(problems, [], 'describe the software as it is');
  });

  test('every relative link leads to a file that exists, and its #fragment to a heading there', () => {
    assert.deepEqual(pages.flatMap((p) => brokenLinks(p)), []);
  });

  test('every ERROR reason, knob and metric a page quotes is one the code defines', () => {
    const names = definedNames();
    assert.ok(names.reasons.has('Access refused') && names.knobs.has('stomp.max_frame') &&
      names.metrics.has('lectern_slow_consumers_total'), 'the definitions are read');
    assert.deepEqual(pages.filter((p) => p !== 'CHANGELOG.md').flatMap((p) => unknownNames(p, names)), []);
  });

  test('the checks find what they look for (a page with a broken link and forbidden words)', () => {
    const page = [
      '# Title', '## Fresh tokens: SEND to `/token`',
      'See [it](docs/protocol.md#resume-x-since), [gone](docs/no-such-page.md),',
      '[bad anchor](docs/protocol.md#no-such-heading), [here](#fresh-tokens-send-to-token),',
      '[there](#nowhere), [web](https://example.org/x.md) and `[code](not/a/link.md)`.',
      'This was planned in issue 12, for now.',
    ].join('\n');
    assert.deepEqual(brokenLinks('README.md', page), [
      'README.md:3: docs/no-such-page.md: no such file',
      'README.md:4: docs/protocol.md#no-such-heading: docs/protocol.md has no heading #no-such-heading',
      'README.md:5: #nowhere: README.md has no heading #nowhere',
    ]);
    assert.equal(madeWording('README.md', page).length, 2);
    const names = definedNames();
    assert.deepEqual(unknownNames('README.md', names, [
      'ERROR `Access refused`, ERROR `Access denied`; `stomp.max_frame`, `stomp.max_frames=1`,',
      '`server.c`, `lectern_slow_consumers_total`, `lectern_slow_consumer_total`, `lectern_*_total`',
    ].join('\n')), [
      'README.md:1: ERROR "Access denied" is not in server/error_reason.h',
      'README.md:1: knob stomp.max_frames is not in docs/configuration.md',
      'README.md:2: metric lectern_slow_consumer_total is not defined in server/, storage-worker/ or lib/',
    ]);
  });
});
