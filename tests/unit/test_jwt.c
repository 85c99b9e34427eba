/* test_jwt.c — server/jwt.c, server/auth.c and server/peers.c.
 *
 * Tokens are minted here with OpenSSL (HMAC-SHA256, RSA PKCS#1 v1.5) and
 * checked for every way verification must refuse: a forged or truncated
 * signature, alg "none", an RS256 public key offered as an HS256 secret,
 * an unknown kid, expiry and nbf around the skew, malformed segments and
 * claims of the wrong type, and a missing or wrong issuer or audience
 * when the verifier requires them. Then the checks of a fresh token
 * (tokens_refresh) and the expiry deadline (tokens_deadline_ms). Then the room rules of auth_allows and the
 * client address of peers_client_addr behind trusted proxies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "clock.h"
#include "jwt.h"
#include "peers.h"
#include "tokens.h"

#define NOW 1800000000LL
static const char SECRET[] = "0123456789abcdef0123456789abcdef";

static void b64url(const unsigned char *in, size_t len, char *out)
{
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
}

/* header.payload.signature, signed with SECRET (HS256) or pkey (RS256). */
static char *mint(const char *header, const char *payload, EVP_PKEY *pkey)
{
    static char tok[8192];
    char h[2048], p[4096], s[1024];
    b64url((const unsigned char *)header, strlen(header), h);
    b64url((const unsigned char *)payload, strlen(payload), p);
    snprintf(tok, sizeof tok, "%s.%s", h, p);
    unsigned char sig[512];
    size_t sl = sizeof sig;
    if (pkey) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey), 1);
        assert_int_equal(EVP_DigestSign(ctx, sig, &sl, (unsigned char *)tok, strlen(tok)), 1);
        EVP_MD_CTX_free(ctx);
    } else {
        unsigned int ml = 0;
        HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)tok, strlen(tok), sig,
             &ml);
        sl = ml;
    }
    b64url(sig, sl, s);
    strcat(tok, ".");
    strcat(tok, s);
    return tok;
}

static jwt_keyring *hs_ring(void)
{
    char why[200];
    jwt_keyring *kr = jwt_keyring_create();
    assert_int_equal(jwt_keyring_add_hs256(kr, "k1", (const unsigned char *)SECRET,
                                           strlen(SECRET), why, sizeof why), 0);
    return kr;
}

static jwt_status verify(jwt_keyring *kr, const char *tok, jwt_claims **c)
{
    return jwt_verify(kr, tok, strlen(tok), NOW, 60, NULL, c);
}

/* verify, requiring an issuer and an audience (NULL: that one not). */
static jwt_status verify_for(jwt_keyring *kr, const char *tok, const char *iss, const char *aud)
{
    jwt_expect want = { iss, aud, 0 };
    jwt_claims *c = (jwt_claims *)1;
    jwt_status st = jwt_verify(kr, tok, strlen(tok), NOW, 60, &want, &c);
    assert_true((st == JWT_OK) == (c != NULL));
    jwt_claims_free(c);
    return st;
}

#define HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}"
#define GOOD "{\"sub\":\"alice\",\"name\":\"Alice\",\"role\":\"instructor\"," \
             "\"rooms\":[\"physics\",\"cs-*\"],\"exp\":1800000100}"

static void test_hs256_good(void **state)
{
    (void)state;
    jwt_keyring *kr = hs_ring();
    jwt_claims *c = NULL;
    assert_int_equal(verify(kr, mint(HDR, GOOD, NULL), &c), JWT_OK);
    assert_string_equal(c->sub, "alice");
    assert_string_equal(c->name, "Alice");
    assert_int_equal(c->role, JWT_ROLE_INSTRUCTOR);
    assert_int_equal(c->nrooms, 2);
    assert_string_equal(c->rooms[1], "cs-*");
    jwt_claims_free(c);
    /* No kid: the only key of the ring; no name: the sub; no role: student. */
    assert_int_equal(verify(kr, mint("{\"alg\":\"HS256\"}",
                                     "{\"sub\":\"bob\",\"exp\":1800000100}", NULL), &c), JWT_OK);
    assert_string_equal(c->name, "bob");
    assert_int_equal(c->role, JWT_ROLE_STUDENT);
    assert_int_equal(c->nrooms, 0);
    jwt_claims_free(c);
    jwt_keyring_destroy(kr);
}

