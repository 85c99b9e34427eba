/* relay.h — where a published message goes.
 *
 * relay_publish() takes an accepted SEND and turns it into a room message:
 * it assigns the room-ordered message id, encodes the MESSAGE once, and hands
 * it to the local fan-out (room_deliver). The cluster issue extends this path
 * (id from the room's Redis stream, publish to the bus for other servers);
 * sessions only ever call relay_publish.
 */
#ifndef LECTERN_RELAY_H
#define LECTERN_RELAY_H

#include <stddef.h>

#include "metrics.h"
#include "room.h"
#include "stomp.h"

typedef struct relay relay;

/* Borrows rooms and m; both must outlive the relay. */
relay *relay_create(room_index *rooms, metrics *m);
void relay_destroy(relay *r);   /* accepts NULL */

/* Publish the SEND frame f to the room `name` (already validated). Headers
 * other than the STOMP-reserved ones travel to subscribers unchanged.
 * Returns the number of local deliveries. */
size_t relay_publish(relay *r, const stomp_str *name, const stomp_frame *f);

#endif
