/* sio.h — the client side of Socket.IO 5 over Engine.IO 4, WebSocket
 * transport only, pure: no I/O (see sio.c).
 *
 * lectern-load --protocol socketio plays its room scenarios against a
 * Socket.IO deployment (tests/peers/socketio/) with this codec in place of
 * the STOMP scanner: one WebSocket text message carries one packet, such
 * as "0{...}" (open), "2" (ping), "40{...}" (connected), "42[\"m\",\"...\"]"
 * (an event) or "430[]" (the acknowledgement of event 0). Parsers return
 * views into the caller's buffer.
 */
#ifndef LECTERN_LOAD_SIO_H
#define LECTERN_LOAD_SIO_H

#include <stddef.h>

/* The query of the WebSocket URL that opens an Engine.IO 4 session on the
 * WebSocket transport straight away (no long-polling first). */
#define SIO_QUERY "EIO=4&transport=websocket"

typedef enum sio_kind {
    SIO_OPEN,           /* Engine.IO "0{...}": the session's parameters */
    SIO_CLOSE,          /* Engine.IO "1" */
    SIO_PING,           /* Engine.IO "2": answer "3" */
    SIO_PONG,           /* Engine.IO "3" */
    SIO_NOOP,           /* Engine.IO "6" */
    SIO_CONNECT,        /* Socket.IO "40": the namespace is connected */
    SIO_DISCONNECT,     /* Socket.IO "41" */
    SIO_EVENT,          /* Socket.IO "42[name, args...]" */
    SIO_ACK,            /* Socket.IO "43<id>[args...]" */
    SIO_CONNECT_ERROR,  /* Socket.IO "44{...}" */
    SIO_OTHER           /* binary packets, upgrade probes: not used here */
} sio_kind;

/* One packet. Views point into the parsed buffer. */
typedef struct sio_packet {
    sio_kind kind;
    long ack;           /* EVENT: the ack id it asks for, or -1; ACK: the id acknowledged */
    const char *data;   /* what follows the type, namespace and ack id (JSON, may be empty) */
    size_t data_len;
    const char *name;   /* EVENT: the event name, still JSON-escaped */
    size_t name_len;
    const char *arg;    /* EVENT: the first argument when it is a string (still
                         * JSON-escaped), else NULL */
    size_t arg_len;
} sio_packet;

/* Parse the packet p[0..n) (one whole WebSocket text message) into *out.
 * Returns 0, or -1 when it is malformed (empty, an unknown type, a
 * Socket.IO packet without its ack id or with an event that is not a JSON
 * array starting with a string). */
int sio_parse(const char *p, size_t n, sio_packet *out);

/* Write the event packet "42<ack>[\"name\",\"arg\"...]" into dst[0..cap):
 * name and the nargs strings in args (NUL-terminated, borrowed) JSON-escaped,
 * the ack id left out when ack < 0. Returns its length (no NUL is written
 * after it), or 0 when cap is too small. */
size_t sio_event(char *dst, size_t cap, long ack, const char *name, const char *const *args, int nargs);

#endif
