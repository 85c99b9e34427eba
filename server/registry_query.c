/* registry_query.c — presence and user lookups in the registry.
 *
 * Read-only questions answered in one round trip each, as JSON for the
 * HTTP API and the presence snapshots: who is present in a room (the
 * presence script: the who hash, read in HSCAN chunks up to presence_max
 * members, with its count and version), which of some users are online
 * anywhere (HMGET of the online hash), and in which rooms some users are
 * present (the user_rooms script over their user:U:rooms sets); for the
 * server API, a page of the live rooms (rooms_page) and where one user is
 * connected (user_sessions). A failed or refused call answers NULL;
 * callers turn that into their own error.
 */
#include "registry_internal.h"

#include "mem.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* --- presence queries ------------------------------------------------------------ */

typedef struct json_call {
    registry_json_fn fn;
    void *ctx;
    size_t n;
    char **users;          /* users_online: the names asked for */
    char room[];
} json_call;

static void json_call_free(json_call *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->users[i]);
    free(c->users);
    free(c);
}

/* A call answering about users[0..n) (copied). */
static json_call *json_call_users(registry_json_fn fn, void *ctx, const char *const *users,
                                  size_t n)
{
    json_call *c = xcalloc(1, sizeof *c + 1);
    c->fn = fn;
    c->ctx = ctx;
    c->n = n;
    c->users = xcalloc(n, sizeof *c->users);
    for (size_t k = 0; k < n; k++)
        c->users[k] = xstrdup(users[k]);
    return c;
}

static void registry_on_presence(void *privdata, redisReply *r)
{
    json_call *c = privdata;
    json_t *out = NULL;
    if (registry_reply_ok(r, "presence") && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[2]->type == REDIS_REPLY_ARRAY) {
        json_t *members = json_array();
        const redisReply *list = r->element[2];
        for (size_t i = 0; i < list->elements; i++) {
            if (list->element[i]->type != REDIS_REPLY_STRING)
                continue;
            json_t *m = json_loadb(list->element[i]->str, list->element[i]->len, 0, NULL);
            if (m)
                json_array_append_new(members, m);
        }
        uint64_t count = registry_reply_u64(r->element[0]);
        out = json_pack("{s:s, s:s, s:I, s:o, s:b, s:I}", "type", "snapshot", "room", c->room,
                        "count", (json_int_t)count, "members", members, "truncated",
                        (int)(json_array_size(members) < count), "v",
                        (json_int_t)registry_reply_u64(r->element[1]));
    }
    c->fn(c->ctx, out);
    json_decref(out);
    json_call_free(c);
}

int registry_presence(registry *g, const char *room, registry_json_fn fn, void *ctx)
{
    if (!g->registered)
        return -1;
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, room);
    registry_args_num(&a, g->presence_max);
    size_t rl = strlen(room);
    json_call *c = xcalloc(1, sizeof *c + rl + 1);
    c->fn = fn;
    c->ctx = ctx;
    memcpy(c->room, room, rl + 1);
    if (registry_args_eval(g, &a, REGISTRY_LUA_PRESENCE, registry_on_presence, c) < 0) {
        json_call_free(c);
        return -1;
    }
    return 0;
}

static void registry_on_online(void *privdata, redisReply *r)
{
    json_call *c = privdata;
    json_t *out = NULL;
    if (registry_reply_ok(r, "online") && r->type == REDIS_REPLY_ARRAY && r->elements == c->n) {
        json_t *map = json_object();
        for (size_t i = 0; i < c->n; i++)
            json_object_set_new(map, c->users[i],
                                json_boolean(r->element[i]->type != REDIS_REPLY_NIL));
        out = json_pack("{s:o}", "online", map);
    }
    c->fn(c->ctx, out);
    json_decref(out);
    json_call_free(c);
}

static void registry_on_user_rooms(void *privdata, redisReply *r)
{
    json_call *c = privdata;
    json_t *out = NULL;
    if (registry_reply_ok(r, "user_rooms") && r->type == REDIS_REPLY_ARRAY && r->elements == c->n) {
        json_t *map = json_object();
        for (size_t i = 0; i < c->n; i++) {
            json_t *rooms = json_array();
            const redisReply *e = r->element[i];
            for (size_t k = 0; e->type == REDIS_REPLY_ARRAY && k < e->elements; k++)
                if (e->element[k]->type == REDIS_REPLY_STRING)
                    json_array_append_new(rooms, json_stringn(e->element[k]->str,
                                                              e->element[k]->len));
            json_object_set_new(map, c->users[i], rooms);
        }
        out = json_pack("{s:o}", "rooms", map);
    }
    c->fn(c->ctx, out);
    json_decref(out);
    json_call_free(c);
}

