/* test_session_delay.c — write coalescing's wheel (server/session_delay.c)
 * on a session list with bare sessions and a double of the loop clock
 * (uv_now): with the delay off nothing waits; a MESSAGE within the delay
 * of the last write waits until that write is the delay old, and not
 * after the delay is over; several sessions due at different times are
 * released in order, each when its time comes; the next due time is the
 * earliest waiting one, also when an earlier one comes after a later; a
 * session taken off the wheel is never released; a loop that stalls for
 * longer than a revolution releases everything, none late. The dirty list
 * (session_out.c's) is where a released session goes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "session_internal.h"
#include "session.h"

/* --- the clock: sessions read loop time through uv_now ------------------- */

static uint64_t now_ms;

uint64_t uv_now(const uv_loop_t *loop)
{
    (void)loop;
    return now_ms;
}

/* --- a list of bare sessions -------------------------------------------- */

enum { NSESS = 4 };

typedef struct fixture {
    server_config conf;
    metrics mt;
    session_env env;
    session_list *list;
    session s[NSESS];
} fixture;

static fixture *fixture_new(int delay_ms)
{
    fixture *f = calloc(1, sizeof *f);
    f->conf.hz = 10;
    f->conf.ws_write_max = 4096;
    f->conf.ws_write_delay_ms = delay_ms;
    f->env.conf = &f->conf;
    f->env.metrics = &f->mt;
    f->list = session_list_create(&f->env);
    for (int i = 0; i < NSESS; i++) {
        f->s[i].list = f->list;
        f->s[i].state = SESSION_CONNECTED;
    }
    return f;
}

static void fixture_free(fixture *f)
{
    session_list_destroy(f->list);
    free(f);
}

/* Is s on the dirty list (released)? */
static bool dirty(const session *s)
{
    return s->dirty_at && s->list->dirty[s->dirty_at - 1] == s;
}

/* The dirty list written: every session on it off it. */
static void clear_dirty(session_list *list)
{
    for (uint32_t i = 0; i < list->ndirty; i++)
        if (list->dirty[i])
            list->dirty[i]->dirty_at = 0;
    list->ndirty = 0;
}

/* s wrote at `at`, and at now_ms a MESSAGE is queued for it. */
static bool message_at(session *s, uint64_t at)
{
    s->last_tx_ms = at;
    return session_delay_wait(s);
}

static void off_nothing_waits(void **state)
{
    (void)state;
    fixture *f = fixture_new(0);
    now_ms = 1000;
    assert_false(message_at(&f->s[0], 1000));
    assert_null(f->list->waits.slots);
    assert_int_equal(session_list_write_due(f->list), 0);
    fixture_free(f);
}

static void waits_until_last_write_plus_delay(void **state)
{
    (void)state;
    fixture *f = fixture_new(5);
    session *s = &f->s[0];
    now_ms = 1002;
    assert_true(message_at(s, 1000));
    assert_int_not_equal(s->wait_at, 0);
    assert_int_equal(f->mt.writes_delayed, 1);
    assert_int_equal(session_list_write_due(f->list), 1005);
    session_delay_due(f->list, 1004);
    assert_false(dirty(s));
    session_delay_due(f->list, 1005);
    assert_true(dirty(s));
    assert_int_equal(s->wait_at, 0);
    assert_int_equal(f->list->waits.count, 0);
    assert_int_equal(session_list_write_due(f->list), 0);
    clear_dirty(f->list);
    /* The delay over: no wait. */
    now_ms = 1010;
    assert_false(message_at(s, 1005));
    now_ms = 1009;
    assert_true(message_at(s, 1005));
    fixture_free(f);
}

static void released_in_order_earliest_first(void **state)
{
    (void)state;
    fixture *f = fixture_new(10);
    session *a = &f->s[0], *b = &f->s[1], *c = &f->s[2];
    now_ms = 2005;
    assert_true(message_at(a, 2004));          /* due 2014 */
    assert_int_equal(session_list_write_due(f->list), 2014);
    assert_true(message_at(b, 2001));          /* due 2011: earlier, added later */
    assert_int_equal(session_list_write_due(f->list), 2011);
    assert_true(message_at(c, 2004));          /* due 2014, with a */
    session_delay_due(f->list, 2011);
    assert_true(dirty(b));
    assert_false(dirty(a));
    assert_false(dirty(c));
    assert_int_equal(session_list_write_due(f->list), 2014);
    session_delay_due(f->list, 2014);
    assert_true(dirty(a));
    assert_true(dirty(c));
    assert_int_equal(session_list_write_due(f->list), 0);
    clear_dirty(f->list);
    fixture_free(f);
}

static void cancelled_is_never_released(void **state)
{
    (void)state;
    fixture *f = fixture_new(5);
    session *a = &f->s[0], *b = &f->s[1];
    now_ms = 3001;
    assert_true(message_at(a, 3000));
    assert_true(message_at(b, 3000));
    session_delay_cancel(a);
    assert_int_equal(a->wait_at, 0);
    session_delay_due(f->list, 3005);
    assert_false(dirty(a));
    assert_true(dirty(b));
    assert_int_equal(f->list->waits.count, 0);
    clear_dirty(f->list);
    /* Its slot, once emptied, takes it again. */
    now_ms = 3006;
    assert_true(message_at(a, 3005));
    session_delay_due(f->list, 3010);
    assert_true(dirty(a));
    clear_dirty(f->list);
    fixture_free(f);
}

static void a_stalled_loop_releases_all_none_late(void **state)
{
    (void)state;
    fixture *f = fixture_new(5);                 /* 8 slots */
    session *a = &f->s[0], *b = &f->s[1];
    now_ms = 4001;
    assert_true(message_at(a, 4000));           /* due 4005 */
    /* The loop stalls; at 4099 b waits too (due 4100), many revolutions
     * past the wheel's position, in the slot just before a's: one whole
     * revolution from a's slot reaches it last. */
    now_ms = 4099;
    assert_true(message_at(b, 4095));
    now_ms = 4100;
    assert_int_equal(session_list_write_due(f->list), 4005);
    session_delay_due(f->list, 4100);
    assert_true(dirty(a));
    assert_true(dirty(b));                       /* early, not late */
    assert_int_equal(f->list->waits.count, 0);
    clear_dirty(f->list);
    /* Much later, everything works as before. */
    now_ms = 90001;
    assert_true(message_at(a, 90000));
    assert_int_equal(session_list_write_due(f->list), 90005);
    session_delay_due(f->list, 90004);
    assert_false(dirty(a));
    session_delay_due(f->list, 90005);
    assert_true(dirty(a));
    clear_dirty(f->list);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(off_nothing_waits),
        cmocka_unit_test(waits_until_last_write_plus_delay),
        cmocka_unit_test(released_in_order_earliest_first),
        cmocka_unit_test(cancelled_is_never_released),
        cmocka_unit_test(a_stalled_loop_releases_all_none_late),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
