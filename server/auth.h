/* auth.h — who a connection is, and what it may do in which room.
 *
 * With auth.mode=jwt every STOMP CONNECT and every /api request carries a
 * JSON Web Token (jwt.h); its claims are the identity (sub, name, role)
 * and the rooms it may use. With auth.mode=none nobody is checked: the
 * claims are NULL and every room is allowed (development only).
 *
 * Rules (auth_allows): admins may do anything; everyone else reads (and
 * SUBSCRIBEs, sees presence, fetches history) only in rooms their token
 * lists, and SENDs there unless they are a student and students may not
 * send (auth.student_send=false) or the room matches auth.instructor_rooms.
 */
#ifndef LECTERN_AUTH_H
#define LECTERN_AUTH_H

#include "config.h"
#include "jwt.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct auth auth;

typedef enum auth_action {
    AUTH_READ,     /* SUBSCRIBE, presence, history */
    AUTH_SEND,
} auth_action;

/* From the [auth] knobs; loads the key file. NULL with a reason in why. */
auth *auth_create(const server_config *c, char *why, size_t whylen);
/* Accepts NULL. */
void auth_destroy(auth *a);
/* What auth_create would refuse (a missing or bad key file), silently:
 * 0, or -1 with why. For --check-config. */
int auth_check_config(const server_config *c, char *why, size_t whylen);

/* Are tokens required (auth.mode=jwt)? */
bool auth_required(const auth *a);

/* Verify a token now: signature, auth.issuer and auth.audience (when set),
 * exp and nbf with auth.clock_skew_s. JWT_OK fills *out (jwt_claims_free). */
jwt_status auth_login(const auth *a, const char *tok, size_t len, jwt_claims **out);

/* The wall-clock second from which who's token no longer counts: its exp
 * plus auth.clock_skew_s (the moment auth_login starts refusing it). */
int64_t auth_valid_until(const auth *a, const jwt_claims *who);

/* The token of an Authorization header value "Bearer <token>" (case-
 * insensitive scheme): *tok and *len point into value; false when the
 * value is not a bearer credential. Pure. */
bool auth_bearer_token(const char *value, size_t vlen, const char **tok, size_t *len);

/* May `who` (NULL: auth.mode=none) do act in the room name[0..len)? */
bool auth_allows(const auth *a, const jwt_claims *who, const char *name, size_t len,
                 auth_action act);

/* Does the room name[0..len) match one pattern: a name, or a prefix ending in '*'? Pure. */
bool auth_room_matches(const char *pattern, size_t plen, const char *name, size_t len);

/* "student", "instructor" or "admin". */
const char *auth_role_name(jwt_role r);

#endif
