/* fuzz_jwt.c — libFuzzer target for token verification (server/jwt.h).
 *
 * Each input is used three ways:
 *   1. as a payload's JSON text, for jwt_parse_claims;
 *   2. as a compact token, for jwt_verify against a keyring holding one
 *      HS256 secret (kid "k1"); random bytes rarely get past the signature,
 *      so this covers the segment splitting, base64url and header checks;
 *   3. when it contains a newline, as "<header JSON>\n<payload JSON>": the
 *      target encodes both, signs them with the ring's secret and verifies
 *      the token, so the fuzzer mutates JSON directly and reaches the alg
 *      and kid rules, the clock checks and claim extraction behind a valid
 *      signature; the token is verified again requiring an issuer and an
 *      audience (jwt_expect).
 *
 * Checks: every status is one jwt.h names; JWT_OK comes with claims and any
 * other status without; the claims are well formed (sub of 1..128 bytes, a
 * name, a known role, readable room patterns); a token signed with the
 * ring's secret is never JWT_BAD_SIGNATURE; one that verifies lies within
 * its exp and nbf (with the skew) and carries exactly the claims
 * jwt_parse_claims finds in its payload; requiring an issuer and audience
 * only ever turns JWT_OK into JWT_BAD_ISSUER or JWT_BAD_AUDIENCE, and
 * changes no other verdict and no claim. Tokens are passed in heap blocks of
 * exactly their length, so ASan sees a read past len.
 */
#include "jwt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_jwt: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                           \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* 32 bytes (the array holds the literal's NUL too; it is not part of the key). */
static const unsigned char fuzz_secret[] = "fuzz-secret-for-lectern-hs256-k1";
#define FUZZ_SECRET_LEN 32
#define FUZZ_NOW 1700000000   /* 2023-11-14 */
#define FUZZ_SKEW 60

static jwt_keyring *fuzz_ring;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char why[256] = "";
    fuzz_ring = jwt_keyring_create();
    CHECK(fuzz_ring);
    if (jwt_keyring_add_hs256(fuzz_ring, "k1", fuzz_secret, FUZZ_SECRET_LEN, why,
                              sizeof why) < 0)
        fprintf(stderr, "fuzz_jwt: jwt_keyring_add_hs256: %s\n", why);
    CHECK(jwt_keyring_size(fuzz_ring) == 1);
    return 0;
}

static void fuzz_check_status(jwt_status st)
{
    CHECK(st >= JWT_OK && st <= JWT_BAD_AUDIENCE);
    const char *name = jwt_status_name(st);
    CHECK(name && name[0]);
}

static void fuzz_check_claims(const jwt_claims *c)
{
    CHECK(c->sub && c->name);
    size_t sl = strlen(c->sub);
    CHECK(sl >= 1 && sl <= 128);
    (void)strlen(c->name);
    CHECK(c->role == JWT_ROLE_STUDENT || c->role == JWT_ROLE_INSTRUCTOR ||
          c->role == JWT_ROLE_ADMIN);
    CHECK(c->nrooms == 0 || c->rooms);
    for (size_t i = 0; i < c->nrooms; i++) {
        CHECK(c->rooms[i]);
        (void)strlen(c->rooms[i]);
    }
}

static bool fuzz_claims_same(const jwt_claims *a, const jwt_claims *b)
{
    if (strcmp(a->sub, b->sub) || strcmp(a->name, b->name) || a->role != b->role ||
        a->exp != b->exp || a->nbf != b->nbf || a->nrooms != b->nrooms)
        return false;
    for (size_t i = 0; i < a->nrooms; i++)
        if (strcmp(a->rooms[i], b->rooms[i]))
            return false;
    return true;
}

/* p[0..len) in a heap block of exactly len bytes, so that ASan catches a
 * read past the end. */
static char *fuzz_exact_copy(const char *p, size_t len)
{
    char *copy = malloc(len ? len : 1);
    CHECK(copy);
    if (len)
        memcpy(copy, p, len);
    return copy;
}