int registry_users_rooms(registry *g, const char *const *users, size_t n, registry_json_fn fn,
                         void *ctx)
{
    if (!g->registered || n == 0)
        return -1;
    registry_args a;
    registry_args_init(&a, g);
    json_call *c = json_call_users(fn, ctx, users, n);
    for (size_t i = 0; i < n; i++)
        registry_args_str(&a, c->users[i]);
    if (registry_args_eval(g, &a, REGISTRY_LUA_USER_ROOMS, registry_on_user_rooms, c) < 0) {
        json_call_free(c);
        return -1;
    }
    return 0;
}

int registry_users_online(registry *g, const char *const *users, size_t n, registry_json_fn fn,
                          void *ctx)
{
    if (!g->registered || n == 0)
        return -1;
    char key[256];
    snprintf(key, sizeof key, "%sonline", g->prefix);
    const char **argv = xmalloc((n + 2) * sizeof *argv);
    argv[0] = "HMGET";
    argv[1] = key;
    json_call *c = json_call_users(fn, ctx, users, n);
    for (size_t i = 0; i < n; i++)
        argv[i + 2] = c->users[i];
    int rc = redis_argv(g->cmd, registry_on_online, c, (int)n + 2, argv, NULL);
    free(argv);
    if (rc < 0)
        json_call_free(c);
    return rc;
}

/* --- the server API's lookups ------------------------------------------------------ */

static void registry_on_rooms_page(void *privdata, redisReply *r)
{
    json_call *c = privdata;
    json_t *out = NULL;
    if (registry_reply_ok(r, "rooms_page") && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        (r->elements - 1) % 3 == 0) {
        json_t *rooms = json_array();
        const char *last = NULL;
        for (size_t i = 1; i + 2 < r->elements; i += 3) {
            const redisReply *name = r->element[i];
            if (name->type != REDIS_REPLY_STRING)
                continue;
            json_array_append_new(rooms, json_pack("{s:s%, s:I, s:I}", "room", name->str,
                                                   name->len, "members",
                                                   (json_int_t)registry_reply_u64(r->element[i + 1]),
                                                   "servers",
                                                   (json_int_t)registry_reply_u64(r->element[i + 2])));
            last = name->str;
        }
        bool more = registry_reply_u64(r->element[0]) == 1;
        out = json_pack("{s:o, s:o}", "rooms", rooms, "next",
                        more && last ? json_string(last) : json_null());
    }
    c->fn(c->ctx, out);
    json_decref(out);
    json_call_free(c);
}

int registry_rooms_page(registry *g, const char *after, int limit, registry_json_fn fn, void *ctx)
{
    if (!g->registered)
        return -1;
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, after);
    registry_args_num(&a, limit);
    json_call *c = xcalloc(1, sizeof *c + 1);
    c->fn = fn;
    c->ctx = ctx;
    if (registry_args_eval(g, &a, REGISTRY_LUA_ROOMS_PAGE, registry_on_rooms_page, c) < 0) {
        json_call_free(c);
        return -1;
    }
    return 0;
}

static void registry_on_user_sessions(void *privdata, redisReply *r)
{
    json_call *c = privdata;
    json_t *out = NULL;
    if (registry_reply_ok(r, "user_sessions") && r->type == REDIS_REPLY_ARRAY &&
        r->elements == 3 && r->element[1]->type == REDIS_REPLY_ARRAY &&
        r->element[2]->type == REDIS_REPLY_ARRAY) {
        uint64_t total = registry_reply_u64(r->element[0]);
        json_t *servers = json_array(), *rooms = json_array();
        const redisReply *w = r->element[1], *rl = r->element[2];
        for (size_t i = 0; i + 1 < w->elements; i += 2)
            if (w->element[i]->type == REDIS_REPLY_STRING)
                json_array_append_new(servers, json_pack("{s:s%, s:I}", "server",
                                                         w->element[i]->str, w->element[i]->len,
                                                         "connections",
                                                         (json_int_t)registry_reply_u64(
                                                             w->element[i + 1])));
        for (size_t i = 0; i < rl->elements; i++)
            if (rl->element[i]->type == REDIS_REPLY_STRING)
                json_array_append_new(rooms, json_stringn(rl->element[i]->str,
                                                          rl->element[i]->len));
        out = json_pack("{s:s, s:b, s:I, s:o, s:o}", "user", c->users[0], "online", total > 0,
                        "connections", (json_int_t)total, "servers", servers, "rooms", rooms);
    }
    c->fn(c->ctx, out);
    json_decref(out);
    json_call_free(c);
}

int registry_user_sessions(registry *g, const char *user, registry_json_fn fn, void *ctx)
{
    if (!g->registered)
        return -1;
    registry_args a;
    registry_args_init(&a, g);
    json_call *c = json_call_users(fn, ctx, &user, 1);
    registry_args_str(&a, c->users[0]);
    if (registry_args_eval(g, &a, REGISTRY_LUA_USER_SESSIONS, registry_on_user_sessions, c) < 0) {
        json_call_free(c);
        return -1;
    }
    return 0;
}
