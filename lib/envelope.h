/* envelope.h — a room message as it travels through RabbitMQ.
 *
 * The AMQP body is the STOMP body, unchanged. Everything else travels in the
 * AMQP basic properties:
 *
 *   content_type   the SEND's content-type (absent when it had none)
 *   message_id     the room-assigned id ("<ms>-<seq>", a Redis stream id)
 *   timestamp      server time of the publish, seconds
 *   app_id         "lectern"
 *   headers        x-lectern-room         longstr  room name
 *                  x-lectern-id           longstr  same as message_id
 *                  x-lectern-seq          int64    dense per-room sequence
 *                  x-lectern-epoch        int64    registry epoch (microseconds)
 *                  x-lectern-ts           int64    server time of the publish, ms
 *                  x-lectern-sender       longstr  user id
 *                  x-lectern-sender-name  longstr  display name
 *                  x-lectern-origin       longstr  id of the publishing server
 *                  x-lectern-headers      bytes    the SEND's other headers as
 *                                                  STOMP 1.2 header lines
 *                                                  ("name:value\n", escaped)
 *
 * Both programs use it: servers to publish to and consume from the room
 * exchange, storage workers (later) to read the storage queue.
 */
#ifndef LECTERN_ENVELOPE_H
#define LECTERN_ENVELOPE_H

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_MAX_ENTRIES 10

typedef struct envelope {
    char    *room;
    char    *id;
    uint64_t seq;
    uint64_t epoch;
    uint64_t ts_ms;
    char    *sender;        /* may be "" */
    char    *sender_name;   /* may be "" */
    char    *origin;
    char    *content_type;  /* NULL when absent */
    char    *headers;       /* NULL or headers_len bytes of header lines */
    size_t   headers_len;
    void    *body;          /* body_len bytes, may contain NUL; NULL when empty */
    size_t   body_len;
} envelope;

/* Point props at env's fields for amqp_basic_publish. `entries` is caller
 * storage for the headers table. props is valid while env and entries live;
 * nothing is allocated. */
void envelope_to_amqp(const envelope *env, amqp_basic_properties_t *props,
                      amqp_table_entry_t entries[ENVELOPE_MAX_ENTRIES]);

/* Bytes of the AMQP content header frame that carries env's properties
 * (envelope_to_amqp, plus a delivery mode): frame header and end, class,
 * weight, body size, property flags and every property. A message whose
 * frame exceeds the connection's frame_max, or whose content type or id is
 * over an AMQP short string's 255 bytes, cannot be published this way (the
 * publish fails): it travels as a batch of one instead (envbatch.h), whose
 * fields are in the body. Pure. */
size_t envelope_amqp_header_size(const envelope *env);

/* Can env be published with envelope_to_amqp on a connection whose
 * negotiated frame_max is frame_max (0: no limit)? */
bool envelope_fits_amqp(const envelope *env, size_t frame_max);

/* Decode a received message into *out (every field allocated, owned by
 * *out). Returns 0, or -1 with *why set when room, id or origin is missing
 * or a header has the wrong type; *out is then empty. */
int envelope_from_amqp(const amqp_basic_properties_t *props, amqp_bytes_t body,
                       envelope *out, const char **why);

/* Deep copy; free with envelope_free. */
void envelope_copy(envelope *dst, const envelope *src);

/* Free the fields of env (not env itself) and zero it. Accepts an empty one. */
void envelope_free(envelope *env);

#endif
