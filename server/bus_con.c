/* bus_con.c — the bus's consumer thread: this server's queue and bindings.
 *
 * The consumer owns the other connection: channel 1 carries basic.consume
 * (no-ack) on this server's queue, channel 2 the RPCs (declarations,
 * queue.bind/unbind) so that deliveries arriving during an RPC are queued
 * by rabbitmq-c for channel 1 instead of breaking the RPC. It poll()s the
 * socket and an eventfd (bind requests, stop); whenever the socket is
 * readable or rabbitmq-c holds buffered data it calls amqp_consume_message
 * with a zero timeout until that times out (at most BUS_DRAIN_MAX per
 * round, so requests and stop are never starved). Each delivery is decoded
 * (one envelope, or a batch: lib/envbatch.h), our own messages are dropped
 * (local bypass: the publisher already delivered them), and the rest go to
 * the loop through the inbound queue, one chain per round.
 *
 * Bindings (dynamic mode). The consumer thread alone keeps the set of rooms
 * this server wants (a sorted array). While connected, every room in it is
 * bound. A bind request adds the room and, when connected, binds it and
 * reports on_bound(room, ok); when not connected (or when the RPC breaks the
 * connection), it reports on_bound(room, false) but keeps the room, which is
 * bound with the rest of the set on the next connect, before the link is
 * reported up: on_state(true) therefore means "every requested binding is in
 * place". In fanout mode bus_bind posts on_bound(room, true) to the inbound
 * queue directly; callbacks never run inside bus_bind.
 *
 * The queue. It is exclusive and lives on the node it was declared on:
 * when that node dies, the queue dies with it and is declared again, with
 * its bindings, on the node the consumer reaches next. Each connection
 * declares its queue under a new name (a random suffix): the old queue may
 * live on for a while on a node the cluster has not yet given up on (a cut
 * link: about a minute, net_ticktime), still owned by our old connection,
 * and a redeclaration under its name would fail with RESOURCE_LOCKED until
 * then.
 */
#include "bus_internal.h"

#include "clock.h"
#include "envbatch.h"
#include "log.h"
#include "mem.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define BUS_DRAIN_MAX       256      /* deliveries per consumer round */

static bool bus_rooms_find(const bus *b, const char *room, size_t *pos)
{
    size_t lo = 0, hi = b->nrooms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(b->rooms[mid], room);
        if (!c) {
            *pos = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return false;
}

static void bus_rooms_add(bus *b, const char *room)
{
    size_t pos;
    if (bus_rooms_find(b, room, &pos))
        return;
    if (b->nrooms == b->rooms_cap) {
        b->rooms_cap = b->rooms_cap ? b->rooms_cap * 2 : 16;
        b->rooms = xrealloc(b->rooms, b->rooms_cap * sizeof *b->rooms);
    }
    memmove(b->rooms + pos + 1, b->rooms + pos, (b->nrooms - pos) * sizeof *b->rooms);
    b->rooms[pos] = xstrdup(room);
    b->nrooms++;
}

static bool bus_rooms_remove(bus *b, const char *room)
{
    size_t pos;
    if (!bus_rooms_find(b, room, &pos))
        return false;
    free(b->rooms[pos]);
    memmove(b->rooms + pos, b->rooms + pos + 1, (b->nrooms - pos - 1) * sizeof *b->rooms);
    b->nrooms--;
    return true;
}

static int bus_con_bind(bus *b, bus_conn *c, const char *key, bool bind)
{
    if (bind) {
        amqp_queue_bind(c->conn, BUS_CH_RPC, amqp_cstring_bytes(b->qname),
                        amqp_cstring_bytes(b->xname), amqp_cstring_bytes(key),
                        amqp_empty_table);
        return bus_rpc_check(c, "queue.bind");
    }
    amqp_queue_unbind(c->conn, BUS_CH_RPC, amqp_cstring_bytes(b->qname),
                      amqp_cstring_bytes(b->xname), amqp_cstring_bytes(key),
                      amqp_empty_table);
    return bus_rpc_check(c, "queue.unbind");
}

static int bus_con_connect(bus *b, bus_conn *c)
{
    if (bus_conn_open(b, c) < 0)
        return -1;
    amqp_channel_open(c->conn, BUS_CH_MAIN);
    if (bus_rpc_check(c, "channel.open") < 0)
        return -1;
    amqp_channel_open(c->conn, BUS_CH_RPC);
    if (bus_rpc_check(c, "channel.open") < 0)
        return -1;
    if (bus_declare_exchange(b, c, BUS_CH_RPC) < 0)
        return -1;
    /* A new name on every connection: the old queue may still exist on a
     * node that is cut off but not yet known to be down, and it stays
     * locked to our old connection until the cluster gives up on that node
     * (net_ticktime, about a minute); a new name is never locked. The old
     * queue, unconsumed, dies with its connection. */
    uint32_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce)
        nonce = (uint32_t)clock_us() ^ (uint32_t)getpid();
    snprintf(b->qname + b->qname_len, 9, "%08x", nonce);
    amqp_queue_declare(c->conn, BUS_CH_RPC, amqp_cstring_bytes(b->qname), 0, 0, 1, 1,
                       amqp_empty_table);
    if (bus_rpc_check(c, "queue.declare") < 0)
        return -1;
    if (!b->dynamic) {
        if (bus_con_bind(b, c, "", true) < 0)
            return -1;
    } else {
        for (size_t i = 0; i < b->nrooms; i++)
            if (bus_con_bind(b, c, b->rooms[i], true) < 0)
                return -1;
    }
    amqp_basic_consume(c->conn, BUS_CH_MAIN, amqp_cstring_bytes(b->qname), amqp_empty_bytes,
                       0, 1, 0, amqp_empty_table);
    return bus_rpc_check(c, "basic.consume");
}

