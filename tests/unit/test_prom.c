/* test_prom.c — the Prometheus text writer (lib/prom.c): family headers with
 * one-line HELP, samples with and without labels, exact fixed-point values,
 * and histograms summed into cumulative buckets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "prom.h"

static void test_family_joins_help_lines(void **state)
{
    (void)state;
    buf b;
    buf_init(&b);
    prom_family(&b, "x_total", "counter", "First line\nsecond line.");
    assert_string_equal(b.data, "# HELP x_total First line second line.\n# TYPE x_total counter\n");
    buf_deinit(&b);
}

static void test_samples(void **state)
{
    (void)state;
    buf b;
    buf_init(&b);
    prom_sample(&b, "up", NULL, 1);
    prom_sample(&b, "up", "dep=\"amqp\"", 18446744073709551615ULL);
    prom_sample_signed(&b, "q", NULL, -1);
    prom_sample_fixed(&b, "s", NULL, 1500, 3);
    prom_sample_fixed(&b, "s", "k=\"v\"", 7, 6);
    prom_sample_fixed(&b, "n", NULL, 42, 0);
    assert_string_equal(b.data, "up 1\n"
                                "up{dep=\"amqp\"} 18446744073709551615\n"
                                "q -1\n"
                                "s 1.500\n"
                                "s{k=\"v\"} 0.000007\n"
                                "n 42\n");
    buf_deinit(&b);
}

static void test_metric_is_family_and_sample(void **state)
{
    (void)state;
    buf b;
    buf_init(&b);
    prom_metric(&b, "g", "gauge", "A gauge.", 3);
    assert_string_equal(b.data, "# HELP g A gauge.\n# TYPE g gauge\ng 3\n");
    buf_deinit(&b);
}

static void test_histogram_is_cumulative(void **state)
{
    (void)state;
    static const char *const le[] = { "0.1", "1" };
    const uint64_t counts[] = { 2, 0, 5 };
    buf b;
    buf_init(&b);
    prom_histogram(&b, "h_seconds", "Times.", 2, le, counts, 12345678, 6);
    assert_string_equal(b.data, "# HELP h_seconds Times.\n"
                                "# TYPE h_seconds histogram\n"
                                "h_seconds_bucket{le=\"0.1\"} 2\n"
                                "h_seconds_bucket{le=\"1\"} 2\n"
                                "h_seconds_bucket{le=\"+Inf\"} 7\n"
                                "h_seconds_sum 12.345678\n"
                                "h_seconds_count 7\n");
    buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_joins_help_lines),
        cmocka_unit_test(test_samples),
        cmocka_unit_test(test_metric_is_family_and_sample),
        cmocka_unit_test(test_histogram_is_cumulative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
