/* httpd.c — a minimal HTTP/1.x responder on libuv (see httpd.h).
 *
 * Each accepted connection reads into a fixed buffer until the end of the
 * request head ("\r\n\r\n"), parses only the request line, calls the
 * handler, writes "HTTP/1.1 <status>" with Content-Length and
 * Connection: close, and closes. A head larger than the buffer gets 431, a
 * method other than GET 405, a malformed line 400. Connections are kept in
 * a list so httpd_destroy can close them; a connection frees itself in its
 * close callback.
 */
#include "httpd.h"

#include "mem.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTPD_HEAD_MAX 8192

typedef struct httpd_conn {
    uv_tcp_t tcp;
    uv_write_t wr;
    httpd *h;
    struct httpd_conn *prev, *next;
    bool closing;
    size_t len;
    char *out;
    char in[HTTPD_HEAD_MAX];
} httpd_conn;

struct httpd {
    uv_tcp_t listener;
    httpd_fn fn;
    void *ctx;
    httpd_conn *conns;
    bool destroyed;
};

static void httpd_on_conn_closed(uv_handle_t *hd)
{
    httpd_conn *c = hd->data;
    free(c->out);
    free(c);
}

static void httpd_conn_close(httpd_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, httpd_on_conn_closed);
}

static void httpd_on_written(uv_write_t *wr, int status)
{
    (void)status;
    httpd_conn_close(wr->data);
}

static const char *httpd_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void httpd_respond(httpd_conn *c, int status, const char *ctype, const char *body,
                          size_t len)
{
    size_t cap = len + 256;
    c->out = xmalloc(cap);
    int n = snprintf(c->out, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     status, httpd_reason(status), ctype, len);
    memcpy(c->out + n, body, len);
    uv_buf_t b = uv_buf_init(c->out, (unsigned)((size_t)n + len));
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, httpd_on_written) != 0)
        httpd_conn_close(c);
}

static void httpd_handle(httpd_conn *c)
{
    char *eol = memchr(c->in, '\r', c->len);
    if (!eol) {
        httpd_respond(c, 400, "text/plain", "bad request line\n", 17);
        return;
    }
    *eol = '\0';
    char method[8], path[1024], version[16];
    if (sscanf(c->in, "%7s %1023s %15s", method, path, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0) {
        httpd_respond(c, 400, "text/plain", "bad request line\n", 17);
        return;
    }
    if (strcmp(method, "GET") != 0) {
        httpd_respond(c, 405, "text/plain", "only GET\n", 9);
        return;
    }
    char *q = strchr(path, '?');
    if (q)
        *q = '\0';
    buf body;
    buf_init(&body);
    const char *ctype = "text/plain; charset=utf-8";
    int status = c->h->fn(c->h->ctx, path, &body, &ctype);
    httpd_respond(c, status, ctype, body.data ? body.data : "", body.len);
    buf_deinit(&body);
}

static void httpd_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    httpd_conn *c = hd->data;
    *b = uv_buf_init(c->in + c->len, (unsigned)(HTTPD_HEAD_MAX - 1 - c->len));
}

static void httpd_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    httpd_conn *c = s->data;
    if (n < 0) {
        httpd_conn_close(c);
        return;
    }
    c->len += (size_t)n;
    c->in[c->len] = '\0';
    if (strstr(c->in, "\r\n\r\n"))
        httpd_handle(c);
    else if (c->len >= HTTPD_HEAD_MAX - 1)
        httpd_respond(c, 431, "text/plain", "request head too large\n", 23);
}

static void httpd_on_connection(uv_stream_t *server, int status)
{
    httpd *h = server->data;
    if (status < 0)
        return;
    httpd_conn *c = xcalloc(1, sizeof *c);
    c->h = h;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, httpd_alloc, httpd_on_read) != 0)
        httpd_conn_close(c);
}

static void httpd_on_listener_closed(uv_handle_t *hd)
{
    free(hd->data);
}

httpd *httpd_create(uv_loop_t *loop, const char *addr, int port, httpd_fn fn, void *ctx,
                    char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    if (uv_ip4_addr(addr, port, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&sa) != 0) {
        snprintf(err, errlen, "http.listen: not an IP address: %s", addr);
        return NULL;
    }
    httpd *h = xcalloc(1, sizeof *h);
    h->fn = fn;
    h->ctx = ctx;
    uv_tcp_init(loop, &h->listener);
    h->listener.data = h;
    int rc = uv_tcp_bind(&h->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->listener, 64, httpd_on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "http: cannot listen on %s:%d: %s", addr, port, uv_strerror(rc));
        uv_close((uv_handle_t *)&h->listener, httpd_on_listener_closed);
        return NULL;
    }
    return h;
}

void httpd_destroy(httpd *h)
{
    if (!h)
        return;
    while (h->conns)
        httpd_conn_close(h->conns);
    uv_close((uv_handle_t *)&h->listener, httpd_on_listener_closed);
}
