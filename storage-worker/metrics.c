/* metrics.c — Prometheus text exposition of lectern-storage's metrics.
 *
 * Names follow Prometheus conventions: `lectern_storage_` prefix, `_total`
 * for counters, base units (seconds). Histograms keep one counter per bucket
 * (not cumulative, so an observation is one increment) and are summed into
 * the cumulative `le` series when rendered; sums are kept in integers (rows,
 * microseconds) so they stay exact.
 *
 * lectern_storage_lag_seconds is computed at scrape time: now minus the
 * newest ts_ms this worker has stored (0 before the first), so it grows when
 * messages stop arriving as well as when storage falls behind; the last
 * batch's own worst lag is lectern_storage_lag_max_seconds.
 */
#include "metrics.h"

#include <inttypes.h>

static const unsigned metrics_row_le[METRICS_ROW_BUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
};
static const char *const metrics_commit_le[METRICS_COMMIT_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
    "5", "10",
};
static const uint64_t metrics_commit_us[METRICS_COMMIT_BUCKETS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
    5000000, 10000000,
};

static const char *const metrics_poison_names[METRICS_POISON_REASONS] = {
    [METRICS_POISON_UNDECODABLE] = "undecodable",
    [METRICS_POISON_BAD_ID] = "bad_id",
    [METRICS_POISON_TOO_LARGE] = "too_large",
    [METRICS_POISON_REFUSED] = "refused",
};

