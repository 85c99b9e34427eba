// tests/soak/trend.mjs — does a soak series grow? Pure: no I/O, no clock.
//
// make soak samples every process's RSS and open files, Redis's memory,
// the queue depths and the delivery p99 every few seconds for half an
// hour (tests/soak/driver.mjs). A leak shows as a series that keeps
// rising after the system has warmed up; everything else a long run does
// (noise, a spike, a level that moves once when a server restarts and its
// clients move) must not read as one. So:
//
//   - The first fifth of the run is warm-up and is left out (caches, room
//     logs and idempotency keys fill up to their bounds there; the soak
//     sets those bounds so that they are reached early, see scripts/soak),
//     and so is a window around the restart: about a minute for every
//     series, and for the restarted server itself a whole warm-up after it
//     came back (a fresh process warms up again).
//   - The restart splits the run into two segments. The slope is the
//     Theil–Sen estimate (the median of the slopes between every pair of
//     points) over pairs taken within one segment only: a level that
//     shifts at the restart (the other servers took the restarted one's
//     clients, and malloc keeps what it got) is not a slope, while a leak
//     rises within both segments. The median makes a few outliers (a p99
//     spike, a sample taken while RabbitMQ's CLI was slow) irrelevant.
//   - Growth is the slope extrapolated over the whole run. A series grows
//     when that exceeds GROWTH_PCT of its level (the median of the judged
//     points) AND an absolute floor of its kind (FLOORS): the percentage
//     judges big series (RSS, Redis memory), the floor keeps a series that
//     sits near zero (queue depths, p99 of a few ms) from failing on a
//     change nobody would notice.
//
// Why 10 %: on a flat series the Theil–Sen estimate over the ~100 judged
// points errs by about a third of the series' own spread, extrapolated
// over the run: RSS or Redis memory wobbling by +-5 % in steady state reads
// as at most a few per cent of growth, one way or the other
// (tests/integration/soak-trend.test.mjs tries twenty such series). A leak of anything per delivery or per
// connection cycle at the soak's rates (thousands of deliveries and a few
// reconnects a second) adds tens of MB in half an hour, far beyond 10 %
// of a server's RSS; allocator fragmentation settling in after warm-up
// moves a process by a few per cent, which a tighter threshold would
// report as a leak on a healthy build. The numbers behind each verdict
// (slope, growth, level) are kept in the report, so a slope below the
// threshold can still be read off.

/** A series grows when its extrapolated growth over the run exceeds this
 * percentage of its level (and its floor). */
export const GROWTH_PCT = 10;

/** Absolute growth over the run a series must also exceed, by kind. */
export const FLOORS = {
  rss: 2 * 1048576,          // bytes
  fds: 16,                   // descriptors
  redis: 2 * 1048576,        // bytes (used_memory)
  messages: 500,             // messages waiting in a queue
  bytes: 1048576,            // bytes held in a server's queues
  latency: 25,               // ms (p99)
};

/** Fewest judged points a series needs for a verdict. */
export const MIN_POINTS = 6;

export function median(xs) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Theil–Sen slope of points [[t, v], ...] (t ascending), using only pairs
 * within one segment; segments are split at each time in `breaks`.
 * @returns {{slope: number, pairs: number}}  slope in v per unit of t; NaN without pairs
 */
export function segmentedSlope(points, breaks = []) {
  const seg = (t) => breaks.filter((b) => t >= b).length;
  const slopes = [];
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) {
      const [ti, vi] = points[i], [tj, vj] = points[j];
      if (tj === ti || seg(ti) !== seg(tj)) continue;
      slopes.push((vj - vi) / (tj - ti));
    }
  }
  return { slope: median(slopes), pairs: slopes.length };
}

/**
 * Judge one series.
 * @param {object} o
 * @param {Array<[number, number]>} o.points  [t seconds, value]
 * @param {number} o.duration   the run's length in seconds (growth = slope x duration)
 * @param {number} [o.from]     judge points at t >= from only (after warm-up)
 * @param {Array<[number, number]>} [o.exclude]  [a, b] time windows left out
 * @param {number[]} [o.breaks] segment boundaries (the restart)
 * @param {number} [o.floor]    absolute growth that must also be exceeded
 * @param {number} [o.pct]      GROWTH_PCT unless given
 * @returns {{verdict: 'flat'|'growth'|'too few points', n: number, level?: number,
 *            slope_per_min?: number, growth?: number, growth_pct?: number}}
 */
