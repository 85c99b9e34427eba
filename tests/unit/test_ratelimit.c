/* test_ratelimit.c — the input token buckets (server/ratelimit.c): every
 * frame kind is charged, bursts pass, debt stops reading until the time the
 * rate says, and slow rules refill even when asked very often. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ratelimit.h"

/* How long (ms, stepping by `step`) until ratelimit_may says yes again. */
static uint64_t wait_until_may(ratelimit *rl, const ratelimit_rules *r, uint64_t *now,
                               uint64_t step)
{
    uint64_t start = *now;
    while (!ratelimit_may(rl, r, *now)) {
        *now += step;
        if (*now - start > 3600000)
            fail_msg("never refilled");
    }
    return *now - start;
}

static void test_all_off_is_inactive_and_never_blocks(void **state)
{
    (void)state;
    ratelimit_rules r = { { 0, 100 }, { 0, 500 }, { 0, 4096 } };
    assert_false(ratelimit_active(&r));
    ratelimit rl;
    ratelimit_init(&rl, &r, 0);
    for (int i = 0; i < 100000; i++)
        ratelimit_charge(&rl, &r, RATELIMIT_SEND, 1 << 20);
    assert_true(ratelimit_may(&rl, &r, 0));
}

static void test_frames_bucket_charges_every_command(void **state)
{
    (void)state;
    ratelimit_rules r = { { 0, 0 }, { 10, 5 }, { 0, 0 } };
    assert_true(ratelimit_active(&r));
    ratelimit rl;
    ratelimit_init(&rl, &r, 1000);
    /* Five frames of any kind pass at once; a run of heart-beat EOLs is
     * one of them. */
    ratelimit_charge(&rl, &r, RATELIMIT_FRAME, 100);
    ratelimit_charge(&rl, &r, RATELIMIT_SEND, 100);
    ratelimit_charge(&rl, &r, RATELIMIT_HEARTBEAT, 1);
    ratelimit_charge(&rl, &r, RATELIMIT_FRAME, 100);
    ratelimit_charge(&rl, &r, RATELIMIT_FRAME, 100);
    assert_true(ratelimit_may(&rl, &r, 1000));
    /* The sixth goes into debt by one frame: 100 ms at 10/s to pay it. */
    ratelimit_charge(&rl, &r, RATELIMIT_FRAME, 100);
    uint64_t now = 1000;
    assert_false(ratelimit_may(&rl, &r, now));
    assert_int_equal(wait_until_may(&rl, &r, &now, 1), 100);
}

static void test_sends_bucket_charges_only_sends(void **state)
{
    (void)state;
    ratelimit_rules r = { { 2, 1 }, { 0, 0 }, { 0, 0 } };
    ratelimit rl;
    ratelimit_init(&rl, &r, 0);
    for (int i = 0; i < 1000; i++)
        ratelimit_charge(&rl, &r, RATELIMIT_FRAME, 10);
    assert_true(ratelimit_may(&rl, &r, 0));
    ratelimit_charge(&rl, &r, RATELIMIT_SEND, 10);
    assert_true(ratelimit_may(&rl, &r, 0));
    ratelimit_charge(&rl, &r, RATELIMIT_SEND, 10);
    uint64_t now = 0;
    assert_int_equal(wait_until_may(&rl, &r, &now, 10), 500);
}

static void test_bytes_bucket_counts_every_frame_and_heartbeat(void **state)
{
    (void)state;
    ratelimit_rules r = { { 0, 0 }, { 0, 0 }, { 1000, 1000 } };
    ratelimit rl;
    ratelimit_init(&rl, &r, 0);
    ratelimit_charge(&rl, &r, RATELIMIT_FRAME, 600);
    ratelimit_charge(&rl, &r, RATELIMIT_HEARTBEAT, 400);
    assert_true(ratelimit_may(&rl, &r, 0));
    ratelimit_charge(&rl, &r, RATELIMIT_SEND, 500);
    uint64_t now = 0;
    assert_int_equal(wait_until_may(&rl, &r, &now, 1), 500);
}

static void test_a_frame_larger_than_the_burst_passes_once_full(void **state)
{
    (void)state;
    ratelimit_rules r = { { 0, 0 }, { 0, 0 }, { 1000, 1000 } };
    ratelimit rl;
    ratelimit_init(&rl, &r, 0);
    ratelimit_charge(&rl, &r, RATELIMIT_SEND, 5000);   /* 4 s of debt */
    uint64_t now = 0;
    assert_int_equal(wait_until_may(&rl, &r, &now, 100), 4000);
    /* Refill never passes the burst, however long the pause. */
    now += 3600000;
    assert_true(ratelimit_may(&rl, &r, now));
    ratelimit_charge(&rl, &r, RATELIMIT_SEND, 1001);
    assert_false(ratelimit_may(&rl, &r, now));
}

static void test_slow_rule_refills_when_asked_every_millisecond(void **state)
{
    (void)state;
    /* 0.5 frames a second is half a thousandth of a frame per ms: asked
     * every ms, integer levels in thousandths would never refill. */
    ratelimit_rules r = { { 0, 0 }, { 0.5, 1 }, { 0, 0 } };
    ratelimit rl;
    ratelimit_init(&rl, &r, 0);
    ratelimit_charge(&rl, &r, RATELIMIT_FRAME, 1);
    ratelimit_charge(&rl, &r, RATELIMIT_FRAME, 1);
    uint64_t now = 0;
    uint64_t waited = wait_until_may(&rl, &r, &now, 1);
    assert_in_range(waited, 1999, 2001);
}

static void test_every_bucket_must_be_out_of_debt(void **state)
{
    (void)state;
    ratelimit_rules r = { { 1, 1 }, { 10, 1 }, { 100, 100 } };
    ratelimit rl;
    ratelimit_init(&rl, &r, 0);
    ratelimit_charge(&rl, &r, RATELIMIT_SEND, 50);
    ratelimit_charge(&rl, &r, RATELIMIT_SEND, 50);
    /* frames: 1 in debt (100 ms), bytes: 0, sends: 1 in debt (1 s). */
    uint64_t now = 0;
    assert_int_equal(wait_until_may(&rl, &r, &now, 10), 1000);
}

static void test_time_going_backwards_adds_nothing(void **state)
{
    (void)state;
    ratelimit_rules r = { { 0, 0 }, { 1, 1 }, { 0, 0 } };
    ratelimit rl;
    ratelimit_init(&rl, &r, 5000);
    ratelimit_charge(&rl, &r, RATELIMIT_FRAME, 1);
    ratelimit_charge(&rl, &r, RATELIMIT_FRAME, 1);
    assert_false(ratelimit_may(&rl, &r, 4000));
    assert_false(ratelimit_may(&rl, &r, 4500));
    /* Only the time after 5000 counts. */
    assert_false(ratelimit_may(&rl, &r, 5500));
    assert_true(ratelimit_may(&rl, &r, 6000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_off_is_inactive_and_never_blocks),
        cmocka_unit_test(test_frames_bucket_charges_every_command),
        cmocka_unit_test(test_sends_bucket_charges_only_sends),
        cmocka_unit_test(test_bytes_bucket_counts_every_frame_and_heartbeat),
        cmocka_unit_test(test_a_frame_larger_than_the_burst_passes_once_full),
        cmocka_unit_test(test_slow_rule_refills_when_asked_every_millisecond),
        cmocka_unit_test(test_every_bucket_must_be_out_of_debt),
        cmocka_unit_test(test_time_going_backwards_adds_nothing),
    };
    return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
