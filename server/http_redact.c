/* http_redact.c — DELETE /api/rooms/<room>/messages/<id> (see http_redact.h).
 *
 * At LWS_CALLBACK_HTTP the key, the room and the id are checked (a refusal
 * is kept and given once the body, if any, has been read: lws reads a
 * body before an answer can go). The body, optional, is {"by": "<user
 * id>"}. Then redact_message runs and the exchange waits for its outcome;
 * the request's state belongs to that call until it answers (a client gone
 * meanwhile only drops the answer: the redaction itself goes on).
 */
#include "http_redact.h"

#include "mem.h"
#include "msgid.h"
#include "redact.h"
#include "storelimits.h"
#include "userid.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HR_PREFIX "/api/rooms/"
#define HR_MIDDLE "/messages/"
#define HR_ROOM_MAX (STORELIMITS_ROOM_MAX + 1)

typedef struct hr_request {
    unsigned status;           /* a refusal decided before the body (0: none) */
    const char *why;
    char room[HR_ROOM_MAX];
    char id[MSGID_MAX];
    http_exchange *e;          /* once redacting */
} hr_request;

/* uri = /api/rooms/<room>/messages/<id>: room and id as spans of uri. */
static bool hr_split(const char *uri, const char **rname, size_t *rlen, const char **id,
                     size_t *ilen)
{
    size_t pl = sizeof HR_PREFIX - 1, ml = sizeof HR_MIDDLE - 1;
    if (strncmp(uri, HR_PREFIX, pl))
        return false;
    const char *r = uri + pl, *slash = strchr(r, '/');
    if (!slash || slash == r || strncmp(slash, HR_MIDDLE, ml))
        return false;
    const char *i = slash + ml;
    if (!*i || strchr(i, '/'))
        return false;
    *rname = r;
    *rlen = (size_t)(slash - r);
    *id = i;
    *ilen = strlen(i);
    return true;
}

bool http_redact_reading(struct lws *wsi)
{
    char uri[600];
    int n = lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_DELETE_URI);
    return n > 0 && http_redact_match(wsi, uri);
}

bool http_redact_match(struct lws *wsi, const char *uri)
{
    const char *r, *i;
    size_t rl, il;
    return lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0 &&
           hr_split(uri, &r, &rl, &i, &il);
}

static void hr_refuse(hr_request *rq, unsigned status, const char *why)
{
    if (!rq->status) {
        rq->status = status;
        rq->why = why;
    }
}

static void hr_on_redacted(void *ctx, const redact_result *res)
{
    hr_request *rq = ctx;
    json_t *v = NULL;
    unsigned status = HTTP_STATUS_OK;
    switch (res->status) {
    case REDACT_OK:
        v = json_pack("{s:s, s:s, s:s, s:s, s:I}", "room", res->room, "id", res->id,
                      "redaction_id", res->redaction_id, "redacted_by", res->by, "redacted_at",
                      (json_int_t)res->at_ms);
        break;
    case REDACT_ALREADY:
        v = json_pack("{s:s, s:s, s:b, s:s, s:I}", "room", res->room, "id", res->id, "already",
                      1, "redacted_by", res->by, "redacted_at", (json_int_t)res->at_ms);
        break;
    case REDACT_NOT_FOUND:
        status = HTTP_STATUS_NOT_FOUND;
        v = json_pack("{s:s}", "error", "no such message in this room");
        break;
    case REDACT_UNAVAILABLE:
        status = HTTP_STATUS_SERVICE_UNAVAILABLE;
        v = json_pack("{s:s}", "error", res->why);
        break;
    }
    http_exchange_answer_status(rq->e, status, v);
    json_decref(v);
    free(rq);
}

/* Answer now; rq goes (with the exchange when it holds rq, else here). */
static int hr_error(struct lws *wsi, http_exchange **x, hr_request *rq, bool reading,
                    unsigned status, const char *why)
{
    if (!reading)
        free(rq);
    return http_exchange_error(wsi, x, status, why);
}

/* The request is complete (body read, if any): redact, or refuse now. rq
 * is taken in every case: by the exchange that reads the body (reading),
 * by the redaction, or freed. */
static int hr_go(struct redact *rd, struct lws *wsi, http_exchange **x, hr_request *rq,
                 const char *body, size_t len, bool over)
{
    bool reading = *x && http_exchange_data(*x) == rq;
    if (rq->status)
        return hr_error(wsi, x, rq, reading, rq->status, rq->why);
    if (over)
        return hr_error(wsi, x, rq, reading, HTTP_STATUS_REQ_ENTITY_TOO_LARGE,
                        "the request body is larger than api.max_body");
    char by[USERID_MAX + 1] = "system";
    if (len) {
        json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
        json_t *b = json_object_get(o, "by");
        bool ok = json_is_object(o) && (!b || (json_is_string(b) &&
                                                userid_valid(json_string_value(b),
                                                             json_string_length(b))));
        if (ok && b)
            memcpy(by, json_string_value(b), json_string_length(b) + 1);
        json_decref(o);
        if (!ok)
            return hr_error(wsi, x, rq, reading, HTTP_STATUS_BAD_REQUEST,
                            "the body, when there is one, is a JSON object with an optional "
                            "`by`: a user id (1 to 128 bytes, no control characters or ',')");
    }
    if (!rd)
        return hr_error(wsi, x, rq, reading, HTTP_STATUS_SERVICE_UNAVAILABLE, "shutting down");
    /* From here rq belongs to the redaction, and the exchange waits. */
    if (reading) {
        http_exchange_keep(*x, NULL, NULL);
        http_exchange_await(*x);
        rq->e = *x;
    } else {
        rq->e = http_exchange_wait(wsi, x);
    }
    int rc = redact_message(rd, rq->room, rq->id, by, hr_on_redacted, rq);
    if (rc == 0)
        return 0;
    /* Refused at once: no callback will come. */
    http_exchange_unwait(rq->e);
    return hr_error(wsi, x, rq, false,
                    rc == REDACT_EINVAL ? HTTP_STATUS_BAD_REQUEST
                                        : HTTP_STATUS_SERVICE_UNAVAILABLE,
                    rc == REDACT_EINVAL ? "bad room, message id or by"
                                        : "the registry (Redis) is unavailable");
}

int http_redact_request(const http_contacts_env *keys, struct redact *rd, struct lws *wsi,
                        http_exchange **x, const char *uri)
{
    hr_request *rq = xcalloc(1, sizeof *rq);
    const char *why, *r, *i;
    size_t rl, il;
    msgid mid;
    hr_split(uri, &r, &rl, &i, &il);
    unsigned status = http_contacts_check_api(keys, wsi, r, rl, &why);
    if (status)
        hr_refuse(rq, status, why);
    else if (msgid_parse(i, il, &mid) < 0)
        hr_refuse(rq, HTTP_STATUS_BAD_REQUEST, "message ids are <ms>-<n> (as in message-id)");
    if (!rq->status) {
        memcpy(rq->room, r, rl);
        memcpy(rq->id, i, il);
    }
    char cl[24];
    if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 && atoll(cl) > 0) {
        http_exchange_read_body(wsi, x, keys->conf->api_max_body, rq, free);
        return 0;
    }
    return hr_go(rd, wsi, x, rq, "", 0, false);
}

int http_redact_body_done(const http_contacts_env *keys, struct redact *rd, struct lws *wsi,
                          http_exchange **x)
{
    (void)keys;
    hr_request *rq = http_exchange_data(*x);
    size_t len;
    bool over;
    const char *body = http_exchange_request_body(*x, &len, &over);
    return hr_go(rd, wsi, x, rq, body, len, over);
}
