/* test_apikey.c — api.keys (server/apikey.c): the list's rule, matching
 * any key of the set and nothing else, and where a request's credential
 * comes from. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "apikey.h"

#define K1 "first-key-0123456789"
#define K2 "second-key-abcdefghij"

static void test_check(void **state)
{
    (void)state;
    char why[200];
    assert_int_equal(apikey_check("", why, sizeof why), 0);
    assert_int_equal(apikey_check(K1 ", " K2 ",", why, sizeof why), 0);
    assert_int_equal(apikey_check("short", why, sizeof why), -1);
    assert_non_null(strstr(why, "key 1"));
    assert_int_equal(apikey_check(K1 ",in valid key 0123456789", why, sizeof why), -1);
    assert_non_null(strstr(why, "key 2"));
    assert_int_equal(apikey_check(K1 "\x01", why, sizeof why), -1);
}

static void test_match(void **state)
{
    (void)state;
    apikey_set *s = apikey_set_create(" " K1 " ,," K2);
    assert_int_equal(apikey_set_count(s), 2);
    assert_true(apikey_set_matches(s, K1, strlen(K1)));
    assert_true(apikey_set_matches(s, K2, strlen(K2)));
    assert_false(apikey_set_matches(s, K1, strlen(K1) - 1));      /* a prefix */
    assert_false(apikey_set_matches(s, K1 "x", strlen(K1) + 1));  /* longer */
    assert_false(apikey_set_matches(s, "", 0));
    assert_false(apikey_set_matches(s, NULL, 0));
    char k[] = K2;
    k[5] ^= 1;
    assert_false(apikey_set_matches(s, k, strlen(k)));
    apikey_set_destroy(s);

    apikey_set *off = apikey_set_create("");
    assert_int_equal(apikey_set_count(off), 0);
    assert_false(apikey_set_matches(off, K1, strlen(K1)));
    apikey_set_destroy(off);
    apikey_set_destroy(NULL);
    assert_int_equal(apikey_set_count(NULL), 0);
}

static void test_credential(void **state)
{
    (void)state;
    const char *c;
    size_t n;
    assert_true(apikey_credential("Bearer abc", 10, NULL, 0, &c, &n));
    assert_int_equal(n, 3);
    assert_memory_equal(c, "abc", 3);
    assert_true(apikey_credential("bEaReR  abc ", 12, NULL, 0, &c, &n));
    assert_int_equal(n, 3);
    /* Not a bearer credential: the X-API-Key header, when there is one. */
    assert_true(apikey_credential("Basic abc", 9, "xyz", 3, &c, &n));
    assert_memory_equal(c, "xyz", 3);
    assert_false(apikey_credential("Basic abc", 9, NULL, 0, &c, &n));
    assert_false(apikey_credential("Bearer ", 7, NULL, 0, &c, &n));
    assert_false(apikey_credential(NULL, 0, NULL, 0, &c, &n));
    /* Both: Authorization wins. */
    assert_true(apikey_credential("Bearer abc", 10, "xyz", 3, &c, &n));
    assert_memory_equal(c, "abc", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_credential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
