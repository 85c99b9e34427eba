/* http_contacts.c — PUT/PATCH/DELETE/GET /api/users/<id>/contacts.
 *
 * Request. At LWS_CALLBACK_HTTP the method, the user id and the key are
 * checked while the headers are at hand; the verdict is kept in a
 * hc_request. A request with a body (Content-Length > 0) is then read
 * first (http_exchange_read_body: at most api.max_body bytes kept, the
 * rest counted), because lws answers only after the body; a refusal found
 * earlier is given once it is in. Without a body the request goes on at
 * once.
 *
 * Answer. A write runs in MySQL (db_contacts.h, one transaction), then the
 * registry drops the Redis copy and publishes the change
 * (registry_contacts_changed), then 200. The exchange waits meanwhile; the
 * hc_request, owned by the call in flight, carries it. A client that left
 * does not stop the write (its answer is only dropped). Every input is
 * bounded: the body by api.max_body, the lists by contacts.max, each id by
 * the id rule (userid.h).
 */
#include "http_contacts.h"

#include "room.h"

#include "apikey.h"
#include "db_contacts.h"
#include "log.h"
#include "mem.h"
#include "registry_contacts.h"
#include "userid.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HC_PREFIX "/api/users/"
#define HC_SUFFIX "/contacts"

typedef enum { HC_GET, HC_PUT, HC_PATCH, HC_DELETE } hc_method;

typedef struct hc_request {
    const http_contacts_env *env;
    http_exchange *e;            /* while waiting */
    hc_method method;
    unsigned status;             /* a refusal found before the body (0: none) */
    const char *why;             /* static */
    json_t *root;                /* the parsed body the id lists point into */
    const char **a, **b;
    size_t na, nb;
    size_t count;                /* the answer's count */
    char user[USERID_MAX + 1];
} hc_request;

static void hc_request_free(void *p)
{
    hc_request *rq = p;
    if (!rq)
        return;
    free(rq->a);
    free(rq->b);
    json_decref(rq->root);
    free(rq);
}

bool http_contacts_match(const char *uri)
{
    size_t n = strlen(uri), pl = sizeof HC_PREFIX - 1, sl = sizeof HC_SUFFIX - 1;
    return n > pl + sl && !strncmp(uri, HC_PREFIX, pl) && !strcmp(uri + n - sl, HC_SUFFIX);
}

/* --- parsing ------------------------------------------------------------------------- */

/* The ids of array v (absent: none) into a new sorted, repeat-free array. */
static int hc_ids(json_t *v, size_t max, const char ***out, size_t *n, const char **why)
{
    *out = NULL;
    *n = 0;
    if (!v)
        return 0;
    if (!json_is_array(v)) {
        *why = "contact lists are JSON arrays of user ids";
        return -1;
    }
    size_t k = json_array_size(v);
    if (k > max) {
        *why = "too many contacts (more than contacts.max)";
        return -1;
    }
    const char **ids = xcalloc(k ? k : 1, sizeof *ids);
    for (size_t i = 0; i < k; i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s) || !userid_valid(json_string_value(s), json_string_length(s))) {
            free(ids);
            *why = "user ids are 1 to 128 bytes of UTF-8 without control characters or ','";
            return -1;
        }
        ids[i] = json_string_value(s);
    }
    *out = ids;
    *n = userid_sort_unique(ids, k);
    return 0;
}

int http_contacts_parse(const char *body, size_t len, bool patch, size_t max, json_t **root,
                        const char ***a, size_t *na, const char ***b, size_t *nb,
                        const char **why)
{
    *a = *b = NULL;
    *na = *nb = 0;
    json_error_t jerr;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    *root = o;
    if (!json_is_object(o)) {
        *why = patch ? "the body must be a JSON object {\"add\":[...],\"remove\":[...]}"
                     : "the body must be a JSON object {\"contacts\":[...]}";
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        bool known = patch ? !strcmp(key, "add") || !strcmp(key, "remove")
                           : !strcmp(key, "contacts");
        if (!known) {
            *why = patch ? "unknown member (PATCH takes add and remove)"
                         : "unknown member (PUT takes contacts)";
            return -1;
        }
    }
    if (!patch && !json_object_get(o, "contacts")) {
        *why = "contacts is required (an empty array clears the list)";
        return -1;
    }
    if (hc_ids(json_object_get(o, patch ? "add" : "contacts"), max, a, na, why) < 0 ||
        hc_ids(json_object_get(o, "remove"), max, b, nb, why) < 0)
        goto fail;
    for (size_t i = 0; i < *nb; i++)
        if (userid_sorted_has(*a, *na, (*b)[i])) {
            *why = "an id is both in add and remove";
            goto fail;
        }
    return 0;

fail:
    free(*a);
    free(*b);
    *a = *b = NULL;
    *na = *nb = 0;
    return -1;
}

