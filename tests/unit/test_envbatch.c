/* test_envbatch.c — lib/envbatch.c: several room messages in one AMQP body.
 *
 * Round trips of batches of 1..300 envelopes with every field shape (NULL
 * content type, headers and body; binary bodies with NUL; empty strings),
 * the properties that mark a batch, and every way a body can be broken:
 * each truncation point of a valid batch, a wrong magic or count, trailing
 * bytes, a NUL in a text field, a missing required field. A broken batch
 * must be refused as a whole, with a reason and without leaking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envbatch.h"
#include "mem.h"

/* Envelope i of a test batch: fields vary with i. */
static void make(envelope *e, size_t i)
{
    char tmp[64];
    memset(e, 0, sizeof *e);
    snprintf(tmp, sizeof tmp, "room-%zu", i % 3);
    e->room = xstrdup(tmp);
    snprintf(tmp, sizeof tmp, "1700000000000-%zu", i);
    e->id = xstrdup(tmp);
    e->seq = i;
    e->epoch = UINT64_MAX - i;
    e->ts_ms = 1700000000000ULL + i;
    e->sender = xstrdup(i % 4 ? "u-1" : "");
    e->sender_name = xstrdup(i % 5 ? "Ada" : "");
    e->origin = xstrdup("server-a");
    e->content_type = i % 2 ? xstrdup("text/plain") : NULL;
    if (i % 3) {
        e->headers = xstrdup("x-a:1\nx-b:2\n");
        e->headers_len = strlen(e->headers);
    }
    if (i % 7) {
        e->body_len = i % 50 + 1;
        e->body = xmalloc(e->body_len);
        for (size_t k = 0; k < e->body_len; k++)
            ((unsigned char *)e->body)[k] = (unsigned char)(k * 31 + i);   /* NULs included */
    }
}

static void assert_same(const envelope *a, const envelope *b)
{
    assert_string_equal(a->room, b->room);
    assert_string_equal(a->id, b->id);
    assert_int_equal(a->seq, b->seq);
    assert_true(a->epoch == b->epoch);
    assert_true(a->ts_ms == b->ts_ms);
    assert_string_equal(a->sender, b->sender);
    assert_string_equal(a->sender_name, b->sender_name);
    assert_string_equal(a->origin, b->origin);
    if (a->content_type)
        assert_string_equal(a->content_type, b->content_type);
    else
        assert_null(b->content_type);
    assert_int_equal(a->headers_len, b->headers_len);
    if (a->headers_len)
        assert_memory_equal(a->headers, b->headers, a->headers_len);
    assert_int_equal(a->body_len, b->body_len);
    if (a->body_len)
        assert_memory_equal(a->body, b->body, a->body_len);
}

static void encode(buf *out, envelope *envs, size_t n)
{
    const envelope **p = xcalloc(n, sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = &envs[i];
    buf_init(out);
    envbatch_encode(out, p, n);
    free(p);
}

static void test_round_trip(void **state)
{
    (void)state;
    size_t sizes[] = { 1, 2, 7, 64, 300 };
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        envelope *in = xcalloc(n, sizeof *in);
        for (size_t i = 0; i < n; i++)
            make(&in[i], i);
        buf b;
        encode(&b, in, n);
        envelope *out = NULL;
        size_t got = 0;
        const char *why = NULL;
        assert_int_equal(envbatch_decode((amqp_bytes_t){ b.len, b.data }, &out, &got, &why), 0);
        assert_int_equal(got, n);
        for (size_t i = 0; i < n; i++)
            assert_same(&in[i], &out[i]);
        envbatch_free(out, got);
        for (size_t i = 0; i < n; i++)
            envelope_free(&in[i]);
        free(in);
        buf_deinit(&b);
    }
}

static void test_properties(void **state)
{
    (void)state;
    amqp_basic_properties_t props;
    amqp_table_entry_t entry;
    envbatch_to_amqp(&props, &entry, 5);
    assert_true(envbatch_is(&props));
    assert_int_equal(props.headers.num_entries, 1);
    assert_int_equal(entry.value.value.i32, 5);
    /* a single message is not a batch */
    amqp_basic_properties_t single = { 0 };
    assert_false(envbatch_is(&single));
    single._flags = AMQP_BASIC_CONTENT_TYPE_FLAG;
    single.content_type = amqp_cstring_bytes("text/plain");
    assert_false(envbatch_is(&single));
}

static void expect_bad(const void *p, size_t len)
{
    envelope *out = (envelope *)0x1;
    size_t n = 99;
    const char *why = NULL;
    assert_int_equal(envbatch_decode((amqp_bytes_t){ len, (void *)(uintptr_t)p }, &out, &n, &why), -1);
    assert_non_null(why);
    assert_true(strlen(why) > 5);
}

static void test_every_truncation_is_refused(void **state)
{
    (void)state;
    envelope in[3];
    for (size_t i = 0; i < 3; i++)
        make(&in[i], i + 1);
    buf b;
    encode(&b, in, 3);
    for (size_t cut = 0; cut < b.len; cut++)
        expect_bad(b.data, cut);
    /* trailing bytes */
    buf_append(&b, "x", 1);
    expect_bad(b.data, b.len);
    buf_deinit(&b);
    for (size_t i = 0; i < 3; i++)
        envelope_free(&in[i]);
}

static void test_malformed(void **state)
{
    (void)state;
    envelope in[2];
    make(&in[0], 1);
    make(&in[1], 2);
    buf b;
    encode(&b, in, 2);

    char *c = xmalloc(b.len);
    memcpy(c, b.data, b.len);
    c[0] = 'X';                                   /* magic */
    expect_bad(c, b.len);
    memcpy(c, b.data, b.len);
    c[7] = 3;                                     /* count 3, two records */
    expect_bad(c, b.len);
    memcpy(c, b.data, b.len);
    c[7] = 0;                                     /* empty batch */
    expect_bad(c, 8);
    /* a NUL inside the room name of the first record: header 8 bytes,
     * record length 4, three u64 (24), room length 4, then the room */
    memcpy(c, b.data, b.len);
    c[8 + 4 + 24 + 4] = '\0';
    expect_bad(c, b.len);
    /* the room marked absent */
    memcpy(c, b.data, b.len);
    memset(c + 8 + 4 + 24, 0xff, 4);
    expect_bad(c, b.len);
    free(c);
    buf_deinit(&b);
    envelope_free(&in[0]);
    envelope_free(&in[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_properties),
        cmocka_unit_test(test_every_truncation_is_refused),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
