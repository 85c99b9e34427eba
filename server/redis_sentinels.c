/* redis_sentinels.c — the master's address from Redis Sentinel, and its
 * failovers (see redis_sentinels.h).
 *
 * Queries. Before each connect a connection asks the Sentinels in turn,
 * starting with the one that last answered, `SENTINEL
 * get-master-addr-by-name <name>` (one short-lived connection per question,
 * REDIS_SENTINEL_TIMEOUT_MS each, the deadline kept by the asking
 * connection's own timer); a Sentinel that is down, silent, or does not know
 * the master, passes the turn to the next; when all failed, the caller backs
 * off. An answer can be stale (a Sentinel that has not noticed a failover
 * yet, or an old master that just came back as a replica): the connection
 * checks ROLE itself (redis.c), and any failure to get a connection up from
 * an answer moves the next question to the next Sentinel
 * (redis_sentinels_query_skip), so an answer naming an address unreachable
 * from here costs one deadline, not the connection.
 *
 * A query's question context carries the query as its data; code that
 * abandons a question clears q->ac before freeing it, and the question's
 * late callback (hiredis calls it with NULL) sees that and returns.
 *
 * The watch. One connection to one Sentinel, SUBSCRIBEd to +switch-master;
 * when a message names our master, every follower is told the new address
 * (a follower not already there drops its connection and reconnects at
 * once). If that Sentinel connection fails, or its SUBSCRIBE is not
 * confirmed within REDIS_SENTINEL_TIMEOUT_MS, the next Sentinel takes over:
 * at once while some of the round are untried, after a backoff once all
 * failed.
 *
 * Demotions. A READONLY reply means a follower is talking to a demoted
 * master (a partition healed, no socket closed): that follower reports it
 * here, and every other follower at that address moves too (a subscriber
 * never writes, so it would never see READONLY itself).
 */
#include "redis_sentinels.h"

#include "addrlist.h"
#include "backoff.h"
#include "log.h"
#include "mem.h"
#include "redis_uv.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct redis_sentinels {
    uv_loop_t *loop;
    char *name;                /* the master name */
    addrlist addrs;            /* the Sentinels, in the configured order */
    redisAsyncContext *w;      /* the +switch-master watch, or NULL */
    size_t wi;                 /* the Sentinel it is (or will be) on */
    bool watching;             /* w's SUBSCRIBE confirmed */
    bool stopping;
    unsigned failures;         /* consecutive failed watch attempts */
    backoff bo;
    uv_timer_t timer;          /* w's SUBSCRIBE deadline, or the delay to the next try */
    const redis_follower **followers;  /* connections following this master */
    size_t nfollowers;
    char *master_host;         /* the master a connection last came up on */
    int master_port;
};

/* --- queries ---------------------------------------------------------------- */

void redis_sentinels_query_init(redis_sentinels_query *q, redis_sentinels *s, const char *conn,
                                redis_sentinels_query_fn fn, void *ctx)
{
    memset(q, 0, sizeof *q);
    q->s = s;
    q->conn = conn;
    q->fn = fn;
    q->ctx = ctx;
}

static void query_ask(redis_sentinels_query *q);

/* The question to Sentinel q->si failed: on to the next one. */
static void query_next(redis_sentinels_query *q, const char *why)
{
    const addrlist_entry *a = &q->s->addrs.v[q->si];
    if (q->log)
        log_warn("redis_sentinel_failed", "conn=%s sentinel=%s:%d master=%s reason=\"%s\"",
                 q->conn, a->host, a->port, q->s->name, why);
    q->si = (q->si + 1) % q->s->addrs.n;
    q->tries++;
    query_ask(q);
}

/* `SENTINEL get-master-addr-by-name`: [host, port], or nil when the Sentinel
 * does not know the master. */
static void query_on_answer(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    redis_sentinels_query *q = ac->data;
    redisReply *rep = reply;
    if (ac != q->ac)
        return;                 /* abandoned: timeout, restart or destroy */
    q->ac = NULL;
    redisAsyncFree(ac);         /* once this callback returns; one question each */
    long port = 0;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING && rep->element[0]->len > 0 &&
        rep->element[1]->type == REDIS_REPLY_STRING) {
        char *end;
        port = strtol(rep->element[1]->str, &end, 10);
        if (*end || port < 1 || port > 65535)
            port = 0;
    }
    if (!port) {
        const char *why = !rep ? (ac->errstr[0] ? ac->errstr : "connection closed")
                        : rep->type == REDIS_REPLY_ERROR ? rep->str
                        : rep->type == REDIS_REPLY_NIL ? "master unknown to this Sentinel"
                        : "unexpected reply";
        query_next(q, why);
        return;
    }
    char *host = xstrndup(rep->element[0]->str, rep->element[0]->len);
    q->fn(q->ctx, REDIS_SENTINELS_FOUND, host, (int)port);
    free(host);
}

