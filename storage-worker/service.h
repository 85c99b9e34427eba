/* service.h — one lectern-storage process: its event loop and what hangs off it.
 *
 * The loop (main thread) handles signals and serves HTTP (/healthz,
 * /readyz, /metrics); the batcher's thread (batcher.h) moves messages from
 * the storage queue into MySQL.
 */
#ifndef LECTERN_STORAGE_SERVICE_H
#define LECTERN_STORAGE_SERVICE_H

#include "config.h"

#include <stddef.h>

typedef struct service service;

/* Create the loop, start listening for HTTP (unless http.port is 0) and
 * start the batcher. conf is borrowed and must outlive the process object.
 * Returns NULL with a reason in err. */
service *service_create(const storage_config *conf, char *err, size_t errlen);

/* Run until SIGTERM or SIGINT and the batcher's drain (bounded by
 * storage.shutdown_timeout_ms), then return the exit status: 0. */
int service_run(service *s);

/* Free. Accepts NULL. Without service_run, it stops the batcher first. */
void service_destroy(service *s);

#endif
