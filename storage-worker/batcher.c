/* batcher.c — storage queue -> MySQL in batches (see batcher.h).
 *
 * One thread does everything blocking: it owns the AMQP connection
 * (consumer.c) and the MySQL connection (dbwriter.c). The event loop only
 * talks to it through two atomic flags (stop, abandon) and an eventfd that
 * wakes its poll(); it reports through the atomics of metrics.h.
 *
 * The hand. Deliveries that decode (envelope_from_amqp, and an id that
 * msgid_parse accepts) are appended to an array in delivery-tag order; a
 * batch is always its first min(held, batch_max) entries. So when a batch
 * is committed, every delivery still unacked with a tag up to the batch's
 * last is in the batch, and one basic.ack(multiple) up to the last row MySQL
 * took settles exactly the batch. Rows MySQL refused are rejected first
 * (requeue=false; rejecting after a multiple ack would name an unknown tag
 * and close the channel). A delivery that does not decode is rejected as it
 * arrives. The broker never sends more than `prefetch` unacked deliveries,
 * which bounds the hand.
 *
 * The loop, each round:
 *   - stopping: cancel the consumer once; leave when nothing is held (or the
 *     AMQP connection is gone, which took the hand with it);
 *   - reconnect AMQP / MySQL when down and their backoff time has come;
 *   - every check_ms: read the queue depth, ping an idle MySQL;
 *   - write a batch when one is due: batch_max held, or the whole prefetch
 *     window, or the first held delivery waited batch_wait_ms, or stopping;
 *   - otherwise poll the AMQP socket and the eventfd until the earliest of
 *     those deadlines (and at least every consumer_tick_ms, which keeps
 *     heartbeats going), then read every delivery that has arrived.
 *
 * Failures. A batch that MySQL fails as a whole (connection, deadlock, ...)
 * stays in hand, unacked, and is written again once MySQL is back; the AMQP
 * connection is kept alive meanwhile. When the AMQP connection fails the
 * hand is dropped: its deliveries were not acked, so the broker delivers
 * them again (to us or another worker), and the primary key makes a second
 * insert a no-op. Each failure schedules the next attempt with exponential
 * backoff and jitter (lib/backoff), per connection. amqp.host may list a
 * RabbitMQ cluster's nodes: the worker starts at a node picked per process
 * and every AMQP failure moves the next attempt to the next node, so a
 * dead node costs one attempt; a node that vanished without a FIN is
 * noticed by rabbitmq-c's heartbeat deadline. One log line per outage
 * (amqp_down / mysql_down, then *_up); repeated failures are debug lines.
 *
 * Limits. dbwriter_open checks that MySQL holds the largest message the
 * servers accept (lib/storelimits.h). When it does not (DBWRITER_INCOMPATIBLE:
 * a column narrowed, max_allowed_packet too small), the worker closes its
 * AMQP connection (what it held goes back to the queue, for another worker
 * or for later), consumes nothing, is not ready, says why in one log line
 * (storage_incompatible) and checks again at every MySQL retry; once the
 * database is fixed it consumes again (storage_compatible). MySQL is
 * connected before RabbitMQ, so a worker started against such a database
 * takes nothing from the queue at all.
 *
 * Poison. A message is rejected (requeue=false) only when it cannot be
 * stored on its own account: undecodable, a bad id, a row over
 * max_allowed_packet, or a row MySQL refuses. Servers check every message
 * against lib/storelimits.h and the worker checks the database against the
 * same table, so none of these happens to a message a server sent: poison
 * means a corrupted or foreign message. Each is counted, in total
 * (errors_total{kind="poison"}) and by reason (poison_total{reason}); the
 * first and then one in every storage.poison_log_every is logged, naming
 * the field over the table's limit when there is one.
 */
#include "batcher.h"

#include "addrlist.h"
#include "backoff.h"
#include "clock.h"
#include "consumer.h"
#include "envbatch.h"
#include "envelope.h"
#include "log.h"
#include "mem.h"
#include "msgid.h"
#include "dbwriter.h"
#include "storelimits.h"

#include <errno.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define BATCHER_RECEIVE_MAX 1000     /* deliveries read per round */

typedef struct batcher_item {
    uint64_t tag;
    uint64_t arrived_ms;
    envelope env;
    msgid id;
} batcher_item;

