/* test_redact.c — the pure parts of redact.c: the tombstone's and the
 * redaction event's header lines, the mark kept in Redis, and reading
 * (by, at) back from either. The header lines must be exactly what
 * server/lua/log_range.lua writes for a tombstone read from the log, so
 * that both stores hand out the same bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "redact.h"

static char *lines(void (*fill)(buf *))
{
    buf b;
    buf_init(&b);
    fill(&b);
    size_t n;
    char *s = buf_detach(&b, &n);
    return s ? s : calloc(1, 1);
}

static void tomb_plain(buf *b) { redact_tombstone_headers(b, "system", 1795337300010ULL); }
static void tomb_escaped(buf *b) { redact_tombstone_headers(b, "a:b\\c", 0); }
static void event(buf *b) { redact_event_headers(b, "17-3", "prof", 42); }

static void test_header_lines(void **state)
{
    (void)state;
    char *s = lines(tomb_plain);
    assert_string_equal(s, "x-redacted-by:system\nx-redacted-at:1795337300010\n");
    free(s);
    /* STOMP 1.2 escapes, as log_range.lua's: ':' -> \c, '\' -> \\. */
    s = lines(tomb_escaped);
    assert_string_equal(s, "x-redacted-by:a\\cb\\\\c\nx-redacted-at:0\n");
    free(s);
    s = lines(event);
    assert_string_equal(s, "x-redacts:17-3\nx-redacted-by:prof\nx-redacted-at:42\n");
    free(s);
}

static void test_parse_headers_round_trip(void **state)
{
    (void)state;
    char by[129];
    uint64_t at = 0;
    char *s = lines(tomb_escaped);
    assert_true(redact_parse_headers(s, strlen(s), by, sizeof by, &at));
    assert_string_equal(by, "a:b\\c");
    assert_int_equal(at, 0);
    free(s);
    s = lines(event);
    assert_true(redact_parse_headers(s, strlen(s), by, sizeof by, &at));
    assert_string_equal(by, "prof");
    assert_int_equal(at, 42);
    free(s);
    /* by is cut to the buffer, NUL-terminated. */
    char small[4];
    const char *h = "x-redacted-by:abcdefgh\nx-redacted-at:9\n";
    assert_true(redact_parse_headers(h, strlen(h), small, sizeof small, &at));
    assert_string_equal(small, "abc");
    static const char *const bad[] = {
        "", "x-redacted-by:a\n", "x-redacted-at:5\n", "x-redacted-by:a\nx-redacted-at:5x\n",
        "x-redacted-by:a\nx-redacted-at:\n", "sender-role:x\nbody:y\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(redact_parse_headers(bad[i], strlen(bad[i]), by, sizeof by, &at));
}

static void test_mark_round_trip(void **state)
{
    (void)state;
    char *m = redact_mark_json("prof \"x\"", 1795337300010ULL);
    assert_string_equal(m, "{\"by\":\"prof \\\"x\\\"\",\"at\":1795337300010}");
    char by[129];
    uint64_t at = 0;
    assert_true(redact_parse_mark(m, strlen(m), by, sizeof by, &at));
    assert_string_equal(by, "prof \"x\"");
    assert_int_equal(at, 1795337300010ULL);
    free(m);
    static const char *const bad[] = { "", "[]", "{\"by\":\"a\"}", "{\"at\":1}",
                                       "{\"by\":1,\"at\":1}", "{\"by\":\"a\",\"at\":-1}",
                                       "{\"by\":\"a\",\"at\":\"1\"}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(redact_parse_mark(bad[i], strlen(bad[i]), by, sizeof by, &at));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_lines),
        cmocka_unit_test(test_parse_headers_round_trip),
        cmocka_unit_test(test_mark_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
