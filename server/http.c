/* http.c — HTTP routes and WebSocket upgrade vetting.
 *
 * History pages (GET /api/rooms/<room>/messages) are http_history.c's,
 * the contacts API (/api/users/<id>/contacts, every method) is
 * http_contacts.c's, redaction (DELETE /api/rooms/<room>/messages/<id>)
 * http_redact.c's, kick, ban and mute (POST /api/rooms/<room>/<action>, GET
 * /api/rooms/<room>/moderation) http_moderation.c's.
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
#include "http_query.h"

#include "apilog.h"
#include "auth.h"
#include "buf.h"
#include "http_admin.h"
#include "http_history.h"
#include "http_moderation.h"
#include "http_publish.h"
#include "http_redact.h"
#include "http_status.h"
#include "log.h"
#include "mem.h"
#include "origin.h"
#include "registry.h"
#include "room.h"
#include "userid.h"
#include "version.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


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

/* websocket.allowed_origins (origin.h): true when the upgrade may go on;
 * otherwise 403 has been answered. */
static bool http_origin_allowed(const http_env *env, struct lws *wsi)
{
    const origin_list *ol = env->origins;
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (origin_list_any(ol) || len <= 0)
        return true;        /* no Origin: not a browser (see origin.h) */
    char origin[1100];
    bool ok = len < (int)sizeof origin &&
              lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) == len &&
              origin_list_allows(ol, origin, (size_t)len);
    if (ok)
        return true;
    char q[160], addr[64];
    if (!lws_get_peer_simple(wsi, addr, sizeof addr))
        snprintf(addr, sizeof addr, "-");
    env->metrics->origin_rejects++;
    log_info("origin_refused", "peer=%s origin=%s", addr,
             log_q(q, sizeof q, len < (int)sizeof origin ? origin : "(too long)",
                   len < (int)sizeof origin ? (size_t)len : 10));
    lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN,
                           "This page's origin may not open WebSockets here "
                           "(websocket.allowed_origins)");
    return false;
}

int http_confirm_upgrade(const http_env *env, struct lws *wsi)
{
    const server_config *c = env->conf;
    char path[512], offered[512];

    http_restore_protocol_names();
    if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) <= 0 ||
        strcmp(path, c->ws_path)) {
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND,
                               "No WebSocket endpoint at this path");
        return 1;
    }
    if (!http_origin_allowed(env, wsi))
        return 1;
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

/* A registry answer (value NULL: the registry failed). */
static void http_on_registry_json(void *ctx, json_t *value)
{
    http_exchange_answer_json(ctx, value, "registry (Redis) unavailable");
}

/* GET /api/rooms/<room>/presence, /api/rooms/<room>/messages, for who
 * (NULL with auth.mode=none, or for a server key: keyed). */
static int http_room_route(const http_env *env, struct lws *wsi, http_exchange **x,
                           const char *rest, const jwt_claims *who, bool keyed)
{
    const char *slash = strchr(rest, '/');
    if (!slash || (strcmp(slash, "/presence") && strcmp(slash, "/messages")))
        return http_exchange_error(wsi, x, HTTP_STATUS_NOT_FOUND, "no such resource");
    size_t n = (size_t)(slash - rest);
    if (!room_name_valid(rest, n, (size_t)env->conf->max_room_name))
        return http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST,
                          "room names are 1 to stomp.max_room_name characters of "
                          "A-Z a-z 0-9 . _ ~ -");
    if (!keyed && !auth_allows(env->auth, who, rest, n, AUTH_READ)) {
        env->metrics->access_denied++;
        return http_exchange_error(wsi, x, HTTP_STATUS_FORBIDDEN, "not permitted in this room");
    }
    if (!strcmp(slash, "/messages"))
        return http_history_request(env->conf, env->history, env->slots, wsi, x, rest, n);
    char name[1100];
    snprintf(name, sizeof name, "%.*s", (int)n, rest);
    http_exchange *e = http_exchange_wait(wsi, x);
    if (registry_presence(env->registry, name, http_on_registry_json, e) < 0) {
        /* Refused at once: no callback will come for e, so it is freed
         * here (the error replaces it), not left to one as an orphan. */
        http_exchange_unwait(e);
        return http_exchange_error(wsi, x, HTTP_STATUS_SERVICE_UNAVAILABLE,
                          "registry (Redis) unavailable");
    }
    return 0;
}

/* Whose /api/presence?users= answer is filtered (kept by its exchange). */
typedef struct http_viewer {
    const auth *auth;
    jwt_claims *who;         /* owned */
} http_viewer;

