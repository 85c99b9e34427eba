/* storelimits.h — the most bytes the message store holds, per stored field.
 *
 * One table shared by both programs, so that nothing is receipted that
 * storage cannot hold:
 *   - lectern-server refuses a SEND whose row would exceed any of these
 *     with ERROR "Message too large for storage" before any RECEIPT and
 *     before it is delivered or published (server/relay.c,
 *     relay_check_send); its knobs cannot be set to accept frames larger
 *     than the largest row (server/config.c);
 *   - lectern-storage checks at every MySQL connect that the messages
 *     table's columns are at least this wide and that max_allowed_packet
 *     holds the largest row, and refuses to consume otherwise, instead of
 *     dropping rows MySQL would refuse (storage-worker/store.c).
 * The schema (storage-worker/schema/NNNN_*.sql) gives every column at
 * least the width below.
 *
 * Sizes are the bytes the worker binds: room, sender, sender name, content
 * type and origin as C strings (no NUL), headers as the escaped STOMP 1.2
 * header lines the envelope carries ("name:value\n", sender-role first),
 * the body as sent. The whole row is the sum of the seven; its limit keeps
 * one row, with the statement around it, under MariaDB's default
 * max_allowed_packet (16 MiB).
 *
 * The #define lines are read by tests (storage-limits.test.mjs): keep each
 * a plain decimal number.
 */
#ifndef LECTERN_STORELIMITS_H
#define LECTERN_STORELIMITS_H

#include "envelope.h"

#include <stddef.h>

#define STORELIMITS_ROOM_MAX 255             /* VARBINARY(255) */
#define STORELIMITS_SENDER_MAX 1024          /* VARBINARY(1024) */
#define STORELIMITS_SENDER_NAME_MAX 1024     /* VARBINARY(1024) */
#define STORELIMITS_CONTENT_TYPE_MAX 1024    /* VARBINARY(1024) */
#define STORELIMITS_HEADERS_MAX 16777215     /* MEDIUMBLOB */
#define STORELIMITS_BODY_MAX 16777215        /* MEDIUMBLOB */
#define STORELIMITS_ORIGIN_MAX 255           /* VARBINARY(255) */
#define STORELIMITS_ROW_MAX 16711680         /* 16 MiB - 64 KiB, all fields together */

typedef enum storelimits_field {
    STORELIMITS_ROOM,
    STORELIMITS_SENDER,
    STORELIMITS_SENDER_NAME,
    STORELIMITS_CONTENT_TYPE,
    STORELIMITS_HEADERS,
    STORELIMITS_BODY,
    STORELIMITS_ORIGIN,
    STORELIMITS_NFIELDS,
    STORELIMITS_ROW = STORELIMITS_NFIELDS    /* the whole row (table entry only) */
} storelimits_field;

typedef struct storelimits_limit {
    const char *column;      /* the column of `messages`; "" for the row */
    const char *what;        /* the field as a client knows it */
    size_t max;              /* most bytes */
} storelimits_limit;

/* Indexed by storelimits_field, the row last. */
extern const storelimits_limit storelimits_table[STORELIMITS_NFIELDS + 1];

/* The bytes of one message, per field. */
typedef struct storelimits_sizes {
    size_t v[STORELIMITS_NFIELDS];
} storelimits_sizes;

/* The sizes of env as the storage worker binds it (pure). */
void storelimits_of_envelope(const envelope *env, storelimits_sizes *out);

/* The sum of the fields (the row). */
size_t storelimits_row(const storelimits_sizes *s);

/* The first field over its limit, STORELIMITS_ROW when only the sum is,
 * or -1 when the message fits (pure). */
int storelimits_check(const storelimits_sizes *s);

/* One sentence naming `field` (from storelimits_check), its size in s and
 * its limit, for an ERROR body or a log line. out is always terminated. */
void storelimits_explain(const storelimits_sizes *s, int field, char *out, size_t outlen);

#endif
