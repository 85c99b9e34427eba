/* contacts.h — whose online status a user may watch: their contact list.
 *
 * Which list counts: a list STORED by the contacts API (http_contacts.h;
 * MySQL, even an empty one) wins over the `contacts` claim of the user's
 * token; without a stored list, the claim; with neither, no contacts. At
 * most contacts.max of them.
 *
 * contacts_get resolves a user's list through three layers: a per-server
 * cache (contacts.cache_ttl_ms, at most contacts.cache_max users), the
 * Redis value P contacts:U (registry_contacts.h, contacts.redis_ttl_s),
 * then MySQL (db_contacts.h), whose answer is written back to Redis
 * (including "no stored list"). Concurrent lookups of one user share one
 * Redis read and at most one MySQL read. When a list changes
 * (contacts_invalidated, from the registry's P contacts channel) the
 * server's cache entry goes, a lookup in flight for that user starts over
 * (its waiters get the new list, never the one read before the change),
 * and the on_changed hook runs. Everything runs on the loop.
 */
#ifndef LECTERN_CONTACTS_H
#define LECTERN_CONTACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "metrics.h"

struct db;
struct registry;

typedef struct contacts contacts;
typedef struct contacts_req contacts_req;

/* The contacts.* knobs. */
typedef struct contacts_config {
    int cache_ttl_ms;        /* a cached list is used this long (0: no cache) */
    int cache_max;           /* most users cached (0: no cache) */
    int redis_ttl_s;         /* TTL of P contacts:U */
    int max;                 /* most contacts in a list (stored or claimed) */
} contacts_config;

/* What the module uses; all borrowed, outliving the module. */
typedef struct contacts_env {
    uv_loop_t *loop;
    const contacts_config *cfg;
    struct registry *registry;   /* NULL: no Redis layer */
    struct db *db;               /* NULL: no MySQL layer */
    metrics *metrics;            /* lectern_contacts_* counters */
    /* A user's list changed (after their cache entry was dropped); ctx as
     * given. May be NULL. */
    void (*on_changed)(void *ctx, const char *user);
    void *ctx;
} contacts_env;

/* users: n ids (borrowed for the call; copy to keep); ok false = lists
 * unavailable (Redis and MySQL failed; users NULL, n 0). */
typedef void (*contacts_fn)(void *ctx, const char *const *users, size_t n, bool ok);

/* env is copied. */
contacts *contacts_create(const contacts_env *env);

/* Requests still waiting complete with ok false (those of one user in the
 * order they were made) before this returns; Redis and MySQL answers that come later are
 * dropped. Not from inside a contacts_fn. Accepts NULL. */
void contacts_destroy(contacts *c);

/* Resolve user's list; claim (may be NULL/0; borrowed for the call) is the
 * token's `contacts` claim. fn runs exactly once unless cancelled; it MAY
 * run before contacts_get returns (cache hit), in which case contacts_get
 * returns NULL. Otherwise the request is returned, valid until fn runs or
 * contacts_cancel. */
contacts_req *contacts_get(contacts *c, const char *user, const char *const *claim, size_t nclaim,
                           contacts_fn fn, void *ctx);

/* fn will not run; accepts NULL. Not for a request whose fn has run. */
void contacts_cancel(contacts_req *r);

/* user's stored list changed (the registry's P contacts channel): drop the
 * cache entry, restart a lookup in flight, then call on_changed. */
void contacts_invalidated(contacts *c, const char *user);

/* Users cached now. */
size_t contacts_cached(const contacts *c);

#endif