static void http_viewer_free(void *p)
{
    http_viewer *v = p;
    jwt_claims_free(v->who);
    free(v);
}

/* The rooms each asked user is present in ({"rooms":{user:[room...]}})
 * -> {"online":{user:bool}}: online only when present in a room the viewer
 * may read, so the answer says no more than the presence of those rooms
 * does. Anyone else is reported offline, like a user who does not exist. */
static void http_on_user_rooms(void *ctx, json_t *value)
{
    http_exchange *e = ctx;
    const http_viewer *viewer = http_exchange_data(e);
    json_t *rooms = json_object_get(value, "rooms");
    json_t *online = NULL;
    if (!http_exchange_orphaned(e) && rooms) {
        json_t *map = json_object();
        const char *user;
        json_t *list;
        json_object_foreach(rooms, user, list) {
            bool seen = false;
            for (size_t i = 0; !seen && i < json_array_size(list); i++) {
                json_t *r = json_array_get(list, i);
                seen = json_is_string(r) && auth_allows(viewer->auth, viewer->who,
                                                        json_string_value(r),
                                                        json_string_length(r), AUTH_READ);
            }
            json_object_set_new(map, user, json_boolean(seen));
        }
        online = json_pack("{s:o}", "online", map);
    }
    http_on_registry_json(e, online);
    json_decref(online);
}

/* GET /api/presence?users=a,b,c for who (NULL with auth.mode=none). Admins
 * (and auth.mode=none) see every user's online state; anyone else only
 * that of users present in a room they may read. Takes *who when it needs
 * it past this call. */
static int http_users_online(const http_env *env, struct lws *wsi, http_exchange **x,
                             jwt_claims **who)
{
    char arg[16384];
    /* Returns a pointer into arg just past "users=". */
    char *list = (char *)lws_get_urlarg_by_name(wsi, "users=", arg, sizeof arg);
    if (!list || !*list)
        return http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST,
                          "users= is required: a comma-separated list of user ids");
    int max = env->conf->http_max_users;
    const char **users = xmalloc((size_t)max * sizeof *users);
    size_t count = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (count == (size_t)max) {
            free(users);
            return http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST,
                              "too many users (more than http.max_users)");
        }
        users[count++] = tok;
    }
    if (!count) {
        free(users);
        return http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST, "users= lists no user id");
    }
    http_exchange *e = http_exchange_wait(wsi, x);
    int rc;
    if (*who && (*who)->role != JWT_ROLE_ADMIN) {
        http_viewer *viewer = xmalloc(sizeof *viewer);
        viewer->auth = env->auth;
        viewer->who = *who;
        *who = NULL;
        http_exchange_keep(e, viewer, http_viewer_free);
        rc = registry_users_rooms(env->registry, users, count, http_on_user_rooms, e);
    } else {
        rc = registry_users_online(env->registry, users, count, http_on_registry_json, e);
    }
    free(users);
    if (rc < 0) {
        http_exchange_unwait(e);    /* refused at once: see http_room_route */
        return http_exchange_error(wsi, x, HTTP_STATUS_SERVICE_UNAVAILABLE,
                          "registry (Redis) unavailable");
    }
    return 0;
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
 * hidden files, no surprises from encodings. A symbolic link is followed
 * only when it stays inside the directory: the file served is the one its
 * real path names, and that path must be below the directory's real path
 * (a link to /etc/passwd, or to a parent, is 404). */
static int http_static(const http_env *env, struct lws *wsi, http_exchange **x, const char *uri)
{
    const char *dir = env->conf->static_dir;
    char rel[256], full[1024], real_dir[PATH_MAX], real[PATH_MAX];

    if (!dir[0] || uri[0] != '/')
        return http_exchange_error(wsi, x, HTTP_STATUS_NOT_FOUND, "no such resource");
    int n = snprintf(rel, sizeof rel, "%s%s", uri, uri[strlen(uri) - 1] == '/' ? "index.html" : "");
    if (n < 0 || (size_t)n >= sizeof rel)
        return http_exchange_error(wsi, x, HTTP_STATUS_NOT_FOUND, "no such resource");
    for (const char *p = rel; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '/' || (c == '.' && p[-1] != '/');
        if (!ok || (c == '/' && p[1] == '/'))
            return http_exchange_error(wsi, x, HTTP_STATUS_NOT_FOUND, "no such resource");
    }
    const char *mime = http_mime(rel);
    struct stat st;
    snprintf(full, sizeof full, "%s%s", dir, rel);
    if (!mime || !realpath(dir, real_dir) || !realpath(full, real))
        return http_exchange_error(wsi, x, HTTP_STATUS_NOT_FOUND, "no such resource");
    size_t dl = strlen(real_dir);
    if (dl == 1)
        dl = 0;             /* static_dir is "/": everything is below it */
    if (strncmp(real, real_dir, dl) || real[dl] != '/' || stat(real, &st) ||
        !S_ISREG(st.st_mode))
        return http_exchange_error(wsi, x, HTTP_STATUS_NOT_FOUND, "no such resource");
    static const char extra[] = "x-content-type-options: nosniff\r\n";
    /* < 0: failed, close; otherwise lws streams the file and reports
     * LWS_CALLBACK_HTTP_FILE_COMPLETION (handled by lws's dummy callback). */
    return lws_serve_http_file(wsi, real, mime, extra, (int)sizeof extra - 1) < 0 ? -1 : 0;
}

