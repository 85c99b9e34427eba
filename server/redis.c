/* redis.c — one self-healing async Redis connection, optionally behind Sentinel.
 *
 * Lifecycle (r->state):
 *
 *   idle --timer--> [asking a Sentinel] --> connecting --> up
 *     ^                   |                     |          |
 *     +----- backoff -----+---------------------+----------+  (any failure)
 *
 * "connecting" runs from the TCP connect until the connection is usable:
 * (with a password: AUTH accepted; with Sentinels: ROLE says master, then)
 * every script loaded, or the SUBSCRIBE confirmed. AUTH goes first on every
 * connection to a Redis, wherever its address came from (configured, or a
 * Sentinel's answer), pipelined with the commands after it: replies come in
 * order, so a refused AUTH is seen, logged and the connection dropped (and
 * retried with backoff) before any later reply is looked at. One timer serves every state: in idle it is the
 * backoff, in the other states the deadline of the current step. hiredis
 * 0.14's async API has no connect timeout, and a server that accepts and
 * then says nothing (or an address that drops SYNs) would otherwise wedge
 * the connection forever.
 *
 * Contexts: hiredis frees a context itself after a failed connect or a
 * disconnect, and redisAsyncFree called inside one of the context's own
 * callbacks only takes effect when the callback returns. So every callback
 * first checks that its context is still the one r holds (r->ac):
 * code that abandons a context clears the pointer before freeing it, and
 * the context's late callbacks (each pending command gets NULL) are then
 * ignored. A context is never freed inside its connect or disconnect
 * callback (hiredis still uses it after those return). The sockets are
 * driven by redis_uv.c, the loop's adapter.
 *
 * Every command's callback receives a reply or NULL exactly once: hiredis
 * calls pending callbacks with NULL when the connection goes, and
 * redis_argv refuses (returns -1, no callback) when not up. Callers can rely
 * on that to free their per-command state.
 *
 * Backoff: min doubling to max with full jitter (uniform in [delay/2,
 * delay]), reset once a connection comes up.
 *
 * Sentinel mode (redis_use_sentinels). Before each connect the connection
 * asks the Sentinels where the master is (a redis_sentinels_query, see
 * redis_sentinels.c: the "asking" state, whose deadline this connection's
 * timer keeps); when no Sentinel answered, the normal backoff. With an
 * address, it connects there and sends ROLE first: only "master" goes on to
 * scripts or SUBSCRIBE. A Sentinel's answer can be stale (it has not
 * noticed a failover yet, or the old master just came back as a replica),
 * and a replica would accept the connection and the scripts and then refuse
 * every write. Any failure to get a connection up from an answer moves the
 * next question to the next Sentinel.
 *
 * Failovers are followed three ways. (1) A killed master closes our sockets:
 * the reconnect asks again (and keeps asking, refused or told "not master",
 * until the Sentinels have promoted the replica). (2) The Sentinels' watch
 * of +switch-master tells every follower the new address: a connection not
 * already there is dropped and reconnects at once (no backoff). (3) A
 * READONLY error reply to any command means we are talking to a demoted
 * master (a network partition healed, no socket closed): the connection is
 * dropped and rediscovers, and so does every other connection following
 * the same Sentinels at that address (a subscriber never writes, so it
 * would never see READONLY itself). Dropping fails the commands in flight
 * (their callbacks get NULL), exactly like a lost connection. The news of
 * (2) and (3) arrives inside other connections' callbacks: it only sets
 * `restart` and fires the timer at once, which acts.
 *
 * Reply watchdog (redis_set_reply_timeout). While up, commands sent with
 * redis_argv are counted until answered; when some wait and no reply at
 * all has come for the timeout, the connection is dropped like a lost one.
 * That is how a frozen Redis or a cut link (no FIN, no RST) is noticed.
 * The timer is the same one: in the up state it is the watchdog's, armed
 * only while commands wait (a pending restart keeps it at zero).
 */
