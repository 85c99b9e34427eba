/* test_twheel.c — the hashed timer wheel (server/twheel.c): a node fires at
 * the first advance whose clock has reached its time, once, whatever the
 * tick boundaries; cancel and re-add; deadlines many revolutions away; a
 * crowded slot; nodes added and cancelled from inside the fire callback;
 * and a random schedule checked against a plain list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "twheel.h"

/* An owner: the node embedded, and what the callback saw. */
typedef struct item {
    twheel_node node;
    int fired;
    uint64_t fired_at;           /* now of the last fire */
    /* What the callback does to the wheel (the tests of changes during an
     * advance). */
    twheel *w;
    int readd_times;             /* add itself again at readd_due, this many times */
    uint64_t readd_due;
    struct item *cancel;         /* cancel this one */
    struct item *add;            /* add this one at add_due */
    uint64_t add_due;
} item;

static item *item_of(twheel_node *n)
{
    return (item *)((char *)n - offsetof(item, node));
}

static void on_fire(twheel_node *n, uint64_t now_ms, void *ctx)
{
    int *calls = ctx;
    item *it = item_of(n);
    assert_false(twheel_scheduled(n));
    it->fired++;
    it->fired_at = now_ms;
    (*calls)++;
    if (it->readd_times > 0) {
        it->readd_times--;
        twheel_add(it->w, n, it->readd_due);
    }
    if (it->cancel) {
        twheel_cancel(it->w, &it->cancel->node);
        it->cancel = NULL;
    }
    if (it->add) {
        twheel_add(it->w, &it->add->node, it->add_due);
        it->add = NULL;
    }
}

static size_t advance(twheel *w, uint64_t now)
{
    int calls = 0;
    size_t n = twheel_advance(w, now, on_fire, &calls);
    assert_int_equal(n, (size_t)calls);
    return n;
}

static void test_fires_at_its_time_not_before(void **state)
{
    (void)state;
    twheel w;
    twheel_init(&w, 100, 16, 1000);
    item a = { 0 }, b = { 0 };
    twheel_add(&w, &a.node, 1250);
    twheel_add(&w, &b.node, 1300);      /* a tick boundary */
    assert_true(twheel_scheduled(&a.node));
    assert_int_equal(w.count, 2);
    /* The advances fall at odd times: a fires at the first one at or after
     * 1250, even though its tick (1200..1299) was visited before then. */
    assert_int_equal(advance(&w, 1105), 0);
    assert_int_equal(advance(&w, 1210), 0);
    assert_int_equal(advance(&w, 1249), 0);
    assert_int_equal(advance(&w, 1250), 1);
    assert_int_equal(a.fired, 1);
    assert_int_equal(a.fired_at, 1250);
    assert_false(twheel_scheduled(&a.node));
    assert_int_equal(b.fired, 0);
    assert_int_equal(advance(&w, 1299), 0);
    assert_int_equal(advance(&w, 1302), 1);
    assert_int_equal(b.fired_at, 1302);
    assert_int_equal(w.count, 0);
    /* Nothing fires twice. */
    assert_int_equal(advance(&w, 9000), 0);
    assert_int_equal(a.fired + b.fired, 2);
    twheel_deinit(&w);
}

static void test_a_time_already_past_fires_at_the_next_advance(void **state)
{
    (void)state;
    twheel w;
    twheel_init(&w, 10, 8, 500);
    assert_int_equal(advance(&w, 537), 0);
    item a = { 0 };
    twheel_add(&w, &a.node, 3);         /* long past, and of another revolution */
    assert_int_equal(advance(&w, 537), 1);
    assert_int_equal(a.fired_at, 537);
    twheel_deinit(&w);
}

static void test_cancel(void **state)
{
    (void)state;
    twheel w;
    twheel_init(&w, 10, 8, 0);
    item a = { 0 }, b = { 0 }, c = { 0 };
    twheel_cancel(&w, &a.node);         /* never scheduled: nothing */
    twheel_add(&w, &a.node, 50);
    twheel_add(&w, &b.node, 50);
    twheel_add(&w, &c.node, 50);
    twheel_cancel(&w, &b.node);         /* the middle of its slot's list */
    twheel_cancel(&w, &b.node);         /* again: nothing */
    assert_false(twheel_scheduled(&b.node));
    assert_int_equal(w.count, 2);
    assert_int_equal(advance(&w, 100), 2);
    assert_int_equal(a.fired, 1);
    assert_int_equal(b.fired, 0);
    assert_int_equal(c.fired, 1);
    twheel_cancel(&w, &a.node);         /* after it fired: nothing */
    assert_int_equal(w.count, 0);
    twheel_deinit(&w);
}

