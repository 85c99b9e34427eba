/* test_utf8.c — strict UTF-8 validation (lib/utf8.c), which decides whether
 * a MESSAGE travels in a text or a binary WebSocket frame. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "utf8.h"

#define V(s) utf8_valid(s, sizeof(s) - 1)

static void test_valid(void **state)
{
    (void)state;
    assert_true(V(""));
    assert_true(V("plain ascii, long enough to take the eight-byte fast path"));
    assert_true(V("caf\xc3\xa9"));                 /* U+00E9 */
    assert_true(V("\xe2\x82\xac"));                /* U+20AC */
    assert_true(V("\xf0\x9f\x8e\x93"));            /* U+1F393 */
    assert_true(V("\xf4\x8f\xbf\xbf"));            /* U+10FFFF */
    assert_true(V("\xed\x9f\xbf"));                /* U+D7FF, below surrogates */
    assert_true(V("a\0b"));                        /* NUL is valid UTF-8 */
    assert_true(V("12345678\xc3\xa9"));            /* multibyte right after a fast chunk */
}

static void test_invalid(void **state)
{
    (void)state;
    assert_false(V("\x80"));                       /* lone continuation */
    assert_false(V("\xc3"));                       /* truncated */
    assert_false(V("\xc0\xaf"));                   /* overlong '/' */
    assert_false(V("\xc1\xbf"));                   /* overlong */
    assert_false(V("\xe0\x80\xaf"));               /* overlong 3-byte */
    assert_false(V("\xf0\x80\x80\xaf"));           /* overlong 4-byte */
    assert_false(V("\xed\xa0\x80"));               /* surrogate U+D800 */
    assert_false(V("\xf4\x90\x80\x80"));           /* > U+10FFFF */
    assert_false(V("\xf5\x80\x80\x80"));
    assert_false(V("\xff"));
    assert_false(V("\xe2\x82"));                   /* truncated at the end */
    assert_false(V("\xe2\x28\xa1"));               /* bad continuation */
    assert_false(V("abcdefgh\xff"));               /* after a fast chunk */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