struct batcher {
    const storage_config *conf;
    metrics *m;
    batcher_done_fn done;
    void *ctx;
    consumer *amqp;
    addrlist nodes;                /* amqp.host: one broker or a cluster's nodes */
    dbwriter *writer;
    pthread_t thread;
    int efd;
    atomic_bool stop, abandon;

    /* Worker thread only. */
    batcher_item *items;            /* the hand: items[head..len) */
    size_t head, len, cap;
    dbwriter_row *rows;               /* rows_cap (at least batch_max) */
    size_t rows_cap;
    backoff amqp_backoff, mysql_backoff;
    size_t node;                   /* index in nodes tried next / in use */
    uint64_t amqp_retry_at, mysql_retry_at, check_at, mysql_used_at;
    bool amqp_ever, mysql_ever;    /* connected once: later connects are reconnects */
    bool amqp_told, mysql_told;    /* this outage was logged */
    bool incompatible;             /* MySQL cannot hold the largest message: do not consume */
    bool cancelled;
    uint64_t poison;
    char name[160];
};

/* --- the hand ------------------------------------------------------------------------ */

static size_t batcher_held(const batcher *w)
{
    return w->len - w->head;
}

static void batcher_hand_gauge(batcher *w)
{
    atomic_store_explicit(&w->m->in_hand, batcher_held(w), memory_order_relaxed);
}

static void batcher_hand_push(batcher *w, uint64_t tag, uint64_t now, envelope *env, msgid id)
{
    if (w->len == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        w->items = xrealloc(w->items, w->cap * sizeof *w->items);
    }
    batcher_item *it = &w->items[w->len++];
    it->tag = tag;
    it->arrived_ms = now;
    it->env = *env;             /* takes the fields */
    it->id = id;
    batcher_hand_gauge(w);
}

/* Drop the first k held deliveries (written, or given up). */
static void batcher_hand_pop(batcher *w, size_t k)
{
    for (size_t i = 0; i < k; i++)
        envelope_free(&w->items[w->head + i].env);
    w->head += k;
    if (w->head == w->len) {
        w->head = w->len = 0;
    } else if (w->head > w->cap / 2) {
        memmove(w->items, w->items + w->head, batcher_held(w) * sizeof *w->items);
        w->len -= w->head;
        w->head = 0;
    }
    batcher_hand_gauge(w);
}

/* --- connection state ----------------------------------------------------------------- */

static void batcher_amqp_lost(batcher *w, const char *why)
{
    char q[300], node[300];
    size_t dropped = batcher_held(w);
    batcher_hand_pop(w, dropped);       /* unacked: RabbitMQ delivers them again */
    atomic_store(&w->m->up_amqp, false);
    metrics_add(&w->m->errors_amqp, 1);
    int delay = backoff_next(&w->amqp_backoff);
    w->amqp_retry_at = clock_ms() + (uint64_t)delay;
    addrlist_format(&w->nodes, w->node, node, sizeof node);
    if (!w->amqp_told) {
        w->amqp_told = true;
        log_warn("amqp_down", "node=%s queue=%s dropped_unacked=%zu retry_ms=%d reason=%s", node,
                 w->conf->consumer.queue, dropped, delay, log_q(q, sizeof q, why, strlen(why)));
    } else {
        log_debug("amqp_retry", "node=%s retry_ms=%d reason=%s", node, delay,
                  log_q(q, sizeof q, why, strlen(why)));
    }
    /* The next attempt goes to the next node of the list. */
    w->node = (w->node + 1) % w->nodes.n;
}

static void batcher_mysql_lost(batcher *w, const char *why)
{
    const mysqlconn_config *my = &w->conf->writer.conn;
    char q[300];
    atomic_store(&w->m->up_mysql, false);
    metrics_add(&w->m->errors_mysql, 1);
    int delay = backoff_next(&w->mysql_backoff);
    w->mysql_retry_at = clock_ms() + (uint64_t)delay;
    if (!w->mysql_told) {
        w->mysql_told = true;
        log_warn("mysql_down", "host=%s port=%d held=%zu retry_ms=%d reason=%s", my->host,
                 my->port, batcher_held(w), delay, log_q(q, sizeof q, why, strlen(why)));
    } else {
        log_debug("mysql_retry", "host=%s port=%d retry_ms=%d reason=%s", my->host, my->port,
                  delay, log_q(q, sizeof q, why, strlen(why)));
    }
}