/* Ask Sentinels from q->si on until one takes the question; after a whole
 * round of failures, report NONE. */
static void query_ask(redis_sentinels_query *q)
{
    redis_sentinels *s = q->s;
    while (q->tries < s->addrs.n) {
        const addrlist_entry *a = &s->addrs.v[q->si];
        char err[128];
        redisAsyncContext *ac = redis_uv_dial(s->loop, a->host, a->port, err, sizeof err);
        if (ac && redisAsyncCommand(ac, query_on_answer, NULL,
                                    "SENTINEL get-master-addr-by-name %s", s->name) != REDIS_OK) {
            redisAsyncFree(ac);
            ac = NULL;
            snprintf(err, sizeof err, "cannot send");
        }
        if (ac) {
            ac->data = q;
            q->ac = ac;
            q->fn(q->ctx, REDIS_SENTINELS_ASKING, NULL, 0);
            return;
        }
        if (q->log)
            log_warn("redis_sentinel_failed", "conn=%s sentinel=%s:%d master=%s reason=\"%s\"",
                     q->conn, a->host, a->port, s->name, err);
        q->si = (q->si + 1) % s->addrs.n;
        q->tries++;
    }
    if (q->log)
        log_warn("redis_no_master", "conn=%s master=%s sentinels=%zu", q->conn, s->name,
                 s->addrs.n);
    q->fn(q->ctx, REDIS_SENTINELS_NONE, NULL, 0);
}

void redis_sentinels_query_start(redis_sentinels_query *q, bool log_failures)
{
    q->log = log_failures;
    q->tries = 0;
    query_ask(q);
}

void redis_sentinels_query_timeout(redis_sentinels_query *q)
{
    redisAsyncContext *ac = q->ac;
    q->ac = NULL;
    if (ac)
        redisAsyncFree(ac);     /* its callback gets NULL and sees it abandoned */
    query_next(q, "timeout");
}

void redis_sentinels_query_cancel(redis_sentinels_query *q)
{
    redisAsyncContext *ac = q->ac;
    q->ac = NULL;
    if (ac)
        redisAsyncFree(ac);
}

void redis_sentinels_query_skip(redis_sentinels_query *q)
{
    q->si = (q->si + 1) % q->s->addrs.n;
}

bool redis_sentinels_query_busy(const redis_sentinels_query *q)
{
    return q->ac != NULL;
}

/* --- the list, the +switch-master watch, followers ------------------------------ */

static void sentinels_free(redis_sentinels *s)
{
    addrlist_deinit(&s->addrs);
    free(s->followers);
    free(s->name);
    free(s->master_host);
    free(s);
}

static void sentinels_on_timer(uv_timer_t *t);

/* The watch failed (w already cleared): next Sentinel, at once while some of
 * this round are untried, after a backoff once all failed. */
static void sentinels_watch_failed(redis_sentinels *s, const char *why)
{
    const addrlist_entry *a = &s->addrs.v[s->wi];
    if (s->watching)
        log_warn("redis_sentinel_watch_lost", "sentinel=%s:%d reason=\"%s\"", a->host, a->port,
                 why);
    else if (s->failures < s->addrs.n)
        log_warn("redis_sentinel_watch_failed", "sentinel=%s:%d reason=\"%s\"", a->host, a->port,
                 why);
    s->watching = false;
    s->failures++;
    s->wi = (s->wi + 1) % s->addrs.n;
    int delay = s->failures % s->addrs.n ? 0 : backoff_next(&s->bo);
    uv_timer_start(&s->timer, sentinels_on_timer, (uint64_t)delay, 0);
}

/* "+switch-master <name> <old ip> <old port> <new ip> <new port>" */
static void sentinels_on_switch(redis_sentinels *s, const char *text, size_t len)
{
    char buf[512], *save = NULL, *f[5];
    if (len >= sizeof buf)
        return;
    memcpy(buf, text, len);
    buf[len] = '\0';
    for (int i = 0; i < 5; i++)
        if (!(f[i] = strtok_r(i ? NULL : buf, " ", &save)))
            return;
    if (strcmp(f[0], s->name) != 0)
        return;                 /* another master these Sentinels monitor */
    char *end;
    long port = strtol(f[4], &end, 10);
    if (*end || port < 1 || port > 65535)
        return;
    log_info("redis_switch_master", "master=%s from=%s:%s to=%s:%ld", s->name, f[1], f[2], f[3],
             port);
    for (size_t i = 0; i < s->nfollowers; i++)
        s->followers[i]->on_switch(s->followers[i]->ctx, f[3], (int)port);
}