/* --- answers ------------------------------------------------------------------------- */

static void hc_fill(void *ctx, unsigned char *dst)
{
    const char *text = ctx;
    memcpy(dst, text, strlen(text));
}

/* Answer the waiting rq->e with status and v (taken), then free rq. */
static void hc_answer(hc_request *rq, unsigned status, json_t *v)
{
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!text) {
        status = HTTP_STATUS_INTERNAL_SERVER_ERROR;
        text = xstrdup("{\"error\":\"internal error\"}");
    }
    http_exchange_answer(rq->e, status, "application/json", strlen(text), hc_fill, text);
    free(text);
    hc_request_free(rq);
}

static void hc_answer_error(hc_request *rq, unsigned status, const char *why)
{
    hc_answer(rq, status, json_pack("{s:s}", "error", why));
}

static void hc_on_changed(void *ctx, bool ok)
{
    hc_request *rq = ctx;
    if (!ok) {
        hc_answer_error(rq, HTTP_STATUS_SERVICE_UNAVAILABLE,
                        "the list is stored, but the registry (Redis) could not publish the "
                        "change: retry the request");
        return;
    }
    hc_answer(rq, HTTP_STATUS_OK, json_pack("{s:s, s:I}", "user", rq->user, "count",
                                            (json_int_t)rq->count));
}

static void hc_on_write(void *ctx, const db_contacts_result *r)
{
    hc_request *rq = ctx;
    const http_contacts_env *env = rq->env;
    if (!r->ok) {
        char q[240];
        log_warn("contacts_write_failed", "user=%s reason=%s",
                 log_q(q, sizeof q, rq->user, strlen(rq->user)),
                 r->why ? r->why : "-");
        hc_answer_error(rq, HTTP_STATUS_SERVICE_UNAVAILABLE, "contact lists unavailable (MySQL)");
        return;
    }
    if (r->too_many) {
        hc_answer_error(rq, HTTP_STATUS_BAD_REQUEST,
                        "too many contacts: the list would hold more than contacts.max");
        return;
    }
    env->metrics->contacts_writes++;
    rq->count = r->count;
    if (!env->registry || registry_contacts_changed(env->registry, rq->user,
                                                    env->conf->contacts.redis_ttl_s,
                                                    hc_on_changed, rq) < 0)
        hc_on_changed(rq, false);
}

static void hc_on_read(void *ctx, const db_contacts_result *r)
{
    hc_request *rq = ctx;
    if (!r->ok) {
        hc_answer_error(rq, HTTP_STATUS_SERVICE_UNAVAILABLE, "contact lists unavailable (MySQL)");
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < r->count; i++)
        json_array_append_new(list, json_string(r->ids[i]));
    hc_answer(rq, HTTP_STATUS_OK, json_pack("{s:s, s:o, s:b}", "user", rq->user, "contacts",
                                            list, "stored", (int)r->stored));
}

/* The request is complete (body read, if any): answer it. */
static int hc_go(const http_contacts_env *env, struct lws *wsi, http_exchange **x, hc_request *rq,
                 const char *body, size_t len, bool over)
{
    if (rq->status)
        return http_exchange_error(wsi, x, rq->status, rq->why);
    if (over)
        return http_exchange_error(wsi, x, HTTP_STATUS_REQ_ENTITY_TOO_LARGE,
                                   "request body larger than api.max_body");
    size_t max = (size_t)env->conf->contacts.max;
    if (rq->method == HC_PUT || rq->method == HC_PATCH) {
        const char *why = NULL;
        if (http_contacts_parse(body, len, rq->method == HC_PATCH, max, &rq->root, &rq->a,
                                &rq->na, &rq->b, &rq->nb, &why) < 0)
            return http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST, why);
    }
    if (!env->db)
        return http_exchange_error(wsi, x, HTTP_STATUS_SERVICE_UNAVAILABLE, "shutting down");
    /* From here rq belongs to the call in flight, and the exchange waits. */
    if (*x && http_exchange_data(*x) == rq) {
        http_exchange_keep(*x, NULL, NULL);
        http_exchange_await(*x);
        rq->e = *x;
    } else {
        rq->e = http_exchange_wait(wsi, x);
    }
    switch (rq->method) {
    case HC_GET:
        db_contacts_read(env->db, rq->user, max, hc_on_read, rq);
        break;
    case HC_PUT:
        db_contacts_replace(env->db, rq->user, rq->a, rq->na, hc_on_write, rq);
        break;
    case HC_PATCH:
        db_contacts_patch(env->db, rq->user, rq->a, rq->na, rq->b, rq->nb, max, hc_on_write, rq);
        break;
    case HC_DELETE:
        db_contacts_delete(env->db, rq->user, hc_on_write, rq);
        break;
    }
    return 0;
}

