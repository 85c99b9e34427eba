/* registry_log.c — the room logs in Redis: publishing, with WAIT, and reading.
 *
 * Each room's log is a Redis stream (P room:{R}:log, fields q e t o s n [c]
 * [h] b: seq, epoch, time, origin, sender, sender name, content type,
 * header lines, body) with a dense sequence number beside it (room:{R}:seq).
 * The publish script appends and numbers a message in one step and says how
 * many other servers have members in the room; the reads (all through the
 * log_range script, which hands out a redacted message as its tombstone:
 * registry_redact.h) turn entries back into envelopes.
 *
 * WAIT (redis.wait_replicas > 0). Redis replicates asynchronously: a
 * master can acknowledge a publish script (INCR of the room's seq, XADD to
 * its log) and die before the replica has it. The promoted replica then
 * hands out that seq again, to the next message; every server that already
 * saw the lost message (its own relay, the bus, a catch-up read) holds that
 * seq as delivered, and its seqbuf drops the new message as a duplicate: a
 * confirmed message silently lost for some members and its successor lost
 * for others. So each publish is followed, on the same connection (WAIT
 * covers the writes of the connection it is sent on), by WAIT <n> <timeout>,
 * and its outcome goes to the caller (delivery, bus, RECEIPT) only after
 * WAIT answered. WAIT blocks the connection while it waits, so at most one
 * is in flight: publishes sent meanwhile are covered by the next WAIT,
 * sent when the current one answers. Without replicas each batch costs
 * wait_timeout_ms, not each message. Too few replicas by the deadline: the
 * messages go on (availability first) and are counted
 * (lectern_registry_unreplicated_total). The connection lost before WAIT
 * answered: the publish fails (no RECEIPT), as when the script's own reply
 * is lost.
 */
#include "registry_internal.h"

#include "log.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- publish ------------------------------------------------------------------ */

/* One publish. Its outcome is taken from the script's reply at once (hiredis
 * frees the reply when the callback returns); with WAIT it is held in a
 * registry_pub_list until the WAIT after it answered. */
struct registry_pub {
    registry_pub *next;
    envelope *env;
    registry_publish_fn fn;
    void *ctx;
    registry_pub_result res;
    bool answered;             /* the script's reply came; ok says how it went */
    bool ok;
    bool held;                 /* in a registry_pub_list: registry_on_wait completes it */
    bool lost;                 /* the connection went before its WAIT answered */
};

static void publish_finish(registry_pub *c)
{
    if (!c->ok || c->lost)
        c->res.status = REGISTRY_PUB_FAILED;
    c->fn(c->ctx, c->env, &c->res);
    free(c);
}

static void registry_pub_list_add(registry_pub_list *l, registry_pub *c)
{
    c->next = NULL;
    *l->tail = c;
    l->tail = &c->next;
}

/* Take the whole list (it is left empty). */
static registry_pub *registry_pub_list_take(registry_pub_list *l)
{
    registry_pub *head = l->head;
    l->head = NULL;
    l->tail = &l->head;
    return head;
}

/* The script's status word (publish.lua). */
static registry_pub_status registry_pub_status_of(const redisReply *r)
{
    static const struct { const char *name; registry_pub_status st; } words[] = {
        { "ok", REGISTRY_PUB_OK },         { "dup", REGISTRY_PUB_DUPLICATE },
        { "banned", REGISTRY_PUB_BANNED }, { "muted", REGISTRY_PUB_MUTED },
    };
    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)
        return REGISTRY_PUB_FAILED;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (r->len == strlen(words[i].name) && !memcmp(r->str, words[i].name, r->len))
            return words[i].st;
    return REGISTRY_PUB_FAILED;
}

