/* history.c — one range query over the Redis room log and MySQL.
 *
 * A request goes through at most two reads and a check:
 *
 *   1. Redis (registry_log_range): the range as far as the log has it, and
 *      the log's oldest entry O, atomically. The log is complete from O on.
 *   2. MySQL (db_fetch), only for the part older than O (or everything when
 *      the log is empty or gone): ids below min(before, O).
 *   3. The page is checked against the room order: within an epoch, seq is
 *      dense, so two neighbours with the same epoch whose seqs are not
 *      consecutive (and the later one is not 1: a log that expired starts
 *      over) mean a message is still on its way through the storage queue.
 *      The neighbours include the row at `after` itself (read along, with an
 *      inclusive bound) and O where the MySQL part meets the log. A page
 *      with such a hole is read again every HISTORY_RETRY_MS until
 *      hole_wait_ms have passed, then returned as it is and counted.
 *
 * Paging modes (see history.h). With `after`: ascending, the first limit
 * messages after it. Otherwise descending from `before` (or the newest):
 * the last limit messages. One extra message is read in the paging
 * direction to answer `more`.
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
    uint64_t started;            /* loop time */
    bool busy;                   /* a Redis or MySQL read in flight */
    bool answered;
    bool has_oldest;
    envelope oldest;
    envelope *redis;             /* the log's part, ascending */
    size_t nredis;
    char room[];
} hreq;

struct history {
    uv_loop_t *loop;
    registry *reg;
    db *db;
    int hole_wait_ms;
    hreq *reqs;
    history_stats stats;
};

static const msgid msgid_max = { UINT64_MAX, UINT64_MAX };

/* --- request lifecycle ---------------------------------------------------------- */

static void hreq_clear_step(hreq *r)
{
    if (r->has_oldest)
        envelope_free(&r->oldest);
    r->has_oldest = false;
    for (size_t i = 0; i < r->nredis; i++)
        envelope_free(&r->redis[i]);
    free(r->redis);
    r->redis = NULL;
    r->nredis = 0;
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

static bool history_id(const envelope *e, msgid *out)
{
    return msgid_parse(e->id, strlen(e->id), out) == 0;
}

/* Is the chain a[0..n) (ascending) free of holes in the room order? */
static bool history_dense(const envelope *const *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        const envelope *p = a[i - 1], *c = a[i];
        if (c->epoch == p->epoch && c->seq != p->seq + 1 && c->seq != 1)
            return false;
    }
    return true;
}

static void history_step(uv_timer_t *t);

/* Answer with page (ascending, `n` entries, borrowed), or retry when the
 * range has a hole. */
static void hreq_finish(hreq *r, const envelope *const *page, size_t n, bool more, bool hole,
                        size_t from_mysql)
{
    history *h = r->h;
    if (hole) {
        uint64_t waited = uv_now(h->loop) - r->started;
        if (waited < (uint64_t)h->hole_wait_ms) {
            h->stats.hole_retries++;
            hreq_clear_step(r);
            uv_timer_start(&r->timer, history_step, HISTORY_RETRY_MS, 0);
            return;
        }
        h->stats.holes_returned++;
        log_warn("history_hole", "room=%s waited_ms=%llu detail=\"a message of this range "
                 "is not in MySQL yet; answered without it\"", r->room,
                 (unsigned long long)waited);
    }
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

/* Combine MySQL rows (ascending or descending as asked) with the log's part. */
static void history_on_rows(void *ctx, const envelope *rows, size_t n, bool ok, const char *why)
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
        r->h->stats.mysql_errors++;
        hreq_fail(r, msg);
        return;
    }
    size_t limit = r->q.limit;
    size_t cap = n + r->nredis + 1;
    const envelope **all = xmalloc(cap * sizeof *all);
    size_t nall = 0, from_mysql = 0;
    const envelope *prev = NULL;

    if (r->q.has_after) {
        /* rows ascending from `after` inclusive: the row at `after` (if
         * stored) only anchors the density check. */
        size_t i = 0;
        msgid id;
        if (n && history_id(&rows[0], &id) && msgid_cmp(id, r->q.after) == 0) {
            prev = &rows[0];
            i = 1;
        }
        for (; i < n; i++)
            all[nall++] = &rows[i];
        from_mysql = nall;
        for (size_t k = 0; k < r->nredis; k++)
            all[nall++] = &r->redis[k];
        bool more = nall > limit;
        size_t take = more ? limit : nall;
        /* The chain: the anchor, the page and the one after it. */
        const envelope **chain = xmalloc((nall + 1) * sizeof *chain);
        size_t nchain = 0;
        if (prev)
            chain[nchain++] = prev;
        for (size_t k = 0; k < nall && k <= limit; k++)
            chain[nchain++] = all[k];
        hreq_finish(r, all, take, more, !history_dense(chain, nchain),
                    from_mysql < take ? from_mysql : take);
        free(chain);
    } else {
        /* rows descending (newest first), all older than the log's part. */
        for (size_t i = n; i-- > 0;)
            all[nall++] = &rows[i];
        from_mysql = nall;
        for (size_t k = 0; k < r->nredis; k++)
            all[nall++] = &r->redis[k];
        bool more = nall > limit;
        size_t skip = more ? nall - limit : 0;
        /* A hole inside the range, or MySQL has nothing older than the
         * log although the log does not start the room's sequence: the
         * older messages are still on their way to storage. */
        bool hole = !history_dense(all, nall) ||
                    (!n && r->has_oldest && r->oldest.seq > 1);
        hreq_finish(r, all + skip, nall - skip, more, hole,
                    from_mysql > skip ? from_mysql - skip : 0);
    }
    free(all);
}

