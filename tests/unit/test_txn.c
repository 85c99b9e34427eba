/* test_txn.c — a connection's transactions (server/txn.c): frames are deep
 * copies kept in order, each transaction remembers what it was charged, and
 * ending or clearing frees everything (ASan checks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "txn.h"

/* A SEND with a destination and body, its bytes in caller storage that the
 * test overwrites afterwards (the transaction must hold copies). */
static stomp_frame make_send(char *dest, char *body, stomp_header *h)
{
    h->name.p = "destination";
    h->name.len = 11;
    h->value.p = dest;
    h->value.len = strlen(dest);
    stomp_frame f = { STOMP_CMD_SEND, h, 1, { body, strlen(body) } };
    return f;
}

static void test_frames_are_copies_in_order(void **state)
{
    (void)state;
    txn_set ts = { 0 };
    txn *t = txn_begin(&ts, "tx1", 3, txn_open_cost(3));
    char dest[32], body[32];
    stomp_header h;
    for (int i = 0; i < 10; i++) {
        strcpy(dest, "/topic/a");
        snprintf(body, sizeof body, "body %d", i);
        stomp_frame f = make_send(dest, body, &h);
        txn_add(t, &f, 100);
        memset(body, 'x', strlen(body));
        memset(dest, 'y', strlen(dest));
    }
    assert_int_equal(txn_count(t), 10);
    for (int i = 0; i < 10; i++) {
        char want[32];
        snprintf(want, sizeof want, "body %d", i);
        const stomp_frame *f = txn_frame(t, (size_t)i);
        assert_int_equal(f->body.len, strlen(want));
        assert_memory_equal(f->body.p, want, strlen(want));
        assert_true(stomp_str_eq(stomp_frame_header(f, "destination"), "/topic/a"));
    }
    assert_int_equal(txn_charged(t), txn_open_cost(3) + 10 * 100);
    assert_true(txn_bytes(t) > 10 * strlen("body 0"));
    txn_end(&ts, t);
    assert_int_equal(ts.n, 0);
    assert_null(ts.head);
}

static void test_find_by_name_and_clear_sums_the_charges(void **state)
{
    (void)state;
    txn_set ts = { 0 };
    txn_begin(&ts, "a", 1, 10);
    txn *b = txn_begin(&ts, "bb", 2, 20);
    txn_begin(&ts, "ccc", 3, 30);
    assert_int_equal(ts.n, 3);
    assert_ptr_equal(txn_find(&ts, "bb", 2), b);
    assert_null(txn_find(&ts, "b", 1));
    assert_null(txn_find(&ts, "bbx", 3));
    char dest[] = "/topic/r", body[] = "hello";
    stomp_header h;
    stomp_frame f = make_send(dest, body, &h);
    txn_add(b, &f, 5);
    assert_true(txn_frame_cost(&f) >= stomp_frame_footprint(&f));
    txn_end(&ts, b);
    assert_int_equal(ts.n, 2);
    assert_null(txn_find(&ts, "bb", 2));
    assert_int_equal(txn_clear(&ts), 40);
    assert_int_equal(ts.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_are_copies_in_order),
        cmocka_unit_test(test_find_by_name_and_clear_sums_the_charges),
    };
    return cmocka_run_group_tests_name("txn", tests, NULL, NULL);
}
