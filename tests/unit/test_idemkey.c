/* test_idemkey.c — the idempotency key rule (server/idemkey.c): 1 to
 * IDEMKEY_MAX bytes of printable ASCII without spaces; every other byte,
 * an empty key and a longer one are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "idemkey.h"

static void test_keys(void **state)
{
    (void)state;
    static const struct { const char *s; int ok; } cases[] = {
        { "k", 1 }, { "0f8fad5b-d9cb-469f-a165-70867728950e", 1 }, { "01ARZ3NDEKTSV4RRFFQ69G5FAV", 1 },
        { "!~", 1 }, { "a:b/c\\d", 1 }, { "", 0 }, { "a b", 0 }, { " a", 0 }, { "a\t", 0 },
        { "a\nb", 0 }, { "a\x7f", 0 }, { "\xc3\xa9", 0 } /* é: not ASCII */, { "\x01", 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(idemkey_valid(cases[i].s, strlen(cases[i].s)), cases[i].ok);
}

static void test_length_and_nul(void **state)
{
    (void)state;
    char k[IDEMKEY_MAX + 2];
    memset(k, 'x', sizeof k);
    assert_true(idemkey_valid(k, IDEMKEY_MAX));
    assert_false(idemkey_valid(k, IDEMKEY_MAX + 1));
    assert_false(idemkey_valid("a\0b", 3));
    assert_false(idemkey_valid(NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_length_and_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
