/* redis.c — a self-healing async Redis connection.
 *
 * Lifecycle: connecting -> (loading scripts | subscribing) -> up -> down ->
 * (backoff timer) -> connecting ... hiredis owns and frees its context after
 * the connect callback reports failure or the disconnect callback runs, so
 * r->ac is cleared in those callbacks and never touched afterwards.
 *
 * Every command's callback receives a reply or NULL exactly once: hiredis
 * calls pending callbacks with NULL when the connection goes, and
 * redis_argv refuses (returns -1, no callback) when not up. Callers can rely
 * on that to free their per-command state.
 *
 * Backoff: min doubling to max with full jitter (uniform in [delay/2,
 * delay]), reset once a connection comes up.
 *
 * The libuv adapter is our own (hiredis's ev hooks), not the one Debian's
 * hiredis 0.14 ships: that one ignores a poll error, and libuv stops the
 * poll handle when it reports one. A Redis that goes away while commands are
 * in flight (the socket errors instead of reading EOF) was then never noticed
 * and the connection stayed "up" forever. Here an error is handed to
 * hiredis as a read, which finds the failure and disconnects.
 */
#include "redis.h"

#include "log.h"
#include "mem.h"

#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct redis {
    uv_loop_t *loop;
    char *name, *host;
    int port;
    redisAsyncContext *ac;
    bool up, stopping;
    uv_timer_t retry;
    int backoff_min, backoff_max, backoff;
    redis_events ev;
    void *ctx;
    char *channel;
    redis_script **scripts;
    size_t nscripts, loads_pending;
    uint64_t reconnects;
    bool ever_up;
};

static void redis_on_retry(uv_timer_t *t);

/* --- libuv adapter (see the essay) ----------------------------------------- */

typedef struct redis_uv {
    redisAsyncContext *ac;
    uv_poll_t poll;
    int events;
} redis_uv;

static void redis_uv_on_poll(uv_poll_t *h, int status, int events)
{
    redis_uv *u = h->data;
    if (!u->ac)
        return;
    if (status < 0) {
        redisAsyncHandleRead(u->ac);    /* reads the error and disconnects */
        if (u->ac && u->events)         /* it did not: libuv stopped the poll */
            uv_poll_start(&u->poll, u->events, redis_uv_on_poll);
        return;
    }
    if (events & UV_READABLE)
        redisAsyncHandleRead(u->ac);
    if (u->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(u->ac);
}

static void redis_uv_update(redis_uv *u, int add, int del)
{
    u->events = (u->events | add) & ~del;
    if (u->events)
        uv_poll_start(&u->poll, u->events, redis_uv_on_poll);
    else
        uv_poll_stop(&u->poll);
}

static void redis_uv_add_read(void *p) { redis_uv_update(p, UV_READABLE, 0); }
static void redis_uv_del_read(void *p) { redis_uv_update(p, 0, UV_READABLE); }
static void redis_uv_add_write(void *p) { redis_uv_update(p, UV_WRITABLE, 0); }
static void redis_uv_del_write(void *p) { redis_uv_update(p, 0, UV_WRITABLE); }

static void redis_uv_on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void redis_uv_cleanup(void *p)
{
    redis_uv *u = p;
    u->ac = NULL;           /* hiredis frees the context after this */
    uv_close((uv_handle_t *)&u->poll, redis_uv_on_closed);
}

static int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    redis_uv *u = xcalloc(1, sizeof *u);
    if (uv_poll_init(loop, &u->poll, ac->c.fd) != 0) {
        free(u);
        return -1;
    }
    u->ac = ac;
    u->poll.data = u;
    ac->ev.data = u;
    ac->ev.addRead = redis_uv_add_read;
    ac->ev.delRead = redis_uv_del_read;
    ac->ev.addWrite = redis_uv_add_write;
    ac->ev.delWrite = redis_uv_del_write;
    ac->ev.cleanup = redis_uv_cleanup;
    return 0;
}

static void redis_schedule_retry(redis *r)
{
    if (r->stopping)
        return;
    int delay = r->backoff / 2 + (int)(random() % (r->backoff / 2 + 1));
    r->backoff = r->backoff * 2 > r->backoff_max ? r->backoff_max : r->backoff * 2;
    uv_timer_start(&r->retry, redis_on_retry, (uint64_t)delay, 0);
}

static void redis_went_down(redis *r, const char *why)
{
    bool was_up = r->up;
    r->up = false;
    if (was_up) {
        log_warn("redis_down", "conn=%s host=%s port=%d reason=\"%s\"", r->name, r->host,
                 r->port, why);
        if (r->ev.on_down)
            r->ev.on_down(r->ctx, why);
    }
    redis_schedule_retry(r);
}

static void redis_became_up(redis *r)
{
    r->up = true;
    r->backoff = r->backoff_min;
    if (r->ever_up)
        r->reconnects++;
    r->ever_up = true;
    log_info("redis_up", "conn=%s host=%s port=%d", r->name, r->host, r->port);
    if (r->ev.on_up)
        r->ev.on_up(r->ctx);
}

static void redis_on_script_loaded(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis *r = ac->data;
    redis_script *s = privdata;
    redisReply *rep = reply;
    if (!r || !rep)
        return;                 /* connection gone; the next connect reloads */
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        log_error("redis_script_failed", "conn=%s script=%s error=\"%s\"", r->name, s->name,
                  rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        redisAsyncDisconnect(ac);
        return;
    }
    memcpy(s->sha, rep->str, 40);
    s->sha[40] = '\0';
    if (--r->loads_pending == 0)
        redis_became_up(r);
}

