/* test_inflight.c — operations in flight and waiting receipts
 * (server/inflight.c): a receipt goes out only once every operation started
 * before it has completed, in any completion order; receipts keep their
 * order; a SEND's own receipt carries the message id its publish reported;
 * an operation that outlives its queue completes harmlessly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inflight.h"

/* The ids of the receipts ready now, space-separated, appended to out; a
 * receipt carrying a message id shows it as id=mid. */
static void drain(inflight *q, char *out, size_t cap)
{
    inflight_receipt *w;
    while ((w = inflight_ready(q))) {
        size_t n = strlen(out);
        if (w->mid_len)
            snprintf(out + n, cap - n, "%.*s=%.*s ", (int)w->id_len, w->id, (int)w->mid_len,
                     w->mid);
        else
            snprintf(out + n, cap - n, "%.*s ", (int)w->id_len, w->id);
        free(w);
    }
}

static void test_idle_queue_lets_receipts_through(void **state)
{
    (void)state;
    int owner;
    inflight q;
    inflight_init(&q, &owner);
    assert_true(inflight_idle(&q));
    inflight_op *op = inflight_start(&q, 7);
    assert_false(inflight_idle(&q));
    size_t cost;
    assert_ptr_equal(inflight_finish(op, &cost), &owner);
    assert_int_equal(cost, 7);
    assert_true(inflight_idle(&q));
    inflight_deinit(&q);
}

static void test_receipts_wait_for_every_earlier_operation_in_any_order(void **state)
{
    (void)state;
    int owner;
    inflight q;
    inflight_init(&q, &owner);
    char out[256] = "";
    inflight_op *a = inflight_start(&q, 1);
    inflight_wait(&q, "ra", 2, false);          /* waits for a */
    inflight_op *b = inflight_start(&q, 1);
    inflight_op *c = inflight_start(&q, 1);
    inflight_wait(&q, "rc", 2, false);          /* waits for a, b, c */
    inflight_wait(&q, "rc2", 3, true);          /* behind rc, even with nothing new */
    assert_false(inflight_idle(&q));
    size_t cost;
    inflight_finish(c, &cost);                  /* early: parked */
    drain(&q, out, sizeof out);
    assert_string_equal(out, "");
    inflight_finish(a, &cost);
    drain(&q, out, sizeof out);
    assert_string_equal(out, "ra ");
    inflight_finish(b, &cost);                  /* closes the gap: done = 3 */
    drain(&q, out, sizeof out);
    assert_string_equal(out, "ra rc rc2 ");
    assert_true(inflight_idle(&q));
    inflight_deinit(&q);
}

static void test_cancel_forgets_the_latest_operation(void **state)
{
    (void)state;
    int owner;
    inflight q;
    inflight_init(&q, &owner);
    inflight_op *a = inflight_start(&q, 10);
    inflight_op *b = inflight_start(&q, 20);
    assert_int_equal(inflight_cancel(&q, b), 20);
    inflight_wait(&q, "r", 1, false);           /* waits for a only */
    size_t cost;
    inflight_finish(a, &cost);
    char out[64] = "";
    drain(&q, out, sizeof out);
    assert_string_equal(out, "r ");
    inflight_deinit(&q);
}

static void test_operations_outliving_their_queue_find_no_owner(void **state)
{
    (void)state;
    int owner;
    inflight q;
    inflight_init(&q, &owner);
    inflight_op *ops[100];
    for (int i = 0; i < 100; i++)
        ops[i] = inflight_start(&q, (size_t)i);
    inflight_finish(ops[50], &(size_t){ 0 });   /* one parked early */
    inflight_wait(&q, "never", 5, false);
    inflight_deinit(&q);                        /* the receipt and early list go */
    memset(&q, 0xa5, sizeof q);                 /* the owner's memory is reused */
    for (int i = 99; i >= 0; i--) {
        if (i == 50)
            continue;
        size_t cost;
        assert_null(inflight_finish(ops[i], &cost));
        assert_int_equal(cost, (size_t)i);
    }
}

