/* registry.c — cluster state in Redis: servers, rooms, presence, room logs.
 *
 * Keys (P = registry.prefix, R = room name, S = server id). Room keys carry
 * the room in braces so that a Redis Cluster would keep them in one slot.
 *
 *   P epoch                 string  registry epoch (microseconds at creation);
 *                                   a new one means Redis lost its data
 *   P servers               set     registered server ids
 *   P srv:S:alive           string  liveness, expires after registry.ttl_ms
 *   P srv:S:rooms           set     rooms where S has members
 *   P srv:S:users           hash    user -> connections on S
 *   P online                hash    user -> connections cluster-wide
 *   P user:U:rooms          set     rooms where user U is present (U in their
 *                                   who hashes): /api/presence?users= asks
 *                                   it to answer only about users who share
 *                                   a room with the caller
 *   P room:{R}:srv          hash    server -> subscriptions to R on it
 *   P room:{R}:who          hash    user -> {"id","name","since"} (present users)
 *   P room:{R}:cnt          hash    user -> subscriptions to R cluster-wide
 *   P room:{R}:who:S        hash    user -> subscriptions to R on S (for reaping)
 *   P room:{R}:pv           string  presence version (one per change)
 *   P room:{R}:seq          string  dense message sequence (INCR)
 *   P room:{R}:log          stream  recent messages (MAXLEN ~ history_max);
 *                                   fields q e t o s n [c] [h] b
 *   P room:{R}:red          hash    message id -> {"by","at"}: redacted
 *                                   messages of the log (registry_redact.h);
 *                                   lives as long as the log
 *   channel P presence      presence events (JSON), published by the scripts
 *   channel P moderation    kicks and bans (JSON), published by moderate.lua
 *   P room:{R}:ban, :mute, :modinfo   bans and mutes (registry_moderation.h)
 *
 * Bounded growth: when the last member of a room anywhere leaves, its who,
 * cnt and srv hashes go away and its log, seq and pv expire after
 * registry.history_ttl_ms; logs of rooms nobody joins get the same TTL.
 * user:U:rooms mirrors the who hashes (member_add, member_remove, and
 * room_cleanup for whatever a who hash still held): it exists while U is
 * present somewhere.
 *
 * Every mutation is a Lua script (atomic), one file each in server/lua,
 * compiled in by scripts/embed-lua (registry_lua.h). The scripts share a
 * prelude of helper functions (server/lua/prelude.lua); each receives the
 * key prefix as ARGV[1] and builds key names itself (fine on a single Redis
 * or behind Sentinel).
 *
 * Removals take away only what this server's own records hold (who:S,
 * srv:S:users). A server cut off from Redis keeps queueing commands; when
 * the link returns, a leave it queued may run after the others reaped it
 * (its records gone) and after the same user rejoined on another server:
 * decrementing the cluster-wide counts regardless would take that other
 * connection's presence away.
 *
 * Mirror and replay: this server's rooms, members and online users are
 * mirrored locally. On every (re)connect: "hello" clears what an earlier
 * incarnation of this server id left (as a reap would), registers the
 * server, then the mirror is replayed with counts. Joins of a room's first
 * member (or the first member replayed) report the room's (epoch, seq).
 *
 * High availability: with redis.sentinels both connections (commands, and
 * the presence subscription) find the master through Sentinel and follow
 * failovers (server/redis.c, server/redis_sentinels.c). A failover looks
 * like any reconnect here, and the reconnect is what rebuilds this server's
 * part on the new master: hello, the replay of the mirror, a presence
 * resync, and each room's (epoch, seq) for the relay's catch-up. With
 * redis.wait_replicas, each publish also waits for Redis's WAIT
 * (registry_log.c).
 *
 * Files. This one holds the connections, registration, the mirror and its
 * replay, heartbeat and reaping; registry_log.c publishes to the room logs
 * (with WAIT) and reads them; registry_query.c answers presence and user
 * lookups. registry_internal.h is what they share.
 */
#include "registry_internal.h"

#include "log.h"
#include "mem.h"
#include "registry_lua.h"
#include "strmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- Lua (server/lua) ---------------------------------------------------- */

/* Each script's ARGV and reply are described at the top of its file; its
 * sha is filled by SCRIPT LOAD on every connect (redis.c). */
