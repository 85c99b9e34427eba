/* contacts.c — resolving contact lists: cache, Redis, MySQL, coalesced.
 *
 * Cache. One entry per user (uthash by user id): whether they have a stored
 * list, and its ids. Entries sit on a FIFO list in the order they were
 * made; since every entry lives contacts.cache_ttl_ms, that is also their
 * expiry order: expired entries are dropped from the head whenever a
 * lookup or an insert comes by, and an insert into a full cache
 * (contacts.cache_max) drops the oldest. A token's claim is never cached:
 * only the stored part is, and the rule (stored wins, else the claim) is
 * applied per request.
 *
 * Lookups. A miss creates a lookup for the user (uthash by user id) and
 * every request for that user while it is in flight joins it as a waiter.
 * A lookup reads Redis (MGET of the value and the change counter); on a
 * miss or a Redis failure, MySQL (db_contacts_read); a MySQL answer after a
 * Redis miss is written back to Redis together with the counter seen, so
 * that the script skips it when a change came in between. The lookup then
 * fills the cache and answers its waiters in order.
 *
 * Orphans. A lookup is owned by the call it waits for (Redis or MySQL).
 * When its answer must no longer count — its user's list changed meanwhile
 * (contacts_invalidated moves the waiters to a fresh lookup), or the module
 * is destroyed (the waiters get ok false) — the lookup is taken out of the
 * table, its `c` cleared, and the pending callback only frees it. So a
 * waiter never receives a list read before a change it was told about.
 *
 * Invariants: a lookup in c->lookups has c set (its waiters may all have
 * been cancelled: it still finishes and fills the cache); a request is on exactly one lookup's waiter list
 * until it is answered or cancelled; nothing is answered from inside
 * contacts_get except a cache hit or an immediate failure (neither Redis
 * nor MySQL could be asked), both of which return NULL.
 */
#include "contacts.h"

#include "db_contacts.h"
#include "mem.h"
#include "registry_contacts.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

typedef struct cc_entry {
    UT_hash_handle hh;
    struct cc_entry *prev, *next;   /* FIFO, oldest first */
    uint64_t expires;               /* loop ms */
    bool stored;
    char **ids;
    size_t n;
    char user[];
} cc_entry;

typedef struct cc_lookup {
    UT_hash_handle hh;
    contacts *c;                    /* NULL: orphaned, the answer is dropped */
    contacts_req *head, *tail;      /* waiters, in arrival order */
    bool redis_ok;                  /* Redis answered a miss: write the result back */
    char gen[32];                   /* the change counter read with the miss */
    char user[];
} cc_lookup;

struct contacts_req {
    cc_lookup *l;
    contacts_req *prev, *next;
    contacts_fn fn;
    void *ctx;
    size_t nclaim;
    char **claim;                   /* one block with the strings */
};

struct contacts {
    contacts_env env;
    cc_entry *cache;                /* uthash */
    cc_entry *oldest, *newest;
    size_t ncached;
    cc_lookup *lookups;             /* uthash */
};

/* --- the cache --------------------------------------------------------------------- */

static void cc_entry_free(contacts *c, cc_entry *e)
{
    HASH_DEL(c->cache, e);
    if (e->prev)
        e->prev->next = e->next;
    else
        c->oldest = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->newest = e->prev;
    c->ncached--;
    registry_contacts_free_ids(e->ids, e->n);
    free(e);
}

static void cc_expire(contacts *c, uint64_t now)
{
    while (c->oldest && c->oldest->expires <= now)
        cc_entry_free(c, c->oldest);
}

static bool cc_caching(const contacts *c)
{
    return c->env.cfg->cache_ttl_ms > 0 && c->env.cfg->cache_max > 0;
}

static void cc_cache_put(contacts *c, const char *user, bool stored, const char *const *ids,
                         size_t n)
{
    if (!cc_caching(c))
        return;
    uint64_t now = uv_now(c->env.loop);
    cc_expire(c, now);
    cc_entry *e = NULL;
    HASH_FIND_STR(c->cache, user, e);
    if (e)
        cc_entry_free(c, e);
    while (c->ncached >= (size_t)c->env.cfg->cache_max)
        cc_entry_free(c, c->oldest);
    size_t ul = strlen(user);
    e = xcalloc(1, sizeof *e + ul + 1);
    memcpy(e->user, user, ul + 1);
    e->expires = now + (uint64_t)c->env.cfg->cache_ttl_ms;
    e->stored = stored;
    e->n = stored ? n : 0;
    e->ids = xcalloc(e->n ? e->n : 1, sizeof *e->ids);
    for (size_t i = 0; i < e->n; i++)
        e->ids[i] = xstrdup(ids[i]);
    e->prev = c->newest;
    if (c->newest)
        c->newest->next = e;
    else
        c->oldest = e;
    c->newest = e;
    c->ncached++;
    HASH_ADD_KEYPTR(hh, c->cache, e->user, ul, e);
}

