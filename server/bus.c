/* bus.c — RabbitMQ for lectern-server: two threads, two connections, queues.
 *
 * rabbitmq-c blocks, so nothing here runs it on the event loop. Three
 * threads meet in this file:
 *
 *   the loop        bus_publish/bind/unbind only copy their argument into a
 *                   queue under a mutex and wake a thread; bus_on_async
 *                   drains the inbound queue and runs the callbacks.
 *   the publisher   owns one connection (channel 1, in confirm mode). It
 *                   poll()s its socket and an eventfd (new jobs, stop) for at
 *                   most `tick` (<= heartbeat/2, <= 1 s, or less when a
 *                   confirm deadline comes first), reads every frame the
 *                   broker sent without blocking (confirms, heartbeats,
 *                   connection.close; a dead socket shows here even when
 *                   idle), takes the queued jobs and publishes each: the room
 *                   copy (if wanted) to the exchange, the storage copy to the
 *                   storage queue. Settled jobs at the head of its list are
 *                   handed back to the loop in order.
 *   the consumer    owns the other connection: channel 1 carries basic.consume
 *                   (no-ack) on this server's queue, channel 2 the RPCs
 *                   (declarations, queue.bind/unbind) so that deliveries
 *                   arriving during an RPC are queued by rabbitmq-c for
 *                   channel 1 instead of breaking the RPC. It poll()s the
 *                   socket and an eventfd (bind requests, stop); whenever the
 *                   socket is readable or rabbitmq-c holds buffered data it
 *                   calls amqp_consume_message with a zero timeout until that
 *                   times out (at most BUS_DRAIN_MAX per round, so requests
 *                   and stop are never starved).
 *
 * Bus state. Each thread sets its link (up = connected and its topology
 * declared) under in_mu; the bus is up when both links are. Only changes of
 * the combined state are queued for on_state, and `up` (an atomic read by
 * bus_ready and bus_publish) changes in the same critical section, so the
 * loop sees on_state(false) only after bus_publish already refuses work.
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
 * Reconnects. Every failure is followed by a wait of reconnect_min_ms plus a
 * uniformly random share of (cap - reconnect_min_ms), where cap doubles from
 * reconnect_min_ms up to reconnect_max_ms with each consecutive failure
 * (full jitter above a floor, so a restarted broker is not hit by every
 * server at once, nor in a tight loop). The wait is a poll on the thread's
 * eventfd, so stop interrupts it.
 * After a reconnect the exchange, the queue and all bindings are declared
 * again (the queue is exclusive and died with the old connection).
 *
 * Nodes. bus.host lists the nodes of a RabbitMQ cluster (or one broker).
 * Both connections start at one node picked per process (addrlist_start),
 * and each moves to the next node of the list after every failure, so a
 * dead node costs each connection one failed attempt. The consumer's queue
 * is exclusive and lives on the node it was declared on: when that node
 * dies, the queue dies with it and is declared again, with its bindings, on
 * the node the consumer reaches next. Each connection declares its queue
 * under a new name (a random suffix): the old queue may live on for a while
 * on a node the cluster has not yet given up on (a cut link: about a
 * minute, net_ticktime), still owned by our old connection, and a
 * redeclaration under its name would fail with RESOURCE_LOCKED until then.
 * The storage queue is durable (a quorum
 * queue in a cluster), so the publisher may reach it through any node.
 * A node that died without a FIN or RST (power, link, SIGSTOP) is noticed
 * by rabbitmq-c's heartbeat deadline: no frame for two heartbeat intervals
 * fails the read, and a send that blocks on a full socket buffer gives up at
 * the same deadline. Login is bounded by BUS_HANDSHAKE_TIMEOUT.
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
 *
 * Logging: one line per connection state change (bus_up, bus_down with the
 * reason); repeated failed attempts are debug lines; a malformed delivery is
 * logged once per connection. Nothing is logged per message.
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
#include "bus.h"

#include "addrlist.h"
#include "backoff.h"
#include "clock.h"
#include "envbatch.h"
#include "log.h"
#include "mem.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUS_FRAME_MAX       131072
#define BUS_CONNECT_TIMEOUT 2        /* s: TCP connect */
#define BUS_HANDSHAKE_TIMEOUT 5      /* s: AMQP handshake and login */
#define BUS_RPC_TIMEOUT     10       /* s: any RPC; the connection dies after it */
#define BUS_DRAIN_MAX       256      /* deliveries per consumer round */
#define BUS_STOP_GRACE_MS   500      /* polite close time before shutdown(2) */
#define BUS_CH_MAIN         1
#define BUS_CH_RPC          2
#define BUS_BATCH_BYTES     (16u << 20)   /* a batch grows no further (see Encodings) */

