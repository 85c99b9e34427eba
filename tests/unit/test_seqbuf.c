/* test_seqbuf.c — the per-room ordering buffer (server/seqbuf.c): whatever
 * order messages arrive in, they leave in (epoch, seq) order, exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seqbuf.h"

/* Items are small heap ints (so ASan sees every drop or leak). */
typedef struct trace {
    char out[4096];
} trace;

static void *item(int v)
{
    int *p = malloc(sizeof *p);
    *p = v;
    return p;
}

static void on_release(void *ctx, void *it)
{
    trace *t = ctx;
    snprintf(t->out + strlen(t->out), sizeof t->out - strlen(t->out), "r%d ", *(int *)it);
    free(it);
}

static void on_drop(void *ctx, void *it)
{
    trace *t = ctx;
    snprintf(t->out + strlen(t->out), sizeof t->out - strlen(t->out), "d%d ", *(int *)it);
    free(it);
}

#define OFFER(sb, e, s) seqbuf_offer(sb, e, s, item((int)(s)))

static void test_in_order_releases_at_once(void **state)
{
    (void)state;
    trace t = { "" };
    seqbuf sb;
    seqbuf_init(&sb, on_release, on_drop, &t);
    seqbuf_base(&sb, 7, 10);
    for (int s = 11; s <= 14; s++)
        OFFER(&sb, 7, s);
    assert_string_equal(t.out, "r11 r12 r13 r14 ");
    assert_int_equal(sb.n, 0);
    assert_int_equal(seqbuf_last(&sb), 14);
    seqbuf_deinit(&sb);
}

static void test_out_of_order_is_held_then_released_in_order(void **state)
{
    (void)state;
    trace t = { "" };
    seqbuf sb;
    seqbuf_init(&sb, on_release, on_drop, &t);
    seqbuf_base(&sb, 1, 0);
    OFFER(&sb, 1, 3);
    OFFER(&sb, 1, 2);
    uint64_t from, to;
    void *after;
    assert_true(seqbuf_gap(&sb, &from, &to, &after));
    assert_int_equal(from, 1);
    assert_int_equal(to, 1);
    assert_int_equal(*(int *)after, 2);
    assert_string_equal(t.out, "");
    OFFER(&sb, 1, 1);
    assert_string_equal(t.out, "r1 r2 r3 ");
    assert_false(seqbuf_gap(&sb, &from, &to, &after));
    seqbuf_deinit(&sb);
}

static void test_duplicates_and_old_messages_are_dropped(void **state)
{
    (void)state;
    trace t = { "" };
    seqbuf sb;
    seqbuf_init(&sb, on_release, on_drop, &t);
    seqbuf_base(&sb, 1, 5);
    OFFER(&sb, 1, 5);        /* before the base */
    OFFER(&sb, 1, 6);
    OFFER(&sb, 1, 6);        /* released already */
    OFFER(&sb, 1, 8);
    OFFER(&sb, 1, 8);        /* held already */
    OFFER(&sb, 0, 9);        /* older epoch */
    OFFER(&sb, 1, 7);
    assert_string_equal(t.out, "d5 r6 d6 d8 d9 r7 r8 ");
    seqbuf_deinit(&sb);
}

static void test_unbased_holds_everything_until_the_base(void **state)
{
    (void)state;
    trace t = { "" };
    seqbuf sb;
    seqbuf_init(&sb, on_release, on_drop, &t);
    OFFER(&sb, 1, 12);
    OFFER(&sb, 1, 10);
    OFFER(&sb, 1, 11);
    assert_string_equal(t.out, "");
    seqbuf_base(&sb, 1, 10);     /* 10 is history for this server */
    assert_string_equal(t.out, "d10 r11 r12 ");
    seqbuf_deinit(&sb);
}

static void test_a_new_epoch_flushes_the_old_and_restarts_at_one(void **state)
{
    (void)state;
    trace t = { "" };
    seqbuf sb;
    seqbuf_init(&sb, on_release, on_drop, &t);
    seqbuf_base(&sb, 1, 0);
    OFFER(&sb, 1, 1);
    OFFER(&sb, 1, 3);            /* 2 will never come: the registry restarted */
    OFFER(&sb, 2, 2);            /* new epoch, 1 still missing */
    assert_string_equal(t.out, "r1 r3 ");
    assert_int_equal(sb.epoch, 2);
    assert_int_equal(sb.next, 1);
    OFFER(&sb, 2, 1);
    assert_string_equal(t.out, "r1 r3 r1 r2 ");
    OFFER(&sb, 1, 4);            /* late message of the old epoch */
    assert_string_equal(t.out, "r1 r3 r1 r2 d4 ");
    seqbuf_deinit(&sb);
}