static void test_readd_moves_the_deadline(void **state)
{
    (void)state;
    twheel w;
    twheel_init(&w, 10, 64, 0);
    item a = { 0 }, b = { 0 };
    twheel_add(&w, &a.node, 500);
    twheel_add(&w, &a.node, 200);       /* nearer */
    twheel_add(&w, &b.node, 200);
    twheel_add(&w, &b.node, 450);       /* further */
    assert_int_equal(w.count, 2);
    assert_int_equal(advance(&w, 199), 0);
    assert_int_equal(advance(&w, 200), 1);
    assert_int_equal(a.fired_at, 200);
    assert_int_equal(advance(&w, 449), 0);
    assert_int_equal(advance(&w, 450), 1);
    assert_int_equal(b.fired_at, 450);
    /* Neither fires at its old time. */
    assert_int_equal(advance(&w, 600), 0);
    assert_int_equal(a.fired, 1);
    assert_int_equal(b.fired, 1);
    /* A node that fired may be added again. */
    twheel_add(&w, &a.node, 700);
    assert_int_equal(advance(&w, 700), 1);
    assert_int_equal(a.fired, 2);
    twheel_deinit(&w);
}

static void test_far_deadlines_wait_their_revolution(void **state)
{
    (void)state;
    twheel w;
    twheel_init(&w, 10, 8, 0);          /* one revolution: 80 ms */
    item far = { 0 }, near = { 0 }, farther = { 0 };
    twheel_add(&w, &far.node, 1003);    /* ~12.5 revolutions on; slot 4, like near */
    twheel_add(&w, &near.node, 43);
    twheel_add(&w, &farther.node, 100000);
    uint64_t now = 0;
    while (now < 1003) {
        now += 10;
        advance(&w, now);
        if (now < 1003)
            assert_int_equal(far.fired, 0);
    }
    assert_int_equal(near.fired, 1);
    assert_int_equal(near.fired_at, 50);
    assert_int_equal(far.fired, 1);
    assert_int_equal(far.fired_at, 1010);
    assert_int_equal(farther.fired, 0);
    /* A clock that jumps many revolutions at once: it fires then. */
    assert_int_equal(advance(&w, 99999), 0);
    assert_int_equal(advance(&w, 250000), 1);
    assert_int_equal(farther.fired_at, 250000);
    twheel_deinit(&w);
}

static void test_a_stalled_clock_fires_everything_due(void **state)
{
    (void)state;
    twheel w;
    twheel_init(&w, 10, 8, 0);
    enum { N = 40 };
    item it[N] = { 0 };
    for (int i = 0; i < N; i++)
        twheel_add(&w, &it[i].node, 5 + (uint64_t)i * 37);   /* over 18 revolutions */
    /* One advance past all but the last few, more than a revolution late. */
    assert_int_equal(advance(&w, 5 + 36 * 37), 37);
    for (int i = 0; i < N; i++)
        assert_int_equal(it[i].fired, i <= 36 ? 1 : 0);
    assert_int_equal(advance(&w, 100000), 3);
    assert_int_equal(w.count, 0);
    twheel_deinit(&w);
}

static void test_many_nodes_in_one_slot(void **state)
{
    (void)state;
    twheel w;
    twheel_init(&w, 100, 4, 0);         /* one revolution: 400 ms */
    enum { N = 3000 };
    item *it = calloc(N, sizeof *it);
    assert_non_null(it);
    /* All in the slot of ticks 5, 9, 13 ...: a third in tick 5 at times
     * across it, the rest one and two revolutions on. */
    for (int i = 0; i < N; i++)
        twheel_add(&w, &it[i].node, 500 + (uint64_t)(i % 3) * 400 + (uint64_t)(i % 100));
    assert_int_equal(w.count, N);
    assert_int_equal(advance(&w, 499), 0);
    /* Mid-tick: only the first half of tick 5's times. */
    assert_int_equal(advance(&w, 549), 500);
    assert_int_equal(advance(&w, 599), 500);
    for (int i = 0; i < N; i++)
        assert_int_equal(it[i].fired, i % 3 == 0 ? 1 : 0);
    assert_int_equal(advance(&w, 999), 1000);
    assert_int_equal(advance(&w, 1399), 1000);
    assert_int_equal(w.count, 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(it[i].fired, 1);
        assert_true(it[i].fired_at >= it[i].node.due_ms);
    }
    free(it);
    twheel_deinit(&w);
}

