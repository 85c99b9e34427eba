/* test_presence.c — presence subscriptions (server/presence.c) against a
 * registry double: the snapshot comes first, then the events newer than
 * it that arrived meanwhile; nothing a subscriber has seen is repeated; a
 * resync restates every room; a subscription that goes while its snapshot
 * is on the way gets nothing. Links presence, room, seqbuf and msg only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presence.h"

/* --- the registry double: registry_presence calls wait for the test ------ */

typedef struct call {
    char room[32];
    registry_json_fn fn;
    void *ctx;
} call;

static call calls[16];
static int ncalls;
static bool registry_down;

int registry_presence(registry *g, const char *room, registry_json_fn fn, void *ctx)
{
    (void)g;
    if (registry_down)
        return -1;
    assert_true(ncalls < 16);
    snprintf(calls[ncalls].room, sizeof calls[ncalls].room, "%s", room);
    calls[ncalls].fn = fn;
    calls[ncalls].ctx = ctx;
    ncalls++;
    return 0;
}

/* Answer call i with a snapshot at version v (NULL value: the registry failed). */
static void answer(int i, long v, bool failed)
{
    json_t *snap = failed ? NULL : json_pack("{s:i, s:[], s:b, s:i}", "count", 0, "members",
                                             "truncated", 0, "v", (json_int_t)v);
    calls[i].fn(calls[i].ctx, snap);
    json_decref(snap);
}

/* --- subscribers: what reached them, as "s<v>" (snapshot) or "e<v>" ------ */

typedef struct member {
    subscriber sub;          /* first */
    char got[256];
} member;

static void deliver(subscriber *s, msg *m)
{
    member *mb = (member *)(void *)s;
    bool snap = strstr(m->id, "snapshot") != NULL;
    size_t n = strlen(mb->got);
    snprintf(mb->got + n, sizeof mb->got - n, "%c%llu ", snap ? 's' : 'e',
             (unsigned long long)m->seq);
}

static void event(presence *p, const char *room, uint64_t v)
{
    char json[96];
    int n = snprintf(json, sizeof json, "{\"type\":\"join\",\"room\":\"%s\",\"v\":%llu}", room,
                     (unsigned long long)v);
    presence_on_event(p, room, v, json, (size_t)n);
}

static int setup(void **state)
{
    (void)state;
    ncalls = 0;
    registry_down = false;
    return 0;
}

static void test_snapshot_then_the_newer_events_that_came_meanwhile(void **state)
{
    (void)state;
    presence *p = presence_create(deliver);
    presence_attach(p, (registry *)(uintptr_t)1);
    member a = { 0 };
    assert_int_equal(presence_subscribe(p, &a.sub, "r"), 0);
    assert_int_equal(ncalls, 1);
    assert_string_equal(calls[0].room, "r");
    event(p, "r", 4);             /* already in the snapshot (v 5) */
    event(p, "r", 6);             /* newer: follows it */
    event(p, "other", 7);         /* another room */
    assert_string_equal(a.got, "");
    answer(0, 5, false);
    assert_string_equal(a.got, "s5 e6 ");
    event(p, "r", 6);             /* seen */
    event(p, "r", 7);
    assert_string_equal(a.got, "s5 e6 e7 ");
    event(p, "r", 1);             /* the room's count started again: always sent */
    assert_string_equal(a.got, "s5 e6 e7 e1 ");
    presence_unsubscribe(p, &a.sub);
    event(p, "r", 2);
    assert_string_equal(a.got, "s5 e6 e7 e1 ");
    presence_destroy(p);
}

static void test_resync_restates_every_room_once(void **state)
{
    (void)state;
    presence *p = presence_create(deliver);
    presence_attach(p, (registry *)(uintptr_t)1);
    member a = { 0 }, b = { 0 };
    presence_subscribe(p, &a.sub, "r");
    presence_subscribe(p, &b.sub, "r");
    answer(0, 3, false);
    answer(1, 3, false);
    ncalls = 0;
    presence_resync(p);
    assert_int_equal(ncalls, 1);  /* one request per room, not per subscriber */
    answer(0, 9, false);
    assert_string_equal(a.got, "s3 s9 ");
    assert_string_equal(b.got, "s3 s9 ");
    presence_unsubscribe(p, &a.sub);
    presence_unsubscribe(p, &b.sub);
    presence_destroy(p);
}

static void test_a_subscription_gone_before_its_snapshot_gets_nothing(void **state)
{
    (void)state;
    presence *p = presence_create(deliver);
    presence_attach(p, (registry *)(uintptr_t)1);
    member a = { 0 };
    presence_subscribe(p, &a.sub, "r");
    event(p, "r", 2);
    presence_unsubscribe(p, &a.sub);
    answer(0, 2, false);           /* completes into nothing (ASan: nothing leaks) */
    assert_string_equal(a.got, "");
    assert_null(a.sub.room);

    member b = { 0 };
    presence_subscribe(p, &b.sub, "r");
    answer(1, 0, true);            /* the registry failed: no snapshot, not joined */
    assert_string_equal(b.got, "");
    assert_null(b.sub.room);
    presence_destroy(p);
}

static void test_registry_down_refuses_at_once(void **state)
{
    (void)state;
    presence *p = presence_create(deliver);
    member a = { 0 };
    assert_int_equal(presence_subscribe(p, &a.sub, "r"), -1);   /* not attached yet */
    presence_attach(p, (registry *)(uintptr_t)1);
    registry_down = true;
    assert_int_equal(presence_subscribe(p, &a.sub, "r"), -1);
    assert_int_equal(ncalls, 0);
    presence_destroy(p);
}

static void test_destroy_with_a_snapshot_on_the_way(void **state)
{
    (void)state;
    presence *p = presence_create(deliver);
    presence_attach(p, (registry *)(uintptr_t)1);
    member a = { 0 };
    presence_subscribe(p, &a.sub, "r");
    presence_destroy(p);
    answer(0, 1, false);            /* the registry's late answer is harmless */
    assert_string_equal(a.got, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_snapshot_then_the_newer_events_that_came_meanwhile, setup),
        cmocka_unit_test_setup(test_resync_restates_every_room_once, setup),
        cmocka_unit_test_setup(test_a_subscription_gone_before_its_snapshot_gets_nothing, setup),
        cmocka_unit_test_setup(test_registry_down_refuses_at_once, setup),
        cmocka_unit_test_setup(test_destroy_with_a_snapshot_on_the_way, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
