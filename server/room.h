/* room.h — local room index and fan-out.
 *
 * A room is the set of this server's subscriptions to /topic/<name>. It
 * exists while it has at least one member. room_offer() is the one path by
 * which a room message reaches local subscribers: messages published on
 * this server and messages arriving from the bus both go through the room's
 * seqbuf, which releases them in room order, exactly once, to room_deliver().
 * The same index type also holds presence subscriptions (/presence/<name>),
 * which use room_deliver() directly.
 */
#ifndef LECTERN_ROOM_H
#define LECTERN_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "stomp.h"
#include "subscriber.h"

typedef struct room room;
typedef struct room_index room_index;

/* deliver: how room_deliver reaches each member. */
room_index *room_index_create(subscriber_deliver_fn deliver);
/* Accepts NULL. Every room must be empty (all subscriptions left). */
void room_index_destroy(room_index *ri);

/* The room named name[0..len), or NULL when it has no local member. */
room *room_lookup(room_index *ri, const char *name, size_t len);

/* Add sub to the room (created on first join). sub->room is set. Returns
 * true when this created the room. */
bool room_join(room_index *ri, const char *name, size_t len, subscriber *sub);
/* Remove sub from its room; the room is destroyed with its last member.
 * Returns true when the room was destroyed. */
bool room_leave(room_index *ri, subscriber *sub);

/* Hand m to every member now (the index's deliver hook). Returns the number
 * of deliveries. */
size_t room_deliver(room *r, msg *m);

/* Ordered delivery (MSG_MESSAGE with epoch and seq set): m goes through the
 * room's seqbuf and out, in room order and once, when its turn comes. The
 * room takes a reference. */
void room_offer(room *r, msg *m);
/* Call fn(ctx, true) once the room's order is based (its registry join was
 * answered); at once if it is. fn(ctx, false) if the room goes away first. */
typedef void (*room_ready_fn)(void *ctx, bool ok);
void room_when_based(room *r, room_ready_fn fn, void *ctx);
/* The order was just based: run the waiting callbacks. */
void room_based(room *r);

/* The room's order: see seqbuf.h. Owned by the room. */
struct seqbuf *room_order(room *r);
/* Messages released so far through room_offer. */
uint64_t room_released(const room *r);

/* The room's members (valid until the next join or leave). */
subscriber *const *room_members(const room *r, size_t *n);

/* Iterate the rooms (no joins or leaves while iterating). */
room *room_first(room_index *ri);
room *room_next(room *r);

const char *room_name(const room *r);
size_t room_index_count(const room_index *ri);

/* Destinations: "/topic/<name>" (the room's messages) and
 * "/presence/<name>" (who is in the room). A name is 1..max_len bytes of
 * A-Z a-z 0-9 . _ ~ - (safe in URLs, Redis keys and AMQP routing keys).
 * Returns ROOM_DEST_TOPIC, ROOM_DEST_PRESENCE or ROOM_DEST_CONTROL
 * (/control/<room>, moderation) with the name view,
 * ROOM_DEST_UNKNOWN (not a destination this server knows) or
 * ROOM_DEST_INVALID (bad name). */
enum { ROOM_DEST_TOPIC = 0, ROOM_DEST_PRESENCE = 1, ROOM_DEST_CONTROL = 2,
       ROOM_DEST_UNKNOWN = -1, ROOM_DEST_INVALID = -2 };
int room_destination(const stomp_str *dest, size_t max_len, stomp_str *name);

/* Is s a valid room name (the rule above)? */
bool room_name_valid(const char *s, size_t len, size_t max_len);

#endif