/* --- Redis part -------------------------------------------------------------------- */

static void history_copy_range(hreq *r, const registry_range *range, bool reverse)
{
    if (range->oldest) {
        envelope_copy(&r->oldest, range->oldest);
        r->has_oldest = true;
    }
    r->nredis = range->n;
    r->redis = range->n ? xcalloc(range->n, sizeof *r->redis) : NULL;
    for (size_t i = 0; i < range->n; i++)
        envelope_copy(&r->redis[i], &range->msgs[reverse ? range->n - 1 - i : i]);
}

static void history_on_range(void *ctx, const registry_range *range)
{
    hreq *r = ctx;
    r->busy = false;
    if (!r->h) {
        hreq_release(r);
        return;
    }
    if (!range) {
        hreq_fail(r, "room log (Redis) unavailable");
        return;
    }
    history *h = r->h;
    size_t limit = r->q.limit;
    msgid oldest = msgid_max;
    bool have_oldest = range->oldest && history_id(range->oldest, &oldest);

    db_query dq = { .room = r->room, .low = { 0, 0 }, .low_inclusive = true };
    if (r->q.has_after) {
        history_copy_range(r, range, false);
        if (have_oldest && msgid_cmp(r->q.after, oldest) >= 0) {
            /* The log holds everything after `after`. */
            const envelope **page = xmalloc((r->nredis + 1) * sizeof *page);
            for (size_t i = 0; i < r->nredis; i++)
                page[i] = &r->redis[i];
            bool more = r->nredis > limit;
            hreq_finish(r, page, more ? limit : r->nredis, more, false, 0);
            free(page);
            return;
        }
        dq.low = r->q.after;
        dq.high = r->q.has_before ? r->q.before : msgid_max;
        if (have_oldest && msgid_cmp(oldest, dq.high) < 0)
            dq.high = oldest;
        dq.descending = false;
        dq.limit = limit + 2;          /* the anchor row and one past the page */
    } else {
        history_copy_range(r, range, true);     /* XREVRANGE: newest first */
        if (r->nredis > limit) {
            const envelope **page = xmalloc(limit * sizeof *page);
            for (size_t i = 0; i < limit; i++)
                page[i] = &r->redis[r->nredis - limit + i];
            hreq_finish(r, page, limit, true, false, 0);
            free(page);
            return;
        }
        dq.high = r->q.has_before ? r->q.before : msgid_max;
        if (have_oldest && msgid_cmp(oldest, dq.high) < 0)
            dq.high = oldest;
        dq.descending = true;
        dq.limit = limit - r->nredis + 1;
    }
    r->busy = true;
    db_fetch(h->db, &dq, history_on_rows, r);
}

static void history_step(uv_timer_t *t)
{
    hreq *r = t->data;
    char low[MSGID_MAX + 1] = "-", high[MSGID_MAX + 1] = "+";
    size_t count = r->q.limit + 1;
    if (r->q.has_after) {
        low[0] = '(';
        msgid_format(r->q.after, low + 1);
    }
    if (r->q.has_before) {
        high[0] = '(';
        msgid_format(r->q.before, high + 1);
    }
    r->busy = true;
    if (registry_log_range(r->h->reg, r->room, r->q.has_after, low, high, count,
                           history_on_range, r) < 0) {
        r->busy = false;
        hreq_fail(r, "room log (Redis) unavailable");
    }
}

/* --- API ----------------------------------------------------------------------------- */

history *history_create(uv_loop_t *loop, registry *reg, const history_config *cfg)
{
    db_config dc = {
        .host = cfg->mysql_host, .port = cfg->mysql_port, .user = cfg->mysql_user,
        .password = cfg->mysql_password, .database = cfg->mysql_database,
        .threads = cfg->pool, .timeout_s = cfg->timeout_s,
    };
    db *d = db_create(loop, &dc);
    if (!d)
        return NULL;
    history *h = xcalloc(1, sizeof *h);
    h->loop = loop;
    h->reg = reg;
    h->db = d;
    h->hole_wait_ms = cfg->hole_wait_ms;
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
