/* test_resume.c — x-since replays (server/resume.c) with a real room, a
 * real gate and a real libuv loop, history and the relay's encoder as
 * doubles, and the connection as a sink that records what it was asked:
 * pages replay in order after x-since, live messages are held meanwhile
 * and only those newer than the replay follow it, the replay waits for a
 * history slot and for the client to read, and every way out (cancel,
 * slow consumer, history down) leaves nothing behind. Links resume, room,
 * seqbuf, msg and gate only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop_until.h"
#include "resume.h"
#include "room.h"
#include "seqbuf.h"

/* --- doubles: history reads wait for the test; the relay encodes ids ----- */

static history_fn fetch_fn;
static void *fetch_ctx;
static history_query fetch_q;
static int fetches;

void history_fetch(history *h, const history_query *q, history_fn fn, void *ctx)
{
    (void)h;
    assert_null(fetch_fn);              /* one read in flight at a time */
    fetch_fn = fn;
    fetch_ctx = ctx;
    fetch_q = *q;
    fetches++;
}

msg *relay_message(relay *r, const envelope *env)
{
    (void)r;
    buf b;
    buf_init(&b);
    buf_printf(&b, "destination:/topic/%s\nmessage-id:%s\n\n", env->room, env->id);
    buf_append_char(&b, '\0');
    msg *m = msg_create(MSG_MESSAGE, &b);
    buf_deinit(&b);
    msg_set_id(m, env->id, strlen(env->id));
    return m;
}

/* Answer the read in flight with messages 1-<first>..1-<last> (none when
 * first > last), or as failed. */
static void answer(int first, int last, bool more, bool failed)
{
    envelope msgs[16];
    char ids[16][24];
    size_t n = 0;
    for (int i = first; i <= last; i++, n++) {
        memset(&msgs[n], 0, sizeof msgs[n]);
        snprintf(ids[n], sizeof ids[n], "1-%d", i);
        msgs[n].id = ids[n];
        msgs[n].room = (char *)(uintptr_t)"r";
    }
    history_page page = { .status = failed ? HISTORY_UNAVAILABLE : HISTORY_OK,
                          .msgs = failed ? NULL : msgs, .n = failed ? 0 : n, .more = more,
                          .why = failed ? "MySQL unavailable" : NULL };
    history_fn fn = fetch_fn;
    fetch_fn = NULL;
    fn(fetch_ctx, &page);
}

/* --- the connection: a sink that records, and a subscriber in the room ---- */

typedef struct conn {
    subscriber sub;          /* first: the room's member */
    resume *rs;              /* the slot resume_start fills */
    size_t pending;          /* what the client has not read */
    size_t held, budget;     /* charged by hold, and the most it may be */
    char got[512];           /* ids replayed or delivered live, in order */
    int aborted;             /* error_reason + 1, 0: none */
} conn;

static void note(conn *c, msg *m)
{
    size_t n = strlen(c->got);
    snprintf(c->got + n, sizeof c->got - n, "%.*s ", (int)m->id_len, m->id);
}

static size_t sink_pending(void *ctx) { return ((conn *)ctx)->pending; }
static void sink_replay(void *ctx, msg *m) { note(ctx, m); }

static bool sink_hold(void *ctx, size_t bytes)
{
    conn *c = ctx;
    if (c->held + bytes > c->budget)
        return false;
    c->held += bytes;
    return true;
}

static void sink_unhold(void *ctx, size_t bytes)
{
    conn *c = ctx;
    assert_true(bytes <= c->held);
    c->held -= bytes;
}

static void sink_abort(void *ctx, error_reason reason, const char *detail)
{
    (void)detail;
    ((conn *)ctx)->aborted = (int)reason + 1;
}

static const resume_sink sink = { sink_pending, sink_replay, sink_hold, sink_unhold, sink_abort };

/* The room's hook, as the session does it: a resuming subscription's live
 * messages go to its resume. */
static void deliver(subscriber *s, msg *m)
{
    conn *c = (conn *)(void *)s;
    if (c->rs && resume_hold(c->rs, m))
        return;
    note(c, m);
}

/* --- a fixture: loop, gate, room, env ------------------------------------- */

typedef struct fix {
    uv_loop_t loop;
    gate *slots;
    room_index *ri;
    room *r;
    metrics mt;
    resume_env env;
    conn c;
} fix;

static void fix_init(fix *f, int slots)
{
    memset(f, 0, sizeof *f);
    fetch_fn = NULL;
    fetches = 0;
    uv_loop_init(&f->loop);
    f->slots = gate_create(slots);
    f->ri = room_index_create(deliver);
    f->env = (resume_env){ .loop = &f->loop, .slots = f->slots, .metrics = &f->mt,
                           .max_pending = 1000, .page = 3 };
    f->c.budget = 1 << 20;
    room_join(f->ri, "r", 1, &f->c.sub);
    f->r = room_lookup(f->ri, "r", 1);
}

