/* redis_uv.c — the libuv adapter for hiredis's async API (see redis_uv.h).
 *
 * The adapter is our own (hiredis's ev hooks), not the one Debian's hiredis
 * 0.14 ships: that one ignores a poll error, and libuv stops the poll
 * handle when it reports one. A Redis that goes away while commands are in
 * flight (the socket errors instead of reading EOF) was then never noticed
 * and the connection stayed "up" forever. Here an error is handed to
 * hiredis as a read, which finds the failure and disconnects.
 *
 * Lifetime: one redis_uv per context, allocated by redis_uv_attach and freed
 * by the poll handle's close callback, which hiredis triggers through the
 * cleanup hook just before it frees the context. The hook clears u->ac
 * first, so a poll event that was already queued finds no context and does
 * nothing.
 *
 * Every connection has TCP keepalive on (redis_uv_dial): a reply watchdog
 * needs commands to wait, and a subscriber sends none.
 */
#include "redis_uv.h"

#include "mem.h"

#include <stdio.h>
#include <stdlib.h>

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

int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
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

redisAsyncContext *redis_uv_dial(uv_loop_t *loop, const char *host, int port, char *err,
                                 size_t errlen)
{
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    if (!ac) {
        snprintf(err, errlen, "cannot allocate a connection");
        return NULL;
    }
    if (ac->err) {
        snprintf(err, errlen, "%s", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    if (redis_uv_attach(ac, loop) < 0) {
        snprintf(err, errlen, "cannot poll the socket");
        redisAsyncFree(ac);
        return NULL;
    }
    /* TCP keepalive (idle 15 s, then 3 probes 5 s apart): the presence
     * subscriber sends nothing to be answered, so a path that silently
     * drops its flow (a stateful firewall forgetting an idle connection, a
     * dead host) would otherwise go unnoticed by it; the probes also keep
     * such a firewall's state alive. Best effort: failure changes nothing. */
    redisEnableKeepAlive(&ac->c);
    return ac;
}