#include "redis.h"

#include "log.h"
#include "mem.h"
#include "redis_uv.h"

#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deadline from the TCP connect to "up" (ROLE, SCRIPT LOADs or SUBSCRIBE).
 * Generous for a loaded Redis, short enough that an unreachable master (a
 * stale or wrong address from a Sentinel) does not stall a failover. */
#define REDIS_HANDSHAKE_TIMEOUT_MS 2000

typedef enum redis_state {
    REDIS_IDLE,          /* no connection; the timer is the backoff */
    REDIS_ASKING,        /* r->query asks a Sentinel; the timer is its deadline */
    REDIS_CONNECTING,    /* r->ac handshakes; the timer is its deadline */
    REDIS_UP,            /* r->ac is usable; the timer is off */
} redis_state;

struct redis {
    uv_loop_t *loop;
    char *name;
    char *host;                /* where r->ac connects (Sentinel mode: the last answer) */
    int port;
    redisAsyncContext *ac;     /* the connection, or NULL */
    redis_state state;
    bool stopping, ever_up;
    bool restart;              /* the timer fires for a +switch-master */
    uv_timer_t timer;
    int backoff_min, backoff_max, backoff;
    redis_events ev;
    void *ctx;
    char *user, *password;     /* AUTH on connect (password NULL: none) */
    char **channels;           /* subscriber connections: the channels */
    size_t nchannels;
    redis_script **scripts;
    size_t nscripts, loads_pending;
    uint64_t reconnects;
    /* Reply watchdog (up state): redis_argv commands not yet answered, and
     * when the last reply came (or the first of them was sent). */
    int reply_timeout_ms;      /* 0: none */
    size_t pending;
    uint64_t progress_ms;
    /* Sentinel mode */
    redis_sentinels *sentinels;
    redis_follower follower;   /* our hooks, registered with the Sentinels */
    redis_sentinels_query query;   /* where is the master? */
};

static void redis_on_timer(uv_timer_t *t);
static void redis_watch_check(redis *r);

/* --- one connection ---------------------------------------------------------- */

/* Failures are logged on the first attempts and then once per return of the
 * backoff to its minimum, so a long outage does not flood the log. */
static bool redis_log_failure(const redis *r)
{
    return !r->ever_up || r->backoff == r->backoff_min;
}

/* Arm the timer for a deadline or a backoff; a pending restart
 * (+switch-master) keeps it at zero. */
static void redis_timer(redis *r, uint64_t ms)
{
    uv_timer_start(&r->timer, redis_on_timer, r->restart ? 0 : ms, 0);
}

static void redis_schedule_retry(redis *r)
{
    r->state = REDIS_IDLE;
    if (r->stopping)
        return;
    int delay = r->backoff / 2 + (int)(random() % (r->backoff / 2 + 1));
    r->backoff = r->backoff * 2 > r->backoff_max ? r->backoff_max : r->backoff * 2;
    redis_timer(r, (uint64_t)delay);
}

/* The connection is gone (r->ac already cleared) or never came up. */
static void redis_went_down(redis *r, const char *why)
{
    bool was_up = r->state == REDIS_UP;
    r->state = REDIS_IDLE;
    r->pending = 0;
    if (was_up) {
        log_warn("redis_down", "conn=%s host=%s port=%d reason=\"%s\"", r->name, r->host,
                 r->port, why);
        if (r->ev.on_down)
            r->ev.on_down(r->ctx, why);
    } else if (r->sentinels) {
        /* The answer did not lead to a master: ask the next Sentinel first. */
        redis_sentinels_query_skip(&r->query);
    }
    redis_schedule_retry(r);
}

/* Close r->ac now, or when the callback running on it returns: its pending
 * commands get NULL. Then as any lost connection. */
static void redis_drop(redis *r, const char *why)
{
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    if (ac)
        redisAsyncFree(ac);
    redis_went_down(r, why);
}