enum { BUS_PUB, BUS_CON };
enum { BUS_EV_MESSAGE, BUS_EV_STATE, BUS_EV_BOUND, BUS_EV_DONE };

typedef struct bus_job {
    struct bus_job *next;
    envelope env;
    bus_done_fn done;
    void *ctx;
    uint64_t queued_us;          /* monotonic, when bus_publish queued it */
    uint64_t deadline_ms;        /* monotonic: no confirm by then fails it */
    uint64_t tag;                /* storage copy's delivery tag on this connection; 0: unsent */
    bool fanout;                 /* the room copy is still to be sent */
    bool resend;                 /* sent on an earlier connection */
    bool nacked;                 /* refused once: its tag may be out of list order */
    uint64_t retry_ms;           /* monotonic: a nacked copy is not sent before */
    int8_t result;               /* 0 waiting, 1 confirmed, -1 failed */
} bus_job;

typedef struct bus_req {
    struct bus_req *next;
    bool bind;
    char room[];
} bus_req;

typedef struct bus_event {
    struct bus_event *next;
    int kind;
    bool flag;                   /* state: up; bound: ok */
    envelope *env;               /* message */
    bus_done_fn done;            /* done: the job's callback */
    void *dctx;
    char room[];                 /* bound */
} bus_event;

/* One side's connection, used by its thread only. */
typedef struct bus_conn {
    const char *name;            /* "publisher" | "consumer" */
    int which;                   /* BUS_PUB | BUS_CON */
    pthread_mutex_t *mu;         /* guards *fd_slot */
    int *fd_slot;
    size_t node;                 /* index in b->nodes of the node tried or in use */
    amqp_connection_state_t conn;
    bool no_close;               /* teardown must not send connection.close: not
                                  * logged in yet, or the broker closed it */
    bool logged_down;            /* bus_down already logged for this outage */
    bool warned_malformed;
    backoff retry;               /* reconnect delays; .attempt counts failures */
    int tick_ms;
    char why[192];
} bus_conn;

struct bus {
    uv_loop_t *loop;
    uv_async_t async;            /* threads -> loop; its close frees the bus */
    bus_callbacks cb;
    void *ctx;
    bool destroyed;              /* loop thread only */

    addrlist nodes;              /* the broker's nodes, as configured */
    size_t first_node;           /* where both connections start */
    char *vhost, *user, *password, *server_id;
    char *xname;                 /* "<exchange>.fanout" | "<exchange>.direct" */
    char *qname;                 /* "<exchange>.server.<server_id>.<8 hex>", a new
                                  * suffix on every consumer connection */
    size_t qname_len;            /* strlen up to and including the last '.' */
    char *squeue;                /* storage queue */
    char *squeue_type;           /* "classic" | "quorum" */
    int confirm_timeout_ms;
    int nack_retry_ms;           /* a nacked storage copy goes again after this */
    uint64_t retry_wake_ms;      /* publisher thread: earliest retry_ms waiting, 0: none */
    int batch_max;               /* storage copies per publish */
    int batch_linger_ms;
    int room_batch_max;          /* room copies per publish */
    int room_batch_linger_ms;
    buf batch;                   /* publisher thread: a batch body being built */
    const envelope **batch_envs; /* publisher thread: a batch being built, */
    bus_job **batch_jobs;        /* and its jobs; max(batch_max, room_batch_max) slots each */
    int heartbeat_s;
    int backoff_min_ms, backoff_max_ms;
    size_t max_queue;
    bool dynamic;

    atomic_bool stop;
    atomic_bool up;
    atomic_bool pub_up;          /* the publisher's link alone */

    pthread_t pub_thread;
    bool pub_started;
    pthread_mutex_t pub_mu;      /* jobs, njobs, pub_fd */
    int pub_efd;                 /* wakes the publisher */
    bus_job *jobs, **jobs_tail;  /* queued by the loop */
    size_t njobs;
    int pub_fd;
    bus_job *pend, **pend_tail;  /* publisher thread only: taken, not yet done, in order */
    size_t npend;
    uint64_t next_tag;           /* last delivery tag used on the publisher's channel */

    pthread_t con_thread;
    bool con_started;
    pthread_mutex_t con_mu;      /* reqs, con_fd */
    int efd;                     /* wakes the consumer */
    bus_req *reqs, **reqs_tail;
    int con_fd;
    char **rooms;                /* consumer thread only: sorted, unique */
    size_t nrooms, rooms_cap;

