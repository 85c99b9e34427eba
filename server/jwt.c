/* jwt.c — verifying JSON Web Tokens (HS256, RS256) with OpenSSL and jansson.
 *
 * The order of checks is the one that leaks least and costs least for a
 * forged token: split and decode the header (cheap, bounded), pick the key
 * by alg and kid, check the signature over the first two segments exactly
 * as received, and only then decode and believe the payload. A token whose
 * header says "none", or any alg the chosen key was not registered for, is
 * refused before any crypto (the classic alg-confusion attacks: an RS256
 * public key used as an HS256 secret, or no signature at all).
 *
 * Issuer and audience (jwt_expect) are checked when the caller names them:
 * a key shared by several services signs tokens for all of them, and only
 * iss and aud tell a token meant for another service from one meant for
 * us. They are checked from the payload's JSON and not kept: the claims
 * block holds only what a session acts on.
 *
 * Limits keep a hostile token cheap: the whole token is at most
 * JWT_MAX_TOKEN bytes, the JSON is parsed with duplicate keys rejected, and
 * strings Lectern keeps are bounded (sub and name 128 bytes, rooms 256
 * patterns of at most 128 bytes each; contacts are user ids, userid.h, as
 * many as the token's size allows, or jwt_expect.max_contacts: a token
 * listing more is refused rather than cut, so that its issuer learns of it).
 *
 * Invariants: a keyring's kids are unique; a claims block is one
 * allocation whose strings live inside it.
 */
#include "jwt.h"

#include "mem.h"
#include "userid.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JWT_MAX_TOKEN   8192
#define JWT_MAX_KID     64
#define JWT_MAX_STR     128
#define JWT_MAX_ROOMS   256
#define JWT_MIN_SECRET  32

enum { JWT_HS256, JWT_RS256 };

typedef struct jwt_key {
    char kid[JWT_MAX_KID + 1];
    int alg;
    unsigned char *secret;       /* HS256 */
    size_t secret_len;
    EVP_PKEY *pkey;              /* RS256 */
} jwt_key;

struct jwt_keyring {
    jwt_key *keys;
    size_t n;
};

const char *jwt_status_name(jwt_status st)
{
    switch (st) {
    case JWT_OK: return "ok";
    case JWT_MALFORMED: return "malformed";
    case JWT_BAD_ALG: return "bad_alg";
    case JWT_UNKNOWN_KEY: return "unknown_key";
    case JWT_BAD_SIGNATURE: return "bad_signature";
    case JWT_EXPIRED: return "expired";
    case JWT_NOT_YET: return "not_yet_valid";
    case JWT_BAD_CLAIMS: return "bad_claims";
    case JWT_BAD_ISSUER: return "bad_issuer";
    case JWT_BAD_AUDIENCE: return "bad_audience";
    }
    return "unknown";
}

/* --- keyring -------------------------------------------------------------- */

jwt_keyring *jwt_keyring_create(void)
{
    return xcalloc(1, sizeof(jwt_keyring));
}

void jwt_keyring_destroy(jwt_keyring *kr)
{
    if (!kr)
        return;
    for (size_t i = 0; i < kr->n; i++) {
        if (kr->keys[i].secret) {
            OPENSSL_cleanse(kr->keys[i].secret, kr->keys[i].secret_len);
            free(kr->keys[i].secret);
        }
        EVP_PKEY_free(kr->keys[i].pkey);
    }
    free(kr->keys);
    free(kr);
}

size_t jwt_keyring_size(const jwt_keyring *kr)
{
    return kr->n;
}

static const jwt_key *jwt_find_kid(const jwt_keyring *kr, const char *kid, size_t len)
{
    for (size_t i = 0; i < kr->n; i++)
        if (strlen(kr->keys[i].kid) == len && !memcmp(kr->keys[i].kid, kid, len))
            return &kr->keys[i];
    return NULL;
}

