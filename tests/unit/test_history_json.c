/* test_history_json.c — the history page writer (server/history_json.c).
 *
 * The writer replaced a jansson tree (built per message, dumped to text,
 * copied into the response). The reference below is that tree, kept here
 * as the oracle: for thousands of random messages (hostile bytes in every
 * field: control characters, broken UTF-8, NULs, escaped and repeated
 * header names) the writer must print exactly what jansson printed, and
 * measuring must give exactly the bytes written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <libwebsockets.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "history_json.h"
#include "utf8.h"

/* --- the oracle: a jansson tree, as the HTTP API built it ---------------------------- */

static json_t *ref_text(const char *p, size_t len)
{
    if (!p)
        return json_string("");
    if (utf8_valid(p, len))
        return json_stringn(p, len);
    buf b;
    buf_init(&b);
    for (size_t i = 0; i < len;) {
        size_t k = 1;
        while (k <= 4 && i + k <= len && !utf8_valid(p + i, k))
            k++;
        if (k <= 4 && i + k <= len) {
            buf_append(&b, p + i, k);
            i += k;
        } else {
            buf_append(&b, "\xef\xbf\xbd", 3);
            i++;
        }
    }
    json_t *v = json_stringn(b.data ? b.data : "", b.len);
    buf_deinit(&b);
    return v;
}

static json_t *ref_headers(const char *h, size_t len)
{
    json_t *o = json_object();
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && h[end] != '\n')
            end++;
        char *line = malloc(end - i + 1), *name = line, *value = NULL;
        size_t w = 0;
        for (size_t k = i; k < end; k++) {
            char c = h[k];
            if (c == ':' && !value) {
                line[w++] = '\0';
                value = line + w;
                continue;
            }
            if (c == '\\' && k + 1 < end) {
                char n = h[++k];
                c = n == 'n' ? '\n' : n == 'r' ? '\r' : n == 'c' ? ':' : n;
            }
            line[w++] = c;
        }
        line[w] = '\0';
        if (value && utf8_valid(name, strlen(name)) && !json_object_get(o, name))
            json_object_set_new(o, name, ref_text(value, strlen(value)));
        free(line);
        i = end + 1;
    }
    return o;
}

static json_t *ref_base64(const void *p, size_t n)
{
    size_t cap = (n + 2) / 3 * 4 + 4;
    char *b64 = malloc(cap);
    int k = lws_b64_encode_string(p, (int)n, b64, (int)cap);
    json_t *s = json_stringn(b64, k > 0 ? (size_t)k : 0);
    free(b64);
    return s;
}

static json_t *ref_message(const envelope *m)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:o, s:o, s:o, s:I}", "id", m->id, "room", m->room,
                          "seq", (json_int_t)m->seq,
                          "sender", ref_text(m->sender, m->sender ? strlen(m->sender) : 0),
                          "sender_name", ref_text(m->sender_name, m->sender_name ?
                                                  strlen(m->sender_name) : 0),
                          "content_type", m->content_type ?
                          ref_text(m->content_type, strlen(m->content_type)) : json_null(),
                          "timestamp", (json_int_t)m->ts_ms);
    if (utf8_valid(m->body ? m->body : "", m->body_len))
        json_object_set_new(o, "body", json_stringn(m->body ? m->body : "", m->body_len));
    else
        json_object_set_new(o, "body_base64", ref_base64(m->body, m->body_len));
    if (m->headers_len) {
        json_t *h = ref_headers(m->headers, m->headers_len);
        json_t *role = json_object_get(h, "sender-role");
        if (role) {
            json_object_set(o, "sender_role", role);
            json_object_del(h, "sender-role");
        }
        if (json_object_size(h))
            json_object_set_new(o, "headers", h);
        else
            json_decref(h);
    }
    return o;
}

