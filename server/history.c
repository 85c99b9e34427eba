/* history.c — one range query over the Redis room log and MySQL.
 *
 * A request is answered by a "step": at most two reads and a check.
 *
 *   1. Redis (registry_log_range): the range as far as the log has it, and
 *      the log's oldest entry O, in one atomic read. The log is complete
 *      from O on, so every part of the range at or after O is answered from
 *      it.
 *   2. MySQL (db_fetch), only for the part older than O (everything when the
 *      log is empty or gone): ids below min(before, O). The read is widened
 *      by one id at each end it does not share with the log, so that the
 *      rows at `after` and at `before` come back too when MySQL has them;
 *      they are not part of the page, they only anchor the check.
 *   3. The check, by room order. Within an epoch seq is dense, so in the
 *      chain  [row at after] MySQL rows [O or the row at before]:
 *        - two MySQL neighbours (or an anchor and its neighbour) of the same
 *          epoch whose seqs are not consecutive, the later one not 1 (a log
 *          that expired starts over at 1), mean a message in between is still
 *          on its way through the storage queue;
 *        - where the MySQL part meets the log it must reach it exactly: the
 *          last row before O is (O.epoch, O.seq - 1), unless O.seq is 1.
 *          In "last n" mode this join is always where the MySQL rows end; in
 *          "after" mode only when MySQL returned the whole rest of its range.
 *      A step with such a hole is run again (both reads: the log may have
 *      been trimmed meanwhile) every HISTORY_RETRY_MS until hole_wait_ms
 *      have passed since the request came in; then the page is answered as
 *      it is, counted and logged.
 *
 * Paging modes (see history.h). With `after`: ascending, the first limit
 * messages after it. Otherwise descending from `before` (or the newest):
 * the last limit messages. One message more than the page is read in the
 * paging direction to answer `more`.
 *
 * Bytes. A page also ends where its messages would pass history.max_bytes
 * (as the caller measures them: q.cost, the JSON for HTTP), with at least
 * one message so that paging always moves on; `more` then says so and the
 * client continues from the page's end as usual. The reads are bounded the
 * same way, by stored bytes: the log script stops after max_bytes (and
 * says it was cut), and so does the MySQL read (db.h: min_rows, the anchor
 * and the first row, always come back and do not count). A read that was
 * cut does not reach the top of its range, which the check must know: a
 * cut MySQL read never "joins" the log or the row at `before`, and in
 * "after" mode the log's part is not used behind it (the rows in between
 * were not read). So a request holds about max_bytes and a few messages
 * per store, whatever its limit.
 *
 * Redis down. Without the log, the newest messages (not stored yet) cannot
 * be told from the end of the room, but a range that lies entirely below a
 * message MySQL holds can: such a query is answered from MySQL alone, with
 * the same checks —
 *   - with `before`, when the row at `before` is in MySQL (in "after" mode,
 *     also when MySQL has more than a page after `after`);
 * everything else (the newest messages, "after" paging that reaches them)
 * answers HISTORY_UNAVAILABLE.
 *
 * Requests are kept in a list so history_destroy can answer them. A request
 * whose history is gone (h == NULL) has already been answered and waits only
 * for its read in flight to come back, then frees itself. Callbacks never
 * run inside history_fetch: the first step starts from a zero timer.
 */
#include "history.h"

#include "db.h"
#include "log.h"
#include "mem.h"
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_RETRY_MS 100

typedef struct hreq {
    struct hreq *prev, *next;
    history *h;                  /* NULL once answered by history_destroy */
    history_query q;             /* q.room points at room */
    history_fn fn;
    void *ctx;
    uv_timer_t timer;            /* the first step and retries */
    uint64_t started;            /* loop time of history_fetch */
    bool busy;                   /* a Redis or MySQL read in flight */
    bool answered;
    /* this step */
    bool redis_down;             /* the log could not be read */
    bool has_oldest;             /* oldest is set: the log's oldest entry */
    bool join_oldest;            /* the MySQL read ends at oldest (exclusive) */
    bool anchor_before;          /* the MySQL read includes the row at q.before */
    bool redis_cut;              /* the log's part ended at max_bytes */
    size_t asked;                /* rows asked of MySQL */
    envelope oldest;
    envelope *redis;             /* the log's part of the range, ascending */
    size_t nredis;
    char room[];
} hreq;

