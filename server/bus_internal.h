/* bus_internal.h — what the files of the bus share (server/bus*.c only).
 *
 * The bus (bus.h) is one concept on three threads, written as four files:
 * bus.c (the loop's side, the inbound queue, create and destroy), bus_pub.c
 * (the publisher thread), bus_con.c (the consumer thread) and bus_conn.c
 * (one AMQP connection, as either thread drives it). They share the struct
 * below; which thread may touch which field is said next to the field
 * (mutex-guarded, atomic, or one thread's alone). Nothing outside those
 * files includes this header: bus.h stays the contract.
 */
#ifndef LECTERN_BUS_INTERNAL_H
#define LECTERN_BUS_INTERNAL_H

#include "bus.h"

#include "addrlist.h"
#include "backoff.h"
#include "buf.h"

#include <amqp.h>
#include <pthread.h>
#include <stdatomic.h>

#define BUS_CH_MAIN         1
#define BUS_CH_RPC          2

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
    bool room_copy;              /* the room copy is still to be sent */
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
    size_t cost;                 /* message: bytes charged to in_bytes */
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
    amqptls_config tls;          /* its strings owned */
    char *xname;                 /* "<exchange>.fanout" | "<exchange>.direct" */
    char *qname;                 /* "<exchange>.server.<server_id>.<8 hex>", a new
                                  * suffix on every consumer connection */
    size_t qname_len;            /* strlen up to and including the last '.' */
    char *squeue;                /* storage queue */
    char *squeue_type;           /* "classic" | "quorum" */
    int confirm_timeout_ms;
    int nack_retry_ms;           /* a nacked storage copy goes again after this */
    int nack_reopen_ms;          /* refused this long without a confirm: reopen (0: never) */
    uint64_t refused_since_ms;   /* publisher thread: first nack since the last confirm, 0: none */
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
    size_t in_max;               /* cap on in_bytes (0: none) */
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

    /* Backpressure on the inbound queue: the consumer adds each message's
     * cost when it queues it, the loop subtracts it once the callback ran.
     * At in_max the consumer pauses (stops reading its socket, so RabbitMQ
     * keeps the rest in this server's queue) until in_bytes is down to
     * in_max / 2; the loop wakes it through efd when it gets there. */
    _Atomic uint64_t in_bytes, in_pauses;
    atomic_bool in_paused;

    pthread_mutex_t in_mu;       /* events, link, ever_up, up changes */
    bus_event *events, **events_tail;
    bool link[2];
    bool ever_up;

    _Atomic uint64_t published, publish_failures, received, dropped_own,
                     malformed, reconnects, queued, unconfirmed, stored, store_failures,
                     republished, confirm_us_sum, storage_publishes, nacks,
                     nack_reopens;
    histogram confirm_hist;          /* queued -> confirmed, per storage copy */
};

static inline void bus_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline bool bus_stopping(const bus *b)
{
    return atomic_load(&b->stop);
}

/* --- bus.c: the inbound queue (threads -> loop) ------------------------------ */

/* Append a chain of events (first..*last_next) and wake the loop. Any
 * thread; first NULL: nothing. */
void bus_post_chain(bus *b, bus_event *first, bus_event **last_next);
/* Queue on_bound(room, ok) for the loop. Any thread; room is copied. */
void bus_post_bound(bus *b, const char *room, bool ok);
/* Set link `which` (BUS_PUB | BUS_CON) up or down; queues on_state when
 * the combined state changes. Called by the link's own thread. */
void bus_set_link(bus *b, int which, bool up);

/* --- bus_conn.c: one AMQP connection --------------------------------------- */

/* Describe a failed RPC reply in c->why (a broker's connection.close is
 * answered with close-ok, and the teardown then sends no close). */
void bus_why_reply(bus_conn *c, const char *what, amqp_rpc_reply_t r);
/* The last RPC's reply: 0 when normal, else -1 with c->why set. */
int bus_rpc_check(bus_conn *c, const char *what);
/* A method frame that is not what the thread waits for. Returns -1 when the
 * connection is no longer usable (reason in c->why), else 0. */
int bus_conn_frame(bus_conn *c, const amqp_frame_t *f);
/* TCP (or TLS) connect to node c->node and log in. Returns 0, or -1 with c->why
 * (c->conn may be set then: bus_conn_down closes it). */
int bus_conn_open(bus *b, bus_conn *c);
/* Close politely unless c->no_close, and destroy. Accepts a closed c. */
void bus_conn_close(bus_conn *c);
/* Declare the room exchange (b->xname, fanout or direct, durable) on ch.
 * 0, or -1 with c->why. */
int bus_declare_exchange(bus *b, bus_conn *c, amqp_channel_t ch);
/* The connection's topology is declared: log, reset the backoff, link up. */
void bus_conn_up(bus *b, bus_conn *c);
/* The connection failed or never came up: link down, close, log (once per
 * outage), and move to the next node. */
void bus_conn_down(bus *b, bus_conn *c);
/* Consume an eventfd's wake-ups (non-blocking). */
void bus_drain_fd(int fd);

/* --- the threads ------------------------------------------------------------ */

/* bus_pub.c: the publisher thread's body (arg: the bus). */
void *bus_pub_main(void *arg);
/* Free a chain of jobs and their envelopes (no callbacks). */
void bus_free_jobs(bus_job *j);
/* bus_con.c: the consumer thread's body (arg: the bus). */
void *bus_con_main(void *arg);

#endif
