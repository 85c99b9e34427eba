/* registry.h — the cluster's shared state in Redis.
 *
 * What the registry records (every key is documented in docs/architecture.md):
 * which servers are alive (a TTL key refreshed by a heartbeat), which
 * servers hold members of which room (with counts), who is present in each
 * room (user id, display name, since), who is online anywhere, and each
 * room's message log (a Redis stream, which also assigns the room-ordered
 * message ids) with its dense sequence number.
 *
 * Every change is one Lua script, so it is atomic; presence changes PUBLISH
 * their event from inside the same script, so events are ordered exactly
 * like the changes. A second connection subscribes to those events.
 *
 * The registry keeps a mirror of this server's own contribution (its rooms
 * with their members, its online users) and replays it after every
 * (re)connect, after first clearing whatever a previous incarnation of this
 * server id left behind. A server that finds it was reaped (its heartbeat
 * says it is unknown) does the same. Dead servers are reaped by the living
 * ones: their members leave every room (with leave events) within
 * heartbeat TTL + reap interval.
 *
 * Redis can be one server (registry_config.host/port) or a master with
 * replicas behind Sentinels (registry_config.sentinels): both connections
 * find the master through the Sentinels and follow its failovers; the
 * reconnect's replay rebuilds this server's part on the new master. With
 * wait_replicas, each message is acknowledged only after Redis's WAIT.
 */
#ifndef LECTERN_REGISTRY_H
#define LECTERN_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "envelope.h"

typedef struct registry registry;

typedef struct registry_config {
    const char *host;            /* without Sentinels: the Redis master */
    int port;
    const char *user;            /* AUTH as this ACL user (NULL or "": default) */
    const char *password;        /* AUTH on every connection (NULL or "": none) */
    const char *sentinels;       /* "host[:port],..." (NULL or "": use host/port) */
    const char *sentinel_master; /* the master's name at the Sentinels */
    int wait_replicas;           /* WAIT for this many replicas after each message (0: no) */
    int wait_timeout_ms;         /* longest WAIT */
    const char *prefix;          /* key prefix, e.g. "lectern:" */
    const char *server_id;
    int heartbeat_ms;            /* liveness refresh period */
    int ttl_ms;                  /* a server silent this long is dead */
    int reap_ms;                 /* how often to look for dead servers */
    int history_max;             /* room log length (approximate, MAXLEN ~) */
    int history_ttl_ms;          /* a room's log and sequence outlive its last member this long */
    int presence_max;            /* most members listed in a presence snapshot */
    int backoff_min_ms, backoff_max_ms;
    int reply_timeout_ms;        /* no reply for this long (plus a WAIT): the connection is dead */
} registry_config;

typedef struct registry_events {
    /* Registered and usable (true), or not (false). */
    void (*on_state)(void *ctx, bool up);
    /* A join of `room` was answered (first local member, or the replay
     * after a reconnect): the room's log is at (epoch, seq). */
    void (*on_room_sync)(void *ctx, const char *room, uint64_t epoch, uint64_t seq);
    /* A presence event (JSON object with type, room, user, count, v); `v`
     * is the event's presence version, taken from the JSON. */
    void (*on_presence)(void *ctx, const char *room, uint64_t v, const char *json, size_t len);
    /* The event subscription was (re)established: events may have been
     * missed, presence (and status) subscribers need a fresh snapshot. */
    void (*on_presence_resync)(void *ctx);
    /* A status change of a user this server watches (registry_status.h):
     * the event's JSON, for registry_status_event_parse. */
    void (*on_status)(void *ctx, const char *json, size_t len);
    /* The contact list of user[0..len) changed (written through the API on
     * some server): cached copies are stale. */
    void (*on_contacts_changed)(void *ctx, const char *user, size_t len);
    /* A kick or a ban announced on the channel P moderation (JSON,
     * registry_moderation.h), from any server. */
    void (*on_moderation)(void *ctx, const char *json, size_t len);
} registry_events;

typedef struct registry_stats {
    uint64_t reconnects;
    uint64_t reaped_servers;
    uint64_t reregistrations;    /* times this server re-registered after being reaped */
    uint64_t unreplicated;       /* messages that went on with fewer replicas than asked */
} registry_stats;

/* Connects in the background (through the Sentinels when cfg->sentinels
 * lists any). cfg strings are copied; ev is copied; ctx is borrowed.
 * Returns NULL with the reason in err when cfg->sentinels is invalid. */
registry *registry_create(uv_loop_t *loop, const registry_config *cfg, const registry_events *ev,
                          void *ctx, char *err, size_t errlen);
/* Pending calls complete with failure. Accepts NULL. */
void registry_destroy(registry *g);
bool registry_up(const registry *g);

/* Deregister this server (its members leave every room) before shutting
 * down; done(ctx) runs when Redis confirmed, failed, or at once when not up.
 * Accepts g == NULL (done runs at once). */
void registry_goodbye(registry *g, void (*done)(void *ctx), void *ctx);
void registry_get_stats(const registry *g, registry_stats *out);

/* --- this server's members (mirrored; replayed after reconnects) --------- */

/* A subscription of `user` to `room` began / ended on this server. */
void registry_join(registry *g, const char *room, const char *user, const char *name);
void registry_leave(registry *g, const char *room, const char *user);
/* A connection of `user` (ul bytes, no NUL needed) opened on this server.
 * Returns the mirror's copy of the user, NUL-terminated, which stays valid
 * until the matching registry_offline (a connection may keep it as its
 * user id instead of a copy of its own). */
