/* fuzz_history_query.c — libFuzzer target for the query of
 * GET /api/rooms/<room>/messages (http_history_params, server/http_query.c) and the
 * message-id parser behind its cursors (msgid_parse, lib/msgid.c).
 *
 * Input: the query string as it follows '?' in the request line.
 *
 * The server never sees the raw query: libwebsockets splits it at '&' and
 * URL-decodes each fragment, and http_history_request refuses more than 8
 * fragments or one of 160 bytes or more before parsing. This target does the
 * same (a small %XX decoder stands in for lws's) and then calls
 * http_history_params with the server's default limits and with both ends of
 * the range the config accepts.
 *
 * Checks. The result is compared with the rules http.h states (a model
 * written from the header, not from the code): names limit/after/before,
 * each at most once; limit all digits, 1..max_limit; after and before message
 * ids with after < before. msgid_parse is run on every cursor value and on
 * the whole input, and compared with the grammar msgid.h states (two
 * decimals without sign or leading zeros, each fitting 64 bits, joined by
 * '-'); a parsed id must format back to exactly the bytes it came from.
 *
 * Other parsers on the same paths are not exported and so not fuzzed here:
 * parse_heartbeat (server/session.c, CONNECT's heart-beat header) and the
 * x-since check around msgid_parse in session.c and resume.c.
 */
#include "http_query.h"
#include "msgid.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_history_query: %s:%d: check failed: %s\n", __FILE__, \
                    __LINE__, #cond);                                                 \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* As in http_history_request (server/http_history.c). */
#define FUZZ_MAX_ARGS 8
#define FUZZ_ARG_SIZE 160

