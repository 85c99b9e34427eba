/* http_publish.c — POST /api/rooms/<room>/messages and POST /api/broadcast.
 *
 * The request: a JSON object {"body": "<text>" (required), "content_type"
 * (default text/plain), "sender" (default "system"), "sender_name"
 * (default the sender), "sender_role" (one of student, instructor, admin,
 * system; default system), "headers": {"<name>": "<value>", ...}
 * (optional, as a SEND's own headers)}; a broadcast adds "rooms": [names]
 * (at most api.broadcast_max). The route builds the SEND frame this
 * describes (pointing into the parsed JSON, nothing copied) and hands it to
 * relay_publish once per room, exactly the path of a STOMP SEND:
 * relay_check_send first for every room (the store's limits: 400 naming
 * the field, before anything is published), then the room log, local
 * delivery, the bus and the storage copy. A broadcast's rooms are separate
 * messages, each with its own id.
 *
 * The answer waits until every storage copy is confirmed: 200 {"room",
 * "id"} (a broadcast: {"messages": [{"room", "id"}...]}, in the rooms'
 * order). When the cluster could not take a message, or its confirm did
 * not come (it may or may not have been delivered: ERROR "Message not
 * stored"'s uncertainty), the answer is 503, and a broadcast's lists each
 * room's outcome ("id", or "error"), so a backend repeats only those.
 *
 * Idempotency: the request header Idempotency-Key (idemkey.h's rule; 400
 * otherwise) goes with every room's publish, as a SEND's
 * x-idempotency-key, with the publish's sender: within
 * api.idempotency_window_s a repeat is answered with the first copy's id
 * (and "duplicate": true) and nothing is stored or delivered twice. The
 * room is part of the script's key, so for a broadcast the key applies per
 * room: repeating a broadcast whose answer listed failures stores only the
 * rooms that were not stored.
 *
 * Bodies are bounded by api.max_body (413), headers by stomp.max_headers.
 * The request's state lives with its exchange until the last confirm.
 */
#include "http_publish.h"

#include "idemkey.h"
#include "mem.h"
#include "relay.h"
#include "room.h"
#include "stomp.h"
#include "storelimits.h"
#include "userid.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_PREFIX "/api/rooms/"
#define HP_SUFFIX "/messages"
#define HP_BROADCAST "/api/broadcast"
#define HP_ROOM_MAX 256
_Static_assert(HP_ROOM_MAX > STORELIMITS_ROOM_MAX, "a room name and its NUL fit");

typedef struct hp_result {
    char room[HP_ROOM_MAX];
    char *id;                  /* NULL: not stored (or not yet) */
    bool duplicate;            /* a repeat of the idempotency key: id is the first's */
} hp_result;

typedef struct hp_request {
    unsigned status;           /* a refusal decided before the body (0: none) */
    const char *why;
    bool broadcast;
    char room[HP_ROOM_MAX];    /* one room's publish */
    char idem[IDEMKEY_MAX + 1];/* Idempotency-Key (idem_len 0: none) */
    size_t idem_len;
    http_exchange *e;
    hp_result *res;            /* once publishing: one per room */
    size_t n, pending;
} hp_request;

/* A room's publish in flight: its request and result. */
typedef struct hp_call {
    hp_request *rq;
    size_t i;
} hp_call;

static void hp_request_free(void *p)
{
    hp_request *rq = p;
    for (size_t i = 0; i < rq->n; i++)
        free(rq->res[i].id);
    free(rq->res);
    free(rq);
}

bool http_publish_match(const char *uri)
{
    size_t n = strlen(uri), pl = sizeof HP_PREFIX - 1, sl = sizeof HP_SUFFIX - 1;
    if (!strcmp(uri, HP_BROADCAST))
        return true;
    return n > pl + sl && !strncmp(uri, HP_PREFIX, pl) && !strcmp(uri + n - sl, HP_SUFFIX) &&
           memchr(uri + pl, '/', n - pl - sl) == NULL;
}

/* The request's Idempotency-Key into rq (none: idem_len 0). 0, or -1 when
 * it is there but breaks the rule (a longer one is not even copied). */
static int hp_idem_key(struct lws *wsi, hp_request *rq)
{
    int n = lws_hdr_custom_length(wsi, IDEMKEY_HTTP_HEADER, sizeof IDEMKEY_HTTP_HEADER - 1);
    if (n < 0)
        return 0;
    if (n == 0 || n > IDEMKEY_MAX ||
        lws_hdr_custom_copy(wsi, rq->idem, sizeof rq->idem, IDEMKEY_HTTP_HEADER,
                            sizeof IDEMKEY_HTTP_HEADER - 1) != n ||
        !idemkey_valid(rq->idem, (size_t)n))
        return -1;
    rq->idem_len = (size_t)n;
    return 0;
}

