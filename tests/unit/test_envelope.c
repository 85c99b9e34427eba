/* test_envelope.c — lib/envelope.c: a room message <-> AMQP properties.
 *
 * Round trips go both directly (envelope_to_amqp -> envelope_from_amqp) and
 * through the wire encoding of rabbitmq-c (amqp_encode_properties /
 * amqp_decode_properties), so the headers table is known to survive the
 * broker's framing. Malformed input is table-driven: one valid message, one
 * header removed or retyped per case, each with the reason it must give. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

static const char binary_body[] = { 'a', '\0', 'b', '\0', '\0', (char)0xff, '\n', 'z' };
static const char header_lines[] = "x-custom:1\nfoo:bar\\cbaz\n";

/* envelope fields are `char *`: give them writable storage */
static char s_room[] = "lecture.101", s_id[] = "1700000000000-7", s_sender[] = "u-17",
            s_sender_name[] = "Ada Lovelace", s_origin[] = "server-a",
            s_ctype[] = "application/octet-stream", s_empty[] = "";

static envelope sample(void)
{
    envelope e = {
        .room = s_room,
        .id = s_id,
        .seq = 42,
        .epoch = 1700000000123456ULL,
        .ts_ms = 1700000000999ULL,
        .sender = s_sender,
        .sender_name = s_sender_name,
        .origin = s_origin,
        .content_type = s_ctype,
        .headers = (char *)header_lines,
        .headers_len = sizeof header_lines - 1,
        .body = (void *)binary_body,
        .body_len = sizeof binary_body,
    };
    return e;
}

static void assert_str_or_null(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_env_equal(const envelope *a, const envelope *b)
{
    assert_str_or_null(a->room, b->room);
    assert_str_or_null(a->id, b->id);
    assert_true(a->seq == b->seq);
    assert_true(a->epoch == b->epoch);
    assert_true(a->ts_ms == b->ts_ms);
    assert_str_or_null(a->sender, b->sender);
    assert_str_or_null(a->sender_name, b->sender_name);
    assert_str_or_null(a->origin, b->origin);
    assert_str_or_null(a->content_type, b->content_type);
    assert_int_equal(a->headers_len, b->headers_len);
    if (a->headers_len)
        assert_memory_equal(a->headers, b->headers, a->headers_len);
    else
        assert_null(b->headers);
    assert_int_equal(a->body_len, b->body_len);
    if (a->body_len)
        assert_memory_equal(a->body, b->body, a->body_len);
    else
        assert_null(b->body);
}

/* Encode props to the wire format and decode them back (pool-owned). */
static void wire(const amqp_basic_properties_t *in, amqp_basic_properties_t *out,
                 amqp_pool_t *pool)
{
    static char space[65536];
    amqp_bytes_t enc = { sizeof space, space };
    int n = amqp_encode_properties(AMQP_BASIC_CLASS, (void *)in, enc);
    assert_true(n > 0);
    enc.len = (size_t)n;
    void *decoded = NULL;
    assert_int_equal(amqp_decode_properties(AMQP_BASIC_CLASS, pool, enc, &decoded), 0);
    *out = *(amqp_basic_properties_t *)decoded;
}

static void test_round_trip_every_field(void **state)
{
    (void)state;
    envelope in = sample(), out;
    amqp_basic_properties_t props;
    amqp_table_entry_t entries[ENVELOPE_MAX_ENTRIES];
    const char *why = "unset";

    envelope_to_amqp(&in, &props, entries);
    amqp_bytes_t body = { in.body_len, in.body };
    assert_int_equal(envelope_from_amqp(&props, body, &out, &why), 0);
    assert_null(why);
    assert_env_equal(&in, &out);
    assert_ptr_not_equal(out.body, in.body);       /* a copy, owned by out */
    envelope_free(&out);
}

static void test_round_trip_through_wire(void **state)
{
    (void)state;
    envelope in = sample(), out;
    amqp_basic_properties_t props, got;
    amqp_table_entry_t entries[ENVELOPE_MAX_ENTRIES];
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);

    envelope_to_amqp(&in, &props, entries);
    wire(&props, &got, &pool);
    amqp_bytes_t body = { in.body_len, in.body };
    assert_int_equal(envelope_from_amqp(&got, body, &out, NULL), 0);
    assert_env_equal(&in, &out);
    envelope_free(&out);
    empty_amqp_pool(&pool);
}

