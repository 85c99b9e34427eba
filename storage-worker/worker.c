/* worker.c — consume, batch, insert, commit, ack.
 *
 * The thread's loop:
 *
 *   connect RabbitMQ (channel 1: basic.qos(prefetch) + basic.consume with
 *   manual acks; channel 2: RPCs such as the passive declare that reads the
 *   queue depth) and MySQL (migrating the schema the first time);
 *   gather a batch: wait for a delivery (1 s when idle, so stop is noticed),
 *   then keep taking deliveries until batch_max or batch_wait_ms after the
 *   first; decode each (lib/envelope.c, lib/msgid.c);
 *   write it: one INSERT ... ON DUPLICATE KEY UPDATE, COMMIT, then
 *   basic.ack(last tag, multiple).
 *
 * Failure rules, which are what make storage exactly-once:
 *   - a delivery that does not decode (no envelope, bad id) is poison: it is
 *     rejected without requeue at once and counted; it never blocks a batch;
 *   - MySQL fails (connection, deadlock, anything but the data): roll back,
 *     keep the batch, reconnect with backoff and write it again; nothing is
 *     acked before a COMMIT returned. A RabbitMQ connection that died
 *     meanwhile (heartbeats are not served while we wait) has its messages
 *     redelivered; inserting them again is a no-op;
 *   - MySQL refuses the data: rows are written one by one, the good ones
 *     acked, the refused ones rejected as poison;
 *   - RabbitMQ fails while a batch is gathered: the batch is dropped (the
 *     broker redelivers it) and the connection is made again.
 *
 * Stop: the batch in hand is finished (written and acked, MySQL retried
 * until the caller gives up on us), then both connections close politely.
 *
 * Counters are C11 atomics written here and read by the loop thread.
 */
#include "worker.h"

#include "envelope.h"
#include "log.h"
#include "mem.h"
#include "msgid.h"
#include "store.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WORKER_CH          1
#define WORKER_CH_RPC      2
#define WORKER_DEPTH_MS    5000      /* how often the queue depth is read */
#define WORKER_IDLE_MS     1000
#define WORKER_NBUCKETS    8

static const uint64_t worker_buckets[WORKER_NBUCKETS] = { 1, 10, 50, 100, 250, 500, 1000, 5000 };

struct worker {
    const storage_config *cfg;
    pthread_t thread;
    atomic_bool stop, finished;
    /* thread only */
    amqp_connection_state_t amqp;
    store *store;
    envelope *envs;
    const envelope **envp;
    msgid *ids;
    uint64_t *tags;
    size_t n;
    unsigned attempt_amqp, attempt_mysql;
    uint64_t rng, next_depth_ms;
    bool amqp_logged_down, mysql_logged_down;
    uint64_t poison_logged_ms;
    /* shared counters */
    atomic_bool up_amqp, up_mysql;
    _Atomic uint64_t rows, duplicates, batches, commit_us, bucket[WORKER_NBUCKETS + 1],
                     rows_sum, lag_ms, lag_max_ms, depth, err_mysql, err_amqp, poison,
                     re_mysql, re_amqp;
};

static uint64_t worker_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t worker_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void worker_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Sleep ms in small steps, returning early on stop. */
static void worker_sleep(worker *w, int ms)
{
    uint64_t until = worker_now_ms() + (uint64_t)ms;
    while (!atomic_load(&w->stop) && worker_now_ms() < until) {
        struct timespec ts = { 0, 20 * 1000000 };
        nanosleep(&ts, NULL);
    }
}

/* Exponential backoff with full jitter above the floor. */
static int worker_backoff(worker *w, unsigned attempt, int lo, int hi)
{
    uint64_t cap = (uint64_t)lo;
    for (unsigned i = 0; i < attempt && cap < (uint64_t)hi; i++)
        cap *= 2;
    if (cap > (uint64_t)hi)
        cap = (uint64_t)hi;
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return (int)((uint64_t)lo + w->rng % (cap - (uint64_t)lo + 1));
}

/* --- RabbitMQ ------------------------------------------------------------------ */

