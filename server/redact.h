/* redact.h — redacting a room message: its body gone everywhere, its place kept.
 *
 * redact_message(room, id, by) turns the message into a TOMBSTONE in both
 * stores and tells the room:
 *   - the Redis room log: the message is marked (registry_redact.h); every
 *     read of the log (history, resume, gap fills, catch-ups) answers it as
 *     its tombstone;
 *   - MySQL: its row becomes the tombstone (db_redact.h), inserted as one
 *     when storage has not written the message yet;
 *   - live: a redaction event, a room message of its own (own id and place,
 *     stored like any other) with an empty body and the headers
 *     x-redacts:<id>, x-redacted-by:<by>, x-redacted-at:<ms>, published
 *     through the relay.
 * A tombstone keeps id, seq, epoch, timestamp, sender and sender name; it
 * has no content type, an empty body and, as its only headers,
 * x-redacted-by:<by> and x-redacted-at:<ms since the epoch>.
 *
 * Used by DELETE /api/rooms/<room>/messages/<id> (http_redact.h) and by an
 * instructor's control frame over STOMP: the caller decides who may.
 * Everything runs on the loop; MySQL only through db.c's pool.
 */
#ifndef LECTERN_REDACT_H
#define LECTERN_REDACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "envelope.h"

struct db;
struct registry;
struct relay;

typedef struct redact redact;

/* What a redactor uses; all borrowed, outliving it. */
typedef struct redact_env {
    struct registry *registry;   /* the room logs' marks */
    struct relay *relay;         /* the redaction event */
    struct db *db;               /* the MySQL tombstone (the history's read pool) */
} redact_env;

typedef enum redact_status {
    REDACT_OK,                   /* redacted now; redaction_id is the event's id */
    REDACT_ALREADY,              /* redacted before: nothing done, no event */
    REDACT_NOT_FOUND,            /* neither the room log nor MySQL holds the message */
    REDACT_UNAVAILABLE           /* Redis, MySQL or the bus failed (why); repeat it */
} redact_status;

/* The outcome; every string lent for the call. */
typedef struct redact_result {
    redact_status status;
    const char *room, *id;       /* as asked */
    const char *redaction_id;    /* OK: the redaction event's id */
    const char *by;              /* OK, ALREADY: who redacted ("" when unknown) */
    uint64_t at_ms;              /* OK, ALREADY: when (ms since the epoch; 0 unknown) */
    const char *why;             /* UNAVAILABLE: what failed */
} redact_result;

typedef void (*redact_done_fn)(void *ctx, const redact_result *res);

/* env is copied. Never fails. */
redact *redact_create(const redact_env *env);
/* Redactions in flight finish with REDACT_UNAVAILABLE at their next step
 * (their done still runs, once); the struct goes with the last of them.
 * Call before the registry, relay, bus and db are destroyed. Accepts NULL. */
void redact_destroy(redact *rd);

enum {
    REDACT_EINVAL = -1,          /* room, id or by is not valid; done not called */
    REDACT_EDOWN = -2            /* Redis is not reachable (or shutting down); done not called */
};

/* Redact message `id` (a message id, msgid.h) of `room` (a valid room
 * name) on behalf of `by` (a user id, userid.h: the API's "system", an
 * instructor's id). Strings are copied. done(ctx, res) runs exactly once,
 * later, on the loop: OK after the MySQL tombstone is written and the
 * redaction event's storage copy is confirmed; UNAVAILABLE after any
 * failure, having taken back what it could (the Redis mark), so that the
 * same request can be repeated. Returns 0, REDACT_EINVAL or REDACT_EDOWN. */
int redact_message(redact *rd, const char *room, const char *id, const char *by,
                   redact_done_fn done, void *ctx);

/* --- pure parts (unit tests) ------------------------------------------------------ */

/* Append a tombstone's header lines to out: "x-redacted-by:<by>\n"
 * "x-redacted-at:<at_ms>\n", by escaped by STOMP 1.2 rules (as the room
 * log's reads write them). */
void redact_tombstone_headers(buf *out, const char *by, uint64_t at_ms);

/* Append a redaction event's header lines to out: x-redacts:<id>, then the
 * tombstone's two. */
void redact_event_headers(buf *out, const char *id, const char *by, uint64_t at_ms);

/* The JSON mark kept in Redis for (by, at_ms): {"by":"..","at":..}.
 * Returns a new string (free). */
char *redact_mark_json(const char *by, uint64_t at_ms);

/* Read (by, at) back from a mark (JSON) or from header lines (a tombstone
 * or an event: x-redacted-by, x-redacted-at, unescaped). by_out gets at
 * most by_cap - 1 bytes and a NUL. false when they are not there. */
bool redact_parse_mark(const char *json, size_t len, char *by_out, size_t by_cap,
                       uint64_t *at_ms);
bool redact_parse_headers(const char *h, size_t len, char *by_out, size_t by_cap,
                          uint64_t *at_ms);

#endif