/* Apply queued bind/unbind requests. Returns -1 when an RPC broke the
 * connection (later binds are then reported failed, but kept). */
static int bus_con_requests(bus *b, bus_conn *c)
{
    pthread_mutex_lock(&b->con_mu);
    bus_req *r = b->reqs;
    b->reqs = NULL;
    b->reqs_tail = &b->reqs;
    pthread_mutex_unlock(&b->con_mu);

    int rc = 0;
    while (r) {
        bus_req *next = r->next;
        if (r->bind) {
            bus_rooms_add(b, r->room);
            bool ok = false;
            if (c->conn && rc == 0) {
                rc = bus_con_bind(b, c, r->room, true);
                ok = rc == 0;
            }
            bus_post_bound(b, r->room, ok);
        } else if (bus_rooms_remove(b, r->room) && c->conn && rc == 0) {
            rc = bus_con_bind(b, c, r->room, false);
        }
        free(r);
        r = next;
    }
    return rc;
}

static void bus_drain_efd(bus *b)
{
    bus_drain_fd(b->efd);
}

/* Back off for ms, serving requests (not connected) and stop meanwhile. */
static void bus_con_sleep(bus *b, bus_conn *c, int ms)
{
    uint64_t until = clock_ms() + (uint64_t)ms;
    while (!bus_stopping(b)) {
        uint64_t now = clock_ms();
        if (now >= until)
            break;
        struct pollfd p = { .fd = b->efd, .events = POLLIN };
        if (poll(&p, 1, (int)(until - now)) > 0)
            bus_drain_efd(b);
        bus_con_requests(b, c);
    }
}

static void bus_con_malformed(bus *b, bus_conn *c, amqp_envelope_t *d, const char *why)
{
    bus_add(&b->malformed, 1);
    if (!c->warned_malformed) {
        char q[160];
        c->warned_malformed = true;
        log_warn("bus_malformed", "routing_key=%s reason=\"%s\" detail=\"first on this connection\"",
                 log_q(q, sizeof q, d->routing_key.bytes, d->routing_key.len), why);
    }
}

static void bus_con_append(bus *b, envelope *env, bus_event ***tail);

/* One delivery: decode (a single message or a batch, lib/envbatch.h),
 * filter, append to the events for the loop. */
static void bus_con_deliver(bus *b, bus_conn *c, amqp_envelope_t *d, bus_event ***tail)
{
    const char *why = NULL;
    if (envbatch_is(&d->message.properties)) {
        envelope *envs;
        size_t n;
        if (envbatch_decode(d->message.body, &envs, &n, &why) < 0) {
            bus_con_malformed(b, c, d, why);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            envelope *env = xmalloc(sizeof *env);
            *env = envs[i];              /* takes the fields */
            bus_con_append(b, env, tail);
        }
        free(envs);
        return;
    }
    envelope *env = xmalloc(sizeof *env);
    if (envelope_from_amqp(&d->message.properties, d->message.body, env, &why) < 0) {
        bus_con_malformed(b, c, d, why);
        free(env);
        return;
    }
    bus_con_append(b, env, tail);
}

/* Filter one decoded envelope (ours coming back) and queue it for the
 * loop; takes env. */
static void bus_con_append(bus *b, envelope *env, bus_event ***tail)
{
    if (!strcmp(env->origin, b->server_id)) {
        bus_add(&b->dropped_own, 1);
        envelope_free(env);
        free(env);
        return;
    }
    bus_add(&b->received, 1);
    bus_event *ev = xcalloc(1, sizeof *ev);
    ev->kind = BUS_EV_MESSAGE;
    ev->env = env;
    /* What the event holds, near enough: the structs, the body, and the
     * header fields (their AMQP size bounds their decoded size). */
    ev->cost = sizeof *ev + sizeof *env + env->body_len + envelope_amqp_header_size(env);
    atomic_fetch_add(&b->in_bytes, ev->cost);
    **tail = ev;
    *tail = &ev->next;
}