static void redis_became_up(redis *r)
{
    r->state = REDIS_UP;
    if (!r->restart)
        uv_timer_stop(&r->timer);
    r->backoff = r->backoff_min;
    if (r->ever_up)
        r->reconnects++;
    r->ever_up = true;
    log_info("redis_up", "conn=%s host=%s port=%d", r->name, r->host, r->port);
    if (r->sentinels)
        redis_sentinels_confirm(r->sentinels, r->host, r->port);
    if (r->ev.on_up)
        r->ev.on_up(r->ctx);
}

/* A handshake command refused with NOAUTH: this Redis wants a password
 * that redis.password does not give. Logged as such (not as a failed
 * script), dropped and retried with backoff. */
static bool redis_noauth(redis *r, const redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ERROR || strncmp(rep->str, "NOAUTH", 6))
        return false;
    if (redis_log_failure(r))
        log_warn("redis_auth_failed", "conn=%s host=%s port=%d reason=\"%s\" "
                 "detail=\"this Redis requires a password: set redis.password\"", r->name,
                 r->host, r->port, rep->str);
    redis_drop(r, "AUTH required");
    return true;
}

static void redis_on_script_loaded(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis *r = ac->data;
    redis_script *s = privdata;
    redisReply *rep = reply;
    if (!rep || ac != r->ac)
        return;                 /* connection gone; the next connect reloads */
    if (redis_noauth(r, rep))
        return;
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        log_error("redis_script_failed", "conn=%s script=%s error=\"%s\"", r->name, s->name,
                  rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        redis_drop(r, "SCRIPT LOAD failed");
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
    if (!rep || ac != r->ac || redis_noauth(r, rep) || rep->type != REDIS_REPLY_ARRAY ||
        rep->elements < 3)
        return;
    const redisReply *kind = rep->element[0];
    if (kind->type != REDIS_REPLY_STRING)
        return;
    if (!strcmp(kind->str, "subscribe")) {
        /* One confirmation per channel, each with the count so far: up
         * when the last of them is in. */
        if (rep->element[2]->type == REDIS_REPLY_INTEGER &&
            rep->element[2]->integer == (long long)r->nchannels)
            redis_became_up(r);
    } else if (!strcmp(kind->str, "message") && rep->element[1]->type == REDIS_REPLY_STRING &&
               rep->element[2]->type == REDIS_REPLY_STRING) {
        if (r->ev.on_message)
            r->ev.on_message(r->ctx, rep->element[1]->str, rep->element[1]->len,
                             rep->element[2]->str, rep->element[2]->len);
    }
}

/* Connected (and, with Sentinels, confirmed master): load the scripts, or
 * subscribe. */
static void redis_handshake(redis *r)
{
    if (r->nchannels) {
        const char *argv[1 + REDIS_MAX_CHANNELS];
        argv[0] = "SUBSCRIBE";
        for (size_t i = 0; i < r->nchannels; i++)
            argv[1 + i] = r->channels[i];
        redisAsyncCommandArgv(r->ac, redis_on_subscribe_reply, NULL, (int)(1 + r->nchannels),
                              argv, NULL);
        return;
    }
    r->loads_pending = r->nscripts;
    if (r->nscripts == 0) {
        redis_became_up(r);
        return;
    }
    for (size_t i = 0; i < r->nscripts; i++)
        redisAsyncCommand(r->ac, redis_on_script_loaded, r->scripts[i], "SCRIPT LOAD %s",
                          r->scripts[i]->body);
}

/* AUTH's answer: +OK, or an error (WRONGPASS, NOAUTH, no password set):
 * then nothing else on this connection can work. */
static void redis_on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    redis *r = ac->data;
    redisReply *rep = reply;
    if (!rep || ac != r->ac)
        return;
    if (rep->type == REDIS_REPLY_STATUS && !strcmp(rep->str, "OK"))
        return;
    if (redis_log_failure(r))
        log_warn("redis_auth_failed", "conn=%s host=%s port=%d user=%s reason=\"%s\"", r->name,
                 r->host, r->port, r->user ? r->user : "default",
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    redis_drop(r, "AUTH refused");
}

/* ROLE's answer: ["master", offset, replicas] on a master. Anything else (a
 * replica, a Sentinel, an error) is not where commands may go. */
static void redis_on_role(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    redis *r = ac->data;
    redisReply *rep = reply;
    if (!rep || ac != r->ac || redis_noauth(r, rep))
        return;
    const char *role = "?";
    if (rep->type == REDIS_REPLY_ERROR)
        role = rep->str;
    else if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
             rep->element[0]->type == REDIS_REPLY_STRING)
        role = rep->element[0]->str;
    if (strcmp(role, "master") != 0) {
        log_warn("redis_not_master", "conn=%s host=%s port=%d role=\"%s\"", r->name, r->host,
                 r->port, role);
        redis_drop(r, "not a master");
        return;
    }
    redis_handshake(r);
}