static char *ref_page(const char *room, const envelope *msgs, size_t n, bool more)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, ref_message(&msgs[i]));
    json_t *v = json_pack("{s:s, s:o, s:b}", "room", n ? msgs[0].room : room, "messages", list,
                          "more", more);
    json_object_set_new(v, "before", n ? json_string(msgs[0].id) : json_null());
    json_object_set_new(v, "after", n ? json_string(msgs[n - 1].id) : json_null());
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return text;
}

/* --- the writer ------------------------------------------------------------------------ */

static char *page(const char *room, const envelope *msgs, size_t n, bool more, size_t *len)
{
    size_t want = history_json_page(room, msgs, n, more, NULL);
    char *out = malloc(want + 1);
    size_t got = history_json_page(room, msgs, n, more, out);
    assert_int_equal(got, want);
    out[got] = '\0';
    *len = got;
    return out;
}

static char *message(const envelope *m)
{
    size_t want = history_json_message(m, NULL);
    char *out = malloc(want + 1);
    assert_int_equal(history_json_message(m, out), want);
    out[want] = '\0';
    return out;
}

/* --- random hostile messages ----------------------------------------------------------- */

static uint64_t rng = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t rndn(size_t n)
{
    return (size_t)(rnd() % n);
}

/* Pieces that exercise every rule: plain text, escapes, control bytes,
 * valid multi-byte sequences, broken ones, and (where allowed) NUL. */
static void rnd_bytes(buf *b, size_t pieces, bool nul)
{
    static const char *const parts[] = {
        "a", "hello", " ", "\"", "\\", "/", "\x7f", "\x01", "\x1f", "\b", "\f", "\n", "\r", "\t",
        "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xe2\x80\xa8", "\xff", "\x80", "\xc3",
        "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "\xf0\x9f\x98", ":", "\\c",
    };
    for (size_t i = 0; i < pieces; i++) {
        if (nul && !rndn(12))
            buf_append(b, "\0", 1);
        else
            buf_append_str(b, parts[rndn(sizeof parts / sizeof parts[0])]);
    }
}

static char *rnd_cstr(size_t max)
{
    buf b;
    buf_init(&b);
    rnd_bytes(&b, rndn(max + 1), false);
    char *s = b.data ? b.data : calloc(1, 1);
    return s;
}

static void rnd_headers(envelope *m)
{
    static const char *const names[] = {
        "x-note", "sender-role", "x-a", "", "x\\cy", "x\\nn", "\xff" "bad", "caf\xc3\xa9",
        "x-a\\", "x\\\\y", "sender\\-role", "content-type",
    };
    buf b;
    buf_init(&b);
    size_t lines = rndn(8);
    for (size_t i = 0; i < lines; i++) {
        buf_append_str(&b, names[rndn(sizeof names / sizeof names[0])]);
        if (rndn(8))
            buf_append_char(&b, ':');
        rnd_bytes(&b, rndn(6), true);
        if (rndn(6))
            buf_append_str(&b, rndn(2) ? "\\n" : "\\r");
        if (i + 1 < lines || rndn(2))
            buf_append_char(&b, '\n');
    }
    m->headers = b.data;
    m->headers_len = b.len;
}

static void rnd_message(envelope *m, const char *room, size_t i)
{
    memset(m, 0, sizeof *m);
    char id[48];
    snprintf(id, sizeof id, "%llu-%zu", (unsigned long long)(rnd() >> 20), i);
    m->id = strdup(id);
    m->room = strdup(room);
    m->seq = rndn(4) ? rndn(100000) : rnd();
    m->ts_ms = rndn(4) ? rndn(1ULL << 42) : rnd();
    m->sender = rnd_cstr(4);
    m->sender_name = rnd_cstr(4);
    m->content_type = rndn(2) ? rnd_cstr(3) : NULL;
    if (rndn(3))
        rnd_headers(m);
    buf b;
    buf_init(&b);
    rnd_bytes(&b, rndn(20), true);
    m->body = b.data;
    m->body_len = b.len;
}

/* --- tests ------------------------------------------------------------------------------ */

/* envelope fields are not const (they are owned when the envelope is); these
 * test envelopes only lend literals. */
