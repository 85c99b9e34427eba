/* worker.h — the storage queue consumer: RabbitMQ in, MySQL out.
 *
 * One thread owns one AMQP connection and one MySQL connection (both
 * libraries block). It consumes the storage queue with a prefetch window,
 * gathers up to batch_max messages (or what arrived within batch_wait_ms of
 * the first), inserts them in one statement, commits, and only then acks
 * them with one basic.ack(multiple). See worker.c for the failure rules.
 *
 * The loop thread (main.c) reads the counters for /metrics and /readyz and
 * asks the thread to stop; nothing here runs on the loop.
 */
#ifndef LECTERN_WORKER_H
#define LECTERN_WORKER_H

#include <stdbool.h>

#include "buf.h"
#include "config.h"

typedef struct worker worker;

/* Start the thread (it connects in the background). cfg is borrowed and
 * must outlive the worker. Returns NULL (logged) when the thread cannot be
 * started. */
worker *worker_create(const storage_config *cfg);

/* Ask the thread to finish the batch in hand and exit. Any thread. */
void worker_stop(worker *w);

/* Has the thread exited? */
bool worker_finished(const worker *w);

/* Join the thread (call after worker_finished, or accept the wait) and
 * free. Accepts NULL. */
void worker_destroy(worker *w);

/* Consuming and connected to MySQL; otherwise false with a reason. */
bool worker_ready(const worker *w, const char **why);

/* Append the Prometheus text exposition of the counters to out. */
void worker_metrics(const worker *w, buf *out);

#endif