/* jwt_parse_claims of json[0..len), checked; the claims or NULL. */
static jwt_claims *fuzz_parse_claims(const char *json, size_t len, jwt_status *st)
{
    char *copy = fuzz_exact_copy(json, len);
    jwt_claims *c = NULL;
    *st = jwt_parse_claims(copy, len, &c);
    free(copy);
    fuzz_check_status(*st);
    CHECK(*st == JWT_OK || *st == JWT_MALFORMED || *st == JWT_BAD_CLAIMS);
    CHECK((*st == JWT_OK) == (c != NULL));
    if (c)
        fuzz_check_claims(c);
    return c;
}

/* jwt_verify of tok[0..len) at FUZZ_NOW requiring want (may be NULL),
 * checked; the claims or NULL. */
static jwt_claims *fuzz_verify(const char *tok, size_t len, const jwt_expect *want,
                               jwt_status *st)
{
    char *copy = fuzz_exact_copy(tok, len);
    static jwt_claims sentinel;
    jwt_claims *c = &sentinel;   /* jwt_verify must overwrite it */
    *st = jwt_verify(fuzz_ring, copy, len, FUZZ_NOW, FUZZ_SKEW, want, &c);
    free(copy);
    fuzz_check_status(*st);
    if (*st != JWT_OK) {
        CHECK(c == NULL);
        return NULL;
    }
    CHECK(c);
    fuzz_check_claims(c);
    CHECK(c != &sentinel);
    /* Not expired, not too early (written so the check cannot overflow). */
    CHECK(c->exp > FUZZ_NOW - FUZZ_SKEW);
    CHECK(c->nbf <= FUZZ_NOW + FUZZ_SKEW);
    return c;
}

/* Append base64url (no padding) of s[0..n) at out; returns the new end. */
static char *fuzz_b64url(char *out, const unsigned char *s, size_t n)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *out++ = abc[v >> 18 & 63];
        *out++ = abc[v >> 12 & 63];
        *out++ = abc[v >> 6 & 63];
        *out++ = abc[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *out++ = abc[v >> 18 & 63];
        *out++ = abc[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        *out++ = abc[v >> 18 & 63];
        *out++ = abc[v >> 12 & 63];
        *out++ = abc[v >> 6 & 63];
    }
    return out;
}

/* Mode 3: header and payload JSON, signed with the ring's secret. */
static void fuzz_signed(const char *hdr, size_t hlen, const char *pay, size_t plen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t cap = (hlen + plen + sizeof mac) / 3 * 4 + 16;
    char *tok = malloc(cap), *e = tok;
    CHECK(tok);
    e = fuzz_b64url(e, (const unsigned char *)hdr, hlen);
    *e++ = '.';
    e = fuzz_b64url(e, (const unsigned char *)pay, plen);
    CHECK(HMAC(EVP_sha256(), fuzz_secret, FUZZ_SECRET_LEN, (const unsigned char *)tok,
               (size_t)(e - tok), mac, &maclen));
    *e++ = '.';
    e = fuzz_b64url(e, mac, maclen);
    CHECK((size_t)(e - tok) <= cap);

    jwt_status st, pst, wst;
    jwt_claims *c = fuzz_verify(tok, (size_t)(e - tok), NULL, &st);
    CHECK(st != JWT_BAD_SIGNATURE);
    static const jwt_expect want = { "fuzz-issuer", "lectern", 0 };
    jwt_claims *wc = fuzz_verify(tok, (size_t)(e - tok), &want, &wst);
    if (st == JWT_OK)
        CHECK(wst == JWT_OK || wst == JWT_BAD_ISSUER || wst == JWT_BAD_AUDIENCE);
    else
        CHECK(wst == st || wst == JWT_BAD_ISSUER || wst == JWT_BAD_AUDIENCE);
    if (wc)
        CHECK(c && fuzz_claims_same(c, wc));
    jwt_claims_free(wc);
    jwt_claims *pc = fuzz_parse_claims(pay, plen, &pst);
    if (c) {
        CHECK(pc && fuzz_claims_same(c, pc));
    }
    jwt_claims_free(pc);
    jwt_claims_free(c);
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    jwt_status st;

    jwt_claims_free(fuzz_parse_claims(in, size, &st));
    jwt_claims_free(fuzz_verify(in, size, NULL, &st));

    const char *nl = memchr(in, '\n', size);
    if (nl)
        fuzz_signed(in, (size_t)(nl - in), nl + 1, size - (size_t)(nl - in) - 1);
    return 0;
}
