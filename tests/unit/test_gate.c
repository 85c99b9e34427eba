/* test_gate.c — counted slots with a line (server/gate.c): at most n
 * holders; those who can wait are served first come first served and never
 * overtaken by those who only try. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gate.h"

typedef struct trace {
    char out[256];
} trace;

typedef struct who {
    trace *t;
    char name;
    gate_waiter w;
} who;

static void on_slot(void *ctx)
{
    who *x = ctx;
    size_t n = strlen(x->t->out);
    snprintf(x->t->out + n, sizeof x->t->out - n, "%c ", x->name);
}

static void test_try_takes_free_slots_then_refuses(void **state)
{
    (void)state;
    gate *g = gate_create(2);
    assert_true(gate_try(g));
    assert_true(gate_try(g));
    assert_false(gate_try(g));
    gate_stats st;
    gate_get_stats(g, &st);
    assert_int_equal(st.busy, 2);
    assert_int_equal(st.refused, 1);
    gate_leave(g);
    assert_true(gate_try(g));
    gate_leave(g);
    gate_leave(g);
    gate_get_stats(g, &st);
    assert_int_equal(st.busy, 0);
    gate_destroy(g);
}

static void test_waiters_get_slots_in_order_and_are_not_overtaken(void **state)
{
    (void)state;
    trace t = { "" };
    who a = { &t, 'a', { 0 } }, b = { &t, 'b', { 0 } }, c = { &t, 'c', { 0 } };
    gate *g = gate_create(1);
    assert_true(gate_enter(g, &a.w, on_slot, &a));      /* free: at once, no callback */
    assert_false(gate_enter(g, &b.w, on_slot, &b));
    assert_false(gate_enter(g, &c.w, on_slot, &c));
    assert_string_equal(t.out, "");
    gate_stats st;
    gate_get_stats(g, &st);
    assert_int_equal(st.waiting, 2);
    gate_leave(g);                                      /* a leaves: b gets it */
    assert_string_equal(t.out, "b ");
    assert_false(gate_try(g));                          /* c waits: no overtaking */
    gate_leave(g);
    assert_string_equal(t.out, "b c ");
    gate_leave(g);
    assert_true(gate_try(g));
    gate_leave(g);
    gate_get_stats(g, &st);
    assert_int_equal(st.busy, 0);
    assert_int_equal(st.waiting, 0);
    gate_destroy(g);
}

static void test_cancelled_waiters_leave_the_line(void **state)
{
    (void)state;
    trace t = { "" };
    who a = { &t, 'a', { 0 } }, b = { &t, 'b', { 0 } }, c = { &t, 'c', { 0 } };
    gate *g = gate_create(1);
    assert_true(gate_try(g));
    assert_false(gate_enter(g, &a.w, on_slot, &a));
    assert_false(gate_enter(g, &b.w, on_slot, &b));
    assert_false(gate_enter(g, &c.w, on_slot, &c));
    gate_cancel(g, &b.w);
    gate_cancel(g, &b.w);                               /* not in line: nothing */
    gate_leave(g);
    gate_cancel(g, &c.w);
    assert_string_equal(t.out, "a ");
    gate_leave(g);                                      /* nobody waits: the slot is free */
    gate_stats st;
    gate_get_stats(g, &st);
    assert_int_equal(st.busy, 0);
    assert_int_equal(st.waiting, 0);
    gate_destroy(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_try_takes_free_slots_then_refuses),
        cmocka_unit_test(test_waiters_get_slots_in_order_and_are_not_overtaken),
        cmocka_unit_test(test_cancelled_waiters_leave_the_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
