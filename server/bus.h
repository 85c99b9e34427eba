/* bus.h — the RabbitMQ side of a server: cross-server room delivery and
 * the durable storage copy of every message.
 *
 * rabbitmq-c is a blocking library, so the bus runs on two threads of its
 * own, each owning one AMQP connection (RabbitMQ's advice: publish and
 * consume on separate connections, so that flow control on one never stalls
 * the other). The event loop talks to them only through queues:
 *
 *   loop -> publisher   bus_publish() copies the envelope into a job queue
 *                       (mutex + eventfd that wakes the publisher's poll())
 *   loop -> consumer    bus_bind()/bus_unbind() post binding requests
 *                       (mutex + eventfd that wakes the consumer's poll())
 *   threads -> loop     deliveries and state changes go into an inbound queue
 *                       (mutex) with job completions, and a uv_async_t wakes the loop, which calls
 *                       the callbacks below; callbacks never run on a bus thread
 *
 * Topology (declared on every (re)connect):
 *   exchange  "<exchange>.fanout" (type fanout) or, with `dynamic`,
 *             "<exchange>.direct" (type direct); durable
 *   queue     "<exchange>.server.<server_id>": exclusive, auto-delete,
 *             non-durable; consumed with no-ack on the consumer connection
 *   binding   fanout: one, routing key "". dynamic: one per room this server
 *             hosts (routing key = room name), added by bus_bind on the first
 *             local member and removed by bus_unbind after the last; the
 *             consumer thread keeps the set and re-binds it after a reconnect
 *   publish   to the exchange with routing key = room, transient
 *   storage   "<storage_queue>": durable (classic or quorum), shared by all
 *             servers and consumed by the lectern-storage workers; every
 *             message is published to it through the default exchange,
 *             persistent, on a channel in confirm mode
 *
 * Storage and confirms. bus_publish queues one job per message: the storage
 * copy always, the room-exchange copy only when other servers have members.
 * The publisher's channel is in confirm mode; a job is done when RabbitMQ
 * confirms its storage copy (basic.ack: the message is on disk / replicated)
 * and its done callback then runs on the loop with ok. A nack, or no confirm
 * within confirm_timeout_ms, ends it with not ok. A job whose connection
 * failed before the confirm keeps its storage copy (not its room copy, which
 * is transient and would arrive late) and publishes it again after the
 * reconnect, within the same deadline: a duplicate in the storage queue is
 * harmless (storage is idempotent on the message id), a lost message is not.
 * Done callbacks run in the order the jobs were queued.
 *
 * Messages whose origin is this server are dropped by the consumer (local
 * bypass: the publisher already delivered them). Connections that fail are
 * retried with exponential backoff (reconnect_min_ms doubling up to
 * reconnect_max_ms, with jitter); every up/down change is reported.
 */
#ifndef LECTERN_BUS_H
#define LECTERN_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "amqptls.h"
#include "envelope.h"
#include "histogram.h"

typedef struct bus bus;

typedef struct bus_config {
    const char *host;             /* "host[:port],...": one broker, or a cluster's nodes */
    int         port;             /* for entries without one */
    const char *vhost;
    const char *user;
    const char *password;
    amqptls_config tls;           /* plain TCP or TLS to every node */
    const char *exchange;         /* base name, e.g. "lectern.rooms" */
    bool        dynamic;          /* per-room bindings on a direct exchange */
    const char *server_id;        /* names the queue; origin of our messages */
    int         heartbeat_s;      /* AMQP heartbeat; 0 disables */
    int         reconnect_min_ms;
    int         reconnect_max_ms;
    int         max_queue;        /* publish jobs waiting; beyond, bus_publish fails */
    size_t      inbound_max;      /* bytes of deliveries waiting for the loop; at this,
                                     the consumer stops reading until half is left
                                     (0: no cap) */
    const char *storage_queue;    /* durable queue for lectern-storage */
    const char *storage_queue_type;   /* "classic" | "quorum" */
    int         confirm_timeout_ms;
    int         nack_retry_ms;    /* a nacked storage copy is published again after this */
    int         nack_reopen_ms;   /* refused this long without a confirm: reopen (0: never) */
    int         batch_max;        /* storage copies per publish (1: no batches) */
    int         room_batch_max;   /* room copies per publish (1: no batches) */
    int         room_batch_linger_ms;
    int         batch_linger_ms;  /* the first unsent copy waits this long for company */
} bus_config;

