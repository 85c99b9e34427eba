/* test_room.c — the local room index (server/room.c), linked with nothing
 * but its own parts (seqbuf, msg): members kept in a dense array with
 * O(1) leave, delivery through the index's hook, room order through the
 * seqbuf, waiters for the order's base, and the destination rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "room.h"
#include "seqbuf.h"

/* A member as the tests see it: which messages reached it. */
typedef struct member {
    subscriber sub;          /* first: the hook gets &member->sub */
    int id;
    int got;
    uint64_t last_seq;
    char seqs[256];
} member;

static void deliver(subscriber *s, msg *m)
{
    member *mb = (member *)(void *)s;
    mb->got++;
    mb->last_seq = m->seq;
    size_t n = strlen(mb->seqs);
    snprintf(mb->seqs + n, sizeof mb->seqs - n, "%llu ", (unsigned long long)m->seq);
}

static msg *message(uint64_t epoch, uint64_t seq)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "destination:/topic/r\nmessage-id:%llu\n\nx", (unsigned long long)seq);
    buf_append_char(&b, '\0');
    msg *m = msg_create(MSG_MESSAGE, &b);
    buf_deinit(&b);
    m->epoch = epoch;
    m->seq = seq;
    return m;
}

/* Every member of r sits at its slot and points at r. */
static void check_invariant(room *r)
{
    size_t n;
    subscriber *const *ms = room_members(r, &n);
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(ms[i]->room, r);
        assert_int_equal(ms[i]->slot, i);
    }
}

static void test_join_and_leave_keep_every_slot(void **state)
{
    (void)state;
    room_index *ri = room_index_create(deliver);
    enum { N = 200 };
    member *m = calloc(N, sizeof *m);
    for (int i = 0; i < N; i++) {
        bool created = room_join(ri, "physics", 7, &m[i].sub);
        assert_int_equal(created, i == 0);
    }
    room *r = room_lookup(ri, "physics", 7);
    assert_non_null(r);
    assert_string_equal(room_name(r), "physics");
    check_invariant(r);
    /* Leave in a scattered order: each leave moves the last member into the
     * leaver's slot, and every slot stays right. */
    unsigned x = 12345;
    int left = 0;
    bool gone[N] = { false };
    while (left < N - 1) {
        x = x * 1103515245u + 12345u;
        int i = (int)(x % N);
        if (gone[i])
            continue;
        assert_false(room_leave(ri, &m[i].sub));
        assert_null(m[i].sub.room);
        gone[i] = true;
        left++;
        check_invariant(r);
        size_t n;
        room_members(r, &n);
        assert_int_equal(n, N - left);
    }
    assert_int_equal(room_index_count(ri), 1);
    for (int i = 0; i < N; i++) {
        if (!gone[i]) {
            assert_true(room_leave(ri, &m[i].sub));   /* the last one destroys it */
            break;
        }
    }
    assert_null(room_lookup(ri, "physics", 7));
    assert_int_equal(room_index_count(ri), 0);
    room_index_destroy(ri);
    free(m);
}

static void test_deliver_reaches_each_member_once_through_the_hook(void **state)
{
    (void)state;
    room_index *ri = room_index_create(deliver);
    member a = { .id = 1 }, b = { .id = 2 }, c = { .id = 3 };
    room_join(ri, "r", 1, &a.sub);
    room_join(ri, "r", 1, &b.sub);
    room_join(ri, "other", 5, &c.sub);
    msg *m = message(1, 1);
    assert_int_equal(room_deliver(room_lookup(ri, "r", 1), m), 2);
    assert_int_equal(a.got, 1);
    assert_int_equal(b.got, 1);
    assert_int_equal(c.got, 0);
    msg_unref(m);
    room_leave(ri, &a.sub);
    room_leave(ri, &b.sub);
    room_leave(ri, &c.sub);
    room_index_destroy(ri);
}