static void worker_amqp_close(worker *w, bool polite)
{
    if (!w->amqp)
        return;
    if (polite)
        amqp_connection_close(w->amqp, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(w->amqp);
    w->amqp = NULL;
    atomic_store(&w->up_amqp, false);
}

static int worker_rpc_ok(worker *w, const char *what, char *why, size_t whylen)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(w->amqp);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        snprintf(why, whylen, "%s: %s", what, amqp_error_string2(r.library_error));
    else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
             (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD ||
              r.reply.id == AMQP_CONNECTION_CLOSE_METHOD)) {
        amqp_channel_close_t *m = r.reply.decoded;    /* same layout for both */
        snprintf(why, whylen, "%s: %u %.*s", what, m->reply_code, (int)m->reply_text.len,
                 (const char *)m->reply_text.bytes);
    } else {
        snprintf(why, whylen, "%s: failed", what);
    }
    return -1;
}

static int worker_declare(worker *w, amqp_channel_t ch, bool passive, char *why, size_t whylen)
{
    const storage_config *c = w->cfg;
    amqp_table_entry_t e[1];
    amqp_table_t args = amqp_empty_table;
    if (strcmp(c->queue_type, "classic") != 0) {
        e[0].key = amqp_cstring_bytes("x-queue-type");
        e[0].value.kind = AMQP_FIELD_KIND_UTF8;
        e[0].value.value.bytes = amqp_cstring_bytes(c->queue_type);
        args.num_entries = 1;
        args.entries = e;
    }
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(w->amqp, ch, amqp_cstring_bytes(c->queue),
                                                     passive, 1, 0, 0, args);
    if (worker_rpc_ok(w, "queue.declare", why, whylen) < 0)
        return -1;
    if (ok)
        atomic_store(&w->depth, ok->message_count);
    return 0;
}

static int worker_amqp_connect(worker *w, char *why, size_t whylen)
{
    const storage_config *c = w->cfg;
    w->amqp = amqp_new_connection();
    amqp_socket_t *sock = w->amqp ? amqp_tcp_socket_new(w->amqp) : NULL;
    if (!sock) {
        snprintf(why, whylen, "cannot create a connection");
        goto fail;
    }
    struct timeval tv = { 5, 0 };
    int rc = amqp_socket_open_noblock(sock, c->amqp_host, c->amqp_port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(why, whylen, "connect: %s", amqp_error_string2(rc));
        goto fail;
    }
    amqp_table_entry_t pe[1];
    pe[0].key = amqp_cstring_bytes("connection_name");
    pe[0].value.kind = AMQP_FIELD_KIND_UTF8;
    pe[0].value.value.bytes = amqp_cstring_bytes("lectern-storage");
    amqp_table_t props = { 1, pe };
    amqp_rpc_reply_t r = amqp_login_with_properties(w->amqp, c->amqp_vhost, 0, 131072,
                                                    c->amqp_heartbeat_s, &props,
                                                    AMQP_SASL_METHOD_PLAIN, c->amqp_user,
                                                    c->amqp_password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(why, whylen, "login failed");
        goto fail;
    }
    struct timeval rpc = { 10, 0 };
    amqp_set_rpc_timeout(w->amqp, &rpc);
    amqp_channel_open(w->amqp, WORKER_CH);
    if (worker_rpc_ok(w, "channel.open", why, whylen) < 0)
        goto fail;
    amqp_channel_open(w->amqp, WORKER_CH_RPC);
    if (worker_rpc_ok(w, "channel.open", why, whylen) < 0)
        goto fail;
    if (worker_declare(w, WORKER_CH_RPC, false, why, whylen) < 0)
        goto fail;
    amqp_basic_qos(w->amqp, WORKER_CH, 0, (uint16_t)c->prefetch, 0);
    if (worker_rpc_ok(w, "basic.qos", why, whylen) < 0)
        goto fail;
    amqp_basic_consume(w->amqp, WORKER_CH, amqp_cstring_bytes(c->queue), amqp_empty_bytes,
                       0, 0, 0, amqp_empty_table);
    if (worker_rpc_ok(w, "basic.consume", why, whylen) < 0)
        goto fail;
    atomic_store(&w->up_amqp, true);
    w->next_depth_ms = worker_now_ms() + WORKER_DEPTH_MS;
    return 0;

fail:
    worker_amqp_close(w, false);
    return -1;
}