static void fix_base(fix *f)
{
    seqbuf_base(room_order(f->r), 1, 0);
    room_based(f->r);
}

static void fix_deinit(fix *f)
{
    resume_cancel(f->c.rs);
    if (f->c.sub.room)
        room_leave(f->ri, &f->c.sub);
    room_index_destroy(f->ri);
    uv_run(&f->loop, UV_RUN_DEFAULT);       /* the pace timer's close frees its resume */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    gate_destroy(f->slots);
    assert_int_equal(f->c.held, 0);          /* everything charged was given back */
}

static void start(fix *f, int since)
{
    msgid s = { 1, (uint64_t)since };
    resume_start(&f->env, &sink, &f->c, &f->c.rs, f->r, 7, s);
    assert_ptr_equal(f->c.rs != NULL, true);
}

/* A live message with id 1-<n>, delivered through the room. */
static void live(fix *f, int n)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "destination:/topic/r\nmessage-id:1-%d\n\n", n);
    buf_append_char(&b, '\0');
    msg *m = msg_create(MSG_MESSAGE, &b);
    buf_deinit(&b);
    char id[24];
    msg_set_id(m, id, (size_t)snprintf(id, sizeof id, "1-%d", n));
    room_deliver(f->r, m);
    msg_unref(m);
}

/* A read (history's or the log's) has been asked for. */
static bool fetch_asked(void)
{
    return fetch_fn != NULL;
}

static void test_pages_replay_in_order_then_the_newer_held_messages(void **state)
{
    (void)state;
    fix f;
    fix_init(&f, 4);
    start(&f, 10);
    assert_int_equal(fetches, 0);            /* not before the room's order is based */
    fix_base(&f);
    assert_int_equal(fetches, 1);
    assert_true(fetch_q.has_after);
    assert_int_equal(fetch_q.after.n, 10);
    assert_int_equal(fetch_q.limit, 3);
    live(&f, 13);                            /* arrive while the replay runs */
    live(&f, 15);
    assert_string_equal(f.c.got, "");
    assert_true(f.c.held > 0);
    answer(11, 13, true, false);
    assert_string_equal(f.c.got, "1-11 1-12 1-13 ");
    assert_int_equal(fetch_q.after.n, 13);
    answer(14, 14, false, false);
    /* 1-13 was replayed already; 1-15 follows the replay; then live. */
    assert_string_equal(f.c.got, "1-11 1-12 1-13 1-14 1-15 ");
    assert_non_null(f.c.rs);                 /* the tail, until a newer live message */
    assert_int_equal(f.c.held, 0);
    live(&f, 16);
    assert_string_equal(f.c.got, "1-11 1-12 1-13 1-14 1-15 1-16 ");
    assert_null(f.c.rs);                     /* live */
    assert_int_equal(f.mt.resume_overlap_dropped, 0);
    fix_deinit(&f);
}

/* History ahead of the bus: the replay delivers messages whose live copies
 * reach this server only after the replay is done. They are dropped, once
 * each, and the first newer one ends the tail. */
static void test_live_copies_of_replayed_messages_are_dropped(void **state)
{
    (void)state;
    fix f;
    fix_init(&f, 4);
    start(&f, 10);
    fix_base(&f);
    answer(11, 13, false, false);            /* history has 11-13; none came live yet */
    assert_string_equal(f.c.got, "1-11 1-12 1-13 ");
    assert_non_null(f.c.rs);
    live(&f, 12);                            /* their live copies, late */
    live(&f, 13);
    assert_string_equal(f.c.got, "1-11 1-12 1-13 ");
    assert_int_equal(f.mt.resume_overlap_dropped, 2);
    live(&f, 14);
    assert_string_equal(f.c.got, "1-11 1-12 1-13 1-14 ");
    assert_null(f.c.rs);
    live(&f, 15);
    assert_string_equal(f.c.got, "1-11 1-12 1-13 1-14 1-15 ");
    fix_deinit(&f);
}

static void test_a_reader_behind_is_waited_for(void **state)
{
    (void)state;
    fix f;
    fix_init(&f, 4);
    start(&f, 0);
    fix_base(&f);
    f.c.pending = 600;                       /* over max_pending / 2 */
    answer(1, 3, true, false);
    /* The page is cut where the queue is too full: nothing queued yet, and
     * the next read waits for the client. */
    assert_string_equal(f.c.got, "");
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_null(fetch_fn);
    f.c.pending = 0;
    assert_true(loop_until(&f.loop, fetch_asked, 2000));
    assert_int_equal(fetch_q.after.n, 0);    /* the cut page is read again */
    answer(1, 2, false, false);
    assert_string_equal(f.c.got, "1-1 1-2 ");
    assert_non_null(f.c.rs);                 /* the tail; fix_deinit cancels it */
    fix_deinit(&f);
}

