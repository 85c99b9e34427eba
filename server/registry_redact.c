/* registry_redact.c — redaction marks on the room logs (see registry_redact.h).
 *
 * Two scripts: redact.lua marks (atomically: the log holds the id, nobody
 * marked it, then HSET and the log's lifetime copied to the hash) and
 * answers the entry as the log holds it, which is what the MySQL tombstone
 * is made of when storage has not written the message yet; redact_undo.lua
 * takes a mark back when the rest of a redaction failed. The reading side
 * is log_range.lua (registry_log.c).
 */
#include "registry_redact.h"

#include "registry_internal.h"

#include "mem.h"

#include <stdlib.h>
#include <string.h>

typedef struct redact_call {
    registry_redact_fn fn;
    void *ctx;
    char room[];
} redact_call;

static registry_redact_status redact_status_of(const redisReply *r)
{
    static const struct { const char *name; registry_redact_status st; } words[] = {
        { "marked", REGISTRY_REDACT_MARKED },
        { "already", REGISTRY_REDACT_ALREADY },
        { "absent", REGISTRY_REDACT_ABSENT },
        { "event", REGISTRY_REDACT_EVENT },
    };
    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)
        return REGISTRY_REDACT_FAILED;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (r->len == strlen(words[i].name) && !memcmp(r->str, words[i].name, r->len))
            return words[i].st;
    return REGISTRY_REDACT_FAILED;
}

static void registry_on_redact(void *privdata, redisReply *r)
{
    redact_call *c = privdata;
    registry_redact_result res = { REGISTRY_REDACT_FAILED, NULL, NULL };
    envelope orig;
    memset(&orig, 0, sizeof orig);
    char *mark = NULL;
    if (registry_reply_ok(r, "redact") && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        res.status = redact_status_of(r->element[0]);
        mark = xstrndup(r->element[1]->str, r->element[1]->len);
        res.mark = mark;
        if (res.status == REGISTRY_REDACT_MARKED) {
            if (registry_log_entry(c->room, r->element[2], &orig))
                res.orig = &orig;
            else
                res.status = REGISTRY_REDACT_FAILED;   /* cannot be: the script read it */
        }
    }
    c->fn(c->ctx, &res);
    envelope_free(&orig);
    free(mark);
    free(c);
}

/* The arguments both scripts take: P, room, message id, mark. */
static void redact_args(registry_args *a, registry *g, const char *room, const char *id,
                        const char *mark)
{
    registry_args_init(a, g);
    registry_args_str(a, room);
    registry_args_str(a, id);
    registry_args_str(a, mark);
}

int registry_redact_mark(registry *g, const char *room, const char *id, const char *mark,
                         registry_redact_fn fn, void *ctx)
{
    if (!g->registered)
        return -1;
    registry_args a;
    redact_args(&a, g, room, id, mark);
    size_t rl = strlen(room);
    redact_call *c = xmalloc(sizeof *c + rl + 1);
    c->fn = fn;
    c->ctx = ctx;
    memcpy(c->room, room, rl + 1);
    if (registry_args_eval(g, &a, REGISTRY_LUA_REDACT, registry_on_redact, c) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

static void registry_on_unmark(void *privdata, redisReply *r)
{
    (void)privdata;
    registry_reply_ok(r, "redact_undo");       /* logs an error */
}

int registry_redact_unmark(registry *g, const char *room, const char *id, const char *mark)
{
    if (!g->registered)
        return -1;
    registry_args a;
    redact_args(&a, g, room, id, mark);
    return registry_args_eval(g, &a, REGISTRY_LUA_REDACT_UNDO, registry_on_unmark, NULL);
}