/* A new slot for kid, or NULL (why filled) when kid is taken or too long. */
static jwt_key *jwt_new_key(jwt_keyring *kr, const char *kid, char *why, size_t whylen)
{
    size_t kl = strlen(kid);
    if (kl > JWT_MAX_KID) {
        snprintf(why, whylen, "kid longer than %d bytes", JWT_MAX_KID);
        return NULL;
    }
    if (jwt_find_kid(kr, kid, kl)) {
        snprintf(why, whylen, "duplicate kid \"%s\"", kid);
        return NULL;
    }
    kr->keys = xrealloc(kr->keys, (kr->n + 1) * sizeof *kr->keys);
    jwt_key *k = &kr->keys[kr->n];
    memset(k, 0, sizeof *k);
    memcpy(k->kid, kid, kl + 1);
    return k;
}

int jwt_keyring_add_hs256(jwt_keyring *kr, const char *kid, const unsigned char *secret,
                          size_t len, char *why, size_t whylen)
{
    if (len < JWT_MIN_SECRET) {
        /* RFC 7518 3.2: a key of at least the hash's size. */
        snprintf(why, whylen, "HS256 secret shorter than %d bytes", JWT_MIN_SECRET);
        return -1;
    }
    jwt_key *k = jwt_new_key(kr, kid, why, whylen);
    if (!k)
        return -1;
    k->alg = JWT_HS256;
    k->secret = xmalloc(len);
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    kr->n++;
    return 0;
}

int jwt_keyring_add_rs256_pem(jwt_keyring *kr, const char *kid, const char *pem, size_t len,
                              char *why, size_t whylen)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pk || EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
        snprintf(why, whylen, "not an RSA public key in PEM");
        EVP_PKEY_free(pk);
        return -1;
    }
    jwt_key *k = jwt_new_key(kr, kid, why, whylen);
    if (!k) {
        EVP_PKEY_free(pk);
        return -1;
    }
    k->alg = JWT_RS256;
    k->pkey = pk;
    kr->n++;
    return 0;
}

/* --- base64url -------------------------------------------------------------- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Decode unpadded base64url (RFC 7515 2) into out (at least len*3/4+1
 * bytes). Returns the decoded length, or -1 for a bad character, a
 * length that no encoding has, or non-zero trailing bits. */
static long b64url_decode(const char *in, size_t len, unsigned char *out)
{
    if (len % 4 == 1)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits && (acc & ((1u << bits) - 1)))
        return -1;      /* one token, one spelling: no stray low bits */
    return (long)o;
}

/* The decoded segment as a NUL-terminated heap string, or NULL. */
static unsigned char *b64url_dup(const char *in, size_t len, size_t *outlen)
{
    unsigned char *out = xmalloc(len / 4 * 3 + 4);
    long n = b64url_decode(in, len, out);
    if (n < 0) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    *outlen = (size_t)n;
    return out;
}

/* --- claims ------------------------------------------------------------------- */

/* A string claim: NULL when absent; *bad when present but not a string of
 * 1..JWT_MAX_STR bytes without NUL. */
static const char *claim_str(json_t *o, const char *key, bool *bad)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return NULL;
    size_t n = json_is_string(v) ? json_string_length(v) : 0;
    if (!n || n > JWT_MAX_STR || memchr(json_string_value(v), '\0', n)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

/* An integer time claim (NumericDate; fractions are truncated). */
static bool claim_time(json_t *o, const char *key, int64_t *out, bool required)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        *out = 0;
        return !required;
    }
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != d || d < -9.2e18 || d > 9.2e18)
            return false;
        *out = (int64_t)d;
        return true;
    }
    return false;
}