static void redis_on_subscribe_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    redis *r = ac->data;
    redisReply *rep = reply;
    if (!r || !rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
        return;
    const redisReply *kind = rep->element[0];
    if (kind->type != REDIS_REPLY_STRING)
        return;
    if (!strcmp(kind->str, "subscribe")) {
        redis_became_up(r);
    } else if (!strcmp(kind->str, "message") && rep->element[2]->type == REDIS_REPLY_STRING) {
        if (r->ev.on_message)
            r->ev.on_message(r->ctx, rep->element[2]->str, rep->element[2]->len);
    }
}

static void redis_on_connect(const redisAsyncContext *cac, int status)
{
    redis *r = cac->data;
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    if (status != REDIS_OK) {
        r->ac = NULL;           /* hiredis frees it after this callback */
        if (!r->ever_up || r->backoff == r->backoff_min)
            log_warn("redis_connect_failed", "conn=%s host=%s port=%d reason=\"%s\"", r->name,
                     r->host, r->port, cac->errstr);
        redis_schedule_retry(r);
        return;
    }
    if (r->channel) {
        redisAsyncCommand(ac, redis_on_subscribe_reply, NULL, "SUBSCRIBE %s", r->channel);
        return;
    }
    r->loads_pending = r->nscripts;
    if (r->nscripts == 0) {
        redis_became_up(r);
        return;
    }
    for (size_t i = 0; i < r->nscripts; i++)
        redisAsyncCommand(ac, redis_on_script_loaded, r->scripts[i], "SCRIPT LOAD %s",
                          r->scripts[i]->body);
}

static void redis_on_disconnect(const redisAsyncContext *cac, int status)
{
    redis *r = cac->data;
    (void)status;
    r->ac = NULL;               /* hiredis frees it after this callback */
    if (r->stopping)
        return;
    redis_went_down(r, cac->errstr[0] ? cac->errstr : "connection closed");
}

static void redis_connect(redis *r)
{
    if (r->stopping || r->ac)
        return;
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac) {
        redis_schedule_retry(r);
        return;
    }
    if (ac->err) {
        log_warn("redis_connect_failed", "conn=%s host=%s port=%d reason=\"%s\"", r->name,
                 r->host, r->port, ac->errstr);
        redisAsyncFree(ac);
        redis_schedule_retry(r);
        return;
    }
    if (redis_uv_attach(ac, r->loop) < 0) {
        redisAsyncFree(ac);
        redis_schedule_retry(r);
        return;
    }
    ac->data = r;
    r->ac = ac;
    redisAsyncSetConnectCallback(ac, redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
}

static void redis_on_retry(uv_timer_t *t)
{
    redis_connect(t->data);
}

redis *redis_create(uv_loop_t *loop, const char *name, const char *host, int port,
                    int backoff_min_ms, int backoff_max_ms, const redis_events *ev, void *ctx)
{
    redis *r = xcalloc(1, sizeof *r);
    r->loop = loop;
    r->name = xstrdup(name);
    r->host = xstrdup(host);
    r->port = port;
    r->backoff_min = backoff_min_ms > 1 ? backoff_min_ms : 2;
    r->backoff_max = backoff_max_ms > r->backoff_min ? backoff_max_ms : r->backoff_min;
    r->backoff = r->backoff_min;
    r->ev = *ev;
    r->ctx = ctx;
    uv_timer_init(loop, &r->retry);
    r->retry.data = r;
    /* First connect on the next loop turn, after scripts are registered. */
    uv_timer_start(&r->retry, redis_on_retry, 0, 0);
    return r;
}

void redis_add_script(redis *r, redis_script *s)
{
    r->scripts = xrealloc(r->scripts, (r->nscripts + 1) * sizeof *r->scripts);
    r->scripts[r->nscripts++] = s;
}

void redis_subscribe(redis *r, const char *channel)
{
    free(r->channel);
    r->channel = xstrdup(channel);
}

static void redis_on_closed(uv_handle_t *h)
{
    redis *r = h->data;
    free(r->scripts);
    free(r->channel);
    free(r->name);
    free(r->host);
    free(r);
}

void redis_destroy(redis *r)
{
    if (!r)
        return;
    r->stopping = true;
    r->up = false;
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);     /* pending callbacks get NULL now */
    }
    uv_timer_stop(&r->retry);
    uv_close((uv_handle_t *)&r->retry, redis_on_closed);
}

bool redis_up(const redis *r)
{
    return r->up;
}

uint64_t redis_reconnects(const redis *r)
{
    return r->reconnects;
}

/* hiredis hands replies to a redisCallbackFn; this adapts to redis_reply_fn
 * so that callers never see hiredis's context. */
typedef struct redis_call {
    redis_reply_fn fn;
    void *privdata;
} redis_call;

static void redis_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_call *c = privdata;
    c->fn(c->privdata, reply);
    free(c);
}

int redis_argv(redis *r, redis_reply_fn fn, void *privdata, int argc, const char **argv,
               const size_t *lens)
{
    if (!r->up || !r->ac)
        return -1;
    redis_call *c = xmalloc(sizeof *c);
    c->fn = fn;
    c->privdata = privdata;
    if (redisAsyncCommandArgv(r->ac, redis_on_reply, c, argc, argv, lens) != REDIS_OK) {
        free(c);
        return -1;
    }
    return 0;
}
