/* test_budget.c — per-connection memory accounting (server/budget.c): a
 * charge that does not fit is refused whole, releases give back exactly what
 * was charged, and the ERROR text names every place the memory went. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "budget.h"

static void test_chunk_rounds_like_malloc(void **state)
{
    (void)state;
    assert_int_equal(budget_chunk(0), 32);
    assert_int_equal(budget_chunk(24), 32);
    assert_int_equal(budget_chunk(25), 48);
    assert_int_equal(budget_chunk(4000), 4016);
    /* Never less than what was asked for. */
    for (size_t n = 0; n < 5000; n++)
        assert_true(budget_chunk(n) >= n + 8);
}

static void test_charge_up_to_the_limit_and_not_a_byte_more(void **state)
{
    (void)state;
    budget b = { { 0 } };
    assert_true(budget_charge(&b, BUDGET_TXN, 600, 100, 1000));
    assert_true(budget_charge(&b, BUDGET_WAIT, 300, 100, 1000));    /* exactly 1000 */
    assert_false(budget_charge(&b, BUDGET_SUBS, 1, 100, 1000));
    assert_int_equal(budget_total(&b), 900);
    /* What is held outside the budget (input, output) counts too. */
    assert_false(budget_fits(&b, 0, 101, 1000));
    assert_true(budget_fits(&b, 0, 100, 1000));
    budget_release(&b, BUDGET_TXN, 600);
    assert_true(budget_charge(&b, BUDGET_SUBS, 600, 100, 1000));
    assert_int_equal(b.by[BUDGET_TXN], 0);
    assert_int_equal(b.by[BUDGET_SUBS], 600);
}

static void test_force_passes_the_limit_and_release_never_underflows(void **state)
{
    (void)state;
    budget b = { { 0 } };
    budget_force(&b, BUDGET_WAIT, 5000);
    assert_false(budget_fits(&b, 0, 0, 1000));
    budget_release(&b, BUDGET_WAIT, 6000);
    assert_int_equal(budget_total(&b), 0);
    assert_true(budget_fits(&b, 1000, 0, 1000));
}

static void test_describe_names_every_kind_and_the_limit(void **state)
{
    (void)state;
    budget b = { { 0 } };
    budget_force(&b, BUDGET_TXN, 3 << 20);
    budget_force(&b, BUDGET_WAIT, 1536);
    budget_force(&b, BUDGET_SUBS, 400);
    buf out;
    buf_init(&out);
    budget_describe(&b, 64 << 10, 100, 2 << 20, 4 << 20, &out);
    const char *want =
        "This connection would make the server hold more memory than limits.conn_memory "
        "allows (4.0 MiB). It holds 3.1 MiB (open transactions 3.0 MiB, operations and "
        "receipts waiting 1.5 KiB, subscriptions 400 B, messages held for replaying "
        "subscriptions 0 B, partial input 64.0 KiB, output not yet read 100 B) and needed "
        "2.0 MiB more. Commit or abort transactions, wait for receipts and read what the "
        "server sends before sending more.";
    assert_string_equal(out.data, want);
    buf_deinit(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_rounds_like_malloc),
        cmocka_unit_test(test_charge_up_to_the_limit_and_not_a_byte_more),
        cmocka_unit_test(test_force_passes_the_limit_and_release_never_underflows),
        cmocka_unit_test(test_describe_names_every_kind_and_the_limit),
    };
    return cmocka_run_group_tests_name("budget", tests, NULL, NULL);
}