/* The claims of payload object o (JWT_OK and *out, or JWT_BAD_CLAIMS). */
static jwt_status jwt_claims_from(json_t *o, jwt_claims **out)
{
    bool bad = false;
    const char *sub = claim_str(o, "sub", &bad);
    const char *name = claim_str(o, "name", &bad);
    const char *role = claim_str(o, "role", &bad);
    if (bad || !sub)
        return JWT_BAD_CLAIMS;
    jwt_role r = JWT_ROLE_STUDENT;
    if (role) {
        if (!strcmp(role, "student")) r = JWT_ROLE_STUDENT;
        else if (!strcmp(role, "instructor")) r = JWT_ROLE_INSTRUCTOR;
        else if (!strcmp(role, "admin")) r = JWT_ROLE_ADMIN;
        else return JWT_BAD_CLAIMS;
    }
    int64_t exp, nbf;
    if (!claim_time(o, "exp", &exp, true) || !claim_time(o, "nbf", &nbf, false))
        return JWT_BAD_CLAIMS;

    json_t *rooms = json_object_get(o, "rooms");
    size_t nrooms = 0, bytes = strlen(sub) + 1 + (name ? strlen(name) + 1 : 0);
    if (rooms) {
        if (!json_is_array(rooms) || json_array_size(rooms) > JWT_MAX_ROOMS)
            return JWT_BAD_CLAIMS;
        nrooms = json_array_size(rooms);
        for (size_t i = 0; i < nrooms; i++) {
            json_t *v = json_array_get(rooms, i);
            size_t n = json_is_string(v) ? json_string_length(v) : 0;
            if (!n || n > JWT_MAX_STR || memchr(json_string_value(v), '\0', n))
                return JWT_BAD_CLAIMS;
            bytes += n + 1;
        }
    }

    json_t *contacts = json_object_get(o, "contacts");
    size_t ncontacts = 0;
    if (contacts) {
        if (!json_is_array(contacts))
            return JWT_BAD_CLAIMS;
        ncontacts = json_array_size(contacts);
        for (size_t i = 0; i < ncontacts; i++) {
            json_t *v = json_array_get(contacts, i);
            if (!json_is_string(v) ||
                !userid_valid(json_string_value(v), json_string_length(v)))
                return JWT_BAD_CLAIMS;
            bytes += json_string_length(v) + 1;
        }
    }

    /* One block: the struct, the room and contact pointers, then the strings. */
    jwt_claims *c = xmalloc(sizeof *c + (nrooms + ncontacts) * sizeof(char *) + bytes);
    const char **ptrs = (const char **)(c + 1);
    const char **cptrs = ptrs + nrooms;
    char *p = (char *)(cptrs + ncontacts);
    size_t n = strlen(sub) + 1;
    c->sub = memcpy(p, sub, n);
    p += n;
    if (name) {
        n = strlen(name) + 1;
        c->name = memcpy(p, name, n);
        p += n;
    } else {
        c->name = c->sub;
    }
    for (size_t i = 0; i < nrooms; i++) {
        json_t *v = json_array_get(rooms, i);
        n = json_string_length(v) + 1;
        ptrs[i] = memcpy(p, json_string_value(v), n);
        p += n;
    }
    for (size_t i = 0; i < ncontacts; i++) {
        json_t *v = json_array_get(contacts, i);
        n = json_string_length(v) + 1;
        cptrs[i] = memcpy(p, json_string_value(v), n);
        p += n;
    }
    c->ncontacts = ncontacts;
    c->contacts = cptrs;
    c->role = r;
    c->exp = exp;
    c->nbf = nbf;
    c->nrooms = nrooms;
    c->rooms = ptrs;
    *out = c;
    return JWT_OK;
}