static void redis_on_connect(const redisAsyncContext *cac, int status)
{
    redis *r = cac->data;
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    if (ac != r->ac)
        return;
    if (status != REDIS_OK) {
        r->ac = NULL;           /* hiredis frees it after this callback */
        if (redis_log_failure(r))
            log_warn("redis_connect_failed", "conn=%s host=%s port=%d reason=\"%s\"", r->name,
                     r->host, r->port, cac->errstr);
        redis_went_down(r, cac->errstr);
        return;
    }
    /* Never drop the context in here (hiredis uses it after we return):
     * the first command decides. */
    if (r->password) {
        const char *argv[3] = { "AUTH", r->user ? r->user : r->password, r->password };
        redisAsyncCommandArgv(ac, redis_on_auth, NULL, r->user ? 3 : 2, argv, NULL);
    }
    if (r->sentinels)
        redisAsyncCommand(ac, redis_on_role, NULL, "ROLE");
    else
        redis_handshake(r);
}

static void redis_on_disconnect(const redisAsyncContext *cac, int status)
{
    redis *r = cac->data;
    (void)status;
    if (cac != r->ac || r->stopping)
        return;                 /* one we dropped ourselves */
    r->ac = NULL;               /* hiredis frees it after this callback */
    const char *why = cac->errstr[0] ? cac->errstr : "connection closed";
    /* Closed before the handshake finished: something accepted the TCP
     * connection and then gave up on it, e.g. a TLS tunnel that could not
     * verify Redis's certificate (its own log says why). */
    if (r->state != REDIS_UP && redis_log_failure(r))
        log_warn("redis_connect_failed", "conn=%s host=%s port=%d reason=\"%s during the handshake\"",
                 r->name, r->host, r->port, why);
    redis_went_down(r, why);
}

