/* store.h — the message store's write side: one MySQL connection.
 *
 * store_open connects, and the first time in the process also applies the
 * schema migrations (schema.h) under a named lock. store_write inserts a
 * batch of messages in one transaction with prepared multi-row
 * INSERT ... ON DUPLICATE KEY UPDATE id_ms = id_ms statements and commits.
 * Every call but store_interrupt runs on one thread (libmariadb blocks).
 *
 * store_open also checks that the database holds every message the servers
 * accept (lib/storelimits.h: column widths, max_allowed_packet); one that
 * does not is STORE_INCOMPATIBLE, and the caller should not consume.
 *
 * Failures are of two kinds. A row MySQL refuses on its own account (a value
 * too long for its column, or a row larger than max_allowed_packet) is
 * marked rejected and the rest of the batch is still written and committed.
 * Anything else (the connection, a deadlock, a lock wait, a read-only or
 * full server, a missing table or privilege) rolls the transaction back,
 * closes the connection and fails the whole write: the caller keeps the
 * batch and writes it again after store_open succeeds.
 */
#ifndef LECTERN_STORAGE_STORE_H
#define LECTERN_STORAGE_STORE_H

#include "envelope.h"
#include "msgid.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store;

typedef struct store_config {
    const char *host;
    int         port;
    const char *user;
    const char *password;
    const char *database;
    int         timeout_s;       /* connect, read and write */
    int         batch_max;       /* most rows one store_write is given */
} store_config;

/* One message to write. */
typedef struct store_row {
    const envelope *env;         /* borrowed for the call */
    msgid id;                    /* env->id, parsed */
    unsigned rejected;           /* out: 0, or the MySQL error that refused this row */
} store_row;

typedef struct store_result {
    size_t   inserted;           /* rows that were new */
    size_t   duplicates;         /* rows already present (no-ops) */
    size_t   rejected;           /* rows marked rejected */
    uint64_t write_us;           /* statements + COMMIT */
} store_result;

/* A closed store. cfg's strings are borrowed and must outlive it. */
store *store_create(const store_config *cfg);

/* Close and free. Accepts NULL. */
void store_destroy(store *s);

/* store_open's answer when MySQL is reachable but cannot hold the largest
 * message lib/storelimits.h allows (a column too narrow or of a text type,
 * a column missing, max_allowed_packet too small). */
#define STORE_INCOMPATIBLE (-2)

/* Connect (and, once per process, migrate the schema), then check the
 * database against lib/storelimits.h. Returns 0; STORE_INCOMPATIBLE with
 * why naming the column or setting; or -1 with why for any other failure.
 * The store stays closed unless 0. */
int store_open(store *s, char *why, size_t whylen);

bool store_is_open(const store *s);

/* Write rows[0..n) (n <= batch_max) in one transaction and commit.
 * Returns 0 with *res (rows[i].rejected set for refused rows), or -1 with
 * why when nothing was written: the store is then closed. */
int store_write(store *s, store_row *rows, size_t n, store_result *res, char *why,
                size_t whylen);

/* Check the idle connection. Returns 0, or -1 with why (closed). */
int store_ping(store *s, char *why, size_t whylen);

/* Close the connection. */
void store_close(store *s);

/* From any thread: make a blocked call fail at once (shutdown(2) of the
 * socket) and every later store_open fail. */
void store_interrupt(store *s);

#endif