/* msgid.h's grammar for one number: 1..20 digits, no leading zero, <= 2^64-1. */
static bool fuzz_model_number(const char *s, size_t n, uint64_t *out)
{
    static const char max[] = "18446744073709551615";
    if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    if (n == 20 && memcmp(s, max, 20) > 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    *out = v;
    return true;
}

/* msgid.h's grammar: <number> '-' <number>, nothing else. */
static bool fuzz_model_msgid(const char *s, size_t n, msgid *out)
{
    const char *dash = memchr(s, '-', n);
    if (!dash)
        return false;
    size_t a = (size_t)(dash - s);
    return fuzz_model_number(s, a, &out->ms) && fuzz_model_number(dash + 1, n - a - 1, &out->n);
}

static int fuzz_sign(int v)
{
    return (v > 0) - (v < 0);
}

/* msgid_parse of s[0..n) against the model; returns whether it parsed. */
static bool fuzz_check_msgid(const char *s, size_t n, msgid *out)
{
    char *copy = malloc(n ? n : 1);   /* exactly n bytes: ASan sees overreads */
    CHECK(copy);
    if (n)
        memcpy(copy, s, n);
    msgid id = { 0x5a5a, 0xa5a5 }, want;
    int rc = msgid_parse(copy, n, &id);
    bool ok = fuzz_model_msgid(s, n, &want);
    free(copy);
    CHECK(rc == 0 || rc == -1);
    CHECK((rc == 0) == ok);
    if (!ok) {
        CHECK(id.ms == 0x5a5a && id.n == 0xa5a5);   /* "out untouched" */
        return false;
    }
    CHECK(id.ms == want.ms && id.n == want.n);
    char text[MSGID_MAX];
    size_t tl = msgid_format(id, text);
    CHECK(tl == n && tl < MSGID_MAX && text[tl] == '\0' && !memcmp(text, s, n));
    CHECK(msgid_cmp(id, id) == 0);
    *out = id;
    return true;
}

static int fuzz_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* URL-decode s[0..n) into out (at least n + 1 bytes), NUL-terminated: %XX
 * is a byte, '+' a space. Returns the decoded length; a decoded NUL ends
 * the C string early, as it would in the server's copy. */
static size_t fuzz_url_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int h, l;
        if (c == '%' && i + 2 < n && (h = fuzz_hex(s[i + 1])) >= 0 &&
            (l = fuzz_hex(s[i + 2])) >= 0) {
            c = (char)(h * 16 + l);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return o;
}

/* The model's verdict on one call; fills the expected query on success. */
static bool fuzz_model_params(char args[][FUZZ_ARG_SIZE], size_t nargs, int default_limit,
                              int max_limit, history_query *want)
{
    bool seen_limit = false;
    want->limit = (size_t)default_limit;
    want->has_after = want->has_before = false;
    for (size_t i = 0; i < nargs; i++) {
        const char *a = args[i], *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const char *v = eq ? eq + 1 : "";
        size_t vlen = strlen(v);
        if (nlen == 5 && !memcmp(a, "limit", 5)) {
            if (seen_limit || vlen == 0)
                return false;
            seen_limit = true;
            uint64_t n = 0;
            for (size_t k = 0; k < vlen; k++) {
                if (v[k] < '0' || v[k] > '9')
                    return false;
                if (n <= (uint64_t)max_limit)   /* saturate far above any limit */
                    n = n * 10 + (uint64_t)(v[k] - '0');
            }
            if (n < 1 || n > (uint64_t)max_limit)
                return false;
            want->limit = (size_t)n;
        } else if (nlen == 5 && !memcmp(a, "after", 5)) {
            if (want->has_after || !fuzz_model_msgid(v, vlen, &want->after))
                return false;
            want->has_after = true;
        } else if (nlen == 6 && !memcmp(a, "before", 6)) {
            if (want->has_before || !fuzz_model_msgid(v, vlen, &want->before))
                return false;
            want->has_before = true;
        } else {
            return false;
        }
    }
    if (want->has_after && want->has_before) {
        const msgid *x = &want->after, *y = &want->before;
        if (x->ms > y->ms || (x->ms == y->ms && x->n >= y->n))
            return false;
    }
    return true;
}

static void fuzz_check_params(char args[][FUZZ_ARG_SIZE], size_t nargs, int default_limit,
                              int max_limit)
{
    const char *ptrs[FUZZ_MAX_ARGS];
    for (size_t i = 0; i < nargs; i++)
        ptrs[i] = args[i];
    history_query q, want;
    memset(&q, 0x5a, sizeof q);
    const char *why = NULL;
    int rc = http_history_params(ptrs, nargs, default_limit, max_limit, &q, &why);
    bool ok = fuzz_model_params(args, nargs, default_limit, max_limit, &want);
    CHECK(rc == 0 || rc == -1);
    if (rc < 0) {
        CHECK(why && why[0]);
        CHECK(!ok);
        return;
    }
    CHECK(ok);
    CHECK(q.limit == want.limit && q.limit >= 1);
    CHECK(q.limit <= (size_t)(max_limit > default_limit ? max_limit : default_limit));
    CHECK(q.has_after == want.has_after && q.has_before == want.has_before);
    if (q.has_after)
        CHECK(msgid_cmp(q.after, want.after) == 0);
    if (q.has_before)
        CHECK(msgid_cmp(q.before, want.before) == 0);
    if (q.has_after && q.has_before) {
        CHECK(msgid_cmp(q.after, q.before) < 0);
        CHECK(fuzz_sign(msgid_cmp(q.before, q.after)) == 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    msgid id;
    fuzz_check_msgid(in, size, &id);

    /* Split at '&' and decode, as lws does; refuse what the server refuses
     * (more than 8 fragments, a decoded fragment of 160 bytes or more). */
    char args[FUZZ_MAX_ARGS][FUZZ_ARG_SIZE];
    char tmp[3 * FUZZ_ARG_SIZE];
    size_t nargs = 0;
    for (size_t at = 0; at < size;) {
        const char *amp = memchr(in + at, '&', size - at);
        size_t flen = amp ? (size_t)(amp - (in + at)) : size - at;
        if (nargs == FUZZ_MAX_ARGS || flen >= sizeof tmp)
            return 0;
        size_t dlen = fuzz_url_decode(in + at, flen, tmp);
        if (dlen >= FUZZ_ARG_SIZE)
            return 0;
        memcpy(args[nargs++], tmp, dlen + 1);
        at += flen + 1;
    }

    for (size_t i = 0; i < nargs; i++) {
        const char *eq = strchr(args[i], '=');
        if (eq)
            fuzz_check_msgid(eq + 1, strlen(eq + 1), &id);
    }

    /* The server's defaults, then the smallest and largest the config allows. */
    fuzz_check_params(args, nargs, 50, 1000);
    fuzz_check_params(args, nargs, 1, 1);
    fuzz_check_params(args, nargs, 100000, 100000);
    return 0;
}
