/* bus_pub.c — the bus's publisher thread: storage and room copies, confirms.
 *
 * The publisher owns one connection (channel 1, in confirm mode). It
 * poll()s its socket and an eventfd (new jobs, stop) for at most `tick`
 * (<= heartbeat/2, <= 1 s, or less when a confirm deadline comes first),
 * reads every frame the broker sent without blocking (confirms, heartbeats,
 * connection.close; a dead socket shows here even when idle), takes the
 * queued jobs and publishes each: the room copy (if wanted) to the
 * exchange, the storage copy to the storage queue (declared by
 * lib/storage_queue.c, exactly as lectern-storage declares it). Settled
 * jobs at the head of its list are handed back to the loop in order.
 *
 * Jobs. bus_publish queues only while the publisher's link is up (the
 * consumer's may be down: a server that cannot receive for a while can
 * still send and store) and fewer than max_queue jobs are queued or
 * unconfirmed (0 = no limit). The publisher keeps the jobs
 * it took in one list, in queue order; each remembers the delivery tag of its
 * storage copy on the current connection (tags count every publish on the
 * channel from 1, room copies included). basic.ack/nack settle jobs by tag
 * (`multiple` settles all up to it); a job whose deadline (queue time +
 * confirm_timeout_ms) passes unsettled fails. A basic.nack does not fail a
 * job: the broker could not take the copy now (a quorum queue whose leader
 * died refuses until a new one is elected, which takes seconds), so the copy
 * is published again nack_retry_ms later, within the same deadline; such a
 * job's new tag is out of list order, which the confirm matching allows
 * for (bus_pub_mark). Only the settled head of the
 * list is completed, so done callbacks run in queue order. When the
 * connection fails, every job in the list loses its tag and its room copy
 * (transient: late delivery would be worse than the catch-up from the room
 * log, and is counted in publish_failures) and keeps its storage copy, which
 * is published again first thing on the next connection. Backoff waits keep
 * failing jobs whose deadline passes.
 *
 * Refusals. Nacks that go on for nack_reopen_ms without one confirm close
 * the connection (bus_pub_refusals), and the next one is opened on the next
 * node: RabbitMQ 3.10 can leave a channel that was opened while the quorum
 * queue had no leader refusing every publish to it for minutes after a new
 * leader took over, while a new channel is served at once. The check comes
 * after the round's publishes, so the room copies of the jobs taken so far
 * have left.
 *
 * Encodings. A copy travels alone (envelope.h: its fields in the AMQP
 * properties) only when those fit the content header frame and the AMQP
 * short strings (envelope_fits_amqp): a content type over 255 bytes or
 * header lines near frame_max would make the publish fail, and the
 * connection with it, again at every retry. Anything else travels as a
 * batch (envbatch.h), of one if need be, whose fields are in the body. A
 * batch grows to batch_max copies or BUS_BATCH_BYTES, whichever comes
 * first (a single copy may be larger): it stays well under RabbitMQ's
 * max_message_size (128 MiB) whatever stomp.max_frame allows.
 */
#include "bus_internal.h"

#include "clock.h"
#include "envbatch.h"
#include "mem.h"
#include "storage_queue.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUS_BATCH_BYTES     (16u << 20)   /* a batch grows no further (see Encodings) */

void bus_free_jobs(bus_job *j)
{
    while (j) {
        bus_job *next = j->next;
        envelope_free(&j->env);
        free(j);
        j = next;
    }
}

/* Move every job the loop queued to the end of pend (publisher thread). */
static void bus_pub_take(bus *b)
{
    pthread_mutex_lock(&b->pub_mu);
    bus_job *j = b->jobs;
    size_t n = b->njobs;
    bus_job **tail = b->jobs_tail;
    b->jobs = NULL;
    b->jobs_tail = &b->jobs;
    b->njobs = 0;
    atomic_store(&b->queued, 0);
    pthread_mutex_unlock(&b->pub_mu);
    if (!j)
        return;
    *b->pend_tail = j;
    b->pend_tail = tail;
    b->npend += n;
    atomic_store(&b->unconfirmed, b->npend);
}

/* Wait for the broker's socket (when connected), a wake-up from the loop,
 * stop, or ms. Data rabbitmq-c already buffered counts as readable. */