static void sentinels_on_message(redisAsyncContext *w, void *reply, void *privdata)
{
    (void)privdata;
    redis_sentinels *s = w->data;
    redisReply *rep = reply;
    if (w != s->w)
        return;                 /* abandoned */
    if (!rep) {
        s->w = NULL;            /* hiredis is freeing it */
        sentinels_watch_failed(s, w->errstr[0] ? w->errstr : "connection closed");
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    if (!strcmp(kind, "subscribe")) {
        const addrlist_entry *a = &s->addrs.v[s->wi];
        s->watching = true;
        s->failures = 0;
        backoff_reset(&s->bo);
        uv_timer_stop(&s->timer);
        log_info("redis_sentinel_watch", "sentinel=%s:%d master=%s", a->host, a->port, s->name);
    } else if (!strcmp(kind, "message") && rep->element[2]->type == REDIS_REPLY_STRING) {
        sentinels_on_switch(s, rep->element[2]->str, rep->element[2]->len);
    }
}

static void sentinels_watch(redis_sentinels *s)
{
    const addrlist_entry *a = &s->addrs.v[s->wi];
    char err[128];
    redisAsyncContext *w = redis_uv_dial(s->loop, a->host, a->port, err, sizeof err);
    if (w && redisAsyncCommand(w, sentinels_on_message, NULL, "SUBSCRIBE +switch-master") !=
                 REDIS_OK) {
        redisAsyncFree(w);
        w = NULL;
        snprintf(err, sizeof err, "cannot send");
    }
    if (!w) {
        sentinels_watch_failed(s, err);
        return;
    }
    /* Failures of any kind end in sentinels_on_message with NULL (hiredis
     * runs the subscription's callback when it frees the context). */
    w->data = s;
    s->w = w;
    s->watching = false;
    uv_timer_start(&s->timer, sentinels_on_timer, REDIS_SENTINEL_TIMEOUT_MS, 0);
}

static void sentinels_on_timer(uv_timer_t *t)
{
    redis_sentinels *s = t->data;
    if (s->stopping)
        return;
    if (s->w && !s->watching) {
        redisAsyncContext *w = s->w;
        s->w = NULL;
        redisAsyncFree(w);
        sentinels_watch_failed(s, "timeout");
        return;
    }
    if (!s->w)
        sentinels_watch(s);
}

void redis_sentinels_demoted(redis_sentinels *s, const redis_follower *from, const char *host,
                             int port)
{
    for (size_t i = 0; i < s->nfollowers; i++)
        if (s->followers[i] != from)
            s->followers[i]->on_demoted(s->followers[i]->ctx, host, port);
}

void redis_sentinels_follow(redis_sentinels *s, const redis_follower *f)
{
    s->followers = xrealloc(s->followers, (s->nfollowers + 1) * sizeof *s->followers);
    s->followers[s->nfollowers++] = f;
}

void redis_sentinels_unfollow(redis_sentinels *s, const redis_follower *f)
{
    for (size_t i = 0; i < s->nfollowers; i++) {
        if (s->followers[i] == f) {
            s->followers[i] = s->followers[--s->nfollowers];
            break;
        }
    }
}

void redis_sentinels_confirm(redis_sentinels *s, const char *host, int port)
{
    if (s->master_host && s->master_port == port && !strcmp(s->master_host, host))
        return;
    free(s->master_host);
    s->master_host = xstrdup(host);
    s->master_port = port;
    log_info("redis_master", "master=%s host=%s port=%d", s->name, host, port);
}

redis_sentinels *redis_sentinels_create(uv_loop_t *loop, const char *list, const char *name,
                                        int backoff_min_ms, int backoff_max_ms, char *err,
                                        size_t errlen)
{
    if (!name || !*name) {
        snprintf(err, errlen, "redis.sentinel_master is empty");
        return NULL;
    }
    redis_sentinels *s = xcalloc(1, sizeof *s);
    if (addrlist_parse(&s->addrs, list, REDIS_SENTINEL_PORT, err, errlen) < 0) {
        sentinels_free(s);
        return NULL;
    }
    s->loop = loop;
    s->name = xstrdup(name);
    backoff_init(&s->bo, backoff_min_ms, backoff_max_ms, (uint64_t)(uintptr_t)s);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, sentinels_on_timer, 0, 0);
    return s;
}

static void sentinels_on_closed(uv_handle_t *h)
{
    sentinels_free(h->data);
}

void redis_sentinels_destroy(redis_sentinels *s)
{
    if (!s)
        return;
    s->stopping = true;
    if (s->w) {
        redisAsyncContext *w = s->w;
        s->w = NULL;
        redisAsyncFree(w);
    }
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, sentinels_on_closed);
}
