/* registry_contacts.c — the Redis layer of contact lists.
 *
 * A read is one MGET of the value and the user's change counter; a cache
 * fill is the contacts_set script (set unless the counter moved); a change
 * is the contacts_changed script (DEL, bump the counter, PUBLISH), so
 * every server that sees the message on P contacts finds the key already
 * gone. The value is a small text format rather than JSON: ids cannot hold
 * '\n' (they have no control characters, userid.h), so one split is the
 * whole parser (registry_contacts_value.c), and a value that does not
 * parse is treated as a miss.
 */
#include "registry_contacts.h"

#include "registry_internal.h"

#include "mem.h"
#include "userid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rc_get {
    registry_contacts_fn fn;
    void *ctx;
} rc_get;

static void rc_on_get(void *privdata, redisReply *r)
{
    rc_get *c = privdata;
    registry_contacts_state st = REGISTRY_CONTACTS_ERROR;
    const char *v = NULL, *gen = "";
    size_t len = 0;
    char genbuf[32] = "";
    if (registry_reply_ok(r, "contacts_get") && r->type == REDIS_REPLY_ARRAY &&
        r->elements == 2) {
        const redisReply *val = r->element[0], *g = r->element[1];
        if (g->type == REDIS_REPLY_STRING && g->len < sizeof genbuf) {
            memcpy(genbuf, g->str, g->len);
            genbuf[g->len] = '\0';
            gen = genbuf;
        }
        if (val->type == REDIS_REPLY_STRING) {
            st = REGISTRY_CONTACTS_HIT;
            v = val->str;
            len = val->len;
        } else {
            st = REGISTRY_CONTACTS_MISS;
        }
    }
    c->fn(c->ctx, st, v, len, gen);
    free(c);
}

int registry_contacts_get(registry *g, const char *user, registry_contacts_fn fn, void *ctx)
{
    char key[USERID_MAX + 300], vkey[USERID_MAX + 300];
    snprintf(key, sizeof key, "%scontacts:%s", g->prefix, user);
    snprintf(vkey, sizeof vkey, "%scontacts-v:%s", g->prefix, user);
    const char *argv[3] = { "MGET", key, vkey };
    rc_get *c = xmalloc(sizeof *c);
    c->fn = fn;
    c->ctx = ctx;
    if (redis_argv(g->cmd, rc_on_get, c, 3, argv, NULL) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

static void rc_on_set(void *privdata, redisReply *r)
{
    (void)privdata;
    registry_reply_ok(r, "contacts_set");
}

void registry_contacts_set(registry *g, const char *user, const char *value, size_t len,
                           int ttl_s, const char *gen)
{
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, user);
    registry_args_bytes(&a, value, len);
    registry_args_num(&a, ttl_s);
    registry_args_str(&a, gen ? gen : "");
    registry_args_eval(g, &a, REGISTRY_LUA_CONTACTS_SET, rc_on_set, NULL);
}

typedef struct rc_changed {
    void (*fn)(void *ctx, bool ok);
    void *ctx;
} rc_changed;

static void rc_on_changed(void *privdata, redisReply *r)
{
    rc_changed *c = privdata;
    c->fn(c->ctx, registry_reply_ok(r, "contacts_changed"));
    free(c);
}

int registry_contacts_changed(registry *g, const char *user, int ttl_s,
                              void (*fn)(void *ctx, bool ok), void *ctx)
{
    registry_args a;
    registry_args_init(&a, g);
    registry_args_str(&a, user);
    registry_args_num(&a, ttl_s);
    rc_changed *c = xmalloc(sizeof *c);
    c->fn = fn;
    c->ctx = ctx;
    if (registry_args_eval(g, &a, REGISTRY_LUA_CONTACTS_CHANGED, rc_on_changed, c) < 0) {
        free(c);
        return -1;
    }
    return 0;
}