static redis_script registry_scripts[REGISTRY_LUA_COUNT] = {
    [REGISTRY_LUA_HELLO] = { "hello", registry_lua_hello, "" },
    [REGISTRY_LUA_BYE] = { "bye", registry_lua_bye, "" },
    [REGISTRY_LUA_SYNC_ROOM] = { "sync_room", registry_lua_sync_room, "" },
    [REGISTRY_LUA_SYNC_USERS] = { "sync_users", registry_lua_sync_users, "" },
    [REGISTRY_LUA_HEARTBEAT] = { "heartbeat", registry_lua_heartbeat, "" },
    [REGISTRY_LUA_REAP] = { "reap", registry_lua_reap, "" },
    [REGISTRY_LUA_JOIN] = { "join", registry_lua_join, "" },
    [REGISTRY_LUA_LEAVE] = { "leave", registry_lua_leave, "" },
    [REGISTRY_LUA_ONLINE] = { "online", registry_lua_online, "" },
    [REGISTRY_LUA_PUBLISH] = { "publish", registry_lua_publish, "" },
    [REGISTRY_LUA_PRESENCE] = { "presence", registry_lua_presence, "" },
    [REGISTRY_LUA_LOG_RANGE] = { "log_range", registry_lua_log_range, "" },
    [REGISTRY_LUA_USER_ROOMS] = { "user_rooms", registry_lua_user_rooms, "" },
    [REGISTRY_LUA_WATCH] = { "watch", registry_lua_watch, "" },
    [REGISTRY_LUA_UNWATCH] = { "unwatch", registry_lua_unwatch, "" },
    [REGISTRY_LUA_STATUS_GET] = { "status_get", registry_lua_status_get, "" },
    [REGISTRY_LUA_HIDE] = { "hide", registry_lua_hide, "" },
    [REGISTRY_LUA_ROOMS_PAGE] = { "rooms_page", registry_lua_rooms_page, "" },
    [REGISTRY_LUA_USER_SESSIONS] = { "user_sessions", registry_lua_user_sessions, "" },
    [REGISTRY_LUA_CONTACTS_SET] = { "contacts_set", registry_lua_contacts_set, "" },
    [REGISTRY_LUA_CONTACTS_CHANGED] = { "contacts_changed", registry_lua_contacts_changed, "" },
    [REGISTRY_LUA_REDACT] = { "redact", registry_lua_redact, "" },
    [REGISTRY_LUA_REDACT_UNDO] = { "redact_undo", registry_lua_redact_undo, "" },
    [REGISTRY_LUA_MODERATE] = { "moderate", registry_lua_moderate, "" },
    [REGISTRY_LUA_MODERATION_GET] = { "moderation_get", registry_lua_moderation_get, "" },
};

/* --- the mirror ------------------------------------------------------------ */

/* Mirror entries hold their strings in the same allocation (one malloc
 * per member and per user: they are per-connection memory), keyed in
 * compact tables (strmap.h: 16 bytes of links per entry). */
typedef struct reg_member {
    strmap_node node;
    uint32_t count;
    char user[];               /* user NUL name NUL, name empty when it is the user */
} reg_member;

#define REG_MEMBER_KEY_OFF (offsetof(reg_member, user) - offsetof(reg_member, node))

static const char *member_name(const reg_member *m)
{
    const char *name = m->user + m->node.len + 1;
    return *name ? name : m->user;
}

typedef struct reg_room {
    strmap_node node;
    uint32_t total;            /* subscriptions: the members' counts summed */
    strmap members;            /* reg_member by user */
    char name[];
} reg_room;

#define REG_ROOM_KEY_OFF (offsetof(reg_room, name) - offsetof(reg_room, node))

typedef struct reg_user {
    strmap_node node;
    uint32_t count;
    char user[];
} reg_user;

#define REG_USER_KEY_OFF (offsetof(reg_user, user) - offsetof(reg_user, node))

static reg_room *room_of(strmap_node *n)
{
    return n ? (reg_room *)(void *)((char *)n - offsetof(reg_room, node)) : NULL;
}

static reg_member *member_of(strmap_node *n)
{
    return n ? (reg_member *)(void *)((char *)n - offsetof(reg_member, node)) : NULL;
}

static reg_user *user_of(strmap_node *n)
{
    return n ? (reg_user *)(void *)((char *)n - offsetof(reg_user, node)) : NULL;
}

static reg_room *room_find(const registry *g, const char *room)
{
    return room_of(strmap_find(&g->rooms, room, strlen(room)));
}