static uint64_t metrics_get(metrics_counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void metrics_add(metrics_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

void metrics_init(metrics *m)
{
    atomic_init(&m->up_amqp, false);
    atomic_init(&m->up_mysql, false);
    atomic_init(&m->incompatible, false);
    atomic_init(&m->deliveries, 0);
    atomic_init(&m->rows_written, 0);
    atomic_init(&m->duplicates, 0);
    atomic_init(&m->batches, 0);
    for (int i = 0; i <= METRICS_ROW_BUCKETS; i++)
        atomic_init(&m->batch_rows[i], 0);
    atomic_init(&m->batch_rows_sum, 0);
    for (int i = 0; i <= METRICS_COMMIT_BUCKETS; i++)
        atomic_init(&m->commit[i], 0);
    atomic_init(&m->commit_us_sum, 0);
    atomic_init(&m->newest_ts_ms, 0);
    atomic_init(&m->lag_max_ms, 0);
    atomic_init(&m->queue_messages, -1);
    atomic_init(&m->in_hand, 0);
    atomic_init(&m->errors_mysql, 0);
    atomic_init(&m->errors_amqp, 0);
    atomic_init(&m->errors_poison, 0);
    for (int i = 0; i < METRICS_POISON_REASONS; i++)
        atomic_init(&m->poison[i], 0);
    atomic_init(&m->reconnects_mysql, 0);
    atomic_init(&m->reconnects_amqp, 0);
}

void metrics_batch(metrics *m, size_t rows, size_t inserted, uint64_t write_us,
                   uint64_t newest_ts_ms, uint64_t lag_max_ms)
{
    int b = 0;
    while (b < METRICS_ROW_BUCKETS && rows > metrics_row_le[b])
        b++;
    metrics_add(&m->batch_rows[b], 1);
    metrics_add(&m->batch_rows_sum, rows);
    b = 0;
    while (b < METRICS_COMMIT_BUCKETS && write_us > metrics_commit_us[b])
        b++;
    metrics_add(&m->commit[b], 1);
    metrics_add(&m->commit_us_sum, write_us);
    metrics_add(&m->rows_written, inserted);
    metrics_add(&m->duplicates, rows - inserted);
    metrics_add(&m->batches, 1);
    atomic_store_explicit(&m->lag_max_ms, lag_max_ms, memory_order_relaxed);
    uint64_t old = metrics_get(&m->newest_ts_ms);
    while (newest_ts_ms > old &&
           !atomic_compare_exchange_weak_explicit(&m->newest_ts_ms, &old, newest_ts_ms,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

static void metrics_head(buf *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_one(buf *out, const char *name, const char *type, const char *help,
                        uint64_t v)
{
    metrics_head(out, name, type, help);
    buf_printf(out, "%s %" PRIu64 "\n", name, v);
}

/* A value in ms as seconds with millisecond precision. */
static void metrics_seconds(buf *out, const char *name, const char *help, uint64_t ms)
{
    metrics_head(out, name, "gauge", help);
    buf_printf(out, "%s %" PRIu64 ".%03" PRIu64 "\n", name, ms / 1000, ms % 1000);
}

void metrics_render(metrics *m, uint64_t now_ms, buf *out)
{
    metrics_head(out, "lectern_storage_up", "gauge",
                 "1 when the dependency is usable: amqp = consuming the storage queue, "
                 "mysql = connected with the schema applied.");
    buf_printf(out, "lectern_storage_up{dep=\"amqp\"} %d\n",
               atomic_load_explicit(&m->up_amqp, memory_order_relaxed) ? 1 : 0);
    buf_printf(out, "lectern_storage_up{dep=\"mysql\"} %d\n",
               atomic_load_explicit(&m->up_mysql, memory_order_relaxed) ? 1 : 0);

    metrics_one(out, "lectern_storage_incompatible", "gauge",
                "1 while MySQL cannot hold the largest message the servers accept (a column "
                "narrower than lib/storelimits.h, or max_allowed_packet too small): the worker "
                "does not consume.",
                atomic_load_explicit(&m->incompatible, memory_order_relaxed) ? 1 : 0);

    metrics_one(out, "lectern_storage_deliveries_total", "counter",
                "Messages received from the storage queue (redeliveries included).",
                metrics_get(&m->deliveries));
    metrics_one(out, "lectern_storage_rows_written_total", "counter",
                "Rows inserted into MySQL (new messages).", metrics_get(&m->rows_written));
    metrics_one(out, "lectern_storage_duplicates_total", "counter",
                "Messages written that MySQL already held (redeliveries, duplicate publishes).",
                metrics_get(&m->duplicates));
    metrics_one(out, "lectern_storage_batches_total", "counter",
                "Batches committed (and then acknowledged).", metrics_get(&m->batches));

    metrics_head(out, "lectern_storage_batch_rows", "histogram", "Messages per committed batch.");
    uint64_t cum = 0;
    for (int i = 0; i < METRICS_ROW_BUCKETS; i++) {
        cum += metrics_get(&m->batch_rows[i]);
        buf_printf(out, "lectern_storage_batch_rows_bucket{le=\"%u\"} %" PRIu64 "\n",
                   metrics_row_le[i], cum);
    }
    cum += metrics_get(&m->batch_rows[METRICS_ROW_BUCKETS]);
    buf_printf(out, "lectern_storage_batch_rows_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    buf_printf(out, "lectern_storage_batch_rows_sum %" PRIu64 "\n",
               metrics_get(&m->batch_rows_sum));
    buf_printf(out, "lectern_storage_batch_rows_count %" PRIu64 "\n", cum);

    metrics_head(out, "lectern_storage_commit_seconds", "histogram",
                 "Time to write one batch: its INSERT statements and the COMMIT.");
    cum = 0;
    for (int i = 0; i < METRICS_COMMIT_BUCKETS; i++) {
        cum += metrics_get(&m->commit[i]);
        buf_printf(out, "lectern_storage_commit_seconds_bucket{le=\"%s\"} %" PRIu64 "\n",
                   metrics_commit_le[i], cum);
    }
    cum += metrics_get(&m->commit[METRICS_COMMIT_BUCKETS]);
    buf_printf(out, "lectern_storage_commit_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    uint64_t us = metrics_get(&m->commit_us_sum);
    buf_printf(out, "lectern_storage_commit_seconds_sum %" PRIu64 ".%06" PRIu64 "\n",
               us / 1000000, us % 1000000);
    buf_printf(out, "lectern_storage_commit_seconds_count %" PRIu64 "\n", cum);

    uint64_t newest = metrics_get(&m->newest_ts_ms);
    metrics_seconds(out, "lectern_storage_lag_seconds",
                    "Now minus the server timestamp of the newest message this worker "
                    "stored (0 before the first).",
                    newest && now_ms > newest ? now_ms - newest : 0);
    metrics_seconds(out, "lectern_storage_lag_max_seconds",
                    "Largest commit time minus server timestamp in the last batch.",
                    metrics_get(&m->lag_max_ms));

    metrics_head(out, "lectern_storage_queue_messages", "gauge",
                 "Messages ready in the storage queue (passive queue.declare every "
                 "storage.check_ms; -1 until known).");
    buf_printf(out, "lectern_storage_queue_messages %" PRId64 "\n",
               atomic_load_explicit(&m->queue_messages, memory_order_relaxed));
    metrics_one(out, "lectern_storage_in_hand", "gauge",
                "Deliveries this worker holds unacknowledged (batching or retrying).",
                metrics_get(&m->in_hand));

    metrics_head(out, "lectern_storage_errors_total", "counter",
                 "Errors: mysql = failed connects and batch writes, amqp = failed connects "
                 "and lost connections, poison = messages rejected (undecodable, bad id, "
                 "or a row MySQL refuses).");
    buf_printf(out, "lectern_storage_errors_total{kind=\"mysql\"} %" PRIu64 "\n",
               metrics_get(&m->errors_mysql));
    buf_printf(out, "lectern_storage_errors_total{kind=\"amqp\"} %" PRIu64 "\n",
               metrics_get(&m->errors_amqp));
    buf_printf(out, "lectern_storage_errors_total{kind=\"poison\"} %" PRIu64 "\n",
               metrics_get(&m->errors_poison));
    metrics_head(out, "lectern_storage_poison_total", "counter",
                 "Messages rejected as poison, by reason: undecodable, bad_id, too_large (a row "
                 "over max_allowed_packet), refused (MySQL refused the row). Servers never send "
                 "these: each is a corrupted or foreign message.");
    for (int i = 0; i < METRICS_POISON_REASONS; i++)
        buf_printf(out, "lectern_storage_poison_total{reason=\"%s\"} %" PRIu64 "\n",
                   metrics_poison_names[i], metrics_get(&m->poison[i]));
    metrics_head(out, "lectern_storage_reconnects_total", "counter",
                 "Connections made after the first one.");
    buf_printf(out, "lectern_storage_reconnects_total{to=\"mysql\"} %" PRIu64 "\n",
               metrics_get(&m->reconnects_mysql));
    buf_printf(out, "lectern_storage_reconnects_total{to=\"amqp\"} %" PRIu64 "\n",
               metrics_get(&m->reconnects_amqp));
}