/* --- the batch --------------------------------------------------------------------- */

static void worker_batch_clear(worker *w)
{
    for (size_t i = 0; i < w->n; i++)
        envelope_free(&w->envs[i]);
    w->n = 0;
}

static void worker_poison(worker *w, uint64_t tag, const char *why)
{
    worker_add(&w->poison, 1);
    if (w->amqp)
        amqp_basic_reject(w->amqp, WORKER_CH, tag, 0);
    uint64_t now = worker_now_ms();
    if (now - w->poison_logged_ms > 10000) {       /* at most one line per 10 s */
        w->poison_logged_ms = now;
        log_warn("poison_message", "queue=%s reason=\"%s\" detail=\"rejected without requeue\"",
                 w->cfg->queue, why);
    }
}

/* One delivery: into the batch, or rejected as poison. */
static void worker_take(worker *w, amqp_envelope_t *d)
{
    const char *why = NULL;
    envelope *e = &w->envs[w->n];
    if (envelope_from_amqp(&d->message.properties, d->message.body, e, &why) < 0) {
        worker_poison(w, d->delivery_tag, why ? why : "no envelope");
        return;
    }
    if (msgid_parse(e->id, strlen(e->id), &w->ids[w->n]) < 0) {
        envelope_free(e);
        worker_poison(w, d->delivery_tag, "message id is not <ms>-<n>");
        return;
    }
    w->tags[w->n] = d->delivery_tag;
    w->envp[w->n] = e;
    w->n++;
}

/* Consume until the batch is full or its time is up. Returns -1 when the
 * AMQP connection failed (the batch is then dropped: redelivered later). */
static int worker_gather(worker *w, char *why, size_t whylen)
{
    const storage_config *c = w->cfg;
    uint64_t deadline = 0;
    while (w->n < (size_t)c->batch_max && !atomic_load(&w->stop)) {
        uint64_t now = worker_now_ms();
        int wait_ms;
        if (w->n) {
            if (now >= deadline)
                break;
            wait_ms = (int)(deadline - now);
        } else {
            wait_ms = WORKER_IDLE_MS;
        }
        struct timeval tv = { wait_ms / 1000, (wait_ms % 1000) * 1000 };
        amqp_envelope_t d;
        amqp_maybe_release_buffers(w->amqp);
        amqp_rpc_reply_t r = amqp_consume_message(w->amqp, &d, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            worker_take(w, &d);
            amqp_destroy_envelope(&d);
            if (w->n == 1 && !deadline)
                deadline = worker_now_ms() + (uint64_t)c->batch_wait_ms;
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT) {
            if (!w->n)
                return 0;           /* idle: let the caller look at stop and the depth */
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            amqp_frame_t f;
            if (amqp_simple_wait_frame(w->amqp, &f) != AMQP_STATUS_OK) {
                snprintf(why, whylen, "read failed");
                return -1;
            }
            if (f.frame_type == AMQP_FRAME_METHOD &&
                (f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
                 f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                 f.payload.method.id == AMQP_BASIC_CANCEL_METHOD)) {
                snprintf(why, whylen, "closed by the broker (method 0x%08x)",
                         (unsigned)f.payload.method.id);
                return -1;
            }
            continue;
        }
        snprintf(why, whylen, "consume: %s",
                 r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                     ? amqp_error_string2(r.library_error) : "server exception");
        return -1;
    }
    return 0;
}

static void worker_mysql_down(worker *w, const char *why)
{
    worker_add(&w->err_mysql, 1);
    atomic_store(&w->up_mysql, false);
    char q[256];
    if (!w->mysql_logged_down) {
        w->mysql_logged_down = true;
        log_warn("mysql_down", "host=%s port=%d reason=%s", w->cfg->mysql_host,
                 w->cfg->mysql_port, log_q(q, sizeof q, why, strlen(why)));
    }
}

