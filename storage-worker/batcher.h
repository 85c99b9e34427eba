/* batcher.h — storage queue -> MySQL in batches, on a thread of its own.
 *
 * The batcher consumes the storage queue (consumer.h), holds the deliveries
 * it decoded "in hand", writes them in batches (dbwriter.h), and
 * acknowledges a batch only after its COMMIT. It reconnects to RabbitMQ and MySQL
 * independently, and reports through the metrics it is given.
 */
#ifndef LECTERN_STORAGE_BATCHER_H
#define LECTERN_STORAGE_BATCHER_H

#include "config.h"
#include "metrics.h"

typedef struct batcher batcher;

/* Called once on the batcher's thread, as the last thing it does. */
typedef void (*batcher_done_fn)(void *ctx);

/* Start the batcher's thread. conf and m are borrowed and must outlive the
 * batcher. Returns NULL with a reason in err when the thread cannot start. */
batcher *batcher_create(const storage_config *conf, metrics *m, batcher_done_fn done, void *ctx,
                        char *err, size_t errlen);

/* Graceful stop (any thread): take no new deliveries, write, commit and ack
 * the ones in hand, close both connections politely, then call done. */
void batcher_stop(batcher *w);

/* The stop deadline passed (any thread): give up at once, acking nothing
 * more; calls blocked on either connection fail immediately. done follows. */
void batcher_abandon(batcher *w);

/* Wait for the thread to end and free everything. Accepts NULL. */
void batcher_destroy(batcher *w);

#endif
