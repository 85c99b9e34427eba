#!/usr/bin/env node
// scripts/soak-report.mjs — the Soak section of docs/benchmarks.md and
// the soak sentence of docs/performance.md, both from docs/soak.json.
//
//   node scripts/soak-report.mjs            print the section
//   node scripts/soak-report.mjs --write    put it into docs/benchmarks.md
//   options: --root DIR (the tree to read and write; default this repository)
//
// make soak writes docs/soak.json and docs/soak.png (scripts/soak) at a
// different time than make bench writes docs/benchmarks.md, so the section
// is rendered here, by one function, for both: scripts/bench-report.mjs
// puts it into the page it generates, scripts/soak splices it into the
// page that is there (--write), and scripts/derive-docs.mjs --check fails
// when the page's section is not what docs/soak.json gives. No soak run
// recorded (no soak.json and soak.png): no section.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const n0 = (x) => (x === undefined || x === null || Number.isNaN(x) ? '–' : Math.round(x).toLocaleString('en-US'));
const f1 = (x) => (x === undefined || x === null || Number.isNaN(x) ? '–' : x.toFixed(1));

/** docs/soak.json of the tree at root, parsed; null when it or its plot is missing. */
export function readSoak(root) {
  const docs = path.join(root, 'docs');
  if (!existsSync(path.join(docs, 'soak.json')) || !existsSync(path.join(docs, 'soak.png'))) return null;
  return JSON.parse(readFileSync(path.join(docs, 'soak.json'), 'utf8'));
}

/** The "## Soak" section (markdown, ending in a blank line) of a soak report. */
export function soakSection(sk) {
  const out = [];
  const p = (s = '') => out.push(s);
  const a = sk.accounting, st = sk.settings, rs = sk.restart;
  p('## Soak');
  p();
  p(`\`${sk.command}\` (commit ${sk.commit}, ${sk.generated.slice(0, 16).replace('T', ' ')} UTC): ${n0(sk.duration_s / 60)} minutes,`);
  p(`${st.servers} servers and ${st.workers} storage workers; ${n0(st.rooms)} rooms of ${st.room_members}, a fan-out room of`);
  p(`${n0(st.fanout_members)} at ${st.fanout_rate} msg/s, ${st.churn_per_s} churn actions/s; server ${rs ? rs.server : '–'} restarted at minute`);
  p(`${rs ? f1(rs.begin / 60) : '–'}${rs ? ` (ready again ${f1(rs.ready - rs.begin)} s later)` : ''}. Verdict: **${sk.verdict}**${sk.reasons.length ? ` (${sk.reasons.join('; ')})` : ''}.`);
  p('What it runs and how the verdict is reached: [performance.md](performance.md#soak).');
  p();
  p('![Soak: RSS, open files, Redis memory, queue depths and delivery latency over the run](soak.png)');
  p();
  p('| Accounting | |');
  p('|---|---|');
  p(`| Sends confirmed | ${n0(a.sends.confirmed)} of ${n0(a.sends.total)} |`);
  p(`| In MySQL | ${n0(a.storage.rows)} rows; ${n0(a.storage.missing)} confirmed messages missing, ${n0(a.storage.stored_twice)} stored twice |`);
  p(`| Deliveries | ${n0(a.delivery.deliveries)} in ${n0(a.delivery.spans)} memberships; ${n0(a.delivery.lost)} lost, ${n0(a.delivery.duplicates_on_the_wire)} duplicates on the wire |`);
  p(`| Resumes | ${n0(a.churn.network_drops)} sockets cut, ${n0(a.churn.app_resumes)} apps restarted with \`since\`, ${n0(a.churn.auto_reconnects)} reconnects in all |`);
  p(`| Churn | ${n0(a.churn.reconnects)} members replaced, ${n0(a.churn.room_switches)} room switches |`);
  p(`| History | ${n0(a.history.checks)} ranges compared with what was received (${n0(a.history.mismatches)} differ); every room read whole: ${n0(a.history.walk_mismatches)} differ from MySQL |`);
  p();
  p(`| Series (after warm-up) | Level | Growth over the run | Verdict |`);
  p('|---|---|---|---|');
  for (const x of sk.trend.series) {
    const unit = ['rss', 'redis'].includes(x.kind) ? 1048576 : x.kind === 'bytes' ? 1024 : 1;
    const u = unit === 1048576 ? ' MiB' : unit === 1024 ? ' KiB' : x.kind === 'latency' ? ' ms' : '';
    const lv = x.level === undefined ? '–' : `${f1(x.level / unit)}${u}`;
    const gr = x.growth === undefined ? '–' : `${f1(x.growth / unit)}${u} (${x.growth_pct ?? '–'}%)`;
    p(`| ${x.name} | ${lv} | ${gr} | ${x.verdict} |`);
  }
  p();
  return out.join('\n') + '\n';
}

/** One sentence on the last soak, for performance.md (derive-docs' soak-result block). */
export function soakSentence(sk) {
  if (!sk) return 'No soak run is recorded (docs/soak.json and docs/soak.png): `make soak` writes one.';
  const a = sk.accounting;
  const grew = sk.trend.series.filter((x) => x.verdict === 'growth').map((x) => x.name);
  return `The recorded run (\`${sk.command}\`, commit ${sk.commit}): **${sk.verdict}**; ` +
    `${n0(a.delivery.deliveries)} deliveries, ${n0(a.delivery.lost)} lost, ${n0(a.storage.missing)} confirmed messages missing from MySQL; ` +
    `${grew.length ? `growing: ${grew.join(', ')}` : `none of the ${sk.trend.series.length} series growing`}.`;
}

// Where the section sits in benchmarks.md: before this paragraph (as
// scripts/bench-report.mjs writes the page).
const AFTER = 'Why the numbers are what they are';
const SECTION = /## Soak\n[\s\S]*?(?=^## |^Why the numbers are what they are)/m;

/** The page's Soak section as it stands ('' when it has none). */
export function pageSection(page) {
  const m = page.match(SECTION);
  return m ? m[0] : '';
}

/** The page with its Soak section replaced by (or given) `section` ('' removes it). */
export function spliceSection(page, section) {
  if (SECTION.test(page)) return page.replace(SECTION, section);
  const i = page.indexOf(AFTER);
  if (i < 0) throw new Error(`docs/benchmarks.md has no "${AFTER}" paragraph to put the Soak section before`);
  return page.slice(0, i) + section + page.slice(i);
}

function main(argv) {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 8).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
    return 0;
  }
  const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const i = argv.indexOf('--root');
  const root = i >= 0 ? path.resolve(argv[i + 1]) : here;
  const sk = readSoak(root);
  const section = sk ? soakSection(sk) : '';
  if (!argv.includes('--write')) {
    process.stdout.write(section);
    return 0;
  }
  const file = path.join(root, 'docs', 'benchmarks.md');
  const before = readFileSync(file, 'utf8');
  const after = spliceSection(before, section);
  if (after !== before) writeFileSync(file, after);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exit(main(process.argv.slice(2)));