static void registry_register(registry *g);

static void registry_set_up(registry *g, bool up)
{
    if (g->registered == up)
        return;
    g->registered = up;
    if (g->ev.on_state)
        g->ev.on_state(g->ctx, up);
}

/* --- argv helpers ----------------------------------------------------------- */

static void args_grow(registry_args *a)
{
    if (a->n < a->cap)
        return;
    a->cap = a->cap ? a->cap * 2 : 16;
    a->v = xrealloc(a->v, (size_t)a->cap * sizeof *a->v);
    a->l = xrealloc(a->l, (size_t)a->cap * sizeof *a->l);
    a->num = xrealloc(a->num, (size_t)a->cap * sizeof *a->num);
}

void registry_args_bytes(registry_args *a, const void *p, size_t len)
{
    args_grow(a);
    a->v[a->n] = p ? p : "";
    a->l[a->n] = len;
    a->num[a->n++] = -1;
}

void registry_args_str(registry_args *a, const char *s)
{
    registry_args_bytes(a, s, strlen(s));
}

void registry_args_num(registry_args *a, long long x)
{
    if (a->nnum == a->numcap) {
        a->numcap = a->numcap ? a->numcap * 2 : 8;
        a->nums = xrealloc(a->nums, (size_t)a->numcap * sizeof *a->nums);
    }
    int slot = a->nnum++;
    int len = snprintf(a->nums[slot], sizeof a->nums[0], "%lld", x);
    args_grow(a);
    a->v[a->n] = NULL;
    a->l[a->n] = (size_t)len;
    a->num[a->n++] = slot;
}

void registry_args_init(registry_args *a, registry *g)
{
    memset(a, 0, sizeof *a);
    registry_args_str(a, "EVALSHA");
    registry_args_str(a, "");
    registry_args_str(a, "0");
    registry_args_str(a, g->prefix);
}

/* Resolve number slots; the arrays are ready to send. */
static void args_seal(registry_args *a)
{
    for (int i = 0; i < a->n; i++)
        if (a->num[i] >= 0)
            a->v[i] = a->nums[a->num[i]];
}

static void args_free(registry_args *a)
{
    free(a->v);
    free(a->l);
    free(a->num);
    free(a->nums);
}

int registry_args_eval(registry *g, registry_args *a, registry_script_id id, redis_reply_fn fn,
                       void *privdata)
{
    const redis_script *script = &registry_scripts[id];
    args_seal(a);
    a->v[1] = script->sha;
    a->l[1] = strlen(script->sha);
    int rc = redis_argv(g->cmd, fn, privdata, a->n, a->v, a->l);
    args_free(a);
    return rc;
}

uint64_t registry_realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t registry_reply_u64(const redisReply *r)
{
    if (!r)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return (uint64_t)r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoull(r->str, NULL, 10);
    return 0;
}

bool registry_reply_ok(const redisReply *r, const char *what)
{
    if (!r)
        return false;
    if (r->type == REDIS_REPLY_ERROR) {
        log_error("registry_error", "call=%s error=\"%s\"", what, r->str);
        return false;
    }
    return true;
}
/* --- joins and room sync ----------------------------------------------------- */

typedef struct join_call {
    registry *g;
    bool report;             /* pass the room's (epoch, seq) to on_room_sync */
    char room[];
} join_call;

static join_call *join_call_new(registry *g, const char *room, bool report)
{
    size_t rl = strlen(room);
    join_call *c = xmalloc(sizeof *c + rl + 1);
    c->g = g;
    c->report = report;
    memcpy(c->room, room, rl + 1);
    return c;
}

/* Reply {epoch, seq} for a room (join, sync_room, status). The room is
 * looked up by name: it may have been left while the call was in flight. */
static void registry_on_room_state(void *privdata, redisReply *r)
{
    join_call *c = privdata;
    registry *g = c->g;
    if (registry_reply_ok(r, "room_state") && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && c->report) {
        if (room_find(g, c->room) && g->ev.on_room_sync)
            g->ev.on_room_sync(g->ctx, c->room, registry_reply_u64(r->element[0]), registry_reply_u64(r->element[1]));
    }
    free(c);
}

static void registry_on_done(void *privdata, redisReply *r)
{
    registry_reply_ok(r, privdata);
}