#define S(lit) ((char *)(uintptr_t)(lit))


static void test_random_pages_print_as_jansson_did(void **state)
{
    (void)state;
    for (int round = 0; round < 3000; round++) {
        envelope msgs[4];
        size_t n = rndn(5);
        for (size_t i = 0; i < n; i++)
            rnd_message(&msgs[i], round % 2 ? "physics" : "a.b_c~d-9", i);
        bool more = rndn(2);
        char *want = ref_page("empty-room", msgs, n, more);
        assert_non_null(want);
        size_t len;
        char *got = page("empty-room", msgs, n, more, &len);
        if (strcmp(got, want))
            fail_msg("round %d:\n got  %s\n want %s", round, got, want);
        assert_int_equal(len, strlen(want));
        free(got);
        free(want);
        for (size_t i = 0; i < n; i++)
            envelope_free(&msgs[i]);
    }
}

static void test_control_characters_grow_sixfold(void **state)
{
    (void)state;
    char body[256];
    for (int i = 0; i < 256; i++)
        body[i] = (char)(i % 32 == 8 || i % 32 == 9 || i % 32 == 10 || i % 32 == 12 ||
                         i % 32 == 13 ? 1 : i % 32);
    envelope m = { .id = S("1-0"), .room = S("r"), .sender = S("s"), .sender_name = S(""), .body = body,
                   .body_len = sizeof body };
    char *out = message(&m);
    const char *b = strstr(out, "\"body\":\"");
    assert_non_null(b);
    assert_memory_equal(b, "\"body\":\"\\u0000\\u0001\\u0002", 26);
    assert_non_null(strstr(out, "\\u001F"));
    assert_int_equal(history_json_message(&m, NULL) - strlen("{\"id\":\"1-0\",\"room\":\"r\","
        "\"seq\":0,\"sender\":\"s\",\"sender_name\":\"\",\"content_type\":null,\"timestamp\":0,"
        "\"body\":\"\"}"), 6 * sizeof body);
    free(out);
}

static void test_fields_in_order_and_escapes(void **state)
{
    (void)state;
    char body[] = "a\"b\\c/d\n\x7f\xc3\xa9";
    char headers[] = "sender-role:instructor\nx-note:a\\cb\\nc\nx-note:second\n\xff:bad\nnocolon\n"
                     "x-bin:\xff\xc3\n";
    envelope m = { .id = S("17-3"), .room = S("physics"), .seq = 41, .ts_ms = 1795337242974,
                   .sender = S("alice"), .sender_name = S("Al\xe9"), .content_type = S("text/plain"),
                   .body = body, .body_len = sizeof body - 1, .headers = headers,
                   .headers_len = sizeof headers - 1 };
    char *out = message(&m);
    assert_string_equal(out,
        "{\"id\":\"17-3\",\"room\":\"physics\",\"seq\":41,\"sender\":\"alice\","
        "\"sender_name\":\"Al\xef\xbf\xbd\",\"content_type\":\"text/plain\","
        "\"timestamp\":1795337242974,\"body\":\"a\\\"b\\\\c/d\\n\x7f\xc3\xa9\","
        "\"sender_role\":\"instructor\",\"headers\":{\"x-note\":\"a:b\\nc\","
        "\"x-bin\":\"\xef\xbf\xbd\xef\xbf\xbd\"}}");
    free(out);
}

