/* session_status.c — a connection's side of /status (status.h).
 *
 * SUBSCRIBE /status starts a watch of the caller's contacts, or of the
 * users its x-users header lists (comma-separated; each must be one of the
 * caller's contacts unless the caller may watch anyone: an admin token, or
 * auth.mode=none). The status module checks x-users against the list
 * asynchronously and ends a refused subscription through
 * session_status_fail, with an ERROR.
 *
 * SEND /status with a JSON body {"invisible": true|false} hides the caller
 * (they appear offline to everyone) or shows them again, for every one of
 * their connections until changed; the RECEIPT follows Redis's answer.
 * Like SEND /token it is not part of a transaction.
 */
#include "session_internal.h"
#include "session.h"

#include "auth.h"
#include "inflight.h"
#include "mem.h"
#include "registry_status.h"
#include "status.h"
#include "userid.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Split x-users (borrowed text) into ids, copied into one block: *out
 * (free(*out) frees all; spaces around an id are dropped). Returns the
 * count, or -1 when an id breaks the user id rule (userid.h) or there are
 * more than max. */
static long session_status_users(const stomp_str *v, size_t max, char ***out)
{
    size_t n = 1;
    for (size_t i = 0; i < v->len; i++)
        n += v->p[i] == ',';
    if (n > max)
        return -1;
    char **users = xmalloc(n * sizeof *users + v->len + 1);
    char *text = (char *)(users + n);
    memcpy(text, v->p, v->len);
    text[v->len] = '\0';
    size_t k = 0;
    char *p = text;
    for (;;) {
        char *end = strchr(p, ',');
        if (end)
            *end = '\0';
        while (*p == ' ')
            p++;
        size_t len = strlen(p);
        while (len && p[len - 1] == ' ')
            p[--len] = '\0';
        if (!userid_valid(p, len)) {
            free(users);
            return -1;
        }
        users[k++] = p;
        if (!end)
            break;
        p = end + 1;
    }
    *out = users;
    return (long)k;
}

int session_status_start(session *s, const stomp_frame *f, subscription *sub)
{
    const session_env *env = s->list->env;
    const stomp_str *xu = stomp_frame_header(f, "x-users");
    char **xusers = NULL;
    long nx = 0;
    if (xu) {
        nx = session_status_users(xu, (size_t)env->conf->contacts.max, &xusers);
        if (nx < 0) {
            session_error(s, f, ERROR_INVALID_USERS,
                          "x-users lists user ids separated by commas: each 1 to 128 bytes "
                          "of UTF-8 without control characters, at most contacts.max of "
                          "them.");
            return -1;
        }
    }
    const jwt_claims *who = s->who;
    bool any = !auth_required(env->auth) || (who && who->role == JWT_ROLE_ADMIN);
    status_sub *ss = status_subscribe(env->status, &sub->member, s->user,
                                      who ? who->contacts : NULL, who ? who->ncontacts : 0,
                                      (const char *const *)xusers, (size_t)nx, any);
    free(xusers);
    if (!ss) {
        session_unavailable(s, f);
        return -1;
    }
    sub->status = ss;
    return 0;
}

/* The ERROR names the subscription (header subscription:<id>): it comes
 * after the SUBSCRIBE's RECEIPT, so a client could not tell otherwise. */
void session_status_fail(subscriber *member, status_failure why, const char *detail)
{
    subscription *sub = subscription_of(member);
    session *s = sub->session;
    char *id = xmalloc(sub->id_len + 1);
    memcpy(id, sub->id, sub->id_len);
    id[sub->id_len] = '\0';
    char body[400];
    if (why == STATUS_FAIL_FORBIDDEN) {
        s->list->env->metrics->access_denied++;
        snprintf(body, sizeof body, "x-users may only list your contacts; not one of them: %s",
                 detail);
        session_error_x(s, NULL, ERROR_ACCESS_REFUSED, body, strlen(body), "subscription", id);
    } else {
        snprintf(body, sizeof body, "Contact lists cannot be read now (Redis and MySQL "
                                    "unavailable); subscribe to /status again later.");
        session_error_x(s, NULL, ERROR_SERVICE_UNAVAILABLE, body, strlen(body), "subscription",
                        id);
    }
    free(id);
}

static void session_on_hidden(void *ctx, bool ok)
{
    session *s = session_op_finish(ctx);
    if (!s)
        return;
    if (!ok) {
        session_error(s, NULL, ERROR_SERVICE_UNAVAILABLE,
                      "The registry (Redis) did not take the status change; send it again.");
        return;
    }
    session_flush_receipts(s);
}

void session_status_send(session *s, const stomp_frame *f)
{
    json_t *body = json_loadb(f->body.p, f->body.len, 0, NULL);
    json_t *inv = json_object_get(body, "invisible");
    bool valid = json_is_boolean(inv);
    bool hide = json_is_true(inv);
    json_decref(body);
    if (!valid) {
        session_error(s, f, ERROR_INVALID_STATUS,
                      "SEND to /status takes a JSON body {\"invisible\": true} or "
                      "{\"invisible\": false}.");
        return;
    }
    if (!session_fits(s, f, inflight_op_cost()))
        return;
    inflight_op *op = session_op(s, inflight_op_cost());
    if (registry_status_hide(s->list->env->registry, s->user, hide, session_on_hidden, op) < 0) {
        session_op_cancel(s, op);
        session_unavailable(s, f);
        return;
    }
    session_receipt(s, f);
}