/* Consume what is available now. Returns -1 when the connection failed. */
static int bus_con_drain(bus *b, bus_conn *c)
{
    bus_event *first = NULL, **tail = &first;
    int rc = 0;

    for (int n = 0; n < BUS_DRAIN_MAX; n++) {
        if (b->in_max && atomic_load(&b->in_bytes) >= b->in_max)
            break;              /* bus_con_paused takes it from here */
        struct timeval zero = { 0, 0 };
        amqp_envelope_t d;
        amqp_maybe_release_buffers(c->conn);
        amqp_rpc_reply_t r = amqp_consume_message(c->conn, &d, &zero, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            bus_con_deliver(b, c, &d, &tail);
            amqp_destroy_envelope(&d);
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            break;
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            amqp_frame_t f;
            int st = amqp_simple_wait_frame(c->conn, &f);
            if (st != AMQP_STATUS_OK) {
                snprintf(c->why, sizeof c->why, "read: %s", amqp_error_string2(st));
                rc = -1;
                break;
            }
            if (bus_conn_frame(c, &f) < 0) {
                rc = -1;
                break;
            }
            continue;
        }
        bus_why_reply(c, "consume", r);
        rc = -1;
        break;
    }
    bus_post_chain(b, first, tail);
    return rc;
}

/* Backpressure (bus_internal.h, in_bytes): true while the consumer must
 * not read. Pauses at the cap, resumes at half of it. */
static bool bus_con_paused(bus *b)
{
    if (!b->in_max)
        return false;
    uint64_t pending = atomic_load(&b->in_bytes);
    if (atomic_load(&b->in_paused)) {
        if (pending > b->in_max / 2)
            return true;
        atomic_store(&b->in_paused, false);
        log_info("bus_inbound_resumed", "pending_bytes=%llu", (unsigned long long)pending);
        return false;
    }
    if (pending < b->in_max)
        return false;
    atomic_store(&b->in_paused, true);
    bus_add(&b->in_pauses, 1);
    log_warn("bus_inbound_paused", "pending_bytes=%llu max=%zu detail=\"the loop is behind: "
             "deliveries wait in RabbitMQ until it catches up\"", (unsigned long long)pending, b->in_max);
    return true;
}

/* Paused: read nothing (the socket fills, TCP closes its window, RabbitMQ
 * holds the rest in our queue) and serve no bind request (their RPC replies
 * would have rabbitmq-c queue the deliveries behind them in memory), but
 * keep the connection alive: rabbitmq-c sends heartbeats only when called,
 * so send our own each tick. Returns -1 when the connection failed. */
static int bus_con_wait(bus *b, bus_conn *c)
{
    struct pollfd p = { .fd = b->efd, .events = POLLIN };
    if (poll(&p, 1, c->tick_ms) > 0)
        bus_drain_efd(b);
    if (b->heartbeat_s <= 0)
        return 0;
    amqp_frame_t hb = { .frame_type = AMQP_FRAME_HEARTBEAT, .channel = 0 };
    int st = amqp_send_frame(c->conn, &hb);
    if (st != AMQP_STATUS_OK) {
        snprintf(c->why, sizeof c->why, "heartbeat: %s", amqp_error_string2(st));
        return -1;
    }
    return 0;
}

void *bus_con_main(void *arg)
{
    bus *b = arg;
    bus_conn c = { .name = "consumer", .which = BUS_CON, .mu = &b->con_mu,
                   .fd_slot = &b->con_fd, .node = b->first_node };
    backoff_init(&c.retry, b->backoff_min_ms, b->backoff_max_ms, (uintptr_t)b >> 4);

    while (!bus_stopping(b)) {
        if (!c.conn) {
            if (bus_con_connect(b, &c) < 0) {
                bus_conn_down(b, &c);
                bus_con_sleep(b, &c, backoff_next(&c.retry));
                continue;
            }
            bus_conn_up(b, &c);
        }

        if (bus_con_paused(b)) {
            if (bus_con_wait(b, &c) < 0) {
                bus_conn_down(b, &c);
                bus_con_sleep(b, &c, backoff_next(&c.retry));
            }
            continue;
        }

        bool more = amqp_data_in_buffer(c.conn) || amqp_frames_enqueued(c.conn);
        struct pollfd p[2] = {
            { .fd = amqp_socket_get_sockfd(amqp_get_socket(c.conn)), .events = POLLIN },
            { .fd = b->efd, .events = POLLIN },
        };
        if (poll(p, 2, more ? 0 : c.tick_ms) > 0 && p[1].revents)
            bus_drain_efd(b);
        if (bus_stopping(b))
            break;
        /* Drain even after a quiet poll: the zero-timeout read is what sends
         * our heartbeat and notices a missing one from the broker. */
        if (bus_con_requests(b, &c) < 0 || bus_con_drain(b, &c) < 0) {
            bus_conn_down(b, &c);
            bus_con_sleep(b, &c, backoff_next(&c.retry));
        }
    }
    bus_conn_close(&c);
    return NULL;
}
