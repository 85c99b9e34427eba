/* server.c — the event loop of lectern-server and what hangs off it.
 *
 * One libuv loop per process runs everything: libwebsockets is attached to it
 * as a foreign loop (LWS_SERVER_OPTION_LIBUV + foreign_loops), hiredis through
 * its libuv adapter, signals and timers are uv handles, and the RabbitMQ bus
 * (whose library blocks) runs on threads of its own that hand their results
 * back through a uv_async_t. Nothing on the loop blocks.
 *
 * The lws callback only dispatches: upgrade vetting and HTTP to http.c,
 * WebSocket traffic to session.c. All protocols (the default "http" one,
 * which also serves WebSockets that name no subprotocol, and v12/v11/v10.stomp)
 * share the callback and the per-connection data: a STOMP session is the same
 * whichever subprotocol was negotiated.
 *
 * Listening: sockets of our own (lib/listener), whose accepted connections
 * are handed to lws with lws_adopt_socket_vhost: lws 4.1 binds what it likes
 * from a text address (an IPv6 one with IPv6 off binds every address) and
 * has one service thread, so its listen-share option does not help a second
 * process either; with server.reuseport the socket has SO_REUSEPORT. The
 * address really bound is what the auth.mode=none rule is checked against.
 * With metrics.listen a second listener feeds the same vhost, its
 * connections tagged (lws opaque user data) so that the callback serves
 * them /metrics and nothing else; the public port then answers 404 there.
 *
 * TLS (server.tls_cert): the vhost has an OpenSSL context, and lws does the
 * handshake on every adopted connection, both listeners' alike, before any
 * HTTP; ALPN offers http/1.1 only (WebSockets and the HTTP routes are
 * HTTP/1.1 code). The pair is checked by tlscert.c before lws sees it. On
 * SIGHUP it is checked again and, when good, loaded into the same context
 * (lws_tls_cert_updated): a connection's SSL took its own reference to the
 * old certificate and key at accept, so open connections keep them and
 * only handshakes from then on see the new pair; nothing is closed. A bad
 * pair is logged and counted, and the old one stays.
 *
 * Shutdown (SIGTERM/SIGINT) runs in stages on the loop: stop accepting and
 * close every connection (lws_context_destroy); once the sessions are gone
 * (bounded wait), deregister from the registry (bounded wait); then destroy
 * the bus, registry, relay and presence, whose handles close, and the loop
 * runs dry.
 */
#include "server.h"

#include "apikey.h"
#include "auth.h"
#include "bus.h"
#include "gate.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "lwslog.h"
#include "mem.h"
#include "origin.h"
#include "peers.h"
#include "contacts.h"
#include "presence.h"
#include "status.h"
#include "history.h"
#include "moderation.h"
#include "redact.h"
#include "ratelimit.h"
#include "registry.h"
#include "relay.h"
#include "resume.h"
#include "room.h"
#include "rxmore.h"
#include "session.h"
#include "stomp.h"
#include "storelimits.h"
#include "tlscert.h"
#include "version.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* Connections read again per round (rxmore.h): more than receive in one
 * iteration under any load measured here; the rest wait for epoll. */
#define SERVER_RXMORE_CAP 256

/* Per-connection data, the same for every protocol. */
typedef struct conn {
    session *session;        /* WebSocket connections */
    http_exchange *http;     /* HTTP requests */
    peer_entry *peer;        /* WebSocket connections: counted per client address */
} conn;

struct server {
    const server_config *conf;
    char id[STORELIMITS_ORIGIN_MAX + 1];   /* server.id, the origin of its messages */
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_signal_t sighup;          /* reloads server.tls_cert and server.tls_key */
    bool tls;                    /* server.tls_cert is set: TLS on every listener */
    tlscert_info cert;           /* the certificate in service */
    uint64_t tls_reloads, tls_reload_failures;
    uv_timer_t tick;
    uv_timer_t stop_timer;
    uv_check_t reaper;           /* writes output, performs closes requested during callbacks */
    uv_prepare_t flusher;        /* writes output queued by timers, before the loop blocks */
    uv_timer_t write_timer;      /* wakes the loop when output waiting for write_delay_ms is due */
    uint64_t write_due;          /* when write_timer is set to fire (loop ms); 0: not set */
    listener *listen;            /* server.listen:server.port */
    listener *metrics_listen;    /* metrics.listen, or NULL */
    char listen_at[48], metrics_at[48];   /* what they bound, as "addr:port" */
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    rxmore *rxmore;              /* connections read again within an iteration */
    struct lws_protocols protocols[5];
    stomp_parser parser;
    ratelimit_rules limits;      /* limits.send_* and frame_* as token-bucket rules */
    room_index *rooms;
    relay *relay;
    registry *registry;
    history *history;
    contacts *contacts;          /* contact lists (cache, Redis, MySQL) */
    redact *redact;              /* redactions (API; STOMP control frames) */
    moderation *moderation;      /* kicks, bans, mutes (API; STOMP control frames) */
    apikey_set *api_keys;        /* api.keys */
    gate *history_gate;          /* history reads at once (http.max_inflight) */
    bus *bus;
    presence *presence;
    status *status;              /* /status subscriptions */
    session_list *sessions;
    session_env session_env;     /* lent to the sessions */
    resume_env resume_env;       /* lent to x-since replays */
    http_env http_env;           /* lent to the HTTP routes */
    http_exchange_conf http_xconf;   /* the lws protocols' user: HTTP answers' timeout */
    auth *auth;
    peers *peers;
    origin_list *origins;        /* websocket.allowed_origins */
    bool insecure;               /* auth.mode is none or insecure-dev */
    uint64_t insecure_warned_ms; /* last "auth_insecure" warning */
    metrics metrics;
    uint64_t stop_started;
    int port;
    uint64_t confirm_started, goodbye_started;
    uint64_t started_ms;         /* loop time at start, for uptime */
    metrics_rates rates;         /* per-second rates over the last whole second */
    uint64_t rate_at_ms, rate_published, rate_delivered;
    bool stopping, ctx_destroyed, goodbye_sent, goodbye_done, torn_down;
};

