/* http_publish.c — POST /api/rooms/<room>/messages.
 *
 * The request: a JSON object {"body": "<text>" (required), "content_type"
 * (default text/plain), "sender" (default "system"), "sender_name"
 * (default the sender), "sender_role" (one of student, instructor, admin,
 * system; default system), "headers": {"<name>": "<value>", ...}
 * (optional, as a SEND's own headers)}. The route builds the SEND frame
 * this describes (pointing into the parsed JSON, nothing copied) and hands
 * it to relay_publish, exactly the path of a STOMP SEND: relay_check_send
 * first (the store's limits, 400 with the field), then the room log, local
 * delivery, the bus and the storage copy. The answer waits for the
 * storage confirm: 200 {"room", "id"}; 503 when the cluster cannot take it
 * now, or when the confirm did not come (the message may or may not have
 * been delivered: the same uncertainty as ERROR "Message not stored").
 *
 * Bodies are bounded by api.max_body (413) and at most
 * stomp.max_headers header pairs are taken (400 beyond).
 */
#include "http_publish.h"

#include "mem.h"
#include "relay.h"
#include "room.h"
#include "stomp.h"
#include "userid.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_PREFIX "/api/rooms/"
#define HP_SUFFIX "/messages"

typedef struct hp_request {
    unsigned status;           /* a refusal decided before the body (0: none) */
    const char *why;
    char room[260];
} hp_request;

bool http_publish_match(const char *uri)
{
    size_t n = strlen(uri), pl = sizeof HP_PREFIX - 1, sl = sizeof HP_SUFFIX - 1;
    return n > pl + sl && !strncmp(uri, HP_PREFIX, pl) && !strcmp(uri + n - sl, HP_SUFFIX) &&
           memchr(uri + pl, '/', n - pl - sl) == NULL;
}

int http_publish_request(const http_contacts_env *keys, struct relay *rl, struct lws *wsi,
                         http_exchange **x, const char *uri)
{
    (void)rl;
    hp_request *rq = xcalloc(1, sizeof *rq);
    const char *why;
    unsigned status = http_contacts_check_key(keys, wsi, "server",
                                              "the server API is off (api.keys is empty)", &why);
    const char *rname = uri + sizeof HP_PREFIX - 1;
    size_t n = strlen(rname) - (sizeof HP_SUFFIX - 1);
    if (status) {
        rq->status = status;
        rq->why = why;
    } else if (!room_name_valid(rname, n, (size_t)keys->conf->max_room_name)) {
        rq->status = HTTP_STATUS_BAD_REQUEST;
        rq->why = "room names are 1 to stomp.max_room_name characters of A-Z a-z 0-9 . _ ~ -";
    } else {
        memcpy(rq->room, rname, n);
    }
    /* lws reads the body before an answer can go: answer at its end. */
    http_exchange_read_body(wsi, x, keys->conf->api_max_body, rq, free);
    return 0;
}

static void hp_on_published(void *ctx, bool ok, const char *id)
{
    http_exchange *e = ctx;
    hp_request *rq = http_exchange_data(e);
    json_t *v = ok ? json_pack("{s:s, s:s}", "room", rq->room, "id", id) : NULL;
    http_exchange_answer_json(e, v, "the cluster could not confirm that the message was stored "
                                    "(Redis or RabbitMQ unavailable); it may or may not have "
                                    "been delivered");
    json_decref(v);
}

/* The string member `key` of o (absent: dflt); false when present but
 * not a string. */
static bool hp_str(json_t *o, const char *key, const char *dflt, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = v ? json_string_value(v) : dflt;
    return !v || json_is_string(v);
}

static int hp_answer(struct lws *wsi, http_exchange **x, unsigned status, const char *why)
{
    return http_exchange_error(wsi, x, status, why);
}