    pthread_mutex_t in_mu;       /* events, link, ever_up, up changes */
    bus_event *events, **events_tail;
    bool link[2];
    bool ever_up;

    _Atomic uint64_t published, publish_failures, received, dropped_own,
                     malformed, reconnects, queued, unconfirmed, stored, store_failures,
                     republished, confirm_us_sum, storage_publishes, nacks;
    histogram confirm_hist;          /* queued -> confirmed, per storage copy */
};

/* --- small helpers ------------------------------------------------------- */

static void bus_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static bool bus_stopping(const bus *b)
{
    return atomic_load(&b->stop);
}

static void bus_copy_reply_text(char *out, size_t n, const char *what, unsigned code,
                                amqp_bytes_t text)
{
    int len = text.len > 120 ? 120 : (int)text.len;
    snprintf(out, n, "%s: %u %.*s", what, code, len, (const char *)text.bytes);
}

/* Describe a failed RPC reply in c->why. A connection.close from the server
 * is answered with close-ok here, so the teardown must not send close. */
static void bus_why_reply(bus_conn *c, const char *what, amqp_rpc_reply_t r)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        snprintf(c->why, sizeof c->why, "%s: ok", what);
        break;
    case AMQP_RESPONSE_NONE:
        snprintf(c->why, sizeof c->why, "%s: no reply", what);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(c->why, sizeof c->why, "%s: %s", what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            bus_copy_reply_text(c->why, sizeof c->why, what, m->reply_code, m->reply_text);
            amqp_connection_close_ok_t ok = { 0 };
            amqp_send_method(c->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            c->no_close = true;
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            bus_copy_reply_text(c->why, sizeof c->why, what, m->reply_code, m->reply_text);
        } else {
            snprintf(c->why, sizeof c->why, "%s: unexpected method 0x%08x", what,
                     (unsigned)r.reply.id);
        }
        break;
    }
}

static int bus_rpc_check(bus_conn *c, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    bus_why_reply(c, what, r);
    return -1;
}

/* A method frame that is not what the thread waits for. Returns -1 when the
 * connection is no longer usable (reason in c->why). */
static int bus_conn_frame(bus_conn *c, const amqp_frame_t *f)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return 0;       /* a stray header/body frame: nothing to do with it */
    switch (f->payload.method.id) {
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *m = f->payload.method.decoded;
        bus_copy_reply_text(c->why, sizeof c->why, "connection.close", m->reply_code,
                            m->reply_text);
        amqp_connection_close_ok_t ok = { 0 };
        amqp_send_method(c->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        c->no_close = true;
        return -1;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *m = f->payload.method.decoded;
        bus_copy_reply_text(c->why, sizeof c->why, "channel.close", m->reply_code,
                            m->reply_text);
        return -1;
    }
    case AMQP_BASIC_CANCEL_METHOD:
        snprintf(c->why, sizeof c->why, "consumer cancelled by the broker");
        return -1;
    case AMQP_CONNECTION_BLOCKED_METHOD:
        log_warn("bus_blocked", "conn=%s", c->name);
        return 0;
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        log_info("bus_unblocked", "conn=%s", c->name);
        return 0;
    default:
        return 0;
    }
}

/* --- inbound queue (threads -> loop) ----------------------------------------- */

/* Append a chain of events (first..*last) and wake the loop. */
static void bus_post_chain(bus *b, bus_event *first, bus_event **last_next)
{
    if (!first)
        return;
    pthread_mutex_lock(&b->in_mu);
    *b->events_tail = first;
    b->events_tail = last_next;
    pthread_mutex_unlock(&b->in_mu);
    uv_async_send(&b->async);
}

static void bus_post_bound(bus *b, const char *room, bool ok)
{
    size_t n = strlen(room);
    bus_event *ev = xcalloc(1, sizeof *ev + n + 1);
    ev->kind = BUS_EV_BOUND;
    ev->flag = ok;
    memcpy(ev->room, room, n + 1);
    bus_post_chain(b, ev, &ev->next);
}

/* Set one link's state; queue on_state when the combined state changes. */
static void bus_set_link(bus *b, int which, bool up)
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
    bus_free_events(ev);        /* a callback destroyed the bus */
}

/* --- connections -------------------------------------------------------------- */

static void bus_conn_publish_fd(bus_conn *c, int fd)
{
    pthread_mutex_lock(c->mu);
    *c->fd_slot = fd;
    pthread_mutex_unlock(c->mu);
}