static void test_nodes_added_during_an_advance(void **state)
{
    (void)state;
    twheel w;
    twheel_init(&w, 10, 8, 0);
    /* a re-adds itself for a time already past, three times: with ticks left
     * in the advance it fires again in it, one tick further each time. */
    item a = { .w = &w, .readd_times = 3, .readd_due = 1 };
    twheel_add(&w, &a.node, 15);
    assert_int_equal(advance(&w, 55), 4);
    assert_int_equal(a.fired, 4);
    assert_false(twheel_scheduled(&a.node));

    /* In the last tick of an advance, it waits for the next one: a callback
     * that always re-adds for now cannot keep an advance going. */
    item b = { .w = &w, .readd_times = 1000, .readd_due = 0 };
    twheel_add(&w, &b.node, 58);
    assert_int_equal(advance(&w, 58), 1);
    assert_int_equal(advance(&w, 58), 1);
    assert_int_equal(advance(&w, 59), 1);
    assert_int_equal(b.fired, 3);
    twheel_cancel(&w, &b.node);

    /* A callback adds a new node to its own slot and to a later one, and
     * cancels a node still waiting in the slot being worked through. */
    item x = { 0 }, y = { 0 }, z = { 0 }, victim = { 0 };
    item c = { .w = &w, .cancel = &victim, .add = &x, .add_due = 95 };
    item d = { .w = &w, .add = &y, .add_due = 300 };
    twheel_add(&w, &victim.node, 90);
    twheel_add(&w, &c.node, 90);        /* linked after victim: fires first */
    twheel_add(&w, &d.node, 91);
    twheel_add(&w, &z.node, 100);
    assert_int_equal(advance(&w, 90), 1);
    assert_int_equal(c.fired, 1);
    assert_int_equal(victim.fired, 0);
    assert_false(twheel_scheduled(&victim.node));
    assert_true(twheel_scheduled(&x.node));
    assert_int_equal(advance(&w, 100), 3);      /* d, x (same tick), z */
    assert_int_equal(x.fired_at, 100);
    assert_int_equal(y.fired, 0);
    assert_int_equal(advance(&w, 300), 1);
    assert_int_equal(y.fired, 1);
    assert_int_equal(w.count, 0);
    twheel_deinit(&w);
}

/* Random adds, moves, cancels and advances (steps short and long, across
 * tick boundaries and revolutions) against the plain rule: a node fires
 * exactly once, at the first advance whose clock is at or past its time. */
static void test_random_schedule_matches_a_plain_list(void **state)
{
    (void)state;
    enum { N = 200 };
    twheel w;
    twheel_init(&w, 7, 16, 123);
    item it[N] = { 0 };
    bool on[N] = { 0 };
    uint64_t due[N] = { 0 };
    uint64_t now = 123;
    srand(42);
    for (int round = 0; round < 20000; round++) {
        int i = rand() % N;
        int op = rand() % 10;
        if (op < 5) {
            uint64_t d = rand() % 4 == 0 ? now + (uint64_t)(rand() % 5000)
                                          : now + (uint64_t)(rand() % 60);
            if (rand() % 20 == 0)
                d = now > 30 ? now - 30 : 0;                    /* already past */
            twheel_add(&w, &it[i].node, d);
            on[i] = true;
            due[i] = d;
        } else if (op < 6) {
            twheel_cancel(&w, &it[i].node);
            on[i] = false;
        } else {
            int before[N];
            for (int k = 0; k < N; k++)
                before[k] = it[k].fired;
            now += rand() % 50 == 0 ? (uint64_t)(rand() % 2000) : (uint64_t)(rand() % 9);
            advance(&w, now);
            for (int k = 0; k < N; k++) {
                bool should = on[k] && due[k] <= now;
                assert_int_equal(it[k].fired - before[k], should ? 1 : 0);
                if (should)
                    on[k] = false;
                assert_int_equal(twheel_scheduled(&it[k].node), on[k]);
            }
        }
        size_t count = 0;
        for (int k = 0; k < N; k++)
            count += on[k];
        assert_int_equal(w.count, count);
    }
    twheel_deinit(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fires_at_its_time_not_before),
        cmocka_unit_test(test_a_time_already_past_fires_at_the_next_advance),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_readd_moves_the_deadline),
        cmocka_unit_test(test_far_deadlines_wait_their_revolution),
        cmocka_unit_test(test_a_stalled_clock_fires_everything_due),
        cmocka_unit_test(test_many_nodes_in_one_slot),
        cmocka_unit_test(test_nodes_added_during_an_advance),
        cmocka_unit_test(test_random_schedule_matches_a_plain_list),
    };
    return cmocka_run_group_tests_name("twheel", tests, NULL, NULL);
}