int http_publish_request(const http_contacts_env *keys, struct relay *rl, struct lws *wsi,
                         http_exchange **x, const char *uri)
{
    (void)rl;
    hp_request *rq = xcalloc(1, sizeof *rq);
    const char *why;
    rq->broadcast = !strcmp(uri, HP_BROADCAST);
    const char *rname = uri + sizeof HP_PREFIX - 1;
    size_t n = rq->broadcast ? 0 : strlen(rname) - (sizeof HP_SUFFIX - 1);
    unsigned status = http_contacts_check_api(keys, wsi, rq->broadcast ? NULL : rname, n, &why);
    if (status) {
        rq->status = status;
        rq->why = why;
    } else if (hp_idem_key(wsi, rq) < 0) {
        rq->status = HTTP_STATUS_BAD_REQUEST;
        rq->why = "Idempotency-Key: " IDEMKEY_RULE;
    } else if (!rq->broadcast) {
        memcpy(rq->room, rname, n);
    }
    /* lws reads the body before an answer can go: answer at its end. */
    http_exchange_read_body(wsi, x, keys->conf->api_max_body, rq, hp_request_free);
    return 0;
}

/* --- the answer ---------------------------------------------------------------------- */

/* {"room", "id"} of a stored message, with "duplicate": true for a repeat. */
static json_t *hp_message(const hp_result *r)
{
    json_t *v = json_pack("{s:s, s:s}", "room", r->room, "id", r->id);
    if (r->duplicate)
        json_object_set_new(v, "duplicate", json_true());
    return v;
}

/* Every room's publish is done: answer. */
static void hp_finish(hp_request *rq)
{
    bool all = true;
    for (size_t i = 0; i < rq->n; i++)
        all = all && rq->res[i].id;
    json_t *v;
    if (!rq->broadcast) {
        v = all ? hp_message(&rq->res[0])
                : json_pack("{s:s}", "error", "the cluster could not confirm that the message was "
                                              "stored (Redis or RabbitMQ unavailable); it may or "
                                              "may not have been delivered");
    } else {
        json_t *list = json_array();
        for (size_t i = 0; i < rq->n; i++)
            json_array_append_new(list, rq->res[i].id
                ? hp_message(&rq->res[i])
                : json_pack("{s:s, s:s}", "room", rq->res[i].room, "error",
                            "not confirmed stored"));
        v = all ? json_pack("{s:o}", "messages", list)
                : json_pack("{s:s, s:o}", "error", "some rooms' messages were not confirmed "
                                                   "stored (see each); repeat those",
                            "messages", list);
    }
    http_exchange_answer_status(rq->e, all ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE,
                                v);
    json_decref(v);
}

static void hp_on_published(void *ctx, const relay_result *res)
{
    hp_call *c = ctx;
    hp_request *rq = c->rq;
    if (res->outcome == RELAY_STORED) {
        rq->res[c->i].id = xstrdup(res->id);
        rq->res[c->i].duplicate = res->duplicate;
    }
    free(c);
    if (--rq->pending == 0)
        hp_finish(rq);
}

/* --- the request --------------------------------------------------------------------- */

/* The string member `key` of o (absent: dflt); false when present but
 * not a string. */
static bool hp_str(json_t *o, const char *key, const char *dflt, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = v ? json_string_value(v) : dflt;
    return !v || json_is_string(v);
}

/* The SEND a request body describes: f (its headers in *h, to free) and
 * the sender. 0, or -1 with a reason (static) in *why. */
static int hp_frame(json_t *o, size_t max_headers, stomp_frame *f, stomp_header **h,
                    const char **sender, const char **name, const char **role, const char **why)
{
    const char *ctype;
    json_t *hdrs = json_object_get(o, "headers");
    *h = NULL;
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "body")) ||
        !hp_str(o, "content_type", "text/plain", &ctype) ||
        !hp_str(o, "sender", "system", sender) || !hp_str(o, "sender_name", *sender, name) ||
        !hp_str(o, "sender_role", "system", role) || (hdrs && !json_is_object(hdrs))) {
        *why = "the body is a JSON object with a string `body`, and optional strings "
               "content_type, sender, sender_name, sender_role and an object `headers` of "
               "strings";
        return -1;
    }
    if (!userid_valid(*sender, strlen(*sender)) || !**name || strlen(*name) > 128) {
        *why = "sender is a user id (1 to 128 bytes, no control characters or ','); "
               "sender_name 1 to 128 bytes";
        return -1;
    }
    if (strcmp(*role, "student") && strcmp(*role, "instructor") && strcmp(*role, "admin") &&
        strcmp(*role, "system")) {
        *why = "sender_role is student, instructor, admin or system";
        return -1;
    }
    size_t nh = 1 + (hdrs ? json_object_size(hdrs) : 0);
    if (nh > max_headers) {
        *why = "more headers than stomp.max_headers";
        return -1;
    }
    *h = xcalloc(nh, sizeof **h);
    (*h)[0] = (stomp_header){ { "content-type", 12 }, { ctype, strlen(ctype) } };
    size_t k = 1;
    const char *hk;
    json_t *hv;
    json_object_foreach(hdrs, hk, hv) {
        if (!json_is_string(hv)) {
            free(*h);
            *h = NULL;
            *why = "headers holds strings only";
            return -1;
        }
        (*h)[k++] = (stomp_header){ { hk, strlen(hk) },
                                    { json_string_value(hv), json_string_length(hv) } };
    }
    json_t *body = json_object_get(o, "body");
    *f = (stomp_frame){ .command = STOMP_CMD_SEND, .headers = *h, .nheaders = k,
                        .body = { json_string_value(body), json_string_length(body) } };
    return 0;
}

