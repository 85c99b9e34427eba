/* bus.c — RabbitMQ for lectern-server: the loop's side of the bus.
 *
 * rabbitmq-c blocks, so nothing of the bus runs it on the event loop. The
 * bus is one concept on three threads, one file each, plus the connection
 * steps both threads share:
 *
 *   the loop        (this file) bus_publish/bind/unbind only copy their
 *                   argument into a queue under a mutex and wake a thread;
 *                   bus_on_async drains the inbound queue and runs the
 *                   callbacks. Creation and destruction.
 *   the publisher   (bus_pub.c) one connection, channel 1 in confirm mode:
 *                   the room and storage copies of each job, confirms,
 *                   batches; settled jobs go back to the loop in order.
 *   the consumer    (bus_con.c) the other connection: this server's queue,
 *                   its bindings, deliveries from other servers.
 *   a connection    (bus_conn.c) open, log in, fail, close, move to the
 *                   next node, back off: the same for both threads.
 *
 * Bus state. Each thread sets its link (up = connected and its topology
 * declared) under in_mu; the bus is up when both links are. Only changes of
 * the combined state are queued for on_state, and `up` (an atomic read by
 * bus_ready and bus_publish) changes in the same critical section, so the
 * loop sees on_state(false) only after bus_publish already refuses work.
 *
 * Ownership. on_message receives a heap envelope (xmalloc'd struct, fields
 * owned): the callee owns both, and releases it with envelope_free(env)
 * followed by free(env). Every envelope copied in by bus_publish is freed by
 * the publisher once its job is settled, or by bus_destroy; inbound events
 * still queued at bus_destroy are freed without callbacks, except job
 * completions: a done callback always runs exactly once.
 *
 * Destroy. bus_destroy sets stop, wakes both threads and joins them; each
 * closes its connection politely on the way out. A thread stuck inside
 * rabbitmq-c (a send blocked by broker flow control, a hung RPC) gets
 * BUS_STOP_GRACE_MS, after which bus_destroy shuts its socket down (the fd is
 * published under the thread's mutex, so it is never one that was closed
 * and reused) and the blocked call fails at once. Then all memory but the
 * struct itself is released and the async handle is closed; its close
 * callback frees the struct. The struct outliving bus_destroy until the loop
 * runs again is what makes bus_destroy safe inside a bus callback: the
 * dispatch loop notices `destroyed` and drops the remaining events.
 */
#include "bus_internal.h"

#include "clock.h"
#include "log.h"
#include "mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUS_STOP_GRACE_MS   500      /* polite close time before shutdown(2) */

/* --- inbound queue (threads -> loop) ----------------------------------------- */

void bus_post_chain(bus *b, bus_event *first, bus_event **last_next)
{
    if (!first)
        return;
    pthread_mutex_lock(&b->in_mu);
    *b->events_tail = first;
    b->events_tail = last_next;
    pthread_mutex_unlock(&b->in_mu);
    uv_async_send(&b->async);
}

void bus_post_bound(bus *b, const char *room, bool ok)
{
    size_t n = strlen(room);
    bus_event *ev = xcalloc(1, sizeof *ev + n + 1);
    ev->kind = BUS_EV_BOUND;
    ev->flag = ok;
    memcpy(ev->room, room, n + 1);
    bus_post_chain(b, ev, &ev->next);
}

void bus_set_link(bus *b, int which, bool up)
{
    bus_event *ev = NULL;

    pthread_mutex_lock(&b->in_mu);
    b->link[which] = up;
    if (which == BUS_PUB)
        atomic_store(&b->pub_up, up);
    bool now = b->link[BUS_PUB] && b->link[BUS_CON];
    if (now != atomic_load(&b->up)) {
        atomic_store(&b->up, now);
        if (now && b->ever_up)
            bus_add(&b->reconnects, 1);
        if (now)
            b->ever_up = true;
        ev = xcalloc(1, sizeof *ev);
        ev->kind = BUS_EV_STATE;
        ev->flag = now;
        *b->events_tail = ev;
        b->events_tail = &ev->next;
    }
    pthread_mutex_unlock(&b->in_mu);
    if (ev)
        uv_async_send(&b->async);
}

/* Free events without their callbacks, except that a job's done always
 * runs (its owner is waiting for it to free its context). */
static void bus_free_events(bus_event *ev)
{
    while (ev) {
        bus_event *next = ev->next;
        if (ev->kind == BUS_EV_DONE && ev->done)
            ev->done(ev->dctx, ev->flag);
        if (ev->env) {
            envelope_free(ev->env);
            free(ev->env);
        }
        free(ev);
        ev = next;
    }
}

