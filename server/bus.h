/* bus.h — the RabbitMQ side of a server: cross-server room delivery.
 *
 * rabbitmq-c is a blocking library, so the bus runs on two threads of its
 * own, each owning one AMQP connection (RabbitMQ's advice: publish and
 * consume on separate connections, so that flow control on one never stalls
 * the other). The event loop talks to them only through queues:
 *
 *   loop -> publisher   bus_publish() copies the envelope into a job queue
 *                       (mutex + condition variable)
 *   loop -> consumer    bus_bind()/bus_unbind() post binding requests
 *                       (mutex + eventfd that wakes the consumer's poll())
 *   threads -> loop     deliveries and state changes go into an inbound queue
 *                       (mutex) and a uv_async_t wakes the loop, which calls
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

#include "envelope.h"

typedef struct bus bus;

typedef struct bus_config {
    const char *host;
    int         port;
    const char *vhost;
    const char *user;
    const char *password;
    const char *exchange;         /* base name, e.g. "lectern.rooms" */
    bool        dynamic;          /* per-room bindings on a direct exchange */
    const char *server_id;        /* names the queue; origin of our messages */
    int         heartbeat_s;      /* AMQP heartbeat; 0 disables */
    int         reconnect_min_ms;
    int         reconnect_max_ms;
    size_t      max_queue;        /* publish jobs waiting; beyond, bus_publish fails */
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
    uint64_t published;          /* messages handed to the broker */
    uint64_t publish_failures;   /* jobs dropped because the connection failed */
    uint64_t received;           /* deliveries from other servers */
    uint64_t dropped_own;        /* our own messages coming back */
    uint64_t malformed;          /* deliveries without a valid envelope */
    uint64_t reconnects;         /* successful reconnects after a failure */
    uint64_t queued;             /* publish jobs waiting now */
} bus_stats;

/* Start both threads; they connect in the background (check bus_ready or
 * wait for on_state). cfg strings are copied. Callbacks run on `loop`.
 * Returns NULL (logged) when the config is unusable (empty exchange or
 * server id) or a thread, eventfd or uv handle cannot be created.
 * on_bound while the bus is down reports false; the room is still bound,
 * with the others, before the bus reports up again. */
bus *bus_create(uv_loop_t *loop, const bus_config *cfg, const bus_callbacks *cb, void *ctx);

/* Stop the threads (joins them) and close the uv handle; call from the loop
 * thread. Queued jobs are dropped. Accepts NULL. The loop must run once more
 * afterwards for the uv handle's close to complete. */
void bus_destroy(bus *b);

/* Queue env for publishing (copied). Returns 0, or -1 when the bus is not up
 * or max_queue jobs are waiting. */
int bus_publish(bus *b, const envelope *env);

/* Dynamic mode: make sure messages for `room` reach this server (on_bound
 * reports completion) / stop them. No-ops in fanout mode (on_bound is still
 * called, with ok). */
void bus_bind(bus *b, const char *room);
void bus_unbind(bus *b, const char *room);

bool bus_ready(const bus *b);
void bus_get_stats(const bus *b, bus_stats *out);

#endif