struct history {
    uv_loop_t *loop;
    registry *reg;
    db *db;
    int hole_wait_ms;
    size_t max_bytes;
    hreq *reqs;
    history_stats stats;
};

static const msgid history_id_min = { 0, 0 };
static const msgid history_id_max = { UINT64_MAX, UINT64_MAX };

/* --- ids ---------------------------------------------------------------------- */

static bool history_id_of(const envelope *e, msgid *out)
{
    return e->id && msgid_parse(e->id, strlen(e->id), out) == 0;
}

static bool history_is(const envelope *e, msgid id)
{
    msgid x;
    return history_id_of(e, &x) && msgid_cmp(x, id) == 0;
}

/* The id just before / after id (saturating at the ends, which no stream
 * entry uses: 0-0 is never an id). */
static msgid history_pred(msgid id)
{
    if (id.n)
        return (msgid){ id.ms, id.n - 1 };
    if (id.ms)
        return (msgid){ id.ms - 1, UINT64_MAX };
    return id;
}

static msgid history_succ(msgid id)
{
    if (id.n != UINT64_MAX)
        return (msgid){ id.ms, id.n + 1 };
    if (id.ms != UINT64_MAX)
        return (msgid){ id.ms + 1, 0 };
    return id;
}

/* May c follow p in a complete range? Within an epoch, only p.seq + 1 (or 1:
 * the room's log expired and its sequence started over). */
static bool history_follows(const envelope *p, const envelope *c)
{
    return c->epoch != p->epoch || c->seq == p->seq + 1 || c->seq == 1;
}

/* The bytes m counts against max_bytes in a page. */
static size_t hreq_cost(const hreq *r, const envelope *m)
{
    return r->q.cost ? r->q.cost(m) : db_row_bytes(m);
}

/* How many of v[0..n) (ascending) the page takes, counted from the start
 * (from_end false) or from the end: at most limit, and no more than
 * max_bytes of them (but at least one). */
static size_t hreq_take(const hreq *r, const envelope *const *v, size_t n, bool from_end)
{
    size_t k = 0, used = 0;
    while (k < n && k < r->q.limit) {
        size_t c = hreq_cost(r, from_end ? v[n - 1 - k] : v[k]);
        if (k && used + c > r->h->max_bytes)
            break;
        used += c;
        k++;
    }
    return k;
}

/* --- request lifecycle ---------------------------------------------------------- */

static void hreq_clear_step(hreq *r)
{
    if (r->has_oldest)
        envelope_free(&r->oldest);
    for (size_t i = 0; i < r->nredis; i++)
        envelope_free(&r->redis[i]);
    free(r->redis);
    r->redis = NULL;
    r->nredis = 0;
    r->redis_down = r->has_oldest = r->join_oldest = r->anchor_before = r->redis_cut = false;
    r->asked = 0;
}

static void hreq_on_closed(uv_handle_t *t)
{
    hreq *r = t->data;
    hreq_clear_step(r);
    free(r);
}

/* Unlink and free (once the timer handle is closed). */
static void hreq_release(hreq *r)
{
    if (r->h) {
        if (r->prev)
            r->prev->next = r->next;
        else
            r->h->reqs = r->next;
        if (r->next)
            r->next->prev = r->prev;
    }
    uv_close((uv_handle_t *)&r->timer, hreq_on_closed);
}

static void hreq_answer(hreq *r, const history_page *page)
{
    if (!r->answered) {
        r->answered = true;
        r->fn(r->ctx, page);
    }
}

static void hreq_fail(hreq *r, const char *why)
{
    history_page page = { .status = HISTORY_UNAVAILABLE, .why = why };
    hreq_answer(r, &page);
    hreq_release(r);
}

/* --- the page -------------------------------------------------------------------- */