static void bus_conn_close(bus_conn *c)
{
    if (!c->conn)
        return;
    if (!c->no_close)
        amqp_connection_close(c->conn, AMQP_REPLY_SUCCESS);
    bus_conn_publish_fd(c, -1);
    amqp_destroy_connection(c->conn);
    c->conn = NULL;
}

/* TCP connect and login. Returns 0, or -1 with c->why (c->conn may be set:
 * the caller closes it). */
static int bus_conn_open(bus *b, bus_conn *c)
{
    c->no_close = true;
    c->warned_malformed = false;
    c->conn = amqp_new_connection();
    if (!c->conn) {
        snprintf(c->why, sizeof c->why, "amqp_new_connection failed");
        return -1;
    }
    amqp_socket_t *sock = amqp_tcp_socket_new(c->conn);
    if (!sock) {
        snprintf(c->why, sizeof c->why, "amqp_tcp_socket_new failed");
        return -1;
    }
    struct timeval tv = { BUS_CONNECT_TIMEOUT, 0 };
    const addrlist_entry *node = &b->nodes.v[c->node];
    int rc = amqp_socket_open_noblock(sock, node->host, node->port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(c->why, sizeof c->why, "connect: %s", amqp_error_string2(rc));
        return -1;
    }
    /* From here on bus_destroy may shut the socket down, unless it has
     * already passed that point: then give up now. */
    pthread_mutex_lock(c->mu);
    if (!bus_stopping(b))
        *c->fd_slot = amqp_socket_get_sockfd(sock);
    pthread_mutex_unlock(c->mu);
    if (bus_stopping(b)) {
        snprintf(c->why, sizeof c->why, "stopping");
        return -1;
    }

    char cname[160];
    snprintf(cname, sizeof cname, "lectern %s %s", b->server_id, c->name);
    amqp_table_entry_t pe[1];
    pe[0].key = amqp_cstring_bytes("connection_name");
    pe[0].value.kind = AMQP_FIELD_KIND_UTF8;
    pe[0].value.value.bytes = amqp_cstring_bytes(cname);
    amqp_table_t props = { 1, pe };
    /* A node that accepts TCP but never answers (stopped, overloaded) must
     * not hold the thread for rabbitmq-c's default 12 s. */
    struct timeval hs = { BUS_HANDSHAKE_TIMEOUT, 0 };
    amqp_set_handshake_timeout(c->conn, &hs);
    amqp_rpc_reply_t r = amqp_login_with_properties(c->conn, b->vhost, 0, BUS_FRAME_MAX,
                                                    b->heartbeat_s, &props,
                                                    AMQP_SASL_METHOD_PLAIN, b->user,
                                                    b->password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        bus_why_reply(c, "login", r);
        return -1;
    }
    c->no_close = false;
    struct timeval rpc = { BUS_RPC_TIMEOUT, 0 };
    amqp_set_rpc_timeout(c->conn, &rpc);

    int hb = amqp_get_heartbeat(c->conn);
    c->tick_ms = hb > 0 ? hb * 500 : 1000;
    if (c->which == BUS_PUB && c->tick_ms > 1000)
        c->tick_ms = 1000;          /* notice a closed connection soon even when idle */
    if (c->which == BUS_CON && c->tick_ms > 5000)
        c->tick_ms = 5000;
    return 0;
}

static int bus_declare_exchange(bus *b, bus_conn *c, amqp_channel_t ch)
{
    amqp_exchange_declare(c->conn, ch, amqp_cstring_bytes(b->xname),
                          amqp_cstring_bytes(b->dynamic ? "direct" : "fanout"),
                          0, 1, 0, 0, amqp_empty_table);
    return bus_rpc_check(c, "exchange.declare");
}

/* The storage queue, exactly as lectern-storage declares it. */
static int bus_declare_storage(bus *b, bus_conn *c, amqp_channel_t ch)
{
    amqp_table_entry_t e[1];
    amqp_table_t args = amqp_empty_table;
    if (strcmp(b->squeue_type, "classic") != 0) {
        /* Only a non-default type is named: RabbitMQ compares arguments on
         * redeclaration, and an absent x-queue-type means classic. */
        e[0].key = amqp_cstring_bytes("x-queue-type");
        e[0].value.kind = AMQP_FIELD_KIND_UTF8;
        e[0].value.value.bytes = amqp_cstring_bytes(b->squeue_type);
        args.num_entries = 1;
        args.entries = e;
    }
    amqp_queue_declare(c->conn, ch, amqp_cstring_bytes(b->squeue), 0, 1, 0, 0, args);
    return bus_rpc_check(c, "queue.declare (storage)");
}

