/* test_status.c — /status subscriptions (server/status.c) against doubles
 * of the registry's status calls and of the contact lists: one watch per
 * user however many subscribers watch them; the snapshot once every entry
 * is known; an event only when `online` flips, once per subscriber, never
 * one already in a snapshot; the last watcher's leaving unwatches; a
 * resync re-watches everything and a new epoch wins; a changed contact
 * list re-snapshots; x-users outside the contacts fail. Links status, msg
 * and stomp only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contacts.h"
#include "registry_status.h"
#include "status.h"

/* --- the registry double ------------------------------------------------- */

typedef struct wcall {
    char users[256];          /* "a,b," */
    size_t n;
    bool reset;
    registry_status_fn fn;
    void *ctx;
} wcall;

static wcall watches[16];
static int nwatches;
static char unwatched[256];
static bool down;

bool registry_up(const registry *g)
{
    (void)g;
    return !down;
}

int registry_status_watch(registry *g, const char *const *users, size_t n, bool reset,
                          registry_status_fn fn, void *ctx)
{
    (void)g;
    assert_true(nwatches < 16);
    wcall *w = &watches[nwatches++];
    w->users[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(w->users, users[i]);
        strcat(w->users, ",");
    }
    w->n = n;
    w->reset = reset;
    w->fn = fn;
    w->ctx = ctx;
    return 0;
}

void registry_status_unwatch(registry *g, const char *const *users, size_t n)
{
    (void)g;
    for (size_t i = 0; i < n; i++) {
        strcat(unwatched, users[i]);
        strcat(unwatched, ",");
    }
}

/* Answer watch i: spec is one letter per user, '1' online, '0' offline,
 * all at version v of epoch e. */
static void answer(int i, const char *spec, uint64_t e, uint64_t v)
{
    registry_status st[16];
    size_t n = strlen(spec);
    for (size_t k = 0; k < n; k++)
        st[k] = (registry_status){ e, v, spec[k] == '1', spec[k] == '1' ? 1000 : -1,
                                   spec[k] == '1' ? -1 : 500 };
    watches[i].fn(watches[i].ctx, st, n, true);
}

int registry_status_event_parse(const char *text, size_t len, registry_status_event *out)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    assert_non_null(o);
    out->json = o;
    out->user = json_string_value(json_object_get(o, "user"));
    bool on = json_integer_value(json_object_get(o, "on")) == 1;
    out->st = (registry_status){ (uint64_t)json_integer_value(json_object_get(o, "e")),
                                 (uint64_t)json_integer_value(json_object_get(o, "v")), on,
                                 on ? 2000 : -1, on ? -1 : 2000 };
    return 0;
}

void registry_status_event_free(registry_status_event *ev)
{
    json_decref(ev->json);
}

static void event(status *st, const char *user, bool on, uint64_t e, uint64_t v)
{
    char json[128];
    int n = snprintf(json, sizeof json, "{\"user\":\"%s\",\"on\":%d,\"e\":%llu,\"v\":%llu}", user,
                     on, (unsigned long long)e, (unsigned long long)v);
    status_on_event(st, json, (size_t)n);
}

/* --- the contacts double: lists answer when the test says --------------- */

struct contacts_req {
    contacts_fn fn;
    void *ctx;
    bool live;
};

static struct contacts_req reqs[8];
static int nreqs;
static const char *const *sync_list;    /* non-NULL: answer at once with it */
static size_t sync_n;

contacts_req *contacts_get(contacts *c, const char *user, const char *const *claim, size_t nclaim,
                           contacts_fn fn, void *ctx)
{
    (void)c;
    (void)user;
    if (sync_list) {
        fn(ctx, sync_list, sync_n, true);
        return NULL;
    }
    if (claim) {
        fn(ctx, claim, nclaim, true);
        return NULL;
    }
    assert_true(nreqs < 8);
    reqs[nreqs] = (struct contacts_req){ fn, ctx, true };
    return &reqs[nreqs++];
}

void contacts_cancel(contacts_req *r)
{
    if (r)
        r->live = false;
}

static void list_answer(int i, const char *const *users, size_t n)
{
    assert_true(reqs[i].live);
    reqs[i].live = false;
    reqs[i].fn(reqs[i].ctx, users, n, true);
}

/* --- subscribers: what they got, as "S[a+ b-] " (snapshot) or "a+ " ------ */

typedef struct member {
    subscriber sub;           /* first */
    char got[512];
    char failed[64];
} member;

