/* session_login.c — CONNECT (and STOMP): the version, the heart-beats,
 * and who the client is.
 *
 * The version is the highest of accept-version the server speaks (1.0 when
 * the header is absent). Heart-beats follow STOMP 1.2: each direction runs
 * at the larger of what one side can do and the other wants, or not at all
 * if either is 0. Identity comes from the token with auth.mode=jwt (the
 * passcode header, or "Authorization: Bearer"), never from what else the
 * frame says; with auth.mode=none from login (or a guest id unique in the
 * cluster), x-display-name and x-role. A failed login gets the same words
 * whatever went wrong; the reason is logged and counted.
 */
#include "session_internal.h"
#include "session.h"

#include "log.h"
#include "mem.h"
#include "registry.h"
#include "resume.h"
#include "tokens.h"
#include "version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- CONNECT -------------------------------------------------------------- */

/* "a,b" with decimal a, b -> 0; -1 when malformed. */
static int parse_heartbeat(const stomp_str *v, uint64_t *cx, uint64_t *cy)
{
    uint64_t a = 0, b = 0;
    size_t i = 0, digits = 0;
    for (; i < v->len && v->p[i] >= '0' && v->p[i] <= '9'; i++, digits++)
        if ((a = a * 10 + (uint64_t)(v->p[i] - '0')) > 0xffffffffULL)
            return -1;
    if (!digits || i == v->len || v->p[i] != ',')
        return -1;
    i++;
    digits = 0;
    for (; i < v->len && v->p[i] >= '0' && v->p[i] <= '9'; i++, digits++)
        if ((b = b * 10 + (uint64_t)(v->p[i] - '0')) > 0xffffffffULL)
            return -1;
    if (!digits || i != v->len)
        return -1;
    *cx = a;
    *cy = b;
    return 0;
}

/* Highest version in the comma-separated accept-version list, 0 if none. */
static int pick_version(const stomp_str *v)
{
    int best = 0;
    size_t i = 0;
    while (i <= v->len) {
        size_t j = i;
        while (j < v->len && v->p[j] != ',')
            j++;
        const char *t = v->p + i;
        size_t n = j - i;
        while (n && t[0] == ' ') { t++; n--; }
        while (n && t[n - 1] == ' ') n--;
        int ver = 0;
        if (n == 3 && !memcmp(t, "1.2", 3)) ver = STOMP_V12;
        else if (n == 3 && !memcmp(t, "1.1", 3)) ver = STOMP_V11;
        else if (n == 3 && !memcmp(t, "1.0", 3)) ver = STOMP_V10;
        if (ver > best)
            best = ver;
        i = j + 1;
    }
    return best;
}

/* The failure of a login: the same words whatever went wrong, so that a
 * prober learns nothing (the reason is logged and counted). */
void session_refuse(session *s, const stomp_frame *f, const char *why)
{
    s->list->env->metrics->auth_failures++;
    log_info("auth_failed", "conn=%llu addr=%s reason=%s", (unsigned long long)s->id,
             s->addr ? s->addr : "-", why);
    session_error(s, f, ERROR_ACCESS_REFUSED, "Authentication failed.");
}

/* Set s->user (with the display name) and s->role from CONNECT, and count
 * the session online in the registry: with auth.mode=jwt
 * from the token (the passcode header, or an "Authorization: Bearer"
 * header), never from what else the frame says; with auth.mode=none from
 * login (or a guest id unique in the cluster), x-display-name and x-role.
 * Returns -1 after queueing an ERROR. */
