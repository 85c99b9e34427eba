/* consumer.c — the storage queue over rabbitmq-c (see consumer.h).
 *
 * Opening runs every step synchronously: TCP connect (TLS with amqp.tls,
 * lib/amqptls; bounded), login with
 * our heartbeat and client properties (a connection name, and the
 * consumer_cancel_notify capability so that a deleted queue reaches us as
 * basic.cancel instead of silence), channel 1 with basic.qos(prefetch),
 * queue.declare exactly as the servers do (lib/storage_queue.h: RabbitMQ
 * refuses a redeclaration whose arguments differ) and
 * basic.consume with manual acks; then channel 2 for the depth probe.
 *
 * Reading never blocks: consumer_next calls amqp_consume_message with a zero
 * timeout. That call also sends our heartbeat when one is due and notices a
 * broker that stopped sending its own (the library's receive deadline has
 * then passed), so the caller calls it at least every consumer_tick_ms even
 * when poll() saw nothing. A method frame that is not a delivery comes back
 * as AMQP_STATUS_UNEXPECTED_STATE and is read and handled here.
 *
 * RPCs on channel 2 (and the cancel on channel 1) may see deliveries arrive
 * while they wait for their reply: rabbitmq-c queues those frames, and the
 * next consumer_next returns them first.
 *
 * Closing. A connection.close from the broker is answered with close-ok and
 * the connection is then only destroyed; a broken one likewise. Otherwise
 * consumer_close sends connection.close and waits (RPC timeout) for close-ok,
 * which is what makes RabbitMQ requeue our unacked deliveries at once.
 *
 * Interruption. The socket descriptor is published under `mu` while the
 * connection is open, so consumer_interrupt (another thread) shuts down a
 * descriptor that is ours and still open, never a reused one.
 */
#include "consumer.h"

#include "mem.h"
#include "storage_queue.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CONSUMER_FRAME_MAX       131072
#define CONSUMER_CONNECT_TIMEOUT 2       /* s: TCP connect (and TLS handshake) */
#define CONSUMER_HANDSHAKE_TIMEOUT 5    /* s: AMQP handshake and login */
#define CONSUMER_RPC_TIMEOUT     10      /* s */
#define CONSUMER_CH_MAIN         1
#define CONSUMER_CH_DEPTH        2

struct consumer {
    consumer_config cfg;
    amqp_connection_state_t conn;
    amqp_bytes_t tag;              /* consumer tag (owned) */
    bool usable;                   /* connection.close may be sent */
    int tick_ms;
    pthread_mutex_t mu;            /* guards fd and interrupted */
    int fd;
    bool interrupted;
};

