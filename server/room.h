/* room.h — local room index and fan-out.
 *
 * A room is the set of this server's subscriptions to /topic/<name>. It
 * exists while it has at least one member. room_deliver() is the one path by
 * which a message reaches local subscribers: messages published on this
 * server and (later) messages arriving from the bus both end here.
 */
#ifndef LECTERN_ROOM_H
#define LECTERN_ROOM_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "stomp.h"

typedef struct room room;
typedef struct room_index room_index;
struct subscription;

room_index *room_index_create(void);
/* Accepts NULL. Every room must be empty (all subscriptions left). */
void room_index_destroy(room_index *ri);

/* The room named name[0..len), or NULL when it has no local member. */
room *room_lookup(room_index *ri, const char *name, size_t len);

/* Add sub to the room (created on first join). sub->room is set. */
void room_join(room_index *ri, const char *name, size_t len, struct subscription *sub);
/* Remove sub from its room; the room is destroyed with its last member. */
void room_leave(room_index *ri, struct subscription *sub);

/* Queue m on every member's connection. Returns the number of deliveries. */
size_t room_deliver(room *r, msg *m);

const char *room_name(const room *r);
size_t room_size(const room *r);
size_t room_index_count(const room_index *ri);

/* Destinations. A room destination is "/topic/<name>", the name 1..max_len
 * bytes of A-Z a-z 0-9 . _ ~ - (safe in URLs, Redis keys and AMQP routing
 * keys). Returns ROOM_DEST_OK and the name view, ROOM_DEST_UNKNOWN (not a
 * destination this server knows) or ROOM_DEST_INVALID (bad name). */
enum { ROOM_DEST_OK = 0, ROOM_DEST_UNKNOWN = -1, ROOM_DEST_INVALID = -2 };
int room_destination(const stomp_str *dest, size_t max_len, stomp_str *name);

#endif
