/* metrics.c — Prometheus text exposition of lectern-storage's metrics.
 *
 * Names follow Prometheus conventions: `lectern_storage_` prefix, `_total`
 * for counters, base units (seconds). Histograms keep one counter per bucket
 * (not cumulative, so an observation is one increment) and lib/prom sums them
 * into the cumulative `le` series when rendered; sums are kept in integers
 * (rows, microseconds) so they stay exact.
 *
 * lectern_storage_lag_seconds is computed at scrape time: now minus the
 * newest ts_ms this worker has stored (0 before the first), so it grows when
 * messages stop arriving as well as when storage falls behind; the last
 * batch's own worst lag is lectern_storage_lag_max_seconds.
 */
#include "metrics.h"

#include "prom.h"

#include <stdio.h>

static const unsigned metrics_row_le[METRICS_ROW_BUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
};
static const char *const metrics_row_le_text[METRICS_ROW_BUCKETS] = {
    "1", "2", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000",
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

/* Load n + 1 bucket counters (the last is +Inf). */
static void metrics_buckets(metrics_counter *c, size_t n, uint64_t *out)
{
    for (size_t i = 0; i <= n; i++)
        out[i] = metrics_get(&c[i]);
}

void metrics_render(metrics *m, uint64_t now_ms, buf *out)
{
    uint64_t counts[METRICS_COMMIT_BUCKETS > METRICS_ROW_BUCKETS ? METRICS_COMMIT_BUCKETS + 1
                                                                 : METRICS_ROW_BUCKETS + 1];
    char labels[48];

    prom_family(out, "lectern_storage_up", "gauge",
                "1 when the dependency is usable: amqp = consuming the storage queue, "
                "mysql = connected with the schema applied.");
    prom_sample(out, "lectern_storage_up", "dep=\"amqp\"",
                atomic_load_explicit(&m->up_amqp, memory_order_relaxed) ? 1 : 0);
    prom_sample(out, "lectern_storage_up", "dep=\"mysql\"",
                atomic_load_explicit(&m->up_mysql, memory_order_relaxed) ? 1 : 0);

    prom_metric(out, "lectern_storage_incompatible", "gauge",
                "1 while MySQL cannot hold the largest message the servers accept (a column "
                "narrower than lib/storelimits.h, or max_allowed_packet too small): the worker "
                "does not consume.",
                atomic_load_explicit(&m->incompatible, memory_order_relaxed) ? 1 : 0);

    prom_metric(out, "lectern_storage_deliveries_total", "counter",
                "Messages received from the storage queue (redeliveries included).",
                metrics_get(&m->deliveries));
    prom_metric(out, "lectern_storage_rows_written_total", "counter",
                "Rows inserted into MySQL (new messages).", metrics_get(&m->rows_written));
    prom_metric(out, "lectern_storage_duplicates_total", "counter",
                "Messages written that MySQL already held (redeliveries, duplicate publishes).",
                metrics_get(&m->duplicates));
    prom_metric(out, "lectern_storage_batches_total", "counter",
                "Batches committed (and then acknowledged).", metrics_get(&m->batches));

    metrics_buckets(m->batch_rows, METRICS_ROW_BUCKETS, counts);
    prom_histogram(out, "lectern_storage_batch_rows", "Messages per committed batch.",
                   METRICS_ROW_BUCKETS, metrics_row_le_text, counts,
                   metrics_get(&m->batch_rows_sum), 0);
    metrics_buckets(m->commit, METRICS_COMMIT_BUCKETS, counts);
    prom_histogram(out, "lectern_storage_commit_seconds",
                   "Time to write one batch: its INSERT statements and the COMMIT.",
                   METRICS_COMMIT_BUCKETS, metrics_commit_le, counts,
                   metrics_get(&m->commit_us_sum), 6);

    uint64_t newest = metrics_get(&m->newest_ts_ms);
    prom_family(out, "lectern_storage_lag_seconds", "gauge",
                "Now minus the server timestamp of the newest message this worker "
                "stored (0 before the first).");
    prom_sample_fixed(out, "lectern_storage_lag_seconds", NULL,
                      newest && now_ms > newest ? now_ms - newest : 0, 3);
    prom_family(out, "lectern_storage_lag_max_seconds", "gauge",
                "Largest commit time minus server timestamp in the last batch.");
    prom_sample_fixed(out, "lectern_storage_lag_max_seconds", NULL,
                      metrics_get(&m->lag_max_ms), 3);

    prom_family(out, "lectern_storage_queue_messages", "gauge",
                "Messages ready in the storage queue (passive queue.declare every "
                "storage.check_ms; -1 until known).");
    prom_sample_signed(out, "lectern_storage_queue_messages", NULL,
                       atomic_load_explicit(&m->queue_messages, memory_order_relaxed));
    prom_metric(out, "lectern_storage_in_hand", "gauge",
                "Deliveries this worker holds unacknowledged (batching or retrying).",
                metrics_get(&m->in_hand));

    prom_family(out, "lectern_storage_errors_total", "counter",
                "Errors: mysql = failed connects and batch writes, amqp = failed connects "
                "and lost connections, poison = messages rejected (undecodable, bad id, "
                "or a row MySQL refuses).");
    prom_sample(out, "lectern_storage_errors_total", "kind=\"mysql\"",
                metrics_get(&m->errors_mysql));
    prom_sample(out, "lectern_storage_errors_total", "kind=\"amqp\"",
                metrics_get(&m->errors_amqp));
    prom_sample(out, "lectern_storage_errors_total", "kind=\"poison\"",
                metrics_get(&m->errors_poison));
    prom_family(out, "lectern_storage_poison_total", "counter",
                "Messages rejected as poison, by reason: undecodable, bad_id, too_large (a row "
                "over max_allowed_packet), refused (MySQL refused the row). Servers never send "
                "these: each is a corrupted or foreign message.");
    for (int i = 0; i < METRICS_POISON_REASONS; i++) {
        snprintf(labels, sizeof labels, "reason=\"%s\"", metrics_poison_names[i]);
        prom_sample(out, "lectern_storage_poison_total", labels, metrics_get(&m->poison[i]));
    }
    prom_family(out, "lectern_storage_reconnects_total", "counter",
                "Connections made after the first one.");
    prom_sample(out, "lectern_storage_reconnects_total", "to=\"mysql\"",
                metrics_get(&m->reconnects_mysql));
    prom_sample(out, "lectern_storage_reconnects_total", "to=\"amqp\"",
                metrics_get(&m->reconnects_amqp));
}