static void bus_pub_wait(bus *b, bus_conn *c, int ms)
{
    struct pollfd p[2] = { { .fd = b->pub_efd, .events = POLLIN } };
    nfds_t n = 1;
    if (c->conn) {
        if (amqp_data_in_buffer(c->conn) || amqp_frames_enqueued(c->conn))
            ms = 0;
        p[n++] = (struct pollfd){ .fd = amqp_socket_get_sockfd(amqp_get_socket(c->conn)),
                                  .events = POLLIN };
    }
    if (poll(p, n, ms < 0 ? 0 : ms) > 0 && p[0].revents)
        bus_drain_fd(b->pub_efd);
}

/* A basic.nack: the broker could not take the copy now (a quorum queue
 * electing a new leader after its node died, a queue at its length limit).
 * Send it again after nack_retry_ms, unless its deadline comes first.
 * The first nack since the last confirm starts the refusal clock
 * (bus_pub_refusals). */
static void bus_pub_nacked(bus *b, bus_job *j, uint64_t now_ms)
{
    if (!b->refused_since_ms)
        b->refused_since_ms = now_ms;
    if (j->deadline_ms <= now_ms + (uint64_t)b->nack_retry_ms) {
        j->result = -1;
        return;
    }
    bus_add(&b->nacks, 1);
    j->tag = 0;
    j->nacked = true;
    j->resend = true;
    j->retry_ms = now_ms + (uint64_t)b->nack_retry_ms;
    if (!b->retry_wake_ms || j->retry_ms < b->retry_wake_ms)
        b->retry_wake_ms = j->retry_ms;
}

/* Settle jobs by delivery tag: confirmed (ok) or nacked. */
static void bus_pub_mark(bus *b, uint64_t tag, bool multiple, bool ok)
{
    uint64_t now = clock_us();
    for (bus_job *j = b->pend; j; j = j->next) {
        /* pend is in tag order and unsent jobs come last, except for jobs
         * sent again after a nack (later tags, or none yet): skip those. */
        if (!j->tag || j->tag > tag) {
            if (j->nacked)
                continue;
            break;
        }
        if (j->result || (!multiple && j->tag != tag))
            continue;
        if (ok) {
            b->refused_since_ms = 0;
            j->result = 1;
            bus_add(&b->confirm_us_sum, now - j->queued_us);
            histogram_observe_us(&b->confirm_hist, now - j->queued_us);
        } else {
            bus_pub_nacked(b, j, now / 1000);
        }
    }
}

/* Has the broker refused storage copies for nack_reopen_ms without
 * confirming one? Then this connection is given up (see the essay). */
static int bus_pub_refusals(bus *b, bus_conn *c)
{
    if (!b->nack_reopen_ms || !b->refused_since_ms ||
        clock_ms() - b->refused_since_ms < (uint64_t)b->nack_reopen_ms)
        return 0;
    bus_add(&b->nack_reopens, 1);
    snprintf(c->why, sizeof c->why, "storage copies refused for %d ms without a confirm",
             b->nack_reopen_ms);
    return -1;
}

/* Jobs past their deadline fail (pend is in queue order, so deadlines rise). */
static void bus_pub_expire(bus *b)
{
    uint64_t now = clock_ms();
    for (bus_job *j = b->pend; j && j->deadline_ms <= now; j = j->next)
        if (!j->result)
            j->result = -1;
}

/* Hand the settled head of pend to the loop, in order. A stored job whose
 * room copy still lingers (its storage copy went out in a batch and was
 * confirmed first) waits for the room copy: completing frees the job. */
static void bus_pub_complete(bus *b)
{
    bus_event *first = NULL, **tail = &first;
    while (b->pend && b->pend->result && !(b->pend->result > 0 && b->pend->room_copy)) {
        bus_job *j = b->pend;
        b->pend = j->next;
        b->npend--;
        bus_add(j->result > 0 ? &b->stored : &b->store_failures, 1);
        if (j->done) {
            bus_event *ev = xcalloc(1, sizeof *ev);
            ev->kind = BUS_EV_DONE;
            ev->flag = j->result > 0;
            ev->done = j->done;
            ev->dctx = j->ctx;
            *tail = ev;
            tail = &ev->next;
        }
        envelope_free(&j->env);
        free(j);
    }
    if (!b->pend)
        b->pend_tail = &b->pend;
    atomic_store(&b->unconfirmed, b->npend);
    bus_post_chain(b, first, tail);
}

/* The connection is gone: what was sent on it must be sent again on the
 * next one (storage copy only; the room copy is transient and would be late). */
static void bus_pub_reset(bus *b)
{
    for (bus_job *j = b->pend; j; j = j->next) {
        if (j->room_copy)
            bus_add(&b->publish_failures, 1);
        j->room_copy = false;
        if (j->tag)
            j->resend = true;
        j->tag = 0;
    }
}

