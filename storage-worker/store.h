/* store.h — the message store's write side (MySQL/MariaDB, blocking).
 *
 * Used by the worker thread only. One connection, autocommit off; every
 * batch is one prepared multi-row INSERT (placeholders only, never values
 * in SQL text) followed by COMMIT. Rows are keyed by (room, id_ms, id_n):
 * "ON DUPLICATE KEY UPDATE id_ms = id_ms" makes a redelivered message a
 * no-op, so storing is idempotent. The schema is migrated on the first
 * connect (storage-worker/schema.h).
 */
#ifndef LECTERN_STORE_H
#define LECTERN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "msgid.h"

typedef struct store store;

typedef struct store_config {
    const char *host;
    int port;
    const char *user;
    const char *password;
    const char *database;
    int timeout_s;
    int batch_max;               /* largest batch store_insert is given */
} store_config;

enum {
    STORE_OK = 0,
    STORE_ERETRY = -1,           /* connection or transient error: retry the batch */
    STORE_EDATA = -2,            /* MySQL refused the data: retry row by row */
};

/* No connection yet. Strings are copied. */
store *store_create(const store_config *cfg);
void store_destroy(store *s);    /* accepts NULL */

/* Connect and, the first time, migrate the schema. Returns 0, or -1 with
 * the reason in why. */
int store_connect(store *s, char *why, size_t whylen);
bool store_connected(const store *s);
void store_disconnect(store *s);

/* Insert n rows (envs[i] with its parsed id ids[i]) and commit. *inserted
 * is the number of new rows (duplicates count 0). On STORE_ERETRY the
 * connection is closed (reconnect with store_connect); why says what
 * happened. */
int store_insert(store *s, const envelope *const *envs, const msgid *ids, size_t n,
                 uint64_t *inserted, char *why, size_t whylen);

#endif
