/* http.h — the HTTP side of the server's port.
 *
 * Routes plain HTTP requests (GET /healthz, /readyz, /metrics,
 * /api/rooms/<room>/presence, /api/rooms/<room>/messages (http_history.h),
 * /api/presence?users=, static files under http.static_dir) and vets
 * WebSocket upgrades before libwebsockets accepts them: the path must be
 * the configured endpoint, a browser's Origin must be allowed
 * (websocket.allowed_origins, origin.h), and the subprotocol is steered to
 * the highest STOMP version the client offers. Everything here runs on the
 * event loop.
 */
#ifndef LECTERN_HTTP_H
#define LECTERN_HTTP_H

#include <stddef.h>

struct gate;
struct lws;
struct server;

typedef struct http_exchange http_exchange;

/* The WebSocket subprotocol name for STOMP version 10, 11 or 12. The string
 * is the one registered with lws (see http.c for why it is writable). */
const char *http_protocol_name(int version);

/* LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: lws has chosen the subprotocol. */
void http_upgrade_chosen(void);

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE. Returns 0 to let the upgrade proceed,
 * 1 after answering with an HTTP error (lws then completes the exchange). */
int http_confirm_upgrade(struct server *srv, struct lws *wsi);

/* LWS_CALLBACK_HTTP: start answering the request for `uri`. *x receives the
 * exchange state kept until the response is written. Returns lws's
 * convention: 0 to continue, -1 to close. */
int http_request(struct server *srv, struct lws *wsi, http_exchange **x, const char *uri);

/* LWS_CALLBACK_HTTP on the metrics.listen listener: GET /metrics, and
 * 404 for anything else. As http_request otherwise. */
int http_metrics_request(struct server *srv, struct lws *wsi, http_exchange **x,
                         const char *uri);

/* LWS_CALLBACK_HTTP_BODY_COMPLETION: a request body has been read (and
 * dropped); answer the request that carried it. */
int http_body_done(struct server *srv, struct lws *wsi, http_exchange **x);

/* LWS_CALLBACK_HTTP_WRITEABLE: write the pending body. */
int http_writeable(struct lws *wsi, http_exchange **x);

/* The exchange is over (connection closed or protocol dropped). Accepts
 * *x == NULL. */
void http_done(http_exchange **x);

/* --- for route modules (http_history.c) ------------------------------------------- */

/* Answer now: {"error": why} with status. Returns lws's convention. */
int http_error(struct lws *wsi, http_exchange **x, unsigned status, const char *why);

/* Answer now: 503 {"error": why} with Retry-After: retry_after_s. */
int http_busy(struct lws *wsi, http_exchange **x, const char *why, int retry_after_s);

/* Start an exchange whose answer comes later, through http_answer (exactly
 * once). */
http_exchange *http_wait(struct lws *wsi, http_exchange **x);

/* e holds a slot of g (taken by the caller); it is given back when the
 * exchange ends, answered or not. */
void http_hold(http_exchange *e, struct gate *g);

/* Fills dst with the len bytes of a body. */
typedef void (*http_fill_fn)(void *ctx, unsigned char *dst);

/* The answer of an exchange from http_wait: status, content type (a static
 * string) and a body of len bytes, written by fill into the one buffer that
 * goes out. When the client has gone meanwhile, the exchange is freed
 * instead (fill is not called). e is not to be used afterwards. */
void http_answer(http_exchange *e, unsigned status, const char *ctype, size_t len,
                 http_fill_fn fill, void *ctx);

#endif