/* Connect r->ac to r->host:r->port. */
static void redis_open(redis *r)
{
    char err[128];
    redisAsyncContext *ac = redis_uv_dial(r->loop, r->host, r->port, err, sizeof err);
    if (!ac) {
        if (redis_log_failure(r))
            log_warn("redis_connect_failed", "conn=%s host=%s port=%d reason=\"%s\"", r->name,
                     r->host, r->port, err);
        redis_went_down(r, err);
        return;
    }
    ac->data = r;
    r->ac = ac;
    r->state = REDIS_CONNECTING;
    redisAsyncSetConnectCallback(ac, redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
    redis_timer(r, REDIS_HANDSHAKE_TIMEOUT_MS);
}

/* --- discovery ------------------------------------------------------------------ */

/* The query's steps (redis_sentinels.h). */
static void redis_on_query(void *ctx, redis_sentinels_outcome outcome, const char *host, int port)
{
    redis *r = ctx;
    switch (outcome) {
    case REDIS_SENTINELS_ASKING:
        r->state = REDIS_ASKING;
        redis_timer(r, REDIS_SENTINEL_TIMEOUT_MS);
        break;
    case REDIS_SENTINELS_FOUND:
        free(r->host);
        r->host = xstrdup(host);
        r->port = port;
        redis_open(r);
        break;
    case REDIS_SENTINELS_NONE:
        redis_schedule_retry(r);
        break;
    }
}

static void redis_connect(redis *r)
{
    if (r->stopping || r->ac || redis_sentinels_query_busy(&r->query))
        return;
    if (r->sentinels) {
        redis_sentinels_query_start(&r->query, redis_log_failure(r));
    } else {
        redis_open(r);
    }
}

/* Give up the question and the connection in progress (or up). */
static void redis_abandon(redis *r, const char *why)
{
    redis_sentinels_query_cancel(&r->query);
    if (r->ac)
        redis_drop(r, why);
    r->state = REDIS_IDLE;
}

/* The watchdog: up, commands waiting, no reply for reply_timeout_ms. A
 * Redis that was frozen, or one behind a cut link, sends no FIN: without
 * this the connection would stay "up" while every command waits forever
 * (SENDs would hang instead of getting an ERROR). The timer is armed when
 * the first command goes out and re-armed from here while any wait. */
static void redis_watch_arm(redis *r)
{
    if (!r->reply_timeout_ms || r->restart || r->state != REDIS_UP)
        return;
    uint64_t now = uv_now(r->loop), due = r->progress_ms + (uint64_t)r->reply_timeout_ms;
    uv_timer_start(&r->timer, redis_on_timer, due > now ? due - now : 0, 0);
}

static void redis_watch_check(redis *r)
{
    if (!r->pending)
        return;
    if (uv_now(r->loop) - r->progress_ms < (uint64_t)r->reply_timeout_ms) {
        redis_watch_arm(r);
        return;
    }
    char why[96];
    snprintf(why, sizeof why, "no reply for %d ms (%zu commands waiting)", r->reply_timeout_ms,
             r->pending);
    redis_drop(r, why);
}

static void redis_on_timer(uv_timer_t *t)
{
    redis *r = t->data;
    if (r->stopping)
        return;
    if (r->restart) {
        /* The master moved: from wherever we are, ask again at once. */
        r->restart = false;
        redis_abandon(r, "the master moved (+switch-master)");
        r->backoff = r->backoff_min;
        redis_connect(r);
        return;
    }
    switch (r->state) {
    case REDIS_IDLE:
        redis_connect(r);
        break;
    case REDIS_ASKING:
        redis_sentinels_query_timeout(&r->query);
        break;
    case REDIS_CONNECTING:
        if (redis_log_failure(r))
            log_warn("redis_connect_failed", "conn=%s host=%s port=%d reason=\"timeout\"",
                     r->name, r->host, r->port);
        redis_drop(r, "timeout");
        break;
    case REDIS_UP:
        redis_watch_check(r);
        break;
    }
}

/* The master at host:port was demoted (one connection saw READONLY): the
 * other connections there move too. A subscriber connection never writes,
 * so it would not find out by itself; on a replica it would only receive
 * what replication forwards. */
static void redis_on_demoted(void *ctx, const char *host, int port)
{
    redis *r = ctx;
    if (r->stopping || !r->ac || r->port != port || strcmp(r->host, host) != 0)
        return;
    r->restart = true;
    uv_timer_start(&r->timer, redis_on_timer, 0, 0);
}

/* A +switch-master for our master: move unless already there. */
static void redis_on_switch(void *ctx, const char *host, int port)
{
    redis *r = ctx;
    if (r->stopping)
        return;
    if (r->ac && r->port == port && !strcmp(r->host, host))
        return;                 /* connecting or up at the new master already */
    r->restart = true;
    /* From the timer, not from inside the Sentinel connection's callback:
     * dropping runs the callers' callbacks, which may do anything. */
    uv_timer_start(&r->timer, redis_on_timer, 0, 0);
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
    r->state = REDIS_IDLE;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    /* First connect on the next loop turn, after scripts are registered. */
    uv_timer_start(&r->timer, redis_on_timer, 0, 0);
    return r;
}

void redis_add_script(redis *r, redis_script *s)
{
    r->scripts = xrealloc(r->scripts, (r->nscripts + 1) * sizeof *r->scripts);
    r->scripts[r->nscripts++] = s;
}

void redis_set_auth(redis *r, const char *user, const char *password)
{
    free(r->user);
    free(r->password);
    r->user = user && *user ? xstrdup(user) : NULL;
    r->password = password && *password ? xstrdup(password) : NULL;
}

void redis_subscribe(redis *r, const char *channel)
{
    if (r->nchannels == REDIS_MAX_CHANNELS)
        abort();    /* a programming error: the callers are fixed */
    r->channels = xrealloc(r->channels, (r->nchannels + 1) * sizeof *r->channels);
    r->channels[r->nchannels++] = xstrdup(channel);
}

void redis_use_sentinels(redis *r, redis_sentinels *s)
{
    r->sentinels = s;
    r->follower = (redis_follower){ redis_on_switch, redis_on_demoted, r };
    redis_sentinels_follow(s, &r->follower);
    redis_sentinels_query_init(&r->query, s, r->name, redis_on_query, r);
}

static void redis_on_closed(uv_handle_t *h)
{
    redis *r = h->data;
    free(r->scripts);
    free(r->user);
    free(r->password);
    for (size_t i = 0; i < r->nchannels; i++)
        free(r->channels[i]);
    free(r->channels);
    free(r->name);
    free(r->host);
    free(r);
}

void redis_destroy(redis *r)
{
    if (!r)
        return;
    r->stopping = true;
    r->state = REDIS_IDLE;      /* pending callbacks that send again get -1 */
    if (r->sentinels)
        redis_sentinels_unfollow(r->sentinels, &r->follower);
    redis_sentinels_query_cancel(&r->query);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);     /* pending callbacks get NULL now */
    }
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, redis_on_closed);
}

