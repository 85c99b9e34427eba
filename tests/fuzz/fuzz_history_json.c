/* fuzz_history_json.c — libFuzzer target for the history page writer
 * (server/history_json.c), which turns client bytes (bodies, names, header
 * lines, all stored as sent) into the JSON of GET /api/rooms/<room>/messages.
 *
 * Input: the fields of one message separated by 0x1e: sender, sender_name,
 * content_type, headers, body (missing fields are NULL; the first three are
 * C strings in a real envelope, so they end at a NUL here too).
 *
 * Checks. Measuring gives exactly the bytes written (the server allocates
 * from the measure); the page is valid JSON (jansson refuses invalid UTF-8
 * too); the body comes back exactly, as "body" when it is UTF-8 and as
 * "body_base64" otherwise; sender, sender_name and content_type come back
 * exactly when they are UTF-8; sender_role and the headers' values are
 * strings. The exact output is pinned against a jansson tree in
 * tests/unit/test_history_json.c.
 */
#include "history_json.h"
#include "utf8.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_history_json: %s:%d: check failed: %s\n", __FILE__,  \
                    __LINE__, #cond);                                                 \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode standard padded base64; returns the length, or -1. */
static long b64_decode(const char *s, size_t n, unsigned char *out)
{
    if (n % 4)
        return -1;
    long w = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++)
            v[k] = s[i + k] == '=' && i + 4 == n && k >= 2 ? 0 : b64_value(s[i + k]);
        if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0)
            return -1;
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[w++] = (unsigned char)(x >> 16);
        if (s[i + 2] != '=')
            out[w++] = (unsigned char)(x >> 8);
        if (s[i + 3] != '=')
            out[w++] = (unsigned char)x;
    }
    return w;
}

/* A C string field of the message: as given, or cut at its first NUL. */
static char *fuzz_cstr(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void check_text(json_t *o, const char *key, const char *in)
{
    json_t *v = json_object_get(o, key);
    CHECK(json_is_string(v));
    if (in && utf8_valid(in, strlen(in))) {
        CHECK(json_string_length(v) == strlen(in));
        CHECK(!memcmp(json_string_value(v), in, strlen(in)));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[5] = { 0 };
    size_t len[5] = { 0 };
    size_t nparts = 0, start = 0;
    for (size_t i = 0; i <= size && nparts < 5; i++) {
        if (i == size || (data[i] == 0x1e && nparts < 4)) {
            part[nparts] = data + start;
            len[nparts++] = i - start;
            start = i + 1;
        }
    }
    envelope m = { .seq = size, .ts_ms = (uint64_t)size << 40 };
    char id[] = "1795337242974-7", room[] = "physics";
    m.id = id;
    m.room = room;
    m.sender = nparts > 0 ? fuzz_cstr(part[0], len[0]) : NULL;
    m.sender_name = nparts > 1 ? fuzz_cstr(part[1], len[1]) : NULL;
    m.content_type = nparts > 2 ? fuzz_cstr(part[2], len[2]) : NULL;
    if (nparts > 3 && len[3]) {
        m.headers = malloc(len[3]);
        memcpy(m.headers, part[3], len[3]);
        m.headers_len = len[3];
    }
    if (nparts > 4 && len[4]) {
        m.body = malloc(len[4]);
        memcpy(m.body, part[4], len[4]);
        m.body_len = len[4];
    }

    size_t want = history_json_page("lobby", &m, 1, true, NULL);
    char *out = malloc(want + 1);
    out[want] = 'X';
    CHECK(history_json_page("lobby", &m, 1, true, out) == want);
    CHECK(out[want] == 'X');

    json_error_t err;
    json_t *page = json_loadb(out, want, JSON_ALLOW_NUL, &err);
    if (!page)
        fprintf(stderr, "fuzz_history_json: not JSON: %s\n%.*s\n", err.text, (int)want, out);
    CHECK(page);
    json_t *list = json_object_get(page, "messages");
    CHECK(json_array_size(list) == 1);
    json_t *o = json_array_get(list, 0);
    CHECK(!strcmp(json_string_value(json_object_get(o, "id")), id));
    check_text(o, "sender", m.sender);
    check_text(o, "sender_name", m.sender_name);
    if (m.content_type)
        check_text(o, "content_type", m.content_type);
    else
        CHECK(json_is_null(json_object_get(o, "content_type")));
    json_t *body = json_object_get(o, "body"), *b64 = json_object_get(o, "body_base64");
    CHECK(!body != !b64);
    if (body) {
        CHECK(utf8_valid(m.body ? m.body : "", m.body_len));
        CHECK(json_string_length(body) == m.body_len);
        CHECK(!m.body_len || !memcmp(json_string_value(body), m.body, m.body_len));
    } else {
        CHECK(!utf8_valid(m.body ? m.body : "", m.body_len));
        unsigned char *dec = malloc(json_string_length(b64) / 4 * 3 + 1);
        long n = b64_decode(json_string_value(b64), json_string_length(b64), dec);
        CHECK(n == (long)m.body_len);
        CHECK(!memcmp(dec, m.body, m.body_len));
        free(dec);
    }
    json_t *role = json_object_get(o, "sender_role");
    CHECK(!role || json_is_string(role));
    json_t *headers = json_object_get(o, "headers");
    if (headers) {
        CHECK(json_is_object(headers) && json_object_size(headers) > 0);
        CHECK(!json_object_get(headers, "sender-role"));
        const char *k;
        json_t *v;
        json_object_foreach(headers, k, v)
            CHECK(json_is_string(v));
    }
    json_decref(page);
    free(out);
    free(m.sender);
    free(m.sender_name);
    free(m.content_type);
    free(m.headers);
    free(m.body);
    return 0;
}
