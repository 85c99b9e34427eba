/* auth.c — authentication (tokens to claims) and room permissions.
 *
 * The rules are few and fixed (auth.h); what varies is configuration: the
 * keyring, the issuer and audience tokens must name, the clock skew,
 * whether students send, and the rooms where only instructors send. Patterns are kept as the configured comma-separated
 * text and matched in place; the list is short and a permission check runs
 * once per SUBSCRIBE or SEND, not per delivery.
 *
 * Invariant: in jwt mode the keyring holds at least one key (auth_create
 * refuses to start otherwise: a server that can verify no token would
 * refuse everyone, which is a configuration mistake, not a policy).
 */
#include "auth.h"

#include "log.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct auth {
    bool jwt;
    jwt_keyring *keys;
    jwt_expect want;             /* auth.issuer, auth.audience (owned copies) */
    int skew;
    bool student_send;
    char *instructor_rooms;      /* comma-separated patterns */
};

/* The auth of c without a word in the log (auth_create logs, --check-config
 * does not); NULL with why. */
static auth *auth_build(const server_config *c, int *nkeys, char *why, size_t whylen)
{
    auth *a = xcalloc(1, sizeof *a);
    a->jwt = !strcmp(c->auth_mode, "jwt");
    a->skew = c->auth_skew_s;
    a->want.issuer = xstrdup(c->auth_issuer ? c->auth_issuer : "");
    a->want.audience = xstrdup(c->auth_audience ? c->auth_audience : "");
    a->want.max_contacts = (size_t)c->contacts.max;
    a->student_send = c->auth_student_send;
    a->instructor_rooms = xstrdup(c->auth_instructor_rooms ? c->auth_instructor_rooms : "");
    *nkeys = 0;
    if (!a->jwt)
        return a;
    a->keys = jwt_keyring_create();
    if (!c->auth_keys || !*c->auth_keys) {
        snprintf(why, whylen, "auth.mode=jwt needs auth.keys (a key file)");
        goto fail;
    }
    *nkeys = jwt_keyring_load(a->keys, c->auth_keys, why, whylen);
    if (*nkeys < 0)
        goto fail;
    if (*nkeys == 0) {
        snprintf(why, whylen, "%s holds no key", c->auth_keys);
        goto fail;
    }
    return a;
fail:
    auth_destroy(a);
    return NULL;
}

auth *auth_create(const server_config *c, char *why, size_t whylen)
{
    int n;
    auth *a = auth_build(c, &n, why, whylen);
    if (!a)
        return NULL;
    /* Without tokens the server warns itself (auth_insecure, server.c): it
     * knows where it listens. */
    if (a->jwt)
        log_info("auth", "mode=jwt keys=%d skew_s=%d issuer=\"%s\" audience=\"%s\" "
                 "student_send=%s instructor_rooms=\"%s\"", n, a->skew, a->want.issuer,
                 a->want.audience, a->student_send ? "true" : "false", a->instructor_rooms);
    return a;
}

int auth_check_config(const server_config *c, char *why, size_t whylen)
{
    int n;
    auth *a = auth_build(c, &n, why, whylen);
    auth_destroy(a);
    return a ? 0 : -1;
}

void auth_destroy(auth *a)
{
    if (!a)
        return;
    jwt_keyring_destroy(a->keys);
    free((char *)a->want.issuer);
    free((char *)a->want.audience);
    free(a->instructor_rooms);
    free(a);
}

bool auth_required(const auth *a)
{
    return a->jwt;
}

jwt_status auth_login(const auth *a, const char *tok, size_t len, jwt_claims **out)
{
    return jwt_verify(a->keys, tok, len, (int64_t)time(NULL), a->skew, &a->want, out);
}

int64_t auth_valid_until(const auth *a, const jwt_claims *who)
{
    return who->exp + a->skew;
}

bool auth_bearer_token(const char *value, size_t vlen, const char **tok, size_t *len)
{
    while (vlen && (*value == ' ' || *value == '\t')) {
        value++;
        vlen--;
    }
    if (vlen < 7 || strncasecmp(value, "bearer ", 7) != 0)
        return false;
    value += 7;
    vlen -= 7;
    while (vlen && *value == ' ') {
        value++;
        vlen--;
    }
    while (vlen && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
        vlen--;
    if (!vlen)
        return false;
    *tok = value;
    *len = vlen;
    return true;
}

bool auth_room_matches(const char *pattern, size_t plen, const char *name, size_t len)
{
    if (plen && pattern[plen - 1] == '*')
        return len >= plen - 1 && !memcmp(pattern, name, plen - 1);
    return plen == len && !memcmp(pattern, name, len);
}

/* Does the room name match one of the comma-separated patterns in list? */
static bool auth_in_list(const char *list, const char *name, size_t len)
{
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *q = p;
        size_t m = n;
        while (m && *q == ' ') {
            q++;
            m--;
        }
        while (m && q[m - 1] == ' ')
            m--;
        if (m && auth_room_matches(q, m, name, len))
            return true;
        p += n;
        if (*p == ',')
            p++;
    }
    return false;
}

bool auth_allows(const auth *a, const jwt_claims *who, const char *name, size_t len,
                 auth_action act)
{
    if (!a->jwt)
        return true;
    if (!who)
        return false;
    if (who->role == JWT_ROLE_ADMIN)
        return true;
    bool listed = false;
    for (size_t i = 0; i < who->nrooms && !listed; i++)
        listed = auth_room_matches(who->rooms[i], strlen(who->rooms[i]), name, len);
    if (!listed)
        return false;
    if (act == AUTH_READ || who->role == JWT_ROLE_INSTRUCTOR)
        return true;
    return a->student_send && !auth_in_list(a->instructor_rooms, name, len);
}

const char *auth_role_name(jwt_role r)
{
    switch (r) {
    case JWT_ROLE_INSTRUCTOR: return "instructor";
    case JWT_ROLE_ADMIN: return "admin";
    case JWT_ROLE_STUDENT: break;
    }
    return "student";
}
