/* server.c — the event loop of lectern-server.
 *
 * One libuv loop per process runs everything: libwebsockets is attached to it
 * as a foreign loop (LWS_SERVER_OPTION_LIBUV + foreign_loops), signals and the
 * housekeeping timer are uv handles, and the later Redis and RabbitMQ
 * adapters plug into the same loop. Nothing on it blocks.
 *
 * The lws callback only dispatches: upgrade vetting and HTTP to http.c,
 * WebSocket traffic to session.c. All protocols (the default "http" one,
 * which also serves WebSockets that name no subprotocol, and v12/v11/v10.stomp)
 * share the callback and the per-connection data, because a STOMP session is
 * the same whichever subprotocol was negotiated: the STOMP version comes from
 * CONNECT's accept-version.
 *
 * Shutdown (SIGTERM/SIGINT): stop the timer and signal handles, then
 * lws_context_destroy(), which closes every connection (sessions are
 * destroyed from LWS_CALLBACK_CLOSED) and releases lws's uv handles; the loop
 * then runs dry and server_run returns.
 */
#include "server.h"

#include "http.h"
#include "log.h"
#include "mem.h"

#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Per-connection data, the same for every protocol. */
typedef struct conn {
    session *session;        /* WebSocket connections */
    http_exchange *http;     /* HTTP requests */
} conn;

struct server {
    const server_config *conf;
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_timer_t tick;
    uv_check_t reaper;           /* performs closes requested during callbacks */
    struct lws_context *ctx;
    struct lws_protocols protocols[5];
    stomp_parser parser;
    room_index *rooms;
    relay *relay;
    session_set *sessions;
    metrics metrics;
    unsigned char *scratch;
    size_t scratch_cap;
    uint64_t next_session_id;
    int port;
    bool stopping;
};