/* GET /metrics: the Prometheus text. */
static int http_metrics(const http_env *env, struct lws *wsi, http_exchange **x)
{
    metrics_gauges g;
    buf b;
    buf_init(&b);
    env->gauges(env->ctx, &g);
    metrics_render(env->metrics, &g, &b);
    int r = http_exchange_respond(wsi, x, HTTP_STATUS_OK, "text/plain; version=0.0.4",
                         b.data ? b.data : "", b.len);
    buf_deinit(&b);
    return r;
}

/* GET /api/stats: the numbers an on-call engineer looks at first, as JSON
 * (the same counters as /metrics, plus rates and latency quantiles). */
static int http_stats(const http_env *env, struct lws *wsi, http_exchange **x)
{
    metrics_gauges g;
    env->gauges(env->ctx, &g);
    const metrics *m = env->metrics;
    metrics_rates rates;
    env->rates(env->ctx, &rates);
    const metrics_rates *r = &rates;
    const char *unready;
    int ready = env->ready(env->ctx, &unready);
    json_t *errors = json_object();
    for (int i = 0; i < ERROR_REASON_COUNT; i++)
        if (m->errors_by_reason[i])
            json_object_set_new(errors, error_reason_message((error_reason)i),
                                json_integer((json_int_t)m->errors_by_reason[i]));
    json_t *v = json_pack(
        "{s:s, s:s, s:I, s:b,"
        " s:{s:I, s:I, s:I, s:I}, s:I, s:I,"
        " s:{s:I, s:f, s:I, s:f, s:I},"
        " s:{s:f, s:f, s:I},"
        " s:{s:b, s:I}, s:{s:b, s:I, s:I, s:I, s:I, s:I, s:f, s:f},"
        " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}}",
        "server", env->server_id, "version", LECTERN_VERSION,
        "uptime_s", (json_int_t)(env->uptime_ms(env->ctx) / 1000), "ready", ready,
        "connections", "total", (json_int_t)g.connections, "connecting", (json_int_t)g.conn_connecting,
        "connected", (json_int_t)g.conn_connected, "closing", (json_int_t)g.conn_closing,
        "rooms", (json_int_t)g.rooms, "subscriptions", (json_int_t)g.subscriptions,
        "messages", "published", (json_int_t)m->messages_published,
        "published_per_s", r->published_per_s, "delivered", (json_int_t)m->deliveries_local,
        "delivered_per_s", r->delivered_per_s, "replayed", (json_int_t)m->deliveries_replayed,
        "delivery_latency_ms", "p50", histogram_quantile(&m->delivery, 0.5) * 1000,
        "p99", histogram_quantile(&m->delivery, 0.99) * 1000,
        "samples", (json_int_t)histogram_count(&m->delivery),
        "registry", "up", (int)g.registry_up, "reconnects", (json_int_t)g.registry_reconnects,
        "bus", "up", (int)g.bus_up, "reconnects", (json_int_t)g.bus_reconnects,
        "published", (json_int_t)g.bus_published, "skipped_local_only", (json_int_t)g.bus_skipped,
        "received", (json_int_t)g.bus_received, "stored", (json_int_t)g.bus_stored,
        "confirm_p50_ms", g.bus_confirm ? histogram_quantile(g.bus_confirm, 0.5) * 1000 : 0.0,
        "confirm_p99_ms", g.bus_confirm ? histogram_quantile(g.bus_confirm, 0.99) * 1000 : 0.0,
        "refused", "auth_failures", (json_int_t)m->auth_failures,
        "access_denied", (json_int_t)m->access_denied, "throttled", (json_int_t)m->throttled,
        "conn_limit", (json_int_t)m->conn_limit_rejects,
        "slow_consumers", (json_int_t)m->slow_consumers,
        "heartbeat_timeouts", (json_int_t)m->heartbeat_timeouts,
        "stomp_errors", (json_int_t)m->stomp_errors, "errors_by_reason", errors);
    if (!v)
        return http_exchange_error(wsi, x, HTTP_STATUS_INTERNAL_SERVER_ERROR, "stats unavailable");
    return http_exchange_json(wsi, x, HTTP_STATUS_OK, v);
}

