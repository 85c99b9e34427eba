/* presence.h — SUBSCRIBE /presence/<room>: who is in a room, live.
 *
 * A presence subscription first receives a snapshot (JSON: count, members up
 * to registry.presence_max, truncated, v), then one MESSAGE per join or
 * leave anywhere in the cluster (JSON: type, room, user, count, v). `v` is
 * the room's presence version: it grows by one per change, so a client can
 * tell an event that is already in its snapshot (v <= snapshot's v).
 *
 * Events come from Redis pub/sub (published by the same scripts that change
 * presence); snapshots come from the registry connection. Because the two
 * race, events for a room are buffered while one of its snapshots is on the
 * way, and those newer than the snapshot follow it.
 */
#ifndef LECTERN_PRESENCE_H
#define LECTERN_PRESENCE_H

#include <stddef.h>

#include "registry.h"
#include "subscriber.h"

typedef struct presence presence;

/* deliver: how a subscriber gets its snapshot and events. The registry is
 * borrowed, set later with presence_attach. */
presence *presence_create(subscriber_deliver_fn deliver);
void presence_attach(presence *p, registry *reg);
void presence_destroy(presence *p);   /* accepts NULL */

/* Start sub (borrowed until presence_unsubscribe) on room `rname` (a valid
 * name). Returns 0, or -1 when the registry is down (the caller answers
 * with an ERROR). */
int presence_subscribe(presence *p, subscriber *sub, const char *rname);
void presence_unsubscribe(presence *p, subscriber *sub);

/* From the registry. */
void presence_on_event(presence *p, const char *rname, uint64_t v, const char *json, size_t len);
void presence_resync(presence *p);

/* Encode a presence MESSAGE body (JSON) for `room` once; the caller owns
 * the reference. Exposed for the HTTP API's tests of the same JSON. */
struct msg *presence_message(const char *rname, const char *id, const char *json, size_t len);

#endif
