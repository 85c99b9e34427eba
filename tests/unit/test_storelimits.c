/* test_storelimits.c — the message store's limits and the server's check
 * of a SEND against them (lib/storelimits.c, server/relay.c), and the sizes
 * the bus relies on to pick an encoding (lib/envelope.c, lib/envbatch.c).
 *
 * The server counts a SEND's stored bytes without building its envelope;
 * these tests build the envelope the way relay_publish does and require
 * the counts to be equal, field by field, for table-driven frames (escapes,
 * reserved headers, roles) and for thousands of random ones. Every limit
 * is tried at its value and one byte past it. The AMQP header size is
 * compared with rabbitmq-c's own encoding of the same properties. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <uv.h>

#include "buf.h"
#include "envbatch.h"
#include "envelope.h"
#include "mem.h"
#include "relay.h"
#include "stomp.h"
#include "storelimits.h"

/* --- the table ---------------------------------------------------------------------- */

static void test_table_matches_defines(void **state)
{
    (void)state;
    static const size_t want[STORELIMITS_NFIELDS + 1] = {
        STORELIMITS_ROOM_MAX, STORELIMITS_SENDER_MAX, STORELIMITS_SENDER_NAME_MAX,
        STORELIMITS_CONTENT_TYPE_MAX, STORELIMITS_HEADERS_MAX, STORELIMITS_BODY_MAX,
        STORELIMITS_ORIGIN_MAX, STORELIMITS_ROW_MAX,
    };
    for (int i = 0; i <= STORELIMITS_ROW; i++) {
        assert_int_equal(storelimits_table[i].max, want[i]);
        assert_non_null(storelimits_table[i].what);
        assert_true(i == STORELIMITS_ROW || storelimits_table[i].column[0]);
    }
    /* The identities the server admits fit their columns (jwt.c, session.c: 128). */
    assert_true(STORELIMITS_SENDER_MAX >= 128 && STORELIMITS_SENDER_NAME_MAX >= 128);
    /* Room names: stomp.max_room_name allows up to the column. */
    assert_int_equal(STORELIMITS_ROOM_MAX, 255);
}

static storelimits_sizes small(void)
{
    storelimits_sizes s = { { 0 } };
    s.v[STORELIMITS_ROOM] = 5;
    s.v[STORELIMITS_SENDER] = 3;
    s.v[STORELIMITS_ORIGIN] = 8;
    return s;
}

/* Each column-bound field at its limit fits; one byte past is that field. */
static void test_each_field_at_and_past_its_limit(void **state)
{
    (void)state;
    for (int f = 0; f < STORELIMITS_NFIELDS; f++) {
        storelimits_sizes s = small();
        size_t max = storelimits_table[f].max;
        s.v[f] = 0;
        size_t others = storelimits_row(&s);
        if (max + others <= STORELIMITS_ROW_MAX) {
            s.v[f] = max;
            assert_int_equal(storelimits_check(&s), -1);
        } else {
            /* headers and body: the row binds first */
            s.v[f] = STORELIMITS_ROW_MAX - others;
            assert_int_equal(storelimits_check(&s), -1);
            s.v[f]++;
            assert_int_equal(storelimits_check(&s), STORELIMITS_ROW);
            s.v[f] = max;
            assert_int_equal(storelimits_check(&s), STORELIMITS_ROW);
        }
        s.v[f] = max + 1;
        assert_int_equal(storelimits_check(&s), f);     /* the field, not the row */
    }
}

static void test_row_at_and_past_its_limit(void **state)
{
    (void)state;
    storelimits_sizes s = small();
    s.v[STORELIMITS_CONTENT_TYPE] = STORELIMITS_CONTENT_TYPE_MAX;
    s.v[STORELIMITS_HEADERS] = 70000;
    s.v[STORELIMITS_BODY] = 0;
    s.v[STORELIMITS_BODY] = STORELIMITS_ROW_MAX - storelimits_row(&s);
    assert_int_equal(storelimits_row(&s), STORELIMITS_ROW_MAX);
    assert_int_equal(storelimits_check(&s), -1);
    s.v[STORELIMITS_HEADERS]++;
    assert_int_equal(storelimits_check(&s), STORELIMITS_ROW);
}

