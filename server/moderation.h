/* moderation.h — kick, ban, mute: who may stay in a room and who may speak.
 *
 *   kick    every subscription of the user to the room, on every server,
 *           ends with a control MESSAGE; they may subscribe again;
 *   ban     the same, and until it ends (or is lifted) the user's
 *           SUBSCRIBE to the room is refused (ERROR Banned) and so is
 *           their SEND (publish.lua);
 *   mute    the user's SEND to the room is refused (ERROR Muted); they
 *           still read;
 *   unban, unmute   lift one.
 * Bans and mutes live in Redis (registry_moderation.h: hashes per room,
 * user -> until, with who and why beside them), so every server enforces
 * them at once. A kick or a ban is announced on a channel every server
 * subscribes to, in the same atomic step as the ban; each server hands the
 * announcement to its sessions through env.kick (this module never calls
 * up), and the sessions end the user's subscriptions to the room.
 *
 * Used by the server API (http_moderation.h) and by an instructor's control
 * frame over STOMP: the caller decides who may. Everything runs on the loop.
 */
#ifndef LECTERN_MODERATION_H
#define LECTERN_MODERATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "buf.h"
#include "metrics.h"

struct registry;

typedef struct moderation moderation;

typedef enum moderation_action {
    MODERATION_KICK,
    MODERATION_BAN,
    MODERATION_UNBAN,
    MODERATION_MUTE,
    MODERATION_UNMUTE,
    MODERATION_ACTION_COUNT
} moderation_action;

/* A kick or ban as announced to every server; strings lent for the call. */
typedef struct moderation_event {
    bool banned;               /* "banned" (else "kicked") */
    const char *room, *user;
    const char *reason;        /* "" when none was given */
    const char *by;            /* who: "system", a backend's name, an instructor's id */
    uint64_t at_ms;            /* when it was asked (ms since the epoch) */
    uint64_t until_ms;         /* banned: when it ends (0: until lifted) */
} moderation_event;

/* Hand ev to this server's sessions: end ev->user's subscriptions to
 * ev->room. Runs on the loop, for every announcement this server hears. */
typedef void (*moderation_kick_fn)(void *ctx, const moderation_event *ev);

/* The limits of an action's arguments (knobs). */
typedef struct moderation_limits {
    size_t max_room_name;      /* stomp.max_room_name */
    int64_t max_duration_s;    /* moderation.max_duration_s: the longest ban or mute */
    size_t max_reason;         /* moderation.max_reason: bytes */
} moderation_limits;

/* What moderation uses; pointers borrowed, outliving it. */
typedef struct moderation_env {
    moderation_limits lim;
    struct registry *registry;
    metrics *metrics;          /* moderation_actions */
    moderation_kick_fn kick;   /* the sessions (NULL: none) */
    void *ctx;                 /* kick's */
} moderation_env;

typedef enum moderation_status {
    MODERATION_OK,             /* Redis has it (and a kick or ban was announced) */
    MODERATION_UNAVAILABLE     /* Redis did not answer: repeat it */
} moderation_status;

/* The outcome; strings lent for the call. */
typedef struct moderation_result {
    moderation_status status;
    moderation_action action;
    const char *room, *user, *reason, *by;
    uint64_t at_ms;            /* when it was asked */
    uint64_t until_ms;         /* BAN, MUTE: the end Redis recorded (0: until lifted) */
    bool lifted;               /* UNBAN, UNMUTE: there was a live one to lift */
} moderation_result;

typedef void (*moderation_done_fn)(void *ctx, const moderation_result *res);

/* env is copied. Never fails. */
moderation *moderation_create(const moderation_env *env);
/* Calls in flight finish with MODERATION_UNAVAILABLE when their answer
 * comes (their done still runs, once); the struct goes with the last of
 * them. Call before the registry is destroyed. Accepts NULL. */
void moderation_destroy(moderation *m);

enum {
    MODERATION_EINVAL = -1,    /* a bad argument (moderation_valid's reason); done not called */
    MODERATION_EDOWN = -2      /* Redis is not reachable (or shutting down); done not called */
};