static void test_basic_properties(void **state)
{
    (void)state;
    envelope in = sample();
    amqp_basic_properties_t props;
    amqp_table_entry_t entries[ENVELOPE_MAX_ENTRIES];

    envelope_to_amqp(&in, &props, entries);
    assert_true(props._flags & AMQP_BASIC_CONTENT_TYPE_FLAG);
    assert_true(props._flags & AMQP_BASIC_MESSAGE_ID_FLAG);
    assert_true(props._flags & AMQP_BASIC_TIMESTAMP_FLAG);
    assert_true(props._flags & AMQP_BASIC_APP_ID_FLAG);
    assert_true(props._flags & AMQP_BASIC_HEADERS_FLAG);
    assert_int_equal(props.message_id.len, strlen(in.id));
    assert_memory_equal(props.message_id.bytes, in.id, strlen(in.id));
    assert_int_equal(props.app_id.len, 7);
    assert_memory_equal(props.app_id.bytes, "lectern", 7);
    assert_true(props.timestamp == in.ts_ms / 1000);
    assert_int_equal(props.headers.num_entries, 9);
    for (int i = 0; i < props.headers.num_entries; i++) {
        const amqp_table_entry_t *e = &props.headers.entries[i];
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)e->key.len, (const char *)e->key.bytes);
        if (!strcmp(key, "x-lectern-seq") || !strcmp(key, "x-lectern-epoch") ||
            !strcmp(key, "x-lectern-ts"))
            assert_int_equal(e->value.kind, AMQP_FIELD_KIND_I64);
        else if (!strcmp(key, "x-lectern-headers"))
            assert_int_equal(e->value.kind, AMQP_FIELD_KIND_BYTES);
        else
            assert_int_equal(e->value.kind, AMQP_FIELD_KIND_UTF8);
    }
}

static void test_null_content_type_headers_and_empty_body(void **state)
{
    (void)state;
    envelope in = sample(), out;
    in.content_type = NULL;
    in.headers = NULL;
    in.headers_len = 0;
    in.body = NULL;
    in.body_len = 0;
    in.sender = s_empty;
    in.sender_name = s_empty;
    amqp_basic_properties_t props, got;
    amqp_table_entry_t entries[ENVELOPE_MAX_ENTRIES];
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);

    envelope_to_amqp(&in, &props, entries);
    assert_false(props._flags & AMQP_BASIC_CONTENT_TYPE_FLAG);
    assert_int_equal(props.headers.num_entries, 8);    /* no x-lectern-headers */
    wire(&props, &got, &pool);
    assert_int_equal(envelope_from_amqp(&got, amqp_empty_bytes, &out, NULL), 0);
    assert_null(out.content_type);
    assert_null(out.headers);
    assert_int_equal(out.headers_len, 0);
    assert_null(out.body);
    assert_int_equal(out.body_len, 0);
    assert_string_equal(out.sender, "");
    assert_string_equal(out.sender_name, "");
    assert_env_equal(&in, &out);
    envelope_free(&out);

    /* an empty (not absent) content type stays empty */
    in.content_type = s_empty;
    envelope_to_amqp(&in, &props, entries);
    assert_int_equal(envelope_from_amqp(&props, amqp_empty_bytes, &out, NULL), 0);
    assert_non_null(out.content_type);
    assert_string_equal(out.content_type, "");
    envelope_free(&out);
    empty_amqp_pool(&pool);
}

static void test_large_numbers_survive(void **state)
{
    (void)state;
    envelope in = sample(), out;
    in.seq = UINT64_MAX;
    in.epoch = (uint64_t)INT64_MAX + 1;
    in.ts_ms = 0;
    amqp_basic_properties_t props, got;
    amqp_table_entry_t entries[ENVELOPE_MAX_ENTRIES];
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);

    envelope_to_amqp(&in, &props, entries);
    wire(&props, &got, &pool);
    amqp_bytes_t body = { in.body_len, in.body };
    assert_int_equal(envelope_from_amqp(&got, body, &out, NULL), 0);
    assert_true(out.seq == UINT64_MAX);
    assert_true(out.epoch == (uint64_t)INT64_MAX + 1);
    assert_true(out.ts_ms == 0);
    envelope_free(&out);
    empty_amqp_pool(&pool);
}

