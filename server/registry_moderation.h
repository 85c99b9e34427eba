/* registry_moderation.h — bans, mutes and kick announcements in Redis.
 *
 * Keys (P = registry.prefix, R = the room):
 *   P room:{R}:ban      hash  user -> until (ms since the epoch; 0: no end)
 *   P room:{R}:mute     hash  the same, for mutes
 *   P room:{R}:modinfo  hash  "ban:<user>" / "mute:<user>" -> JSON
 *                             {"reason","by","at"}
 * Each hash expires when its last entry ends (none while one has no end);
 * expired entries are dropped when met. publish.lua refuses a SEND of a
 * banned or muted user in the same step as the append.
 *
 * Channel P moderation: every server subscribes (registry_events'
 * on_moderation); a kick, or a ban, is announced there in the same atomic
 * step as the change: {"type": "kicked"|"banned", "room", "user",
 * "reason", "by", "at", "until"}.
 */
#ifndef LECTERN_REGISTRY_MODERATION_H
#define LECTERN_REGISTRY_MODERATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h"

typedef enum registry_mod_op {
    REGISTRY_MOD_SET,          /* ban or mute (kind) */
    REGISTRY_MOD_LIFT,         /* unban or unmute (kind) */
    REGISTRY_MOD_KICK          /* announce a kick; nothing stored */
} registry_mod_op;

/* What one change asks for; strings borrowed for the call. */
typedef struct registry_mod_change {
    registry_mod_op op;
    const char *kind;          /* "ban" or "mute" ("" for a kick) */
    const char *room, *user;
    uint64_t duration_ms;      /* SET: 0 = no end */
    const char *reason, *by;
    uint64_t at_ms;            /* when it was asked (this server's wall clock) */
} registry_mod_change;

/* Redis's answer: ok false when it gave none (down, error). */
typedef struct registry_mod_result {
    bool ok;
    uint64_t until_ms;         /* SET: the end Redis recorded (0: no end) */
    bool was;                  /* LIFT: a live entry was removed */
    uint64_t receivers;        /* servers that got the announcement */
} registry_mod_result;

typedef void (*registry_mod_fn)(void *ctx, const registry_mod_result *res);

/* Run one change (moderate.lua). fn runs once Redis answered (or failed).
 * Returns 0, or -1 when the registry is not up (fn is not called). */
int registry_moderation_change(registry *g, const registry_mod_change *c, registry_mod_fn fn,
                               void *ctx);

/* One live entry, lent for the call. */
typedef struct registry_mod_entry {
    const char *user;
    uint64_t until_ms;         /* 0: no end */
    const char *info;          /* JSON {"reason","by","at"}, or "" when unknown */
    size_t info_len;
} registry_mod_entry;

typedef struct registry_mod_list {
    bool ok;                   /* false: Redis gave no answer */
    const registry_mod_entry *bans, *mutes;
    size_t nbans, nmutes;
} registry_mod_list;

typedef void (*registry_mod_list_fn)(void *ctx, const registry_mod_list *list);

/* The live bans and mutes of room (user non-empty: only that user's;
 * moderation_get.lua). fn runs once Redis answered. Returns 0, or -1 when
 * the registry is not up (fn is not called). */
int registry_moderation_get(registry *g, const char *room, const char *user,
                            registry_mod_list_fn fn, void *ctx);

#endif