/* Apply action a to user in room: room a valid room name, user a user id
 * (userid.h), duration_ms > 0 for BAN and MUTE that end (0: until lifted;
 * ignored by the others; at most lim.max_duration_s seconds), reason (NULL
 * or ""; at most lim.max_reason bytes of UTF-8) and by (a user id) are
 * recorded and shown. Strings are
 * copied. done(ctx, res) runs exactly once, later, on the loop, when Redis
 * has answered: OK (a kick or ban has been announced to every server by
 * then; each ends the user's subscriptions when it hears it) or
 * UNAVAILABLE. Returns 0, MODERATION_EINVAL or MODERATION_EDOWN. */
int moderation_apply(moderation *m, moderation_action a, const char *room, const char *user,
                     int64_t duration_ms, const char *reason, const char *by,
                     moderation_done_fn done, void *ctx);

/* The room's live bans and mutes as JSON: {"room", "bans": [entry...],
 * "mutes": [entry...]}, entry = {"user", "until" (ms; null: until lifted),
 * "reason", "by", "at"}. done(ctx, json) runs once, later: json NULL when
 * Redis failed (borrowed for the call). Returns 0, MODERATION_EINVAL (bad
 * room) or MODERATION_EDOWN. */
typedef void (*moderation_list_fn)(void *ctx, json_t *json);
int moderation_list(moderation *m, const char *room, moderation_list_fn done, void *ctx);

/* Is user banned from room? done(ctx, ok, until_ms, banned): ok false when
 * Redis failed; until_ms 0 for a ban without end. Runs once, later.
 * Returns 0, MODERATION_EINVAL or MODERATION_EDOWN. */
typedef void (*moderation_check_fn)(void *ctx, bool ok, bool banned, uint64_t until_ms);
int moderation_check_ban(moderation *m, const char *room, const char *user,
                         moderation_check_fn done, void *ctx);

/* Enforce room's live bans on this server again: each is handed to
 * env.kick as if announced now (a user with no subscription to the room
 * here is no-op). For after the registry's connections come back: an
 * announcement published while this server was not listening is not
 * heard again, and a SUBSCRIBE meanwhile joined without its ban check.
 * Returns 0, MODERATION_EINVAL or MODERATION_EDOWN. */
int moderation_sweep(moderation *m, const char *room);

/* An announcement heard on the registry's moderation channel (JSON):
 * parsed and handed to env.kick. Malformed ones are logged and dropped. */
void moderation_on_announcement(moderation *m, const char *json, size_t len);

/* --- pure parts (unit tests) ------------------------------------------------------ */

/* "kick", "ban", "unban", "mute", "unmute" ("other" out of range). */
const char *moderation_action_name(moderation_action a);
/* The action named name[0..len) (as moderation_action_name); -1: none. */
int moderation_action_parse(const char *name, size_t len);

/* Are these arguments acceptable (as moderation_apply states)? NULL, or a
 * static reason naming the argument. */
const char *moderation_valid(moderation_action a, const char *room, const char *user,
                             int64_t duration_ms, const char *reason, const char *by,
                             const moderation_limits *lim);

/* Read an announcement. Its strings point into *root, which the caller
 * json_decrefs when done. false when it is not one. */
bool moderation_event_parse(const char *json, size_t len, json_t **root,
                            moderation_event *ev);

/* Append the control MESSAGE that ends a subscription (header values
 * escaped by STOMP 1.1/1.2 rules when `escape`; 1.0 has none): the
 * subscription's prefix ("MESSAGE\nsubscription:<id>\n", borrowed as
 * prefix[0..prefix_len)), then destination:/topic/<room>, message-id:
 * <kicked|banned>-<at_ms> (never a message id of the log: a client must not
 * resume from it), x-lectern-event:<kicked|banned>, x-reason, x-by, and for
 * a ban x-until (0: until lifted); a JSON body {"type","room","reason",
 * "by"} (and "until" for a ban). */
void moderation_control_frame(buf *out, const char *prefix, size_t prefix_len, bool escape,
                              const moderation_event *ev);

#endif