static void test_explain_names_field_size_and_limit(void **state)
{
    (void)state;
    char out[300];
    storelimits_sizes s = small();
    s.v[STORELIMITS_CONTENT_TYPE] = 1025;
    storelimits_explain(&s, storelimits_check(&s), out, sizeof out);
    assert_non_null(strstr(out, "content-type"));
    assert_non_null(strstr(out, "1025 bytes"));
    assert_non_null(strstr(out, "at most 1024"));
    assert_non_null(strstr(out, "messages.content_type"));

    s = small();
    s.v[STORELIMITS_BODY] = STORELIMITS_ROW_MAX;
    storelimits_explain(&s, storelimits_check(&s), out, sizeof out);
    char want[64];
    snprintf(want, sizeof want, "%zu bytes", storelimits_row(&s));
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof want, "at most %d bytes", STORELIMITS_ROW_MAX);
    assert_non_null(strstr(out, want));

    char tiny[8];
    storelimits_explain(&s, STORELIMITS_ROW, tiny, sizeof tiny);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);     /* truncated, terminated */
}

static void test_envelope_sizes(void **state)
{
    (void)state;
    char rname[] = "r", id[] = "1-1", sender[] = "ab", origin[] = "srv", ct[] = "text/x";
    char headers[] = "a:b\n";
    char body[] = { 'x', '\0', 'y' };
    envelope e = { .room = rname, .id = id, .sender = sender, .sender_name = NULL,
                   .origin = origin, .content_type = ct, .headers = headers,
                   .headers_len = 4, .body = body, .body_len = 3 };
    storelimits_sizes s;
    storelimits_of_envelope(&e, &s);
    size_t want[STORELIMITS_NFIELDS] = { 1, 2, 0, 6, 4, 3, 3 };
    for (int i = 0; i < STORELIMITS_NFIELDS; i++)
        assert_int_equal(s.v[i], want[i]);
    e.headers = NULL;           /* absent headers count nothing, whatever the length says */
    storelimits_of_envelope(&e, &s);
    assert_int_equal(s.v[STORELIMITS_HEADERS], 0);
}

/* --- the server's count of a SEND equals the envelope it publishes ------------------ */

/* A frame over caller storage: headers given as name/value pairs (already
 * decoded, as the parser hands them out). */
typedef struct frame_spec {
    const char *role;
    size_t n;
    const char *names[8];
    const char *values[8];
    const char *body;
    size_t body_len;
} frame_spec;

static void frame_of(const frame_spec *sp, stomp_header *h, stomp_frame *f)
{
    for (size_t i = 0; i < sp->n; i++) {
        h[i].name = (stomp_str){ sp->names[i], strlen(sp->names[i]) };
        h[i].value = (stomp_str){ sp->values[i], strlen(sp->values[i]) };
    }
    *f = (stomp_frame){ .command = STOMP_CMD_SEND, .headers = h, .nheaders = sp->n,
                        .body = { sp->body ? sp->body : "", sp->body_len } };
}

/* relay_send_sizes == the sizes of relay_envelope_of_send's envelope. */
static void assert_counts_match(const stomp_frame *f, const char *role)
{
    static const stomp_str rn = { "lecture.101", 11 };
    envelope env;
    storelimits_sizes built, counted;
    relay_envelope_of_send(&env, &rn, f, "user-1", "Ada", role, "server-a");
    storelimits_of_envelope(&env, &built);
    relay_send_sizes(&rn, f, "user-1", "Ada", role, "server-a", &counted);
    for (int i = 0; i < STORELIMITS_NFIELDS; i++) {
        if (built.v[i] != counted.v[i])
            fail_msg("field %s: envelope %zu, counted %zu", storelimits_table[i].column,
                     built.v[i], counted.v[i]);
    }
    envelope_free(&env);
}