const char *registry_online(registry *g, const char *user, size_t ul);
/* A connection of `user` closed on this server (user may be the copy
 * registry_online returned: it is invalid after this call). */
void registry_offline(registry *g, const char *user);

/* --- messages ------------------------------------------------------------ */

/* What registry_publish did with a message. */
typedef enum registry_pub_status {
    REGISTRY_PUB_FAILED,       /* Redis did not take it (or WAIT was lost) */
    REGISTRY_PUB_OK,           /* appended: env has its id, seq, epoch, ts_ms */
    REGISTRY_PUB_DUPLICATE,    /* a repeat of an idempotency key within its window:
                                * nothing appended; env has the FIRST copy's id,
                                * seq, epoch and ts_ms */
    REGISTRY_PUB_BANNED,       /* the checked user is banned from the room */
    REGISTRY_PUB_MUTED         /* the checked user is muted in the room */
} registry_pub_status;

typedef struct registry_pub_result {
    registry_pub_status status;
    int others;                /* OK: other servers with members in the room */
    uint64_t until_ms;         /* BANNED, MUTED: when it ends (0: no end) */
} registry_pub_result;

/* The outcome of registry_publish (res is lent for the call). */
typedef void (*registry_publish_fn)(void *ctx, envelope *env, const registry_pub_result *res);

/* What registry_publish checks before it appends (all optional). */
typedef struct registry_pub_opts {
    const char *check_user;    /* refuse if banned from / muted in the room (NULL: no check) */
    const char *idem_key;      /* idempotency key (NULL: none), with env->sender */
    size_t idem_key_len;
    long long idem_window_ms;  /* how long the key is remembered */
} registry_pub_opts;

/* Append env (room, sender, sender_name, origin, content_type, headers,
 * body) to the room's log, which assigns id, seq and epoch; ts_ms is set to
 * the time of the append. With opts (may be NULL), first refuse a banned or
 * muted check_user, and answer a repeat of (room, sender, idem_key) with
 * the first copy's place instead of appending (see registry_pub_status);
 * all of it one atomic script. With wait_replicas, fn runs only once
 * Redis's WAIT answered (FAILED when the connection was lost before it
 * did; too few replicas is counted in unreplicated and does not fail).
 * env is borrowed until fn runs. Returns 0, or -1 when not up (fn not called). */
int registry_publish(registry *g, envelope *env, const registry_pub_opts *opts,
                     registry_publish_fn fn, void *ctx);

/* Messages from the room's log, oldest first. ok is false on failure;
 * `msgs` (n of them) belong to the callee and are freed after fn returns. */
typedef void (*registry_fetch_fn)(void *ctx, envelope *msgs, size_t n, bool ok);

/* The `count` messages just before message id `before` (exclusive), or the
 * newest `count` when before is NULL. */
int registry_fetch_before(registry *g, const char *room, const char *before, size_t count,
                          registry_fetch_fn fn, void *ctx);

/* A range of a room's log and the log's oldest entry, for history. The
 * envelopes are lent for the duration of the callback; the callee may take
 * msgs (and then sets msgs to NULL and n to 0): they are freed with
 * envelope_free and free. */
typedef struct registry_range {
    const envelope *oldest;      /* the log's oldest entry (id, seq and epoch only);
                                    NULL: the log is empty */
    envelope *msgs;              /* the range, in the order asked for */
    size_t n;
    bool cut;                    /* entries were left out for max_bytes */
} registry_range;

/* range is NULL when Redis failed. */
typedef void (*registry_range_fn)(void *ctx, registry_range *range);

/* Entries of the room's log between low and high (XRANGE bounds: "-", "+",
 * "<id>" inclusive, "(<id>" exclusive), ascending or descending, at most
 * count and at most max_bytes of field values (at least one entry),
 * together with the log's oldest entry, in one atomic read.
 * Returns 0, or -1 when not registered (fn not called). */
int registry_log_range(registry *g, const char *room, bool ascending, const char *low,
                       const char *high, size_t count, size_t max_bytes, registry_range_fn fn,
                       void *ctx);

/* The room's current (epoch, seq), through on_room_sync. For catching up
 * after the bus was down. Returns 0 or -1. */
int registry_room_status(registry *g, const char *room);

/* --- presence queries ------------------------------------------------------ */

/* A JSON value (owned by the callee, decref'd after fn) or NULL on failure. */
typedef void (*registry_json_fn)(void *ctx, json_t *value);

/* {"room","count","members":[{"id","name","since"}...],"truncated","v"} */
int registry_presence(registry *g, const char *room, registry_json_fn fn, void *ctx);
/* {"online":{"<user>":true|false,...}} for n users, in one round trip. */
int registry_users_online(registry *g, const char *const *users, size_t n, registry_json_fn fn,
                          void *ctx);
/* {"rooms":[{"room","members","servers"}...],"next":"<room>"|null}: the
 * live rooms after `after` ("" from the start) in name order, at most
 * limit, cluster-wide; next names the last one when there are more. */
int registry_rooms_page(registry *g, const char *after, int limit, registry_json_fn fn, void *ctx);
/* {"user","online","connections","servers":[{"server","connections"}],
 * "rooms":[...]}: where user is connected, cluster-wide. */
int registry_user_sessions(registry *g, const char *user, registry_json_fn fn, void *ctx);
/* {"rooms":{"<user>":["<room>",...],...}}: the rooms where each of n users
 * is present (in presence), in one round trip, at a cost of the users
 * times their rooms. users are copied. */
int registry_users_rooms(registry *g, const char *const *users, size_t n, registry_json_fn fn,
                         void *ctx);

#endif
