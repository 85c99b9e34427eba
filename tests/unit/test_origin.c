/* test_origin.c — the WebSocket Origin policy (server/origin.c): how listed
 * origins and Origin headers are put in one form, what a list may hold, and
 * that an empty list allows every origin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "origin.h"

static bool allows(const origin_list *l, const char *origin)
{
    return origin_list_allows(l, origin, strlen(origin));
}

static void test_empty_allows_all(void **state)
{
    (void)state;
    char err[256];
    for (const char *csv = ""; csv; csv = strcmp(csv, "") ? NULL : " , ") {
        origin_list *l = origin_list_create(csv, err, sizeof err);
        assert_non_null(l);
        assert_true(origin_list_any(l));
        assert_true(allows(l, "https://anything.example"));
        assert_true(allows(l, "null"));
        origin_list_destroy(l);
    }
    origin_list *l = origin_list_create(NULL, err, sizeof err);
    assert_true(origin_list_any(l));
    origin_list_destroy(l);
}

static void test_match(void **state)
{
    (void)state;
    char err[256];
    origin_list *l = origin_list_create(" https://Lectures.Example.edu:443 ,http://localhost:8080,"
                                        "http://[::1]:3000", err, sizeof err);
    assert_non_null(l);
    assert_false(origin_list_any(l));
    assert_int_equal(origin_list_count(l), 3);
    /* Scheme and host in any case; the default port or none. */
    assert_true(allows(l, "https://lectures.example.edu"));
    assert_true(allows(l, "HTTPS://LECTURES.EXAMPLE.EDU:443"));
    assert_true(allows(l, "http://localhost:8080"));
    assert_true(allows(l, "http://[::1]:3000"));
    /* Anything else, near misses first. */
    assert_false(allows(l, "http://lectures.example.edu"));
    assert_false(allows(l, "https://lectures.example.edu:8443"));
    assert_false(allows(l, "https://lectures.example.edu.evil.example"));
    assert_false(allows(l, "https://evil.example/https://lectures.example.edu"));
    assert_false(allows(l, "https://lectures.example.edu/"));
    assert_false(allows(l, "http://localhost"));
    assert_false(allows(l, "http://localhost:08080x"));
    assert_false(allows(l, "null"));
    assert_false(allows(l, ""));
    assert_false(allows(l, "https://user@lectures.example.edu"));
    /* Bytes after a NUL are not ignored. */
    assert_false(origin_list_allows(l, "http://localhost:8080\0x", 23));
    origin_list_destroy(l);
}

static void test_default_ports(void **state)
{
    (void)state;
    char err[256];
    origin_list *l = origin_list_create("http://a.example,wss://b.example:443,https://c.example:80",
                                        err, sizeof err);
    assert_non_null(l);
    assert_true(allows(l, "http://a.example:80"));
    assert_true(allows(l, "wss://b.example"));
    assert_true(allows(l, "https://c.example:80"));
    assert_false(allows(l, "https://c.example"));
    origin_list_destroy(l);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "lectures.example.edu", "https://", "https:/x.example", "https://x.example/",
        "https://x.example/path", "https://x.example:", "https://x.example:0",
        "https://x.example:65536", "https://x.example:123456", "*", "https://*.example",
        "null", "https://x.example,ftp//y", "https://[zz]", "https://[]", "://x.example",
    };
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(origin_list_create(bad[i], err, sizeof err));
        assert_non_null(strstr(err, "websocket.allowed_origins: '"));
        assert_int_equal(origin_list_check(bad[i], err, sizeof err), -1);
    }
    assert_int_equal(origin_list_check("https://ok.example, http://127.0.0.1:9", err, sizeof err),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_allows_all),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_default_ports),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