static void history_step(uv_timer_t *t);

/* Answer with page[0..n) (ascending, borrowed; the first from_mysql of them
 * from MySQL), or run the step again when the range has a hole and
 * hole_wait_ms have not passed yet. */
static void hreq_finish(hreq *r, const envelope *const *page, size_t n, bool more, bool hole,
                        size_t from_mysql)
{
    history *h = r->h;
    if (hole) {
        uint64_t waited = uv_now(h->loop) - r->started;
        if (waited < (uint64_t)h->hole_wait_ms) {
            uint64_t left = (uint64_t)h->hole_wait_ms - waited;
            h->stats.hole_retries++;
            hreq_clear_step(r);
            uv_timer_start(&r->timer, history_step, left < HISTORY_RETRY_MS ? left : HISTORY_RETRY_MS,
                           0);
            return;
        }
        h->stats.holes_returned++;
        log_warn("history_hole", "room=%s waited_ms=%llu detail=\"a message of this range "
                 "is not in MySQL yet; answered without it\"", r->room,
                 (unsigned long long)waited);
    }
    if (more && n < r->q.limit)
        h->stats.pages_cut++;
    envelope *flat = n ? xmalloc(n * sizeof *flat) : NULL;
    for (size_t i = 0; i < n; i++)
        flat[i] = *page[i];          /* shallow: the fields stay owned where they are */
    h->stats.from_mysql += from_mysql;
    h->stats.from_redis += n - from_mysql;
    history_page out = { .status = HISTORY_OK, .msgs = flat, .n = n, .more = more };
    hreq_answer(r, &out);
    free(flat);
    hreq_release(r);
}

/* --- MySQL part -------------------------------------------------------------------- */

/* Combine the MySQL rows (ascending or descending as asked) with the log's
 * part, check the chain, answer. cut: the MySQL read ended at max_bytes. */
static void history_on_rows(void *ctx, const envelope *rows, size_t n, bool cut, bool ok,
                            const char *why)
{
    hreq *r = ctx;
    r->busy = false;
    if (!r->h) {
        hreq_release(r);
        return;
    }
    if (!ok) {
        char msg[256];
        snprintf(msg, sizeof msg, "history store (MySQL) unavailable: %s", why ? why : "");
        hreq_fail(r, msg);
        return;
    }
    bool asc = r->q.has_after;
    const envelope *lo = NULL, *hi = NULL;   /* the anchors, when MySQL has them */
    size_t first = 0, end = n;               /* rows[first..end): the MySQL part */
    if (asc) {
        if (end > first && history_is(&rows[first], r->q.after))
            lo = &rows[first++];
        if (r->anchor_before && end > first && history_is(&rows[end - 1], r->q.before))
            hi = &rows[--end];
    } else if (r->anchor_before && end > first && history_is(&rows[first], r->q.before)) {
        hi = &rows[first++];
    }
    /* Everything, ascending: the MySQL part, then the log's part -- unless
     * an ascending MySQL read was cut: the rows between it and the log were
     * not read, so the page cannot go on into the log. */
    size_t nm = end - first, nr = asc && cut ? 0 : r->nredis, nall = nm + nr;
    const envelope **all = xmalloc((nall + 1) * sizeof *all);
    for (size_t i = 0; i < nm; i++)
        all[i] = asc ? &rows[first + i] : &rows[end - 1 - i];
    for (size_t i = 0; i < nr; i++)
        all[nm + i] = &r->redis[i];

    /* The page: all[from .. from + take), from the end it is anchored at. */
    size_t take = hreq_take(r, all, nall, !asc);
    size_t from = asc ? 0 : nall - take;
    bool more = take < nall || cut || (asc && r->redis_cut);

    /* The check (see the essay), over what the page claims: its MySQL rows
     * follow one another (and the row at `after`); where they end inside
     * the page, or are all there is below it, they reach O or the row at
     * `before`. Neighbours beyond the page are the next page's business. */
    bool hole = false;
    size_t mend = nm < from + take ? nm : from + take;     /* MySQL rows in the page: [from, mend) */
    const envelope *prev = asc ? lo : NULL;
    for (size_t i = from; i < mend; i++) {
        if (prev && !history_follows(prev, all[i]))
            hole = true;
        prev = all[i];
    }
    /* Does the page reach the top of the MySQL range? Ascending: when MySQL
     * gave all of it (not cut) and the page holds its last row; descending:
     * when the page holds the newest MySQL row, or MySQL had none. */
    bool at_top = asc ? (!cut && (n < r->asked || hi) && nm <= take) : (nm > from || nm == 0);
    if (at_top && r->join_oldest) {
        const envelope *o = &r->oldest;
        if (o->seq > 1 && !(prev && prev->epoch == o->epoch && prev->seq + 1 == o->seq))
            hole = true;
    } else if (at_top && hi && prev && !history_follows(prev, hi)) {
        hole = true;
    }

    if (r->redis_down && !hi && !(asc && (nm > take || cut))) {
        free(all);
        hreq_fail(r, "room log (Redis) unavailable, and this range may reach messages "
                     "not stored yet");
        return;
    }
    hreq_finish(r, all + from, take, more, hole, mend > from ? mend - from : 0);
    free(all);
}