void registry_join(registry *g, const char *room, const char *user, const char *name)
{
    reg_room *rm = room_find(g, room);
    bool first = !rm;
    if (!rm) {
        size_t rl = strlen(room);
        rm = xmalloc(sizeof *rm + rl + 1);
        rm->total = 0;
        strmap_init(&rm->members, REG_MEMBER_KEY_OFF);
        memcpy(rm->name, room, rl + 1);
        strmap_insert(&g->rooms, &rm->node, rl);
    }
    size_t ul = strlen(user);
    reg_member *m = member_of(strmap_find(&rm->members, user, ul));
    if (!m) {
        size_t nl = strcmp(name, user) ? strlen(name) : 0;
        m = xmalloc(sizeof *m + ul + nl + 2);
        m->count = 0;
        memcpy(m->user, user, ul + 1);
        memcpy(m->user + ul + 1, name, nl);
        m->user[ul + 1 + nl] = '\0';
        strmap_insert(&rm->members, &m->node, ul);
    }
    m->count++;
    rm->total++;
    if (!g->registered)
        return;             /* the replay after registration sends it */
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, g->server_id);
    registry_args_str(&a, room);
    registry_args_str(&a, user);
    registry_args_str(&a, member_name(m));
    registry_args_num(&a, (long long)registry_realtime_ms());
    join_call *c = join_call_new(g, room, first);
    if (registry_args_eval(g, &a, REGISTRY_LUA_JOIN, registry_on_room_state, c) < 0)
        free(c);
}

/* Take rm out of the mirror and free it (its members gone already, or
 * freed here). */
static void room_free(registry *g, reg_room *rm)
{
    strmap_node *n, *next;
    for (n = strmap_first(&rm->members); n; n = next) {
        next = strmap_next(&rm->members, n);
        strmap_remove(&rm->members, n);
        free(member_of(n));
    }
    strmap_deinit(&rm->members);
    strmap_remove(&g->rooms, &rm->node);
    free(rm);
}

void registry_leave(registry *g, const char *room, const char *user)
{
    reg_room *rm = room_find(g, room);
    reg_member *m = rm ? member_of(strmap_find(&rm->members, user, strlen(user))) : NULL;
    if (!m)
        return;
    if (g->registered) {
        registry_args a;
        registry_args_init(&a, g);
        registry_args_str(&a, g->server_id);
        registry_args_str(&a, room);
        registry_args_str(&a, user);
        registry_args_num(&a, 1);
        registry_args_num(&a, g->history_ttl_ms);
        registry_args_eval(g, &a, REGISTRY_LUA_LEAVE, registry_on_done, (void *)"leave");
    }
    rm->total--;
    if (--m->count == 0) {
        strmap_remove(&rm->members, &m->node);
        free(m);
    }
    if (rm->total == 0)
        room_free(g, rm);
}

static void registry_send_online(registry *g, const char *user, long long k)
{
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, g->server_id);
    registry_args_str(&a, user);
    registry_args_num(&a, k);
    registry_args_eval(g, &a, REGISTRY_LUA_ONLINE, registry_on_done, (void *)"online");
}

const char *registry_online(registry *g, const char *user, size_t ul)
{
    reg_user *u = user_of(strmap_find(&g->users, user, ul));
    if (!u) {
        u = xmalloc(sizeof *u + ul + 1);
        u->count = 0;
        memcpy(u->user, user, ul);
        u->user[ul] = '\0';
        strmap_insert(&g->users, &u->node, ul);
    }
    u->count++;
    if (g->registered)
        registry_send_online(g, u->user, 1);
    return u->user;
}

void registry_offline(registry *g, const char *user)
{
    reg_user *u = user_of(strmap_find(&g->users, user, strlen(user)));
    if (!u)
        return;
    if (g->registered)
        registry_send_online(g, user, -1);
    if (--u->count == 0) {
        strmap_remove(&g->users, &u->node);
        free(u);
    }
}

/* --- registration, heartbeat, reaping -------------------------------------- */

/* Make Redis's view of one room match the mirror (absent: no members). */
static void registry_sync_room(registry *g, const char *room, const reg_room *rm)
{
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, g->server_id);
    registry_args_str(&a, room);
    registry_args_num(&a, (long long)registry_realtime_ms());
    registry_args_num(&a, g->history_ttl_ms);
    for (strmap_node *n = rm ? strmap_first(&rm->members) : NULL; n;
         n = strmap_next(&rm->members, n)) {
        const reg_member *m = member_of(n);
        registry_args_str(&a, m->user);
        registry_args_str(&a, member_name(m));
        registry_args_num(&a, m->count);
    }
    join_call *c = join_call_new(g, room, rm != NULL);
    if (registry_args_eval(g, &a, REGISTRY_LUA_SYNC_ROOM, registry_on_room_state, c) < 0)
        free(c);
}

