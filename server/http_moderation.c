/* http_moderation.c — kick, ban, mute over the server API (see
 * http_moderation.h).
 *
 * At LWS_CALLBACK_HTTP the key, the room and the action are checked (a
 * refusal is kept and given once the body has been read: lws reads a body
 * before an answer can go). The body of a POST is a JSON object with the
 * members its action takes, and nothing else (a "duration_s" on a kick is
 * the caller's mistake, worth a 400). Then moderation_apply runs and the
 * exchange waits for its outcome; the request's state belongs to that call
 * until it answers (a client gone meanwhile only drops the answer: the
 * action itself goes on). The listing needs no body: it is asked at once.
 */
#include "http_moderation.h"

#include "mem.h"
#include "moderation.h"
#include "storelimits.h"
#include "userid.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HM_PREFIX "/api/rooms/"
#define HM_LIST "moderation"
#define HM_ROOM_MAX (STORELIMITS_ROOM_MAX + 1)

typedef struct hm_request {
    unsigned status;           /* a refusal decided before the body (0: none) */
    const char *why;
    moderation_action action;
    char room[HM_ROOM_MAX];
    http_exchange *e;          /* once acting */
} hm_request;

/* uri = /api/rooms/<room>/<tail>: room and tail as spans of uri. */
static bool hm_split(const char *uri, const char **rname, size_t *rlen, const char **tail)
{
    size_t pl = sizeof HM_PREFIX - 1;
    if (strncmp(uri, HM_PREFIX, pl))
        return false;
    const char *r = uri + pl, *slash = strchr(r, '/');
    if (!slash || slash == r || strchr(slash + 1, '/'))
        return false;
    *rname = r;
    *rlen = (size_t)(slash - r);
    *tail = slash + 1;
    return true;
}

static bool hm_is_post(struct lws *wsi)
{
    return lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
}

bool http_moderation_match(struct lws *wsi, const char *uri)
{
    const char *r, *tail;
    size_t rl;
    if (!hm_split(uri, &r, &rl, &tail))
        return false;
    if (hm_is_post(wsi))
        return moderation_action_parse(tail, strlen(tail)) >= 0;
    return lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0 && !strcmp(tail, HM_LIST);
}

bool http_moderation_reading(struct lws *wsi)
{
    char uri[600];
    int n = lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_POST_URI);
    return n > 0 && http_moderation_match(wsi, uri);
}

static void hm_refuse(hm_request *rq, unsigned status, const char *why)
{
    if (!rq->status) {
        rq->status = status;
        rq->why = why;
    }
}

static json_t *hm_until(uint64_t until_ms)
{
    return until_ms ? json_integer((json_int_t)until_ms) : json_null();
}

static void hm_on_applied(void *ctx, const moderation_result *res)
{
    hm_request *rq = ctx;
    if (res->status != MODERATION_OK) {
        http_exchange_answer_error(rq->e, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                   "the registry (Redis) did not answer; nothing is known to "
                                   "have changed: repeat the request");
        free(rq);
        return;
    }
    const char *name = moderation_action_name(res->action);
    json_t *v;
    switch (res->action) {
    case MODERATION_BAN:
    case MODERATION_MUTE:
        v = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:I}", "room", res->room, "user",
                      res->user, "action", name, "until", hm_until(res->until_ms), "reason",
                      res->reason, "by", res->by, "at", (json_int_t)res->at_ms);
        break;
    case MODERATION_UNBAN:
    case MODERATION_UNMUTE:
        v = json_pack("{s:s, s:s, s:s, s:b}", "room", res->room, "user", res->user, "action",
                      name, "lifted", res->lifted);
        break;
    default:
        v = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "room", res->room, "user", res->user,
                      "action", name, "reason", res->reason, "by", res->by, "at",
                      (json_int_t)res->at_ms);
        break;
    }
    http_exchange_answer_status(rq->e, HTTP_STATUS_OK, v);
    json_decref(v);
    free(rq);
}

/* Answer now; rq goes (with the exchange when it holds rq, else here). */
static int hm_error(struct lws *wsi, http_exchange **x, hm_request *rq, bool reading,
                    unsigned status, const char *why)
{
    if (!reading)
        free(rq);
    return http_exchange_error(wsi, x, status, why);
}

/* Which members action a takes besides "user" and "by". */
static bool hm_takes(moderation_action a, const char *key)
{
    if (!strcmp(key, "user") || !strcmp(key, "by"))
        return true;
    if (!strcmp(key, "reason"))
        return a == MODERATION_KICK || a == MODERATION_BAN || a == MODERATION_MUTE;
    if (!strcmp(key, "duration_s"))
        return a == MODERATION_BAN || a == MODERATION_MUTE;
    return false;
}

/* The request is complete (body read, if any): act, or refuse now. rq is
 * taken in every case: by the exchange that reads the body (reading), by
 * the action, or freed. */
