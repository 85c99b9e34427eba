/* jwt.h — JSON Web Token (RFC 7519) verification for Lectern's logins.
 *
 * A keyring holds the keys a server trusts, each under its key id ("kid"):
 * HS256 shared secrets and RS256 public keys (OpenSSL does the crypto,
 * jansson the JSON). jwt_verify checks one compact token against it: three
 * base64url segments, a header naming alg (HS256 or RS256; "none" and
 * everything else are refused) and, when the ring holds more than one key,
 * the kid; the signature, in constant time; then the claims, the issuer
 * and audience the caller requires (jwt_expect), and exp and nbf against
 * the clock with a skew allowance. Only then are the claims Lectern uses
 * extracted (jwt_parse_claims, also exposed for tests and fuzzing).
 *
 * Nothing here does I/O except jwt_keyring_load, which reads the key file.
 */
#ifndef LECTERN_JWT_H
#define LECTERN_JWT_H

#include <stddef.h>
#include <stdint.h>

typedef struct jwt_keyring jwt_keyring;

typedef enum jwt_role {
    JWT_ROLE_STUDENT = 0,
    JWT_ROLE_INSTRUCTOR,
    JWT_ROLE_ADMIN,
} jwt_role;

typedef enum jwt_status {
    JWT_OK = 0,
    JWT_MALFORMED,      /* not three base64url segments of JSON objects */
    JWT_BAD_ALG,        /* alg missing, "none", or not one we verify */
    JWT_UNKNOWN_KEY,    /* kid names no key of the ring (or alg differs) */
    JWT_BAD_SIGNATURE,
    JWT_EXPIRED,        /* exp + skew <= now */
    JWT_NOT_YET,        /* nbf - skew > now */
    JWT_BAD_CLAIMS,     /* sub/role/rooms/exp missing or of the wrong type, a bad
                         * contacts claim, or more contacts than jwt_expect allows */
    JWT_BAD_ISSUER,     /* iss missing or not the issuer required */
    JWT_BAD_AUDIENCE,   /* aud missing or not naming the audience required */
} jwt_status;

/* What a token must say besides being signed and current (RFC 7519 4.1.1,
 * 4.1.3). A NULL or empty member is not checked. */
typedef struct jwt_expect {
    const char *issuer;       /* iss must be exactly this string */
    const char *audience;     /* aud (a string, or an array of strings) must hold this */
    size_t max_contacts;      /* a contacts claim may list at most this many (0: any) */
} jwt_expect;

/* The claims Lectern acts on. One allocation (jwt_claims_free): the
 * strings point into the block. rooms are patterns: a room name, or a
 * prefix ending in '*' ("*" alone: every room). contacts is the optional
 * `contacts` claim: user ids (userid.h) whose online status the user may
 * watch when no list is stored for them (contacts.h). */
typedef struct jwt_claims {
    const char *sub;          /* user id, 1..128 bytes */
    const char *name;         /* display name; sub when absent */
    jwt_role role;
    int64_t exp, nbf;         /* seconds since the epoch; nbf 0 when absent */
    size_t nrooms;
    const char **rooms;
    size_t ncontacts;
    const char **contacts;    /* the `contacts` claim (user ids); NULL when absent */
} jwt_claims;

/* A short, static name of a status for logs ("expired", ...). */
const char *jwt_status_name(jwt_status st);

jwt_keyring *jwt_keyring_create(void);
/* NULL is accepted. */
void jwt_keyring_destroy(jwt_keyring *kr);

/* Add an HS256 secret (copied) or an RS256 public key in PEM. kid may be
 * "" for a key used when a token names none. 0, or -1 with a reason in why
 * (duplicate kid, unreadable PEM, secret shorter than 32 bytes). */
int jwt_keyring_add_hs256(jwt_keyring *kr, const char *kid, const unsigned char *secret,
                          size_t len, char *why, size_t whylen);
int jwt_keyring_add_rs256_pem(jwt_keyring *kr, const char *kid, const char *pem, size_t len,
                              char *why, size_t whylen);

/* Load a key file: one key per line, "<kid> HS256 <secret>" (the secret as
 * written, or "base64url:<secret>") or "<kid> RS256 <path to a PEM public
 * key>" (relative paths from the key file's folder); '#' comments and
 * blank lines are ignored; kid "-" means no kid. Returns the number of keys
 * added, or -1 with a reason (file and line) in why. */
int jwt_keyring_load(jwt_keyring *kr, const char *path, char *why, size_t whylen);

/* Keys in the ring. */
size_t jwt_keyring_size(const jwt_keyring *kr);

/* Verify tok[0..len) at time now (seconds) allowing skew seconds either
 * way, requiring what want says (borrowed; NULL: nothing more). JWT_OK
 * fills *out (free with jwt_claims_free); any other status leaves *out
 * NULL. Never reads past len. */
jwt_status jwt_verify(const jwt_keyring *kr, const char *tok, size_t len, int64_t now,
                      int skew, const jwt_expect *want, jwt_claims **out);

/* Extract the claims from a payload's JSON text (no signature, no clock):
 * JWT_OK and *out, or JWT_MALFORMED / JWT_BAD_CLAIMS. */
jwt_status jwt_parse_claims(const char *json, size_t len, jwt_claims **out);

/* NULL is accepted. */
void jwt_claims_free(jwt_claims *c);

#endif