/* Read confirms and whatever else the broker sent, without blocking. */
static int bus_pub_read(bus *b, bus_conn *c)
{
    for (;;) {
        struct timeval zero = { 0, 0 };
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(c->conn, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            snprintf(c->why, sizeof c->why, "read: %s", amqp_error_string2(rc));
            return -1;
        }
        if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *m = f.payload.method.decoded;
            bus_pub_mark(b, m->delivery_tag, m->multiple, true);
        } else if (f.frame_type == AMQP_FRAME_METHOD &&
                   f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            amqp_basic_nack_t *m = f.payload.method.decoded;
            bus_pub_mark(b, m->delivery_tag, m->multiple, false);
        } else if (bus_conn_frame(c, &f) < 0) {
            return -1;
        }
    }
    amqp_maybe_release_buffers(c->conn);
    return 0;
}

static int bus_pub_send_one(bus *b, bus_conn *c, const envelope *env, const char *exchange,
                            const char *key, uint8_t mode)
{
    amqp_basic_properties_t props;
    amqp_table_entry_t entries[ENVELOPE_MAX_ENTRIES];
    envelope_to_amqp(env, &props, entries);
    props._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = mode;
    amqp_bytes_t body = { env->body_len, env->body };
    int rc = amqp_basic_publish(c->conn, BUS_CH_MAIN, amqp_cstring_bytes(exchange),
                                amqp_cstring_bytes(key), 0, 0, &props, body);
    if (rc != AMQP_STATUS_OK) {
        snprintf(c->why, sizeof c->why, "publish: %s", amqp_error_string2(rc));
        return -1;
    }
    b->next_tag++;              /* every publish on a confirm channel takes a tag */
    return 0;
}

/* b->batch_envs[0..n) as one message (lib/envbatch.h): mode 2
 * (persistent) for storage copies, 1 for room copies. */
static int bus_pub_send_batch(bus *b, bus_conn *c, size_t n, const char *exchange,
                              const char *key, uint8_t mode)
{
    amqp_basic_properties_t props;
    amqp_table_entry_t entry;
    buf_clear(&b->batch);
    envbatch_encode(&b->batch, b->batch_envs, n);
    envbatch_to_amqp(&props, &entry, n);
    props._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = mode;
    amqp_bytes_t body = { b->batch.len, b->batch.data };
    int rc = amqp_basic_publish(c->conn, BUS_CH_MAIN, amqp_cstring_bytes(exchange),
                                amqp_cstring_bytes(key), 0, 0, &props, body);
    if (rc != AMQP_STATUS_OK) {
        snprintf(c->why, sizeof c->why, "publish: %s", amqp_error_string2(rc));
        return -1;
    }
    b->next_tag++;
    return 0;
}

/* A storage copy to send now: not sent on this connection, not settled,
 * not waiting out a nack. */
static bool bus_job_sendable(const bus_job *j, uint64_t now_ms)
{
    return !j->tag && !j->result && j->retry_ms <= now_ms;
}

/* The first job whose storage copy is to be sent now. */
static bus_job *bus_pub_first_unsent(const bus *b)
{
    uint64_t now = clock_ms();
    for (bus_job *j = b->pend; j; j = j->next)
        if (bus_job_sendable(j, now))
            return j;
    return NULL;
}

/* Once the earliest nack retry is due, find the next one (0: none). */
static void bus_pub_retry_due(bus *b)
{
    uint64_t now = clock_ms();
    if (!b->retry_wake_ms || now < b->retry_wake_ms)
        return;
    b->retry_wake_ms = 0;
    for (const bus_job *j = b->pend; j; j = j->next)
        if (!j->tag && !j->result && j->retry_ms > now &&
            (!b->retry_wake_ms || j->retry_ms < b->retry_wake_ms))
            b->retry_wake_ms = j->retry_ms;
}

/* Is j's room copy still to be sent? Also after its storage copy was
 * confirmed (a storage batch can overtake a lingering room copy); not
 * once the job failed (the sender gets ERROR; other servers catch up from
 * the room log). */
static bool bus_pub_wants_room_copy(const bus_job *j)
{
    return j->room_copy && j->result >= 0;
}

/* The first job whose room copy is still to be sent. */
static bus_job *bus_pub_first_room_copy(const bus *b)
{
    for (bus_job *j = b->pend; j; j = j->next)
        if (bus_pub_wants_room_copy(j))
            return j;
    return NULL;
}

/* May j's room copy share a publish with first's? On a fanout exchange any
 * room may (the routing key is ignored); on the direct exchange of dynamic
 * mode only the same room, which keeps each room's order. */