/* 401 with a Bearer challenge; the body says no more than that. */
static int http_unauthorized(const http_env *env, struct lws *wsi, http_exchange **x,
                             const char *why)
{
    char addr[64];
    env->metrics->auth_failures++;
    if (!lws_get_peer_simple(wsi, addr, sizeof addr))
        snprintf(addr, sizeof addr, "-");
    log_info("auth_failed", "http=1 peer=%s reason=%s", addr, why);
    return http_exchange_unauthorized(wsi, x);
}

/* /api/users/<id>/contacts/status for who (NULL with auth.mode=none, or
 * with a key): only the user themself, an admin or a key. */
static int http_users_route(const http_env *env, struct lws *wsi, http_exchange **x,
                            const char *rest, const jwt_claims *who, bool keyed)
{
    static const char tail[] = "/contacts/status";
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : 0;
    if (!slash || strcmp(slash, tail))
        return http_exchange_error(wsi, x, HTTP_STATUS_NOT_FOUND, "no such resource");
    if (!userid_valid(rest, n))
        return http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST,
                                   "user ids are 1 to 128 bytes of UTF-8 without control "
                                   "characters or ','");
    bool self = who && strlen(who->sub) == n && !memcmp(who->sub, rest, n);
    bool any = keyed || !who || who->role == JWT_ROLE_ADMIN;
    if (!self && !any) {
        env->metrics->access_denied++;
        return http_exchange_error(wsi, x, HTTP_STATUS_FORBIDDEN,
                                   "only the user themself (or an admin) may ask");
    }
    return http_status_request(env->conf, env->registry, env->lists, wsi, x, rest, n,
                               self ? who->contacts : NULL, self ? who->ncontacts : 0, any);
}

/* /api/...: with auth.mode=jwt only with a valid "Authorization: Bearer"
 * token; rooms only as the token permits. */
static int http_api(const http_env *env, struct lws *wsi, http_exchange **x, const char *uri)
{
    auth *a = env->auth;
    jwt_claims *who = NULL;
    /* A server-to-server key (api.keys; never a JWT) reads what an admin
     * may: any room's history and presence, any user's statuses, stats. */
    bool sent, keyed = http_contacts_keyed(&env->contacts, wsi, &sent);
    if (auth_required(a) && !keyed) {
        char hv[8300];
        const char *tp;
        size_t tl;
        int n = lws_hdr_copy(wsi, hv, sizeof hv, WSI_TOKEN_HTTP_AUTHORIZATION);
        if (n <= 0 || !auth_bearer_token(hv, (size_t)n, &tp, &tl))
            return http_unauthorized(env, wsi, x, "no_token");
        jwt_status st = auth_login(a, tp, tl, &who);
        if (st != JWT_OK)
            return http_unauthorized(env, wsi, x, jwt_status_name(st));
    }
    int rc;
    if (!strcmp(uri, "/api/stats")) {
        /* Cluster internals: admins only, when tokens are required. */
        if (who && who->role != JWT_ROLE_ADMIN) {
            env->metrics->access_denied++;
            rc = http_exchange_error(wsi, x, HTTP_STATUS_FORBIDDEN, "admins only");
        } else {
            rc = http_stats(env, wsi, x);
        }
    } else if (!strncmp(uri, "/api/rooms/", 11))
        rc = http_room_route(env, wsi, x, uri + 11, who, keyed);
    else if (!strcmp(uri, "/api/presence"))
        rc = http_users_online(env, wsi, x, &who);
    else if (!strncmp(uri, "/api/users/", 11))
        rc = http_users_route(env, wsi, x, uri + 11, who, keyed);
    else
        rc = http_exchange_error(wsi, x, HTTP_STATUS_NOT_FOUND, "no such resource");
    jwt_claims_free(who);
    return rc;
}

/* A request that is not a GET: lws reads its body before it lets us
 * write, so it is answered once the body is in (http_body_done), or now
 * when there is none. Returns 1 when it is not a GET (*rc: the callback's
 * answer), 0 for a GET. */