/* Runs on the loop: drain everything (uv_async_send coalesces wake-ups). */
static void bus_on_async(uv_async_t *h)
{
    bus *b = h->data;

    pthread_mutex_lock(&b->in_mu);
    bus_event *ev = b->events;
    b->events = NULL;
    b->events_tail = &b->events;
    pthread_mutex_unlock(&b->in_mu);

    while (ev && !b->destroyed) {
        bus_event *next = ev->next;
        switch (ev->kind) {
        case BUS_EV_MESSAGE:
            if (b->cb.on_message)
                b->cb.on_message(b->ctx, ev->env);
            else {
                envelope_free(ev->env);
                free(ev->env);
            }
            atomic_fetch_sub(&b->in_bytes, ev->cost);
            break;
        case BUS_EV_STATE:
            if (b->cb.on_state)
                b->cb.on_state(b->ctx, ev->flag);
            break;
        case BUS_EV_BOUND:
            if (b->cb.on_bound)
                b->cb.on_bound(b->ctx, ev->room, ev->flag);
            break;
        case BUS_EV_DONE:
            ev->done(ev->dctx, ev->flag);
            break;
        }
        free(ev);
        ev = next;
    }
    if (ev) {
        bus_free_events(ev);    /* a callback destroyed the bus */
        return;
    }
    /* The consumer waits for half the cap to be left (hysteresis: it does
     * not flap at the cap); eventfd_write is async-signal-safe and cheap. */
    if (!b->destroyed && atomic_load(&b->in_paused) && atomic_load(&b->in_bytes) <= b->in_max / 2)
        eventfd_write(b->efd, 1);
}

/* --- the loop's side ------------------------------------------------------------------ */

static void bus_on_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Free everything but the struct and the async handle. */
static void bus_release(bus *b)
{
    /* Done callbacks run in job order: settled ones first, then those
     * waiting for a confirm, then those never taken by the publisher. */
    bus_free_events(b->events);
    b->events = NULL;
    for (bus_job *j = b->pend; j; j = j->next)
        if (j->done)
            j->done(j->ctx, false);
    bus_free_jobs(b->pend);
    b->pend = NULL;
    for (bus_job *j = b->jobs; j; j = j->next)
        if (j->done)
            j->done(j->ctx, false);
    bus_free_jobs(b->jobs);
    b->jobs = NULL;
    while (b->reqs) {
        bus_req *next = b->reqs->next;
        free(b->reqs);
        b->reqs = next;
    }
    for (size_t i = 0; i < b->nrooms; i++)
        free(b->rooms[i]);
    free(b->rooms);
    if (b->efd >= 0)
        close(b->efd);
    if (b->pub_efd >= 0)
        close(b->pub_efd);
    pthread_mutex_destroy(&b->pub_mu);
    pthread_mutex_destroy(&b->con_mu);
    pthread_mutex_destroy(&b->in_mu);
    addrlist_deinit(&b->nodes);
    free(b->vhost);
    free(b->user);
    free(b->password);
    free((char *)b->tls.ca);
    free((char *)b->tls.cert);
    free((char *)b->tls.key);
    free(b->server_id);
    free(b->xname);
    free(b->qname);
    free(b->squeue);
    free(b->squeue_type);
    buf_deinit(&b->batch);
    free(b->batch_envs);
    free(b->batch_jobs);
}

/* Join a thread, shutting its socket down if it has not finished by
 * `deadline` (CLOCK_REALTIME, for pthread_timedjoin_np). */
static void bus_join(pthread_t t, pthread_mutex_t *mu, const int *fd,
                     const struct timespec *deadline)
{
    if (pthread_timedjoin_np(t, NULL, deadline) == 0)
        return;
    pthread_mutex_lock(mu);
    if (*fd >= 0)
        shutdown(*fd, SHUT_RDWR);
    pthread_mutex_unlock(mu);
    pthread_join(t, NULL);
}

static void bus_stop_threads(bus *b)
{
    atomic_store(&b->stop, true);
    if (b->pub_efd >= 0)
        eventfd_write(b->pub_efd, 1);
    if (b->efd >= 0)
        eventfd_write(b->efd, 1);

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += (long)BUS_STOP_GRACE_MS * 1000000;
    deadline.tv_sec += deadline.tv_nsec / 1000000000;
    deadline.tv_nsec %= 1000000000;
    if (b->pub_started)
        bus_join(b->pub_thread, &b->pub_mu, &b->pub_fd, &deadline);
    if (b->con_started)
        bus_join(b->con_thread, &b->con_mu, &b->con_fd, &deadline);
    b->pub_started = b->con_started = false;
}