/* --- malformed input ----------------------------------------------------- */

enum { DROP, AS_I64, AS_I32, AS_STR, AS_BOOL, AS_BYTES };

typedef struct bad_case {
    const char *key;
    int change;
    const char *str;       /* AS_STR / AS_BYTES value (may hold a NUL: len below) */
    size_t len;
    int64_t num;           /* AS_I64 / AS_I32 */
    const char *why;       /* NULL: must decode */
} bad_case;

static const bad_case bad_cases[] = {
    { "x-lectern-room", DROP, NULL, 0, 0, "missing x-lectern-room" },
    { "x-lectern-room", AS_STR, "", 0, 0, "missing x-lectern-room" },
    { "x-lectern-room", AS_I64, NULL, 0, 5, "x-lectern-room is not a NUL-free string" },
    { "x-lectern-room", AS_STR, "a\0b", 3, 0, "x-lectern-room is not a NUL-free string" },
    { "x-lectern-origin", DROP, NULL, 0, 0, "missing x-lectern-origin" },
    { "x-lectern-origin", AS_BOOL, NULL, 0, 0, "x-lectern-origin is not a NUL-free string" },
    { "x-lectern-id", AS_I64, NULL, 0, 1, "x-lectern-id is not a NUL-free string" },
    { "x-lectern-seq", AS_STR, "42", 2, 0, "x-lectern-seq is not an integer" },
    { "x-lectern-seq", AS_I32, NULL, 0, -1, "x-lectern-seq is not an integer" },
    { "x-lectern-epoch", AS_BOOL, NULL, 0, 0, "x-lectern-epoch is not an integer" },
    { "x-lectern-ts", AS_STR, "1", 1, 0, "x-lectern-ts is not an integer" },
    { "x-lectern-sender", AS_I64, NULL, 0, 3, "x-lectern-sender is not a NUL-free string" },
    { "x-lectern-sender-name", AS_I64, NULL, 0, 3,
      "x-lectern-sender-name is not a NUL-free string" },
    { "x-lectern-headers", AS_I64, NULL, 0, 3, "x-lectern-headers is not a byte string" },
    /* accepted variants */
    { "x-lectern-seq", AS_I32, NULL, 0, 42, NULL },
    { "x-lectern-room", AS_BYTES, "lecture.101", 11, 0, NULL },
    { "x-lectern-headers", AS_STR, header_lines, sizeof header_lines - 1, 0, NULL },
    { "x-lectern-sender", DROP, NULL, 0, 0, NULL },
    { "x-lectern-unknown", DROP, NULL, 0, 0, NULL },
};

static void test_malformed_rejected_with_reason(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        envelope in = sample(), out;
        amqp_basic_properties_t props, got;
        amqp_table_entry_t entries[ENVELOPE_MAX_ENTRIES];
        amqp_pool_t pool;
        init_amqp_pool(&pool, 4096);

        envelope_to_amqp(&in, &props, entries);
        int n = props.headers.num_entries;
        for (int k = 0; k < n; k++) {
            amqp_table_entry_t *e = &entries[k];
            if (e->key.len != strlen(c->key) || memcmp(e->key.bytes, c->key, e->key.len))
                continue;
            amqp_field_value_t *v = &e->value;
            switch (c->change) {
            case DROP:
                entries[k] = entries[--n];
                break;
            case AS_I64: v->kind = AMQP_FIELD_KIND_I64; v->value.i64 = c->num; break;
            case AS_I32: v->kind = AMQP_FIELD_KIND_I32; v->value.i32 = (int32_t)c->num; break;
            case AS_BOOL: v->kind = AMQP_FIELD_KIND_BOOLEAN; v->value.boolean = 1; break;
            case AS_STR:
            case AS_BYTES:
                v->kind = c->change == AS_STR ? AMQP_FIELD_KIND_UTF8 : AMQP_FIELD_KIND_BYTES;
                v->value.bytes.bytes = (void *)c->str;
                v->value.bytes.len = c->len;
                break;
            }
            break;
        }
        props.headers.num_entries = n;
        wire(&props, &got, &pool);

        const char *why = "unset";
        amqp_bytes_t body = { in.body_len, in.body };
        int rc = envelope_from_amqp(&got, body, &out, &why);
        if (!c->why) {
            if (rc != 0)
                fail_msg("case %zu (%s): rejected: %s", i, c->key, why);
            assert_null(why);
            assert_string_equal(out.room, "lecture.101");
            if (!strcmp(c->key, "x-lectern-sender"))
                assert_string_equal(out.sender, "");
            if (!strcmp(c->key, "x-lectern-seq"))
                assert_true(out.seq == 42);
            envelope_free(&out);
        } else {
            if (rc != -1)
                fail_msg("case %zu (%s): accepted", i, c->key);
            assert_non_null(why);
            assert_string_equal(why, c->why);
            /* *out is empty */
            assert_null(out.room);
            assert_null(out.id);
            assert_null(out.origin);
            assert_null(out.sender);
            assert_null(out.body);
            assert_null(out.headers);
        }
        empty_amqp_pool(&pool);
    }
}

