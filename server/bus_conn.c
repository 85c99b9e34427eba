/* bus_conn.c — one AMQP connection of the bus, as its thread drives it.
 *
 * Both bus threads (bus_pub.c, bus_con.c) own one connection each and use
 * the same steps: open (TCP connect, and with bus.tls the TLS handshake and
 * its certificate checks (lib/amqptls), bounded by BUS_CONNECT_TIMEOUT, login
 * bounded by BUS_HANDSHAKE_TIMEOUT, every later RPC by BUS_RPC_TIMEOUT),
 * read the broker's unsolicited methods (connection.close, channel.close,
 * basic.cancel, flow control), report up and down, close. A bus_conn lives
 * on its thread's stack and is touched by that thread only; its socket's
 * descriptor alone is published (under the thread's mutex) for
 * bus_destroy, which may shut it down to unblock a stuck call.
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
 * is exclusive and lives on the node it was declared on (bus_con.c). The
 * storage queue is durable (a quorum queue in a cluster), so the publisher
 * may reach it through any node.
 * A node that died without a FIN or RST (power, link, SIGSTOP) is noticed
 * by rabbitmq-c's heartbeat deadline: no frame for two heartbeat intervals
 * fails the read, and a send that blocks on a full socket buffer gives up at
 * the same deadline. Login is bounded by BUS_HANDSHAKE_TIMEOUT.
 *
 * Logging: one line per connection state change (bus_up, bus_down with the
 * reason); repeated failed attempts are debug lines; a malformed delivery is
 * logged once per connection (bus_con.c). Nothing is logged per message.
 */
#include "bus_internal.h"

#include "log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BUS_FRAME_MAX       131072
#define BUS_CONNECT_TIMEOUT 2        /* s: TCP connect (and TLS handshake) */
#define BUS_HANDSHAKE_TIMEOUT 5      /* s: AMQP handshake and login */
#define BUS_RPC_TIMEOUT     10       /* s: any RPC; the connection dies after it */

static void bus_copy_reply_text(char *out, size_t n, const char *what, unsigned code,
                                amqp_bytes_t text)
{
    int len = text.len > 120 ? 120 : (int)text.len;
    snprintf(out, n, "%s: %u %.*s", what, code, len, (const char *)text.bytes);
}

/* Describe a failed RPC reply in c->why. A connection.close from the server
 * is answered with close-ok here, so the teardown must not send close. */
void bus_why_reply(bus_conn *c, const char *what, amqp_rpc_reply_t r)
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

int bus_rpc_check(bus_conn *c, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    bus_why_reply(c, what, r);
    return -1;
}

/* A method frame that is not what the thread waits for. Returns -1 when the
 * connection is no longer usable (reason in c->why). */
int bus_conn_frame(bus_conn *c, const amqp_frame_t *f)
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

static void bus_conn_publish_fd(bus_conn *c, int fd)
{
    pthread_mutex_lock(c->mu);
    *c->fd_slot = fd;
    pthread_mutex_unlock(c->mu);
}

void bus_conn_close(bus_conn *c)
{
    if (!c->conn)
        return;
    if (!c->no_close)
        amqp_connection_close(c->conn, AMQP_REPLY_SUCCESS);
    bus_conn_publish_fd(c, -1);
    amqp_destroy_connection(c->conn);
    c->conn = NULL;
}

/* TCP (or TLS, bus.tls: lib/amqptls) connect and login. Returns 0, or -1 with c->why (c->conn may be set:
 * the caller closes it). */
int bus_conn_open(bus *b, bus_conn *c)
{
    c->no_close = true;
    c->warned_malformed = false;
    c->conn = amqp_new_connection();
    if (!c->conn) {
        snprintf(c->why, sizeof c->why, "amqp_new_connection failed");
        return -1;
    }
    struct timeval tv = { BUS_CONNECT_TIMEOUT, 0 };
    const addrlist_entry *node = &b->nodes.v[c->node];
    amqp_socket_t *sock = amqptls_open(c->conn, &b->tls, node->host, node->port, &tv, c->why,
                                       sizeof c->why);
    if (!sock)
        return -1;
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

int bus_declare_exchange(bus *b, bus_conn *c, amqp_channel_t ch)
{
    amqp_exchange_declare(c->conn, ch, amqp_cstring_bytes(b->xname),
                          amqp_cstring_bytes(b->dynamic ? "direct" : "fanout"),
                          0, 1, 0, 0, amqp_empty_table);
    return bus_rpc_check(c, "exchange.declare");
}

void bus_conn_up(bus *b, bus_conn *c)
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
void bus_conn_down(bus *b, bus_conn *c)
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

void bus_drain_fd(int fd)
{
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof v);
    (void)n;    /* EAGAIN: nothing was pending */
}
