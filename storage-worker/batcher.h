/* worker.h — the storage loop: storage queue -> MySQL, on a thread of its own.
 *
 * The worker consumes the storage queue (consumer.h), holds the deliveries
 * it decoded "in hand", writes them in batches (store.h), and acknowledges
 * a batch only after its COMMIT. It reconnects to RabbitMQ and MySQL
 * independently, and reports through the metrics it is given.
 */
#ifndef LECTERN_STORAGE_WORKER_H
#define LECTERN_STORAGE_WORKER_H

#include "config.h"
#include "metrics.h"

typedef struct worker worker;

/* Called once on the worker thread, as the last thing it does. */
typedef void (*worker_done_fn)(void *ctx);

/* Start the worker thread. conf and m are borrowed and must outlive the
 * worker. Returns NULL with a reason in err when the thread cannot start. */
worker *worker_create(const storage_config *conf, metrics *m, worker_done_fn done, void *ctx,
                      char *err, size_t errlen);

/* Graceful stop (any thread): take no new deliveries, write, commit and ack
 * the ones in hand, close both connections politely, then call done. */
void worker_stop(worker *w);

/* The stop deadline passed (any thread): give up at once, acking nothing
 * more; calls blocked on either connection fail immediately. done follows. */
void worker_abandon(worker *w);

/* Wait for the thread to end and free everything. Accepts NULL. */
void worker_destroy(worker *w);

#endif