static void test_forgeries(void **state)
{
    (void)state;
    jwt_keyring *kr = hs_ring();
    jwt_claims *c = (jwt_claims *)1;
    char *t = strdup(mint(HDR, GOOD, NULL));
    size_t n = strlen(t);
    t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(kr, t, &c), JWT_BAD_SIGNATURE);
    assert_null(c);
    t[n - 5] = '\0';
    assert_int_not_equal(verify(kr, t, &c), JWT_OK);
    assert_null(c);
    free(t);

    /* A payload swapped under a valid header and signature. */
    t = strdup(mint(HDR, GOOD, NULL));
    char *other = mint(HDR, "{\"sub\":\"mallory\",\"role\":\"admin\",\"exp\":1800000100}", NULL);
    char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');
    char *o1 = strchr(other, '.'), *o2 = strchr(o1 + 1, '.');
    char spliced[8192];
    snprintf(spliced, sizeof spliced, "%.*s%.*s%s", (int)(d1 - t), t, (int)(o2 - o1), o1, d2);
    assert_int_equal(verify(kr, spliced, &c), JWT_BAD_SIGNATURE);
    free(t);

    /* alg none, with or without a signature; unknown algs. */
    assert_int_equal(verify(kr, mint("{\"alg\":\"none\"}", GOOD, NULL), &c), JWT_BAD_ALG);
    char none[4096];
    snprintf(none, sizeof none, "%s", mint("{\"alg\":\"none\"}", GOOD, NULL));
    *strrchr(none, '.') = '\0';
    strcat(none, ".");
    assert_int_equal(verify(kr, none, &c), JWT_BAD_ALG);
    assert_int_equal(verify(kr, mint("{\"alg\":\"HS512\"}", GOOD, NULL), &c), JWT_BAD_ALG);
    assert_int_equal(verify(kr, mint("{\"typ\":\"JWT\"}", GOOD, NULL), &c), JWT_BAD_ALG);
    /* A kid the ring does not hold; an alg the key was not made for. */
    assert_int_equal(verify(kr, mint("{\"alg\":\"HS256\",\"kid\":\"k9\"}", GOOD, NULL), &c),
                     JWT_UNKNOWN_KEY);
    assert_int_equal(verify(kr, mint("{\"alg\":\"RS256\",\"kid\":\"k1\"}", GOOD, NULL), &c),
                     JWT_UNKNOWN_KEY);
    jwt_keyring_destroy(kr);
}

static void test_contacts_claim(void **state)
{
    (void)state;
    jwt_keyring *kr = hs_ring();
    jwt_claims *c = NULL;
    assert_int_equal(verify(kr, mint(HDR, "{\"sub\":\"a\",\"exp\":1800000100,"
                                          "\"rooms\":[\"r\"],\"contacts\":[\"b\",\"c d\"]}",
                                     NULL), &c), JWT_OK);
    assert_int_equal(c->ncontacts, 2);
    assert_string_equal(c->contacts[1], "c d");
    assert_string_equal(c->rooms[0], "r");
    jwt_claims_free(c);
    assert_int_equal(verify(kr, mint(HDR, GOOD, NULL), &c), JWT_OK);
    assert_int_equal(c->ncontacts, 0);
    jwt_claims_free(c);
    /* Not an array of valid user ids: the token is refused. */
    static const char *const bad[] = {
        "\"b\"", "[1]", "[\"a,b\"]", "[\"\"]", "[\"a\\nb\"]", "{}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char p[256];
        snprintf(p, sizeof p, "{\"sub\":\"a\",\"exp\":1800000100,\"contacts\":%s}", bad[i]);
        assert_int_equal(verify(kr, mint(HDR, p, NULL), &c), JWT_BAD_CLAIMS);
        assert_null(c);
    }
    /* More than the server's contacts.max: refused, not cut. */
    const char *three = mint(HDR, "{\"sub\":\"a\",\"exp\":1800000100,"
                                  "\"contacts\":[\"x\",\"y\",\"z\"]}", NULL);
    jwt_expect want = { .max_contacts = 2 };
    assert_int_equal(jwt_verify(kr, three, strlen(three), NOW, 60, &want, &c), JWT_BAD_CLAIMS);
    want.max_contacts = 3;
    assert_int_equal(jwt_verify(kr, three, strlen(three), NOW, 60, &want, &c), JWT_OK);
    jwt_claims_free(c);
    jwt_keyring_destroy(kr);
}

