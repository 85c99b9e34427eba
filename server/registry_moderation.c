/* registry_moderation.c — bans, mutes and kicks in Redis (see
 * registry_moderation.h).
 *
 * Two scripts: moderate.lua makes one change (set, lift, or a kick's
 * announcement) and keeps the hashes' lifetimes; moderation_get.lua reads
 * what is live, for the moderation listing and for a SUBSCRIBE's ban check.
 * Both drop expired entries as they meet them. The channel the
 * announcements go out on is registry.c's (its subscriber connection).
 */
#include "registry_moderation.h"

#include "registry_internal.h"

#include "mem.h"

#include <stdlib.h>
#include <string.h>

typedef struct mod_call {
    registry_mod_fn fn;
    void *ctx;
} mod_call;

static void registry_on_moderate(void *privdata, redisReply *r)
{
    mod_call *c = privdata;
    registry_mod_result res = { 0 };
    if (registry_reply_ok(r, "moderate") && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        res.ok = true;
        res.until_ms = registry_reply_u64(r->element[0]);
        res.was = registry_reply_u64(r->element[1]) != 0;
        res.receivers = registry_reply_u64(r->element[2]);
    }
    c->fn(c->ctx, &res);
    free(c);
}

int registry_moderation_change(registry *g, const registry_mod_change *ch, registry_mod_fn fn,
                               void *ctx)
{
    static const char *const ops[] = { "set", "lift", "kick" };
    if (!g->registered)
        return -1;
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, ops[ch->op]);
    registry_args_str(&a, ch->kind);
    registry_args_str(&a, ch->room);
    registry_args_str(&a, ch->user);
    registry_args_num(&a, (long long)ch->duration_ms);
    registry_args_str(&a, ch->reason);
    registry_args_str(&a, ch->by);
    registry_args_num(&a, (long long)ch->at_ms);
    mod_call *c = xmalloc(sizeof *c);
    c->fn = fn;
    c->ctx = ctx;
    if (registry_args_eval(g, &a, REGISTRY_LUA_MODERATE, registry_on_moderate, c) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

typedef struct mod_get_call {
    registry_mod_list_fn fn;
    void *ctx;
} mod_get_call;

/* A flat list user, until, info, ... -> entries (NULL when malformed). */
static registry_mod_entry *registry_mod_entries(const redisReply *r, size_t *n)
{
    *n = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 3)
        return NULL;
    registry_mod_entry *e = xcalloc(r->elements / 3 + 1, sizeof *e);
    for (size_t i = 0; i + 2 < r->elements; i += 3) {
        const redisReply *u = r->element[i], *t = r->element[i + 1], *in = r->element[i + 2];
        if (u->type != REDIS_REPLY_STRING || in->type != REDIS_REPLY_STRING) {
            free(e);
            return NULL;
        }
        e[*n].user = u->str;
        e[*n].until_ms = registry_reply_u64(t);
        e[*n].info = in->str;
        e[*n].info_len = in->len;
        (*n)++;
    }
    return e;
}

static void registry_on_mod_get(void *privdata, redisReply *r)
{
    mod_get_call *c = privdata;
    registry_mod_list list = { 0 };
    registry_mod_entry *bans = NULL, *mutes = NULL;
    if (registry_reply_ok(r, "moderation_get") && r->type == REDIS_REPLY_ARRAY &&
        r->elements == 2) {
        bans = registry_mod_entries(r->element[0], &list.nbans);
        mutes = registry_mod_entries(r->element[1], &list.nmutes);
        list.ok = bans && mutes;
        list.bans = bans;
        list.mutes = mutes;
    }
    if (!list.ok)
        list.nbans = list.nmutes = 0;
    c->fn(c->ctx, &list);
    free(bans);
    free(mutes);
    free(c);
}

int registry_moderation_get(registry *g, const char *room, const char *user,
                            registry_mod_list_fn fn, void *ctx)
{
    if (!g->registered)
        return -1;
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, room);
    registry_args_str(&a, user ? user : "");
    mod_get_call *c = xmalloc(sizeof *c);
    c->fn = fn;
    c->ctx = ctx;
    if (registry_args_eval(g, &a, REGISTRY_LUA_MODERATION_GET, registry_on_mod_get, c) < 0) {
        free(c);
        return -1;
    }
    return 0;
}
