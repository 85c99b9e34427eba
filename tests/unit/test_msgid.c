/* test_msgid.c — message ids (lib/msgid.c): the strict parser that guards
 * history cursors and resume points, the order, the text form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "msgid.h"

static int P(const char *s, msgid *out)
{
    return msgid_parse(s, strlen(s), out);
}

static void test_parse_valid(void **state)
{
    (void)state;
    msgid id;
    assert_int_equal(P("1732272000000-0", &id), 0);
    assert_true(id.ms == 1732272000000ULL && id.n == 0);
    assert_int_equal(P("0-0", &id), 0);
    assert_true(id.ms == 0 && id.n == 0);
    assert_int_equal(P("18446744073709551615-18446744073709551615", &id), 0);
    assert_true(id.ms == UINT64_MAX && id.n == UINT64_MAX);
    assert_int_equal(P("5-17", &id), 0);
    assert_true(id.ms == 5 && id.n == 17);
}

static void test_parse_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "-", "1", "1-", "-1", "1--2", "1-2-3", "01-2", "1-02", "+1-2", "1-+2", " 1-2",
        "1-2 ", "1 -2", "a-1", "1-b", "0x1-2", "18446744073709551616-0",
        "0-18446744073709551616", "99999999999999999999-0", "123456789012345678901-0",
        "1-2\n", "1.5-2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msgid id = { 77, 77 };
        assert_int_equal(P(bad[i], &id), -1);
        assert_true(id.ms == 77 && id.n == 77);     /* untouched */
    }
    msgid id;
    assert_int_equal(msgid_parse("1-2\0", 4, &id), -1);   /* embedded NUL */
}

static void test_order_and_format(void **state)
{
    (void)state;
    msgid a = { 10, 5 }, b = { 10, 6 }, c = { 11, 0 };
    assert_true(msgid_cmp(a, b) < 0);
    assert_true(msgid_cmp(b, c) < 0);
    assert_true(msgid_cmp(c, a) > 0);
    assert_int_equal(msgid_cmp(a, a), 0);

    char out[MSGID_MAX];
    msgid max = { UINT64_MAX, UINT64_MAX };
    size_t n = msgid_format(max, out);
    assert_int_equal(n, strlen("18446744073709551615-18446744073709551615"));
    assert_string_equal(out, "18446744073709551615-18446744073709551615");
    msgid back;
    assert_int_equal(msgid_parse(out, n, &back), 0);
    assert_int_equal(msgid_cmp(back, max), 0);
    msgid_format(a, out);
    assert_string_equal(out, "10-5");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_order_and_format),
    };
    return cmocka_run_group_tests_name("msgid", tests, NULL, NULL);
}