static void registry_on_hello(void *privdata, redisReply *r)
{
    registry *g = privdata;
    g->registering = false;
    if (!registry_reply_ok(r, "hello") || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY)
        return;         /* the connection is gone, or worse; on_up retries */

    /* Reconcile: every room of the mirror, and every room Redis still
     * attributes to this server (an earlier incarnation, or commands lost
     * in a disconnect). Replies come in order, all after hello's. */
    const redisReply *known = r->element[1];
    for (size_t i = 0; i < known->elements; i++) {
        const char *room = known->element[i]->str;
        if (known->element[i]->type != REDIS_REPLY_STRING)
            continue;
        if (!room_find(g, room))
            registry_sync_room(g, room, NULL);
    }
    for (strmap_node *n = strmap_first(&g->rooms); n; n = strmap_next(&g->rooms, n))
        registry_sync_room(g, room_of(n)->name, room_of(n));
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, g->server_id);
    for (strmap_node *n = strmap_first(&g->users); n; n = strmap_next(&g->users, n)) {
        const reg_user *u = user_of(n);
        registry_args_str(&a, u->user);
        registry_args_num(&a, u->count);
    }
    registry_args_eval(g, &a, REGISTRY_LUA_SYNC_USERS, registry_on_done, (void *)"sync_users");

    log_info("registry_registered", "server=%s rooms=%u users=%u epoch=%s", g->server_id,
             g->rooms.count, g->users.count,
             r->element[0]->type == REDIS_REPLY_STRING ? r->element[0]->str : "?");
    registry_set_up(g, true);
}

static void registry_register(registry *g)
{
    if (g->registering || !redis_up(g->cmd))
        return;
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, g->server_id);
    registry_args_num(&a, g->ttl_ms);
    if (registry_args_eval(g, &a, REGISTRY_LUA_HELLO, registry_on_hello, g) == 0)
        g->registering = true;
}

static void registry_on_heartbeat(void *privdata, redisReply *r)
{
    registry *g = privdata;
    if (!registry_reply_ok(r, "heartbeat") || r->type != REDIS_REPLY_INTEGER || r->integer != 0)
        return;
    /* Someone reaped us (our heartbeats stalled past the TTL): our members
     * were made to leave. Register again; the replay puts them back. */
    log_warn("registry_reaped", "server=%s action=reregister", g->server_id);
    g->stats.reregistrations++;
    registry_set_up(g, false);
    registry_register(g);
}

static void registry_on_heartbeat_timer(uv_timer_t *t)
{
    registry *g = t->data;
    if (!g->registered)
        return;
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, g->server_id);
    registry_args_num(&a, g->ttl_ms);
    registry_args_eval(g, &a, REGISTRY_LUA_HEARTBEAT, registry_on_heartbeat, g);
}

static void registry_on_reap(void *privdata, redisReply *r)
{
    registry *g = privdata;
    if (!registry_reply_ok(r, "reap") || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        g->stats.reaped_servers++;
        log_warn("registry_reaped_server", "server=%s dead=%s", g->server_id, r->element[i]->str);
    }
}

static void registry_on_reap_timer(uv_timer_t *t)
{
    registry *g = t->data;
    if (!g->registered)
        return;
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, g->server_id);
    registry_args_num(&a, g->history_ttl_ms);
    registry_args_eval(g, &a, REGISTRY_LUA_REAP, registry_on_reap, g);
}

static void registry_on_cmd_up(void *ctx)
{
    registry *g = ctx;
    g->stats.reconnects = redis_reconnects(g->cmd);
    registry_register(g);
}

static void registry_on_cmd_down(void *ctx, const char *why)
{
    (void)why;
    registry *g = ctx;
    g->registering = false;
    registry_set_up(g, false);
}

/* The subscriber connection's channels: P presence (room presence, every
 * server), P srv:S:status (status changes of the users this server
 * watches, this server only), P contacts (a user whose contact list
 * changed, every server) and P moderation (kicks and bans, every server:
 * registry_moderation.h). */