export function judgeSeries({ points, duration, from = 0, exclude = [], breaks = [], floor = 0, pct = GROWTH_PCT }) {
  const kept = points
    .filter(([t, v]) => t >= from && Number.isFinite(v) && !exclude.some(([a, b]) => t >= a && t <= b))
    .sort((x, y) => x[0] - y[0]);
  const { slope, pairs } = segmentedSlope(kept, breaks);
  if (kept.length < MIN_POINTS || !pairs) return { verdict: 'too few points', n: kept.length };
  const level = median(kept.map(([, v]) => v));
  const growth = slope * duration;
  const growthPct = level > 0 ? (100 * growth) / level : growth > 0 ? Infinity : 0;
  const grows = growth > floor && growthPct > pct;
  return {
    verdict: grows ? 'growth' : 'flat',
    n: kept.length,
    level,
    slope_per_min: slope * 60,
    growth,
    growth_pct: Number.isFinite(growthPct) ? Math.round(growthPct * 100) / 100 : null,
  };
}

/**
 * The series of a soak's samples, by name: {kind, proc?, points}. A sample
 * (tests/soak/driver.mjs) is {t, procs: {name: {rss, fds}}, redis:
 * {used_memory}, rabbitmq: {messages}, servers: {name: {bus_messages,
 * held_bytes}}, latency: {p99}}; missing values are skipped.
 */
export function seriesOf(samples) {
  const out = new Map();
  const add = (name, kind, proc, t, v) => {
    if (v === undefined || v === null || !Number.isFinite(v)) return;
    if (!out.has(name)) out.set(name, { name, kind, proc, points: [] });
    out.get(name).points.push([t, v]);
  };
  for (const s of samples) {
    for (const [proc, p] of Object.entries(s.procs || {})) {
      add(`rss ${proc}`, 'rss', proc, s.t, p.rss);
      add(`fds ${proc}`, 'fds', proc, s.t, p.fds);
    }
    add('redis used_memory', 'redis', null, s.t, s.redis?.used_memory);
    add('rabbitmq messages', 'messages', null, s.t, s.rabbitmq?.messages);
    let busMsgs, held;
    for (const v of Object.values(s.servers || {})) {
      if (Number.isFinite(v.bus_messages)) busMsgs = (busMsgs ?? 0) + v.bus_messages;
      if (Number.isFinite(v.held_bytes)) held = (held ?? 0) + v.held_bytes;
    }
    add('servers bus messages', 'messages', null, s.t, busMsgs);
    add('servers held bytes', 'bytes', null, s.t, held);
    add('p99 delivery ms', 'latency', null, s.t, s.latency?.p99);
  }
  return [...out.values()];
}

/**
 * Judge every series of a soak.
 * @param {object} o
 * @param {object[]} o.samples
 * @param {number} o.duration    seconds
 * @param {number} o.warmup      seconds left out at the start
 * @param {{proc: string, begin: number, ready: number}|null} [o.restart]
 *   the restarted process (e.g. "server-2") and when its SIGTERM went out
 *   and when it was ready again (seconds since the start)
 * @param {number} [o.around]    seconds left out after the restart (60)
 * @returns {{verdict: 'flat'|'growth', series: object[]}}
 */
export function analyze({ samples, duration, warmup, restart = null, around = 60 }) {
  const series = [];
  for (const s of seriesOf(samples)) {
    const exclude = [], breaks = [];
    if (restart) {
      // A minute around the restart for everyone; the restarted process
      // warms up again from scratch after it.
      const after = s.proc === restart.proc ? Math.max(warmup, around) : around;
      exclude.push([restart.begin - 10, restart.ready + after]);
      breaks.push(restart.begin);
    }
    const j = judgeSeries({ points: s.points, duration, from: warmup, exclude, breaks, floor: FLOORS[s.kind] ?? 0 });
    series.push({ name: s.name, kind: s.kind, ...j });
  }
  const verdict = series.some((s) => s.verdict === 'growth') ? 'growth' : 'flat';
  return { verdict, series };
}