static void deliver(subscriber *s, msg *m)
{
    member *mb = (member *)(void *)s;
    const char *body = strstr(m->data, "\n\n") + 2;
    json_t *o = json_loads(body, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(o);
    size_t n = strlen(mb->got);
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!strcmp(type, "snapshot")) {
        n += (size_t)snprintf(mb->got + n, sizeof mb->got - n, "S[");
        json_t *c;
        size_t i;
        json_array_foreach(json_object_get(o, "contacts"), i, c)
            n += (size_t)snprintf(mb->got + n, sizeof mb->got - n, "%s%s%c",
                                  i ? " " : "", json_string_value(json_object_get(c, "user")),
                                  json_is_true(json_object_get(c, "online")) ? '+' : '-');
        snprintf(mb->got + n, sizeof mb->got - n, "] ");
    } else {
        snprintf(mb->got + n, sizeof mb->got - n, "%s%c ",
                 json_string_value(json_object_get(o, "user")),
                 !strcmp(type, "online") ? '+' : '-');
    }
    json_decref(o);
}

static void on_fail(subscriber *s, status_failure why, const char *detail)
{
    member *mb = (member *)(void *)s;
    snprintf(mb->failed, sizeof mb->failed, "%d:%s", (int)why, detail);
}

static metrics m;

static status *make(void)
{
    status_config cfg = { .chunk = 2, .max_contacts = 100 };
    status_hooks h = { deliver, on_fail };
    status *st = status_create(&cfg, &h, &m);
    status_attach(st, (registry *)(uintptr_t)1, (contacts *)(uintptr_t)1);
    return st;
}

static int setup(void **state)
{
    (void)state;
    nwatches = nreqs = 0;
    unwatched[0] = '\0';
    down = false;
    sync_list = NULL;
    return 0;
}

static const char *const abc[] = { "a", "b", "c" };

static void test_one_watch_per_user_and_snapshot_when_known(void **state)
{
    (void)state;
    status *st = make();
    member x = { 0 }, y = { 0 };
    status_sub *sx = status_subscribe(st, &x.sub, "x", abc, 3, NULL, 0, false);
    /* chunk 2: two calls for a, b, c */
    assert_int_equal(nwatches, 2);
    assert_string_equal(watches[0].users, "a,b,");
    assert_string_equal(watches[1].users, "c,");
    answer(0, "10", 1, 3);
    assert_string_equal(x.got, "");             /* c is not known yet */
    event(st, "b", true, 1, 4);                 /* before x's snapshot: in it, not sent */
    assert_string_equal(x.got, "");
    answer(1, "0", 1, 2);
    assert_string_equal(x.got, "S[a+ b+ c-] ");
    /* y watches b and c, already known: snapshot at once, no call */
    status_sub *sy = status_subscribe(st, &y.sub, "y", abc + 1, 2, NULL, 0, false);
    assert_int_equal(nwatches, 2);
    assert_string_equal(y.got, "S[b+ c-] ");
    assert_int_equal(status_watched(st), 3);
    /* b goes offline: one event each; a newer event with the same state: nothing */
    event(st, "b", false, 1, 5);
    event(st, "b", false, 1, 6);
    event(st, "b", true, 1, 3);                 /* stale */
    assert_string_equal(x.got, "S[a+ b+ c-] b- ");
    assert_string_equal(y.got, "S[b+ c-] b- ");
    /* x leaves: only a, which nobody else watches, is unwatched */
    status_unsubscribe(sx);
    assert_string_equal(unwatched, "a,");
    event(st, "a", false, 1, 9);
    assert_string_equal(x.got, "S[a+ b+ c-] b- ");
    status_unsubscribe(sy);
    assert_string_equal(unwatched, "a,b,c,");
    assert_int_equal(status_watched(st), 0);
    status_destroy(st);
}

static void test_an_event_before_the_answer_is_in_the_snapshot_not_repeated(void **state)
{
    (void)state;
    status *st = make();
    member x = { 0 };
    status_sub *sx = status_subscribe(st, &x.sub, "x", abc, 1, NULL, 0, false);
    event(st, "a", true, 1, 5);                 /* the event beat the answer */
    assert_string_equal(x.got, "S[a+] ");
    answer(0, "0", 1, 4);                       /* older: ignored */
    event(st, "a", true, 1, 5);                 /* the same again */
    assert_string_equal(x.got, "S[a+] ");
    status_unsubscribe(sx);
    status_destroy(st);
}