static int session_identify(session *s, const stomp_frame *f)
{
    auth *a = s->list->env->auth;
    const char *u, *name = NULL;
    size_t ul, nl = 0;
    char guest[160];

    if (auth_required(a)) {
        const stomp_str *tok = stomp_frame_header(f, "passcode");
        const stomp_str *ah = stomp_frame_header(f, "Authorization");
        if (!ah)
            ah = stomp_frame_header(f, "authorization");
        const char *tp = NULL;
        size_t tl = 0;
        if (tok && tok->len) {
            tp = tok->p;
            tl = tok->len;
        } else if (ah && !auth_bearer_token(ah->p, ah->len, &tp, &tl)) {
            tp = NULL;
        }
        if (!tp) {
            session_refuse(s, f, "no_token");
            return -1;
        }
        jwt_status st = auth_login(a, tp, tl, &s->who);
        if (st != JWT_OK) {
            session_refuse(s, f, jwt_status_name(st));
            return -1;
        }
        u = s->who->sub;
        ul = strlen(u);
        name = s->who->name;
        nl = name == s->who->sub ? 0 : strlen(name);
        s->role = (uint8_t)s->who->role;
    } else {
        const stomp_str *login = stomp_frame_header(f, "login");
        const stomp_str *dname = stomp_frame_header(f, "x-display-name");
        const stomp_str *role = stomp_frame_header(f, "x-role");
        if ((login && login->len > 128) || (dname && dname->len > 128)) {
            session_error(s, f, ERROR_INVALID_IDENTITY,
                          "login and x-display-name are limited to 128 bytes.");
            return -1;
        }
        if (login && login->len) {
            u = login->p;
            ul = login->len;
        } else {
            u = guest;
            ul = (size_t)snprintf(guest, sizeof guest, "guest-%s-%llu", s->list->env->server_id,
                                  (unsigned long long)s->id);
        }
        if (dname && dname->len) {
            name = dname->p;
            nl = dname->len;
        }
        s->role = JWT_ROLE_STUDENT;
        if (role && stomp_str_eq(role, "instructor"))
            s->role = JWT_ROLE_INSTRUCTOR;
        else if (role && stomp_str_eq(role, "admin"))
            s->role = JWT_ROLE_ADMIN;
    }
    /* Online in the registry's mirror, whose copy of the user id serves as
     * s->user while the session is online (session_destroy goes offline
     * last): most connections give no display name and pay nothing more.
     * A display name takes one block of the session's own for both,
     * "user\0name\0" (user_own; session_user_name). */
    if (nl) {
        char *own = xmalloc(ul + 1 + nl + 1);
        memcpy(own, u, ul);
        own[ul] = '\0';
        memcpy(own + ul + 1, name, nl);
        own[ul + 1 + nl] = '\0';
        s->user = own;
        s->user_own = true;
        registry_online(s->list->env->registry, own, ul);
    } else {
        s->user = registry_online(s->list->env->registry, u, ul);
    }
    s->online = true;
    return 0;
}

void session_on_connect(session *s, const stomp_frame *f)
{
    const server_config *c = s->list->env->conf;

    if (s->state != SESSION_AWAIT_CONNECT) {
        session_error(s, f, ERROR_ALREADY_CONNECTED, "CONNECT was sent twice on one connection");
        return;
    }
    const stomp_str *av = stomp_frame_header(f, "accept-version");
    int version = av ? pick_version(av) : STOMP_V10;
    if (!version) {
        static const char why[] = "None of the versions in accept-version is supported.";
        session_error_x(s, f, ERROR_UNSUPPORTED_VERSION, why,
                        sizeof why - 1, "version", "1.0,1.1,1.2");
        return;
    }
    s->version = (uint8_t)version;

    uint64_t cx = 0, cy = 0;
    const stomp_str *hb = stomp_frame_header(f, "heart-beat");
    if (hb && parse_heartbeat(hb, &cx, &cy) < 0) {
        session_error_with(s, f, ERROR_INVALID_HEARTBEAT,
                           "heart-beat must be two integers \"cx,cy\"; got: ", hb);
        return;
    }
    /* STOMP 1.2 "Heart-beating": each direction runs at the larger of what
     * one side can do and the other wants, or not at all if either is 0. */
    uint64_t sx = (uint64_t)c->hb_send_ms, sy = (uint64_t)c->hb_recv_ms;
    s->hb_send_ms = (sx && cy) ? (uint32_t)(sx > cy ? sx : cy) : 0;
    s->hb_recv_ms = (cx && sy) ? (uint32_t)(cx > sy ? cx : sy) : 0;

    if (session_identify(s, f) < 0)
        return;

    char hbv[32], sid[32];
    snprintf(hbv, sizeof hbv, "%u,%u", s->hb_send_ms, s->hb_recv_ms);
    snprintf(sid, sizeof sid, "%llu", (unsigned long long)s->id);
    buf b;
    buf_init(&b);
    stomp_put_command(&b, STOMP_CMD_CONNECTED);
    stomp_put_header_str(&b, "version", version == STOMP_V12 ? "1.2" :
                                        version == STOMP_V11 ? "1.1" : "1.0", false);
    stomp_put_header_str(&b, "heart-beat", hbv, false);
    stomp_put_header_str(&b, "server", "Lectern/" LECTERN_VERSION, false);
    stomp_put_header_str(&b, "session", sid, false);
    stomp_put_body(&b, NULL, 0);
    session_push_frame(s, &b);
    buf_deinit(&b);
    s->state = SESSION_CONNECTED;
    /* created_ms gives way to the token's deadline (the union). */
    s->token_deadline_ms = s->who ? tokens_deadline_ms(s->list->env->auth, s->who,
                                                       session_now(s)) : 0;
    log_debug("stomp_connected", "conn=%llu version=%d hb_send=%u hb_recv=%u",
              (unsigned long long)s->id, version, s->hb_send_ms, s->hb_recv_ms);
}