bus *bus_create(uv_loop_t *loop, const bus_config *cfg, const bus_callbacks *cb, void *ctx)
{
    bus *b = xcalloc(1, sizeof *b);
    size_t xl = strlen(cfg->exchange ? cfg->exchange : "") + 16;
    size_t ql = xl + strlen(cfg->server_id ? cfg->server_id : "") + 16;
    bool async_ok = false;

    b->loop = loop;
    if (cb)
        b->cb = *cb;
    b->ctx = ctx;
    b->efd = b->pub_efd = -1;
    b->pub_fd = b->con_fd = -1;
    b->jobs_tail = &b->jobs;
    b->pend_tail = &b->pend;
    b->reqs_tail = &b->reqs;
    b->events_tail = &b->events;
    atomic_init(&b->stop, false);
    atomic_init(&b->up, false);
    atomic_init(&b->pub_up, false);
    histogram_init(&b->confirm_hist);

    pthread_mutex_init(&b->pub_mu, NULL);
    pthread_mutex_init(&b->con_mu, NULL);
    pthread_mutex_init(&b->in_mu, NULL);

    b->vhost = xstrdup(cfg->vhost);
    b->user = xstrdup(cfg->user);
    b->password = xstrdup(cfg->password);
    b->tls = (amqptls_config){ cfg->tls.on, xstrdup(cfg->tls.ca ? cfg->tls.ca : ""),
                               xstrdup(cfg->tls.cert ? cfg->tls.cert : ""),
                               xstrdup(cfg->tls.key ? cfg->tls.key : "") };
    b->server_id = xstrdup(cfg->server_id ? cfg->server_id : "");
    b->dynamic = cfg->dynamic;
    b->xname = xmalloc(xl);
    snprintf(b->xname, xl, "%s.%s", cfg->exchange ? cfg->exchange : "",
             cfg->dynamic ? "direct" : "fanout");
    b->qname = xmalloc(ql + 9);
    b->qname_len = (size_t)snprintf(b->qname, ql, "%s.server.%s.", cfg->exchange ? cfg->exchange : "",
                                    b->server_id);
    b->heartbeat_s = cfg->heartbeat_s > 0 ? cfg->heartbeat_s : 0;
    b->backoff_min_ms = cfg->reconnect_min_ms;
    b->backoff_max_ms = cfg->reconnect_max_ms;
    if (b->backoff_max_ms < b->backoff_min_ms)
        b->backoff_max_ms = b->backoff_min_ms;
    b->max_queue = cfg->max_queue;
    b->in_max = cfg->inbound_max;
    b->squeue = xstrdup(cfg->storage_queue ? cfg->storage_queue : "");
    b->squeue_type = xstrdup(cfg->storage_queue_type);
    b->confirm_timeout_ms = cfg->confirm_timeout_ms;
    b->nack_retry_ms = cfg->nack_retry_ms;
    b->nack_reopen_ms = cfg->nack_reopen_ms;
    b->batch_max = cfg->batch_max;
    b->batch_linger_ms = cfg->batch_linger_ms > 0 ? cfg->batch_linger_ms : 0;
    b->room_batch_max = cfg->room_batch_max;
    b->room_batch_linger_ms = cfg->room_batch_linger_ms > 0 ? cfg->room_batch_linger_ms : 0;
    buf_init(&b->batch);
    size_t slots = (size_t)(b->batch_max > b->room_batch_max ? b->batch_max : b->room_batch_max);
    b->batch_envs = xcalloc(slots, sizeof *b->batch_envs);
    b->batch_jobs = xcalloc(slots, sizeof *b->batch_jobs);

    char why[200];
    if (addrlist_parse(&b->nodes, cfg->host, cfg->port, why, sizeof why) < 0) {
        log_error("bus_config", "detail=\"bus.host: %s\"", why);
        goto fail;
    }
    /* Both connections start at the same node, a different one on each
     * server, so that a cluster's clients spread over its nodes. */
    b->first_node = addrlist_start(&b->nodes, (uint64_t)(uintptr_t)b ^ clock_us());
    if (!cfg->exchange || !*cfg->exchange || !*b->server_id || !*b->squeue) {
        log_error("bus_config", "detail=\"exchange, storage queue and server_id are required\"");
        goto fail;
    }
    b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    b->pub_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->efd < 0 || b->pub_efd < 0) {
        log_error("bus_create", "detail=\"eventfd: %s\"", strerror(errno));
        goto fail;
    }
    if (uv_async_init(loop, &b->async, bus_on_async) != 0) {
        log_error("bus_create", "detail=\"uv_async_init failed\"");
        goto fail;
    }
    b->async.data = b;
    async_ok = true;
    if (pthread_create(&b->pub_thread, NULL, bus_pub_main, b) != 0) {
        log_error("bus_create", "detail=\"cannot start the publisher thread\"");
        goto fail;
    }
    b->pub_started = true;
    if (pthread_create(&b->con_thread, NULL, bus_con_main, b) != 0) {
        log_error("bus_create", "detail=\"cannot start the consumer thread\"");
        goto fail;
    }
    b->con_started = true;
    return b;

