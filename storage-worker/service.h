/* storage.h — one lectern-storage process: its event loop and what hangs off it.
 *
 * The loop (main thread) handles signals and serves HTTP (/healthz,
 * /readyz, /metrics); the worker thread (worker.h) moves messages from the
 * storage queue into MySQL.
 */
#ifndef LECTERN_STORAGE_STORAGE_H
#define LECTERN_STORAGE_STORAGE_H

#include "config.h"

#include <stddef.h>

typedef struct storage storage;

/* Create the loop, start listening for HTTP (unless http.port is 0) and
 * start the worker. conf is borrowed and must outlive the process object.
 * Returns NULL with a reason in err. */
storage *storage_create(const storage_config *conf, char *err, size_t errlen);

/* Run until SIGTERM or SIGINT and the worker's drain (bounded by
 * storage.shutdown_timeout_ms), then return the exit status: 0. */
int storage_run(storage *s);

/* Free. Accepts NULL. Without storage_run, it stops the worker first. */
void storage_destroy(storage *s);

#endif
