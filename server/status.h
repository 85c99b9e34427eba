/* status.h — SUBSCRIBE /status: which of a user's contacts are online, live.
 *
 * A /status subscription watches a list of users: the caller's contacts
 * (contacts.h: a stored list, else the token's claim) or an explicit
 * x-users list the caller may watch. It first receives a snapshot (JSON:
 * type "snapshot", contacts: [{user, online, since, seen}]), then one
 * MESSAGE per change anywhere in the cluster ({"type":"online","user",
 * "since"} / {"type":"offline","user","seen"}). When the caller's contact
 * list changes, a fresh snapshot follows. A change already reflected in a
 * snapshot is never sent again.
 *
 * Each server watches, in the registry, exactly the users its subscribers
 * watch, once however many subscribers watch one user (registry_status.h),
 * and keeps each watched user's status: a subscriber whose contacts are
 * already watched here gets its snapshot without asking Redis.
 */
#ifndef LECTERN_STATUS_H
#define LECTERN_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "metrics.h"
#include "subscriber.h"

struct contacts;
struct registry;

typedef struct status status;
typedef struct status_sub status_sub;

/* Why a subscription could not go on (status_hooks.fail). */
typedef enum status_failure {
    STATUS_FAIL_UNAVAILABLE,   /* the contact lists could not be read */
    STATUS_FAIL_FORBIDDEN,     /* an x-users entry is not one of the caller's contacts */
} status_failure;

typedef struct status_hooks {
    subscriber_deliver_fn deliver;
    /* sub cannot go on (detail: the refused user, or ""). The owner ends
     * it with an ERROR; it must not call status_unsubscribe from inside
     * this hook (a deferred close is fine). */
    void (*fail)(subscriber *sub, status_failure why, const char *detail);
} status_hooks;

typedef struct status_config {
    int chunk;                 /* users per registry call (status.chunk) */
    int max_contacts;          /* users one subscription watches at most (contacts.max) */
} status_config;

/* hooks and cfg are copied; m is borrowed. reg and contacts come later
 * (status_attach), before the first subscription. */
status *status_create(const status_config *cfg, const status_hooks *hooks, metrics *m);
void status_attach(status *st, struct registry *reg, struct contacts *contacts);
void status_destroy(status *st);    /* accepts NULL; subscriptions must be gone */

/* Start watching for sub (borrowed until status_unsubscribe), owned by
 * user. claim: the token's contacts claim (NULL/0: none); xusers: an
 * explicit list (NULL: the contacts); any: the caller may watch anyone
 * (admin, or auth.mode=none). Strings are copied. Returns the
 * subscription's handle, or NULL when the registry is down (the caller
 * answers with an ERROR). */
status_sub *status_subscribe(status *st, subscriber *sub, const char *user,
                             const char *const *claim, size_t nclaim,
                             const char *const *xusers, size_t nx, bool any);
void status_unsubscribe(status_sub *ss);    /* accepts NULL */

/* From the registry: a status event (registry_status_event_parse's JSON). */
void status_on_event(status *st, const char *json, size_t len);
/* From the registry: it (re)registered, or its event subscription came
 * back; watched users are registered again and their statuses re-read. */
void status_resync(status *st);
/* From contacts: user's contact list changed; their subscriptions here
 * read it again and get a fresh snapshot. */
void status_contacts_changed(status *st, const char *user);

/* One user's entry as snapshots and the HTTP API list it: {user, online,
 * since, seen} (null for none). A new reference. */
struct registry_status;
json_t *status_entry_json(const char *user, const struct registry_status *st);

/* Users watched on this server, and /status subscriptions. */
size_t status_watched(const status *st);
size_t status_subscriptions(const status *st);

#endif
