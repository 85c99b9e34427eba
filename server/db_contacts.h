/* db_contacts.h — stored contact lists in MySQL (tables contact_lists and
 * contacts, storage-worker/schema/0003_contacts.sql).
 *
 * Every call runs on db.c's thread pool (db_run) and answers on the loop,
 * exactly once, never inside the call. A user HAS a stored list when
 * contact_lists holds a row for them (the list may be empty); the writes
 * are each one transaction that first upserts that row, which also orders
 * concurrent writes to one user's list. Values are always bound, never
 * written into SQL text. Ids are checked by the caller (userid.h).
 */
#ifndef LECTERN_DB_CONTACTS_H
#define LECTERN_DB_CONTACTS_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"

typedef struct db_contacts_result {
    bool ok;                  /* false: MySQL failed (why says how) */
    const char *why;
    bool stored;              /* read: the user has a stored list */
    bool too_many;            /* patch: the list would exceed max; nothing changed */
    size_t count;             /* contacts in the list after the call */
    const char *const *ids;   /* read: the list, bytewise sorted (count of them) */
} db_contacts_result;

/* r and everything it points to are borrowed for the call. */
typedef void (*db_contacts_fn)(void *ctx, const db_contacts_result *r);

/* The stored list of user: at most max ids (a list written by this API
 * never holds more). */
void db_contacts_read(db *d, const char *user, size_t max, db_contacts_fn fn, void *ctx);

/* Make user's stored list exactly ids[0..n) (distinct; the caller removes
 * repeats): count = n. */
void db_contacts_replace(db *d, const char *user, const char *const *ids, size_t n,
                         db_contacts_fn fn, void *ctx);

/* Add add[] and remove remove[] (no id in both) in one transaction; a user
 * without a stored list starts from an empty one. When the result would
 * hold more than max, nothing changes and too_many is set. count: the
 * list's size after. */
void db_contacts_patch(db *d, const char *user, const char *const *add, size_t nadd,
                       const char *const *remove, size_t nremove, size_t max,
                       db_contacts_fn fn, void *ctx);

/* Remove user's stored list (the claim of their token counts again). */
void db_contacts_delete(db *d, const char *user, db_contacts_fn fn, void *ctx);

#endif
