/* test_http_query.c — the query of GET /api/rooms/<room>/messages
 * (http_history_params in server/http_query.c): every parameter, every 400. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "http_query.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int parse(const char *const *args, size_t n, history_query *q, const char **why)
{
    memset(q, 0x5a, sizeof *q);
    *why = NULL;
    return http_history_params(args, n, 50, 1000, q, why);
}

static void test_defaults_and_values(void **state)
{
    (void)state;
    history_query q;
    const char *why;
    assert_int_equal(parse(NULL, 0, &q, &why), 0);
    assert_int_equal(q.limit, 50);
    assert_false(q.has_after);
    assert_false(q.has_before);

    const char *a[] = { "limit=7", "after=10-2", "before=11-0" };
    assert_int_equal(parse(a, N(a), &q, &why), 0);
    assert_int_equal(q.limit, 7);
    assert_true(q.has_after && q.after.ms == 10 && q.after.n == 2);
    assert_true(q.has_before && q.before.ms == 11 && q.before.n == 0);

    const char *b[] = { "limit=1000", "before=0-1" };
    assert_int_equal(parse(b, N(b), &q, &why), 0);
    assert_int_equal(q.limit, 1000);
}

static void test_rejections(void **state)
{
    (void)state;
    static const struct { const char *args[3]; size_t n; const char *why; } cases[] = {
        { { "limit=0" }, 1, "limit must be" },
        { { "limit=1001" }, 1, "limit must be" },
        { { "limit=" }, 1, "limit must be" },
        { { "limit=5x" }, 1, "limit must be" },
        { { "limit=+5" }, 1, "limit must be" },
        { { "limit=-5" }, 1, "limit must be" },
        { { "limit= 5" }, 1, "limit must be" },
        { { "limit=99999999999999999999" }, 1, "limit must be" },
        { { "limit=5", "limit=5" }, 2, "limit given twice" },
        { { "after=x" }, 1, "after must be" },
        { { "after=" }, 1, "after must be" },
        { { "after" }, 1, "after must be" },
        { { "before=1-" }, 1, "before must be" },
        { { "after=1-0", "after=2-0" }, 2, "after given twice" },
        { { "before=1-0", "before=2-0" }, 2, "before given twice" },
        { { "after=3-0", "before=3-0" }, 2, "after must be smaller" },
        { { "after=4-0", "before=3-9" }, 2, "after must be smaller" },
        { { "since=1-0" }, 1, "unknown parameter" },
        { { "Limit=5" }, 1, "unknown parameter" },
        { { "" }, 1, "unknown parameter" },
    };
    for (size_t i = 0; i < N(cases); i++) {
        history_query q;
        const char *why;
        assert_int_equal(parse(cases[i].args, cases[i].n, &q, &why), -1);
        assert_non_null(why);
        assert_non_null(strstr(why, cases[i].why));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_values),
        cmocka_unit_test(test_rejections),
    };
    return cmocka_run_group_tests_name("http_query", tests, NULL, NULL);
}
