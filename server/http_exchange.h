/* http_exchange.h — one HTTP request's answer, from the callback that
 * starts it to the last byte written.
 *
 * Routes (http.c, http_history.c) answer through this module and never
 * write to lws themselves: at once (http_exchange_respond, _json, _error,
 * _busy, _unauthorized) or later (http_exchange_wait, then exactly one
 * _answer or _answer_json). The lws callbacks of the connection drive the
 * rest (http_exchange_writeable, http_exchange_done).
 *
 * The server sets an http_exchange_conf as the user pointer of each of its
 * lws protocols (lws_protocols.user); exchanges read their write timeout
 * there.
 */
#ifndef LECTERN_HTTP_EXCHANGE_H
#define LECTERN_HTTP_EXCHANGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gate;
struct lws;

typedef struct http_exchange http_exchange;

/* Told of every exchange a route named (http_exchange_route) when it ends:
 * the route, the request's method, the status written (0: the client went
 * before the whole answer was written), how long since it was named, and
 * the client's address. */
typedef void (*http_observe_fn)(void *ctx, int route, const char *method, unsigned status,
                                uint64_t us, const char *peer);

/* What every exchange of a server shares (the protocols' user pointer). */
typedef struct http_exchange_conf {
    int write_timeout_s;     /* http.write_timeout_s: the whole response by then */
    http_observe_fn observe; /* NULL: none */
    void *observe_ctx;
} http_exchange_conf;

/* Answer now (from LWS_CALLBACK_HTTP): status, a static content type and
 * len bytes of body (copied). *x receives the exchange, replacing any
 * before. Each returns lws's convention: 0 to continue, -1 to close. */
int http_exchange_respond(struct lws *wsi, http_exchange **x, unsigned status,
                          const char *ctype, const char *body, size_t len);
/* The same with a JSON body (takes ownership of v). */
int http_exchange_json(struct lws *wsi, http_exchange **x, unsigned status, json_t *v);
/* {"error": why} with status. */
int http_exchange_error(struct lws *wsi, http_exchange **x, unsigned status, const char *why);
/* 503 {"error": why} with Retry-After: retry_after_s. */
int http_exchange_busy(struct lws *wsi, http_exchange **x, const char *why, int retry_after_s);
/* 401 {"error":"authentication required"} with a Bearer challenge. */
int http_exchange_unauthorized(struct lws *wsi, http_exchange **x);

/* The request is route `route` (>= 0) for the conf's observer: from now
 * on, whatever exchange answers it (this call keeps the name across
 * replacements) is reported once when it ends. Call before answering. */
void http_exchange_route(struct lws *wsi, http_exchange **x, int route);

/* Start an exchange whose answer comes later, through http_exchange_answer
 * or http_exchange_answer_json (exactly once). */
http_exchange *http_exchange_wait(struct lws *wsi, http_exchange **x);
/* No answer will come for e after all (the call that would have given it
 * refused at once): e may now be replaced by an immediate answer. */
void http_exchange_unwait(http_exchange *e);
/* Has the client gone while e waited? (Its answer will only free it.) */
bool http_exchange_orphaned(const http_exchange *e);

/* e holds a slot of g (taken by the caller); it is given back when the
 * exchange ends, answered or not. */
void http_exchange_hold(http_exchange *e, struct gate *g);
/* e owns data until it ends (free_fn(data) then); for the route that
 * answers it later. http_exchange_data returns it. */
void http_exchange_keep(http_exchange *e, void *data, void (*free_fn)(void *));
void *http_exchange_data(const http_exchange *e);

/* Requests with a body (PUT, PATCH): lws reads the body before it lets a
 * response be written. http_exchange_read_body starts an exchange that
 * reads it (owned by *x like any other; data kept as by
 * http_exchange_keep): LWS_CALLBACK_HTTP_BODY hands each piece to
 * http_exchange_body_in, which keeps the first max bytes and only counts
 * the rest; at LWS_CALLBACK_HTTP_BODY_COMPLETION the route reads it with
 * http_exchange_request_body, then answers at once (the answer replaces
 * the exchange) or calls http_exchange_await and answers later. */
void http_exchange_read_body(struct lws *wsi, http_exchange **x, size_t max, void *data,
                             void (*free_fn)(void *));
/* Is e reading a body (http_exchange_read_body, not yet answered)? Accepts NULL. */
bool http_exchange_reading(const http_exchange *e);
/* A piece of the body (ignored unless e is reading one). */
void http_exchange_body_in(http_exchange *e, const void *in, size_t len);
/* The body read so far: its bytes (NUL-terminated; "" when none) and
 * length; *over when it went past max (the bytes are then not all there). */
const char *http_exchange_request_body(const http_exchange *e, size_t *len, bool *over);
/* The exchange (reading a body, now read) waits for its answer, exactly as
 * after http_exchange_wait; its request body is freed. */
void http_exchange_await(http_exchange *e);

/* Fills dst with the len bytes of a body. */
typedef void (*http_fill_fn)(void *ctx, unsigned char *dst);

/* The answer of an exchange from http_exchange_wait: status, content type
 * (a static string) and a body of len bytes, written by fill into the one
 * buffer that goes out. When the client has gone meanwhile, the exchange is
 * freed instead (fill is not called). e is not to be used afterwards. */
void http_exchange_answer(http_exchange *e, unsigned status, const char *ctype, size_t len,
                          http_fill_fn fill, void *ctx);
/* The answer as JSON (value borrowed); value NULL: 503 {"error": why}. As
 * http_exchange_answer otherwise. */
void http_exchange_answer_json(http_exchange *e, json_t *value, const char *why);
/* The answer as JSON (value borrowed) with this status; _error: {"error":
 * why}. As http_exchange_answer otherwise. */
void http_exchange_answer_status(http_exchange *e, unsigned status, json_t *value);
void http_exchange_answer_error(http_exchange *e, unsigned status, const char *why);

/* LWS_CALLBACK_HTTP_WRITEABLE: write the headers, or the next chunk of the
 * body. */
int http_exchange_writeable(struct lws *wsi, http_exchange **x);
/* The exchange is over (connection closed or protocol dropped). Accepts
 * *x == NULL. */
void http_exchange_done(http_exchange **x);

#endif