/* The rooms of a broadcast (rq->res, rq->n). 0, or -1 with *why. */
static int hp_rooms(hp_request *rq, json_t *o, const server_config *conf, const char **why)
{
    json_t *rooms = json_object_get(o, "rooms");
    size_t n = json_array_size(rooms);
    if (!json_is_array(rooms) || n == 0 || n > (size_t)conf->api_broadcast_max) {
        *why = "rooms is an array of 1 to api.broadcast_max room names";
        return -1;
    }
    rq->res = xcalloc(n, sizeof *rq->res);
    rq->n = n;
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(rooms, i);
        const char *s = json_string_value(r);
        size_t len = json_string_length(r);
        if (!s || !room_name_valid(s, len, (size_t)conf->max_room_name)) {
            *why = "rooms holds room names (1 to stomp.max_room_name characters of "
                   "A-Z a-z 0-9 . _ ~ -)";
            return -1;
        }
        for (size_t k = 0; k < i; k++)
            if (!strcmp(rq->res[k].room, s)) {
                *why = "rooms names a room twice";
                return -1;
            }
        memcpy(rq->res[i].room, s, len);
    }
    return 0;
}

int http_publish_body_done(const http_contacts_env *keys, struct relay *rl, struct lws *wsi,
                           http_exchange **x)
{
    hp_request *rq = http_exchange_data(*x);
    if (rq->status)
        return http_exchange_error(wsi, x, rq->status, rq->why);
    size_t len;
    bool over;
    const char *text = http_exchange_request_body(*x, &len, &over);
    if (over)
        return http_exchange_error(wsi, x, HTTP_STATUS_REQ_ENTITY_TOO_LARGE,
                                   "the request body is larger than api.max_body");
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    stomp_frame f;
    stomp_header *h = NULL;
    const char *sender, *name, *role, *why;
    int rc = 0;
    if (hp_frame(o, (size_t)keys->conf->max_headers, &f, &h, &sender, &name, &role, &why) < 0 ||
        (rq->broadcast && hp_rooms(rq, o, keys->conf, &why) < 0)) {
        rc = http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST, why);
        goto done;
    }
    if (!rq->broadcast) {
        rq->res = xcalloc(1, sizeof *rq->res);
        rq->n = 1;
        memcpy(rq->res[0].room, rq->room, sizeof rq->room);
    }
    char reason[400];
    for (size_t i = 0; i < rq->n; i++) {
        stomp_str room_name = { rq->res[i].room, strlen(rq->res[i].room) };
        if (relay_check_send(rl, &room_name, &f, sender, name, role, reason, sizeof reason) < 0) {
            rc = http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST, reason);
            goto done;
        }
    }
    rq->e = *x;
    http_exchange_await(rq->e);
    relay_pub_opts po = { .idem_key = rq->idem_len ? rq->idem : NULL,
                          .idem_key_len = rq->idem_len,
                          .idem_window_ms = keys->conf->api_idempotency_window_s * 1000LL };
    rq->pending = 1;            /* held until every room's publish is out */
    for (size_t i = 0; i < rq->n; i++) {
        stomp_str room_name = { rq->res[i].room, strlen(rq->res[i].room) };
        hp_call *c = xmalloc(sizeof *c);
        *c = (hp_call){ rq, i };
        rq->pending++;
        if (relay_publish(rl, &room_name, &f, sender, name, role, &po, hp_on_published, c) < 0) {
            free(c);            /* not taken: this room is not stored */
            rq->pending--;
        }
    }
    if (--rq->pending == 0)
        hp_finish(rq);
done:
    free(h);
    json_decref(o);
    return rc;
}
