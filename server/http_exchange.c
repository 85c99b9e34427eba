/* http_exchange.c — one HTTP request's answer (see http_exchange.h).
 *
 * LWS_CALLBACK_HTTP starts an exchange. A response is a status, a
 * content type and a body built whole, once, in a buffer with LWS_PRE bytes
 * of headroom (small JSON, the metrics text, a history page). Answers known
 * at once have their headers written in that callback and the body from
 * HTTP_WRITEABLE, as libwebsockets requires. Answers that need Redis or
 * MySQL (presence, history) are asynchronous: the exchange waits (state
 * WAITING) until the registry or history calls back, then asks for a
 * writable callback in which it writes the headers, and the body in the
 * next ones. If the client goes away first the exchange is only marked
 * orphaned, and the callback frees it. Errors are JSON objects with an
 * "error" member saying why.
 *
 * Bodies go out HTTP_CHUNK bytes per writable callback, so lws never holds
 * more than one chunk of ours that the socket has not taken, and a client
 * must take the whole response within http.write_timeout_s or is dropped
 * (a client that stops reading cannot keep its buffer, or a history slot,
 * for ever). An exchange may hold a slot of a gate (history reads, see
 * http_history.c); it is given back whenever the exchange ends.
 *
 * A request with a body (PUT, PATCH) is first an exchange READING it:
 * owned by the connection like an answered one, keeping at most the
 * route's limit of body bytes and counting the rest, until the body is in
 * and the route answers or makes it wait.
 *
 * Invariant: an exchange in state WAITING is owned by the call it waits
 * for (the registry's or history's callback answers or frees it); in any
 * other state by the connection's *x, freed by http_exchange_done.
 */
#include "http_exchange.h"

#include "clock.h"
#include "gate.h"
#include "log.h"
#include "mem.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Body bytes per writable callback. */
#define HTTP_CHUNK 65536

enum { X_WAITING, X_READY, X_BODY, X_READING };

struct http_exchange {
    struct lws *wsi;
    int state;               /* X_WAITING: registry call in flight */
    bool orphan;             /* the connection closed while waiting */
    unsigned status;
    bool challenge;          /* 401: add WWW-Authenticate: Bearer */
    int retry_after_s;       /* > 0: add Retry-After */
    const char *ctype;       /* static string */
    size_t len, sent;
    unsigned char *body;     /* LWS_PRE bytes of headroom, then len bytes */
    void *data;              /* the route's, owned (http_exchange_keep) */
    void (*data_free)(void *);
    gate *slot;              /* a slot held until the exchange ends, or NULL */
    char *in;                /* X_READING: the request body (in_max + 1 bytes) */
    size_t in_len, in_cap, in_max;
    bool in_over;            /* more than in_max bytes came */
    const http_exchange_conf *conf;
    int route;               /* > 0: route - 1 is reported to conf->observe at the end */
    bool complete;           /* the whole answer was written */
    uint64_t t0_us;          /* when the route was named */
    char method[8];
    char peer[64];
};

static void http_exchange_free(http_exchange *e)
{
    if (!e)
        return;
    if (e->route && e->conf && e->conf->observe)
        e->conf->observe(e->conf->observe_ctx, e->route - 1, e->method,
                         e->complete ? e->status : 0, clock_us() - e->t0_us, e->peer);
    if (e->data_free)
        e->data_free(e->data);
    if (e->slot)
        gate_leave(e->slot);
    free(e->in);
    free(e->body);
    free(e);
}

/* Give e a response of len body bytes: returns where the body goes. */
static unsigned char *http_body(http_exchange *e, unsigned status, const char *ctype, size_t len)
{
    free(e->body);
    e->status = status;
    e->ctype = ctype;
    e->len = len;
    e->body = xmalloc(LWS_PRE + len);
    return e->body + LWS_PRE;
}

/* Fill e with a response (body copied). */
static void http_set_response(http_exchange *e, unsigned status, const char *ctype,
                              const char *body, size_t len)
{
    memcpy(http_body(e, status, ctype, len), body, len);
}

/* A waiting exchange has its answer: write it once the socket is writable. */
static void http_ready(http_exchange *e)
{
    e->state = X_READY;
    lws_callback_on_writable(e->wsi);
}

static const char http_challenge[] = "Bearer realm=\"lectern\"";

/* Write the headers of the exchange in *x and ask for the body's writable
 * callback. When the write fails (the client is gone) the exchange is freed
 * here and *x cleared: the caller returns -1, and lws closes a connection
 * whose callback failed without any further callback that could free it. */
