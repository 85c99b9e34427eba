/* subscriber.h — what a room holds: a member, and how a message reaches it.
 *
 * Rooms (room.c) and presence (presence.c) keep sets of subscribers and
 * hand them messages; they never know what a subscriber is beyond this
 * record. The owner (a connection's subscription, see subscription.h)
 * embeds a subscriber and gets its messages through the deliver hook the
 * room index was created with: one function pointer per index, not per
 * member, so a member costs its room one pointer.
 */
#ifndef LECTERN_SUBSCRIBER_H
#define LECTERN_SUBSCRIBER_H

#include <stdint.h>

#include "msg.h"

struct room;

typedef struct subscriber {
    struct room *room;  /* room.c: the room while a member, NULL otherwise */
    uint32_t slot;      /* room.c: its index among the room's members */
    uint64_t seen;      /* presence.c: the last presence version sent */
} subscriber;

/* Queue m (shared: take a reference to keep it) for sub. Called from the
 * loop thread, inside a fan-out: it must not join or leave rooms. */
typedef void (*subscriber_deliver_fn)(subscriber *sub, msg *m);

#endif