int http_publish_body_done(const http_contacts_env *keys, struct relay *rl, struct lws *wsi,
                           http_exchange **x)
{
    hp_request *rq = http_exchange_data(*x);
    if (rq->status)
        return hp_answer(wsi, x, rq->status, rq->why);
    size_t len;
    bool over;
    const char *text = http_exchange_request_body(*x, &len, &over);
    if (over)
        return hp_answer(wsi, x, HTTP_STATUS_REQ_ENTITY_TOO_LARGE,
                         "the request body is larger than api.max_body");
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    const char *body, *ctype, *sender, *name, *role;
    json_t *hdrs = json_object_get(o, "headers");
    size_t maxh = (size_t)keys->conf->max_headers;
    int rc;
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "body")) ||
        !hp_str(o, "content_type", "text/plain", &ctype) ||
        !hp_str(o, "sender", "system", &sender) ||
        !hp_str(o, "sender_name", sender, &name) || !hp_str(o, "sender_role", "system", &role) ||
        (hdrs && !json_is_object(hdrs))) {
        rc = hp_answer(wsi, x, HTTP_STATUS_BAD_REQUEST,
                       "the body is a JSON object with a string `body`, and optional strings "
                       "content_type, sender, sender_name, sender_role and an object `headers` "
                       "of strings");
        goto done;
    }
    body = json_string_value(json_object_get(o, "body"));
    if (!userid_valid(sender, strlen(sender)) || !*name || strlen(name) > 128) {
        rc = hp_answer(wsi, x, HTTP_STATUS_BAD_REQUEST,
                       "sender is a user id (1 to 128 bytes, no control characters or ','); "
                       "sender_name 1 to 128 bytes");
        goto done;
    }
    if (strcmp(role, "student") && strcmp(role, "instructor") && strcmp(role, "admin") &&
        strcmp(role, "system")) {
        rc = hp_answer(wsi, x, HTTP_STATUS_BAD_REQUEST,
                       "sender_role is student, instructor, admin or system");
        goto done;
    }
    size_t nh = 1 + (hdrs ? json_object_size(hdrs) : 0);
    if (nh > maxh) {
        rc = hp_answer(wsi, x, HTTP_STATUS_BAD_REQUEST, "more headers than stomp.max_headers");
        goto done;
    }
    stomp_header *h = xcalloc(nh, sizeof *h);
    h[0] = (stomp_header){ { "content-type", 12 }, { ctype, strlen(ctype) } };
    size_t k = 1;
    const char *hk;
    json_t *hv;
    bool hok = true;
    json_object_foreach(hdrs, hk, hv) {
        hok = hok && json_is_string(hv);
        if (hok)
            h[k++] = (stomp_header){ { hk, strlen(hk) },
                                     { json_string_value(hv), json_string_length(hv) } };
    }
    if (!hok) {
        free(h);
        rc = hp_answer(wsi, x, HTTP_STATUS_BAD_REQUEST, "headers holds strings only");
        goto done;
    }
    stomp_frame f = { .command = STOMP_CMD_SEND, .headers = h, .nheaders = k,
                      .body = { body, json_string_length(json_object_get(o, "body")) } };
    stomp_str room_name = { rq->room, strlen(rq->room) };
    char why[400];
    if (relay_check_send(rl, &room_name, &f, sender, name, role, why, sizeof why) < 0) {
        free(h);
        rc = hp_answer(wsi, x, HTTP_STATUS_BAD_REQUEST, why);
        goto done;
    }
    http_exchange *e = *x;
    http_exchange_await(e);
    if (relay_publish(rl, &room_name, &f, sender, name, role, hp_on_published, e) < 0) {
        free(h);
        http_exchange_unwait(e);
        rc = hp_answer(wsi, x, HTTP_STATUS_SERVICE_UNAVAILABLE,
                       "the cluster cannot take this now (Redis or RabbitMQ unreachable); "
                       "nothing was done");
        goto done;
    }
    free(h);
    rc = 0;
done:
    json_decref(o);
    return rc;
}