static void registry_on_publish(void *privdata, redisReply *r)
{
    registry_pub *c = privdata;
    c->answered = true;
    c->ok = registry_reply_ok(r, "publish") && r->type == REDIS_REPLY_ARRAY && r->elements == 6 &&
            r->element[1]->type == REDIS_REPLY_STRING;
    if (c->ok) {
        c->res.status = registry_pub_status_of(r->element[0]);
        c->ok = c->res.status != REGISTRY_PUB_FAILED;
    }
    if (c->ok && (c->res.status == REGISTRY_PUB_OK || c->res.status == REGISTRY_PUB_DUPLICATE)) {
        free(c->env->id);
        c->env->id = xstrndup(r->element[1]->str, r->element[1]->len);
        c->env->seq = registry_reply_u64(r->element[2]);
        c->env->epoch = registry_reply_u64(r->element[3]);
        c->res.others = (int)registry_reply_u64(r->element[4]);
        if (c->res.status == REGISTRY_PUB_DUPLICATE)
            c->env->ts_ms = registry_reply_u64(r->element[5]);
    } else if (c->ok) {
        c->res.until_ms = registry_reply_u64(r->element[5]);
    }
    if (!c->held)
        publish_finish(c);
}

/* The connection is going (a WAIT could not be sent, or was lost): the
 * held publishes fail; one not answered yet completes with its reply,
 * which is NULL then. */
static void registry_release(registry_pub *c)
{
    while (c) {
        registry_pub *next = c->next;
        c->held = false;
        c->lost = true;
        if (c->answered)
            publish_finish(c);
        c = next;
    }
}

static void registry_on_wait(void *privdata, redisReply *r);

/* WAIT for the publishes in wait_cur (sent before it on this connection). */
static void registry_send_wait(registry *g)
{
    char n[16], t[16];
    snprintf(n, sizeof n, "%d", g->wait_replicas);
    snprintf(t, sizeof t, "%d", g->wait_timeout_ms);
    const char *argv[3] = { "WAIT", n, t };
    if (redis_argv(g->cmd, registry_on_wait, g, 3, argv, NULL) == 0) {
        g->wait_inflight = true;
        return;
    }
    registry_release(registry_pub_list_take(&g->wait_cur));
}

static void registry_on_wait(void *privdata, redisReply *r)
{
    registry *g = privdata;
    g->wait_inflight = false;
    /* Lists first, callbacks after: a callback may publish again. */
    registry_pub *batch = registry_pub_list_take(&g->wait_cur);
    if (g->wait_next.head) {
        g->wait_cur = g->wait_next;            /* tail points into the last call */
        registry_pub_list_take(&g->wait_next);
        registry_send_wait(g);
    }
    if (!r) {
        registry_release(batch);
        return;
    }
    bool enough = r->type == REDIS_REPLY_INTEGER && r->integer >= g->wait_replicas;
    if (!enough && !g->unreplicated) {
        if (r->type == REDIS_REPLY_INTEGER)
            log_warn("registry_unreplicated", "replicas=%lld wanted=%d timeout_ms=%d",
                     r->integer, g->wait_replicas, g->wait_timeout_ms);
        else
            log_warn("registry_unreplicated", "wanted=%d error=\"%s\"", g->wait_replicas,
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    } else if (enough && g->unreplicated) {
        log_info("registry_replicated", "replicas=%lld wanted=%d", r->integer, g->wait_replicas);
    }
    g->unreplicated = !enough;
    while (batch) {
        registry_pub *c = batch;
        batch = c->next;
        c->held = false;
        if (!c->answered) {
            /* Cannot be: replies come in order, the script's before the
             * WAIT's. Were it so, the script's reply completes it. */
            c->lost = true;
            continue;
        }
        if (!enough && c->ok)
            g->stats.unreplicated++;
        publish_finish(c);
    }
}

int registry_publish(registry *g, envelope *env, const registry_pub_opts *opts,
                     registry_publish_fn fn, void *ctx)
{
    if (!g->registered)
        return -1;
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, g->server_id);
    registry_args_str(&a, env->room);
    registry_args_num(&a, g->history_max);
    registry_args_num(&a, g->history_ttl_ms);
    registry_args_str(&a, opts && opts->check_user ? opts->check_user : "");
    if (opts && opts->idem_key && opts->idem_key_len) {
        registry_args_bytes(&a, opts->idem_key, opts->idem_key_len);
        registry_args_num(&a, opts->idem_window_ms > 0 ? opts->idem_window_ms : 1);
    } else {
        registry_args_str(&a, "");
        registry_args_num(&a, 0);
    }
    env->ts_ms = registry_realtime_ms();
    registry_args_str(&a, "t");
    registry_args_num(&a, (long long)env->ts_ms);
    registry_args_str(&a, "o");
    registry_args_str(&a, env->origin);
    registry_args_str(&a, "s");
    registry_args_str(&a, env->sender ? env->sender : "");
    registry_args_str(&a, "n");
    registry_args_str(&a, env->sender_name ? env->sender_name : "");
    if (env->content_type) {
        registry_args_str(&a, "c");
        registry_args_str(&a, env->content_type);
    }
    if (env->headers_len) {
        registry_args_str(&a, "h");
        registry_args_bytes(&a, env->headers, env->headers_len);
    }
    registry_args_str(&a, "b");
    registry_args_bytes(&a, env->body, env->body_len);

    registry_pub *c = xcalloc(1, sizeof *c);
    c->env = env;
    c->fn = fn;
    c->ctx = ctx;
    if (registry_args_eval(g, &a, REGISTRY_LUA_PUBLISH, registry_on_publish, c) < 0) {
        free(c);
        return -1;
    }
    if (g->wait_replicas > 0) {
        /* Pipelined right behind the script (see the essay). */
        c->held = true;
        if (g->wait_inflight) {
            registry_pub_list_add(&g->wait_next, c);
        } else {
            registry_pub_list_add(&g->wait_cur, c);
            registry_send_wait(g);
        }
    }
    return 0;
}