static void test_offers_leave_in_room_order_once_after_the_base(void **state)
{
    (void)state;
    room_index *ri = room_index_create(deliver);
    member a = { 0 };
    room_join(ri, "r", 1, &a.sub);
    room *r = room_lookup(ri, "r", 1);
    uint64_t order[] = { 4, 2, 3, 2, 5 };         /* out of order, one twice */
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        msg *m = message(9, order[i]);
        room_offer(r, m);                         /* the room takes its own reference */
        msg_unref(m);
    }
    assert_int_equal(a.got, 0);                   /* held until the order is based */
    seqbuf_base(room_order(r), 9, 1);
    assert_string_equal(a.seqs, "2 3 4 5 ");
    assert_int_equal(room_released(r), 4);
    msg *late = message(9, 3);                    /* already released: dropped */
    room_offer(r, late);
    msg_unref(late);
    assert_int_equal(a.got, 4);
    room_leave(ri, &a.sub);
    room_index_destroy(ri);
}

typedef struct waiter_log {
    char out[64];
} waiter_log;

static waiter_log wlog;

static void waiter(void *ctx, bool ok)
{
    size_t n = strlen(wlog.out);
    snprintf(wlog.out + n, sizeof wlog.out - n, "%s%s ", (const char *)ctx, ok ? "+" : "-");
}

static void test_waiters_run_in_order_when_based_or_fail_when_the_room_goes(void **state)
{
    (void)state;
    room_index *ri = room_index_create(deliver);
    member a = { 0 };
    room_join(ri, "r", 1, &a.sub);
    room *r = room_lookup(ri, "r", 1);
    memset(&wlog, 0, sizeof wlog);
    room_when_based(r, waiter, (void *)(uintptr_t)"w1");
    room_when_based(r, waiter, (void *)(uintptr_t)"w2");
    assert_string_equal(wlog.out, "");
    seqbuf_base(room_order(r), 1, 0);
    room_based(r);
    assert_string_equal(wlog.out, "w1+ w2+ ");
    room_when_based(r, waiter, (void *)(uintptr_t)"w3");              /* based already: at once */
    assert_string_equal(wlog.out, "w1+ w2+ w3+ ");
    room_leave(ri, &a.sub);

    /* A room that goes before its order is based tells its waiters so. */
    memset(&wlog, 0, sizeof wlog);
    room_join(ri, "s", 1, &a.sub);
    room_when_based(room_lookup(ri, "s", 1), waiter, (void *)(uintptr_t)"w4");
    room_leave(ri, &a.sub);
    assert_string_equal(wlog.out, "w4- ");
    room_index_destroy(ri);
}

static void test_destinations(void **state)
{
    (void)state;
    static const struct { const char *dest; int kind; const char *name; } cases[] = {
        { "/topic/physics-101", ROOM_DEST_TOPIC, "physics-101" },
        { "/presence/a.b_c~d", ROOM_DEST_PRESENCE, "a.b_c~d" },
        { "/topic/", ROOM_DEST_INVALID, NULL },
        { "/topic/a b", ROOM_DEST_INVALID, NULL },
        { "/topic/a/b", ROOM_DEST_INVALID, NULL },
        { "/topic/abcdefghijklmnopq", ROOM_DEST_INVALID, NULL },   /* over max_len 16 */
        { "/queue/x", ROOM_DEST_UNKNOWN, NULL },
        { "topic/x", ROOM_DEST_UNKNOWN, NULL },
        { "", ROOM_DEST_UNKNOWN, NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        stomp_str d = { cases[i].dest, strlen(cases[i].dest) }, name = { 0 };
        int k = room_destination(&d, 16, &name);
        assert_int_equal(k, cases[i].kind);
        if (cases[i].name) {
            assert_int_equal(name.len, strlen(cases[i].name));
            assert_memory_equal(name.p, cases[i].name, name.len);
        }
    }
    assert_true(room_name_valid("A-Za-z0-9._~", 12, 12));
    assert_false(room_name_valid("é", strlen("é"), 16));
    assert_false(room_name_valid("", 0, 16));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_and_leave_keep_every_slot),
        cmocka_unit_test(test_deliver_reaches_each_member_once_through_the_hook),
        cmocka_unit_test(test_offers_leave_in_room_order_once_after_the_base),
        cmocka_unit_test(test_waiters_run_in_order_when_based_or_fail_when_the_room_goes),
        cmocka_unit_test(test_destinations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
