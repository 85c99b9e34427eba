/* consumer.h — the storage queue, consumed over one AMQP connection.
 *
 * Channel 1 carries basic.consume (manual acks, prefetch window), channel 2
 * the passive queue.declare that reads the queue's depth. Every call but
 * consumer_interrupt runs on one thread (rabbitmq-c blocks and is not
 * thread-safe); nothing here waits for deliveries: the caller polls
 * consumer_fd and calls consumer_next, which never blocks.
 *
 * Any failure closes the connection (reason in the caller's `why`); the
 * caller reconnects with consumer_open after its backoff. Delivery tags are
 * those of the current connection: after a reconnect, old tags mean nothing.
 */
#ifndef LECTERN_STORAGE_CONSUMER_H
#define LECTERN_STORAGE_CONSUMER_H

#include "amqptls.h"

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct consumer consumer;

typedef struct consumer_config {
    const char *vhost;
    const char *user;
    const char *password;
    amqptls_config tls;          /* plain TCP or TLS (lib/amqptls) */
    int         heartbeat_s;     /* 0: none */
    const char *queue;
    const char *queue_type;      /* "classic" or another x-queue-type */
    int         prefetch;        /* 1..65535 */
    const char *name;            /* connection name shown by RabbitMQ */
} consumer_config;

/* A closed consumer. cfg's strings are borrowed and must outlive it. */
consumer *consumer_create(const consumer_config *cfg);

/* Close (politely unless interrupted or broken) and free. Accepts NULL. */
void consumer_destroy(consumer *c);

/* Connect to host:port (one node: the caller walks a cluster's list), log
 * in, set the prefetch window, declare the queue (durable, shared,
 * x-queue-type only when not classic, as servers declare it) and start
 * consuming. Returns 0, or -1 with why (the consumer stays closed). */
int consumer_open(consumer *c, const char *host, int port, char *why, size_t whylen);

bool consumer_is_open(const consumer *c);

/* The socket to poll for reading; -1 when closed. */
int consumer_fd(const consumer *c);

/* True when rabbitmq-c already holds unread data or frames: call
 * consumer_next without polling first. */
bool consumer_buffered(const consumer *c);

/* Longest a caller may go without calling consumer_next while open (it is
 * what sends our heartbeats and notices missing ones), in ms. */
int consumer_tick_ms(const consumer *c);

/* The next delivery, without waiting. Returns 1 with *d filled (the caller
 * releases it with consumer_release), 0 when none is ready, -1 when the
 * connection failed (closed; why says how). Other frames (connection.blocked,
 * a broker's close or consumer cancel) are handled here. */
int consumer_next(consumer *c, amqp_envelope_t *d, char *why, size_t whylen);

void consumer_release(amqp_envelope_t *d);

/* basic.ack of every unacked delivery up to and including tag (multiple).
 * tag must be unacked. Returns 0 or -1 (closed, why). */
int consumer_ack(consumer *c, uint64_t tag, char *why, size_t whylen);

/* basic.reject without requeue: the message is dropped (or dead-lettered
 * when the operator set a policy). Returns 0 or -1 (closed, why). */
int consumer_reject(consumer *c, uint64_t tag, char *why, size_t whylen);

/* basic.cancel: the broker sends no more deliveries; those already sent may
 * still be read with consumer_next. Returns 0 or -1 (closed, why). */
int consumer_cancel(consumer *c, char *why, size_t whylen);

/* Messages ready in the queue (passive queue.declare on channel 2).
 * Returns 0 or -1 (closed, why). */
int consumer_depth(consumer *c, uint32_t *ready, char *why, size_t whylen);

/* Close the connection politely (connection.close) when it is usable. */
void consumer_close(consumer *c);

/* From any thread: make a blocked call on the connection fail at once
 * (shutdown(2) of its socket) and every later consumer_open fail. */
void consumer_interrupt(consumer *c);

#endif