/* --- Redis part -------------------------------------------------------------------- */

/* Keep the log's part (taken from the registry's reply, not copied),
 * ascending, and a copy of the oldest entry. */
static void history_keep_range(hreq *r, registry_range *range, bool reverse)
{
    if (range->oldest) {
        envelope_copy(&r->oldest, range->oldest);
        r->has_oldest = true;
    }
    r->redis = range->msgs;
    r->nredis = range->n;
    r->redis_cut = range->cut;
    range->msgs = NULL;
    range->n = 0;
    for (size_t i = 0; reverse && i < r->nredis / 2; i++) {
        envelope t = r->redis[i];
        r->redis[i] = r->redis[r->nredis - 1 - i];
        r->redis[r->nredis - 1 - i] = t;
    }
}

/* Answer from the log's part alone: the first (asc) or last messages of it
 * that the page takes. */
static void history_from_log(hreq *r, bool asc)
{
    const envelope **v = xmalloc((r->nredis + 1) * sizeof *v);
    for (size_t i = 0; i < r->nredis; i++)
        v[i] = &r->redis[i];
    size_t take = hreq_take(r, v, r->nredis, !asc);
    size_t from = asc ? 0 : r->nredis - take;
    hreq_finish(r, v + from, take, take < r->nredis || r->redis_cut, false, 0);
    free(v);
}

/* range: the log's part and oldest entry; NULL when Redis could not answer. */
static void history_on_range(void *ctx, registry_range *range)
{
    hreq *r = ctx;
    r->busy = false;
    if (!r->h) {
        hreq_release(r);
        return;
    }
    history *h = r->h;
    const history_query *q = &r->q;
    size_t limit = q->limit;
    msgid oldest = history_id_max;
    if (range) {
        history_keep_range(r, range, !q->has_after);    /* XREVRANGE: newest first */
        if (r->has_oldest && !history_id_of(&r->oldest, &oldest)) {
            envelope_free(&r->oldest);
            r->has_oldest = false;
        }
    } else {
        r->redis_down = true;
    }

    if (q->has_after && r->has_oldest && msgid_cmp(q->after, oldest) >= 0) {
        history_from_log(r, true);     /* the log holds everything after `after` */
        return;
    }
    size_t redis_bytes = 0;
    if (!q->has_after && r->nredis) {
        const envelope **v = xmalloc(r->nredis * sizeof *v);
        for (size_t i = 0; i < r->nredis; i++) {
            v[i] = &r->redis[i];
            redis_bytes += db_row_bytes(&r->redis[i]);
        }
        size_t take = hreq_take(r, v, r->nredis, true);
        free(v);
        if (take < r->nredis || r->redis_cut) {
            history_from_log(r, false);    /* the page ends inside the log */
            return;
        }
    }
    if (r->redis_down && !q->has_before && !q->has_after) {
        hreq_fail(r, "room log (Redis) unavailable");
        return;
    }

    /* The MySQL part: below min(before, oldest). */
    db_query dq = { .room = r->room, .after = history_id_min, .before = history_id_max };
    msgid top = q->has_before ? q->before : history_id_max;
    if (r->has_oldest && msgid_cmp(oldest, top) <= 0) {
        dq.before = oldest;
        r->join_oldest = true;
    } else if (q->has_before) {
        dq.before = history_succ(q->before);
        r->anchor_before = true;
    }
    if (q->has_after) {
        dq.after = history_pred(q->after);
        dq.limit = limit + 2;          /* the anchor at `after`, the page, one more */
        dq.max_bytes = h->max_bytes;
        dq.min_rows = 2;               /* the anchor (when there is one) and one message */
    } else {
        dq.descending = true;
        dq.limit = limit - r->nredis + 1;
        /* What the log's part left of the page's bytes (at least 1: 0 is
         * no bound at all). */
        dq.max_bytes = h->max_bytes > redis_bytes ? h->max_bytes - redis_bytes : 1;
        dq.min_rows = 1;               /* the newest row: it answers `more` and the join */
    }
    if (r->anchor_before) {
        dq.limit++;
        if (!q->has_after)
            dq.min_rows++;             /* the anchor comes first */
    }
    r->asked = dq.limit;
    r->busy = true;
    db_fetch(h->db, &dq, history_on_rows, r);
}