static bool bus_pub_same_batch(const bus *b, const bus_job *first, const bus_job *j)
{
    return !b->dynamic || !strcmp(first->env.room, j->env.room);
}

/* Slot i of the batch being built: j, and its envelope for the encoder. */
static void bus_pub_batch_add(bus *b, size_t i, bus_job *j)
{
    b->batch_jobs[i] = j;
    b->batch_envs[i] = &j->env;
}

/* Does env join a batch of n copies holding *bytes (BUS_BATCH_BYTES; the
 * first always does)? Counts it in when it does. */
static bool bus_pub_batch_fits(size_t *bytes, size_t n, const envelope *env)
{
    size_t rec = envbatch_record_size(env);
    if (n && *bytes + rec > BUS_BATCH_BYTES)
        return false;
    *bytes += rec;
    return true;
}

/* One copy alone, or n as a batch: alone only when its properties fit an
 * AMQP content header on this connection (see Encodings). */
static int bus_pub_send_n(bus *b, bus_conn *c, size_t n, const char *exchange, const char *key,
                          uint8_t mode)
{
    const envelope *env = b->batch_envs[0];
    if (n == 1 && envelope_fits_amqp(env, (size_t)amqp_get_frame_max(c->conn)))
        return bus_pub_send_one(b, c, env, exchange, key, mode);
    return bus_pub_send_batch(b, c, n, exchange, key, mode);
}

/* Should a batch of n (of at most max), whose oldest copy is first's, wait
 * for company? Not when full, not when stopping, not past linger_ms. */
static bool bus_pub_lingers(const bus *b, const bus_job *first, size_t n, int max, int linger_ms)
{
    return n < (size_t)max && linger_ms > 0 && !bus_stopping(b) &&
           clock_us() < first->queued_us + (uint64_t)linger_ms * 1000;
}

/* Room copies, in batches of up to room_batch_max; the oldest waits at most
 * room_batch_linger_ms for company. */
static int bus_pub_send_rooms(bus *b, bus_conn *c)
{
    for (;;) {
        bus_job *first = bus_pub_first_room_copy(b);
        if (!first)
            return 0;
        size_t n = 0, bytes = 0;
        bool full = false;
        for (bus_job *j = first; j && n < (size_t)b->room_batch_max; j = j->next) {
            if (!bus_pub_wants_room_copy(j) || !bus_pub_same_batch(b, first, j))
                continue;
            if ((full = !bus_pub_batch_fits(&bytes, n, &j->env)))
                break;
            bus_pub_batch_add(b, n++, j);
        }
        if (!full && bus_pub_lingers(b, first, n, b->room_batch_max, b->room_batch_linger_ms))
            return 0;           /* bus_pub_timeout wakes us when it is due */
        /* transient: a room copy is only useful now */
        int rc = bus_pub_send_n(b, c, n, b->xname, first->env.room, 1);
        if (rc < 0)
            return -1;
        for (size_t i = 0; i < n; i++)
            b->batch_jobs[i]->room_copy = false;
        bus_add(&b->published, n);
    }
}

/* Publish what pend holds that this connection has not sent: the room
 * copies first (bus_pub_send_rooms: other servers deliver them live), then
 * the storage copies in batches of up to batch_max, one persistent message
 * and one confirm per batch. The oldest unsent storage copy waits at most
 * batch_linger_ms for others to join it (not when stopping, and not for
 * copies sent again after a reconnect, which are old by then). */
static int bus_pub_send(bus *b, bus_conn *c)
{
    if (bus_pub_send_rooms(b, c) < 0)
        return -1;
    bus_pub_retry_due(b);
    for (;;) {
        bus_job *first = bus_pub_first_unsent(b);
        if (!first)
            return 0;
        size_t n = 0, bytes = 0;
        bool full = false;
        uint64_t now = clock_ms();
        for (bus_job *j = first; j && n < (size_t)b->batch_max; j = j->next) {
            if (!bus_job_sendable(j, now))
                continue;
            if ((full = !bus_pub_batch_fits(&bytes, n, &j->env)))
                break;
            bus_pub_batch_add(b, n++, j);
        }
        if (!full && bus_pub_lingers(b, first, n, b->batch_max, b->batch_linger_ms))
            return 0;           /* bus_pub_timeout wakes us when it is due */
        int rc = bus_pub_send_n(b, c, n, "", b->squeue, 2);
        if (rc < 0)
            return -1;
        bus_add(&b->storage_publishes, 1);
        for (size_t i = 0; i < n; i++) {
            bus_job *j = b->batch_jobs[i];
            j->tag = b->next_tag;   /* the batch shares one tag, so one confirm */
            if (j->resend)
                bus_add(&b->republished, 1);
        }
    }
}