static void batcher_open_amqp(batcher *w)
{
    char why[300], node[300];
    const addrlist_entry *n = &w->nodes.v[w->node];
    if (consumer_open(w->amqp, n->host, n->port, why, sizeof why) < 0) {
        batcher_amqp_lost(w, why);
        return;
    }
    backoff_reset(&w->amqp_backoff);
    if (w->amqp_ever)
        metrics_add(&w->m->reconnects_amqp, 1);
    w->amqp_ever = true;
    w->amqp_told = false;
    w->check_at = 0;            /* read the queue depth right away */
    atomic_store(&w->m->up_amqp, true);
    addrlist_format(&w->nodes, w->node, node, sizeof node);
    log_info("amqp_up", "node=%s queue=%s type=%s prefetch=%d", node, w->conf->consumer.queue,
             w->conf->consumer.queue_type, w->conf->consumer.prefetch);
}

/* MySQL answered but cannot hold what the servers accept: stop consuming
 * (the hand goes back to the queue unacked) until a later connect finds
 * the database fixed. */
static void batcher_incompatible(batcher *w, const char *why)
{
    char q[400];
    int delay = backoff_next(&w->mysql_backoff);
    w->mysql_retry_at = clock_ms() + (uint64_t)delay;
    atomic_store(&w->m->up_mysql, false);
    if (consumer_is_open(w->amqp)) {
        batcher_hand_pop(w, batcher_held(w));
        consumer_close(w->amqp);
        atomic_store(&w->m->up_amqp, false);
    }
    if (!w->incompatible) {
        w->incompatible = true;
        atomic_store(&w->m->incompatible, true);
        const mysqlconn_config *my = &w->conf->writer.conn;
        log_error("storage_incompatible", "host=%s port=%d database=%s action=\"not consuming "
                  "until fixed\" retry_ms=%d reason=%s", my->host, my->port, my->database, delay,
                  log_q(q, sizeof q, why, strlen(why)));
    } else {
        log_debug("storage_incompatible", "retry_ms=%d reason=%s", delay,
                  log_q(q, sizeof q, why, strlen(why)));
    }
}

static void batcher_open_mysql(batcher *w)
{
    char why[400];
    int rc = dbwriter_open(w->writer, why, sizeof why);
    if (rc == DBWRITER_INCOMPATIBLE) {
        batcher_incompatible(w, why);
        return;
    }
    if (rc < 0) {
        batcher_mysql_lost(w, why);
        return;
    }
    const mysqlconn_config *my = &w->conf->writer.conn;
    if (w->incompatible) {
        w->incompatible = false;
        atomic_store(&w->m->incompatible, false);
        log_info("storage_compatible", "host=%s port=%d database=%s action=consuming", my->host,
                 my->port, my->database);
    }
    backoff_reset(&w->mysql_backoff);
    if (w->mysql_ever)
        metrics_add(&w->m->reconnects_mysql, 1);
    w->mysql_ever = true;
    w->mysql_told = false;
    w->mysql_used_at = clock_ms();
    atomic_store(&w->m->up_mysql, true);
    log_info("mysql_up", "host=%s port=%d database=%s held=%zu", my->host, my->port,
             my->database, batcher_held(w));
}

/* --- deliveries ------------------------------------------------------------------------ */

/* Count (and now and then log) one message that cannot be stored, of
 * `kind`; `reason` says why in words. */
static void batcher_poison(batcher *w, metrics_poison kind, const char *reason, const char *id,
                           size_t idlen, unsigned mysql_err)
{
    char q[400], qi[120];
    w->poison++;
    metrics_add(&w->m->errors_poison, 1);
    metrics_add(&w->m->poison[kind], 1);
    if ((w->poison - 1) % (uint64_t)w->conf->poison_log_every == 0)
        log_warn("poison", "count=%llu id=%s reason=%s mysql_error=%u",
                 (unsigned long long)w->poison, log_q(qi, sizeof qi, id, idlen),
                 log_q(q, sizeof q, reason, strlen(reason)), mysql_err);
}

/* Reject one delivery for good, counting it as poison. Returns 0, or -1
 * when the AMQP connection failed (already handled). */