static void test_it_waits_in_line_for_a_history_slot(void **state)
{
    (void)state;
    fix f;
    fix_init(&f, 1);
    assert_true(gate_try(f.slots));          /* someone else holds the only slot */
    start(&f, 0);
    fix_base(&f);
    assert_int_equal(fetches, 0);
    gate_leave(f.slots);                     /* the slot goes to the replay */
    assert_int_equal(fetches, 1);
    answer(1, 1, false, false);
    assert_string_equal(f.c.got, "1-1 ");
    assert_true(gate_try(f.slots));          /* given back after the page */
    gate_leave(f.slots);
    fix_deinit(&f);
}

static void test_cancel_in_every_state_leaves_nothing(void **state)
{
    (void)state;
    fix f;
    /* Before the base: the room's going frees it. */
    fix_init(&f, 1);
    start(&f, 0);
    resume_cancel(f.c.rs);
    assert_null(f.c.rs);
    fix_deinit(&f);
    /* In line for a slot. */
    fix_init(&f, 1);
    assert_true(gate_try(f.slots));
    start(&f, 0);
    fix_base(&f);
    live(&f, 5);
    resume_cancel(f.c.rs);
    assert_null(f.c.rs);
    gate_leave(f.slots);
    assert_int_equal(fetches, 0);
    fix_deinit(&f);
    /* A read in flight: its answer completes into nothing. */
    fix_init(&f, 1);
    start(&f, 0);
    fix_base(&f);
    resume_cancel(f.c.rs);
    answer(1, 3, true, false);
    assert_string_equal(f.c.got, "");
    assert_true(gate_try(f.slots));          /* the slot came back */
    gate_leave(f.slots);
    fix_deinit(&f);
    /* Waiting for the client to read (the pace timer). */
    fix_init(&f, 1);
    start(&f, 0);
    fix_base(&f);
    f.c.pending = 999;
    answer(1, 3, true, false);
    resume_cancel(f.c.rs);
    fix_deinit(&f);
}

static void test_a_client_that_does_not_read_is_a_slow_consumer(void **state)
{
    (void)state;
    fix f;
    fix_init(&f, 1);
    f.env.max_pending = 150;
    start(&f, 0);
    fix_base(&f);
    live(&f, 1);                             /* ~40 bytes each */
    live(&f, 2);
    live(&f, 3);
    assert_non_null(f.c.rs);
    live(&f, 4);                             /* over stomp.max_pending */
    assert_int_equal(f.c.aborted, ERROR_SLOW_CONSUMER + 1);
    assert_null(f.c.rs);
    assert_int_equal(f.mt.slow_consumers, 1);
    assert_int_equal(f.mt.conn_memory_closes, 0);
    answer(1, 1, false, false);              /* the read in flight ends into nothing */
    fix_deinit(&f);

    fix_init(&f, 1);
    f.c.budget = 100;                        /* limits.conn_memory, as the sink says */
    start(&f, 0);
    fix_base(&f);
    live(&f, 1);
    live(&f, 2);
    live(&f, 3);
    assert_int_equal(f.c.aborted, ERROR_SLOW_CONSUMER + 1);
    assert_int_equal(f.mt.conn_memory_closes, 1);
    answer(1, 1, false, false);
    fix_deinit(&f);
}

static void test_history_down_fails_the_resume(void **state)
{
    (void)state;
    fix f;
    fix_init(&f, 1);
    start(&f, 0);
    fix_base(&f);
    live(&f, 1);
    answer(0, -1, false, true);
    assert_int_equal(f.c.aborted, ERROR_RESUME_FAILED + 1);
    assert_null(f.c.rs);
    assert_string_equal(f.c.got, "");
    fix_deinit(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pages_replay_in_order_then_the_newer_held_messages),
        cmocka_unit_test(test_live_copies_of_replayed_messages_are_dropped),
        cmocka_unit_test(test_a_reader_behind_is_waited_for),
        cmocka_unit_test(test_it_waits_in_line_for_a_history_slot),
        cmocka_unit_test(test_cancel_in_every_state_leaves_nothing),
        cmocka_unit_test(test_a_client_that_does_not_read_is_a_slow_consumer),
        cmocka_unit_test(test_history_down_fails_the_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