static int http_write_headers(http_exchange **x)
{
    http_exchange *e = *x;
    const http_exchange_conf *conf = lws_get_protocol(e->wsi)->user;
    unsigned char hdr[LWS_PRE + 1024];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    char retry[16];
    int nretry = snprintf(retry, sizeof retry, "%d", e->retry_after_s);
    if (lws_add_http_common_headers(e->wsi, e->status, e->ctype, (lws_filepos_t)e->len, &p,
                                    end) ||
        lws_add_http_header_by_name(e->wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        (e->challenge &&
         lws_add_http_header_by_name(e->wsi, (const unsigned char *)"www-authenticate:",
                                     (const unsigned char *)http_challenge,
                                     (int)sizeof http_challenge - 1, &p, end)) ||
        (e->retry_after_s > 0 &&
         lws_add_http_header_by_name(e->wsi, (const unsigned char *)"retry-after:",
                                     (const unsigned char *)retry, nretry, &p, end)) ||
        lws_finalize_write_http_header(e->wsi, start, &p, end)) {
        log_debug("http_write_failed", "status=%u part=headers", e->status);
        http_exchange_done(x);
        return -1;
    }
    e->state = X_BODY;
    /* The whole response within http.write_timeout_s, or the connection
     * goes (lws closes it; http_done then frees the exchange). */
    lws_set_timeout(e->wsi, PENDING_TIMEOUT_HTTP_CONTENT, conf->write_timeout_s);
    lws_callback_on_writable(e->wsi);
    return 0;
}

static http_exchange *http_exchange_new(struct lws *wsi, http_exchange **x)
{
    http_exchange *e = xcalloc(1, sizeof *e);
    if (*x && (*x)->route) {
        /* The request's name goes on to whatever answers it. */
        http_exchange *old = *x;
        e->route = old->route;
        e->t0_us = old->t0_us;
        memcpy(e->method, old->method, sizeof e->method);
        memcpy(e->peer, old->peer, sizeof e->peer);
        old->route = 0;
    }
    http_exchange_done(x);
    e->conf = lws_get_protocol(wsi)->user;
    e->wsi = wsi;
    e->state = X_READY;     /* answered now; http_exchange_wait makes it X_WAITING */
    *x = e;
    return e;
}

int http_exchange_respond(struct lws *wsi, http_exchange **x, unsigned status,
                          const char *ctype, const char *body, size_t len)
{
    http_exchange *e = http_exchange_new(wsi, x);
    http_set_response(e, status, ctype, body, len);
    return http_write_headers(x);
}

static char *http_json_text(json_t *v, size_t *len)
{
    char *text = json_dumps(v, JSON_COMPACT);
    *len = text ? strlen(text) : 0;
    return text;
}

/* {"error": why} as text (the caller frees it), or NULL. */
static char *http_error_text(const char *why, size_t *len)
{
    json_t *v = json_pack("{s:s}", "error", why);
    char *text = v ? http_json_text(v, len) : NULL;
    json_decref(v);
    return text;
}

int http_exchange_json(struct lws *wsi, http_exchange **x, unsigned status, json_t *v)
{
    size_t len;
    char *text = http_json_text(v, &len);
    json_decref(v);
    if (!text)
        return -1;
    int r = http_exchange_respond(wsi, x, status, "application/json", text, len);
    free(text);
    return r;
}

int http_exchange_error(struct lws *wsi, http_exchange **x, unsigned status, const char *why)
{
    return http_exchange_json(wsi, x, status, json_pack("{s:s}", "error", why));
}

int http_exchange_busy(struct lws *wsi, http_exchange **x, const char *why, int retry_after_s)
{
    size_t len;
    char *text = http_error_text(why, &len);
    if (!text)
        return -1;
    http_exchange *e = http_exchange_new(wsi, x);
    http_set_response(e, HTTP_STATUS_SERVICE_UNAVAILABLE, "application/json", text, len);
    free(text);
    e->retry_after_s = retry_after_s;
    return http_write_headers(x);
}

void http_exchange_answer_status(http_exchange *e, unsigned status, json_t *value)
{
    if (e->orphan) {
        http_exchange_free(e);
        return;
    }
    size_t len;
    char *text = http_json_text(value, &len);
    http_set_response(e, status, "application/json", text ? text : "{}", text ? len : 2);
    free(text);
    http_ready(e);
}

void http_exchange_answer_error(http_exchange *e, unsigned status, const char *why)
{
    json_t *v = json_pack("{s:s}", "error", why);
    http_exchange_answer_status(e, status, v);
    json_decref(v);
}

void http_exchange_answer_json(http_exchange *e, json_t *value, const char *why)
{
    if (value)
        http_exchange_answer_status(e, HTTP_STATUS_OK, value);
    else
        http_exchange_answer_error(e, HTTP_STATUS_SERVICE_UNAVAILABLE, why);
}

void http_exchange_route(struct lws *wsi, http_exchange **x, int route)
{
    static const struct { enum lws_token_indexes tok; const char *name; } methods[] = {
        { WSI_TOKEN_GET_URI, "GET" },       { WSI_TOKEN_POST_URI, "POST" },
        { WSI_TOKEN_PUT_URI, "PUT" },       { WSI_TOKEN_PATCH_URI, "PATCH" },
        { WSI_TOKEN_DELETE_URI, "DELETE" },
    };
    http_exchange *e = *x && (*x)->route ? *x : http_exchange_new(wsi, x);
    e->route = route + 1;
    e->t0_us = clock_us();
    snprintf(e->method, sizeof e->method, "-");
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (lws_hdr_total_length(wsi, methods[i].tok) > 0)
            snprintf(e->method, sizeof e->method, "%s", methods[i].name);
    if (!lws_get_peer_simple(wsi, e->peer, sizeof e->peer))
        e->peer[0] = '\0';
}

http_exchange *http_exchange_wait(struct lws *wsi, http_exchange **x)
{
    http_exchange *e = http_exchange_new(wsi, x);
    e->state = X_WAITING;
    return e;
}

void http_exchange_unwait(http_exchange *e)
{
    e->state = X_READY;
}

bool http_exchange_orphaned(const http_exchange *e)
{
    return e->orphan;
}

void http_exchange_hold(http_exchange *e, gate *g)
{
    e->slot = g;
}

void http_exchange_keep(http_exchange *e, void *data, void (*free_fn)(void *))
{
    e->data = data;
    e->data_free = free_fn;
}

void *http_exchange_data(const http_exchange *e)
{
    return e->data;
}

void http_exchange_answer(http_exchange *e, unsigned status, const char *ctype, size_t len,
                          http_fill_fn fill, void *ctx)
{
    if (e->orphan) {
        http_exchange_free(e);
        return;
    }
    fill(ctx, http_body(e, status, ctype, len));
    http_ready(e);
}

int http_exchange_unauthorized(struct lws *wsi, http_exchange **x)
{
    static const char body[] = "{\"error\":\"authentication required\"}";
    http_exchange *e = http_exchange_new(wsi, x);
    e->challenge = true;
    http_set_response(e, HTTP_STATUS_UNAUTHORIZED, "application/json", body, sizeof body - 1);
    return http_write_headers(x);
}

void http_exchange_read_body(struct lws *wsi, http_exchange **x, size_t max, void *data,
                             void (*free_fn)(void *))
{
    http_exchange *e = http_exchange_new(wsi, x);
    e->state = X_READING;
    e->in_max = max;
    e->data = data;
    e->data_free = free_fn;
}

bool http_exchange_reading(const http_exchange *e)
{
    return e && e->state == X_READING;
}

void http_exchange_body_in(http_exchange *e, const void *in, size_t len)
{
    if (!e || e->state != X_READING || !len)
        return;     /* lws may report an empty body as (NULL, 0) */
    /* Counted as it arrives; kept only up to the limit, in a buffer that
     * grows with what came (a Content-Length promises nothing). */
    if (e->in_over || len > e->in_max - e->in_len) {
        e->in_over = true;
        return;
    }
    if (e->in_len + len + 1 > e->in_cap) {
        size_t cap = e->in_cap ? e->in_cap * 2 : 4096;
        while (cap < e->in_len + len + 1)
            cap *= 2;
        if (cap > e->in_max + 1)
            cap = e->in_max + 1;
        e->in = xrealloc(e->in, cap);
        e->in_cap = cap;
    }
    memcpy(e->in + e->in_len, in, len);
    e->in_len += len;
    e->in[e->in_len] = '\0';
}

const char *http_exchange_request_body(const http_exchange *e, size_t *len, bool *over)
{
    *len = e->in_len;
    *over = e->in_over;
    return e->in ? e->in : "";
}

void http_exchange_await(http_exchange *e)
{
    free(e->in);
    e->in = NULL;
    e->in_len = e->in_cap = 0;
    e->state = X_WAITING;
}

int http_exchange_writeable(struct lws *wsi, http_exchange **x)
{
    http_exchange *e = *x;
    if (!e || e->state == X_WAITING || e->state == X_READING)
        return 0;
    if (e->state == X_READY)
        return http_write_headers(x);
    /* The bytes before this chunk have gone out: they serve as its LWS_PRE. */
    size_t n = e->len - e->sent < HTTP_CHUNK ? e->len - e->sent : HTTP_CHUNK;
    bool last = e->sent + n == e->len;
    int w = lws_write(wsi, e->body + LWS_PRE + e->sent, n,
                      last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    if (w < 0) {
        http_exchange_done(x);
        return -1;
    }
    e->sent += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    e->complete = true;
    http_exchange_done(x);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void http_exchange_done(http_exchange **x)
{
    http_exchange *e = *x;
    *x = NULL;
    if (e && e->state == X_WAITING)
        e->orphan = true;       /* the registry callback frees it */
    else
        http_exchange_free(e);
}