static void test_a_new_epoch_with_nothing_held(void **state)
{
    (void)state;
    trace t = { "" };
    seqbuf sb;
    seqbuf_init(&sb, on_release, on_drop, &t);
    seqbuf_base(&sb, 1, 4);
    seqbuf_new_epoch(&sb, 2);            /* the registry came back empty */
    assert_int_equal(sb.epoch, 2);
    assert_int_equal(sb.next, 1);
    OFFER(&sb, 2, 1);
    assert_string_equal(t.out, "r1 ");
    seqbuf_skip_gap(&sb);                /* nothing held: no-op */
    seqbuf_deinit(&sb);
}

static void test_skip_gap_gives_up_on_missing_messages(void **state)
{
    (void)state;
    trace t = { "" };
    seqbuf sb;
    seqbuf_init(&sb, on_release, on_drop, &t);
    seqbuf_base(&sb, 1, 0);
    OFFER(&sb, 1, 4);
    OFFER(&sb, 1, 5);
    OFFER(&sb, 1, 7);
    seqbuf_skip_gap(&sb);
    assert_string_equal(t.out, "r4 r5 ");
    uint64_t from, to;
    void *after;
    assert_true(seqbuf_gap(&sb, &from, &to, &after));
    assert_int_equal(from, 6);
    assert_int_equal(to, 6);
    OFFER(&sb, 1, 2);            /* too late now */
    assert_string_equal(t.out, "r4 r5 d2 ");
    seqbuf_deinit(&sb);
    assert_string_equal(t.out, "r4 r5 d2 d7 ");
}

/* Every permutation of 1..6 with duplicates mixed in: released exactly
 * once each, in order. */
static void test_any_arrival_order_gives_one_ordered_release(void **state)
{
    (void)state;
    int perm[6] = { 1, 2, 3, 4, 5, 6 };
    int count = 0;
    for (;;) {
        trace t = { "" };
        seqbuf sb;
        seqbuf_init(&sb, on_release, on_drop, &t);
        seqbuf_base(&sb, 3, 0);
        for (int i = 0; i < 6; i++) {
            OFFER(&sb, 3, (uint64_t)perm[i]);
            OFFER(&sb, 3, (uint64_t)perm[(i + 3) % 6]);   /* a duplicate of another */
        }
        char released[64] = "";
        for (char *p = t.out; *p; p++) {
            if (*p == 'r') {
                size_t l = strlen(released);
                released[l] = p[1];
                released[l + 1] = '\0';
            }
        }
        assert_string_equal(released, "123456");
        assert_int_equal(sb.n, 0);
        seqbuf_deinit(&sb);
        count++;
        /* next permutation */
        int i = 4;
        while (i >= 0 && perm[i] > perm[i + 1])
            i--;
        if (i < 0)
            break;
        int j = 5;
        while (perm[j] < perm[i])
            j--;
        int tmp = perm[i]; perm[i] = perm[j]; perm[j] = tmp;
        for (int a = i + 1, b = 5; a < b; a++, b--) {
            tmp = perm[a]; perm[a] = perm[b]; perm[b] = tmp;
        }
    }
    assert_int_equal(count, 720);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_releases_at_once),
        cmocka_unit_test(test_out_of_order_is_held_then_released_in_order),
        cmocka_unit_test(test_duplicates_and_old_messages_are_dropped),
        cmocka_unit_test(test_unbased_holds_everything_until_the_base),
        cmocka_unit_test(test_a_new_epoch_flushes_the_old_and_restarts_at_one),
        cmocka_unit_test(test_a_new_epoch_with_nothing_held),
        cmocka_unit_test(test_skip_gap_gives_up_on_missing_messages),
        cmocka_unit_test(test_any_arrival_order_gives_one_ordered_release),
    };
    return cmocka_run_group_tests_name("seqbuf", tests, NULL, NULL);
}
