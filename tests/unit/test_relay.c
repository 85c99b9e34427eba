/* test_relay.c — where room messages come from and go to (server/relay.c),
 * with the registry and the bus as doubles that record each call and let
 * the test answer it: a SEND is appended to the room log, offered to the
 * local room, and handed to the bus with the room copy only when another
 * server has members (local bypass); it completes on the storage confirm;
 * bus messages join the room order; a gap is filled from the log after
 * relay.gap_timeout_ms; a room's first join binds it, its last leave
 * unbinds it. Links relay, room, seqbuf and msg with lib's envelope. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop_until.h"
#include "mem.h"
#include "relay.h"
#include "seqbuf.h"

/* --- the registry double -------------------------------------------------- */

static bool reg_up = true, bus_up = true;
static char log_calls[1024];           /* joins, leaves, binds, ... in order */

static void called(const char *what, const char *arg)
{
    size_t n = strlen(log_calls);
    snprintf(log_calls + n, sizeof log_calls - n, "%s:%s ", what, arg);
}

static registry_publish_fn pub_fn;
static void *pub_ctx;
static envelope *pub_env;

static registry_fetch_fn fetch_fn;
static void *fetch_ctx;
static char fetch_before[48];
static size_t fetch_count;

bool registry_up(const registry *g) { (void)g; return reg_up; }
void registry_join(registry *g, const char *rname, const char *user, const char *name)
{
    (void)g; (void)user; (void)name;
    called("join", rname);
}
void registry_leave(registry *g, const char *rname, const char *user)
{
    (void)g; (void)user;
    called("leave", rname);
}
int registry_publish(registry *g, envelope *env, const registry_pub_opts *opts,
                     registry_publish_fn fn, void *ctx)
{
    (void)g;
    (void)opts;
    pub_fn = fn;
    pub_ctx = ctx;
    pub_env = env;
    return 0;
}
int registry_fetch_before(registry *g, const char *rname, const char *before, size_t count,
                          registry_fetch_fn fn, void *ctx)
{
    (void)g;
    called("fetch", rname);
    fetch_fn = fn;
    fetch_ctx = ctx;
    snprintf(fetch_before, sizeof fetch_before, "%s", before ? before : "");
    fetch_count = count;
    return 0;
}
int registry_room_status(registry *g, const char *rname)
{
    (void)g;
    called("status", rname);
    return 0;
}

/* --- the bus double --------------------------------------------------------- */

static int bus_jobs;
static bool bus_room_copy;
static bus_done_fn bus_done;
static void *bus_ctx;

bool bus_ready(const bus *b) { (void)b; return bus_up; }
bool bus_can_publish(const bus *b) { (void)b; return bus_up; }
void bus_bind(bus *b, const char *rname) { (void)b; called("bind", rname); }
void bus_unbind(bus *b, const char *rname) { (void)b; called("unbind", rname); }
int bus_publish(bus *b, const envelope *env, bool fanout, bus_done_fn done, void *ctx)
{
    (void)b; (void)env;
    bus_jobs++;
    bus_room_copy = fanout;
    bus_done = done;
    bus_ctx = ctx;
    return 0;
}

/* --- members and a fixture ---------------------------------------------------- */

typedef struct member {
    subscriber sub;
    char got[256];            /* the seqs delivered, in order */
} member;

static void deliver(subscriber *s, msg *m)
{
    member *mb = (member *)(void *)s;
    size_t n = strlen(mb->got);
    snprintf(mb->got + n, sizeof mb->got - n, "%llu ", (unsigned long long)m->seq);
}

typedef struct fix {
    uv_loop_t loop;
    room_index *ri;
    metrics mt;
    relay *r;
    member a;
} fix;

static char done_log[64];

static void on_done(void *ctx, bool ok)
{
    size_t n = strlen(done_log);
    snprintf(done_log + n, sizeof done_log - n, "%s%s ", (const char *)ctx, ok ? "+" : "-");
}

static void on_joined(void *ctx, bool ok)
{
    on_done(ctx, ok);
}

static char published_id[64];

static void on_published(void *ctx, const relay_result *res)
{
    snprintf(published_id, sizeof published_id, "%s", res->id);
    on_done(ctx, res->outcome == RELAY_STORED);
}

static void fix_init(fix *f)
{
    memset(f, 0, sizeof *f);
    memset(log_calls, 0, sizeof log_calls);
    memset(done_log, 0, sizeof done_log);
    reg_up = bus_up = true;
    bus_jobs = 0;
    pub_fn = NULL;
    fetch_fn = NULL;
    uv_loop_init(&f->loop);
    f->ri = room_index_create(deliver);
    relay_config cfg = { .server_id = "srv-a", .gap_timeout_ms = 20, .catchup_max = 100,
                         .pull_ms = 1000 };
    f->r = relay_create(&f->loop, f->ri, &f->mt, &cfg);
    relay_attach(f->r, (registry *)(uintptr_t)1, (bus *)(uintptr_t)2);
}

