/* test_listener.c — where the programs listen (lib/listener.c) and the rule
 * built on it (server_config_check_exposure): addresses are taken as written
 * or refused, never widened, and auth.mode=none passes only on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "config.h"
#include "listener.h"

static void test_resolve(void **state)
{
    (void)state;
    struct sockaddr_in sa;
    char err[256], text[48];
    assert_int_equal(listener_resolve("server.listen", "", 8300, &sa, err, sizeof err), 0);
    listener_format(&sa, text, sizeof text);
    assert_string_equal(text, "0.0.0.0:8300");
    assert_false(listener_is_loopback(&sa));
    assert_int_equal(listener_resolve("server.listen", "127.0.0.1", 0, &sa, err, sizeof err), 0);
    assert_true(listener_is_loopback(&sa));
    assert_int_equal(listener_resolve("server.listen", "127.45.0.9", 1, &sa, err, sizeof err), 0);
    assert_true(listener_is_loopback(&sa));
    /* The loopback interface by name. */
    assert_int_equal(listener_resolve("server.listen", "lo", 8300, &sa, err, sizeof err), 0);
    assert_true(listener_is_loopback(&sa));
    assert_int_equal(listener_resolve("server.listen", "10.1.2.3", 8300, &sa, err, sizeof err), 0);
    assert_false(listener_is_loopback(&sa));
    assert_int_equal(listener_resolve("server.listen", "128.0.0.1", 8300, &sa, err, sizeof err), 0);
    assert_false(listener_is_loopback(&sa));
}

static void test_refused(void **state)
{
    (void)state;
    /* What lws would have widened to every address, or bound nowhere. */
    static const char *const bad[] = { "::1", "localhost", "127.1", "nosuchif0", "0x7f000001",
                                       "127.0.0.1 ", "a-very-long-name-that-is-no-interface" };
    struct sockaddr_in sa;
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(listener_resolve("server.listen", bad[i], 8300, &sa, err, sizeof err), -1);
        assert_non_null(strstr(err, "server.listen: '"));
        assert_non_null(strstr(err, "is neither an IPv4 address"));
    }
    assert_int_equal(listener_resolve("server.listen", "", 70000, &sa, err, sizeof err), -1);
}

static void test_hostport(void **state)
{
    (void)state;
    struct sockaddr_in sa;
    char err[256], text[48];
    assert_int_equal(listener_resolve_hostport("metrics.listen", "127.0.0.1:9300", &sa, err,
                                               sizeof err), 0);
    listener_format(&sa, text, sizeof text);
    assert_string_equal(text, "127.0.0.1:9300");
    assert_int_equal(listener_resolve_hostport("metrics.listen", ":9300", &sa, err, sizeof err), 0);
    listener_format(&sa, text, sizeof text);
    assert_string_equal(text, "0.0.0.0:9300");
    assert_int_equal(listener_resolve_hostport("metrics.listen", "lo:0", &sa, err, sizeof err), 0);
    assert_true(listener_is_loopback(&sa));
    static const char *const bad[] = { "9300", "127.0.0.1", "127.0.0.1:", ":x", ":-1",
                                       ":123456", "[::1]:9300", "localhost:9300", ":70000" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(listener_resolve_hostport("metrics.listen", bad[i], &sa, err, sizeof err),
                         -1);
        assert_non_null(strstr(err, "metrics.listen: "));
    }
}

static void test_exposure(void **state)
{
    (void)state;
    server_config c;
    char err[512];
    memset(&c, 0, sizeof c);
    c.listen = (char *)"";
    c.auth_mode = (char *)"none";
    assert_int_equal(server_config_check_exposure(&c, false, err, sizeof err), -1);
    for (const char *knob = "auth.mode=jwt"; knob;
         knob = !strcmp(knob, "auth.mode=jwt") ? "server.listen=127.0.0.1"
              : !strcmp(knob, "server.listen=127.0.0.1") ? "auth.mode=insecure-dev" : NULL)
        assert_non_null(strstr(err, knob));
    assert_int_equal(server_config_check_exposure(&c, true, err, sizeof err), 0);
    c.auth_mode = (char *)"insecure-dev";
    assert_int_equal(server_config_check_exposure(&c, false, err, sizeof err), 0);
    c.auth_mode = (char *)"jwt";
    assert_int_equal(server_config_check_exposure(&c, false, err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_exposure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