static void test_time(void **state)
{
    (void)state;
    jwt_keyring *kr = hs_ring();
    jwt_claims *c = NULL;
    char p[256];
    snprintf(p, sizeof p, "{\"sub\":\"a\",\"exp\":%lld}", NOW - 61);
    assert_int_equal(verify(kr, mint(HDR, p, NULL), &c), JWT_EXPIRED);
    snprintf(p, sizeof p, "{\"sub\":\"a\",\"exp\":%lld}", NOW - 59);     /* within skew */
    assert_int_equal(verify(kr, mint(HDR, p, NULL), &c), JWT_OK);
    jwt_claims_free(c);
    snprintf(p, sizeof p, "{\"sub\":\"a\",\"exp\":%lld,\"nbf\":%lld}", NOW + 999, NOW + 61);
    assert_int_equal(verify(kr, mint(HDR, p, NULL), &c), JWT_NOT_YET);
    snprintf(p, sizeof p, "{\"sub\":\"a\",\"exp\":%lld,\"nbf\":%lld}", NOW + 999, NOW + 59);
    assert_int_equal(verify(kr, mint(HDR, p, NULL), &c), JWT_OK);
    jwt_claims_free(c);
    jwt_keyring_destroy(kr);
}

static void test_malformed(void **state)
{
    (void)state;
    jwt_keyring *kr = hs_ring();
    jwt_claims *c = NULL;
    static const char *const bad[] = {
        "", "abc", "a.b", "a.b.c.d", "....", "!!.e30.sig", "e30.e30.", "eyJhbGciOiJIUzI1NiJ9..",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_not_equal(verify(kr, bad[i], &c), JWT_OK);
    /* Claims of the wrong shape, each correctly signed. */
    static const char *const claims[] = {
        "{\"exp\":1800000100}",                                   /* no sub */
        "{\"sub\":\"\",\"exp\":1800000100}",                      /* empty sub */
        "{\"sub\":7,\"exp\":1800000100}",
        "{\"sub\":\"a\"}",                                         /* no exp */
        "{\"sub\":\"a\",\"exp\":\"soon\"}",
        "{\"sub\":\"a\",\"exp\":1800000100,\"role\":\"root\"}",
        "{\"sub\":\"a\",\"exp\":1800000100,\"rooms\":\"physics\"}",
        "{\"sub\":\"a\",\"exp\":1800000100,\"rooms\":[1]}",
        "{\"sub\":\"a\",\"exp\":1800000100,\"rooms\":[\"\"]}",
    };
    for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++)
        assert_int_equal(verify(kr, mint(HDR, claims[i], NULL), &c), JWT_BAD_CLAIMS);
    /* Not JSON objects; duplicate keys. */
    assert_int_equal(verify(kr, mint(HDR, "[1]", NULL), &c), JWT_MALFORMED);
    assert_int_equal(verify(kr, mint(HDR, "{\"sub\":\"a\",\"sub\":\"b\",\"exp\":1800000100}",
                                     NULL), &c), JWT_MALFORMED);
    assert_int_equal(verify(kr, mint("{\"alg\":\"HS256\",\"alg\":\"none\"}", GOOD, NULL), &c),
                     JWT_MALFORMED);
    assert_null(c);
    jwt_keyring_destroy(kr);
}