fail:
    bus_stop_threads(b);
    bus_release(b);
    if (async_ok)
        uv_close((uv_handle_t *)&b->async, bus_on_closed);
    else
        free(b);
    return NULL;
}

void bus_destroy(bus *b)
{
    if (!b)
        return;
    b->destroyed = true;
    bus_stop_threads(b);
    bus_release(b);
    uv_close((uv_handle_t *)&b->async, bus_on_closed);
}

int bus_publish(bus *b, const envelope *env, bool room_copy, bus_done_fn done, void *ctx)
{
    if (!atomic_load(&b->pub_up) || !env->room || !env->id || !env->origin)
        return -1;
    size_t rl = strlen(env->room);
    if (!rl || rl > 255)            /* AMQP shortstr: the routing key */
        return -1;
    if (b->max_queue && bus_pending(b) >= b->max_queue)
        return -1;

    bus_job *j = xcalloc(1, sizeof *j);
    envelope_copy(&j->env, env);
    j->room_copy = room_copy;
    j->done = done;
    j->ctx = ctx;
    j->queued_us = clock_us();
    j->deadline_ms = j->queued_us / 1000 + (uint64_t)b->confirm_timeout_ms;

    pthread_mutex_lock(&b->pub_mu);
    *b->jobs_tail = j;
    b->jobs_tail = &j->next;
    b->njobs++;
    atomic_store(&b->queued, b->njobs);
    pthread_mutex_unlock(&b->pub_mu);
    eventfd_write(b->pub_efd, 1);
    return 0;
}

static void bus_request(bus *b, const char *room, bool bind)
{
    size_t n = strlen(room);
    bus_req *r = xmalloc(sizeof *r + n + 1);
    r->next = NULL;
    r->bind = bind;
    memcpy(r->room, room, n + 1);

    pthread_mutex_lock(&b->con_mu);
    *b->reqs_tail = r;
    b->reqs_tail = &r->next;
    pthread_mutex_unlock(&b->con_mu);
    eventfd_write(b->efd, 1);
}

void bus_bind(bus *b, const char *room)
{
    size_t n = strlen(room);
    if (!b->dynamic || !n || n > 255) {
        /* fanout: already bound to everything; a bad name can never be */
        bus_post_bound(b, room, !b->dynamic);
        return;
    }
    bus_request(b, room, true);
}

void bus_unbind(bus *b, const char *room)
{
    size_t n = strlen(room);
    if (!b->dynamic || !n || n > 255)
        return;
    bus_request(b, room, false);
}

size_t bus_pending(const bus *b)
{
    return (size_t)(atomic_load(&b->queued) + atomic_load(&b->unconfirmed));
}

bool bus_can_publish(const bus *b)
{
    return atomic_load(&b->pub_up);
}

bool bus_ready(const bus *b)
{
    return atomic_load(&b->up);
}

const histogram *bus_confirm_histogram(const bus *b)
{
    return &b->confirm_hist;
}

void bus_get_stats(const bus *b, bus_stats *out)
{
    out->published = atomic_load_explicit(&b->published, memory_order_relaxed);
    out->publish_failures = atomic_load_explicit(&b->publish_failures, memory_order_relaxed);
    out->received = atomic_load_explicit(&b->received, memory_order_relaxed);
    out->dropped_own = atomic_load_explicit(&b->dropped_own, memory_order_relaxed);
    out->malformed = atomic_load_explicit(&b->malformed, memory_order_relaxed);
    out->reconnects = atomic_load_explicit(&b->reconnects, memory_order_relaxed);
    out->queued = atomic_load_explicit(&b->queued, memory_order_relaxed);
    out->unconfirmed = atomic_load_explicit(&b->unconfirmed, memory_order_relaxed);
    out->stored = atomic_load_explicit(&b->stored, memory_order_relaxed);
    out->store_failures = atomic_load_explicit(&b->store_failures, memory_order_relaxed);
    out->republished = atomic_load_explicit(&b->republished, memory_order_relaxed);
    out->nacks = atomic_load_explicit(&b->nacks, memory_order_relaxed);
    out->nack_reopens = atomic_load_explicit(&b->nack_reopens, memory_order_relaxed);
    out->storage_publishes = atomic_load_explicit(&b->storage_publishes, memory_order_relaxed);
    out->confirm_us_sum = atomic_load_explicit(&b->confirm_us_sum, memory_order_relaxed);
    out->inbound_bytes = atomic_load_explicit(&b->in_bytes, memory_order_relaxed);
    out->inbound_pauses = atomic_load_explicit(&b->in_pauses, memory_order_relaxed);
    out->inbound_paused = atomic_load_explicit(&b->in_paused, memory_order_relaxed);
}