static void test_send_sizes_table(void **state)
{
    (void)state;
    static const frame_spec cases[] = {
        { NULL, 0, { 0 }, { 0 }, NULL, 0 },
        { "student", 0, { 0 }, { 0 }, "hi", 2 },
        { "instructor", 3, { "destination", "content-type", "x-a" },
          { "/topic/lecture.101", "text/plain; a=b", "1" }, "body", 4 },
        /* every escapable byte, in names and values */
        { "admin", 2, { "x-esc:name\\", "x-nl" }, { "a:b\\c\nd\re", "\n\n" }, "x", 1 },
        /* reserved names never reach the stored lines, whatever their case */
        { "student", 8, { "receipt", "content-length", "transaction", "sender", "Sender-Name",
                          "SENDER-ROLE", "x-lectern-room", "message-id" },
          { "r", "4", "t", "forged", "forged", "admin", "other", "m" }, "body", 4 },
        /* a repeated content-type: the first one counts */
        { "student", 3, { "content-type", "content-type", "x-b" }, { "a/b", "c/dddd", "v" },
          NULL, 0 },
        /* a body with NULs */
        { "student", 1, { "x-c" }, { "" }, "a\0b\0", 4 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        stomp_header h[8];
        stomp_frame f;
        frame_of(&cases[i], h, &f);
        assert_counts_match(&f, cases[i].role);
    }
}

/* Random frames: names and values from an alphabet rich in escapes. */
static void test_send_sizes_random(void **state)
{
    (void)state;
    static const char alphabet[] = "ab:\\\n\rc-xX";
    static const char *const names[] = { "content-type", "receipt", "sender", "x-lectern-a",
                                         "destination", "transaction" };
    static const char *const roles[] = { NULL, "student", "instructor", "a:b\\c" };
    char pool[16][64];
    srand(20261204);
    for (int round = 0; round < 5000; round++) {
        stomp_header h[16];
        size_t n = (size_t)(rand() % 16);
        for (size_t i = 0; i < n; i++) {
            size_t nl = 1 + (size_t)(rand() % 12), vl = (size_t)(rand() % 40);
            if (rand() % 4 == 0) {
                const char *fixed = names[rand() % 6];
                h[i].name = (stomp_str){ fixed, strlen(fixed) };
            } else {
                for (size_t k = 0; k < nl; k++)
                    pool[i][k] = alphabet[rand() % (int)(sizeof alphabet - 1)];
                h[i].name = (stomp_str){ pool[i], nl };
            }
            char *v = pool[i] + 16;
            for (size_t k = 0; k < vl; k++)
                v[k] = alphabet[rand() % (int)(sizeof alphabet - 1)];
            h[i].value = (stomp_str){ v, vl };
        }
        stomp_frame f = { .command = STOMP_CMD_SEND, .headers = h, .nheaders = n,
                          .body = { "body", (size_t)(rand() % 5) } };
        assert_counts_match(&f, roles[rand() % 4]);
    }
}

/* relay_check_send: at the limit 0, one byte past -1 with the reason. */
static void test_check_send_at_and_past(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    relay_config rc = { .server_id = "server-a", .gap_timeout_ms = 200, .catchup_max = 10,
                        .pull_ms = 1000 };
    relay *r = relay_create(&loop, NULL, NULL, &rc);
    static const stomp_str rn = { "lecture.101", 11 };
    char why[400];

    char *ct = xmalloc(STORELIMITS_CONTENT_TYPE_MAX + 2);
    memset(ct, 'c', STORELIMITS_CONTENT_TYPE_MAX + 1);
    ct[STORELIMITS_CONTENT_TYPE_MAX + 1] = '\0';
    stomp_header h[1] = { { { "content-type", 12 }, { ct, STORELIMITS_CONTENT_TYPE_MAX } } };
    stomp_frame f = { .command = STOMP_CMD_SEND, .headers = h, .nheaders = 1, .body = { "", 0 } };
    assert_int_equal(relay_check_send(r, &rn, &f, "u", "U", "student", why, sizeof why), 0);
    h[0].value.len++;
    assert_int_equal(relay_check_send(r, &rn, &f, "u", "U", "student", why, sizeof why), -1);
    assert_non_null(strstr(why, "content-type header is 1025 bytes"));
    assert_non_null(strstr(why, "not delivered or stored"));

    /* the whole row, filled by the body: "sender-role:student\n" is 20 bytes */
    size_t fixed = rn.len + 1 + 1 + 20 + strlen("server-a");
    size_t blen = STORELIMITS_ROW_MAX - fixed;
    char *body = xcalloc(1, blen + 1);
    stomp_frame g = { .command = STOMP_CMD_SEND, .headers = NULL, .nheaders = 0,
                      .body = { body, blen } };
    assert_int_equal(relay_check_send(r, &rn, &g, "u", "U", "student", why, sizeof why), 0);
    g.body.len++;
    assert_int_equal(relay_check_send(r, &rn, &g, "u", "U", "student", why, sizeof why), -1);
    char want[80];
    snprintf(want, sizeof want, "would be %d bytes", STORELIMITS_ROW_MAX + 1);
    assert_non_null(strstr(why, want));
    /* a longer role is a longer sender-role line: one byte more */
    g.body.len--;
    assert_int_equal(relay_check_send(r, &rn, &g, "u", "U", "studentx", why, sizeof why), -1);

    free(body);
    free(ct);
    relay_destroy(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* --- the bus's encodings ------------------------------------------------------------ */

/* envelope_amqp_header_size is the frame rabbitmq-c would build. */
static void test_amqp_header_size_is_exact(void **state)
{
    (void)state;
    char rname[] = "lecture.101", id[] = "1700000000000-7", sender[] = "u-17", name[] = "Ada",
         origin[] = "server-a";
    size_t sizes[] = { 0, 1, 100, 255 };
    size_t hsizes[] = { 0, 1, 1000, 70000 };
    amqp_bytes_t out = { 200000, xmalloc(200000) };
    for (size_t a = 0; a < 4; a++) {
        for (size_t b = 0; b < 4; b++) {
            char *ct = a ? xcalloc(1, sizes[a] + 1) : NULL;
            if (ct)
                memset(ct, 't', sizes[a]);
            char *hl = b ? xcalloc(1, hsizes[b] + 1) : NULL;
            if (hl)
                memset(hl, 'h', hsizes[b]);
            envelope e = { .room = rname, .id = id, .sender = sender, .sender_name = name,
                           .origin = origin, .content_type = ct, .headers = hl,
                           .headers_len = hl ? hsizes[b] : 0 };
            amqp_basic_properties_t props;
            amqp_table_entry_t entries[ENVELOPE_MAX_ENTRIES];
            envelope_to_amqp(&e, &props, entries);
            props._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
            props.delivery_mode = 2;
            int len = amqp_encode_properties(AMQP_BASIC_CLASS, &props, out);
            assert_true(len > 0);
            /* frame header 7, class + weight + body size 12, frame end 1 */
            assert_int_equal(envelope_amqp_header_size(&e), (size_t)len + 7 + 12 + 1);
            size_t need = envelope_amqp_header_size(&e);
            assert_true(envelope_fits_amqp(&e, need));
            assert_false(envelope_fits_amqp(&e, need - 1));
            assert_true(envelope_fits_amqp(&e, 0));
            free(ct);
            free(hl);
        }
    }
    free(out.bytes);
}

static void test_amqp_short_strings(void **state)
{
    (void)state;
    char rname[] = "r", id[] = "1-1", origin[] = "s", ct[300];
    memset(ct, 'c', sizeof ct - 1);
    ct[255] = '\0';
    envelope e = { .room = rname, .id = id, .origin = origin, .content_type = ct };
    assert_true(envelope_fits_amqp(&e, 131072));
    ct[255] = 'c';
    ct[256] = '\0';
    assert_false(envelope_fits_amqp(&e, 131072));     /* a shortstr holds 255 bytes */
    assert_false(envelope_fits_amqp(&e, 0));
}

static void test_batch_record_size(void **state)
{
    (void)state;
    char rname[] = "lecture.101", id[] = "1-2", sender[] = "u", origin[] = "srv", ct[] = "a/b";
    char hl[] = "x:y\n", body[] = { 'a', '\0', 'b' };
    envelope full = { .room = rname, .id = id, .sender = sender, .sender_name = NULL,
                      .origin = origin, .content_type = ct, .headers = hl, .headers_len = 4,
                      .body = body, .body_len = 3 };
    envelope bare = { .room = rname, .id = id, .origin = origin };
    const envelope *both[2] = { &full, &bare };
    buf b;
    buf_init(&b);
    envbatch_encode(&b, both, 2);
    assert_int_equal(b.len, 8 + envbatch_record_size(&full) + envbatch_record_size(&bare));
    buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_matches_defines),
        cmocka_unit_test(test_each_field_at_and_past_its_limit),
        cmocka_unit_test(test_row_at_and_past_its_limit),
        cmocka_unit_test(test_explain_names_field_size_and_limit),
        cmocka_unit_test(test_envelope_sizes),
        cmocka_unit_test(test_send_sizes_table),
        cmocka_unit_test(test_send_sizes_random),
        cmocka_unit_test(test_check_send_at_and_past),
        cmocka_unit_test(test_amqp_header_size_is_exact),
        cmocka_unit_test(test_amqp_short_strings),
        cmocka_unit_test(test_batch_record_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