static void fix_deinit(fix *f)
{
    if (f->a.sub.room)
        relay_leave(f->r, &f->a.sub, "u");
    relay_destroy(f->r);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    room_index_destroy(f->ri);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* Join "r" and base its order at (epoch 1, seq), as the registry's answer does. */
static void join_based(fix *f, uint64_t seq)
{
    stomp_str name = { "r", 1 };
    relay_join(f->r, &f->a.sub, &name, "u", "U", on_joined, (void *)(uintptr_t)"joined");
    relay_on_room_sync(f->r, "r", 1, seq);
}

static void send_one(fix *f, const char *tag)
{
    stomp_header h[] = { { { "destination", 11 }, { "/topic/r", 8 } },
                         { { "x-note", 6 }, { "hi", 2 } } };
    stomp_frame fr = { .command = STOMP_CMD_SEND, .headers = h, .nheaders = 2,
                       .body = { "body", 4 } };
    stomp_str name = { "r", 1 };
    assert_int_equal(relay_publish(f->r, &name, &fr, "u", "U", "student", NULL, on_published,
                                   (void *)(uintptr_t)tag), 0);
    (void)f;
}

/* The registry's answer to the publish in flight: its place in the order. */
static void placed(uint64_t seq, int others)
{
    char id[32];
    snprintf(id, sizeof id, "1000-%llu", (unsigned long long)seq);
    free(pub_env->id);
    pub_env->id = xstrdup(id);
    pub_env->epoch = 1;
    pub_env->seq = seq;
    registry_publish_fn fn = pub_fn;
    pub_fn = NULL;
    registry_pub_result res = { .status = REGISTRY_PUB_OK, .others = others };
    fn(pub_ctx, pub_env, &res);
}

static envelope *bus_message(uint64_t seq)
{
    envelope *env = xcalloc(1, sizeof *env);
    char id[32];
    snprintf(id, sizeof id, "1000-%llu", (unsigned long long)seq);
    env->room = xstrdup("r");
    env->id = xstrdup(id);
    env->sender = xstrdup("v");
    env->sender_name = xstrdup("V");
    env->origin = xstrdup("srv-b");
    env->epoch = 1;
    env->seq = seq;
    return env;
}

/* A read (history's or the log's) has been asked for. */
static bool fetch_asked(void)
{
    return fetch_fn != NULL;
}

static void test_first_join_binds_and_last_leave_unbinds(void **state)
{
    (void)state;
    fix f;
    fix_init(&f);
    member b = { 0 };
    stomp_str name = { "r", 1 };
    relay_join(f.r, &f.a.sub, &name, "u", "U", on_joined, (void *)(uintptr_t)"a");
    relay_join(f.r, &b.sub, &name, "w", "W", on_joined, (void *)(uintptr_t)"b");
    assert_string_equal(log_calls, "join:r bind:r join:r ");
    assert_string_equal(done_log, "");            /* members once the order is based */
    relay_on_room_sync(f.r, "r", 1, 0);
    assert_string_equal(done_log, "a+ b+ ");
    relay_leave(f.r, &b.sub, "w");
    relay_leave(f.r, &f.a.sub, "u");
    assert_string_equal(log_calls, "join:r bind:r join:r leave:r leave:r unbind:r ");
    fix_deinit(&f);
}

static void test_a_send_is_logged_delivered_locally_and_stored(void **state)
{
    (void)state;
    fix f;
    fix_init(&f);
    join_based(&f, 0);
    assert_true(relay_ready(f.r));
    send_one(&f, "s1");
    assert_non_null(pub_fn);
    assert_string_equal(pub_env->room, "r");
    assert_string_equal(pub_env->sender, "u");
    assert_string_equal(pub_env->origin, "srv-a");
    assert_non_null(strstr(pub_env->headers, "sender-role:student\n"));
    assert_non_null(strstr(pub_env->headers, "x-note:hi\n"));
    placed(1, 0);                                 /* nobody elsewhere */
    assert_string_equal(f.a.got, "1 ");           /* local bypass: delivered here */
    assert_int_equal(bus_jobs, 1);                /* the storage copy always */
    assert_false(bus_room_copy);                  /* ... but no room copy */
    relay_stats st;
    relay_get_stats(f.r, &st);
    assert_int_equal(st.bus_skipped, 1);
    assert_int_equal(st.bus_published, 0);
    assert_string_equal(done_log, "joined+ ");    /* not done before the confirm */
    bus_done(bus_ctx, true);
    assert_string_equal(done_log, "joined+ s1+ ");
    assert_string_equal(published_id, "1000-1");  /* the id the room log gave it */

    send_one(&f, "s2");
    placed(2, 3);                                 /* members on three other servers */
    assert_true(bus_room_copy);
    relay_get_stats(f.r, &st);
    assert_int_equal(st.bus_published, 1);
    bus_done(bus_ctx, false);                     /* not confirmed durable */
    assert_string_equal(done_log, "joined+ s1+ s2- ");
    assert_string_equal(f.a.got, "1 2 ");
    assert_int_equal(f.mt.messages_published, 2);
    fix_deinit(&f);
}

static void test_not_ready_refuses_at_once(void **state)
{
    (void)state;
    fix f;
    fix_init(&f);
    join_based(&f, 0);
    bus_up = false;
    stomp_frame fr = { .command = STOMP_CMD_SEND, .body = { "", 0 } };
    stomp_str name = { "r", 1 };
    assert_false(relay_ready(f.r));
    assert_int_equal(relay_publish(f.r, &name, &fr, "u", "U", NULL, NULL, on_published, NULL), -1);
    assert_null(pub_fn);
    bus_up = true;
    reg_up = false;
    assert_int_equal(relay_publish(f.r, &name, &fr, "u", "U", NULL, NULL, on_published, NULL), -1);
    fix_deinit(&f);
}

static void test_bus_messages_join_the_room_order(void **state)
{
    (void)state;
    fix f;
    fix_init(&f);
    join_based(&f, 0);
    relay_on_bus_message(f.r, bus_message(2));    /* overtook 1: held */
    assert_string_equal(f.a.got, "");
    send_one(&f, "s");
    placed(1, 1);                                 /* our own 1 comes: both go, in order */
    assert_string_equal(f.a.got, "1 2 ");
    relay_on_bus_message(f.r, bus_message(2));    /* a duplicate: once only */
    assert_string_equal(f.a.got, "1 2 ");
    envelope *other = bus_message(1);             /* a room not hosted here */
    free(other->room);
    other->room = xstrdup("elsewhere");
    relay_on_bus_message(f.r, other);
    relay_stats st;
    relay_get_stats(f.r, &st);
    assert_int_equal(st.bus_received, 2);
    assert_int_equal(st.bus_no_room, 1);
    bus_done(bus_ctx, true);
    fix_deinit(&f);
}

static void test_a_gap_is_filled_from_the_room_log_after_the_timeout(void **state)
{
    (void)state;
    fix f;
    fix_init(&f);
    join_based(&f, 0);
    relay_on_bus_message(f.r, bus_message(3));    /* 1 and 2 lost on the bus */
    assert_string_equal(f.a.got, "");
    assert_null(fetch_fn);
    /* relay.gap_timeout_ms later */
    assert_true(loop_until(&f.loop, fetch_asked, 2000));
    assert_string_equal(fetch_before, "1000-3");  /* what is missing: before the held one */
    assert_int_equal(fetch_count, 2);
    envelope msgs[2];
    for (int i = 0; i < 2; i++) {
        envelope *e = bus_message((uint64_t)i + 1);
        msgs[i] = *e;
        free(e);
    }
    registry_fetch_fn fn = fetch_fn;
    fetch_fn = NULL;
    fn(fetch_ctx, msgs, 2, true);
    for (int i = 0; i < 2; i++)
        envelope_free(&msgs[i]);
    assert_string_equal(f.a.got, "1 2 3 ");
    relay_stats st;
    relay_get_stats(f.r, &st);
    /* Counted as what the fill released: the two fetched and the one that
     * waited behind them. */
    assert_int_equal(st.gaps_filled, 3);
    assert_int_equal(st.gaps_lost, 0);
    fix_deinit(&f);
}

static void test_a_gap_the_log_no_longer_has_is_given_up(void **state)
{
    (void)state;
    fix f;
    fix_init(&f);
    join_based(&f, 0);
    relay_on_bus_message(f.r, bus_message(3));
    assert_true(loop_until(&f.loop, fetch_asked, 2000));
    registry_fetch_fn fn = fetch_fn;
    fetch_fn = NULL;
    fn(fetch_ctx, NULL, 0, true);                 /* expired from the log */
    assert_string_equal(f.a.got, "3 ");           /* the room does not wait forever */
    relay_stats st;
    relay_get_stats(f.r, &st);
    assert_int_equal(st.gaps_lost, 2);
    fix_deinit(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_join_binds_and_last_leave_unbinds),
        cmocka_unit_test(test_a_send_is_logged_delivered_locally_and_stored),
        cmocka_unit_test(test_not_ready_refuses_at_once),
        cmocka_unit_test(test_bus_messages_join_the_room_order),
        cmocka_unit_test(test_a_gap_is_filled_from_the_room_log_after_the_timeout),
        cmocka_unit_test(test_a_gap_the_log_no_longer_has_is_given_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
