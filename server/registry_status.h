/* registry_status.h — people's online status in the registry.
 *
 * A user's status, as their contacts see it, is kept by the registry's
 * scripts next to the online counts they already keep: online means at
 * least one connection anywhere and not hidden. Each change bumps the
 * user's version `v` and is published only to the servers that watch that
 * user (docs/architecture.md, "Friends' status"), on each one's own
 * channel; the registry hands those events to registry_events.on_status.
 *
 * A server watches a user from registry_status_watch until
 * registry_status_unwatch (or until it is reaped, or says goodbye). The
 * watch answers with the statuses at the moment it took effect, atomically,
 * so no change falls between that answer and the first event.
 *
 * Versions compare as (epoch, v): a Redis that lost its data starts a new
 * epoch, whose versions start again at 1 and win over the old ones.
 */
#ifndef LECTERN_REGISTRY_STATUS_H
#define LECTERN_REGISTRY_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h"

/* One user's status. since and seen are ms since the Unix epoch, -1 for
 * none (since: while offline; seen: never went offline). */
typedef struct registry_status {
    uint64_t epoch, v;         /* v 0: never had a status (offline, unseen) */
    bool online;
    int64_t since, seen;
} registry_status;

/* The statuses of the users asked for, in their order (n of them, lent
 * for the call); ok false (st NULL) when Redis failed. */
typedef void (*registry_status_fn)(void *ctx, const registry_status *st, size_t n, bool ok);

/* This server watches users[0..n) (borrowed for the call) from now on;
 * reset first forgets every user it watched (after a reconnect, before the
 * first chunk of the full list). fn gets their statuses. Returns 0, or -1
 * when the registry is not up (fn is not called). */
int registry_status_watch(registry *g, const char *const *users, size_t n, bool reset,
                          registry_status_fn fn, void *ctx);

/* This server no longer watches users[0..n). Fire and forget. */
void registry_status_unwatch(registry *g, const char *const *users, size_t n);

/* The statuses of users[0..n) without watching them. As registry_status_watch. */
int registry_status_get(registry *g, const char *const *users, size_t n, registry_status_fn fn,
                        void *ctx);

/* Hide user (appear offline to everyone) or show them again; kept until
 * changed. done(ctx, ok) runs once Redis answered. Returns 0, or -1 when
 * the registry is not up (done is not called). */
int registry_status_hide(registry *g, const char *user, bool hide,
                         void (*done)(void *ctx, bool ok), void *ctx);

/* Parse a status event (the JSON published by the scripts: user, on, since,
 * seen, v, e). *user and *ulen point into a copy owned by *out_json, which
 * the caller frees with registry_status_event_free. Pure. Returns 0, or -1
 * when the text is not such an event. */
typedef struct registry_status_event {
    const char *user;
    registry_status st;
    void *json;                /* owned */
} registry_status_event;
int registry_status_event_parse(const char *text, size_t len, registry_status_event *out);
void registry_status_event_free(registry_status_event *ev);

#endif