size_t contacts_cached(const contacts *c)
{
    return c->ncached;
}

/* --- requests ------------------------------------------------------------------------ */

/* The answer for r: the stored list, else r's claim (at most contacts.max).
 * When neither Redis nor MySQL could say whether a list is stored, a
 * request with a claim gets the claim: the token says whom its holder may
 * watch, signed by the platform for the token's lifetime, so an outage of
 * the store degrades to what the token allows rather than to nothing. */
static void cc_answer(const contacts *c, contacts_req *r, bool ok, bool stored,
                      const char *const *ids, size_t n)
{
    if (!ok && !r->nclaim)
        r->fn(r->ctx, NULL, 0, false);
    else if (ok && stored)
        r->fn(r->ctx, ids, n, true);
    else
        r->fn(r->ctx, (const char *const *)r->claim,
              r->nclaim < (size_t)c->env.cfg->max ? r->nclaim : (size_t)c->env.cfg->max, true);
}

static void cc_unlink(contacts_req *r)
{
    cc_lookup *l = r->l;
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
}

static void cc_append(cc_lookup *l, contacts_req *r)
{
    r->l = l;
    r->prev = l->tail;
    r->next = NULL;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

/* --- lookups -------------------------------------------------------------------------- */

static cc_lookup *cc_lookup_new(contacts *c, const char *user)
{
    size_t ul = strlen(user);
    cc_lookup *l = xcalloc(1, sizeof *l + ul + 1);
    memcpy(l->user, user, ul + 1);
    l->c = c;
    HASH_ADD_KEYPTR(hh, c->lookups, l->user, ul, l);
    return l;
}

/* l is done: out of the table, into the cache (ok), waiters answered. */
static void cc_finish(cc_lookup *l, bool ok, bool stored, const char *const *ids, size_t n)
{
    contacts *c = l->c;
    HASH_DEL(c->lookups, l);
    if (ok)
        cc_cache_put(c, l->user, stored, ids, n);
    else
        c->env.metrics->contacts_errors++;
    contacts_req *r;
    while ((r = l->head)) {
        cc_unlink(r);
        cc_answer(c, r, ok, stored, ids, n);
        free(r);
    }
    free(l);
}

static void cc_on_mysql(void *ctx, const db_contacts_result *res)
{
    cc_lookup *l = ctx;
    if (!l->c) {
        free(l);
        return;
    }
    contacts *c = l->c;
    if (res->ok && l->redis_ok && c->env.registry) {
        size_t len;
        char *v = registry_contacts_encode(res->stored, res->ids, res->count, &len);
        registry_contacts_set(c->env.registry, l->user, v, len, c->env.cfg->redis_ttl_s, l->gen);
        free(v);
    }
    cc_finish(l, res->ok, res->stored, res->ids, res->count);
}

/* Ask MySQL. -1 when there is none to ask. */
static int cc_mysql(cc_lookup *l)
{
    contacts *c = l->c;
    if (!c->env.db)
        return -1;
    c->env.metrics->contacts_mysql_reads++;
    db_contacts_read(c->env.db, l->user, (size_t)c->env.cfg->max, cc_on_mysql, l);
    return 0;
}

static void cc_on_redis(void *ctx, registry_contacts_state st, const char *value, size_t len,
                        const char *gen)
{
    cc_lookup *l = ctx;
    if (!l->c) {
        free(l);
        return;
    }
    contacts *c = l->c;
    if (st == REGISTRY_CONTACTS_HIT) {
        bool stored;
        char **ids;
        size_t n;
        if (registry_contacts_decode(value, len, (size_t)c->env.cfg->max, &stored, &ids, &n) == 0) {
            c->env.metrics->contacts_redis_hits++;
            cc_finish(l, true, stored, (const char *const *)ids, n);
            registry_contacts_free_ids(ids, n);
            return;
        }
        st = REGISTRY_CONTACTS_MISS;    /* not ours: read MySQL and overwrite it */
    }
    l->redis_ok = st == REGISTRY_CONTACTS_MISS;
    snprintf(l->gen, sizeof l->gen, "%s", gen ? gen : "");
    if (cc_mysql(l) < 0)
        cc_finish(l, false, false, NULL, 0);
}

/* Start l: Redis, or MySQL when Redis cannot be asked. -1 when neither
 * can (l untouched). */
static int cc_start(cc_lookup *l)
{
    contacts *c = l->c;
    if (c->env.registry && registry_contacts_get(c->env.registry, l->user, cc_on_redis, l) == 0)
        return 0;
    l->redis_ok = false;
    return cc_mysql(l);
}

/* --- the API --------------------------------------------------------------------------- */

contacts *contacts_create(const contacts_env *env)
{
    contacts *c = xcalloc(1, sizeof *c);
    c->env = *env;
    return c;
}

/* Take l out of the table and leave it to its pending callback. */
static void cc_orphan(contacts *c, cc_lookup *l)
{
    HASH_DEL(c->lookups, l);
    l->c = NULL;
}

void contacts_destroy(contacts *c)
{
    if (!c)
        return;
    cc_lookup *l, *tmp;
    HASH_ITER(hh, c->lookups, l, tmp) {
        cc_orphan(c, l);
        contacts_req *r;
        while ((r = l->head)) {
            cc_unlink(r);
            r->fn(r->ctx, NULL, 0, false);
            free(r);
        }
    }
    while (c->oldest)
        cc_entry_free(c, c->oldest);
    free(c);
}

/* r with a copy of the claim (one block). */
static contacts_req *cc_req_new(const char *const *claim, size_t nclaim, contacts_fn fn,
                                void *ctx)
{
    size_t bytes = 0;
    for (size_t i = 0; i < nclaim; i++)
        bytes += strlen(claim[i]) + 1;
    contacts_req *r = xcalloc(1, sizeof *r + nclaim * sizeof(char *) + bytes);
    r->fn = fn;
    r->ctx = ctx;
    r->nclaim = nclaim;
    r->claim = (char **)(r + 1);
    char *p = (char *)(r->claim + nclaim);
    for (size_t i = 0; i < nclaim; i++) {
        size_t n = strlen(claim[i]) + 1;
        r->claim[i] = memcpy(p, claim[i], n);
        p += n;
    }
    return r;
}

contacts_req *contacts_get(contacts *c, const char *user, const char *const *claim, size_t nclaim,
                           contacts_fn fn, void *ctx)
{
    if (!claim)
        nclaim = 0;
    if (nclaim > (size_t)c->env.cfg->max)
        nclaim = (size_t)c->env.cfg->max;
    cc_expire(c, uv_now(c->env.loop));
    cc_entry *e = NULL;
    HASH_FIND_STR(c->cache, user, e);
    if (e) {
        c->env.metrics->contacts_cache_hits++;
        if (e->stored)
            fn(ctx, (const char *const *)e->ids, e->n, true);
        else
            fn(ctx, claim, nclaim, true);
        return NULL;
    }
    contacts_req *r = cc_req_new(claim, nclaim, fn, ctx);
    cc_lookup *l = NULL;
    HASH_FIND_STR(c->lookups, user, l);
    if (l) {
        cc_append(l, r);
        return r;
    }
    l = cc_lookup_new(c, user);
    cc_append(l, r);
    if (cc_start(l) == 0)
        return r;
    /* Neither Redis nor MySQL can be asked. */
    HASH_DEL(c->lookups, l);
    free(l);
    free(r);
    c->env.metrics->contacts_errors++;
    fn(ctx, NULL, 0, false);
    return NULL;
}

void contacts_cancel(contacts_req *r)
{
    if (!r)
        return;
    cc_unlink(r);
    free(r);
    /* A lookup left without waiters still finishes: its answer fills the
     * cache for the next request. */
}

void contacts_invalidated(contacts *c, const char *user)
{
    cc_entry *e = NULL;
    HASH_FIND_STR(c->cache, user, e);
    if (e)
        cc_entry_free(c, e);
    cc_lookup *old = NULL;
    HASH_FIND_STR(c->lookups, user, old);
    if (old) {
        cc_orphan(c, old);
        cc_lookup *l = cc_lookup_new(c, user);
        contacts_req *r;
        while ((r = old->head)) {
            cc_unlink(r);
            cc_append(l, r);
        }
        if (!l->head) {
            HASH_DEL(c->lookups, l);
            free(l);
        } else if (cc_start(l) < 0) {
            cc_finish(l, false, false, NULL, 0);
        }
    }
    if (c->env.on_changed)
        c->env.on_changed(c->env.ctx, user);
}
