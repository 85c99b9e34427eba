/* http.h — the HTTP side of the server's port.
 *
 * Routes plain HTTP requests (GET /healthz, /readyz, /metrics,
 * /api/rooms/<room>/presence, /api/rooms/<room>/messages (http_history.h),
 * /api/presence?users=, /api/users/<id>/contacts (http_contacts.h), static
 * files under http.static_dir) and vets
 * WebSocket upgrades before libwebsockets accepts them: the path must be
 * the configured endpoint, a browser's Origin must be allowed
 * (websocket.allowed_origins, origin.h), and the subprotocol is steered to
 * the highest STOMP version the client offers. Everything here runs on the
 * event loop.
 */
#ifndef LECTERN_HTTP_H
#define LECTERN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "http_contacts.h"
#include "http_exchange.h"
#include "metrics.h"

struct auth;
struct gate;
struct history;
struct moderation;
struct lws;
struct origin_list;
struct redact;
struct registry;

/* What the routes use of the server. All borrowed: they outlive every
 * request. */
typedef struct http_env {
    const server_config *conf;
    metrics *metrics;
    struct registry *registry;          /* presence, users online */
    struct contacts *lists;             /* contact lists (contacts.h) */
    struct relay *relay;                /* the server API's publishes */
    struct redact *redact;              /* DELETE .../messages/<id> (NULL: shutting down) */
    struct moderation *moderation;      /* kick, ban, mute (NULL: shutting down) */
    struct history *history;            /* message pages */
    http_contacts_env contacts;         /* /api/users/<id>/contacts */
    struct gate *slots;                 /* history reads (http.max_inflight) */
    struct auth *auth;
    const struct origin_list *origins;  /* websocket.allowed_origins */
    const char *server_id;
    /* What only the server knows, for /healthz, /readyz, /metrics and
     * /api/stats; each called with ctx. */
    void *ctx;
    void (*gauges)(void *ctx, metrics_gauges *g);
    bool (*ready)(void *ctx, const char **why);
    void (*rates)(void *ctx, metrics_rates *out);
    uint64_t (*uptime_ms)(void *ctx);
} http_env;

/* The WebSocket subprotocol name for STOMP version 10, 11 or 12. The string
 * is the one registered with lws (see http.c for why it is writable). */
const char *http_protocol_name(int version);

/* LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: lws has chosen the subprotocol. */
void http_upgrade_chosen(void);

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE. Returns 0 to let the upgrade proceed,
 * 1 after answering with an HTTP error (lws then completes the exchange). */
int http_confirm_upgrade(const http_env *env, struct lws *wsi);

/* LWS_CALLBACK_HTTP: start answering the request for `uri`. *x receives the
 * exchange (http_exchange.h), which the connection's callbacks then drive
 * until the response is written. Returns lws's
 * convention: 0 to continue, -1 to close. */
int http_request(const http_env *env, struct lws *wsi, http_exchange **x, const char *uri);

/* LWS_CALLBACK_HTTP on the metrics.listen listener: GET /metrics, and
 * 404 for anything else. As http_request otherwise. */
int http_metrics_request(const http_env *env, struct lws *wsi, http_exchange **x,
                         const char *uri);

/* LWS_CALLBACK_HTTP_BODY: a piece of a request body, kept for the route
 * that reads one (http_contacts.h), dropped otherwise. */
void http_body_in(struct lws *wsi, http_exchange **x, const void *in, size_t len);

/* LWS_CALLBACK_HTTP_BODY_COMPLETION: a request body has been read; answer
 * the request that carried it (a route that takes no body: 405). */
int http_body_done(const http_env *env, struct lws *wsi, http_exchange **x);

#endif