static int server_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                           void *in, size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    server *srv = lws_context_user(ctx);
    conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return http_confirm_upgrade(srv, wsi);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        http_upgrade_chosen();
        return srv->stopping ? -1 : 0;
    case LWS_CALLBACK_HTTP:
        return http_request(srv, wsi, &c->http, in);
    case LWS_CALLBACK_HTTP_BODY:
        return 0;       /* no route takes a body; it is read and dropped */
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return http_body_done(srv, wsi, &c->http);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_writeable(wsi, &c->http);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (c)
            http_done(&c->http);
        break;

    case LWS_CALLBACK_ESTABLISHED:
        c->session = session_create(srv, srv->sessions, wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return c->session ? session_feed(c->session, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c->session ? session_flush(c->session) : 0;
    case LWS_CALLBACK_CLOSED:
        session_destroy(c->session);
        c->session = NULL;
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static void server_lws_log(int level, const char *line)
{
    char q[512];
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_write(level == LLL_ERR ? LOG_LEVEL_ERROR : LOG_LEVEL_WARN, "lws", "msg=%s",
              log_q(q, sizeof q, line, n));
}

static void server_on_tick(uv_timer_t *t)
{
    server *srv = t->data;
    session_set_tick(srv->sessions, uv_now(&srv->loop));
}

static void server_on_check(uv_check_t *h)
{
    server *srv = h->data;
    session_set_reap(srv->sessions);
}

static void server_begin_stop(server *srv, const char *why)
{
    if (srv->stopping)
        return;
    srv->stopping = true;
    if (why)
        log_info("shutdown", "reason=%s connections=%zu", why,
             (size_t)(srv->metrics.connections_opened - srv->metrics.connections_closed));
    uv_timer_stop(&srv->tick);
    uv_close((uv_handle_t *)&srv->tick, NULL);
    uv_check_stop(&srv->reaper);
    uv_close((uv_handle_t *)&srv->reaper, NULL);
    /* The signal handlers stay installed (a second SIGTERM during shutdown
     * must not kill the process by default action) but no longer keep the
     * loop alive; server_destroy closes them. */
    uv_unref((uv_handle_t *)&srv->sigterm);
    uv_unref((uv_handle_t *)&srv->sigint);
    if (srv->ctx)
        lws_context_destroy(srv->ctx);
}

static void server_on_stop_timer(uv_timer_t *t)
{
    server_begin_stop(t->data, NULL);
}

static void server_on_signal(uv_signal_t *h, int signum)
{
    server_begin_stop(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void server_protocol(struct lws_protocols *p, const char *name, const server_config *c)
{
    memset(p, 0, sizeof *p);
    p->name = name;
    p->callback = server_callback;
    p->per_session_data_size = sizeof(conn);
    p->rx_buffer_size = c->ws_rx_buffer;
    p->tx_packet_size = c->ws_write_max;
}

/* Free everything but lws (gone by now). With `loop`, first let the loop
 * run the close callbacks of the handles the caller closed, then close it. */
static void server_release(server *srv, bool loop)
{
    if (loop) {
        uv_run(&srv->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&srv->loop))
            log_warn("loop_busy", "detail=\"handles still open at exit\"");
    }
    session_set_destroy(srv->sessions);
    relay_destroy(srv->relay);
    room_index_destroy(srv->rooms);
    stomp_parser_deinit(&srv->parser);
    free(srv->scratch);
    free(srv);
}

server *server_create(const server_config *conf, char *err, size_t errlen)
{
    server *srv = xcalloc(1, sizeof *srv);
    srv->conf = conf;
    srv->next_session_id = 1;

    stomp_limits lim = {
        .max_frame = conf->max_frame,
        .max_headers = (size_t)conf->max_headers,
        .max_header_line = conf->max_header_line,
    };
    stomp_parser_init(&srv->parser, &lim);
    srv->rooms = room_index_create();
    srv->relay = relay_create(srv->rooms, &srv->metrics);
    srv->sessions = session_set_create();
    srv->scratch_cap = conf->ws_write_max;
    srv->scratch = xmalloc(LWS_PRE + srv->scratch_cap);

    if (uv_loop_init(&srv->loop)) {
        snprintf(err, errlen, "cannot initialise the event loop");
        goto fail_loop;
    }
    uv_timer_init(&srv->loop, &srv->tick);
    srv->tick.data = srv;
    uv_check_init(&srv->loop, &srv->reaper);
    srv->reaper.data = srv;
    uv_signal_init(&srv->loop, &srv->sigterm);
    srv->sigterm.data = srv;
    uv_signal_init(&srv->loop, &srv->sigint);
    srv->sigint.data = srv;

    server_protocol(&srv->protocols[0], "http", conf);
    server_protocol(&srv->protocols[1], http_protocol_name(12), conf);
    server_protocol(&srv->protocols[2], http_protocol_name(11), conf);
    server_protocol(&srv->protocols[3], http_protocol_name(10), conf);
    memset(&srv->protocols[4], 0, sizeof srv->protocols[4]);

    lws_set_log_level(getenv("LECTERN_LWS_LOG") ? atoi(getenv("LECTERN_LWS_LOG")) : (LLL_ERR | LLL_WARN), server_lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *loops[1] = { &srv->loop };
    info.port = conf->port;
    info.iface = conf->listen[0] ? conf->listen : NULL;
    info.protocols = srv->protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DISABLE_IPV6 |
                   LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = loops;
    info.user = srv;
    info.pcontext = &srv->ctx;
    info.vhost_name = "default";
    srv->ctx = lws_create_context(&info);
    if (!srv->ctx) {
        snprintf(err, errlen, "cannot create the libwebsockets context");
        goto fail_lws;
    }
    /* The vhost is created separately so that a port that cannot be bound
     * fails here, with the context intact and destroyable. */
    struct lws_vhost *vh = lws_create_vhost(srv->ctx, &info);
    if (!vh) {
        snprintf(err, errlen, "cannot listen on port %d%s%s (in use, or a bad address?)",
                 conf->port, conf->listen[0] ? " of " : "", conf->listen);
        server_destroy(srv);
        return NULL;
    }
    srv->port = lws_get_vhost_listen_port(vh);

    uv_timer_start(&srv->tick, server_on_tick, (uint64_t)(1000 / conf->hz),
                   (uint64_t)(1000 / conf->hz));
    uv_check_start(&srv->reaper, server_on_check);
    uv_signal_start(&srv->sigterm, server_on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, server_on_signal, SIGINT);
    return srv;

fail_lws:
    uv_close((uv_handle_t *)&srv->tick, NULL);
    uv_close((uv_handle_t *)&srv->reaper, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    server_release(srv, true);
    return NULL;
fail_loop:
    server_release(srv, false);
    return NULL;
}

int server_run(server *srv)
{
    log_info("listening", "port=%d ws_url=ws://127.0.0.1:%d%s version=%s", srv->port,
             srv->port, srv->conf->ws_path, LECTERN_VERSION);
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    /* The loop ran dry: lws has closed its handles. A context still set
     * means lws wants the second half of its destroy. */
    if (srv->ctx)
        lws_context_destroy(srv->ctx);
    return 0;
}

void server_destroy(server *srv)
{
    if (!srv)
        return;
    if (!srv->stopping) {
        /* lws must be destroyed from inside the loop: destroyed outside it,
         * lws 4.1 unloads its libuv plugin while that plugin's handle-close
         * callbacks are still pending. */
        uv_timer_start(&srv->tick, server_on_stop_timer, 0, 0);
        uv_run(&srv->loop, UV_RUN_DEFAULT);
        if (srv->ctx)
            lws_context_destroy(srv->ctx);
    }
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    server_release(srv, true);
}

int server_port(const server *srv) { return srv->port; }
const server_config *server_conf(const server *srv) { return srv->conf; }
metrics *server_metrics(server *srv) { return &srv->metrics; }
stomp_parser *server_parser(server *srv) { return &srv->parser; }
room_index *server_rooms(server *srv) { return srv->rooms; }
relay *server_relay(server *srv) { return srv->relay; }
session_set *server_sessions(server *srv) { return srv->sessions; }
uint64_t server_now_ms(const server *srv) { return uv_now(&srv->loop); }
uint64_t server_next_session_id(server *srv) { return srv->next_session_id++; }

unsigned char *server_scratch(server *srv, size_t *cap)
{
    *cap = srv->scratch_cap;
    return srv->scratch;
}

void server_gauges(server *srv, metrics_gauges *g)
{
    session_set_gauges(srv->sessions, g);
    g->rooms = room_index_count(srv->rooms);
}
