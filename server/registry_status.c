/* registry_status.c — watching people's status through the registry.
 *
 * Four scripts (server/lua): watch.lua registers this server as a watcher
 * of some users and answers their statuses in the same atomic step;
 * unwatch.lua undoes it; status_get.lua only reads; hide.lua sets or clears
 * a user's hidden flag. The statuses themselves are written by the scripts
 * that count connections (prelude.lua's status_refresh, run by online,
 * sync_users and the reaping), which also publish each change to the
 * watching servers. A status is stored as JSON {v, on, since, seen}; the
 * reply of watch and status_get is {epoch, then one JSON text (or "") per
 * user}, decoded here into registry_status records.
 */
#include "registry_status.h"

#include "registry_internal.h"

#include "mem.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct status_call {
    registry_status_fn fn;
    void *ctx;
    size_t n;
} status_call;

static int64_t status_ms(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v)
         : json_is_real(v) ? (int64_t)json_real_value(v) : -1;
}

/* Fill st from a status object ({v, on, since, seen}); epoch is the
 * caller's. */
static void status_from_json(json_t *o, uint64_t epoch, registry_status *st)
{
    json_t *v = json_object_get(o, "v"), *on = json_object_get(o, "on");
    st->epoch = epoch;
    st->v = json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
    st->online = json_is_integer(on) && json_integer_value(on) == 1;
    st->since = st->online ? status_ms(o, "since") : -1;
    st->seen = status_ms(o, "seen");
}

static void status_on_reply(void *privdata, redisReply *r)
{
    status_call *c = privdata;
    registry_status *st = NULL;
    bool ok = registry_reply_ok(r, "status") && r->type == REDIS_REPLY_ARRAY &&
              r->elements == c->n + 1;
    if (ok) {
        uint64_t epoch = registry_reply_u64(r->element[0]);
        st = xcalloc(c->n ? c->n : 1, sizeof *st);
        for (size_t i = 0; i < c->n; i++) {
            const redisReply *e = r->element[i + 1];
            st[i] = (registry_status){ epoch, 0, false, -1, -1 };
            if (e->type != REDIS_REPLY_STRING || e->len == 0)
                continue;
            json_t *o = json_loadb(e->str, e->len, 0, NULL);
            if (o)
                status_from_json(o, epoch, &st[i]);
            json_decref(o);
        }
    }
    c->fn(c->ctx, st, ok ? c->n : 0, ok);
    free(st);
    free(c);
}

static int status_call_eval(registry *g, registry_args *a, registry_script_id id, size_t n,
                            registry_status_fn fn, void *ctx)
{
    status_call *c = xmalloc(sizeof *c);
    *c = (status_call){ fn, ctx, n };
    if (registry_args_eval(g, a, id, status_on_reply, c) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

int registry_status_watch(registry *g, const char *const *users, size_t n, bool reset,
                          registry_status_fn fn, void *ctx)
{
    if (!g->registered)
        return -1;
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, g->server_id);
    registry_args_str(&a, reset ? "1" : "0");
    for (size_t i = 0; i < n; i++)
        registry_args_str(&a, users[i]);
    return status_call_eval(g, &a, REGISTRY_LUA_WATCH, n, fn, ctx);
}

static void status_on_done(void *privdata, redisReply *r)
{
    registry_reply_ok(r, privdata);
}

void registry_status_unwatch(registry *g, const char *const *users, size_t n)
{
    if (!g->registered || n == 0)
        return;     /* a reconnect's watch with reset forgets them anyway */
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, g->server_id);
    for (size_t i = 0; i < n; i++)
        registry_args_str(&a, users[i]);
    registry_args_eval(g, &a, REGISTRY_LUA_UNWATCH, status_on_done, (void *)"unwatch");
}

int registry_status_get(registry *g, const char *const *users, size_t n, registry_status_fn fn,
                        void *ctx)
{
    if (!g->registered)
        return -1;
    registry_args a;
    registry_args_init(&a, g);
    for (size_t i = 0; i < n; i++)
        registry_args_str(&a, users[i]);
    return status_call_eval(g, &a, REGISTRY_LUA_STATUS_GET, n, fn, ctx);
}

typedef struct hide_call {
    void (*done)(void *ctx, bool ok);
    void *ctx;
} hide_call;

static void status_on_hidden(void *privdata, redisReply *r)
{
    hide_call *c = privdata;
    c->done(c->ctx, registry_reply_ok(r, "hide"));
    free(c);
}

int registry_status_hide(registry *g, const char *user, bool hide,
                         void (*done)(void *ctx, bool ok), void *ctx)
{
    if (!g->registered)
        return -1;
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, user);
    registry_args_str(&a, hide ? "1" : "0");
    hide_call *c = xmalloc(sizeof *c);
    *c = (hide_call){ done, ctx };
    if (registry_args_eval(g, &a, REGISTRY_LUA_HIDE, status_on_hidden, c) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

int registry_status_event_parse(const char *text, size_t len, registry_status_event *out)
{
    memset(out, 0, sizeof *out);
    json_t *o = json_loadb(text, len, 0, NULL);
    json_t *user = json_object_get(o, "user"), *e = json_object_get(o, "e");
    if (!json_is_string(user) || !json_is_string(e)) {
        json_decref(o);
        return -1;
    }
    status_from_json(o, strtoull(json_string_value(e), NULL, 10), &out->st);
    out->user = json_string_value(user);
    out->json = o;
    return 0;
}

void registry_status_event_free(registry_status_event *ev)
{
    json_decref(ev->json);
    ev->json = NULL;
}