static void test_a_sends_receipt_carries_its_own_message_id_in_order(void **state)
{
    (void)state;
    int owner;
    inflight q;
    inflight_init(&q, &owner);
    char out[256] = "";
    inflight_op *a = inflight_start(&q, 1);
    inflight_wait_op(&q, a, "ra", 2);
    inflight_op *b = inflight_start(&q, 1);
    inflight_wait_op(&q, b, "rb", 2);
    inflight_op *c = inflight_start(&q, 1);     /* a SEND without a receipt */
    inflight_wait(&q, "rx", 2, false);          /* after c, no id of its own */
    size_t cost;
    inflight_set_id(b, "1700000000000-1", 15); /* b first: its receipt waits for a */
    inflight_finish(b, &cost);
    drain(&q, out, sizeof out);
    assert_string_equal(out, "");
    inflight_set_id(a, "1700000000000-0", 15);
    inflight_finish(a, &cost);
    drain(&q, out, sizeof out);
    assert_string_equal(out, "ra=1700000000000-0 rb=1700000000000-1 ");
    inflight_set_id(c, "1700000000000-2", 15);  /* tied to no receipt: nowhere */
    inflight_finish(c, &cost);
    drain(&q, out, sizeof out);
    assert_string_equal(out, "ra=1700000000000-0 rb=1700000000000-1 rx ");
    inflight_deinit(&q);
}

static void test_a_failed_publish_has_no_id_and_an_overlong_id_none_either(void **state)
{
    (void)state;
    int owner;
    inflight q;
    inflight_init(&q, &owner);
    char out[256] = "";
    inflight_op *a = inflight_start(&q, 1);
    inflight_wait_op(&q, a, "ra", 2);
    char big[INFLIGHT_MID_MAX + 1];
    memset(big, '7', sizeof big);
    inflight_set_id(a, big, sizeof big);
    size_t cost;
    inflight_finish(a, &cost);
    drain(&q, out, sizeof out);
    assert_string_equal(out, "ra ");
    inflight_deinit(&q);
}

static void test_cancel_drops_the_receipt_tied_to_the_operation(void **state)
{
    (void)state;
    int owner;
    inflight q;
    inflight_init(&q, &owner);
    inflight_op *a = inflight_start(&q, 10);
    inflight_wait(&q, "r0", 2, false);
    inflight_op *b = inflight_start(&q, 20);
    inflight_wait_op(&q, b, "rb", 2);
    assert_int_equal(inflight_cancel(&q, b), 20 + inflight_receipt_cost(2));
    inflight_wait(&q, "r1", 2, false);          /* the tail is right again */
    size_t cost;
    inflight_finish(a, &cost);
    char out[64] = "";
    drain(&q, out, sizeof out);
    assert_string_equal(out, "r0 r1 ");
    assert_true(inflight_idle(&q));
    inflight_deinit(&q);
}

static void test_an_operation_outliving_its_queue_writes_no_id(void **state)
{
    (void)state;
    int owner;
    inflight q;
    inflight_init(&q, &owner);
    inflight_op *a = inflight_start(&q, 1);
    inflight_wait_op(&q, a, "ra", 2);
    inflight_deinit(&q);                        /* the receipt goes */
    inflight_set_id(a, "1-0", 3);               /* must not touch it */
    size_t cost;
    assert_null(inflight_finish(a, &cost));
}

static void test_costs_cover_the_records(void **state)
{
    (void)state;
    assert_true(inflight_op_cost() >= 32);
    assert_true(inflight_receipt_cost(4000) >= 4000 + sizeof(inflight_receipt));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_queue_lets_receipts_through),
        cmocka_unit_test(test_receipts_wait_for_every_earlier_operation_in_any_order),
        cmocka_unit_test(test_cancel_forgets_the_latest_operation),
        cmocka_unit_test(test_operations_outliving_their_queue_find_no_owner),
        cmocka_unit_test(test_a_sends_receipt_carries_its_own_message_id_in_order),
        cmocka_unit_test(test_a_failed_publish_has_no_id_and_an_overlong_id_none_either),
        cmocka_unit_test(test_cancel_drops_the_receipt_tied_to_the_operation),
        cmocka_unit_test(test_an_operation_outliving_its_queue_writes_no_id),
        cmocka_unit_test(test_costs_cover_the_records),
    };
    return cmocka_run_group_tests_name("inflight", tests, NULL, NULL);
}