typedef struct bus_callbacks {
    /* A message from another server. env is heap-allocated and the callee
     * owns it: envelope_free(env) then free(env). */
    void (*on_message)(void *ctx, envelope *env);
    /* The bus became usable (both connections up, topology declared, and in
     * dynamic mode every requested binding re-established) or unusable. */
    void (*on_state)(void *ctx, bool up);
    /* Dynamic mode: the binding for `room` is in place (ok) or failed. */
    void (*on_bound)(void *ctx, const char *room, bool ok);
} bus_callbacks;

typedef struct bus_stats {
    uint64_t published;          /* messages handed to the broker (room exchange) */
    uint64_t stored;             /* storage copies confirmed by the broker */
    uint64_t store_failures;     /* jobs ended without a confirm (nack, timeout) */
    uint64_t republished;        /* storage copies sent again (reconnect or nack) */
    uint64_t nacks;              /* storage copies the broker refused (basic.nack), then retried */
    uint64_t nack_reopens;       /* publisher connections reopened after nack_reopen_ms of refusals */
    uint64_t storage_publishes;  /* AMQP messages carrying storage copies (batches count once) */
    uint64_t unconfirmed;        /* jobs waiting for their confirm now */
    uint64_t confirm_us_sum;     /* publish-to-confirm time, summed, microseconds */
    uint64_t publish_failures;   /* jobs dropped because the connection failed */
    uint64_t received;           /* deliveries from other servers */
    uint64_t dropped_own;        /* our own messages coming back */
    uint64_t malformed;          /* deliveries without a valid envelope */
    uint64_t reconnects;         /* successful reconnects after a failure */
    uint64_t queued;             /* publish jobs waiting now */
    uint64_t inbound_bytes;      /* deliveries waiting for the loop now, bytes */
    uint64_t inbound_pauses;     /* times the consumer stopped reading at inbound_max */
    bool     inbound_paused;     /* the consumer is not reading now */
} bus_stats;

/* Start both threads; they connect in the background (check bus_ready or
 * wait for on_state). Every field of cfg is used as given (the server's
 * knob table holds the defaults); its strings are copied. Callbacks run on
 * `loop`.
 * Returns NULL (logged) when the config is unusable (empty exchange or
 * server id) or a thread, eventfd or uv handle cannot be created.
 * on_bound while the bus is down reports false; the room is still bound,
 * with the others, before the bus reports up again. */
bus *bus_create(uv_loop_t *loop, const bus_config *cfg, const bus_callbacks *cb, void *ctx);

/* Stop the threads (joins them) and close the uv handle; call from the loop
 * thread. Jobs not yet done are dropped: their done callbacks run inside
 * bus_destroy with ok false, in order. Accepts NULL. The loop must run once more
 * afterwards for the uv handle's close to complete. */
void bus_destroy(bus *b);

/* done(ctx, ok): the storage copy was confirmed (ok) or not. */
typedef void (*bus_done_fn)(void *ctx, bool ok);

/* Queue env (copied) for the storage queue and, when `room_copy`, the room
 * exchange; done runs later on the loop (never inside this call). Returns
 * 0, or -1 when the bus is not up or max_queue jobs are waiting (done is not
 * called). */
int bus_publish(bus *b, const envelope *env, bool room_copy, bus_done_fn done, void *ctx);

/* Jobs queued or waiting for their confirm (a shutdown waits for 0). */
size_t bus_pending(const bus *b);

/* Dynamic mode: make sure messages for `room` reach this server (on_bound
 * reports completion) / stop them. No-ops in fanout mode (on_bound is still
 * called, with ok). */
void bus_bind(bus *b, const char *room);
void bus_unbind(bus *b, const char *room);

/* Both links up: publishing and receiving (what /readyz reports). */
bool bus_ready(const bus *b);
/* The publisher's link is up: bus_publish may accept jobs. */
bool bus_can_publish(const bus *b);
void bus_get_stats(const bus *b, bus_stats *out);
/* Queued-to-confirmed time of each confirmed storage copy (read from any
 * thread: the histogram's counters are atomic). */
const histogram *bus_confirm_histogram(const bus *b);

#endif
