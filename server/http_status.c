/* http_status.c — GET /api/users/<id>/contacts/status.
 *
 * The same path as a /status subscription, without watching: the list
 * from contacts.h (stored, else the claim), then the statuses from the
 * registry in chunks of status.chunk users (pipelined), then one JSON
 * answer in the list's order. The request's state lives with its exchange
 * (http_exchange_keep), so a client that leaves early costs nothing more
 * than the calls already in flight, whose answers only free it.
 */
#include "http_status.h"

#include "contacts.h"
#include "mem.h"
#include "registry_status.h"
#include "status.h"
#include "userid.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

typedef struct status_req {
    const server_config *conf;
    struct registry *reg;
    http_exchange *e;
    char *user;
    char **only;               /* ?users=, copied; NULL: every contact */
    size_t nonly;
    bool any;
    char **names;              /* the list asked about */
    registry_status *st;
    size_t n, pending;
    bool failed;
} status_req;

typedef struct status_chunk {
    status_req *r;
    size_t at;
} status_chunk;

static void status_req_free(void *p)
{
    status_req *r = p;
    for (size_t i = 0; i < r->n; i++)
        free(r->names[i]);
    for (size_t i = 0; i < r->nonly; i++)
        free(r->only[i]);
    free(r->names);
    free(r->only);
    free(r->st);
    free(r->user);
    free(r);
}

static void status_answer(status_req *r)
{
    if (r->failed) {
        http_exchange_answer_error(r->e, HTTP_STATUS_SERVICE_UNAVAILABLE, "registry (Redis) unavailable");
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < r->n; i++)
        json_array_append_new(list, status_entry_json(r->names[i], &r->st[i]));
    json_t *v = json_pack("{s:s, s:o}", "user", r->user, "contacts", list);
    http_exchange_answer_json(r->e, v, "registry (Redis) unavailable");
    json_decref(v);
}

static void status_on_chunk(void *ctx, const registry_status *st, size_t n, bool ok)
{
    status_chunk *c = ctx;
    status_req *r = c->r;
    if (!ok)
        r->failed = true;
    for (size_t i = 0; ok && i < n && c->at + i < r->n; i++)
        r->st[c->at + i] = st[i];
    free(c);
    if (--r->pending == 0)
        status_answer(r);
}

static void status_on_list(void *ctx, const char *const *users, size_t n, bool ok)
{
    status_req *r = ctx;
    if (!ok) {
        http_exchange_answer_error(r->e, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                   "contact lists unavailable (Redis and MySQL)");
        return;
    }
    const char *const *list = users;
    size_t max = (size_t)r->conf->contacts.max;
    if (r->only) {
        if (!r->any &&
            userid_first_missing(users, n, (const char *const *)r->only, r->nonly)) {
            http_exchange_answer_error(r->e, HTTP_STATUS_FORBIDDEN,
                                       "users= may only list the user's contacts");
            return;
        }
        list = (const char *const *)r->only;
        n = r->nonly;
    }
    if (n > max)
        n = max;
    r->n = n;
    r->names = xcalloc(n ? n : 1, sizeof *r->names);
    r->st = xcalloc(n ? n : 1, sizeof *r->st);
    for (size_t i = 0; i < n; i++)
        r->names[i] = xstrdup(list[i]);
    size_t chunk = (size_t)r->conf->status_chunk;
    r->pending = 1;         /* held until every chunk is out */
    for (size_t at = 0; at < n; at += chunk) {
        status_chunk *c = xmalloc(sizeof *c);
        *c = (status_chunk){ r, at };
        r->pending++;
        if (registry_status_get(r->reg, (const char *const *)r->names + at,
                                n - at < chunk ? n - at : chunk, status_on_chunk, c) < 0) {
            free(c);
            r->pending--;
            r->failed = true;
        }
    }
    if (--r->pending == 0)
        status_answer(r);
}

/* Split ?users= (in place) into r->only. -1 when malformed. */
static int status_only(status_req *r, char *list, size_t max)
{
    size_t cap = 8;
    r->only = xmalloc(cap * sizeof *r->only);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (r->nonly == max || !userid_valid(tok, strlen(tok)))
            return -1;
        if (r->nonly == cap) {
            cap *= 2;
            r->only = xrealloc(r->only, cap * sizeof *r->only);
        }
        r->only[r->nonly++] = xstrdup(tok);
    }
    return r->nonly ? 0 : -1;
}

int http_status_request(const server_config *conf, struct registry *reg, struct contacts *cs,
                        struct lws *wsi, http_exchange **x,
                        const char *id, size_t idlen, const char *const *claim, size_t nclaim,
                        bool any)
{
    status_req *r = xcalloc(1, sizeof *r);
    r->conf = conf;
    r->reg = reg;
    r->any = any;
    r->user = xmalloc(idlen + 1);
    memcpy(r->user, id, idlen);
    r->user[idlen] = '\0';
    char arg[16384];
    char *list = (char *)lws_get_urlarg_by_name(wsi, "users=", arg, sizeof arg);
    if (list && status_only(r, list, (size_t)conf->contacts.max) < 0) {
        status_req_free(r);
        return http_exchange_error(wsi, x, HTTP_STATUS_BAD_REQUEST,
                                   "users= lists user ids separated by commas (each 1 to 128 "
                                   "bytes of UTF-8, no control characters), at most "
                                   "contacts.max");
    }
    if (!registry_up(reg)) {
        status_req_free(r);
        return http_exchange_error(wsi, x, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                   "registry (Redis) unavailable");
    }
    r->e = http_exchange_wait(wsi, x);
    http_exchange_keep(r->e, r, status_req_free);
    if (r->only && any) {
        status_on_list(r, NULL, 0, true);
        return 0;
    }
    contacts_get(cs, r->user, claim, nclaim, status_on_list, r);
    return 0;
}