static void test_no_headers_table(void **state)
{
    (void)state;
    amqp_basic_properties_t props;
    envelope out;
    const char *why = NULL;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_MESSAGE_ID_FLAG;
    props.message_id = amqp_cstring_bytes("1-1");
    assert_int_equal(envelope_from_amqp(&props, amqp_cstring_bytes("hi"), &out, &why), -1);
    assert_string_equal(why, "missing x-lectern-room");
    assert_null(out.id);
    assert_null(out.body);
}

static void test_id_and_ts_fall_back_to_properties(void **state)
{
    (void)state;
    envelope in = sample(), out;
    amqp_basic_properties_t props;
    amqp_table_entry_t entries[ENVELOPE_MAX_ENTRIES];
    envelope_to_amqp(&in, &props, entries);
    int n = props.headers.num_entries;
    for (int k = 0; k < n;) {
        const amqp_bytes_t *key = &entries[k].key;
        if ((key->len == 12 && !memcmp(key->bytes, "x-lectern-id", 12)) ||
            (key->len == 12 && !memcmp(key->bytes, "x-lectern-ts", 12)))
            entries[k] = entries[--n];
        else
            k++;
    }
    props.headers.num_entries = n;
    assert_int_equal(envelope_from_amqp(&props, amqp_empty_bytes, &out, NULL), 0);
    assert_string_equal(out.id, in.id);
    assert_true(out.ts_ms == in.ts_ms / 1000 * 1000);
    envelope_free(&out);

    /* without message_id too, the id is missing */
    props._flags &= ~(amqp_flags_t)AMQP_BASIC_MESSAGE_ID_FLAG;
    const char *why = NULL;
    assert_int_equal(envelope_from_amqp(&props, amqp_empty_bytes, &out, &why), -1);
    assert_string_equal(why, "missing x-lectern-id");
}

static void test_copy_and_free(void **state)
{
    (void)state;
    envelope in = sample(), a, b;
    envelope_copy(&a, &in);
    assert_env_equal(&in, &a);
    assert_ptr_not_equal(a.room, in.room);
    assert_ptr_not_equal(a.body, in.body);
    assert_ptr_not_equal(a.headers, in.headers);

    envelope_copy(&b, &a);
    envelope_free(&a);
    assert_null(a.room);
    assert_null(a.body);
    assert_int_equal(a.body_len, 0);
    assert_env_equal(&in, &b);             /* b does not share a's memory */
    envelope_free(&b);

    envelope empty = { 0 };
    envelope_copy(&a, &empty);
    assert_null(a.room);
    assert_null(a.content_type);
    assert_null(a.body);
    envelope_free(&a);
    envelope_free(&a);                     /* an empty one again */
    envelope_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_field),
        cmocka_unit_test(test_round_trip_through_wire),
        cmocka_unit_test(test_basic_properties),
        cmocka_unit_test(test_null_content_type_headers_and_empty_body),
        cmocka_unit_test(test_large_numbers_survive),
        cmocka_unit_test(test_malformed_rejected_with_reason),
        cmocka_unit_test(test_no_headers_table),
        cmocka_unit_test(test_id_and_ts_fall_back_to_properties),
        cmocka_unit_test(test_copy_and_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