static void test_resync_rewatches_everything_and_a_new_epoch_wins(void **state)
{
    (void)state;
    status *st = make();
    member x = { 0 };
    status_sub *sx = status_subscribe(st, &x.sub, "x", abc, 2, NULL, 0, false);
    answer(0, "11", 7, 40);
    assert_string_equal(x.got, "S[a+ b+] ");
    nwatches = 0;
    status_resync(st);
    assert_int_equal(nwatches, 1);
    assert_true(watches[0].reset);
    assert_string_equal(watches[0].users, "a,b,");
    /* Redis lost its data: v 1 of a new epoch, which the answer makes
     * current even when its number is lower (another clock) */
    answer(0, "01", 6, 1);
    assert_string_equal(x.got, "S[a+ b+] a- ");
    event(st, "a", true, 6, 1);                 /* nothing newer */
    event(st, "a", true, 5, 41);                /* a late event of an older epoch */
    assert_string_equal(x.got, "S[a+ b+] a- ");
    event(st, "a", true, 6, 2);
    assert_string_equal(x.got, "S[a+ b+] a- a+ ");
    status_unsubscribe(sx);
    status_destroy(st);
}

static void test_a_changed_list_resnapshots_and_unwatches_the_dropped(void **state)
{
    (void)state;
    status *st = make();
    member x = { 0 };
    status_sub *sx = status_subscribe(st, &x.sub, "x", NULL, 0, NULL, 0, false);
    list_answer(0, abc, 2);                     /* a, b */
    answer(0, "10", 1, 1);
    assert_string_equal(x.got, "S[a+ b-] ");
    status_contacts_changed(st, "nobody");      /* not a user here */
    assert_int_equal(nreqs, 1);
    status_contacts_changed(st, "x");
    assert_int_equal(nreqs, 2);
    list_answer(1, abc + 1, 2);                 /* b, c */
    assert_string_equal(unwatched, "a,");
    assert_int_equal(nwatches, 2);
    assert_string_equal(watches[1].users, "c,");
    answer(1, "1", 1, 1);
    assert_string_equal(x.got, "S[a+ b-] S[b- c+] ");
    status_unsubscribe(sx);
    status_destroy(st);
}

static void test_x_users_must_be_contacts_unless_any(void **state)
{
    (void)state;
    status *st = make();
    member x = { 0 }, y = { 0 };
    const char *const want[] = { "b", "z" };
    status_sub *sx = status_subscribe(st, &x.sub, "x", NULL, 0, want, 2, false);
    list_answer(0, abc, 3);
    assert_string_equal(x.failed, "1:z");
    assert_string_equal(x.got, "");
    assert_int_equal(nwatches, 0);
    status_sub *sy = status_subscribe(st, &y.sub, "y", NULL, 0, want, 2, true);
    assert_int_equal(nreqs, 1);                 /* anyone: no list needed */
    assert_int_equal(nwatches, 1);
    answer(0, "01", 1, 1);
    assert_string_equal(y.got, "S[b- z+] ");
    status_unsubscribe(sx);
    status_unsubscribe(sy);
    status_destroy(st);
}

static void test_duplicates_count_once_and_down_refuses(void **state)
{
    (void)state;
    status *st = make();
    member x = { 0 }, y = { 0 };
    const char *const dup[] = { "a", "a", "b", "a" };
    sync_list = dup;
    sync_n = 4;
    status_sub *sx = status_subscribe(st, &x.sub, "x", NULL, 0, NULL, 0, false);
    answer(0, "11", 1, 1);
    assert_string_equal(x.got, "S[a+ b+] ");
    event(st, "a", false, 1, 2);
    assert_string_equal(x.got, "S[a+ b+] a- ");
    down = true;
    assert_null(status_subscribe(st, &y.sub, "y", NULL, 0, NULL, 0, false));
    status_unsubscribe(sx);
    status_destroy(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_one_watch_per_user_and_snapshot_when_known, setup),
        cmocka_unit_test_setup(test_an_event_before_the_answer_is_in_the_snapshot_not_repeated,
                               setup),
        cmocka_unit_test_setup(test_resync_rewatches_everything_and_a_new_epoch_wins, setup),
        cmocka_unit_test_setup(test_a_changed_list_resnapshots_and_unwatches_the_dropped, setup),
        cmocka_unit_test_setup(test_x_users_must_be_contacts_unless_any, setup),
        cmocka_unit_test_setup(test_duplicates_count_once_and_down_refuses, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