static int hm_go(const http_contacts_env *keys, struct moderation *m, struct lws *wsi,
                 http_exchange **x, hm_request *rq, const char *body, size_t len, bool over)
{
    bool reading = *x && http_exchange_data(*x) == rq;
    if (rq->status)
        return hm_error(wsi, x, rq, reading, rq->status, rq->why);
    if (over)
        return hm_error(wsi, x, rq, reading, HTTP_STATUS_REQ_ENTITY_TOO_LARGE,
                        "the request body is larger than api.max_body");
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *why = NULL;
    if (!json_is_object(o))
        why = "the body must be a JSON object with a \"user\"";
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val) {
        if (!why && !hm_takes(rq->action, key))
            why = "the body has a member this action does not take (kick: user, reason, by; "
                  "ban, mute: user, duration_s, reason, by; unban, unmute: user, by)";
    }
    json_t *user = json_object_get(o, "user"), *by = json_object_get(o, "by"),
           *reason = json_object_get(o, "reason"), *dur = json_object_get(o, "duration_s");
    if (!why && !json_is_string(user))
        why = "\"user\" must be a user id (1 to 128 bytes of UTF-8 without control characters "
              "or ',')";
    if (!why && by && !json_is_string(by))
        why = "\"by\" must be a user id (who acted; default \"system\")";
    if (!why && reason && !json_is_string(reason))
        why = "\"reason\" must be a string";
    int64_t duration_ms = 0;
    if (!why && dur) {
        json_int_t d = json_integer_value(dur);
        if (!json_is_integer(dur) || d < 1 || d > keys->conf->mod_max_duration_s)
            why = "\"duration_s\" must be a whole number of seconds from 1 to "
                  "moderation.max_duration_s (omit it: until lifted)";
        else
            duration_ms = (int64_t)d * 1000;
    }
    if (!why)
        why = moderation_valid(rq->action, rq->room, json_string_value(user), duration_ms,
                               reason ? json_string_value(reason) : "",
                               by ? json_string_value(by) : "system",
                               &(moderation_limits){ (size_t)keys->conf->max_room_name,
                                                     keys->conf->mod_max_duration_s,
                                                     (size_t)keys->conf->mod_max_reason });
    if (why) {
        json_decref(o);
        return hm_error(wsi, x, rq, reading, HTTP_STATUS_BAD_REQUEST, why);
    }
    if (!m) {
        json_decref(o);
        return hm_error(wsi, x, rq, reading, HTTP_STATUS_SERVICE_UNAVAILABLE, "shutting down");
    }
    /* From here rq belongs to the action, and the exchange waits. */
    if (reading) {
        http_exchange_keep(*x, NULL, NULL);
        http_exchange_await(*x);
        rq->e = *x;
    } else {
        rq->e = http_exchange_wait(wsi, x);
    }
    int rc = moderation_apply(m, rq->action, rq->room, json_string_value(user), duration_ms,
                              reason ? json_string_value(reason) : "",
                              by ? json_string_value(by) : "system", hm_on_applied, rq);
    json_decref(o);
    if (rc == 0)
        return 0;
    /* Refused at once: no callback will come. */
    http_exchange_unwait(rq->e);
    return hm_error(wsi, x, rq, false,
                    rc == MODERATION_EINVAL ? HTTP_STATUS_BAD_REQUEST
                                            : HTTP_STATUS_SERVICE_UNAVAILABLE,
                    rc == MODERATION_EINVAL ? "bad room, user, duration, reason or by"
                                            : "the registry (Redis) is unavailable");
}

static void hm_on_listed(void *ctx, json_t *json)
{
    http_exchange_answer_json(ctx, json, "the registry (Redis) did not answer");
}

int http_moderation_request(const http_contacts_env *keys, struct moderation *m,
                            struct lws *wsi, http_exchange **x, const char *uri)
{
    hm_request *rq = xcalloc(1, sizeof *rq);
    const char *why, *r = "", *tail = "";
    size_t rl = 0;
    hm_split(uri, &r, &rl, &tail);
    unsigned status = http_contacts_check_api(keys, wsi, r, rl, &why);
    if (status)
        hm_refuse(rq, status, why);
    else
        memcpy(rq->room, r, rl);
    if (!hm_is_post(wsi)) {
        /* GET .../moderation: no body to wait for. */
        if (rq->status)
            return hm_error(wsi, x, rq, false, rq->status, rq->why);
        if (!m)
            return hm_error(wsi, x, rq, false, HTTP_STATUS_SERVICE_UNAVAILABLE, "shutting down");
        http_exchange *e = http_exchange_wait(wsi, x);
        if (moderation_list(m, rq->room, hm_on_listed, e) < 0) {
            http_exchange_unwait(e);
            return hm_error(wsi, x, rq, false, HTTP_STATUS_SERVICE_UNAVAILABLE,
                            "the registry (Redis) is unavailable");
        }
        free(rq);
        return 0;
    }
    rq->action = (moderation_action)moderation_action_parse(tail, strlen(tail));
    /* lws reads a POST's body (even an empty one) before an answer can go:
     * answer at its end (http_moderation_body_done). */
    http_exchange_read_body(wsi, x, keys->conf->api_max_body, rq, free);
    return 0;
}

int http_moderation_body_done(const http_contacts_env *keys, struct moderation *m,
                              struct lws *wsi, http_exchange **x)
{
    hm_request *rq = http_exchange_data(*x);
    size_t len;
    bool over;
    const char *body = http_exchange_request_body(*x, &len, &over);
    return hm_go(keys, m, wsi, x, rq, body, len, over);
}
