/* httpd.c — health and metrics over HTTP with libwebsockets (see httpd.h).
 *
 * Set up as lectern-server does it: our own uv_loop_t handed to lws as a
 * foreign loop (LWS_SERVER_OPTION_LIBUV), the vhost created explicitly
 * (LWS_SERVER_OPTION_EXPLICIT_VHOSTS), and the listening socket our own
 * (lib/listener), bound exactly where http.listen says: lws's own listener
 * binds every address for some texts and nothing at all for others.
 *
 * Lifetime quirks of Debian's lws 4.1.6: the context must be destroyed from
 * inside the running loop (destroyed outside it, lws unloads its libuv
 * plugin while that plugin's handle-close callbacks are still pending); lws
 * then finishes the destroy in a second lws_context_destroy once the loop
 * has closed its handles. `ctx` is registered as info.pcontext, so lws
 * clears it when the context is completely gone.
 *
 * A request: LWS_CALLBACK_HTTP asks the route for the whole answer, writes
 * the headers and asks for a writable callback, in which the body goes out
 * as the final write (lws requires the body to be written from there). The
 * answer lives in the connection's per-session data until written or the
 * connection closes.
 */
#include "httpd.h"

#include "listener.h"
#include "log.h"
#include "lwslog.h"
#include "mem.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct httpd {
    uv_loop_t *loop;
    httpd_route_fn route;
    void *ctx;
    struct lws_context *lws;
    struct lws_vhost *vhost;
    listener *listen;
    struct lws_protocols protocols[2];
    uv_timer_t closer;           /* a failed start: destroys lws inside the loop */
    int port;
    bool closing;
};

/* Per connection: the answer waiting for its writable callback. */
typedef struct httpd_conn {
    unsigned char *out;          /* LWS_PRE headroom, then len bytes */
    size_t len;
} httpd_conn;

static void httpd_conn_clear(httpd_conn *c)
{
    if (!c)
        return;
    free(c->out);
    c->out = NULL;
    c->len = 0;
}

/* Write the headers now and queue the body for the writable callback. */
static int httpd_answer(struct lws *wsi, httpd_conn *c, unsigned status, const char *ctype,
                        const char *body, size_t len)
{
    unsigned char hdr[LWS_PRE + 512];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;

    httpd_conn_clear(c);
    c->out = xmalloc(LWS_PRE + len);
    memcpy(c->out + LWS_PRE, body, len);
    c->len = len;
    if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)len, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end)) {
        /* The client is gone. lws closes a connection whose LWS_CALLBACK_HTTP
         * failed without a close callback, so the answer is freed here. */
        httpd_conn_clear(c);
        return -1;
    }
    lws_callback_on_writable(wsi);
    return 0;
}

static int httpd_get(httpd *h, struct lws *wsi, httpd_conn *c, const char *path)
{
    buf body;
    const char *ctype = "text/plain; charset=utf-8";
    buf_init(&body);
    unsigned status = h->route(h->ctx, path, &body, &ctype);
    int r = httpd_answer(wsi, c, status, ctype, body.data ? body.data : "", body.len);
    buf_deinit(&body);
    return r;
}

static int httpd_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                          void *in, size_t len)
{
    httpd *h = lws_context_user(lws_get_context(wsi));
    httpd_conn *c = user;
    static const char not_get[] = "{\"error\":\"only GET is supported\"}";

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
            return httpd_get(h, wsi, c, in);
        /* Not a GET: answer once its body (if any) has been read. */
        {
            char cl[24];
            if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
                atoll(cl) > 0)
                return 0;
        }
        return httpd_answer(wsi, c, HTTP_STATUS_METHOD_NOT_ALLOWED, "application/json",
                            not_get, sizeof not_get - 1);
    case LWS_CALLBACK_HTTP_BODY:
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return httpd_answer(wsi, c, HTTP_STATUS_METHOD_NOT_ALLOWED, "application/json",
                            not_get, sizeof not_get - 1);
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        if (!c || !c->out)
            return 0;
        int n = lws_write(wsi, c->out + LWS_PRE, c->len, LWS_WRITE_HTTP_FINAL);
        httpd_conn_clear(c);
        if (n < 0)
            return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        httpd_conn_clear(c);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static void httpd_on_closer(uv_timer_t *t)
{
    httpd *h = t->data;
    uv_close((uv_handle_t *)&h->closer, NULL);
    httpd_close(h);
}

/* A failed start: take lws down inside the loop, then free. */
static void httpd_abort(httpd *h)
{
    uv_timer_start(&h->closer, httpd_on_closer, 0, 0);
    uv_run(h->loop, UV_RUN_DEFAULT);
    httpd_destroy(h);
}

httpd *httpd_create(uv_loop_t *loop, int port, const char *listen, httpd_route_fn route,
                    void *ctx, char *err, size_t errlen)
{
    httpd *h = xcalloc(1, sizeof *h);
    h->loop = loop;
    h->route = route;
    h->ctx = ctx;
    uv_timer_init(loop, &h->closer);
    h->closer.data = h;

    h->protocols[0].name = "http";
    h->protocols[0].callback = httpd_callback;
    h->protocols[0].per_session_data_size = sizeof(httpd_conn);
    h->protocols[0].rx_buffer_size = 1024;

    lwslog_install(LLL_ERR | LLL_WARN);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *loops[1] = { loop };
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = h->protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DISABLE_IPV6 |
                   LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = loops;
    info.user = h;
    info.pcontext = &h->lws;
    info.vhost_name = "default";
    h->lws = lws_create_context(&info);
    if (!h->lws) {
        snprintf(err, errlen, "cannot create the libwebsockets context");
        httpd_abort(h);
        return NULL;
    }
    h->vhost = lws_create_vhost(h->lws, &info);
    struct sockaddr_in at;
    if (!h->vhost) {
        snprintf(err, errlen, "cannot create the libwebsockets vhost");
        httpd_abort(h);
        return NULL;
    }
    if (listener_resolve("http.listen", listen, port, &at, err, errlen) < 0 ||
        !(h->listen = listener_create(loop, h->vhost, &at, false, NULL, err, errlen))) {
        httpd_abort(h);
        return NULL;
    }
    h->port = ntohs(listener_addr(h->listen)->sin_port);
    return h;
}

int httpd_port(const httpd *h)
{
    return h->port;
}

void httpd_close(httpd *h)
{
    if (!h || h->closing)
        return;
    h->closing = true;
    listener_destroy(h->listen);
    h->listen = NULL;
    if (!uv_is_closing((uv_handle_t *)&h->closer))
        uv_close((uv_handle_t *)&h->closer, NULL);
    if (h->lws)
        lws_context_destroy(h->lws);
}

void httpd_destroy(httpd *h)
{
    if (!h)
        return;
    if (h->lws)
        lws_context_destroy(h->lws);    /* the second half, after the loop ran dry */
    free(h);
}