static int batcher_reject(batcher *w, uint64_t tag, metrics_poison kind, const char *reason,
                          const char *id, size_t idlen, unsigned mysql_err)
{
    char why[300];
    batcher_poison(w, kind, reason, id, idlen, mysql_err);
    if (consumer_reject(w->amqp, tag, why, sizeof why) < 0) {
        batcher_amqp_lost(w, why);
        return -1;
    }
    return 0;
}

/* A batch (lib/envbatch.h): every message with a valid id goes into the
 * hand under the delivery's one tag; the others are counted as poison. A
 * batch with nothing storable is rejected. Returns -1 when the AMQP
 * connection failed. */
static int batcher_delivery_batch(batcher *w, amqp_envelope_t *d, uint64_t now)
{
    envelope *envs = NULL;
    size_t n = 0, good = 0;
    const char *why = NULL;
    amqp_bytes_t mid = (d->message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
                           ? d->message.properties.message_id : amqp_empty_bytes;
    if (envbatch_decode(d->message.body, &envs, &n, &why) < 0)
        return batcher_reject(w, d->delivery_tag, METRICS_POISON_UNDECODABLE, why, mid.bytes,
                              mid.len, 0);
    for (size_t i = 0; i < n; i++) {
        msgid id;
        if (msgid_parse(envs[i].id, strlen(envs[i].id), &id) < 0) {
            batcher_poison(w, METRICS_POISON_BAD_ID, "x-lectern-id is not a message id (<ms>-<n>)",
                           envs[i].id, strlen(envs[i].id), 0);
            envelope_free(&envs[i]);
            continue;
        }
        batcher_hand_push(w, d->delivery_tag, now, &envs[i], id);   /* takes the fields */
        good++;
    }
    free(envs);
    if (good == 0)
        return batcher_reject(w, d->delivery_tag, METRICS_POISON_BAD_ID,
                              "batch without a storable message", mid.bytes, mid.len, 0);
    return 0;
}

/* Decode one delivery into the hand, or reject it; release it. Returns -1
 * when the AMQP connection failed. (A delivery's memory is its own: it
 * outlives its connection.) */
static int batcher_delivery(batcher *w, amqp_envelope_t *d, uint64_t now)
{
    const amqp_basic_properties_t *p = &d->message.properties;
    envelope env;
    const char *why = NULL;
    msgid id;
    int rc = 0;

    metrics_add(&w->m->deliveries, 1);
    if (envbatch_is(p)) {
        rc = batcher_delivery_batch(w, d, now);
    } else if (envelope_from_amqp(p, d->message.body, &env, &why) < 0) {
        amqp_bytes_t mid = (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ? p->message_id
                                                                     : amqp_empty_bytes;
        rc = batcher_reject(w, d->delivery_tag, METRICS_POISON_UNDECODABLE,
                            why ? why : "undecodable", mid.bytes, mid.len, 0);
    } else if (msgid_parse(env.id, strlen(env.id), &id) < 0) {
        rc = batcher_reject(w, d->delivery_tag, METRICS_POISON_BAD_ID,
                            "x-lectern-id is not a message id (<ms>-<n>)", env.id, strlen(env.id), 0);
        envelope_free(&env);
    } else {
        batcher_hand_push(w, d->delivery_tag, now, &env, id);
    }
    consumer_release(d);
    return rc;
}

/* Read every delivery that has arrived (up to BATCHER_RECEIVE_MAX). */
static void batcher_receive(batcher *w)
{
    char why[300];
    uint64_t now = clock_ms();
    for (int n = 0; n < BATCHER_RECEIVE_MAX && consumer_is_open(w->amqp); n++) {
        amqp_envelope_t d;
        int r = consumer_next(w->amqp, &d, why, sizeof why);
        if (r == 0)
            return;
        if (r < 0) {
            batcher_amqp_lost(w, why);
            return;
        }
        if (batcher_delivery(w, &d, now) < 0)
            return;
    }
}

/* --- batches --------------------------------------------------------------------------- */

static bool batcher_batch_due(const batcher *w, uint64_t now, bool stopping)
{
    size_t held = batcher_held(w);
    if (!held || !consumer_is_open(w->amqp) || !dbwriter_is_open(w->writer))
        return false;
    return stopping || held >= (size_t)w->conf->writer.batch_max ||
           held >= (size_t)w->conf->consumer.prefetch ||
           now >= w->items[w->head].arrived_ms + (uint64_t)w->conf->batch_wait_ms;
}

/* Why MySQL refused env's row (mysql_err): its poison kind, and in words,
 * naming the field over lib/storelimits.h when there is one (a message no
 * server that checks the table would have sent). */
static metrics_poison batcher_refusal(const envelope *env, unsigned mysql_err, char *reason,
                                      size_t len)
{
    storelimits_sizes sz;
    char over[240];
    storelimits_of_envelope(env, &sz);
    int f = storelimits_check(&sz);
    if (f >= 0)
        storelimits_explain(&sz, f, over, sizeof over);
    bool packet = mysql_err == ER_NET_PACKET_TOO_LARGE;
    snprintf(reason, len, "%s%s%s", packet ? "row larger than max_allowed_packet"
                                           : "MySQL refused the row",
             f >= 0 ? ": " : "", f >= 0 ? over : "");
    return packet ? METRICS_POISON_TOO_LARGE : METRICS_POISON_REFUSED;
}

/* Write, commit, then reject refused rows and ack the rest.
 *
 * A batch is the first batch_max rows held, extended to the end of the
 * last delivery: the rows of one AMQP message (a server's batch) share its
 * tag and are acked together, so they are never split across two acks.
 * Such a batch may exceed batch_max; it is then written in several
 * statements and commits, and acked after the last (a failure in between
 * keeps all of it in hand; writing a row again is a no-op). A delivery
 * with a refused row is rejected once (its other rows are committed); the
 * ack covers every delivery up to the last one with no refused row. */
static void batcher_flush(batcher *w)
{
    size_t k = batcher_held(w);
    if (k > (size_t)w->conf->writer.batch_max)
        k = (size_t)w->conf->writer.batch_max;
    while (w->head + k < w->len && w->items[w->head + k].tag == w->items[w->head + k - 1].tag)
        k++;
    if (k > w->rows_cap) {
        w->rows_cap = k;
        w->rows = xrealloc(w->rows, k * sizeof *w->rows);
    }
    batcher_item *batch = &w->items[w->head];
    for (size_t i = 0; i < k; i++)
        w->rows[i] = (dbwriter_row){ .env = &batch[i].env, .id = batch[i].id };

    dbwriter_result res = { 0 };
    char why[300];
    size_t max = (size_t)w->conf->writer.batch_max;
    for (size_t off = 0; off < k; off += max) {
        size_t n = k - off < max ? k - off : max;
        dbwriter_result part;
        if (dbwriter_write(w->writer, w->rows + off, n, &part, why, sizeof why) < 0) {
            batcher_mysql_lost(w, why);     /* the batch stays in hand */
            return;
        }
        res.inserted += part.inserted;
        res.duplicates += part.duplicates;
        res.rejected += part.rejected;
        res.write_us += part.write_us;
    }
    w->mysql_used_at = clock_ms();

    uint64_t wall = clock_wall_ms(), newest = 0, lag_max = 0, last_good = 0;
    for (size_t i = 0; i < k;) {
        size_t end = i;
        bool refused = false;
        while (end < k && batch[end].tag == batch[i].tag)
            refused |= w->rows[end++].rejected != 0;
        if (!refused)
            last_good = batch[i].tag;
        i = end;
    }
    for (size_t i = 0; i < k; i++) {
        if (w->rows[i].rejected)
            continue;
        uint64_t ts = batch[i].env.ts_ms;
        if (ts > newest)
            newest = ts;
        if (wall > ts && wall - ts > lag_max)
            lag_max = wall - ts;
    }
    if (res.rejected < k)
        metrics_batch(w->m, k - res.rejected, res.inserted, res.write_us, newest, lag_max);

    uint64_t rejected_tag = 0;
    for (size_t i = 0; i < k; i++) {
        if (!w->rows[i].rejected)
            continue;
        const char *id = batch[i].env.id;
        char reason[300];
        metrics_poison kind = batcher_refusal(&batch[i].env, w->rows[i].rejected, reason,
                                              sizeof reason);
        if (rejected_tag == batch[i].tag) {   /* the delivery is already rejected */
            batcher_poison(w, kind, reason, id, strlen(id), w->rows[i].rejected);
            continue;
        }
        rejected_tag = batch[i].tag;
        if (batcher_reject(w, batch[i].tag, kind, reason, id, strlen(id), w->rows[i].rejected) < 0)
            return;                        /* the hand went with the connection */
    }
    if (last_good && consumer_ack(w->amqp, last_good, why, sizeof why) < 0) {
        batcher_amqp_lost(w, why);          /* committed: a redelivery is a no-op */
        return;
    }
    batcher_hand_pop(w, k);
}

/* --- the loop ---------------------------------------------------------------------------- */

/* Stopping: no new deliveries. Those already sent are still read. */
static void batcher_cancel(batcher *w)
{
    char why[300];
    w->cancelled = true;
    log_info("draining", "held=%zu amqp=%s mysql=%s", batcher_held(w),
             consumer_is_open(w->amqp) ? "up" : "down",
             dbwriter_is_open(w->writer) ? "up" : "down");
    if (!consumer_is_open(w->amqp))
        return;
    if (consumer_cancel(w->amqp, why, sizeof why) < 0) {
        batcher_amqp_lost(w, why);
        return;
    }
    atomic_store(&w->m->up_amqp, false);
    batcher_receive(w);
}

/* The queue depth and an idle MySQL, every check_ms. */
static void batcher_checks(batcher *w, uint64_t now)
{
    char why[300];
    uint64_t every = (uint64_t)w->conf->check_ms;
    if (consumer_is_open(w->amqp) && now >= w->check_at) {
        uint32_t ready;
        w->check_at = now + every;
        if (consumer_depth(w->amqp, &ready, why, sizeof why) < 0)
            batcher_amqp_lost(w, why);
        else
            atomic_store_explicit(&w->m->queue_messages, ready, memory_order_relaxed);
    }
    if (dbwriter_is_open(w->writer) && now >= w->mysql_used_at + every) {
        if (dbwriter_ping(w->writer, why, sizeof why) < 0)
            batcher_mysql_lost(w, why);
        else
            w->mysql_used_at = now;
    }
}

static void batcher_min(int64_t *t, uint64_t at, uint64_t now)
{
    int64_t d = at > now ? (int64_t)(at - now) : 0;
    if (d < *t)
        *t = d;
}

/* Sleep until something is due or arrives, then read deliveries. */
static void batcher_wait(batcher *w, uint64_t now, bool stopping)
{
    bool amqp = consumer_is_open(w->amqp), mysql = dbwriter_is_open(w->writer);
    int64_t t = amqp ? consumer_tick_ms(w->amqp) : 1000;
    uint64_t every = (uint64_t)w->conf->check_ms;

    if (!amqp && !stopping && !w->incompatible)
        batcher_min(&t, w->amqp_retry_at, now);
    if (!mysql)
        batcher_min(&t, w->mysql_retry_at, now);
    if (amqp && mysql && batcher_held(w))
        batcher_min(&t, w->items[w->head].arrived_ms + (uint64_t)w->conf->batch_wait_ms, now);
    if (amqp)
        batcher_min(&t, w->check_at, now);
    if (mysql)
        batcher_min(&t, w->mysql_used_at + every, now);
    if (amqp && consumer_buffered(w->amqp))
        t = 0;

    struct pollfd p[2] = {
        { .fd = w->efd, .events = POLLIN },
        { .fd = amqp ? consumer_fd(w->amqp) : -1, .events = POLLIN },
    };
    if (poll(p, 2, (int)t) > 0 && (p[0].revents & POLLIN)) {
        uint64_t v;
        ssize_t n = read(w->efd, &v, sizeof v);
        (void)n;        /* EAGAIN: another round already drained it */
    }
    if (consumer_is_open(w->amqp) && !atomic_load(&w->abandon))
        batcher_receive(w);
}

static void *batcher_main(void *arg)
{
    batcher *w = arg;
    mysql_thread_init();
    while (!atomic_load(&w->abandon)) {
        bool stopping = atomic_load(&w->stop);
        if (stopping && !w->cancelled)
            batcher_cancel(w);
        if (stopping && (!consumer_is_open(w->amqp) || !batcher_held(w)))
            break;
        uint64_t now = clock_ms();
        /* MySQL first: a database that cannot hold every message is found
         * before anything is taken from the queue. */
        if (!dbwriter_is_open(w->writer) && now >= w->mysql_retry_at)
            batcher_open_mysql(w);
        if (!stopping && !w->incompatible && !consumer_is_open(w->amqp) &&
            now >= w->amqp_retry_at)
            batcher_open_amqp(w);
        now = clock_ms();
        batcher_checks(w, now);          /* before a flush: a long drain must not starve it */
        if (batcher_batch_due(w, now, stopping)) {
            batcher_flush(w);
            continue;
        }
        batcher_wait(w, now, stopping);
    }

    bool abandoned = atomic_load(&w->abandon);
    size_t unacked = batcher_held(w);
    batcher_hand_pop(w, unacked);
    consumer_close(w->amqp);           /* not politely once interrupted */
    dbwriter_close(w->writer);
    atomic_store(&w->m->up_amqp, false);
    atomic_store(&w->m->up_mysql, false);
    log_info("worker_stopped", "abandoned=%s unacked=%zu rows_written=%llu duplicates=%llu "
             "poison=%llu", abandoned ? "true" : "false", unacked,
             (unsigned long long)atomic_load(&w->m->rows_written),
             (unsigned long long)atomic_load(&w->m->duplicates),
             (unsigned long long)atomic_load(&w->m->errors_poison));
    mysql_thread_end();
    w->done(w->ctx);
    return NULL;
}

/* --- the loop's side ------------------------------------------------------------------------ */

static void batcher_wake(batcher *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->efd, &one, sizeof one);
    (void)n;            /* the counter can only saturate: a wake-up is pending anyway */
}

static void batcher_free(batcher *w)
{
    consumer_destroy(w->amqp);
    addrlist_deinit(&w->nodes);
    dbwriter_destroy(w->writer);
    if (w->efd >= 0)
        close(w->efd);
    for (size_t i = w->head; i < w->len; i++)
        envelope_free(&w->items[i].env);
    free(w->items);
    free(w->rows);
    free(w);
}

batcher *batcher_create(const storage_config *conf, metrics *m, batcher_done_fn done, void *ctx,
                        char *err, size_t errlen)
{
    batcher *w = xcalloc(1, sizeof *w);
    char host[64] = "localhost";
    w->efd = -1;
    w->conf = conf;
    w->m = m;
    w->done = done;
    w->ctx = ctx;
    atomic_init(&w->stop, false);
    atomic_init(&w->abandon, false);
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(w->name, sizeof w->name, "lectern-storage %s pid %d", host, (int)getpid());

    consumer_config cc = conf->consumer;
    cc.name = w->name;
    if (addrlist_parse(&w->nodes, conf->amqp_host, conf->amqp_port, err, errlen) < 0)
        goto fail;
    /* Workers start at different nodes of a cluster and walk the list. */
    w->node = addrlist_start(&w->nodes, clock_us() ^ (uint64_t)getpid() << 32);
    w->amqp = consumer_create(&cc);
    w->writer = dbwriter_create(&conf->writer);
    w->rows = xcalloc((size_t)conf->writer.batch_max, sizeof *w->rows);
    w->rows_cap = (size_t)conf->writer.batch_max;
    w->cap = (size_t)conf->consumer.prefetch + 1;
    w->items = xcalloc(w->cap, sizeof *w->items);
    backoff_init(&w->amqp_backoff, conf->amqp_backoff_min_ms, conf->amqp_backoff_max_ms,
                 (uint64_t)(uintptr_t)w);
    backoff_init(&w->mysql_backoff, conf->mysql_backoff_min_ms, conf->mysql_backoff_max_ms,
                 (uint64_t)(uintptr_t)w->writer);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    int rc = pthread_create(&w->thread, NULL, batcher_main, w);
    if (rc) {
        snprintf(err, errlen, "cannot start the worker thread: %s", strerror(rc));
        goto fail;
    }
    return w;

fail:
    batcher_free(w);
    return NULL;
}

void batcher_stop(batcher *w)
{
    atomic_store(&w->stop, true);
    batcher_wake(w);
}

void batcher_abandon(batcher *w)
{
    atomic_store(&w->stop, true);
    atomic_store(&w->abandon, true);
    consumer_interrupt(w->amqp);
    dbwriter_interrupt(w->writer);
    batcher_wake(w);
}

void batcher_destroy(batcher *w)
{
    if (!w)
        return;
    pthread_join(w->thread, NULL);
    batcher_free(w);
}