/* (Re)connect MySQL until it works or stop. Returns 0 when connected. */
static int worker_mysql_ensure(worker *w)
{
    const storage_config *c = w->cfg;
    while (!store_connected(w->store)) {
        char why[256];
        if (store_connect(w->store, why, sizeof why) == 0) {
            if (w->attempt_mysql || w->mysql_logged_down)
                worker_add(&w->re_mysql, 1);
            w->attempt_mysql = 0;
            w->mysql_logged_down = false;
            atomic_store(&w->up_mysql, true);
            log_info("mysql_up", "host=%s port=%d database=%s", c->mysql_host, c->mysql_port,
                     c->mysql_database);
            return 0;
        }
        worker_mysql_down(w, why);
        if (atomic_load(&w->stop))
            return -1;
        worker_sleep(w, worker_backoff(w, w->attempt_mysql++, c->mysql_backoff_min_ms,
                                       c->mysql_backoff_max_ms));
    }
    return 0;
}

static void worker_count_batch(worker *w, size_t n, uint64_t inserted, uint64_t us)
{
    worker_add(&w->rows, inserted);
    worker_add(&w->duplicates, n - inserted);
    worker_add(&w->batches, 1);
    worker_add(&w->rows_sum, n);
    worker_add(&w->commit_us, us);
    size_t b = 0;
    while (b < WORKER_NBUCKETS && n > worker_buckets[b])
        b++;
    worker_add(&w->bucket[b], 1);
    uint64_t newest = 0, oldest = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        if (w->envp[i]->ts_ms > newest)
            newest = w->envp[i]->ts_ms;
        if (w->envp[i]->ts_ms < oldest)
            oldest = w->envp[i]->ts_ms;
    }
    uint64_t now = worker_wall_ms();
    atomic_store(&w->lag_ms, now > newest ? now - newest : 0);
    atomic_store(&w->lag_max_ms, now > oldest ? now - oldest : 0);
}

/* Rows one by one: ack the stored, reject what MySQL refuses. */
static int worker_write_each(worker *w)
{
    for (size_t i = 0; i < w->n; i++) {
        for (;;) {
            char why[256];
            uint64_t inserted;
            if (worker_mysql_ensure(w) < 0)
                return -1;
            int rc = store_insert(w->store, &w->envp[i], &w->ids[i], 1, &inserted, why,
                                  sizeof why);
            if (rc == STORE_OK) {
                worker_count_batch(w, 1, inserted, 0);
                if (w->amqp)
                    amqp_basic_ack(w->amqp, WORKER_CH, w->tags[i], 0);
                break;
            }
            if (rc == STORE_EDATA) {
                worker_poison(w, w->tags[i], why);
                break;
            }
            worker_mysql_down(w, why);
            worker_sleep(w, worker_backoff(w, w->attempt_mysql++, w->cfg->mysql_backoff_min_ms,
                                           w->cfg->mysql_backoff_max_ms));
            if (atomic_load(&w->stop) && !store_connected(w->store))
                return -1;
        }
    }
    return 0;
}

/* Insert, commit, ack the batch in hand. Retries MySQL until it works (or
 * stop with MySQL still down: the batch is then left unacked). */
static void worker_write(worker *w)
{
    const storage_config *c = w->cfg;
    while (w->n) {
        if (worker_mysql_ensure(w) < 0)
            break;
        char why[256];
        uint64_t inserted;
        uint64_t t0 = worker_now_ms();
        int rc = store_insert(w->store, w->envp, w->ids, w->n, &inserted, why, sizeof why);
        if (rc == STORE_OK) {
            worker_count_batch(w, w->n, inserted, (worker_now_ms() - t0) * 1000);
            if (w->amqp && amqp_basic_ack(w->amqp, WORKER_CH, w->tags[w->n - 1], 1) != 0) {
                /* Stored; the broker will redeliver them and the insert is a no-op. */
                worker_add(&w->err_amqp, 1);
                worker_amqp_close(w, false);
            }
            break;
        }
        if (rc == STORE_EDATA) {
            worker_write_each(w);
            break;
        }
        worker_mysql_down(w, why);
        if (atomic_load(&w->stop))
            break;
        worker_sleep(w, worker_backoff(w, w->attempt_mysql++, c->mysql_backoff_min_ms,
                                       c->mysql_backoff_max_ms));
    }
    worker_batch_clear(w);
}