/* The client's address: the peer's, or from X-Forwarded-For when the peer
 * is a trusted proxy (peers.h). The header is copied whole, however long:
 * a client may prepend as much as it likes, and the hops our proxies
 * appended are at its end (lws bounds every header by
 * info.max_http_header_data). */
static void server_client_addr(server *srv, struct lws *wsi, char *out, size_t outlen)
{
    char peer[64], *xff = NULL;
    if (!lws_get_peer_simple(wsi, peer, sizeof peer))
        snprintf(peer, sizeof peer, "unknown");
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR);
    if (len > 0) {
        xff = xmalloc((size_t)len + 1);
        if (lws_hdr_copy(wsi, xff, len + 1, WSI_TOKEN_X_FORWARDED_FOR) <= 0) {
            free(xff);
            xff = NULL;
        }
    }
    peers_client_addr(srv->peers, peer, xff, out, outlen);
    free(xff);
}

/* websocket.tcp_nodelay = false: Nagle's algorithm back on for the
 * WebSocket's life (the listener turned it off for the handshake). */
static void server_nagle(struct lws *wsi)
{
    int zero = 0;
    (void)setsockopt(lws_get_socket_fd(wsi), IPPROTO_TCP, TCP_NODELAY, &zero, sizeof zero);
}

/* The end of a server-API request (http_exchange_route). */
static void server_api_observe(void *ctx, int route, const char *method, unsigned code,
                               uint64_t us, const char *peer)
{
    apilog_record(ctx, (apilog_route)route, method, code, us, peer);
}