static void test_issuer_audience(void **state)
{
    (void)state;
    jwt_keyring *kr = hs_ring();
    const char *iss = "https://idp.example.edu";
#define T(claims) mint(HDR, "{\"sub\":\"a\",\"exp\":1800000100" claims "}", NULL)
    /* Nothing required: iss and aud are ignored, whatever they hold. */
    assert_int_equal(verify_for(kr, T(""), NULL, NULL), JWT_OK);
    assert_int_equal(verify_for(kr, T(",\"iss\":7,\"aud\":{}"), "", ""), JWT_OK);
    /* Issuer: exactly the string. */
    assert_int_equal(verify_for(kr, T(",\"iss\":\"https://idp.example.edu\""), iss, NULL),
                     JWT_OK);
    assert_int_equal(verify_for(kr, T(""), iss, NULL), JWT_BAD_ISSUER);
    assert_int_equal(verify_for(kr, T(",\"iss\":\"https://evil.example\""), iss, NULL),
                     JWT_BAD_ISSUER);
    assert_int_equal(verify_for(kr, T(",\"iss\":\"https://idp.example.edu/\""), iss, NULL),
                     JWT_BAD_ISSUER);
    assert_int_equal(verify_for(kr, T(",\"iss\":\"https://idp.example\""), iss, NULL),
                     JWT_BAD_ISSUER);
    assert_int_equal(verify_for(kr, T(",\"iss\":[\"https://idp.example.edu\"]"), iss, NULL),
                     JWT_BAD_ISSUER);
    /* (jansson refuses a NUL in a string outright: no prefix trick.) */
    assert_int_not_equal(verify_for(kr, T(",\"iss\":\"https://idp.example.edu\\u0000x\""),
                                    iss, NULL), JWT_OK);
    /* Audience: a string, or an array holding it. */
    assert_int_equal(verify_for(kr, T(",\"aud\":\"lectern\""), NULL, "lectern"), JWT_OK);
    assert_int_equal(verify_for(kr, T(",\"aud\":[\"grades\",\"lectern\"]"), NULL, "lectern"),
                     JWT_OK);
    assert_int_equal(verify_for(kr, T(""), NULL, "lectern"), JWT_BAD_AUDIENCE);
    assert_int_equal(verify_for(kr, T(",\"aud\":\"grades\""), NULL, "lectern"),
                     JWT_BAD_AUDIENCE);
    assert_int_equal(verify_for(kr, T(",\"aud\":[\"grades\",\"lectern-x\"]"), NULL, "lectern"),
                     JWT_BAD_AUDIENCE);
    assert_int_equal(verify_for(kr, T(",\"aud\":[]"), NULL, "lectern"), JWT_BAD_AUDIENCE);
    assert_int_equal(verify_for(kr, T(",\"aud\":[[\"lectern\"]]"), NULL, "lectern"),
                     JWT_BAD_AUDIENCE);
    assert_int_equal(verify_for(kr, T(",\"aud\":{\"lectern\":true}"), NULL, "lectern"),
                     JWT_BAD_AUDIENCE);
    assert_int_equal(verify_for(kr, T(",\"aud\":\"LECTERN\""), NULL, "lectern"),
                     JWT_BAD_AUDIENCE);
    /* Both, and the order of the verdicts: a forged token is a bad
     * signature whatever it claims; the issuer and audience come before
     * the clock. */
    assert_int_equal(verify_for(kr, T(",\"iss\":\"https://idp.example.edu\",\"aud\":[\"lectern\"]"),
                                iss, "lectern"), JWT_OK);
    assert_int_equal(verify_for(kr, T(",\"iss\":\"https://idp.example.edu\",\"aud\":\"grades\""),
                                iss, "lectern"), JWT_BAD_AUDIENCE);
    char *t = strdup(T(",\"iss\":\"https://idp.example.edu\",\"aud\":\"lectern\""));
    size_t tn = strlen(t);
    t[tn - 2] = t[tn - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(verify_for(kr, t, iss, "lectern"), JWT_BAD_SIGNATURE);
    free(t);
    assert_int_equal(verify_for(kr, mint(HDR, "{\"sub\":\"a\",\"exp\":1700000000,"
                                         "\"aud\":\"grades\"}", NULL), NULL, "lectern"),
                     JWT_BAD_AUDIENCE);
    assert_int_equal(verify_for(kr, mint(HDR, "{\"sub\":\"a\",\"exp\":1700000000,"
                                         "\"aud\":\"lectern\"}", NULL), NULL, "lectern"),
                     JWT_EXPIRED);
#undef T
    assert_string_equal(jwt_status_name(JWT_BAD_ISSUER), "bad_issuer");
    assert_string_equal(jwt_status_name(JWT_BAD_AUDIENCE), "bad_audience");
    jwt_keyring_destroy(kr);
}

static void test_rs256_and_key_file(void **state)
{
    (void)state;
    EVP_PKEY *pk = EVP_RSA_gen(2048);
    assert_non_null(pk);
    char dir[] = "/tmp/lectern-jwt-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], keys[256];
    snprintf(path, sizeof path, "%s/rsa.pub", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    PEM_write_PUBKEY(f, pk);
    fclose(f);
    snprintf(keys, sizeof keys, "%s/keys", dir);
    f = fopen(keys, "w");
    fprintf(f, "# rotation: old and new\n\nk1 HS256 %s\n  rsa1  RS256  rsa.pub  \n"
               "- HS256 base64url:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\n", SECRET);
    fclose(f);

    char why[256];
    jwt_keyring *kr = jwt_keyring_create();
    assert_int_equal(jwt_keyring_load(kr, keys, why, sizeof why), 3);
    jwt_claims *c = NULL;
    assert_int_equal(verify(kr, mint("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", GOOD, pk), &c),
                     JWT_OK);
    jwt_claims_free(c);
    assert_int_equal(verify(kr, mint(HDR, GOOD, NULL), &c), JWT_OK);
    jwt_claims_free(c);
    /* No kid: the key registered without one (the base64url secret, equal
     * to SECRET here). */
    assert_int_equal(verify(kr, mint("{\"alg\":\"HS256\"}", GOOD, NULL), &c), JWT_OK);
    jwt_claims_free(c);
    /* The RSA public key as an HS256 secret: refused before any MAC. */
    assert_int_equal(verify(kr, mint("{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", GOOD, NULL), &c),
                     JWT_UNKNOWN_KEY);
    /* An RS256 token with a tampered payload. */
    char *t = strdup(mint("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", GOOD, pk));
    strchr(t, '.')[3] ^= 1;
    assert_int_not_equal(verify(kr, t, &c), JWT_OK);
    free(t);
    jwt_keyring_destroy(kr);

    /* Errors name the line; short secrets and duplicate kids are refused. */
    f = fopen(keys, "w");
    fprintf(f, "k1 HS256 %s\n# c\nk2 HS256 short\n", SECRET);
    fclose(f);
    kr = jwt_keyring_create();
    assert_int_equal(jwt_keyring_load(kr, keys, why, sizeof why), -1);
    assert_non_null(strstr(why, ":3:"));
    assert_non_null(strstr(why, "shorter"));
    jwt_keyring_destroy(kr);
    f = fopen(keys, "w");
    fprintf(f, "k1 HS256 %s\nk1 HS256 %s\n", SECRET, SECRET);
    fclose(f);
    kr = jwt_keyring_create();
    assert_int_equal(jwt_keyring_load(kr, keys, why, sizeof why), -1);
    assert_non_null(strstr(why, "duplicate"));
    jwt_keyring_destroy(kr);

    unlink(keys);
    unlink(path);
    rmdir(dir);
    EVP_PKEY_free(pk);
}

/* A config with auth.mode=jwt and one HS256 key (SECRET) in a new file
 * named from the template keys (the caller unlinks it). */
static server_config jwt_config(char *keys, int skew_s)
{
    int fd = mkstemp(keys);
    dprintf(fd, "k1 HS256 %s\n", SECRET);
    close(fd);
    server_config cfg = { 0 };
    cfg.auth_mode = (char *)"jwt";
    cfg.auth_keys = keys;
    cfg.auth_skew_s = skew_s;
    return cfg;
}

static void test_auth_rules(void **state)
{
    (void)state;
    assert_true(auth_room_matches("physics", 7, "physics", 7));
    assert_false(auth_room_matches("physics", 7, "physics2", 8));
    assert_true(auth_room_matches("cs-*", 4, "cs-101", 6));
    assert_true(auth_room_matches("cs-*", 4, "cs-", 3));
    assert_false(auth_room_matches("cs-*", 4, "cs", 2));
    assert_true(auth_room_matches("*", 1, "anything", 8));

    const char *tp;
    size_t tl;
    assert_true(auth_bearer_token("Bearer abc.def", 14, &tp, &tl));
    assert_int_equal(tl, 7);
    assert_true(auth_bearer_token("  bearer   x  ", 14, &tp, &tl));
    assert_int_equal(tl, 1);
    assert_false(auth_bearer_token("Basic eDp5", 10, &tp, &tl));
    assert_false(auth_bearer_token("Bearer ", 7, &tp, &tl));

    char keys[] = "/tmp/lectern-keys-XXXXXX";
    server_config cfg = jwt_config(keys, 60);
    cfg.auth_student_send = true;
    cfg.auth_instructor_rooms = (char *)"announce*, staff";
    char why[256];
    auth *a = auth_create(&cfg, why, sizeof why);
    assert_non_null(a);
    assert_true(auth_required(a));

    const char *rooms[] = { "physics", "announce-all", "staff", "cs-*" };
    jwt_claims student = { .sub = "s", .name = "s", .role = JWT_ROLE_STUDENT, .nrooms = 4,
                           .rooms = rooms };
    jwt_claims teacher = student;
    teacher.role = JWT_ROLE_INSTRUCTOR;
    jwt_claims admin = { .sub = "a", .name = "a", .role = JWT_ROLE_ADMIN };
    assert_true(auth_allows(a, &student, "physics", 7, AUTH_SEND));
    assert_true(auth_allows(a, &student, "cs-9", 4, AUTH_READ));
    assert_false(auth_allows(a, &student, "chemistry", 9, AUTH_READ));
    assert_true(auth_allows(a, &student, "announce-all", 12, AUTH_READ));
    assert_false(auth_allows(a, &student, "announce-all", 12, AUTH_SEND));
    assert_false(auth_allows(a, &student, "staff", 5, AUTH_SEND));
    assert_true(auth_allows(a, &teacher, "announce-all", 12, AUTH_SEND));
    assert_false(auth_allows(a, &teacher, "chemistry", 9, AUTH_READ));
    assert_true(auth_allows(a, &admin, "chemistry", 9, AUTH_SEND));
    assert_false(auth_allows(a, NULL, "physics", 7, AUTH_READ));
    auth_destroy(a);

    cfg.auth_student_send = false;
    a = auth_create(&cfg, why, sizeof why);
    assert_false(auth_allows(a, &student, "physics", 7, AUTH_SEND));
    assert_true(auth_allows(a, &student, "physics", 7, AUTH_READ));
    auth_destroy(a);

    /* auth.issuer and auth.audience reach every login; auth_valid_until
     * is exp plus the skew. */
    cfg.auth_issuer = (char *)"https://idp.example.edu";
    cfg.auth_audience = (char *)"lectern";
    a = auth_create(&cfg, why, sizeof why);
    assert_non_null(a);
    char p[256];
    long long exp = (long long)time(NULL) + 600;
    jwt_claims *c = NULL;
    snprintf(p, sizeof p, "{\"sub\":\"s\",\"exp\":%lld,\"iss\":\"https://idp.example.edu\","
             "\"aud\":[\"lectern\"]}", exp);
    const char *tok = mint(HDR, p, NULL);
    assert_int_equal(auth_login(a, tok, strlen(tok), &c), JWT_OK);
    assert_int_equal(auth_valid_until(a, c), exp + 60);
    jwt_claims_free(c);
    snprintf(p, sizeof p, "{\"sub\":\"s\",\"exp\":%lld,\"aud\":\"lectern\"}", exp);
    tok = mint(HDR, p, NULL);
    assert_int_equal(auth_login(a, tok, strlen(tok), &c), JWT_BAD_ISSUER);
    snprintf(p, sizeof p, "{\"sub\":\"s\",\"exp\":%lld,\"iss\":\"https://idp.example.edu\","
             "\"aud\":\"grades\"}", exp);
    tok = mint(HDR, p, NULL);
    assert_int_equal(auth_login(a, tok, strlen(tok), &c), JWT_BAD_AUDIENCE);
    assert_null(c);
    auth_destroy(a);
    cfg.auth_issuer = cfg.auth_audience = NULL;
    unlink(keys);

    cfg.auth_keys = (char *)"/nonexistent/keys";
    assert_null(auth_create(&cfg, why, sizeof why));
    cfg.auth_mode = (char *)"none";
    a = auth_create(&cfg, why, sizeof why);
    assert_false(auth_required(a));
    assert_true(auth_allows(a, NULL, "anything", 8, AUTH_SEND));
    auth_destroy(a);
}

/* A subscription to /topic/<room> or /presence/<room> as session.c lays it
 * out: the id, then the room's name. */
static subscription *fake_sub(const char *id, const char *rname, int kind, subscription *next)
{
    size_t il = strlen(id), rl = strlen(rname);
    subscription *sub = calloc(1, subscription_size(il, il, rl));
    memcpy(sub->id, id, il);
    memcpy(sub->id + il, rname, rl);
    sub->id_len = (uint32_t)il;
    sub->wire_len = (uint32_t)il;
    sub->room_len = (uint8_t)rl;
    sub->kind = (uint8_t)kind;
    sub->next = next;
    return sub;
}

static void test_tokens(void **state)
{
    (void)state;
    char keys[] = "/tmp/lectern-keys-XXXXXX";
    server_config cfg = jwt_config(keys, 30);
    cfg.auth_audience = (char *)"lectern";
    char why[256];
    auth *a = auth_create(&cfg, why, sizeof why);
    assert_non_null(a);
    long long now = (long long)time(NULL);
    char p[256];
    jwt_claims *cur = NULL;
    snprintf(p, sizeof p, "{\"sub\":\"stu\",\"exp\":%lld,\"aud\":\"lectern\","
             "\"rooms\":[\"physics\",\"chem\"]}", now + 100);
    const char *tok = mint(HDR, p, NULL);
    assert_int_equal(auth_login(a, tok, strlen(tok), &cur), JWT_OK);

    /* The deadline: exp + skew in loop time; now when past; no overflow
     * for an exp at the end of time. */
    uint64_t d = tokens_deadline_ms(a, cur, 1000000);
    int64_t want = 1000000 + (now + 100 + 30) * 1000 - (int64_t)clock_wall_ms();
    assert_true((int64_t)d > want - 2000 && (int64_t)d <= want + 10);
    jwt_claims old = *cur;
    old.exp = now - 31;
    assert_int_equal(tokens_deadline_ms(a, &old, 1000000), 1000000);
    old.exp = INT64_C(9200000000000000000);
    assert_int_equal(tokens_deadline_ms(a, &old, 1000000), UINT64_MAX);

    stomp_str dest = { "/token", 6 };
    assert_true(tokens_is_refresh(&dest));
    dest.len = 5;
    assert_false(tokens_is_refresh(&dest));

    subscription *subs = fake_sub("1", "physics", SUB_TOPIC, fake_sub("p", "chem", SUB_PRESENCE, NULL));
    stomp_header h[2] = { { { "destination", 11 }, { "/token", 6 } }, { { "passcode", 8 }, { NULL, 0 } } };
    stomp_frame f = { STOMP_CMD_SEND, h, 2, { "", 0 } };
    tokens_result r;
#define REFRESH(claims, exp) (snprintf(p, sizeof p, claims, exp), tok = mint(HDR, p, NULL), \
                         h[1].value.p = tok, h[1].value.len = strlen(tok), \
                         tokens_refresh(a, cur, &f, subs, &r))
    /* Good: the same sub, every room still there (and one more). */
    assert_int_equal(REFRESH("{\"sub\":\"stu\",\"exp\":%lld,\"aud\":\"lectern\",\"role\":\"instructor\","
                             "\"rooms\":[\"chem\",\"phys*\",\"bio\"]}", now + 999), TOKENS_OK);
    assert_int_equal(r.claims->exp, now + 999);
    assert_int_equal(r.claims->role, JWT_ROLE_INSTRUCTOR);
    assert_int_equal(r.claims->nrooms, 3);
    jwt_claims_free(r.claims);
    /* Another user; another audience; expired (beyond the skew). */
    assert_int_equal(REFRESH("{\"sub\":\"eve\",\"exp\":%lld,\"aud\":\"lectern\",\"rooms\":[\"*\"]}",
                             now + 999), TOKENS_REFUSED);
    assert_string_equal(r.why, "refresh_other_sub");
    assert_null(r.claims);
    assert_int_equal(REFRESH("{\"sub\":\"stu\",\"exp\":%lld,\"aud\":\"grades\",\"rooms\":[\"*\"]}",
                             now + 999), TOKENS_REFUSED);
    assert_string_equal(r.why, "bad_audience");
    assert_int_equal(REFRESH("{\"sub\":\"stu\",\"exp\":%lld,\"aud\":\"lectern\",\"rooms\":[\"*\"]}",
                             now - 31), TOKENS_REFUSED);
    assert_string_equal(r.why, "expired");
    /* A subscribed room no longer listed: topic, then presence. */
    assert_int_equal(REFRESH("{\"sub\":\"stu\",\"exp\":%lld,\"aud\":\"lectern\",\"rooms\":[\"chem\"]}",
                             now + 999), TOKENS_ROOM_LOST);
    assert_string_equal(r.lost, "/topic/physics");
    assert_null(r.claims);
    assert_int_equal(REFRESH("{\"sub\":\"stu\",\"exp\":%lld,\"aud\":\"lectern\",\"rooms\":[\"physics\"]}",
                             now + 999), TOKENS_ROOM_LOST);
    assert_string_equal(r.lost, "/presence/chem");
    /* An admin needs no rooms. */
    assert_int_equal(REFRESH("{\"sub\":\"stu\",\"exp\":%lld,\"aud\":\"lectern\",\"role\":\"admin\"}",
                             now + 999), TOKENS_OK);
    jwt_claims_free(r.claims);
#undef REFRESH
    /* No passcode at all. */
    f.nheaders = 1;
    assert_int_equal(tokens_refresh(a, cur, &f, subs, &r), TOKENS_REFUSED);
    assert_string_equal(r.why, "refresh_no_token");

    free(subs->next);
    free(subs);
    jwt_claims_free(cur);
    auth_destroy(a);
    unlink(keys);
}

static void test_peers(void **state)
{
    (void)state;
    char why[200], out[64];
    assert_null(peers_create("10.0.0.0/33", 0, why, sizeof why));
    assert_null(peers_create("not-an-ip", 0, why, sizeof why));
    peers *p = peers_create("127.0.0.1, 10.0.0.0/8,::1", 2, why, sizeof why);
    assert_non_null(p);
    /* Untrusted peers: their X-Forwarded-For is ignored. */
    peers_client_addr(p, "192.0.2.7", "1.2.3.4", out, sizeof out);
    assert_string_equal(out, "192.0.2.7");
    /* A trusted proxy: the right-most untrusted hop. */
    peers_client_addr(p, "127.0.0.1", "6.6.6.6, 198.51.100.9", out, sizeof out);
    assert_string_equal(out, "198.51.100.9");
    peers_client_addr(p, "127.0.0.1", "6.6.6.6, 198.51.100.9 , 10.1.2.3", out, sizeof out);
    assert_string_equal(out, "198.51.100.9");
    peers_client_addr(p, "::ffff:127.0.0.1", "203.0.113.5", out, sizeof out);
    assert_string_equal(out, "203.0.113.5");
    /* Junk in the header: the last address believed. */
    peers_client_addr(p, "127.0.0.1", "1.1.1.1, junk", out, sizeof out);
    assert_string_equal(out, "127.0.0.1");
    peers_client_addr(p, "127.0.0.1", NULL, out, sizeof out);
    assert_string_equal(out, "127.0.0.1");

    assert_false(peers_full(p, "1.1.1.1"));
    peer_entry *a = peers_acquire(p, "1.1.1.1");
    peer_entry *b = peers_acquire(p, "1.1.1.1");
    assert_ptr_equal(a, b);
    assert_true(peers_full(p, "1.1.1.1"));
    assert_false(peers_full(p, "2.2.2.2"));
    assert_int_equal(peers_count(p), 1);
    peers_release(p, a);
    assert_false(peers_full(p, "1.1.1.1"));
    peers_release(p, b);
    assert_int_equal(peers_count(p), 0);
    peers_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hs256_good),
        cmocka_unit_test(test_forgeries),
        cmocka_unit_test(test_contacts_claim),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_issuer_audience),
        cmocka_unit_test(test_rs256_and_key_file),
        cmocka_unit_test(test_auth_rules),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_peers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
