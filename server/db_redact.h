/* db_redact.h — redaction tombstones in the message store (MySQL).
 *
 * A redacted message's row becomes its tombstone: body '', content_type
 * NULL, headers = the lines x-redacted-by and x-redacted-at; every other
 * column (room, id, epoch, seq, ts_ms, sender, sender_name, origin) stays.
 * No schema change: readers (db_fetch) hand the row out as it is, and a
 * row is a tombstone when its headers begin with "x-redacted-by:" (a SEND
 * can never carry x-redact* headers: relay.c strips them).
 *
 * Calls run on db.c's thread pool (db_run) and answer on the loop, exactly
 * once, never inside the call. Values are always bound. Each is one
 * statement (two for db_redact_stored's miss), safe to run again.
 */
#ifndef LECTERN_DB_REDACT_H
#define LECTERN_DB_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"
#include "envelope.h"

typedef enum db_redact_status {
    DB_REDACT_FAILED,          /* MySQL failed (why) */
    DB_REDACT_DONE,            /* the row is the tombstone now */
    DB_REDACT_ALREADY,         /* db_redact_stored: the row was a tombstone already */
    DB_REDACT_NOT_FOUND        /* db_redact_stored: no such row */
} db_redact_status;

/* Lent for the call. */
typedef struct db_redact_result {
    db_redact_status status;
    const char *why;           /* FAILED */
    const char *headers;       /* ALREADY: the tombstone's header lines */
    size_t headers_len;
} db_redact_result;

typedef void (*db_redact_fn)(void *ctx, const db_redact_result *r);

/* Write tomb (room, id, seq, epoch, ts_ms, sender, sender_name, origin and
 * the tombstone's header lines; content_type and body are ignored: NULL
 * and '') as the row of its message: inserted when storage has not written
 * the message yet (its later insert, ON DUPLICATE KEY UPDATE id_ms = id_ms,
 * is then a no-op), else the row's content replaced. DONE or FAILED. tomb
 * is copied. */
void db_redact_write(db *d, const envelope *tomb, db_redact_fn fn, void *ctx);

/* Make the stored row of (room, id) a tombstone with these header lines,
 * unless it is one already (ALREADY, with its headers) or there is no such
 * row (NOT_FOUND). For messages the room log no longer holds. Strings are
 * copied; id must be a valid message id. */
void db_redact_stored(db *d, const char *room, const char *id, const char *headers,
                      size_t headers_len, db_redact_fn fn, void *ctx);

#endif
