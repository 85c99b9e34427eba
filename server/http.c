/* http.c — HTTP routes and WebSocket upgrade vetting.
 *
 * Requests. LWS_CALLBACK_HTTP starts an exchange: the handler builds the
 * whole response body (small JSON or the metrics text), the headers are
 * written at once, and the body is written from the HTTP_WRITEABLE callback,
 * as libwebsockets requires. Errors are JSON objects with an "error" member
 * saying why.
 *
 * Upgrades. libwebsockets binds a WebSocket to the first subprotocol in the
 * client's list that the vhost knows; STOMP servers (RabbitMQ Web-STOMP
 * among them) instead pick the highest STOMP version offered. lws offers no
 * API to choose, but it matches offered names against the vhost's protocol
 * table by strcmp on name strings that the vhost shares with us, and it does
 * so synchronously right after LWS_CALLBACK_HTTP_CONFIRM_UPGRADE. So, for the
 * duration of one upgrade, the names of the lower versions the client
 * offered are disabled (their first byte changed) and restored as soon as
 * the choice is made (http_upgrade_chosen, from FILTER_PROTOCOL_CONNECTION)
 * or, should the upgrade fail in between, at the start of the next one. An
 * integration test pins this behaviour.
 */
#include "http.h"

#include "log.h"
#include "mem.h"
#include "server.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct http_exchange {
    size_t len;
    unsigned char body[];    /* LWS_PRE bytes of headroom, then len bytes */
};

/* The subprotocol names. Writable on purpose: see the essay above. */
static char http_proto_names[3][10] = { "v12.stomp", "v11.stomp", "v10.stomp" };

const char *http_protocol_name(int version)
{
    return http_proto_names[version == 12 ? 0 : version == 11 ? 1 : 2];
}

static void http_restore_protocol_names(void)
{
    for (int i = 0; i < 3; i++)
        http_proto_names[i][0] = 'v';
}

void http_upgrade_chosen(void)
{
    http_restore_protocol_names();
}

/* "v12.stomp" -> 12, anything else -> 0. */
static int http_token_version(const char *t, size_t n)
{
    static const char *const names[] = { "v12.stomp", "v11.stomp", "v10.stomp" };
    static const int versions[] = { 12, 11, 10 };
    for (int i = 0; i < 3; i++)
        if (n == 9 && !memcmp(t, names[i], 9))
            return versions[i];
    return 0;
}

/* Highest STOMP version among the offered subprotocols: 0 when none. */
static int http_best_offered(const char *list)
{
    int best = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *t = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        int v = http_token_version(t, (size_t)(p - t));
        if (v > best)
            best = v;
    }
    return best;
}

int http_confirm_upgrade(struct server *srv, struct lws *wsi)
{
    const server_config *c = server_conf(srv);
    char path[512], offered[512];

    http_restore_protocol_names();
    if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) <= 0 ||
        strcmp(path, c->ws_path)) {
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND,
                               "No WebSocket endpoint at this path");
        return 1;
    }
    int n = lws_hdr_copy(wsi, offered, sizeof offered, WSI_TOKEN_PROTOCOL);
    if (n < 0) {
        lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST,
                               "Sec-WebSocket-Protocol header too long");
        return 1;
    }
    if (n == 0)
        return 0;       /* no subprotocol: the default protocol speaks STOMP */
    int best = http_best_offered(offered);
    if (!best) {
        lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST,
                               "Unsupported WebSocket subprotocol: offer v12.stomp, "
                               "v11.stomp or v10.stomp");
        return 1;
    }
    for (int v = 10; v <= 12; v++)
        if (v != best)
            http_proto_names[v == 12 ? 0 : v == 11 ? 1 : 2][0] = '-';
    return 0;
}

static int http_respond(struct lws *wsi, http_exchange **x, unsigned status,
                        const char *ctype, const char *body, size_t len)
{
    unsigned char hdr[LWS_PRE + 1024];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;

    if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)len, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    http_exchange *e = xmalloc(sizeof *e + LWS_PRE + len);
    e->len = len;
    memcpy(e->body + LWS_PRE, body, len);
    http_done(x);
    *x = e;
    lws_callback_on_writable(wsi);
    return 0;
}

/* Respond with a JSON value (takes ownership of v). */
static int http_respond_json(struct lws *wsi, http_exchange **x, unsigned status, json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!text)
        return -1;
    int r = http_respond(wsi, x, status, "application/json", text, strlen(text));
    free(text);
    return r;
}