static void registry_on_event(void *ctx, const char *channel, size_t chlen, const char *payload,
                              size_t len)
{
    registry *g = ctx;
    size_t pl = strlen(g->prefix);
    const char *name = chlen >= pl ? channel + pl : "";
    size_t nl = chlen >= pl ? chlen - pl : 0;
    if (nl == 10 && !memcmp(name, "moderation", 10)) {
        if (g->ev.on_moderation)
            g->ev.on_moderation(g->ctx, payload, len);
        return;
    }
    if (nl == 8 && !memcmp(name, "contacts", 8)) {
        if (g->ev.on_contacts_changed)
            g->ev.on_contacts_changed(g->ctx, payload, len);
        return;
    }
    if (nl != 8 || memcmp(name, "presence", 8)) {
        if (g->ev.on_status)
            g->ev.on_status(g->ctx, payload, len);
        return;
    }
    json_error_t err;
    json_t *v = json_loadb(payload, len, 0, &err);
    const char *room = v ? json_string_value(json_object_get(v, "room")) : NULL;
    json_int_t pv = v ? json_integer_value(json_object_get(v, "v")) : 0;
    if (room && g->ev.on_presence)
        g->ev.on_presence(g->ctx, room, pv > 0 ? (uint64_t)pv : 0, payload, len);
    json_decref(v);
}

static void registry_on_sub_up(void *ctx)
{
    registry *g = ctx;
    if (g->ev.on_presence_resync)
        g->ev.on_presence_resync(g->ctx);
}

registry *registry_create(uv_loop_t *loop, const registry_config *cfg, const registry_events *ev,
                          void *ctx, char *err, size_t errlen)
{
    redis_sentinels *sentinels = NULL;
    if (cfg->sentinels && *cfg->sentinels) {
        char why[200];
        sentinels = redis_sentinels_create(loop, cfg->sentinels, cfg->sentinel_master,
                                           cfg->backoff_min_ms, cfg->backoff_max_ms, why,
                                           sizeof why);
        if (!sentinels) {
            snprintf(err, errlen, "redis.sentinels: %s", why);
            return NULL;
        }
    }
    registry *g = xcalloc(1, sizeof *g);
    g->sentinels = sentinels;
    g->wait_replicas = cfg->wait_replicas;
    g->wait_timeout_ms = cfg->wait_timeout_ms > 0 ? cfg->wait_timeout_ms : 1;
    g->wait_cur.tail = &g->wait_cur.head;
    g->wait_next.tail = &g->wait_next.head;
    g->loop = loop;
    g->ev = *ev;
    g->ctx = ctx;
    strmap_init(&g->rooms, REG_ROOM_KEY_OFF);
    strmap_init(&g->users, REG_USER_KEY_OFF);
    g->host = xstrdup(cfg->host);
    g->port = cfg->port;
    g->prefix = xstrdup(cfg->prefix);
    g->server_id = xstrdup(cfg->server_id);
    g->heartbeat_ms = cfg->heartbeat_ms;
    g->ttl_ms = cfg->ttl_ms;
    g->reap_ms = cfg->reap_ms;
    g->history_max = cfg->history_max;
    g->history_ttl_ms = cfg->history_ttl_ms;
    g->presence_max = cfg->presence_max;

    redis_events cmd_ev = { registry_on_cmd_up, registry_on_cmd_down, NULL };
    g->cmd = redis_create(loop, "registry", cfg->host, cfg->port, cfg->backoff_min_ms,
                          cfg->backoff_max_ms, &cmd_ev, g);
    for (size_t i = 0; i < REGISTRY_LUA_COUNT; i++)
        redis_add_script(g->cmd, &registry_scripts[i]);
    /* A WAIT holds every command behind it for up to wait_timeout_ms. */
    redis_set_reply_timeout(g->cmd, cfg->reply_timeout_ms +
                                    (cfg->wait_replicas > 0 ? cfg->wait_timeout_ms : 0));
    redis_set_auth(g->cmd, cfg->user, cfg->password);
    if (g->sentinels)
        redis_use_sentinels(g->cmd, g->sentinels);

    redis_events sub_ev = { registry_on_sub_up, NULL, registry_on_event };
    g->sub = redis_create(loop, "presence", cfg->host, cfg->port, cfg->backoff_min_ms,
                          cfg->backoff_max_ms, &sub_ev, g);
    char channel[600];
    snprintf(channel, sizeof channel, "%spresence", cfg->prefix);
    redis_subscribe(g->sub, channel);
    snprintf(channel, sizeof channel, "%scontacts", cfg->prefix);
    redis_subscribe(g->sub, channel);
    snprintf(channel, sizeof channel, "%ssrv:%s:status", cfg->prefix, cfg->server_id);
    redis_subscribe(g->sub, channel);
    snprintf(channel, sizeof channel, "%smoderation", cfg->prefix);
    redis_subscribe(g->sub, channel);
    redis_set_auth(g->sub, cfg->user, cfg->password);
    if (g->sentinels)
        redis_use_sentinels(g->sub, g->sentinels);
    if (g->sentinels) {
        char list[512], name[128];
        log_info("registry_sentinels", "sentinels=%s master=%s wait_replicas=%d",
                 log_q(list, sizeof list, cfg->sentinels, strlen(cfg->sentinels)),
                 log_q(name, sizeof name, cfg->sentinel_master, strlen(cfg->sentinel_master)),
                 g->wait_replicas);
    }

    uv_timer_init(loop, &g->heartbeat);
    g->heartbeat.data = g;
    uv_timer_start(&g->heartbeat, registry_on_heartbeat_timer, (uint64_t)g->heartbeat_ms,
                   (uint64_t)g->heartbeat_ms);
    uv_timer_init(loop, &g->reap);
    g->reap.data = g;
    uv_timer_start(&g->reap, registry_on_reap_timer, (uint64_t)g->reap_ms, (uint64_t)g->reap_ms);
    return g;
}