/* The payload's JSON text as an object, or NULL. */
static json_t *jwt_load_object(const char *json, size_t len)
{
    json_error_t jerr;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o && !json_is_object(o)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

jwt_status jwt_parse_claims(const char *json, size_t len, jwt_claims **out)
{
    *out = NULL;
    json_t *o = jwt_load_object(json, len);
    jwt_status st = o ? jwt_claims_from(o, out) : JWT_MALFORMED;
    json_decref(o);
    return st;
}

/* Is v the JSON string s (exactly: no NUL tricks, no prefix)? */
static bool jwt_str_is(json_t *v, const char *s)
{
    return json_is_string(v) && json_string_length(v) == strlen(s) &&
           !memcmp(json_string_value(v), s, json_string_length(v));
}

/* iss and aud against what the caller requires. aud may be one string or
 * an array of strings (RFC 7519 4.1.3); anything else matches nothing. */
static jwt_status jwt_check_expect(json_t *o, const jwt_expect *want)
{
    if (!want)
        return JWT_OK;
    if (want->issuer && *want->issuer && !jwt_str_is(json_object_get(o, "iss"), want->issuer))
        return JWT_BAD_ISSUER;
    json_t *contacts = json_object_get(o, "contacts");
    if (want->max_contacts && json_is_array(contacts) &&
        json_array_size(contacts) > want->max_contacts)
        return JWT_BAD_CLAIMS;
    if (want->audience && *want->audience) {
        json_t *aud = json_object_get(o, "aud");
        bool ok = jwt_str_is(aud, want->audience);
        for (size_t i = 0; !ok && json_is_array(aud) && i < json_array_size(aud); i++)
            ok = jwt_str_is(json_array_get(aud, i), want->audience);
        if (!ok)
            return JWT_BAD_AUDIENCE;
    }
    return JWT_OK;
}

void jwt_claims_free(jwt_claims *c)
{
    free(c);
}

/* --- verification ----------------------------------------------------------------- */

/* The key for a header: by kid when the header has one; otherwise the
 * key registered without a kid, or the only key of the ring. The key's
 * alg must be the header's. */
static jwt_status jwt_pick_key(const jwt_keyring *kr, json_t *hdr, const jwt_key **out)
{
    json_t *a = json_object_get(hdr, "alg");
    if (!json_is_string(a))
        return JWT_BAD_ALG;
    int alg;
    if (!strcmp(json_string_value(a), "HS256")) alg = JWT_HS256;
    else if (!strcmp(json_string_value(a), "RS256")) alg = JWT_RS256;
    else return JWT_BAD_ALG;

    json_t *kid = json_object_get(hdr, "kid");
    const jwt_key *k = NULL;
    if (kid) {
        if (!json_is_string(kid))
            return JWT_MALFORMED;
        k = jwt_find_kid(kr, json_string_value(kid), json_string_length(kid));
    } else {
        k = jwt_find_kid(kr, "", 0);
        if (!k && kr->n == 1)
            k = &kr->keys[0];
    }
    if (!k || k->alg != alg)
        return JWT_UNKNOWN_KEY;
    *out = k;
    return JWT_OK;
}

static bool jwt_check_sig(const jwt_key *k, const char *input, size_t inlen,
                          const unsigned char *sig, size_t siglen)
{
    if (k->alg == JWT_HS256) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)input,
                  inlen, mac, &maclen))
            return false;
        return siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
              EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)input, inlen) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

jwt_status jwt_verify(const jwt_keyring *kr, const char *tok, size_t len, int64_t now,
                      int skew, const jwt_expect *want, jwt_claims **out)
{
    *out = NULL;
    if (len == 0 || len > JWT_MAX_TOKEN)
        return JWT_MALFORMED;
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
        return JWT_MALFORMED;

    jwt_status st = JWT_MALFORMED;
    unsigned char *hdr_txt = NULL, *body_txt = NULL, *sig = NULL;
    json_t *hdr = NULL, *body = NULL;
    size_t hl, bl, sl;

    hdr_txt = b64url_dup(tok, (size_t)(d1 - tok), &hl);
    if (!hdr_txt)
        goto done;
    json_error_t jerr;
    hdr = json_loadb((const char *)hdr_txt, hl, JSON_REJECT_DUPLICATES, &jerr);
    if (!hdr || !json_is_object(hdr))
        goto done;
    const jwt_key *k = NULL;
    st = jwt_pick_key(kr, hdr, &k);
    if (st != JWT_OK)
        goto done;
    st = JWT_MALFORMED;
    sig = b64url_dup(d2 + 1, len - (size_t)(d2 + 1 - tok), &sl);
    if (!sig)
        goto done;
    if (!jwt_check_sig(k, tok, (size_t)(d2 - tok), sig, sl)) {
        st = JWT_BAD_SIGNATURE;
        goto done;
    }
    body_txt = b64url_dup(d1 + 1, (size_t)(d2 - d1 - 1), &bl);
    if (!body_txt || !(body = jwt_load_object((const char *)body_txt, bl)))
        goto done;
    jwt_claims *c = NULL;
    st = jwt_claims_from(body, &c);
    if (st != JWT_OK)
        goto done;
    st = jwt_check_expect(body, want);
    if (st == JWT_OK) {
        if (now >= c->exp + skew)
            st = JWT_EXPIRED;
        else if (c->nbf && now + skew < c->nbf)
            st = JWT_NOT_YET;
    }
    if (st != JWT_OK)
        jwt_claims_free(c);
    else
        *out = c;
done:
    json_decref(body);
    json_decref(hdr);
    free(hdr_txt);
    free(body_txt);
    free(sig);
    return st;
}