/* --- requests ------------------------------------------------------------------------ */

/* Refuse rq with status and why (given once the body is in). */
static void hc_refuse(hc_request *rq, unsigned status, const char *why)
{
    if (!rq->status) {
        rq->status = status;
        rq->why = why;
    }
}

bool http_contacts_keyed(const http_contacts_env *env, struct lws *wsi, bool *sent)
{
    char auth[1100], key[1100];
    int al = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    int kl = lws_hdr_custom_length(wsi, "x-api-key:", 10);
    if (al <= 0 || al >= (int)sizeof auth ||
        lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION) != al)
        al = 0;
    if (kl <= 0 || kl >= (int)sizeof key || lws_hdr_custom_copy(wsi, key, sizeof key,
                                                                "x-api-key:", 10) != kl)
        kl = 0;
    const char *cred;
    size_t cl;
    *sent = al || kl;
    return apikey_credential(al ? auth : NULL, (size_t)al, kl ? key : NULL, (size_t)kl, &cred,
                             &cl) &&
           apikey_set_matches(env->keys, cred, cl);
}

unsigned http_contacts_check_key(const http_contacts_env *env, struct lws *wsi, const char *api,
                                 const char *off_why, const char **why)
{
    if (!apikey_set_count(env->keys)) {
        *why = off_why;
        return HTTP_STATUS_FORBIDDEN;
    }
    bool sent;
    if (http_contacts_keyed(env, wsi, &sent))
        return 0;
    char addr[64];
    env->metrics->auth_failures++;
    if (!lws_get_peer_simple(wsi, addr, sizeof addr))
        snprintf(addr, sizeof addr, "-");
    log_info("auth_failed", "http=1 api=%s peer=%s reason=%s", api, addr,
             sent ? "bad_key" : "no_key");
    *why = "a key of api.keys is required (Authorization: Bearer <key> or X-API-Key: <key>)";
    return HTTP_STATUS_UNAUTHORIZED;
}

unsigned http_contacts_check_api(const http_contacts_env *env, struct lws *wsi,
                                 const char *rname, size_t len, const char **why)
{
    unsigned status = http_contacts_check_key(env, wsi, "server",
                                              "the server API is off (api.keys is empty)", why);
    if (status)
        return status;
    if (rname && !room_name_valid(rname, len, (size_t)env->conf->max_room_name)) {
        *why = HTTP_ROOM_RULE;
        return HTTP_STATUS_BAD_REQUEST;
    }
    return 0;
}

/* Does the request carry a matching key? Refuses rq otherwise. */
static void hc_check_key(const http_contacts_env *env, struct lws *wsi, hc_request *rq)
{
    const char *why;
    unsigned status = http_contacts_check_key(env, wsi, "contacts",
                                              "the contacts API is off (api.keys is empty)", &why);
    if (status)
        hc_refuse(rq, status, why);
}

int http_contacts_request(const http_contacts_env *env, struct lws *wsi, http_exchange **x,
                          const char *uri)
{
    hc_request *rq = xcalloc(1, sizeof *rq);
    rq->env = env;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
        rq->method = HC_GET;
    else if (lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI) > 0)
        rq->method = HC_PUT;
    else if (lws_hdr_total_length(wsi, WSI_TOKEN_PATCH_URI) > 0)
        rq->method = HC_PATCH;
    else if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0)
        rq->method = HC_DELETE;
    else
        hc_refuse(rq, HTTP_STATUS_METHOD_NOT_ALLOWED,
                  "this resource takes GET, PUT, PATCH and DELETE");
    hc_check_key(env, wsi, rq);
    const char *id = uri + sizeof HC_PREFIX - 1;
    size_t n = strlen(id) - (sizeof HC_SUFFIX - 1);
    if (!userid_valid(id, n))
        hc_refuse(rq, HTTP_STATUS_BAD_REQUEST,
                  "user ids are 1 to 128 bytes of UTF-8 without control characters or ','");
    else
        memcpy(rq->user, id, n);

    char cl[24];
    if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 && atoll(cl) > 0) {
        http_exchange_read_body(wsi, x, env->conf->api_max_body, rq, hc_request_free);
        return 0;
    }
    int rc = hc_go(env, wsi, x, rq, "", 0, false);
    if (!rq->e)
        hc_request_free(rq);        /* answered at once */
    return rc;
}

int http_contacts_body_done(const http_contacts_env *env, struct lws *wsi, http_exchange **x)
{
    hc_request *rq = http_exchange_data(*x);
    size_t len;
    bool over;
    const char *body = http_exchange_request_body(*x, &len, &over);
    /* An answer now replaces the exchange, and with it rq and body; one
     * later takes rq over (hc_go). */
    return hc_go(env, wsi, x, rq, body, len, over);
}