static void bus_conn_up(bus *b, bus_conn *c)
{
    char node[300];
    backoff_reset(&c->retry);
    c->logged_down = false;
    addrlist_format(&b->nodes, c->node, node, sizeof node);
    log_info("bus_up", "conn=%s node=%s exchange=%s heartbeat=%d", c->name, node, b->xname,
             amqp_get_heartbeat(c->conn));
    bus_set_link(b, c->which, true);
}

/* The connection failed (or never came up): report, close, and move on to
 * the next node of the list, so that a cluster node that died (or cannot
 * be reached from here) costs one attempt, not every one. */
static void bus_conn_down(bus *b, bus_conn *c)
{
    char q[256], node[300];
    bus_set_link(b, c->which, false);
    bus_conn_close(c);
    if (bus_stopping(b))
        return;
    addrlist_format(&b->nodes, c->node, node, sizeof node);
    if (!c->logged_down) {
        c->logged_down = true;
        log_warn("bus_down", "conn=%s node=%s exchange=%s reason=%s", c->name, node, b->xname,
                 log_q(q, sizeof q, c->why, strlen(c->why)));
    } else {
        log_debug("bus_retry", "conn=%s node=%s attempt=%u reason=%s", c->name, node,
                  c->retry.attempt, log_q(q, sizeof q, c->why, strlen(c->why)));
    }
    c->node = (c->node + 1) % b->nodes.n;
}

/* --- publisher thread ------------------------------------------------------------ */

static void bus_drain_fd(int fd)
{
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof v);
    (void)n;    /* EAGAIN: nothing was pending */
}

static void bus_free_jobs(bus_job *j)
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
 * Send it again after nack_retry_ms, unless its deadline comes first. */
static void bus_pub_nacked(bus *b, bus_job *j, uint64_t now_ms)
{
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
            j->result = 1;
            bus_add(&b->confirm_us_sum, now - j->queued_us);
            histogram_observe_us(&b->confirm_hist, now - j->queued_us);
        } else {
            bus_pub_nacked(b, j, now / 1000);
        }
    }
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
    while (b->pend && b->pend->result && !(b->pend->result > 0 && b->pend->fanout)) {
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
        if (j->fanout)
            bus_add(&b->publish_failures, 1);
        j->fanout = false;
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
static bool bus_pub_wants_fanout(const bus_job *j)
{
    return j->fanout && j->result >= 0;
}

/* The first job whose room copy is still to be sent. */
static bus_job *bus_pub_first_fanout(const bus *b)
{
    for (bus_job *j = b->pend; j; j = j->next)
        if (bus_pub_wants_fanout(j))
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
        bus_job *first = bus_pub_first_fanout(b);
        if (!first)
            return 0;
        size_t n = 0, bytes = 0;
        bool full = false;
        for (bus_job *j = first; j && n < (size_t)b->room_batch_max; j = j->next) {
            if (!bus_pub_wants_fanout(j) || !bus_pub_same_batch(b, first, j))
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
            b->batch_jobs[i]->fanout = false;
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
    const bus_job *lingering[2] = { b->room_batch_linger_ms ? bus_pub_first_fanout(b) : NULL,
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

static void *bus_pub_main(void *arg)
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

/* --- consumer thread --------------------------------------------------------------- */

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
    **tail = ev;
    *tail = &ev->next;
}

/* Consume what is available now. Returns -1 when the connection failed. */
static int bus_con_drain(bus *b, bus_conn *c)
{
    bus_event *first = NULL, **tail = &first;
    int rc = 0;

    for (int n = 0; n < BUS_DRAIN_MAX; n++) {
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

static void *bus_con_main(void *arg)
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
    b->squeue = xstrdup(cfg->storage_queue ? cfg->storage_queue : "");
    b->squeue_type = xstrdup(cfg->storage_queue_type);
    b->confirm_timeout_ms = cfg->confirm_timeout_ms;
    b->nack_retry_ms = cfg->nack_retry_ms;
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

int bus_publish(bus *b, const envelope *env, bool fanout, bus_done_fn done, void *ctx)
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
    j->fanout = fanout;
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
    out->storage_publishes = atomic_load_explicit(&b->storage_publishes, memory_order_relaxed);
    out->confirm_us_sum = atomic_load_explicit(&b->confirm_us_sum, memory_order_relaxed);
}