static int http_not_get(const http_env *env, struct lws *wsi, http_exchange **x, int *rc)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
        return 0;
    char cl[24];
    if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 && atoll(cl) > 0)
        *rc = 0;
    else
        *rc = http_body_done(env, wsi, x);
    return 1;
}

static bool http_is_post(struct lws *wsi)
{
    return lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
}

int http_request(const http_env *env, struct lws *wsi, http_exchange **x, const char *uri)
{
    env->metrics->http_requests++;
    if (http_contacts_match(uri)) {
        http_exchange_route(wsi, x, APILOG_CONTACTS);
        return http_contacts_request(&env->contacts, wsi, x, uri);
    }
    if (http_moderation_match(wsi, uri)) {
        http_exchange_route(wsi, x, APILOG_MODERATION);
        return http_moderation_request(&env->contacts, env->moderation, wsi, x, uri);
    }
    if (http_is_post(wsi) && http_publish_match(uri)) {
        http_exchange_route(wsi, x, strcmp(uri, "/api/broadcast") ? APILOG_PUBLISH
                                                                    : APILOG_BROADCAST);
        return http_publish_request(&env->contacts, env->relay, wsi, x, uri);
    }
    if (http_redact_match(wsi, uri)) {
        http_exchange_route(wsi, x, APILOG_REDACT);
        return http_redact_request(&env->contacts, env->redact, wsi, x, uri);
    }
    int rc;
    if (http_not_get(env, wsi, x, &rc))
        return rc;
    if (http_admin_match(uri)) {
        http_exchange_route(wsi, x, strcmp(uri, "/api/rooms") && strncmp(uri, "/api/rooms?", 11)
                                        ? APILOG_SESSIONS : APILOG_ROOMS);
        return http_admin_request(&env->contacts, wsi, x, uri);
    }

    if (!strcmp(uri, "/healthz")) {
        metrics_gauges g;
        env->gauges(env->ctx, &g);
        return http_exchange_json(wsi, x, HTTP_STATUS_OK,
                                 json_pack("{s:s, s:s, s:I}", "status", "ok", "version",
                                           LECTERN_VERSION, "connections",
                                           (json_int_t)g.connections));
    }
    if (!strcmp(uri, "/readyz")) {
        const char *why;
        if (env->ready(env->ctx, &why))
            return http_exchange_json(wsi, x, HTTP_STATUS_OK,
                                     json_pack("{s:s, s:s}", "status", "ready", "server",
                                               env->server_id));
        return http_exchange_json(wsi, x, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                 json_pack("{s:s, s:s, s:s}", "status", "unavailable",
                                           "reason", why, "server", env->server_id));
    }
    if (!strncmp(uri, "/api/", 5))
        return http_api(env, wsi, x, uri);
    if (!strcmp(uri, "/metrics") && !env->conf->metrics_listen[0])
        return http_metrics(env, wsi, x);
    return http_static(env, wsi, x, uri);
}

int http_metrics_request(const http_env *env, struct lws *wsi, http_exchange **x, const char *uri)
{
    env->metrics->http_requests++;
    int rc;
    if (http_not_get(env, wsi, x, &rc))
        return rc;
    if (!strcmp(uri, "/metrics"))
        return http_metrics(env, wsi, x);
    return http_exchange_error(wsi, x, HTTP_STATUS_NOT_FOUND, "only /metrics is served here");
}

void http_body_in(struct lws *wsi, http_exchange **x, const void *in, size_t len)
{
    (void)wsi;
    http_exchange_body_in(*x, in, len);
}

int http_body_done(const http_env *env, struct lws *wsi, http_exchange **x)
{
    /* Which route reads this body: a POST is moderation's (by its uri) or
     * else the server API's publish, anything else the contacts API. */
    if (http_exchange_reading(*x) && http_moderation_reading(wsi))
        return http_moderation_body_done(&env->contacts, env->moderation, wsi, x);
    if (http_exchange_reading(*x) && http_is_post(wsi))
        return http_publish_body_done(&env->contacts, env->relay, wsi, x);
    if (http_exchange_reading(*x) && http_redact_reading(wsi))
        return http_redact_body_done(&env->contacts, env->redact, wsi, x);
    if (http_exchange_reading(*x))
        return http_contacts_body_done(&env->contacts, wsi, x);
    return http_exchange_error(wsi, x, HTTP_STATUS_METHOD_NOT_ALLOWED, "only GET is supported");
}
