/* registry_contacts.h — contact lists cached in Redis.
 *
 * Keys (P = redis.prefix; docs/architecture.md):
 *   P contacts:U    string, TTL contacts.redis_ttl_s: "L" then "\n<id>" per
 *                   contact (a stored list; "L" alone: stored and empty), or
 *                   "N" (no stored list: a negative entry)
 *   P contacts-v:U  U's change counter (contacts_changed bumps it)
 *   P contacts      channel: a user id whose stored list changed
 * A value read from MySQL is cached only when the counter read together
 * with the miss is still the same (contacts_set.lua): a write that lands
 * during the read is never hidden by the older value it read. Everything
 * runs on the loop, on the registry's command connection.
 */
#ifndef LECTERN_REGISTRY_CONTACTS_H
#define LECTERN_REGISTRY_CONTACTS_H

#include <stdbool.h>
#include <stddef.h>

#include "registry.h"

typedef enum registry_contacts_state {
    REGISTRY_CONTACTS_ERROR,     /* Redis failed (or the connection dropped) */
    REGISTRY_CONTACTS_MISS,      /* no cached value */
    REGISTRY_CONTACTS_HIT,
} registry_contacts_state;

/* value[0..len): the cached value (HIT); gen: the user's change counter as
 * read with it ("" when absent; hand it to registry_contacts_set). Both
 * borrowed for the call. */
typedef void (*registry_contacts_fn)(void *ctx, registry_contacts_state st, const char *value,
                                     size_t len, const char *gen);

/* Read P contacts:U (and the counter). 0, or -1 when Redis is not up (fn
 * is then not called). */
int registry_contacts_get(registry *g, const char *user, registry_contacts_fn fn, void *ctx);

/* Cache value[0..len) for user with a TTL of ttl_s, unless the counter is
 * no longer gen (a change happened since). Fire and forget: a failure only
 * costs a later miss. */
void registry_contacts_set(registry *g, const char *user, const char *value, size_t len,
                           int ttl_s, const char *gen);

/* user's stored list changed: DEL the value, bump the counter (kept ttl_s),
 * PUBLISH the user on P contacts, atomically. fn(ctx, ok) once, later;
 * -1 (fn not called) when Redis is not up. */
int registry_contacts_changed(registry *g, const char *user, int ttl_s,
                              void (*fn)(void *ctx, bool ok), void *ctx);


/* --- the value format (pure) ---------------------------------------------------- */

/* The value of a list: "N" when !stored, else "L" and "\n<id>" per id.
 * Returns a new string (free) and its length in *len. */
char *registry_contacts_encode(bool stored, const char *const *ids, size_t n, size_t *len);

/* Parse a value: *stored, and the ids (new array of new strings, at most
 * max; free with registry_contacts_free_ids) in *ids / *n. Invalid ids are
 * skipped. 0, or -1 when the value is neither "N" nor an "L" list. */
int registry_contacts_decode(const char *v, size_t len, size_t max, bool *stored, char ***ids,
                             size_t *n);
void registry_contacts_free_ids(char **ids, size_t n);

#endif
