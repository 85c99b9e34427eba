/* test_addrlist.c — "host[:port], ..." lists (lib/addrlist.c): the forms a
 * RabbitMQ node list or a Sentinel list may take, and every malformed one
 * --check-config must refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "addrlist.h"

static void test_single(void **state)
{
    (void)state;
    addrlist l;
    char err[128];
    assert_int_equal(addrlist_parse(&l, "rabbit1", 5672, err, sizeof err), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].host, "rabbit1");
    assert_int_equal(l.v[0].port, 5672);
    addrlist_deinit(&l);
    assert_int_equal(l.n, 0);
    assert_null(l.v);
}

static void test_list(void **state)
{
    (void)state;
    addrlist l;
    char err[128], s[80];
    assert_int_equal(addrlist_parse(&l, " 10.0.0.1:5691 ,rabbit2,\t[fd00::5]:7, ::1 ,[::2]",
                                    5672, err, sizeof err), 0);
    assert_int_equal(l.n, 5);
    assert_string_equal(l.v[0].host, "10.0.0.1");
    assert_int_equal(l.v[0].port, 5691);
    assert_string_equal(l.v[1].host, "rabbit2");
    assert_int_equal(l.v[1].port, 5672);
    assert_string_equal(l.v[2].host, "fd00::5");
    assert_int_equal(l.v[2].port, 7);
    assert_string_equal(l.v[3].host, "::1");
    assert_int_equal(l.v[3].port, 5672);
    assert_string_equal(l.v[4].host, "::2");
    addrlist_format(&l, 0, s, sizeof s);
    assert_string_equal(s, "10.0.0.1:5691");
    addrlist_format(&l, 2, s, sizeof s);
    assert_string_equal(s, "[fd00::5]:7");
    addrlist_deinit(&l);
}

static void test_ports(void **state)
{
    (void)state;
    addrlist l;
    char err[128];
    assert_int_equal(addrlist_parse(&l, "a:1,b:65535", 9, err, sizeof err), 0);
    assert_int_equal(l.v[0].port, 1);
    assert_int_equal(l.v[1].port, 65535);
    addrlist_deinit(&l);
    /* No port anywhere and no usable default. */
    assert_int_equal(addrlist_parse(&l, "a", 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "no port"));
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", " ", ",", "a,", ",a", "a,,b", "a: 1", "a:0", "a:65536", "a:-1", "a:1x",
        "a:", "a:b:c", "host:56:72", "[::1", "[::1]x", "[::1]:", "[]:5", "[nothost]:5",
        "a b", "a:123456", "a:00000001",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        addrlist l = { (addrlist_entry *)&l, 99 };   /* junk: parse must reset it */
        char err[128] = "";
        if (addrlist_parse(&l, bad[i], 5672, err, sizeof err) != -1)
            fail_msg("accepted '%s'", bad[i]);
        assert_true(err[0] != '\0');
        assert_int_equal(l.n, 0);
        assert_null(l.v);
        addrlist_deinit(&l);
    }
    char longhost[300];
    memset(longhost, 'h', 256);
    longhost[256] = '\0';
    addrlist l;
    char err[128];
    assert_int_equal(addrlist_parse(&l, longhost, 1, err, sizeof err), -1);
    longhost[255] = '\0';
    assert_int_equal(addrlist_parse(&l, longhost, 1, err, sizeof err), 0);
    addrlist_deinit(&l);
    addrlist_deinit(NULL);
}

static void test_many(void **state)
{
    (void)state;
    char spec[4096] = "";
    for (int i = 0; i < 100; i++) {
        char e[32];
        snprintf(e, sizeof e, "%sn%d:%d", i ? "," : "", i, 1000 + i);
        strcat(spec, e);
    }
    addrlist l;
    char err[128];
    assert_int_equal(addrlist_parse(&l, spec, 1, err, sizeof err), 0);
    assert_int_equal(l.n, 100);
    assert_string_equal(l.v[99].host, "n99");
    assert_int_equal(l.v[99].port, 1099);
    addrlist_deinit(&l);
}

/* Starting points stay in range and spread: 3 nodes, 300 seeds in a row
 * (as nearby as pointers or clocks are) use every node often. */
static void test_start(void **state)
{
    (void)state;
    addrlist l;
    char err[128];
    assert_int_equal(addrlist_parse(&l, "a,b,c", 1, err, sizeof err), 0);
    size_t seen[3] = { 0 };
    for (uint64_t seed = 1000; seed < 1300; seed++) {
        size_t i = addrlist_start(&l, seed);
        assert_true(i < 3);
        seen[i]++;
    }
    for (int i = 0; i < 3; i++)
        assert_true(seen[i] > 50);
    addrlist_deinit(&l);
    assert_int_equal(addrlist_parse(&l, "only", 1, err, sizeof err), 0);
    assert_int_equal(addrlist_start(&l, 12345), 0);
    addrlist_deinit(&l);
}

/* The configuration checks' form: the knob's name, then the reason. */
static void test_check(void **state)
{
    (void)state;
    char err[160] = "";
    assert_int_equal(addrlist_check("bus.host", "a:1, b", 5672, err, sizeof err), 0);
    assert_int_equal(addrlist_check("bus.host", "a:0", 5672, err, sizeof err), -1);
    assert_string_equal(err, "bus.host: bad port in 'a:0' (1..65535)");
    assert_int_equal(addrlist_check("amqp.host", ",", 5672, err, sizeof err), -1);
    assert_string_equal(err, "amqp.host: empty entry");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_start),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
