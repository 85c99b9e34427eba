/* tokens.h — a session's token over the session's life: expiry and refresh.
 *
 * With auth.mode=jwt a session holds the claims of the token it connected
 * with. The session ends when that token expires (its exp plus
 * auth.clock_skew_s: ERROR "Token expired"), unless the client has sent a
 * fresh token before: a SEND to destination TOKENS_DESTINATION with the
 * token in its passcode header (docs/protocol.md). The fresh token must
 * verify like a login, name the same sub, and still permit reading every
 * room the session is subscribed to; its claims (role, rooms, exp) then
 * replace the session's.
 *
 * The checks are here; session.c keeps the claims, the deadline and the
 * frames (it calls tokens_refresh and acts on the verdict).
 */
#ifndef LECTERN_TOKENS_H
#define LECTERN_TOKENS_H

#include "auth.h"
#include "stomp.h"
#include "subscription.h"

#include <stdbool.h>
#include <stdint.h>

#define TOKENS_DESTINATION "/token"

/* Is dest the refresh destination? Pure. */
bool tokens_is_refresh(const stomp_str *dest);

/* The loop time (ms, the clock of now_ms) at which a session holding who
 * must end: the wall-clock moment auth_valid_until(a, who), measured from
 * now. now_ms when that moment has passed; UINT64_MAX when it is too far
 * away to count in milliseconds. */
uint64_t tokens_deadline_ms(const auth *a, const jwt_claims *who, uint64_t now_ms);

typedef enum tokens_verdict {
    TOKENS_OK,          /* res->claims: the new claims (the caller owns them) */
    TOKENS_REFUSED,     /* no token, a bad one, or another sub: res->why for the log */
    TOKENS_ROOM_LOST,   /* the new token does not permit res->lost (a destination) */
} tokens_verdict;

typedef struct tokens_result {
    jwt_claims *claims;
    const char *why;          /* static */
    char lost[300];           /* "/topic/<room>" or "/presence/<room>" */
} tokens_result;

/* Check the refresh SEND f of a session that holds cur (borrowed) and the
 * subscriptions subs (its list, borrowed): the passcode verifies
 * (auth_login), names cur's sub, and permits AUTH_READ in the room of
 * every subscription. a must require tokens (auth_required). */
tokens_verdict tokens_refresh(const auth *a, const jwt_claims *cur, const stomp_frame *f,
                              const subscription *subs, tokens_result *res);

/* The body of ERROR "Token expired": what the client could have done. */
extern const char tokens_expired_detail[];

#endif