/* --- key file ----------------------------------------------------------------------- */

static char *jwt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *data = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            data = xrealloc(data, cap);
        }
        size_t r = fread(data + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0 || n > (1u << 20))
            break;
    }
    bool err = ferror(f) || n > (1u << 20);
    fclose(f);
    if (err) {
        free(data);
        return NULL;
    }
    data[n] = '\0';
    *len = n;
    return data;
}

/* One "<kid> <alg> <value>" line of the key file (dir: the file's folder). */
static int jwt_load_line(jwt_keyring *kr, char *line, const char *dir, char *why, size_t whylen)
{
    char *save = NULL;
    const char *kid = strtok_r(line, " \t", &save);
    char *alg = strtok_r(NULL, " \t", &save);
    char *val = strtok_r(NULL, " \t", &save);
    if (!kid || !alg || !val || strtok_r(NULL, " \t", &save)) {
        snprintf(why, whylen, "expected \"<kid> <HS256|RS256> <secret|pem path>\"");
        return -1;
    }
    if (!strcmp(kid, "-"))
        kid = "";
    if (!strcmp(alg, "HS256")) {
        if (!strncmp(val, "base64url:", 10)) {
            size_t vl = strlen(val + 10);
            unsigned char *sec = xmalloc(vl / 4 * 3 + 4);
            long n = b64url_decode(val + 10, vl, sec);
            int rc = n < 0 ? (snprintf(why, whylen, "bad base64url secret"), -1)
                           : jwt_keyring_add_hs256(kr, kid, sec, (size_t)n, why, whylen);
            OPENSSL_cleanse(sec, vl / 4 * 3 + 4);
            free(sec);
            return rc;
        }
        return jwt_keyring_add_hs256(kr, kid, (const unsigned char *)val, strlen(val), why,
                                     whylen);
    }
    if (!strcmp(alg, "RS256")) {
        char path[8200];
        if (val[0] == '/')
            snprintf(path, sizeof path, "%.4000s", val);
        else
            snprintf(path, sizeof path, "%.4000s/%.4000s", dir, val);
        size_t pl;
        char *pem = jwt_read_file(path, &pl);
        if (!pem) {
            snprintf(why, whylen, "cannot read %.150s: %s", path, strerror(errno));
            return -1;
        }
        int rc = jwt_keyring_add_rs256_pem(kr, kid, pem, pl, why, whylen);
        free(pem);
        return rc;
    }
    snprintf(why, whylen, "unknown alg \"%s\" (HS256 or RS256)", alg);
    return -1;
}

int jwt_keyring_load(jwt_keyring *kr, const char *path, char *why, size_t whylen)
{
    size_t len;
    char *data = jwt_read_file(path, &len);
    if (!data) {
        snprintf(why, whylen, "cannot read %s: %s", path, errno ? strerror(errno) : "too large");
        return -1;
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        snprintf(dir, sizeof dir, ".");

    int added = 0, lineno = 0, rc = -1;
    for (char *line = data, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = '\0';
        while (*line == ' ' || *line == '\t')
            line++;
        if (!*line || *line == '#')
            continue;
        char reason[256];
        if (jwt_load_line(kr, line, dir, reason, sizeof reason) < 0) {
            snprintf(why, whylen, "%s:%d: %s", path, lineno, reason);
            goto done;
        }
        added++;
    }
    rc = added;
done:
    OPENSSL_cleanse(data, len);
    free(data);
    return rc;
}