static int server_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                           void *in, size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    server *srv = lws_context_user(ctx);
    conn *c = user;

    if (lws_get_opaque_user_data(wsi) == srv) {     /* from metrics.listen */
        /* The metrics listener: GET /metrics and nothing else. */
        switch (reason) {
        case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
            lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, "No WebSocket endpoint here");
            return 1;
        case LWS_CALLBACK_HTTP:
            return http_metrics_request(&srv->http_env, wsi, &c->http, in);
        default:
            break;
        }
    }
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        char addr[64];
        if (srv->stopping) {
            lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                   "This server is restarting; connect again");
            return 1;
        }
        server_client_addr(srv, wsi, addr, sizeof addr);
        if (peers_full(srv->peers, addr)) {
            srv->metrics.conn_limit_rejects++;
            log_info("conn_limit", "addr=%s limit=%d", addr, srv->conf->max_conns_per_ip);
            lws_return_http_status(wsi, 429, "Too many connections from your address "
                                             "(limits.max_conns_per_ip)");
            return 1;
        }
        return http_confirm_upgrade(&srv->http_env, wsi);
    }
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        http_upgrade_chosen();
        return srv->stopping ? -1 : 0;
    case LWS_CALLBACK_HTTP:
        return http_request(&srv->http_env, wsi, &c->http, in);
    case LWS_CALLBACK_HTTP_BODY:
        http_body_in(wsi, &c->http, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return http_body_done(&srv->http_env, wsi, &c->http);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_exchange_writeable(wsi, &c->http);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (c)
            http_exchange_done(&c->http);
        break;

    case LWS_CALLBACK_ESTABLISHED: {
        char addr[64];
        server_client_addr(srv, wsi, addr, sizeof addr);
        c->peer = peers_acquire(srv->peers, addr);
        if (!srv->conf->ws_tcp_nodelay)
            server_nagle(wsi);
        c->session = session_create(srv->sessions, wsi, peer_entry_addr(c->peer));
        if (srv->stopping)
            session_restart(c->session);
        return 0;
    }
    case LWS_CALLBACK_RECEIVE: {
        if (!c->session)
            return -1;
        int rc = session_feed(c->session, in, len);
        size_t min = rc ? 0 : session_read_again(c->session);
        if (min)
            rxmore_note(srv->rxmore, wsi, min);
        return rc;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c->session ? session_flush(c->session) : 0;
    case LWS_CALLBACK_CLOSED:
        rxmore_forget(srv->rxmore, wsi);
        session_destroy(c->session);
        c->session = NULL;
        peers_release(srv->peers, c->peer);
        c->peer = NULL;
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* Without authentication, say so at start and every hour after: a log that
 * only keeps the last day still shows it. */
#define SERVER_INSECURE_WARN_MS 3600000u

static void server_warn_insecure(server *srv, uint64_t now)
{
    srv->insecure_warned_ms = now;
    log_warn("auth_insecure", "mode=%s listen=%s detail=\"no authentication: anyone may "
             "connect as anyone (x-role: admin included) and read every room; for development "
             "only (auth.mode=jwt)\"", srv->conf->auth_mode, srv->listen_at);
}

static void server_on_tick(uv_timer_t *t)
{
    server *srv = t->data;
    uint64_t now = uv_now(&srv->loop);
    if (srv->insecure && now - srv->insecure_warned_ms >= SERVER_INSECURE_WARN_MS)
        server_warn_insecure(srv, now);
    session_list_tick(srv->sessions, now);
    if (now - srv->rate_at_ms >= 1000) {
        double secs = (double)(now - srv->rate_at_ms) / 1000.0;
        srv->rates.published_per_s = (double)(srv->metrics.messages_published -
                                              srv->rate_published) / secs;
        srv->rates.delivered_per_s = (double)(srv->metrics.deliveries_local -
                                              srv->rate_delivered) / secs;
        srv->rate_published = srv->metrics.messages_published;
        srv->rate_delivered = srv->metrics.deliveries_local;
        srv->rate_at_ms = now;
    }
}

/* Connections that received data and have more queued are read again
 * (rxmore.h, websocket.rx_reads); then output queued during this
 * iteration's I/O goes out in one write per
 * connection (see session.c); then the closes asked for meanwhile. */
static void server_on_check(uv_check_t *h)
{
    server *srv = h->data;
    rxmore_run(srv->rxmore);
    session_list_flush(srv->sessions);
    session_list_reap(srv->sessions);
}

/* Output waiting for websocket.write_delay_ms is due: the prepare handle,
 * which runs next in this iteration, writes it. */
static void server_on_write_due(uv_timer_t *t)
{
    server *srv = t->data;
    srv->write_due = 0;
}

/* Output queued by timers (heart-beats, retries) before the loop blocks;
 * then the timer for output that waits (websocket.write_delay_ms). */
static void server_on_prepare(uv_prepare_t *h)
{
    server *srv = h->data;
    session_list_flush(srv->sessions);
    if (!srv->conf->ws_write_delay_ms)
        return;
    uint64_t due = session_list_write_due(srv->sessions);
    if (due == srv->write_due)
        return;
    srv->write_due = due;
    if (!due) {
        uv_timer_stop(&srv->write_timer);
        return;
    }
    uint64_t now = uv_now(&srv->loop);
    uv_timer_start(&srv->write_timer, server_on_write_due, due > now ? due - now : 0, 0);
}

/* --- what the modules borrow ------------------------------------------------------ */

/* HTTP's hooks (http_env), ctx being the server; the first two are at the
 * end of this file. */
static bool server_ready(void *ctx, const char **why);
static void server_gauges(void *ctx, metrics_gauges *g);

static void server_http_rates(void *ctx, metrics_rates *out)
{
    *out = ((server *)ctx)->rates;
}

static uint64_t server_http_uptime_ms(void *ctx)
{
    server *srv = ctx;
    return uv_now(&srv->loop) - srv->started_ms;
}

/* Fill the environments the sessions, replays and HTTP routes borrow, once
 * the cluster parts exist (the session list holds a pointer to its env from
 * the start; no session exists before this runs). */
static void server_lend(server *srv)
{
    const server_config *c = srv->conf;
    srv->resume_env = (resume_env){
        .loop = &srv->loop,
        .history = srv->history,
        .slots = srv->history_gate,
        .relay = srv->relay,
        .metrics = &srv->metrics,
        .max_pending = c->max_pending,
        .page = (size_t)c->resume_page,
    };
    srv->session_env = (session_env){
        .conf = c,
        .metrics = &srv->metrics,
        .parser = &srv->parser,
        .limits = &srv->limits,
        .relay = srv->relay,
        .registry = srv->registry,
        .presence = srv->presence,
        .status = srv->status,
        .auth = srv->auth,
        .resume = &srv->resume_env,
        .moderation = srv->moderation,
        .redact = srv->redact,
        .server_id = srv->id,
        .loop = &srv->loop,
    };
    srv->http_env = (http_env){
        .conf = c,
        .metrics = &srv->metrics,
        .registry = srv->registry,
        .lists = srv->contacts,
        .relay = srv->relay,
        .redact = srv->redact,
        .moderation = srv->moderation,
        .history = srv->history,
        .contacts = {
            .conf = c,
            .metrics = &srv->metrics,
            .registry = srv->registry,
            .db = srv->history ? history_db(srv->history) : NULL,
            .keys = srv->api_keys,
        },
        .slots = srv->history_gate,
        .auth = srv->auth,
        .origins = srv->origins,
        .server_id = srv->id,
        .ctx = srv,
        .gauges = server_gauges,
        .ready = server_ready,
        .rates = server_http_rates,
        .uptime_ms = server_http_uptime_ms,
    };
}

/* --- cluster callbacks --------------------------------------------------------- */

/* Bans announced while this server was not listening, or SUBSCRIBEs that
 * joined without their ban check meanwhile: every local room's bans again. */
static void server_moderation_sweep(server *srv)
{
    for (room *r = room_first(srv->rooms); r && srv->moderation; r = room_next(r))
        if (moderation_sweep(srv->moderation, room_name(r)) == MODERATION_EDOWN)
            break;
}

static void server_on_registry_state(void *ctx, bool up)
{
    server *srv = ctx;
    log_info(up ? "registry_up" : "registry_down", "server=%s", srv->id);
    if (up) {
        status_resync(srv->status);     /* a reconnect forgot this server's watches */
        server_moderation_sweep(srv);
    }
}

static void server_on_room_sync(void *ctx, const char *rname, uint64_t epoch, uint64_t seq)
{
    server *srv = ctx;
    relay_on_room_sync(srv->relay, rname, epoch, seq);
}

static void server_on_presence(void *ctx, const char *rname, uint64_t v, const char *json,
                               size_t len)
{
    server *srv = ctx;
    presence_on_event(srv->presence, rname, v, json, len);
}

static void server_on_presence_resync(void *ctx)
{
    server *srv = ctx;
    presence_resync(srv->presence);
    status_resync(srv->status);
    server_moderation_sweep(srv);      /* announcements missed while unsubscribed */
}

static void server_on_status(void *ctx, const char *json, size_t len)
{
    server *srv = ctx;
    status_on_event(srv->status, json, len);
}

static void server_on_contacts_changed(void *ctx, const char *user, size_t len)
{
    server *srv = ctx;
    char name[256];
    if (len >= sizeof name)
        return;     /* not a user id */
    memcpy(name, user, len);
    name[len] = '\0';
    contacts_invalidated(srv->contacts, name);   /* then server_on_contacts_list_changed */
}

/* A kick or ban announced by some server (the registry's moderation channel). */
static void server_on_moderation(void *ctx, const char *json, size_t len)
{
    server *srv = ctx;
    if (srv->moderation)        /* NULL: shutting down */
        moderation_on_announcement(srv->moderation, json, len);
}

/* moderation's kick hook: this server's sessions. */
static void server_on_kick(void *ctx, const moderation_event *ev)
{
    server *srv = ctx;
    session_list_moderate(srv->sessions, ev);
}

/* contacts' hook: user's list changed (its cache entry is gone). */
static void server_on_contacts_list_changed(void *ctx, const char *user)
{
    server *srv = ctx;
    status_contacts_changed(srv->status, user);
}

static void server_on_bus_message(void *ctx, envelope *env)
{
    server *srv = ctx;
    relay_on_bus_message(srv->relay, env);
}

static void server_on_bus_state(void *ctx, bool up)
{
    server *srv = ctx;
    relay_on_bus_state(srv->relay, up);
}

static void server_on_bus_bound(void *ctx, const char *rname, bool ok)
{
    server *srv = ctx;
    relay_on_bus_bound(srv->relay, rname, ok);
}

/* --- shutdown ---------------------------------------------------------------------- */

static void server_teardown(server *srv)
{
    if (srv->torn_down)
        return;
    srv->torn_down = true;
    uv_timer_stop(&srv->tick);
    uv_close((uv_handle_t *)&srv->tick, NULL);
    uv_timer_stop(&srv->stop_timer);
    uv_close((uv_handle_t *)&srv->stop_timer, NULL);
    uv_check_stop(&srv->reaper);
    uv_close((uv_handle_t *)&srv->reaper, NULL);
    uv_prepare_stop(&srv->flusher);
    uv_close((uv_handle_t *)&srv->flusher, NULL);
    uv_timer_stop(&srv->write_timer);
    uv_close((uv_handle_t *)&srv->write_timer, NULL);
    listener_destroy(srv->metrics_listen);      /* still there if lws never came up */
    srv->metrics_listen = NULL;
    redact_destroy(srv->redact);        /* first: its steps call the registry, bus and db */
    srv->redact = NULL;
    srv->http_env.redact = NULL;
    moderation_destroy(srv->moderation);    /* before the registry, which answers its calls */
    srv->moderation = NULL;
    srv->http_env.moderation = NULL;
    srv->session_env.moderation = NULL;
    bus_destroy(srv->bus);
    contacts_destroy(srv->contacts);    /* before the history's pool and the registry */
    srv->contacts = NULL;
    history_destroy(srv->history);      /* before the registry: its reads come back */
    srv->history = NULL;
    registry_destroy(srv->registry);
    relay_destroy(srv->relay);
    presence_destroy(srv->presence);
    status_destroy(srv->status);
    srv->status = NULL;
    srv->bus = NULL;
    srv->registry = NULL;
    srv->relay = NULL;
    srv->presence = NULL;
    server_lend(srv);           /* what is lent now says so: NULL */
    /* The signal handlers stay installed (a second SIGTERM during shutdown
     * must not kill the process by default action) but no longer keep the
     * loop alive; server_destroy closes them. */
    uv_unref((uv_handle_t *)&srv->sigterm);
    uv_unref((uv_handle_t *)&srv->sigint);
    uv_unref((uv_handle_t *)&srv->sighup);
}

static void server_on_goodbye(void *ctx)
{
    server *srv = ctx;
    srv->goodbye_done = true;
}

/* Runs every few ms once stopping (the drain; docs/security.md): wait for
 * the sessions to finish their operations and close with 1012, then close
 * whatever is left; wait for RabbitMQ to confirm what was accepted; leave
 * the registry; tear down. Each wait is bounded by server.drain_timeout_ms. */
static void server_on_stop_tick(uv_timer_t *t)
{
    server *srv = t->data;
    uint64_t now = uv_now(&srv->loop), drain = (uint64_t)srv->conf->drain_timeout_ms;
    size_t left = srv->metrics.connections_opened - srv->metrics.connections_closed;
    if (srv->ctx && !srv->ctx_destroyed) {
        if (left && now - srv->stop_started < drain)
            return;
        /* Everyone is gone, or the deadline passed: lws closes the rest. */
        srv->ctx_destroyed = true;
        srv->confirm_started = now;
        if (left)
            log_warn("drain_timeout", "connections=%zu", left);
        /* No connection may be handed to a vhost that is going. */
        listener_destroy(srv->metrics_listen);
        srv->metrics_listen = NULL;
        lws_context_destroy(srv->ctx);
        return;
    }
    if (left && now - srv->confirm_started < 3000)
        return;
    /* Messages accepted but not yet confirmed by RabbitMQ still get their
     * confirm (or their deadline) before the bus goes. */
    uint64_t confirm_wait = drain > (uint64_t)srv->conf->bus.confirm_timeout_ms
                                ? drain : (uint64_t)srv->conf->bus.confirm_timeout_ms;
    if (srv->bus && bus_pending(srv->bus) && now - srv->confirm_started < confirm_wait)
        return;
    if (!srv->goodbye_sent) {
        srv->goodbye_sent = true;
        srv->goodbye_started = now;
        registry_goodbye(srv->registry, server_on_goodbye, srv);
        return;
    }
    if (!srv->goodbye_done && now - srv->goodbye_started < 5000)
        return;
    log_info("drained", "waited_ms=%llu", (unsigned long long)(now - srv->stop_started));
    server_teardown(srv);
}

static void server_begin_stop(server *srv, const char *why)
{
    if (srv->stopping)
        return;
    srv->stopping = true;
    srv->stop_started = uv_now(&srv->loop);
    if (why)
        log_info("shutdown", "reason=%s connections=%zu drain_timeout_ms=%d", why,
                 (size_t)(srv->metrics.connections_opened - srv->metrics.connections_closed),
                 srv->conf->drain_timeout_ms);
    /* The tick keeps running heart-beats and timeouts while sessions drain.
     * The metrics listener stays: the drain is worth watching. */
    listener_destroy(srv->listen);
    srv->listen = NULL;
    /* Every client: no more input; once its operations are done and their
     * receipts written, a close with 1012 (service restart). */
    session_list_restart(srv->sessions);
    uv_timer_start(&srv->stop_timer, server_on_stop_tick, 0, 10);
}

static void server_on_stop_timer(uv_timer_t *t)
{
    server_begin_stop(t->data, NULL);
}

static void server_on_signal(uv_signal_t *h, int signum)
{
    server_begin_stop(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void server_log_cert(const char *event, const server *srv)
{
    char q[200];
    log_info(event, "cert=%s serial=%s sha256=%s not_after=%lld subject=%s",
             srv->conf->tls_cert, srv->cert.serial, srv->cert.sha256,
             (long long)srv->cert.not_after,
             log_q(q, sizeof q, srv->cert.subject, strlen(srv->cert.subject)));
}

/* SIGHUP: the certificate and key again, if they check out (see the essay). */
static void server_on_hup(uv_signal_t *h, int signum)
{
    server *srv = h->data;
    const server_config *c = srv->conf;
    (void)signum;
    if (!srv->tls) {
        log_info("sighup", "detail=\"nothing to reload: server.tls_cert is not set\"");
        return;
    }
    if (srv->stopping || !srv->ctx)
        return;
    char err[300], q[320];
    tlscert_info next;
    if (tlscert_check(c->tls_cert, c->tls_key, &next, err, sizeof err) < 0) {
        srv->tls_reload_failures++;
        log_error("tls_reload_failed", "cert=%s serial_in_service=%s reason=%s", c->tls_cert,
                  srv->cert.serial, log_q(q, sizeof q, err, strlen(err)));
        return;
    }
    lws_tls_cert_updated(srv->ctx, c->tls_cert, c->tls_key, NULL, 0, NULL, 0);
    srv->cert = next;
    srv->tls_reloads++;
    server_log_cert("tls_reloaded", srv);
}

/* --- creation ---------------------------------------------------------------------- */

static void server_protocol(struct lws_protocols *p, const char *name, const server_config *c,
                            http_exchange_conf *xconf)
{
    memset(p, 0, sizeof *p);
    p->user = xconf;
    p->name = name;
    p->callback = server_callback;
    p->per_session_data_size = sizeof(conn);
    p->rx_buffer_size = c->ws_rx_buffer;
    p->tx_packet_size = c->ws_write_max;
}

/* --- listening ---------------------------------------------------------------------- */

/* Bind server.listen:server.port (and metrics.listen) and check the
 * auth.mode=none rule against the address really bound. */
static int server_listen(server *srv, char *err, size_t errlen)
{
    const server_config *c = srv->conf;
    struct sockaddr_in at;
    if (listener_resolve("server.listen", c->listen, c->port, &at, err, errlen) < 0)
        return -1;
    srv->listen = listener_create(&srv->loop, srv->vhost, &at, c->reuseport, NULL, err, errlen);
    if (!srv->listen)
        return -1;
    const struct sockaddr_in *bound = listener_addr(srv->listen);
    srv->port = ntohs(bound->sin_port);
    listener_format(bound, srv->listen_at, sizeof srv->listen_at);
    if (server_config_check_exposure(c, listener_is_loopback(bound), err, errlen) < 0)
        return -1;
    if (!c->metrics_listen[0])
        return 0;

    if (listener_resolve_hostport("metrics.listen", c->metrics_listen, &at, err, errlen) < 0)
        return -1;
    /* Its connections carry srv as their tag (the callback checks it). */
    srv->metrics_listen = listener_create(&srv->loop, srv->vhost, &at, false, srv, err, errlen);
    if (!srv->metrics_listen)
        return -1;
    listener_format(listener_addr(srv->metrics_listen), srv->metrics_at, sizeof srv->metrics_at);
    return 0;
}

static void server_make_id(server *srv)
{
    if (srv->conf->id[0]) {
        snprintf(srv->id, sizeof srv->id, "%s", srv->conf->id);
        return;
    }
    char host[64] = "lectern";
    unsigned char rnd[4] = { 0 };
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        uint32_t x = (uint32_t)getpid() ^ (uint32_t)time(NULL);
        memcpy(rnd, &x, sizeof rnd);
    }
    snprintf(srv->id, sizeof srv->id, "%s-%02x%02x%02x%02x", host, rnd[0], rnd[1], rnd[2],
             rnd[3]);
}

static int server_start_cluster(server *srv)
{
    const server_config *c = srv->conf;
    /* Each module's knobs are in its own config, embedded in server_config:
     * only what is not a knob is filled in here. */
    relay_config rc = c->relay;
    rc.server_id = srv->id;
    srv->relay = relay_create(&srv->loop, srv->rooms, &srv->metrics, &rc);
    srv->presence = presence_create(session_deliver);
    status_config sc = { .chunk = c->status_chunk, .max_contacts = c->contacts.max };
    status_hooks sh = { .deliver = session_deliver, .fail = session_status_fail };
    srv->status = status_create(&sc, &sh, &srv->metrics);

    registry_config gc = c->registry;
    gc.server_id = srv->id;
    registry_events ge = {
        .on_state = server_on_registry_state,
        .on_room_sync = server_on_room_sync,
        .on_presence = server_on_presence,
        .on_presence_resync = server_on_presence_resync,
        .on_status = server_on_status,
        .on_contacts_changed = server_on_contacts_changed,
        .on_moderation = server_on_moderation,
    };
    char gerr[256];
    srv->registry = registry_create(&srv->loop, &gc, &ge, srv, gerr, sizeof gerr);
    if (!srv->registry) {
        log_error("registry_config", "reason=\"%s\"", gerr);
        return -1;
    }

    srv->history = history_create(&srv->loop, srv->registry, &c->history);
    if (!srv->history)
        return -1;
    srv->contacts = contacts_create(&(contacts_env){
        .loop = &srv->loop,
        .cfg = &c->contacts,
        .registry = srv->registry,
        .db = history_db(srv->history),
        .metrics = &srv->metrics,
        .on_changed = server_on_contacts_list_changed,
        .ctx = srv,
    });

    bus_config bc = c->bus;
    bc.dynamic = !strcmp(c->bus_mode, "dynamic");
    bc.server_id = srv->id;
    bus_callbacks bcb = {
        .on_message = server_on_bus_message,
        .on_state = server_on_bus_state,
        .on_bound = server_on_bus_bound,
    };
    srv->bus = bus_create(&srv->loop, &bc, &bcb, srv);
    if (!srv->bus)
        return -1;
    relay_attach(srv->relay, srv->registry, srv->bus);
    srv->redact = redact_create(&(redact_env){ srv->registry, srv->relay,
                                               history_db(srv->history) });
    srv->moderation = moderation_create(&(moderation_env){
        .lim = { (size_t)c->max_room_name, c->mod_max_duration_s, (size_t)c->mod_max_reason },
        .registry = srv->registry,
        .metrics = &srv->metrics,
        .kick = server_on_kick,
        .ctx = srv,
    });
    presence_attach(srv->presence, srv->registry);
    status_attach(srv->status, srv->registry, srv->contacts);
    server_lend(srv);
    return 0;
}

/* Free what is left once the loop has closed every handle. */
static void server_release(server *srv, bool loop)
{
    if (loop) {
        uv_run(&srv->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&srv->loop))
            log_warn("loop_busy", "detail=\"handles still open at exit\"");
    }
    session_list_destroy(srv->sessions);
    rxmore_destroy(srv->rxmore);
    origin_list_destroy(srv->origins);
    auth_destroy(srv->auth);
    peers_destroy(srv->peers);
    room_index_destroy(srv->rooms);
    gate_destroy(srv->history_gate);
    apikey_set_destroy(srv->api_keys);
    stomp_parser_deinit(&srv->parser);
    free(srv);
}

server *server_create(const server_config *conf, char *err, size_t errlen)
{
    server *srv = xcalloc(1, sizeof *srv);
    srv->conf = conf;
    srv->insecure = strcmp(conf->auth_mode, "jwt") != 0;
    metrics_init(&srv->metrics);
    server_make_id(srv);
    srv->history_gate = gate_create(conf->http_max_inflight);
    srv->api_keys = apikey_set_create(conf->api_keys);

    stomp_limits lim = {
        .max_frame = conf->max_frame,
        .max_headers = (size_t)conf->max_headers,
        .max_header_line = conf->max_header_line,
    };
    stomp_parser_init(&srv->parser, &lim);
    srv->limits = (ratelimit_rules){
        .sends = { conf->send_rate, conf->send_burst },
        .frames = { conf->frame_rate, conf->frame_burst },
        .bytes = { (double)conf->send_bytes_rate, (double)conf->send_bytes_burst },
    };
    srv->rooms = room_index_create(session_deliver);
    srv->session_env.conf = conf;
    srv->sessions = session_list_create(&srv->session_env);

    srv->auth = auth_create(conf, err, errlen);
    srv->peers = srv->auth ? peers_create(conf->trusted_proxies, conf->max_conns_per_ip, err,
                                          errlen) : NULL;
    srv->origins = srv->peers ? origin_list_create(conf->ws_allowed_origins, err, errlen) : NULL;
    if (!srv->origins || uv_loop_init(&srv->loop)) {
        if (srv->origins)
            snprintf(err, errlen, "cannot initialise the event loop");
        server_release(srv, false);
        return NULL;
    }
    uv_timer_init(&srv->loop, &srv->tick);
    srv->tick.data = srv;
    uv_timer_init(&srv->loop, &srv->stop_timer);
    srv->stop_timer.data = srv;
    uv_check_init(&srv->loop, &srv->reaper);
    srv->reaper.data = srv;
    uv_prepare_init(&srv->loop, &srv->flusher);
    srv->flusher.data = srv;
    uv_timer_init(&srv->loop, &srv->write_timer);
    srv->write_timer.data = srv;
    uv_signal_init(&srv->loop, &srv->sigterm);
    srv->sigterm.data = srv;
    uv_signal_init(&srv->loop, &srv->sigint);
    srv->sigint.data = srv;
    uv_signal_init(&srv->loop, &srv->sighup);
    srv->sighup.data = srv;
    srv->tls = conf->tls_cert[0] != '\0';
    if (srv->tls && tlscert_check(conf->tls_cert, conf->tls_key, &srv->cert, err, errlen) < 0) {
        server_destroy(srv);
        return NULL;
    }
    if (server_start_cluster(srv) < 0) {
        snprintf(err, errlen, "cannot start the registry, history or bus (see the log line before)");
        server_destroy(srv);
        return NULL;
    }

    srv->http_xconf.write_timeout_s = conf->http_write_timeout_s;
    srv->http_xconf.observe = server_api_observe;
    srv->http_xconf.observe_ctx = &srv->metrics.api;
    server_protocol(&srv->protocols[0], "http", conf, &srv->http_xconf);
    server_protocol(&srv->protocols[1], http_protocol_name(12), conf, &srv->http_xconf);
    server_protocol(&srv->protocols[2], http_protocol_name(11), conf, &srv->http_xconf);
    server_protocol(&srv->protocols[3], http_protocol_name(10), conf, &srv->http_xconf);
    memset(&srv->protocols[4], 0, sizeof srv->protocols[4]);

    const char *lws_log = getenv("LECTERN_LWS_LOG");
    lwslog_install(lws_log ? atoi(lws_log) : (LLL_ERR | LLL_WARN));
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *loops[1] = { &srv->loop };
    /* Our own listeners feed the vhosts (see the essay). */
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = srv->protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DISABLE_IPV6 |
                   LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = loops;
    info.user = srv;
    info.pcontext = &srv->ctx;
    /* Slowloris: an HTTP request (or upgrade) must be complete by then. */
    info.timeout_secs = (unsigned int)conf->handshake_timeout_s;
    info.timeout_secs_ah_idle = (unsigned int)conf->handshake_timeout_s;
    /* Room for a bearer token (a JWT listing many rooms) in a request. */
    info.max_http_header_data = 8192;
    info.vhost_name = "default";
    if (srv->tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = conf->tls_cert;
        info.ssl_private_key_filepath = conf->tls_key;
        info.ssl_cipher_list = conf->tls_ciphers;
        /* lws already refuses SSLv2/3 and compression; the rest of the
         * floor is ours (server.tls_min_version). */
        info.ssl_options_set = (long)(SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                                      SSL_OP_NO_RENEGOTIATION |
                                      (strcmp(conf->tls_min_version, "1.3") ? 0
                                                                           : SSL_OP_NO_TLSv1_2));
        info.alpn = "http/1.1";
    }
    srv->ctx = lws_create_context(&info);
    if (!srv->ctx) {
        snprintf(err, errlen, "cannot create the libwebsockets context");
        server_destroy(srv);
        return NULL;
    }
    srv->rxmore = rxmore_create(srv->ctx, conf->ws_rx_reads, SERVER_RXMORE_CAP);
    srv->vhost = lws_create_vhost(srv->ctx, &info);
    if (!srv->vhost || server_listen(srv, err, errlen) < 0) {
        if (!srv->vhost)
            snprintf(err, errlen, "cannot create the libwebsockets vhost");
        server_destroy(srv);
        return NULL;
    }

    srv->started_ms = srv->rate_at_ms = uv_now(&srv->loop);
    uv_timer_start(&srv->tick, server_on_tick, (uint64_t)(1000 / conf->hz),
                   (uint64_t)(1000 / conf->hz));
    uv_check_start(&srv->reaper, server_on_check);
    uv_prepare_start(&srv->flusher, server_on_prepare);
    uv_signal_start(&srv->sigterm, server_on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, server_on_signal, SIGINT);
    uv_signal_start(&srv->sighup, server_on_hup, SIGHUP);
    return srv;
}

int server_run(server *srv)
{
    const server_config *c = srv->conf;
    log_info("listening", "port=%d listen=%s tls=%s ws_path=%s version=%s server=%s mode=%s%s%s%s",
             srv->port, srv->listen_at, srv->tls ? "on" : "off", c->ws_path, LECTERN_VERSION,
             srv->id, c->bus_mode,
             c->reuseport ? " reuseport=true" : "", srv->metrics_listen ? " metrics_listen=" : "",
             srv->metrics_listen ? srv->metrics_at : "");
    if (srv->tls)
        server_log_cert("tls_cert", srv);
    if (origin_list_any(srv->origins))
        log_warn("origins_any", "detail=\"websocket.allowed_origins is empty: pages of every "
                 "site may open WebSockets here\"");
    else
        log_info("origins", "allowed=%zu list=\"%s\"", origin_list_count(srv->origins),
                 c->ws_allowed_origins);
    if (srv->insecure)
        server_warn_insecure(srv, uv_now(&srv->loop));
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
    uv_close((uv_handle_t *)&srv->sighup, NULL);
    server_release(srv, true);
}

/* Can this server take messages now? false with a reason otherwise. */
static bool server_ready(void *ctx, const char **why)
{
    const server *srv = ctx;
    if (srv->stopping) {
        *why = "shutting down";
        return false;
    }
    if (!srv->registry || !registry_up(srv->registry)) {
        *why = "registry (Redis) unavailable";
        return false;
    }
    if (!srv->bus || !bus_ready(srv->bus)) {
        *why = "bus (RabbitMQ) unavailable";
        return false;
    }
    *why = NULL;
    return true;
}

/* Snapshot of the live-state gauges. */
static void server_gauges(void *ctx, metrics_gauges *g)
{
    server *srv = ctx;
    memset(g, 0, sizeof *g);
    session_list_gauges(srv->sessions, g);
    g->rooms = room_index_count(srv->rooms);
    g->status_watched = srv->status ? status_watched(srv->status) : 0;
    g->status_subscriptions = srv->status ? status_subscriptions(srv->status) : 0;
    g->auth_insecure = srv->insecure;
    g->tls_cert_expiry = srv->tls ? (uint64_t)srv->cert.not_after : 0;
    g->tls_reloads = srv->tls_reloads;
    g->tls_reload_failures = srv->tls_reload_failures;
    g->rx_more_reads = srv->rxmore ? rxmore_reads(srv->rxmore) : 0;
    if (srv->registry) {
        registry_stats rs;
        registry_get_stats(srv->registry, &rs);
        g->registry_up = registry_up(srv->registry);
        g->registry_reconnects = rs.reconnects;
        g->servers_reaped = rs.reaped_servers;
        g->reregistrations = rs.reregistrations;
        g->registry_unreplicated = rs.unreplicated;
    }
    if (srv->bus) {
        bus_stats bs;
        bus_get_stats(srv->bus, &bs);
        g->bus_up = bus_ready(srv->bus);
        g->bus_reconnects = bs.reconnects;
        g->bus_publish_failures = bs.publish_failures;
        g->bus_dropped_own = bs.dropped_own;
        g->bus_malformed = bs.malformed;
        g->bus_queued = bs.queued;
        g->bus_inbound_bytes = bs.inbound_bytes;
        g->bus_inbound_pauses = bs.inbound_pauses;
        g->bus_unconfirmed = bs.unconfirmed;
        g->bus_stored = bs.stored;
        g->bus_store_failures = bs.store_failures;
        g->bus_republished = bs.republished;
        g->bus_nacks = bs.nacks;
        g->bus_nack_reopens = bs.nack_reopens;
        g->bus_storage_publishes = bs.storage_publishes;
        g->bus_confirm_us_sum = bs.confirm_us_sum;
        g->bus_confirm = bus_confirm_histogram(srv->bus);
    }
    if (srv->history) {
        history_stats hs;
        history_get_stats(srv->history, &hs);
        g->history_queries = hs.queries;
        g->history_from_redis = hs.from_redis;
        g->history_from_mysql = hs.from_mysql;
        g->history_hole_retries = hs.hole_retries;
        g->history_holes_returned = hs.holes_returned;
        g->history_mysql_errors = hs.mysql_errors;
        g->history_pages_cut = hs.pages_cut;
    }
    gate_stats gs;
    gate_get_stats(srv->history_gate, &gs);
    g->history_inflight = gs.busy;
    g->history_waiting = gs.waiting;
    g->history_rejected = gs.refused;
    if (srv->relay) {
        relay_stats st;
        relay_get_stats(srv->relay, &st);
        g->bus_published = st.bus_published;
        g->bus_skipped = st.bus_skipped;
        g->bus_received = st.bus_received;
        g->bus_no_room = st.bus_no_room;
        g->gaps_filled = st.gaps_filled;
        g->gaps_lost = st.gaps_lost;
        g->catchups = st.catchups;
        g->idempotent_repeats = st.duplicates;
    }
}