consumer *consumer_create(const consumer_config *cfg)
{
    consumer *c = xcalloc(1, sizeof *c);
    c->cfg = *cfg;
    c->fd = -1;
    c->tick_ms = 1000;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void consumer_publish_fd(consumer *c, int fd)
{
    pthread_mutex_lock(&c->mu);
    c->fd = fd;
    pthread_mutex_unlock(&c->mu);
}

/* Destroy the connection without sending anything. */
static void consumer_drop(consumer *c)
{
    if (!c->conn)
        return;
    consumer_publish_fd(c, -1);
    amqp_destroy_connection(c->conn);
    c->conn = NULL;
    c->usable = false;
    amqp_bytes_free(c->tag);
    c->tag = amqp_empty_bytes;
}

void consumer_close(consumer *c)
{
    pthread_mutex_lock(&c->mu);
    bool polite = c->conn && c->usable && !c->interrupted;
    pthread_mutex_unlock(&c->mu);
    if (polite)
        amqp_connection_close(c->conn, AMQP_REPLY_SUCCESS);
    consumer_drop(c);
}

void consumer_destroy(consumer *c)
{
    if (!c)
        return;
    consumer_close(c);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void consumer_interrupt(consumer *c)
{
    pthread_mutex_lock(&c->mu);
    c->interrupted = true;
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&c->mu);
}

bool consumer_is_open(const consumer *c)
{
    return c->conn != NULL;
}

int consumer_fd(const consumer *c)
{
    return c->conn ? amqp_get_sockfd(c->conn) : -1;
}

bool consumer_buffered(const consumer *c)
{
    return c->conn && (amqp_data_in_buffer(c->conn) || amqp_frames_enqueued(c->conn));
}

int consumer_tick_ms(const consumer *c)
{
    return c->tick_ms;
}

/* Fail: "what" or "what: detail" into why, drop the connection, return -1. */
static int consumer_fail(consumer *c, char *why, size_t whylen, const char *what,
                         const char *detail)
{
    snprintf(why, whylen, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    consumer_drop(c);
    return -1;
}

static void consumer_reply_text(char *out, size_t n, const char *what, unsigned code,
                                amqp_bytes_t text)
{
    int len = text.len > 160 ? 160 : (int)text.len;
    snprintf(out, n, "%s: %u %.*s", what, code, len, (const char *)text.bytes);
}

/* Describe a failed RPC reply, close the connection, return -1. A broker's
 * connection.close is answered with close-ok; after a channel error (a
 * declaration the broker refused) the connection still works and is closed
 * politely. */
static int consumer_rpc_fail(consumer *c, const char *what, amqp_rpc_reply_t r, char *why,
                             size_t whylen)
{
    bool polite = false;
    switch (r.reply_type) {
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(why, whylen, "%s: %s", what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            consumer_reply_text(why, whylen, what, m->reply_code, m->reply_text);
            amqp_connection_close_ok_t ok = { 0 };
            amqp_send_method(c->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            consumer_reply_text(why, whylen, what, m->reply_code, m->reply_text);
            polite = true;
        } else {
            snprintf(why, whylen, "%s: unexpected method 0x%08x", what, (unsigned)r.reply.id);
        }
        break;
    default:            /* NORMAL too: a call returned NULL without an error */
        snprintf(why, whylen, "%s: no reply", what);
        break;
    }
    if (polite)
        consumer_close(c);
    else
        consumer_drop(c);
    return -1;
}

static int consumer_rpc_check(consumer *c, const char *what, char *why, size_t whylen)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    return consumer_rpc_fail(c, what, r, why, whylen);
}

static int consumer_login(consumer *c, char *why, size_t whylen)
{
    amqp_table_entry_t caps[1], props[2];
    caps[0].key = amqp_cstring_bytes("consumer_cancel_notify");
    caps[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[0].value.value.boolean = 1;
    props[0].key = amqp_cstring_bytes("connection_name");
    props[0].value.kind = AMQP_FIELD_KIND_UTF8;
    props[0].value.value.bytes = amqp_cstring_bytes(c->cfg.name ? c->cfg.name : "lectern-storage");
    props[1].key = amqp_cstring_bytes("capabilities");
    props[1].value.kind = AMQP_FIELD_KIND_TABLE;
    props[1].value.value.table.num_entries = 1;
    props[1].value.value.table.entries = caps;
    amqp_table_t table = { 2, props };

    /* A node that accepts TCP but never answers (stopped, overloaded) must
     * not hold the worker for rabbitmq-c's default 12 s. */
    struct timeval hs = { CONSUMER_HANDSHAKE_TIMEOUT, 0 };
    amqp_set_handshake_timeout(c->conn, &hs);
    amqp_rpc_reply_t r = amqp_login_with_properties(
        c->conn, c->cfg.vhost, 0, CONSUMER_FRAME_MAX, c->cfg.heartbeat_s, &table,
        AMQP_SASL_METHOD_PLAIN, c->cfg.user, c->cfg.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return consumer_rpc_fail(c, "login", r, why, whylen);
    c->usable = true;
    struct timeval rpc = { CONSUMER_RPC_TIMEOUT, 0 };
    amqp_set_rpc_timeout(c->conn, &rpc);
    int hb = amqp_get_heartbeat(c->conn);
    c->tick_ms = hb > 0 && hb * 500 < 1000 ? hb * 500 : 1000;
    return 0;
}

static int consumer_declare(consumer *c, char *why, size_t whylen)
{
    storage_queue_declare(c->conn, CONSUMER_CH_MAIN, c->cfg.queue, c->cfg.queue_type);
    return consumer_rpc_check(c, "queue.declare", why, whylen);
}

int consumer_open(consumer *c, const char *host, int port, char *why, size_t whylen)
{
    consumer_drop(c);
    c->conn = amqp_new_connection();
    if (!c->conn)
        return consumer_fail(c, why, whylen, "amqp_new_connection failed", NULL);
    struct timeval tv = { CONSUMER_CONNECT_TIMEOUT, 0 };
    amqp_socket_t *sock = amqptls_open(c->conn, &c->cfg.tls, host, port, &tv, why, whylen);
    if (!sock) {
        consumer_drop(c);
        return -1;
    }

    pthread_mutex_lock(&c->mu);
    bool interrupted = c->interrupted;
    if (!interrupted)
        c->fd = amqp_socket_get_sockfd(sock);
    pthread_mutex_unlock(&c->mu);
    if (interrupted)
        return consumer_fail(c, why, whylen, "interrupted", NULL);

    if (consumer_login(c, why, whylen) < 0)
        return -1;
    amqp_channel_open(c->conn, CONSUMER_CH_MAIN);
    if (consumer_rpc_check(c, "channel.open", why, whylen) < 0)
        return -1;
    amqp_basic_qos(c->conn, CONSUMER_CH_MAIN, 0, (uint16_t)c->cfg.prefetch, 0);
    if (consumer_rpc_check(c, "basic.qos", why, whylen) < 0)
        return -1;
    if (consumer_declare(c, why, whylen) < 0)
        return -1;
    amqp_channel_open(c->conn, CONSUMER_CH_DEPTH);
    if (consumer_rpc_check(c, "channel.open", why, whylen) < 0)
        return -1;
    amqp_basic_consume_ok_t *ok = amqp_basic_consume(c->conn, CONSUMER_CH_MAIN,
                                                     amqp_cstring_bytes(c->cfg.queue),
                                                     amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    if (!ok)
        return consumer_rpc_fail(c, "basic.consume", amqp_get_rpc_reply(c->conn), why, whylen);
    c->tag = amqp_bytes_malloc_dup(ok->consumer_tag);
    return 0;
}

/* A method frame that is not a delivery. Returns 0, or -1 (closed, why). */
static int consumer_frame(consumer *c, const amqp_frame_t *f, char *why, size_t whylen)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return 0;       /* a stray content frame: nothing to do with it */
    switch (f->payload.method.id) {
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *m = f->payload.method.decoded;
        consumer_reply_text(why, whylen, "connection.close", m->reply_code, m->reply_text);
        amqp_connection_close_ok_t ok = { 0 };
        amqp_send_method(c->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        consumer_drop(c);
        return -1;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
        /* The connection itself is still fine: close it politely. */
        amqp_channel_close_t *m = f->payload.method.decoded;
        consumer_reply_text(why, whylen, "channel.close", m->reply_code, m->reply_text);
        consumer_close(c);
        return -1;
    }
    case AMQP_BASIC_CANCEL_METHOD:
        snprintf(why, whylen, "consumer cancelled by the broker (queue deleted?)");
        consumer_close(c);
        return -1;
    default:
        return 0;       /* connection.blocked/unblocked and the like */
    }
}

int consumer_next(consumer *c, amqp_envelope_t *d, char *why, size_t whylen)
{
    for (;;) {
        if (!c->conn)
            return consumer_fail(c, why, whylen, "not connected", NULL);
        struct timeval zero = { 0, 0 };
        amqp_maybe_release_buffers(c->conn);
        amqp_rpc_reply_t r = amqp_consume_message(c->conn, d, &zero, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL)
            return 1;
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            return 0;
        if (r.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION ||
            r.library_error != AMQP_STATUS_UNEXPECTED_STATE)
            return consumer_rpc_fail(c, "consume", r, why, whylen);
        amqp_frame_t f;
        int st = amqp_simple_wait_frame(c->conn, &f);
        if (st != AMQP_STATUS_OK)
            return consumer_fail(c, why, whylen, "read", amqp_error_string2(st));
        if (consumer_frame(c, &f, why, whylen) < 0)
            return -1;
    }
}

void consumer_release(amqp_envelope_t *d)
{
    amqp_destroy_envelope(d);
}

int consumer_ack(consumer *c, uint64_t tag, char *why, size_t whylen)
{
    int st = c->conn ? amqp_basic_ack(c->conn, CONSUMER_CH_MAIN, tag, 1) : AMQP_STATUS_SOCKET_CLOSED;
    if (st != AMQP_STATUS_OK)
        return consumer_fail(c, why, whylen, "basic.ack", amqp_error_string2(st));
    return 0;
}

int consumer_reject(consumer *c, uint64_t tag, char *why, size_t whylen)
{
    int st = c->conn ? amqp_basic_reject(c->conn, CONSUMER_CH_MAIN, tag, 0)
                     : AMQP_STATUS_SOCKET_CLOSED;
    if (st != AMQP_STATUS_OK)
        return consumer_fail(c, why, whylen, "basic.reject", amqp_error_string2(st));
    return 0;
}

int consumer_cancel(consumer *c, char *why, size_t whylen)
{
    if (!c->conn)
        return consumer_fail(c, why, whylen, "not connected", NULL);
    if (!amqp_basic_cancel(c->conn, CONSUMER_CH_MAIN, c->tag))
        return consumer_rpc_fail(c, "basic.cancel", amqp_get_rpc_reply(c->conn), why, whylen);
    return 0;
}

int consumer_depth(consumer *c, uint32_t *ready, char *why, size_t whylen)
{
    if (!c->conn)
        return consumer_fail(c, why, whylen, "not connected", NULL);
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(c->conn, CONSUMER_CH_DEPTH,
                                                     amqp_cstring_bytes(c->cfg.queue), 1, 0, 0,
                                                     0, amqp_empty_table);
    if (!ok)
        return consumer_rpc_fail(c, "queue.declare (passive)", amqp_get_rpc_reply(c->conn), why,
                                 whylen);
    *ready = ok->message_count;
    return 0;
}