static void history_step(uv_timer_t *t)
{
    hreq *r = t->data;
    char low[MSGID_MAX + 1] = "-", high[MSGID_MAX + 1] = "+";
    if (r->q.has_after) {
        low[0] = '(';
        msgid_format(r->q.after, low + 1);
    }
    if (r->q.has_before) {
        high[0] = '(';
        msgid_format(r->q.before, high + 1);
    }
    r->busy = true;
    if (registry_log_range(r->h->reg, r->room, r->q.has_after, low, high, r->q.limit + 1,
                           r->h->max_bytes, history_on_range, r) < 0)
        history_on_range(r, NULL);     /* not connected: as if Redis failed */
}

/* --- API ----------------------------------------------------------------------------- */

history *history_create(uv_loop_t *loop, registry *reg, const history_config *cfg)
{
    db *d = db_create(loop, &cfg->db);
    if (!d)
        return NULL;
    history *h = xcalloc(1, sizeof *h);
    h->loop = loop;
    h->reg = reg;
    h->db = d;
    h->hole_wait_ms = cfg->hole_wait_ms;
    h->max_bytes = cfg->max_bytes;
    return h;
}

void history_destroy(history *h)
{
    if (!h)
        return;
    hreq *r = h->reqs;
    h->reqs = NULL;
    while (r) {
        hreq *next = r->next;
        history_page page = { .status = HISTORY_UNAVAILABLE, .why = "shutting down" };
        hreq_answer(r, &page);
        r->h = NULL;
        if (!r->busy) {
            uv_timer_stop(&r->timer);
            uv_close((uv_handle_t *)&r->timer, hreq_on_closed);
        }
        r = next;
    }
    /* Reads still in flight come back to orphans: MySQL's now, Redis's when
     * the registry is destroyed. */
    db_destroy(h->db);
    free(h);
}

void history_fetch(history *h, const history_query *q, history_fn fn, void *ctx)
{
    size_t rl = strlen(q->room);
    hreq *r = xcalloc(1, sizeof *r + rl + 1);
    memcpy(r->room, q->room, rl + 1);
    r->q = *q;
    r->q.room = r->room;
    if (r->q.limit < 1)
        r->q.limit = 1;
    r->fn = fn;
    r->ctx = ctx;
    r->h = h;
    r->started = uv_now(h->loop);
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    h->stats.queries++;
    uv_timer_init(h->loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, history_step, 0, 0);
}

void history_get_stats(const history *h, history_stats *out)
{
    *out = h->stats;
    out->mysql_errors = db_errors(h->db);
}

db *history_db(history *h)
{
    return h->db;
}