/* Back off for ms, failing jobs whose deadline passes meanwhile. */
static void bus_pub_backoff(bus *b, bus_conn *c, int ms)
{
    uint64_t until = clock_ms() + (uint64_t)ms;
    for (;;) {
        bus_pub_take(b);
        bus_pub_expire(b);
        bus_pub_complete(b);
        uint64_t now = clock_ms();
        if (bus_stopping(b) || now >= until)
            return;
        uint64_t wait = until - now;
        if (b->pend && b->pend->deadline_ms > now && b->pend->deadline_ms - now < wait)
            wait = b->pend->deadline_ms - now;
        bus_pub_wait(b, c, (int)wait);
    }
}

/* The storage queue, exactly as lectern-storage declares it. */
static int bus_declare_storage(bus *b, bus_conn *c, amqp_channel_t ch)
{
    storage_queue_declare(c->conn, ch, b->squeue, b->squeue_type);
    return bus_rpc_check(c, "queue.declare (storage)");
}

static int bus_pub_connect(bus *b, bus_conn *c)
{
    if (bus_conn_open(b, c) < 0)
        return -1;
    amqp_channel_open(c->conn, BUS_CH_MAIN);
    if (bus_rpc_check(c, "channel.open") < 0)
        return -1;
    if (bus_declare_exchange(b, c, BUS_CH_MAIN) < 0)
        return -1;
    if (bus_declare_storage(b, c, BUS_CH_MAIN) < 0)
        return -1;
    amqp_confirm_select(c->conn, BUS_CH_MAIN);
    if (bus_rpc_check(c, "confirm.select") < 0)
        return -1;
    b->next_tag = 0;
    b->refused_since_ms = 0;
    return 0;
}

/* How long the publisher may sleep: its tick, or less when a confirm
 * deadline comes first. */
static int bus_pub_timeout(const bus *b, const bus_conn *c)
{
    int ms = c->tick_ms;
    if (b->pend) {
        uint64_t now = clock_ms(), dl = b->pend->deadline_ms;
        if (b->retry_wake_ms && b->retry_wake_ms < dl)
            dl = b->retry_wake_ms;      /* a nacked copy is due first */
        if (dl <= now)
            return 0;
        if (dl - now < (uint64_t)ms)
            ms = (int)(dl - now);
    }
    /* A lingering copy: wake when its batch is due (rounded up). */
    const bus_job *lingering[2] = { b->room_batch_linger_ms ? bus_pub_first_room_copy(b) : NULL,
                                    b->batch_linger_ms ? bus_pub_first_unsent(b) : NULL };
    int linger_ms[2] = { b->room_batch_linger_ms, b->batch_linger_ms };
    for (int i = 0; i < 2; i++) {
        if (!lingering[i])
            continue;
        uint64_t now = clock_us(), due = lingering[i]->queued_us + (uint64_t)linger_ms[i] * 1000;
        int left = due <= now ? 0 : (int)((due - now + 999) / 1000);
        if (left < ms)
            ms = left;
    }
    return ms;
}

void *bus_pub_main(void *arg)
{
    bus *b = arg;
    bus_conn c = { .name = "publisher", .which = BUS_PUB, .mu = &b->pub_mu,
                   .fd_slot = &b->pub_fd, .node = b->first_node };
    backoff_init(&c.retry, b->backoff_min_ms, b->backoff_max_ms, (uintptr_t)b);

    while (!bus_stopping(b)) {
        if (!c.conn) {
            if (bus_pub_connect(b, &c) < 0) {
                bus_conn_down(b, &c);
                bus_pub_backoff(b, &c, backoff_next(&c.retry));
                continue;
            }
            bus_conn_up(b, &c);
        }
        bus_pub_wait(b, &c, bus_pub_timeout(b, &c));
        if (bus_stopping(b))
            break;
        bus_pub_take(b);
        /* Read first: it answers heartbeats and notices a dead socket even
         * when nothing is being published. */
        int rc = bus_pub_read(b, &c);
        if (rc == 0)
            rc = bus_pub_send(b, &c);
        if (rc == 0)
            rc = bus_pub_refusals(b, &c);
        bus_pub_expire(b);
        bus_pub_complete(b);
        if (rc < 0) {
            bus_pub_reset(b);
            bus_conn_down(b, &c);
            bus_pub_backoff(b, &c, backoff_next(&c.retry));
        }
    }
    bus_conn_close(&c);
    return NULL;
}
