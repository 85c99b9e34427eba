/* tokens.c — a session's token after CONNECT: when it runs out, and taking
 * a fresh one.
 *
 * Expiry. A token is checked at CONNECT; without more, a session would
 * outlive it by as long as the connection lasts (hours, for a lecture). So
 * the session keeps a deadline: the loop-time millisecond at which its
 * token's exp plus auth.clock_skew_s passes, i.e. the moment auth_login
 * would start refusing the same token. session.c compares it from its
 * periodic tick (one comparison per session per tick: nothing per frame),
 * and at the deadline sends ERROR "Token expired" and closes. The deadline
 * is converted once from wall-clock to loop time when the token is taken,
 * so the tick reads no clock.
 *
 * Refresh. A client keeps its session by sending, before the deadline,
 *
 *     SEND
 *     destination:/token
 *     passcode:<fresh token>
 *     [receipt:<id>]
 *
 * (no body). The token must pass everything a CONNECT token passes
 * (signature, auth.issuer, auth.audience, exp, nbf), name the session's
 * sub (a session never changes user), and permit reading the room of every
 * subscription the session holds: a token that no longer lists a room must
 * not leave its subscription running. Any failure ends the session, with
 * the same words as a failed login for a bad token (nothing for a prober
 * to learn) and the usual "Not permitted to read: <destination>" for a
 * lost room. On success the new claims replace the old (role, rooms, exp),
 * while the identity the session shows (sub, display name) stays the one
 * it connected with.
 *
 * Invariants: tokens_refresh has no side effects; the caller owns the
 * claims it returns and performs every state change and every frame.
 */
#include "tokens.h"

#include "clock.h"

#include <stdio.h>
#include <string.h>

const char tokens_expired_detail[] =
    "The token of this session expired (exp plus auth.clock_skew_s). Before it expires, "
    "send a fresh one: SEND with destination:" TOKENS_DESTINATION " and the token in the "
    "passcode header; or connect again with a fresh token.";

bool tokens_is_refresh(const stomp_str *dest)
{
    return stomp_str_eq(dest, TOKENS_DESTINATION);
}

uint64_t tokens_deadline_ms(const auth *a, const jwt_claims *who, uint64_t now_ms)
{
    int64_t until = auth_valid_until(a, who);
    if (until >= INT64_MAX / 1000)
        return UINT64_MAX;        /* an exp some billions of years away: never */
    int64_t until_ms = until * 1000;
    int64_t wall_ms = (int64_t)clock_wall_ms();
    if (until_ms <= wall_ms)
        return now_ms;
    return now_ms + (uint64_t)(until_ms - wall_ms);
}

/* The destination sub was made with, as the client wrote it. */
static void tokens_sub_destination(const subscription *sub, char *out, size_t cap)
{
    snprintf(out, cap, "%s%.*s", sub->kind == SUB_PRESENCE ? "/presence/" : "/topic/",
             (int)sub->room_len, sub->id + sub->id_len);
}

tokens_verdict tokens_refresh(const auth *a, const jwt_claims *cur, const stomp_frame *f,
                              const subscription *subs, tokens_result *res)
{
    res->claims = NULL;
    res->why = NULL;
    res->lost[0] = '\0';
    const stomp_str *tok = stomp_frame_header(f, "passcode");
    if (!tok || !tok->len) {
        res->why = "refresh_no_token";
        return TOKENS_REFUSED;
    }
    jwt_claims *c = NULL;
    jwt_status st = auth_login(a, tok->p, tok->len, &c);
    if (st != JWT_OK) {
        res->why = jwt_status_name(st);
        return TOKENS_REFUSED;
    }
    if (!cur || strcmp(c->sub, cur->sub) != 0) {
        jwt_claims_free(c);
        res->why = "refresh_other_sub";
        return TOKENS_REFUSED;
    }
    for (const subscription *sub = subs; sub; sub = sub->next) {
        if (sub->kind == SUB_STATUS)
            continue;       /* no room: contacts are not token-scoped rooms */
        if (!auth_allows(a, c, sub->id + sub->id_len, sub->room_len, AUTH_READ)) {
            jwt_claims_free(c);
            tokens_sub_destination(sub, res->lost, sizeof res->lost);
            return TOKENS_ROOM_LOST;
        }
    }
    res->claims = c;
    return TOKENS_OK;
}
