/* dbwriter.h — the message store's write side: one MySQL connection.
 *
 * dbwriter_open connects, and the first time in the process also applies the
 * schema migrations (schema.h) under a named lock. dbwriter_write inserts a
 * batch of messages in one transaction with prepared multi-row
 * INSERT ... ON DUPLICATE KEY UPDATE id_ms = id_ms statements and commits.
 * Every call but dbwriter_interrupt runs on one thread (libmariadb blocks).
 *
 * dbwriter_open also checks that the database holds every message the servers
 * accept (lib/storelimits.h: column widths, max_allowed_packet); one that
 * does not is DBWRITER_INCOMPATIBLE, and the caller should not consume.
 *
 * Failures are of two kinds. A row MySQL refuses on its own account (a value
 * too long for its column, or a row larger than max_allowed_packet) is
 * marked rejected and the rest of the batch is still written and committed.
 * Anything else (the connection, a deadlock, a lock wait, a read-only or
 * full server, a missing table or privilege) rolls the transaction back,
 * closes the connection and fails the whole write: the caller keeps the
 * batch and writes it again after dbwriter_open succeeds.
 */
#ifndef LECTERN_STORAGE_DBWRITER_H
#define LECTERN_STORAGE_DBWRITER_H

#include "envelope.h"
#include "msgid.h"
#include "mysqlconn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dbwriter dbwriter;

typedef struct dbwriter_config {
    mysqlconn_config conn;       /* the store (mysql.*) */
    int         batch_max;       /* most rows one dbwriter_write is given (storage.batch_max) */
} dbwriter_config;

/* One message to write. */
typedef struct dbwriter_row {
    const envelope *env;         /* borrowed for the call */
    msgid id;                    /* env->id, parsed */
    unsigned rejected;           /* out: 0, or the MySQL error that refused this row */
} dbwriter_row;

typedef struct dbwriter_result {
    size_t   inserted;           /* rows that were new */
    size_t   duplicates;         /* rows already present (no-ops) */
    size_t   rejected;           /* rows marked rejected */
    uint64_t write_us;           /* statements + COMMIT */
} dbwriter_result;

/* A closed writer. cfg's strings are borrowed and must outlive it. */
dbwriter *dbwriter_create(const dbwriter_config *cfg);

/* Close and free. Accepts NULL. */
void dbwriter_destroy(dbwriter *s);

/* dbwriter_open's answer when MySQL is reachable but cannot hold the largest
 * message lib/storelimits.h allows (a column too narrow or of a text type,
 * a column missing, max_allowed_packet too small). */
#define DBWRITER_INCOMPATIBLE (-2)

/* Connect (and, once per process, migrate the schema), then check the
 * database against lib/storelimits.h. Returns 0; DBWRITER_INCOMPATIBLE with
 * why naming the column or setting; or -1 with why for any other failure.
 * The writer stays closed unless 0. */
int dbwriter_open(dbwriter *s, char *why, size_t whylen);

bool dbwriter_is_open(const dbwriter *s);

/* Write rows[0..n) (n <= batch_max) in one transaction and commit.
 * Returns 0 with *res (rows[i].rejected set for refused rows), or -1 with
 * why when nothing was written: the writer is then closed. */
int dbwriter_write(dbwriter *s, dbwriter_row *rows, size_t n, dbwriter_result *res, char *why,
                   size_t whylen);

/* Check the idle connection. Returns 0, or -1 with why (closed). */
int dbwriter_ping(dbwriter *s, char *why, size_t whylen);

/* Close the connection. */
void dbwriter_close(dbwriter *s);

/* From any thread: make a blocked call fail at once (shutdown(2) of the
 * socket) and every later dbwriter_open fail. */
void dbwriter_interrupt(dbwriter *s);

#endif