bool redis_up(const redis *r)
{
    return r->state == REDIS_UP;
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
    redis_call *c = privdata;
    redisReply *rep = reply;
    redis *r = ac->data;
    if (rep && ac == r->ac && r->pending) {
        r->pending--;
        r->progress_ms = uv_now(r->loop);
    }
    /* A master demoted to replica answers writes with READONLY: drop the
     * connection first (the commands behind this one fail), so that the
     * caller already sees "down" when it handles the error. */
    if (rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "READONLY", 8) &&
        ac == r->ac && !r->stopping) {
        log_warn("redis_readonly", "conn=%s host=%s port=%d", r->name, r->host, r->port);
        if (r->sentinels)
            redis_sentinels_demoted(r->sentinels, &r->follower, r->host, r->port);
        redis_drop(r, "READONLY: the master was demoted");
    }
    c->fn(c->privdata, rep);
    free(c);
}

int redis_argv(redis *r, redis_reply_fn fn, void *privdata, int argc, const char **argv,
               const size_t *lens)
{
    if (r->state != REDIS_UP || !r->ac)
        return -1;
    redis_call *c = xmalloc(sizeof *c);
    c->fn = fn;
    c->privdata = privdata;
    if (redisAsyncCommandArgv(r->ac, redis_on_reply, c, argc, argv, lens) != REDIS_OK) {
        free(c);
        return -1;
    }
    if (r->pending++ == 0) {
        r->progress_ms = uv_now(r->loop);
        redis_watch_arm(r);
    }
    return 0;
}

void redis_set_reply_timeout(redis *r, int ms)
{
    r->reply_timeout_ms = ms > 0 ? ms : 0;
}