/* --- reading the log ------------------------------------------------------------ */

bool registry_log_entry(const char *room, const redisReply *e, envelope *out)
{
    memset(out, 0, sizeof *out);
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
        return false;
    out->room = xstrdup(room);
    out->id = xstrndup(e->element[0]->str, e->element[0]->len);
    const redisReply *f = e->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || k->len != 1)
            continue;
        switch (k->str[0]) {
        case 'q': out->seq = strtoull(v->str, NULL, 10); break;
        case 'e': out->epoch = strtoull(v->str, NULL, 10); break;
        case 't': out->ts_ms = strtoull(v->str, NULL, 10); break;
        case 'o': free(out->origin); out->origin = xstrndup(v->str, v->len); break;
        case 's': free(out->sender); out->sender = xstrndup(v->str, v->len); break;
        case 'n': free(out->sender_name); out->sender_name = xstrndup(v->str, v->len); break;
        case 'c': free(out->content_type); out->content_type = xstrndup(v->str, v->len); break;
        case 'h':
            free(out->headers);
            out->headers = xstrndup(v->str, v->len);
            out->headers_len = v->len;
            break;
        case 'b':
            free(out->body);
            out->body = v->len ? xstrndup(v->str, v->len) : NULL;
            out->body_len = v->len;
            break;
        default: break;
        }
    }
    if (!out->origin)
        out->origin = xstrdup("");
    return out->seq != 0;
}

typedef struct fetch_call {
    registry_fetch_fn fn;
    void *ctx;
    char room[];
} fetch_call;

static void registry_on_fetch(void *privdata, redisReply *r)
{
    fetch_call *c = privdata;
    /* log_range's answer: {oldest, entries newest first, cut}. */
    if (!registry_reply_ok(r, "fetch") || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        c->fn(c->ctx, NULL, 0, false);
        free(c);
        return;
    }
    const redisReply *arr = r->element[1];
    envelope *msgs = arr->elements ? xcalloc(arr->elements, sizeof *msgs) : NULL;
    size_t n = 0;
    for (size_t i = 0; i < arr->elements; i++) {
        /* Newest first: store oldest first. */
        const redisReply *e = arr->element[arr->elements - 1 - i];
        if (registry_log_entry(c->room, e, &msgs[n]))
            n++;
        else
            envelope_free(&msgs[n]);
    }
    c->fn(c->ctx, msgs, n, true);
    for (size_t i = 0; i < n; i++)
        envelope_free(&msgs[i]);
    free(msgs);
    free(c);
}