static void registry_free(registry *g)
{
    strmap_node *n, *next;
    for (n = strmap_first(&g->rooms); n; n = next) {
        next = strmap_next(&g->rooms, n);
        room_free(g, room_of(n));
    }
    for (n = strmap_first(&g->users); n; n = next) {
        next = strmap_next(&g->users, n);
        strmap_remove(&g->users, n);
        free(user_of(n));
    }
    strmap_deinit(&g->rooms);
    strmap_deinit(&g->users);
    free(g->host);
    free(g->prefix);
    free(g->server_id);
    free(g);
}

static void registry_on_timer_closed(uv_handle_t *h)
{
    registry *g = h->data;
    if (--g->closing == 0)
        registry_free(g);
}

void registry_destroy(registry *g)
{
    if (!g)
        return;
    g->registered = false;
    redis_destroy(g->cmd);     /* pending calls complete with NULL now */
    redis_destroy(g->sub);
    redis_sentinels_destroy(g->sentinels);     /* after its users */
    g->cmd = g->sub = NULL;
    g->sentinels = NULL;
    g->closing = 2;
    uv_close((uv_handle_t *)&g->heartbeat, registry_on_timer_closed);
    uv_close((uv_handle_t *)&g->reap, registry_on_timer_closed);
}

typedef struct goodbye_call {
    void (*done)(void *ctx);
    void *ctx;
} goodbye_call;

static void registry_on_goodbye(void *privdata, redisReply *r)
{
    goodbye_call *c = privdata;
    registry_reply_ok(r, "bye");
    c->done(c->ctx);
    free(c);
}

void registry_goodbye(registry *g, void (*done)(void *ctx), void *ctx)
{
    if (!g || !g->registered) {
        done(ctx);
        return;
    }
    g->registered = false;      /* no more commands after this one */
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, g->server_id);
    registry_args_num(&a, g->history_ttl_ms);
    goodbye_call *c = xmalloc(sizeof *c);
    c->done = done;
    c->ctx = ctx;
    if (registry_args_eval(g, &a, REGISTRY_LUA_BYE, registry_on_goodbye, c) < 0) {
        free(c);
        done(ctx);
        return;
    }
    log_info("registry_goodbye", "server=%s", g->server_id);
}

bool registry_up(const registry *g)
{
    return g->registered;
}

void registry_get_stats(const registry *g, registry_stats *out)
{
    *out = g->stats;
}
int registry_room_status(registry *g, const char *room)
{
    char ekey[256], skey[512];
    snprintf(ekey, sizeof ekey, "%sepoch", g->prefix);
    snprintf(skey, sizeof skey, "%sroom:{%s}:seq", g->prefix, room);
    const char *argv[3] = { "MGET", ekey, skey };
    join_call *c = join_call_new(g, room, true);
    if (!g->registered || redis_argv(g->cmd, registry_on_room_state, c, 3, argv, NULL) < 0) {
        free(c);
        return -1;
    }
    return 0;
}
