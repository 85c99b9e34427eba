/* registry_internal.h — what the registry's files share (server/registry*.c only).
 *
 * The registry (registry.h) is written as four files: registry.c (its
 * connections, registration, the mirror of this server's members and its
 * replay, heartbeat and reaping), registry_log.c (publishing to a room's
 * log, with WAIT, and reading the logs), registry_query.c (presence and
 * user lookups), registry_contacts.c (cached contact lists),
 * registry_status.c (people's status: watch, unwatch, hide) and
 * registry_redact.c (redaction marks on the room logs) and
 * registry_moderation.c (bans, mutes, kick announcements). They share
 * the struct below, the table of Lua scripts (server/lua, registry_lua.h)
 * and the builder of EVALSHA arguments.
 * Everything runs on the loop. Nothing outside those files includes this
 * header: registry.h stays the contract.
 */
#ifndef LECTERN_REGISTRY_INTERNAL_H
#define LECTERN_REGISTRY_INTERNAL_H

#include "registry.h"

#include "redis.h"
#include "strmap.h"

/* The Lua scripts, by name (registry.c holds their table). */
typedef enum registry_script_id {
    REGISTRY_LUA_HELLO,
    REGISTRY_LUA_BYE,
    REGISTRY_LUA_SYNC_ROOM,
    REGISTRY_LUA_SYNC_USERS,
    REGISTRY_LUA_HEARTBEAT,
    REGISTRY_LUA_REAP,
    REGISTRY_LUA_JOIN,
    REGISTRY_LUA_LEAVE,
    REGISTRY_LUA_ONLINE,
    REGISTRY_LUA_PUBLISH,
    REGISTRY_LUA_PRESENCE,
    REGISTRY_LUA_LOG_RANGE,
    REGISTRY_LUA_USER_ROOMS,
    REGISTRY_LUA_WATCH,
    REGISTRY_LUA_UNWATCH,
    REGISTRY_LUA_STATUS_GET,
    REGISTRY_LUA_HIDE,
    REGISTRY_LUA_ROOMS_PAGE,
    REGISTRY_LUA_USER_SESSIONS,
    REGISTRY_LUA_CONTACTS_SET,
    REGISTRY_LUA_CONTACTS_CHANGED,
    REGISTRY_LUA_REDACT,
    REGISTRY_LUA_REDACT_UNDO,
    REGISTRY_LUA_MODERATE,
    REGISTRY_LUA_MODERATION_GET,
    REGISTRY_LUA_COUNT
} registry_script_id;

typedef struct registry_pub registry_pub;    /* a publish (registry_log.c) */

/* Publishes waiting for a WAIT, in the order they were sent. */
typedef struct registry_pub_list {
    registry_pub *head, **tail;
} registry_pub_list;

struct registry {
    uv_loop_t *loop;
    registry_events ev;
    void *ctx;
    char *host, *prefix, *server_id;
    int port, heartbeat_ms, ttl_ms, reap_ms, history_max, history_ttl_ms, presence_max;
    int wait_replicas, wait_timeout_ms;
    redis_sentinels *sentinels; /* NULL: a single Redis at host:port */
    redis *cmd;                /* commands and scripts */
    redis *sub;                /* presence events */
    registry_pub_list wait_cur;     /* covered by the WAIT in flight */
    registry_pub_list wait_next;    /* sent after it: the next WAIT covers them */
    bool wait_inflight;
    bool unreplicated;         /* the last WAIT came back short (logged once) */
    bool registered;           /* hello done and mirror replayed */
    bool registering;
    uv_timer_t heartbeat, reap;
    strmap rooms;              /* the mirror (registry.c): reg_room by name */
    strmap users;              /* reg_user by user */
    registry_stats stats;
    int closing;               /* timers still closing */
};

/* --- EVALSHA arguments (registry.c) ------------------------------------------ */

/* Arguments for one call. Strings are borrowed; numbers are formatted into
 * slots owned by the builder, which grow as needed (pointers to them are
 * resolved when the call is sent, so growth never leaves one dangling). */
typedef struct registry_args {
    const char **v;
    size_t *l;
    int *num;                 /* -1, or the number slot argument i refers to */
    char (*nums)[24];
    int n, cap, nnum, numcap;
} registry_args;

/* Every call is EVALSHA <sha> 0 P ...: the first three slots are EVALSHA's
 * own (the sha is filled in by registry_args_eval), then the key prefix. */
void registry_args_init(registry_args *a, registry *g);
/* Append bytes (borrowed until the call is sent; p NULL: ""). */
void registry_args_bytes(registry_args *a, const void *p, size_t len);
/* Append a string (borrowed until the call is sent). */
void registry_args_str(registry_args *a, const char *s);
/* Append a number, as decimal text. */
void registry_args_num(registry_args *a, long long x);
/* EVALSHA script `id` with a's arguments on the command connection, then
 * free a's arrays. Returns redis_argv's result: 0, or -1 when not up (fn is
 * then not called). */
int registry_args_eval(registry *g, registry_args *a, registry_script_id id, redis_reply_fn fn,
                       void *privdata);

/* --- the room logs (registry_log.c) ------------------------------------------ */

/* One stream entry [id, [field, value, ...]] of room's log -> *out (every
 * field allocated; free with envelope_free, also after false). false when
 * the reply is not such an entry or has no seq. */
bool registry_log_entry(const char *room, const redisReply *e, envelope *out);

/* --- replies (registry.c) ---------------------------------------------------- */

/* Wall-clock time, ms since the epoch (what Redis stores with messages). */
uint64_t registry_realtime_ms(void);
/* An integer or decimal-string reply as a number; 0 for anything else. */
uint64_t registry_reply_u64(const redisReply *r);
/* A reply that is neither missing (NULL) nor an error; an error is logged
 * (registry_error, call=what). */
bool registry_reply_ok(const redisReply *r, const char *what);

#endif
