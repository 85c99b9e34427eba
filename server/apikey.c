/* apikey.c — API keys kept as digests, compared in constant time.
 *
 * apikey_set_create splits api.keys and stores the SHA-256 of each key.
 * apikey_set_matches hashes the candidate once and compares the digest
 * with every stored one by CRYPTO_memcmp, OR-ing the results: the time
 * depends only on the number of keys, never on where (or whether) the
 * candidate differs, nor on its length (the hash hides it).
 *
 * Invariant: every key in a set passed apikey_check.
 */
#include "apikey.h"

#include "mem.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define APIKEY_MAX_LEN 1024

struct apikey_set {
    size_t n;
    unsigned char (*digest)[SHA256_DIGEST_LENGTH];
};

/* The next entry of list from *p: its start and length (trimmed); false at
 * the end. Empty entries come out with length 0. */
static bool apikey_next(const char **p, const char **start, size_t *len)
{
    const char *s = *p;
    if (!*s)
        return false;
    const char *comma = strchr(s, ',');
    const char *end = comma ? comma : s + strlen(s);
    *p = comma ? comma + 1 : end;
    while (s < end && *s == ' ')
        s++;
    while (end > s && end[-1] == ' ')
        end--;
    *start = s;
    *len = (size_t)(end - s);
    return true;
}

int apikey_check(const char *list, char *why, size_t whylen)
{
    const char *p = list ? list : "", *k;
    size_t len, i = 0;
    while (apikey_next(&p, &k, &len)) {
        i++;
        if (!len)
            continue;
        if (len < APIKEY_MIN_LEN || len > APIKEY_MAX_LEN) {
            snprintf(why, whylen, "api.keys: key %zu is %zu bytes; keys are %d to %d", i, len,
                     APIKEY_MIN_LEN, APIKEY_MAX_LEN);
            return -1;
        }
        for (size_t j = 0; j < len; j++)
            if (k[j] <= ' ' || k[j] > '~') {
                snprintf(why, whylen, "api.keys: key %zu holds a character other than "
                         "printable ASCII", i);
                return -1;
            }
    }
    return 0;
}

apikey_set *apikey_set_create(const char *list)
{
    apikey_set *s = xcalloc(1, sizeof *s);
    const char *p = list ? list : "", *k;
    size_t len, n = 0;
    while (apikey_next(&p, &k, &len))
        n += len != 0;
    s->digest = xcalloc(n ? n : 1, sizeof *s->digest);
    p = list ? list : "";
    while (apikey_next(&p, &k, &len))
        if (len)
            SHA256((const unsigned char *)k, len, s->digest[s->n++]);
    return s;
}

void apikey_set_destroy(apikey_set *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s->digest, (s->n ? s->n : 1) * sizeof *s->digest);
    free(s->digest);
    free(s);
}

size_t apikey_set_count(const apikey_set *s)
{
    return s ? s->n : 0;
}

bool apikey_set_matches(const apikey_set *s, const char *key, size_t len)
{
    if (!s || !s->n || !key || !len || len > APIKEY_MAX_LEN)
        return false;
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, len, d);
    int diff = 1;
    for (size_t i = 0; i < s->n; i++)
        diff &= CRYPTO_memcmp(d, s->digest[i], sizeof d) != 0;
    return !diff;
}

bool apikey_credential(const char *authorization, size_t alen, const char *x_api_key,
                       size_t xlen, const char **cred, size_t *len)
{
    if (authorization && alen > 7 && !strncasecmp(authorization, "bearer ", 7)) {
        const char *v = authorization + 7;
        size_t n = alen - 7;
        while (n && *v == ' ') {
            v++;
            n--;
        }
        while (n && v[n - 1] == ' ')
            n--;
        if (n) {
            *cred = v;
            *len = n;
            return true;
        }
    }
    if (x_api_key && xlen) {
        *cred = x_api_key;
        *len = xlen;
        return true;
    }
    return false;
}
