/* http_admin.c — GET /api/rooms and GET /api/users/<id>/sessions.
 *
 * Both are one registry script each (registry_rooms_page,
 * registry_user_sessions) answered as JSON. Keys come first: with api.keys
 * empty the server API is off (403); a missing or wrong key is 401 and
 * counted like any failed authentication. A page of rooms is at most
 * api.page_max rooms (default 100 when limit= is absent); its `next` is
 * the `after=` of the following page.
 */
#include "http_admin.h"

#include "registry.h"
#include "room.h"
#include "userid.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HA_ROOMS "/api/rooms"
#define HA_USERS "/api/users/"
#define HA_SESSIONS "/sessions"

/* The <id> of /api/users/<id>/sessions, or false. */
static bool ha_sessions_id(const char *uri, const char **id, size_t *len)
{
    size_t n = strlen(uri), pl = sizeof HA_USERS - 1, sl = sizeof HA_SESSIONS - 1;
    if (n <= pl + sl || strncmp(uri, HA_USERS, pl) || strcmp(uri + n - sl, HA_SESSIONS))
        return false;
    *id = uri + pl;
    *len = n - pl - sl;
    return memchr(*id, '/', *len) == NULL;
}

bool http_admin_match(const char *uri)
{
    const char *id;
    size_t len;
    return !strcmp(uri, HA_ROOMS) || ha_sessions_id(uri, &id, &len);
}

static void ha_on_json(void *ctx, json_t *value)
{
    http_exchange_answer_json(ctx, value, "registry (Redis) unavailable");
}

/* Start waiting for a registry answer; rc < 0 from the call: 503 now. */
static int ha_wait(struct lws *wsi, http_exchange **x, http_exchange *e, int rc)
{
    if (rc < 0) {
        http_exchange_unwait(e);    /* refused at once: no callback will come */
        return http_exchange_error(wsi, x, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                   "registry (Redis) unavailable");
    }
    return 0;
}

static int ha_rooms(const http_contacts_env *env, struct lws *wsi, http_exchange **x)
{
    char arg[300];
    int limit = 100;
    const char *v = lws_get_urlarg_by_name(wsi, "limit=", arg, sizeof arg);
    if (v) {
        char *end;
        long l = strtol(v, &end, 10);
        if (!*v || *end || l < 1 || l > env->conf->api_page_max)
            return http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST,
                                       "limit= is a number from 1 to api.page_max");
        limit = (int)l;
    } else if (limit > env->conf->api_page_max) {
        limit = env->conf->api_page_max;
    }
    char after[300] = "";
    v = lws_get_urlarg_by_name(wsi, "after=", arg, sizeof arg);
    if (v) {
        if (!room_name_valid(v, strlen(v), (size_t)env->conf->max_room_name))
            return http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST,
                                       "after= is a room name (the `next` of a page)");
        snprintf(after, sizeof after, "%s", v);
    }
    http_exchange *e = http_exchange_wait(wsi, x);
    return ha_wait(wsi, x, e, registry_rooms_page(env->registry, after, limit, ha_on_json, e));
}

static int ha_sessions(const http_contacts_env *env, struct lws *wsi, http_exchange **x,
                       const char *id, size_t len)
{
    if (!userid_valid(id, len))
        return http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST,
                                   "user ids are 1 to 128 bytes without control characters "
                                   "or ','");
    char user[200];
    snprintf(user, sizeof user, "%.*s", (int)len, id);
    http_exchange *e = http_exchange_wait(wsi, x);
    return ha_wait(wsi, x, e, registry_user_sessions(env->registry, user, ha_on_json, e));
}

int http_admin_request(const http_contacts_env *env, struct lws *wsi, http_exchange **x,
                       const char *uri)
{
    const char *why;
    unsigned status = http_contacts_check_key(env, wsi, "server",
                                              "the server API is off (api.keys is empty)", &why);
    if (status)
        return http_exchange_error(wsi, x, status, why);
    if (!env->registry || !registry_up(env->registry))
        return http_exchange_error(wsi, x, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                   "registry (Redis) unavailable");
    const char *id;
    size_t len;
    if (ha_sessions_id(uri, &id, &len))
        return ha_sessions(env, wsi, x, id, len);
    return ha_rooms(env, wsi, x);
}