int registry_fetch_before(registry *g, const char *room, const char *before, size_t count,
                          registry_fetch_fn fn, void *ctx)
{
    if (!g->registered)
        return -1;
    /* Through log_range (descending, no byte bound) rather than a plain
     * XREVRANGE: it answers a redacted message as its tombstone, so a gap
     * fill or catch-up never delivers a redacted body. */
    char bound[64];
    if (before)
        snprintf(bound, sizeof bound, "(%s", before);
    else
        snprintf(bound, sizeof bound, "+");        /* the newest */
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, room);
    registry_args_str(&a, "d");
    registry_args_str(&a, "-");
    registry_args_str(&a, bound);
    registry_args_num(&a, (long long)count);
    registry_args_num(&a, (long long)1 << 50);
    size_t rl = strlen(room);
    fetch_call *c = xmalloc(sizeof *c + rl + 1);
    c->fn = fn;
    c->ctx = ctx;
    memcpy(c->room, room, rl + 1);
    if (registry_args_eval(g, &a, REGISTRY_LUA_LOG_RANGE, registry_on_fetch, c) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

typedef struct range_call {
    registry_range_fn fn;
    void *ctx;
    char room[];
} range_call;

/* Stream entries (array of [id, fields]) -> envelopes, in reply order. */
static envelope *registry_entries(const char *room, const redisReply *arr, size_t *n)
{
    *n = 0;
    if (!arr || arr->type != REDIS_REPLY_ARRAY || !arr->elements)
        return NULL;
    envelope *msgs = xcalloc(arr->elements, sizeof *msgs);
    for (size_t i = 0; i < arr->elements; i++) {
        if (registry_log_entry(room, arr->element[i], &msgs[*n]))
            (*n)++;
        else
            envelope_free(&msgs[*n]);
    }
    return msgs;
}

static void registry_on_range(void *privdata, redisReply *r)
{
    range_call *c = privdata;
    registry_range range = { 0 };
    envelope *oldest = NULL;
    size_t no = 0;
    bool ok = registry_reply_ok(r, "log_range") && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
              r->element[2]->type == REDIS_REPLY_INTEGER;
    if (ok) {
        oldest = registry_entries(c->room, r->element[0], &no);
        range.oldest = no ? oldest : NULL;
        range.msgs = registry_entries(c->room, r->element[1], &range.n);
        range.cut = r->element[2]->integer != 0;
    }
    c->fn(c->ctx, ok ? &range : NULL);
    if (no)
        envelope_free(oldest);
    free(oldest);
    for (size_t i = 0; i < range.n; i++)        /* what the callee did not take */
        envelope_free(&range.msgs[i]);
    free(range.msgs);
    free(c);
}

int registry_log_range(registry *g, const char *room, bool ascending, const char *low,
                       const char *high, size_t count, size_t max_bytes, registry_range_fn fn,
                       void *ctx)
{
    if (!g->registered)
        return -1;
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, room);
    registry_args_str(&a, ascending ? "a" : "d");
    registry_args_str(&a, low);
    registry_args_str(&a, high);
    registry_args_num(&a, (long long)count);
    registry_args_num(&a, (long long)max_bytes);
    size_t rl = strlen(room);
    range_call *c = xmalloc(sizeof *c + rl + 1);
    c->fn = fn;
    c->ctx = ctx;
    memcpy(c->room, room, rl + 1);
    if (registry_args_eval(g, &a, REGISTRY_LUA_LOG_RANGE, registry_on_range, c) < 0) {
        free(c);
        return -1;
    }
    return 0;
}