static void worker_amqp_down(worker *w, const char *why)
{
    worker_add(&w->err_amqp, 1);
    worker_amqp_close(w, false);
    char q[256];
    if (!w->amqp_logged_down) {
        w->amqp_logged_down = true;
        log_warn("amqp_down", "host=%s port=%d reason=%s", w->cfg->amqp_host,
                 w->cfg->amqp_port, log_q(q, sizeof q, why, strlen(why)));
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    const storage_config *c = w->cfg;
    while (!atomic_load(&w->stop)) {
        char why[256];
        if (!w->amqp) {
            if (worker_amqp_connect(w, why, sizeof why) < 0) {
                worker_amqp_down(w, why);
                worker_sleep(w, worker_backoff(w, w->attempt_amqp++, c->amqp_backoff_min_ms,
                                               c->amqp_backoff_max_ms));
                continue;
            }
            if (w->amqp_logged_down || w->attempt_amqp)
                worker_add(&w->re_amqp, 1);
            w->attempt_amqp = 0;
            w->amqp_logged_down = false;
            log_info("amqp_up", "host=%s port=%d queue=%s type=%s prefetch=%d", c->amqp_host,
                     c->amqp_port, c->queue, c->queue_type, c->prefetch);
        }
        if (worker_mysql_ensure(w) < 0)
            continue;
        if (worker_gather(w, why, sizeof why) < 0) {
            worker_batch_clear(w);          /* unacked: redelivered */
            worker_amqp_down(w, why);
            continue;
        }
        worker_write(w);
        uint64_t now = worker_now_ms();
        if (w->amqp && now >= w->next_depth_ms) {
            w->next_depth_ms = now + WORKER_DEPTH_MS;
            if (worker_declare(w, WORKER_CH_RPC, true, why, sizeof why) < 0)
                worker_amqp_down(w, why);
        }
    }
    worker_write(w);                        /* the batch in hand, if any */
    worker_amqp_close(w, true);
    store_disconnect(w->store);
    atomic_store(&w->up_mysql, false);
    atomic_store(&w->finished, true);
    return NULL;
}

/* --- the loop's side ----------------------------------------------------------------- */

worker *worker_create(const storage_config *cfg)
{
    worker *w = xcalloc(1, sizeof *w);
    w->cfg = cfg;
    size_t n = (size_t)cfg->batch_max;
    w->envs = xcalloc(n, sizeof *w->envs);
    w->envp = xcalloc(n, sizeof *w->envp);
    w->ids = xcalloc(n, sizeof *w->ids);
    w->tags = xcalloc(n, sizeof *w->tags);
    w->rng = worker_now_ms() | 1;
    store_config sc = {
        .host = cfg->mysql_host, .port = cfg->mysql_port, .user = cfg->mysql_user,
        .password = cfg->mysql_password, .database = cfg->mysql_database,
        .timeout_s = cfg->mysql_timeout_s, .batch_max = cfg->batch_max,
    };
    w->store = store_create(&sc);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        log_error("worker_create", "detail=\"cannot start the worker thread\"");
        store_destroy(w->store);
        free(w->envs);
        free(w->envp);
        free(w->ids);
        free(w->tags);
        free(w);
        return NULL;
    }
    return w;
}

void worker_stop(worker *w)
{
    atomic_store(&w->stop, true);
}

bool worker_finished(const worker *w)
{
    return atomic_load(&w->finished);
}

void worker_destroy(worker *w)
{
    if (!w)
        return;
    worker_stop(w);
    pthread_join(w->thread, NULL);
    worker_batch_clear(w);
    store_destroy(w->store);
    free(w->envs);
    free(w->envp);
    free(w->ids);
    free(w->tags);
    free(w);
}

bool worker_ready(const worker *w, const char **why)
{
    if (!atomic_load(&w->up_amqp)) {
        *why = "not consuming the storage queue (RabbitMQ unavailable)";
        return false;
    }
    if (!atomic_load(&w->up_mysql)) {
        *why = "MySQL unavailable";
        return false;
    }
    return true;
}