static void test_binary_body_is_base64(void **state)
{
    (void)state;
    static const struct { const char *in; size_t n; const char *b64; } cases[] = {
        { "\xff", 1, "/w==" }, { "\xff\x00", 2, "/wA=" }, { "\xff\x00\x01", 3, "/wAB" },
        { "\xfe\xff\x00\x01", 4, "/v8AAQ==" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        envelope m = { .id = S("1-0"), .room = S("r"), .body = (void *)(uintptr_t)cases[i].in,
                       .body_len = cases[i].n };
        char *out = message(&m);
        char want[64];
        snprintf(want, sizeof want, "\"body_base64\":\"%s\"}", cases[i].b64);
        assert_non_null(strstr(out, want));
        assert_null(strstr(out, "\"body\""));
        free(out);
    }
}

static void test_empty_page_and_error(void **state)
{
    (void)state;
    size_t len;
    char *out = page("lobby", NULL, 0, false, &len);
    assert_string_equal(out, "{\"room\":\"lobby\",\"messages\":[],\"more\":false,\"before\":null,"
                             "\"after\":null}");
    free(out);
    char err[128];
    size_t n = history_json_error("MySQL: \"gone\" \xff", NULL);
    assert_true(n < sizeof err);
    assert_int_equal(history_json_error("MySQL: \"gone\" \xff", err), n);
    err[n] = '\0';
    assert_string_equal(err, "{\"error\":\"MySQL: \\\"gone\\\" \xef\xbf\xbd\"}");
}

static void test_many_repeated_header_names_first_wins(void **state)
{
    (void)state;
    buf h;
    buf_init(&h);
    for (int i = 0; i < 5000; i++)
        buf_printf(&h, "x-%d:%d\n", i % 50, i);
    envelope m = { .id = S("1-0"), .room = S("r"), .headers = h.data, .headers_len = h.len };
    char *out = message(&m);
    assert_non_null(strstr(out, "\"x-0\":\"0\",\"x-1\":\"1\""));
    assert_non_null(strstr(out, "\"x-49\":\"49\"}}"));
    assert_null(strstr(out, "\"50\""));
    free(out);
    buf_deinit(&h);
}

/* A redacted message's tombstone gets "redacted" after its headers; the
 * redaction event (x-redacts) and headers that only look alike do not. */
static void test_tombstone_is_marked_redacted(void **state)
{
    (void)state;
    char tomb[] = "x-redacted-by:prof\\cx\nx-redacted-at:1795337300010\n";
    envelope m = { .id = S("17-3"), .room = S("physics"), .seq = 41, .ts_ms = 5,
                   .sender = S("alice"), .sender_name = S("Alice"), .headers = tomb,
                   .headers_len = sizeof tomb - 1 };
    char *out = message(&m);
    assert_string_equal(out,
        "{\"id\":\"17-3\",\"room\":\"physics\",\"seq\":41,\"sender\":\"alice\","
        "\"sender_name\":\"Alice\",\"content_type\":null,\"timestamp\":5,\"body\":\"\","
        "\"headers\":{\"x-redacted-by\":\"prof:x\",\"x-redacted-at\":\"1795337300010\"},"
        "\"redacted\":{\"by\":\"prof:x\",\"at\":1795337300010}}");
    assert_int_equal(history_json_message(&m, NULL), strlen(out));
    free(out);
    static const char *const not_tombs[] = {
        "x-redacts:1-0\nx-redacted-by:prof\nx-redacted-at:7\n",   /* the event */
        "x-redacted-by:prof\n",                                     /* no at */
        "x-redacted-by:prof\nx-redacted-at:12a\n",                 /* at not a number */
        "x-redacted-by:prof\nx-redacted-at:\n",
        "x-redacted-by:prof\nx-redacted-at:123456789012345678901\n",
    };
    for (size_t i = 0; i < sizeof not_tombs / sizeof not_tombs[0]; i++) {
        envelope e = { .id = S("1-0"), .room = S("r"), .headers = (char *)(uintptr_t)not_tombs[i],
                       .headers_len = strlen(not_tombs[i]) };
        out = message(&e);
        assert_null(strstr(out, "\"redacted\""));
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_pages_print_as_jansson_did),
        cmocka_unit_test(test_control_characters_grow_sixfold),
        cmocka_unit_test(test_fields_in_order_and_escapes),
        cmocka_unit_test(test_binary_body_is_base64),
        cmocka_unit_test(test_empty_page_and_error),
        cmocka_unit_test(test_many_repeated_header_names_first_wins),
        cmocka_unit_test(test_tombstone_is_marked_redacted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