static int http_error(struct lws *wsi, http_exchange **x, unsigned status, const char *why)
{
    return http_respond_json(wsi, x, status, json_pack("{s:s}", "error", why));
}

static const char *http_mime(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        { ".html", "text/html; charset=utf-8" },
        { ".js", "text/javascript; charset=utf-8" },
        { ".mjs", "text/javascript; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" },
        { ".json", "application/json" },
        { ".svg", "image/svg+xml" },
        { ".png", "image/png" },
        { ".ico", "image/x-icon" },
        { ".txt", "text/plain; charset=utf-8" },
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dot, types[i].ext))
            return types[i].type;
    return NULL;
}

/* A static file below http.static_dir. Only names made of A-Z a-z 0-9 . _ -
 * separated by '/', none starting with '.', are served: no traversal, no
 * hidden files, no surprises from encodings. */
static int http_static(struct server *srv, struct lws *wsi, http_exchange **x, const char *uri)
{
    const char *dir = server_conf(srv)->static_dir;
    char rel[256], full[1024];

    if (!dir[0] || uri[0] != '/')
        return http_error(wsi, x, HTTP_STATUS_NOT_FOUND, "no such resource");
    int n = snprintf(rel, sizeof rel, "%s%s", uri, uri[strlen(uri) - 1] == '/' ? "index.html" : "");
    if (n < 0 || (size_t)n >= sizeof rel)
        return http_error(wsi, x, HTTP_STATUS_NOT_FOUND, "no such resource");
    for (const char *p = rel; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '/' || (c == '.' && p[-1] != '/');
        if (!ok || (c == '/' && p[1] == '/'))
            return http_error(wsi, x, HTTP_STATUS_NOT_FOUND, "no such resource");
    }
    const char *mime = http_mime(rel);
    struct stat st;
    snprintf(full, sizeof full, "%s%s", dir, rel);
    if (!mime || stat(full, &st) || !S_ISREG(st.st_mode))
        return http_error(wsi, x, HTTP_STATUS_NOT_FOUND, "no such resource");
    static const char extra[] = "x-content-type-options: nosniff\r\n";
    /* < 0: failed, close; otherwise lws streams the file and reports
     * LWS_CALLBACK_HTTP_FILE_COMPLETION (handled by lws's dummy callback). */
    return lws_serve_http_file(wsi, full, mime, extra, (int)sizeof extra - 1) < 0 ? -1 : 0;
}

int http_request(struct server *srv, struct lws *wsi, http_exchange **x, const char *uri)
{
    server_metrics(srv)->http_requests++;

    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
        /* lws reads a request body before it lets us write: answer once the
         * body is in (http_body_done), or now when there is none. */
        char cl[24];
        if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 && atoll(cl) > 0)
            return 0;
        return http_body_done(srv, wsi, x);
    }

    if (!strcmp(uri, "/healthz")) {
        metrics_gauges g;
        server_gauges(srv, &g);
        return http_respond_json(wsi, x, HTTP_STATUS_OK,
                                 json_pack("{s:s, s:s, s:I}", "status", "ok", "version",
                                           LECTERN_VERSION, "connections",
                                           (json_int_t)g.connections));
    }
    if (!strcmp(uri, "/metrics")) {
        metrics_gauges g;
        buf b;
        buf_init(&b);
        server_gauges(srv, &g);
        metrics_render(server_metrics(srv), &g, &b);
        int r = http_respond(wsi, x, HTTP_STATUS_OK, "text/plain; version=0.0.4",
                             b.data ? b.data : "", b.len);
        buf_deinit(&b);
        return r;
    }
    return http_static(srv, wsi, x, uri);
}

int http_body_done(struct server *srv, struct lws *wsi, http_exchange **x)
{
    (void)srv;
    return http_error(wsi, x, HTTP_STATUS_METHOD_NOT_ALLOWED, "only GET is supported");
}

int http_writeable(struct lws *wsi, http_exchange **x)
{
    http_exchange *e = *x;
    if (!e)
        return 0;
    int n = lws_write(wsi, e->body + LWS_PRE, e->len, LWS_WRITE_HTTP_FINAL);
    http_done(x);
    if (n < 0)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void http_done(http_exchange **x)
{
    free(*x);
    *x = NULL;
}