static uint64_t ld(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void family(buf *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void worker_metrics(const worker *w, buf *out)
{
    static const struct { const char *name, *type, *help; size_t off; } rows[] = {
        { "lectern_storage_rows_written_total", "counter", "Rows inserted into MySQL (new messages).",
          offsetof(worker, rows) },
        { "lectern_storage_duplicates_total", "counter",
          "Messages that were already stored (redeliveries; the insert was a no-op).",
          offsetof(worker, duplicates) },
        { "lectern_storage_batches_total", "counter", "Batches committed.",
          offsetof(worker, batches) },
        { "lectern_storage_queue_messages", "gauge",
          "Messages ready in the storage queue (read every 5 s).", offsetof(worker, depth) },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        family(out, rows[i].name, rows[i].type, rows[i].help);
        buf_printf(out, "%s %llu\n", rows[i].name,
                   (unsigned long long)ld((const _Atomic uint64_t *)((const char *)w + rows[i].off)));
    }
    family(out, "lectern_storage_batch_rows", "histogram", "Rows per committed batch.");
    uint64_t cum = 0;
    for (size_t b = 0; b <= WORKER_NBUCKETS; b++) {
        cum += ld(&w->bucket[b]);
        if (b < WORKER_NBUCKETS)
            buf_printf(out, "lectern_storage_batch_rows_bucket{le=\"%llu\"} %llu\n",
                       (unsigned long long)worker_buckets[b], (unsigned long long)cum);
        else
            buf_printf(out, "lectern_storage_batch_rows_bucket{le=\"+Inf\"} %llu\n",
                       (unsigned long long)cum);
    }
    buf_printf(out, "lectern_storage_batch_rows_sum %llu\nlectern_storage_batch_rows_count %llu\n",
               (unsigned long long)ld(&w->rows_sum), (unsigned long long)ld(&w->batches));
    family(out, "lectern_storage_commit_seconds", "summary", "Time to insert and commit a batch.");
    buf_printf(out, "lectern_storage_commit_seconds_sum %.6f\nlectern_storage_commit_seconds_count %llu\n",
               (double)ld(&w->commit_us) / 1e6, (unsigned long long)ld(&w->batches));
    family(out, "lectern_storage_lag_seconds", "gauge",
           "Publish-to-commit time of the newest message of the last batch.");
    buf_printf(out, "lectern_storage_lag_seconds %.3f\n", (double)ld(&w->lag_ms) / 1000);
    family(out, "lectern_storage_lag_max_seconds", "gauge",
           "Publish-to-commit time of the oldest message of the last batch.");
    buf_printf(out, "lectern_storage_lag_max_seconds %.3f\n", (double)ld(&w->lag_max_ms) / 1000);
    family(out, "lectern_storage_errors_total", "counter", "Errors by kind.");
    buf_printf(out, "lectern_storage_errors_total{kind=\"mysql\"} %llu\n"
               "lectern_storage_errors_total{kind=\"amqp\"} %llu\n"
               "lectern_storage_errors_total{kind=\"poison\"} %llu\n",
               (unsigned long long)ld(&w->err_mysql), (unsigned long long)ld(&w->err_amqp),
               (unsigned long long)ld(&w->poison));
    family(out, "lectern_storage_reconnects_total", "counter", "Reconnects after a failure.");
    buf_printf(out, "lectern_storage_reconnects_total{to=\"mysql\"} %llu\n"
               "lectern_storage_reconnects_total{to=\"amqp\"} %llu\n",
               (unsigned long long)ld(&w->re_mysql), (unsigned long long)ld(&w->re_amqp));
    family(out, "lectern_storage_up", "gauge", "1 when connected to the dependency.");
    buf_printf(out, "lectern_storage_up{dep=\"mysql\"} %d\nlectern_storage_up{dep=\"amqp\"} %d\n",
               atomic_load(&w->up_mysql) ? 1 : 0, atomic_load(&w->up_amqp) ? 1 : 0);
}
