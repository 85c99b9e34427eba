/* metrics.h — lectern-storage's counters and gauges, and their Prometheus text.
 *
 * The worker thread updates them, the HTTP side (the event loop) reads them:
 * every value is a C11 atomic, updated with relaxed ordering (a scrape may
 * see one batch's counters half applied, never a torn value).
 */
#ifndef LECTERN_STORAGE_METRICS_H
#define LECTERN_STORAGE_METRICS_H

#include "buf.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_ROW_BUCKETS    12   /* batch sizes: 1 .. 5000 rows */
#define METRICS_COMMIT_BUCKETS 13   /* batch write times: 1 ms .. 10 s */

typedef _Atomic uint64_t metrics_counter;

/* Why a message was rejected as poison (lectern_storage_poison_total{reason}).
 * With servers that check lib/storelimits.h and a database the worker has
 * checked against it, none of these happens to a message a server sent:
 * each means a corrupted or foreign message. */
typedef enum metrics_poison {
    METRICS_POISON_UNDECODABLE,     /* not an envelope or batch (envelope.h, envbatch.h) */
    METRICS_POISON_BAD_ID,          /* x-lectern-id is not <ms>-<n> */
    METRICS_POISON_TOO_LARGE,       /* a row larger than max_allowed_packet */
    METRICS_POISON_REFUSED,         /* MySQL refused the row's data */
    METRICS_POISON_REASONS
} metrics_poison;

typedef struct metrics {
    atomic_bool     up_amqp;            /* consuming the storage queue */
    atomic_bool     up_mysql;           /* connected, schema applied */
    atomic_bool     incompatible;       /* MySQL cannot hold the largest message: not consuming */
    metrics_counter deliveries;         /* messages received from the queue */
    metrics_counter rows_written;       /* rows new in MySQL */
    metrics_counter duplicates;         /* rows that were there already */
    metrics_counter batches;            /* committed batches */
    metrics_counter batch_rows[METRICS_ROW_BUCKETS + 1];       /* per bucket, last +Inf */
    metrics_counter batch_rows_sum;
    metrics_counter commit[METRICS_COMMIT_BUCKETS + 1];        /* per bucket, last +Inf */
    metrics_counter commit_us_sum;
    metrics_counter newest_ts_ms;       /* largest ts_ms stored; 0 = none yet */
    metrics_counter lag_max_ms;         /* of the last batch */
    _Atomic int64_t queue_messages;     /* ready in the queue; -1 = not known */
    metrics_counter in_hand;            /* deliveries held unacked */
    metrics_counter errors_mysql;       /* failed connects and batch writes */
    metrics_counter errors_amqp;        /* failed connects and lost connections */
    metrics_counter errors_poison;      /* messages rejected */
    metrics_counter poison[METRICS_POISON_REASONS];   /* the same, by reason */
    metrics_counter reconnects_mysql;   /* successful connects after the first */
    metrics_counter reconnects_amqp;
} metrics;

/* Zero everything; queue_messages unknown. */
void metrics_init(metrics *m);

/* Add n to a counter (any thread). */
void metrics_add(metrics_counter *c, uint64_t n);

/* One committed batch of `rows` rows, `inserted` of them new, written in
 * `write_us`; `newest_ts_ms` is the largest ts_ms in it, `lag_max_ms` the
 * largest commit time minus ts_ms. */
void metrics_batch(metrics *m, size_t rows, size_t inserted, uint64_t write_us,
                   uint64_t newest_ts_ms, uint64_t lag_max_ms);

/* Append the Prometheus text exposition to out; now_ms is wall-clock time
 * (for lectern_storage_lag_seconds). */
void metrics_render(metrics *m, uint64_t now_ms, buf *out);

#endif
