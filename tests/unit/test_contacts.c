/* test_contacts.c — contact-list lookups (server/contacts.c) against doubles
 * of the Redis layer (registry_contacts_*), of MySQL (db_contacts_read) and
 * of the loop clock (uv_now): a miss reads Redis once and later lookups
 * within contacts.cache_ttl_ms come from the cache; a stored list, even an
 * empty one, wins over the claim; a Redis miss reads MySQL and writes the
 * value back; concurrent lookups of one user share one read; a change
 * drops the entry, restarts a lookup in flight (its old answer is never
 * used nor written back) and calls on_changed; entries expire and the
 * oldest goes when the cache is full; failures answer ok false, and so
 * does destroy. Links contacts and mem only: the doubles answer when the
 * test says, and the clock moves when the test moves it.
 *
 * The value codec (registry_contacts_encode/decode) is a double too: the
 * real one lives in registry_contacts.o with the hiredis calls this test
 * replaces. It follows the format of registry_contacts.h ("N", or "L" and
 * "\n<id>" per id); the real one is tested in test_userid.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contacts.h"
#include "db_contacts.h"
#include "registry_contacts.h"

#define MAXCALLS 16

/* --- the clock: contacts.c reads loop time through uv_now --------------- */

static uint64_t now_ms;

uint64_t uv_now(const uv_loop_t *loop)
{
    (void)loop;
    return now_ms;
}

/* --- the Redis double: reads wait for the test -------------------------- */

typedef struct rget {
    char user[32];
    registry_contacts_fn fn;
    void *ctx;
} rget;

typedef struct rset {
    char user[32];
    char value[128];
    size_t len;
    int ttl_s;
    char gen[32];
} rset;

static rget gets[MAXCALLS];
static int ngets;
static rset sets[MAXCALLS];
static int nsets;
static bool redis_down;

int registry_contacts_get(registry *g, const char *user, registry_contacts_fn fn, void *ctx)
{
    (void)g;
    if (redis_down)
        return -1;
    assert_true(ngets < MAXCALLS);
    snprintf(gets[ngets].user, sizeof gets[ngets].user, "%s", user);
    gets[ngets].fn = fn;
    gets[ngets].ctx = ctx;
    ngets++;
    return 0;
}

void registry_contacts_set(registry *g, const char *user, const char *value, size_t len,
                           int ttl_s, const char *gen)
{
    (void)g;
    assert_true(nsets < MAXCALLS);
    assert_true(len < sizeof sets[nsets].value);
    rset *s = &sets[nsets++];
    snprintf(s->user, sizeof s->user, "%s", user);
    memcpy(s->value, value, len);
    s->value[len] = '\0';
    s->len = len;
    s->ttl_s = ttl_s;
    snprintf(s->gen, sizeof s->gen, "%s", gen ? gen : "(null)");
}

/* Answer Redis read i. A fn pointer is cleared once used, so that a test
 * answering a call twice fails instead of touching freed memory. */
static void redis_answer(int i, registry_contacts_state st, const char *value, const char *gen)
{
    assert_true(i < ngets);
    assert_non_null(gets[i].fn);
    registry_contacts_fn fn = gets[i].fn;
    gets[i].fn = NULL;
    fn(gets[i].ctx, st, value, value ? strlen(value) : 0, gen);
}

static void redis_hit(int i, const char *value)
{
    redis_answer(i, REGISTRY_CONTACTS_HIT, value, "3");
}

static void redis_miss(int i, const char *gen)
{
    redis_answer(i, REGISTRY_CONTACTS_MISS, NULL, gen);
}

static void redis_error(int i)
{
    redis_answer(i, REGISTRY_CONTACTS_ERROR, NULL, "");
}

/* --- the MySQL double: reads wait for the test -------------------------- */

typedef struct dread {
    char user[32];
    size_t max;
    db_contacts_fn fn;
    void *ctx;
} dread;

static dread reads[MAXCALLS];
static int nreads;

void db_contacts_read(db *d, const char *user, size_t max, db_contacts_fn fn, void *ctx)
{
    (void)d;
    assert_true(nreads < MAXCALLS);
    snprintf(reads[nreads].user, sizeof reads[nreads].user, "%s", user);
    reads[nreads].max = max;
    reads[nreads].fn = fn;
    reads[nreads].ctx = ctx;
    nreads++;
}

/* Answer MySQL read i: ok false (MySQL failed), or the stored list (ids
 * NULL: no stored list). */
static void mysql_answer(int i, bool ok, const char *const *ids, size_t n)
{
    assert_true(i < nreads);
    assert_non_null(reads[i].fn);
    db_contacts_fn fn = reads[i].fn;
    reads[i].fn = NULL;
    db_contacts_result r = { .ok = ok, .why = ok ? NULL : "down", .stored = ok && ids,
                             .count = ok && ids ? n : 0, .ids = ids };
    fn(reads[i].ctx, &r);
}

/* --- the callers: what reached each, and in which order ----------------- */

typedef struct waiter {
    int calls;
    char got[128];            /* "a,b" / "" (ok), or "fail" */
} waiter;

static char order[64];        /* the waiters' names, in the order answered */
static char changed[128];     /* on_changed's users, "u," each */

static void on_list(void *ctx, const char *const *users, size_t n, bool ok)
{
    waiter *w = ctx;
    w->calls++;
    w->got[0] = '\0';
    if (!ok) {
        assert_null(users);
        assert_int_equal(n, 0);
        strcpy(w->got, "fail");
    }
    for (size_t i = 0; ok && i < n; i++) {
        if (i)
            strcat(w->got, ",");
        strcat(w->got, users[i]);
    }
}

/* The waiters of the ordering tests: w[i] records its name 'a' + i. */
static waiter ws[4];

static void on_list_ordered(void *ctx, const char *const *users, size_t n, bool ok)
{
    waiter *w = ctx;
    size_t len = strlen(order);
    order[len] = (char)('a' + (w - ws));
    order[len + 1] = '\0';
    on_list(ctx, users, n, ok);
}

static void on_changed(void *ctx, const char *user)
{
    assert_ptr_equal(ctx, &ngets);
    strcat(changed, user);
    strcat(changed, ",");
}

/* --- the module under test ---------------------------------------------- */

static contacts_config cfg;
static metrics m;

static contacts *make(bool with_redis, bool with_db)
{
    contacts_env env = {
        .loop = NULL,                       /* only uv_now sees it: the double above */
        .cfg = &cfg,
        .registry = with_redis ? (registry *)(uintptr_t)1 : NULL,
        .db = with_db ? (db *)(uintptr_t)2 : NULL,
        .metrics = &m,
        .on_changed = on_changed,
        .ctx = &ngets,
    };
    return contacts_create(&env);
}

static int setup(void **state)
{
    (void)state;
    now_ms = 1000000;
    ngets = nsets = nreads = 0;
    memset(gets, 0, sizeof gets);
    memset(reads, 0, sizeof reads);
    redis_down = false;
    order[0] = changed[0] = '\0';
    memset(ws, 0, sizeof ws);
    cfg = (contacts_config){ .cache_ttl_ms = 5000, .cache_max = 3, .redis_ttl_s = 3600,
                             .max = 4 };
    memset(&m, 0, sizeof m);
    return 0;
}

/* Fill u's cache entry with the stored value v through one Redis read. */
static void fill(contacts *c, const char *u, const char *v)
{
    waiter w = { 0 };
    int before = ngets;
    assert_non_null(contacts_get(c, u, NULL, 0, on_list, &w));
    assert_int_equal(ngets, before + 1);
    redis_hit(before, v);
    assert_int_equal(w.calls, 1);
}

/* --- 1. cache ------------------------------------------------------------ */

static void test_a_miss_reads_redis_once_then_the_cache_answers(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    waiter w1 = { 0 }, w2 = { 0 };
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list, &w1));
    assert_int_equal(ngets, 1);
    assert_string_equal(gets[0].user, "u");
    assert_int_equal(w1.calls, 0);            /* never inside contacts_get on a miss */
    redis_hit(0, "L\na\nb");
    assert_int_equal(w1.calls, 1);
    assert_string_equal(w1.got, "a,b");
    assert_int_equal(contacts_cached(c), 1);

    now_ms += 4999;                           /* still within the TTL */
    assert_null(contacts_get(c, "u", NULL, 0, on_list, &w2));   /* answered at once */
    assert_int_equal(w2.calls, 1);
    assert_string_equal(w2.got, "a,b");
    assert_int_equal(ngets, 1);
    assert_int_equal(nreads, 0);
    assert_int_equal(nsets, 0);               /* a Redis hit is not written back */
    assert_int_equal(m.contacts_redis_hits, 1);
    assert_int_equal(m.contacts_cache_hits, 1);
    assert_int_equal(w1.calls, 1);
    contacts_destroy(c);
}

/* --- 2. which list counts ------------------------------------------------- */

static void test_the_stored_list_wins_over_the_claim(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    const char *claim[] = { "x", "y" };
    const char *other[] = { "z" };
    waiter w[4] = { 0 };

    /* "N": no stored list, so the claim; the claim itself is never cached. */
    assert_non_null(contacts_get(c, "n", claim, 2, on_list, &w[0]));
    redis_hit(0, "N");
    assert_string_equal(w[0].got, "x,y");
    assert_null(contacts_get(c, "n", other, 1, on_list, &w[1]));
    assert_string_equal(w[1].got, "z");

    /* "L" alone: a stored, empty list, which wins over the claim. */
    assert_non_null(contacts_get(c, "e", claim, 2, on_list, &w[2]));
    redis_hit(1, "L");
    assert_int_equal(w[2].calls, 1);
    assert_string_equal(w[2].got, "");
    assert_null(contacts_get(c, "e", claim, 2, on_list, &w[3]));   /* from the cache */
    assert_int_equal(w[3].calls, 1);
    assert_string_equal(w[3].got, "");
    assert_int_equal(ngets, 2);
    assert_int_equal(nreads, 0);
    contacts_destroy(c);
}

static void test_a_claim_counts_at_most_contacts_max(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    const char *claim[] = { "a", "b", "c", "d", "e", "f" };
    waiter w = { 0 }, w2 = { 0 };
    assert_non_null(contacts_get(c, "u", claim, 6, on_list, &w));
    redis_hit(0, "N");
    assert_string_equal(w.got, "a,b,c,d");    /* cfg.max 4 */
    assert_null(contacts_get(c, "u", claim, 6, on_list, &w2));
    assert_string_equal(w2.got, "a,b,c,d");
    contacts_destroy(c);
}

/* --- 3. MySQL behind Redis -------------------------------------------------- */

static void test_a_redis_miss_reads_mysql_and_writes_the_value_back(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    const char *claim[] = { "x" };
    const char *stored[] = { "a", "b" };
    waiter w = { 0 }, w2 = { 0 };

    assert_non_null(contacts_get(c, "u", claim, 1, on_list, &w));
    redis_miss(0, "7");
    assert_int_equal(nreads, 1);
    assert_string_equal(reads[0].user, "u");
    assert_int_equal(reads[0].max, 4);
    assert_int_equal(nsets, 0);
    assert_int_equal(w.calls, 0);
    mysql_answer(0, true, stored, 2);
    assert_int_equal(nsets, 1);
    assert_string_equal(sets[0].user, "u");
    assert_string_equal(sets[0].value, "L\na\nb");
    assert_int_equal(sets[0].len, 5);
    assert_int_equal(sets[0].ttl_s, 3600);
    assert_string_equal(sets[0].gen, "7");    /* the counter read with the miss */
    assert_int_equal(w.calls, 1);
    assert_string_equal(w.got, "a,b");        /* stored wins over the claim */
    assert_null(contacts_get(c, "u", claim, 1, on_list, &w2));
    assert_string_equal(w2.got, "a,b");
    assert_int_equal(ngets, 1);
    assert_int_equal(nreads, 1);
    assert_int_equal(m.contacts_mysql_reads, 1);

    /* No stored list in MySQL: "N" goes back to Redis, the claim answers. */
    waiter w3 = { 0 };
    assert_non_null(contacts_get(c, "v", claim, 1, on_list, &w3));
    redis_miss(1, "");
    mysql_answer(1, true, NULL, 0);
    assert_int_equal(nsets, 2);
    assert_string_equal(sets[1].user, "v");
    assert_string_equal(sets[1].value, "N");
    assert_string_equal(sets[1].gen, "");
    assert_string_equal(w3.got, "x");
    contacts_destroy(c);
}

static void test_a_value_that_does_not_parse_is_read_from_mysql_and_overwritten(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    const char *stored[] = { "a" };
    waiter w = { 0 };
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list, &w));
    redis_hit(0, "garbage");
    assert_int_equal(nreads, 1);
    mysql_answer(0, true, stored, 1);
    assert_int_equal(nsets, 1);
    assert_string_equal(sets[0].value, "L\na");
    assert_string_equal(w.got, "a");
    contacts_destroy(c);
}

static void test_after_a_redis_failure_mysql_answers_and_nothing_is_written_back(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    const char *stored[] = { "a" };
    waiter w = { 0 }, w2 = { 0 };
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list, &w));
    redis_error(0);
    assert_int_equal(nreads, 1);
    mysql_answer(0, true, stored, 1);
    assert_string_equal(w.got, "a");
    assert_int_equal(nsets, 0);               /* Redis failed: no write-back */

    /* Redis not up at all: straight to MySQL, nothing written either. */
    redis_down = true;
    assert_non_null(contacts_get(c, "v", NULL, 0, on_list, &w2));
    assert_int_equal(nreads, 2);
    assert_string_equal(reads[1].user, "v");
    mysql_answer(1, true, stored, 1);
    assert_string_equal(w2.got, "a");
    assert_int_equal(nsets, 0);
    contacts_destroy(c);
}

/* --- 4. coalescing ---------------------------------------------------------- */

static void test_concurrent_lookups_of_one_user_share_one_read(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    const char *c1[] = { "p" }, *c2[] = { "q" }, *c3[] = { "r", "s" };
    assert_non_null(contacts_get(c, "u", c1, 1, on_list_ordered, &ws[0]));
    contacts_req *r2 = contacts_get(c, "u", c2, 1, on_list_ordered, &ws[1]);
    assert_non_null(r2);
    assert_non_null(contacts_get(c, "u", c3, 2, on_list_ordered, &ws[2]));
    assert_int_equal(ngets, 1);
    contacts_cancel(r2);
    redis_miss(0, "1");
    assert_int_equal(nreads, 1);              /* and one MySQL read */
    mysql_answer(0, true, NULL, 0);
    assert_int_equal(nsets, 1);
    assert_string_equal(order, "ac");         /* in arrival order; b never */
    assert_string_equal(ws[0].got, "p");      /* each with its own claim */
    assert_string_equal(ws[2].got, "r,s");
    assert_int_equal(ws[1].calls, 0);
    assert_int_equal(ws[0].calls, 1);
    assert_int_equal(ws[2].calls, 1);
    contacts_destroy(c);
}

static void test_a_lookup_whose_waiters_all_left_still_fills_the_cache(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    waiter w = { 0 }, w2 = { 0 };
    contacts_cancel(contacts_get(c, "u", NULL, 0, on_list, &w));
    redis_hit(0, "L\na");
    assert_int_equal(w.calls, 0);
    assert_int_equal(contacts_cached(c), 1);
    assert_null(contacts_get(c, "u", NULL, 0, on_list, &w2));
    assert_string_equal(w2.got, "a");
    contacts_destroy(c);
}

/* --- 5. invalidation ---------------------------------------------------------- */

static void test_a_change_during_a_redis_read_restarts_the_lookup(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    waiter w = { 0 }, w2 = { 0 };
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list, &w));
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list, &w2));
    contacts_invalidated(c, "u");
    assert_string_equal(changed, "u,");
    assert_int_equal(ngets, 2);               /* a new read went out */
    assert_string_equal(gets[1].user, "u");
    redis_hit(0, "L\nold");                   /* read before the change: dropped */
    assert_int_equal(w.calls, 0);
    assert_int_equal(w2.calls, 0);
    assert_int_equal(contacts_cached(c), 0);
    redis_hit(1, "L\nnew");
    assert_int_equal(w.calls, 1);
    assert_string_equal(w.got, "new");
    assert_int_equal(w2.calls, 1);
    assert_string_equal(w2.got, "new");
    contacts_destroy(c);
}

static void test_a_change_during_a_mysql_read_is_never_hidden_by_it(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    const char *old[] = { "old" }, *fresh[] = { "new" };
    waiter w = { 0 };
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list, &w));
    redis_miss(0, "1");
    assert_int_equal(nreads, 1);
    contacts_invalidated(c, "u");
    assert_int_equal(ngets, 2);
    mysql_answer(0, true, old, 1);            /* the stale read: not used, not written */
    assert_int_equal(w.calls, 0);
    assert_int_equal(nsets, 0);
    assert_int_equal(contacts_cached(c), 0);
    redis_miss(1, "2");
    mysql_answer(1, true, fresh, 1);
    assert_int_equal(nsets, 1);
    assert_string_equal(sets[0].value, "L\nnew");
    assert_string_equal(sets[0].gen, "2");
    assert_string_equal(w.got, "new");
    assert_string_equal(changed, "u,");
    contacts_destroy(c);
}

static void test_a_change_drops_the_cached_entry_and_calls_on_changed(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    fill(c, "u", "L\na");
    fill(c, "v", "L\nb");
    assert_int_equal(contacts_cached(c), 2);
    contacts_invalidated(c, "u");
    assert_string_equal(changed, "u,");
    assert_int_equal(contacts_cached(c), 1);
    assert_int_equal(ngets, 2);               /* nothing in flight: no read */
    waiter w = { 0 }, w2 = { 0 };
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list, &w));   /* a miss again */
    assert_int_equal(ngets, 3);
    redis_hit(2, "L\nc");
    assert_string_equal(w.got, "c");
    assert_null(contacts_get(c, "v", NULL, 0, on_list, &w2));      /* v untouched */
    assert_string_equal(w2.got, "b");

    contacts_invalidated(c, "nobody");        /* unknown user: only the hook */
    assert_string_equal(changed, "u,nobody,");
    assert_int_equal(ngets, 3);
    assert_int_equal(contacts_cached(c), 2);
    contacts_destroy(c);
}

static void test_a_change_with_only_cancelled_waiters_starts_nothing(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    waiter w = { 0 };
    contacts_cancel(contacts_get(c, "u", NULL, 0, on_list, &w));
    contacts_invalidated(c, "u");
    assert_int_equal(ngets, 1);
    redis_hit(0, "L\nold");                   /* orphaned: freed, not cached */
    assert_int_equal(contacts_cached(c), 0);
    assert_int_equal(w.calls, 0);
    assert_string_equal(changed, "u,");
    contacts_destroy(c);
}

/* --- 6. expiry and eviction ---------------------------------------------------- */

static void test_an_entry_expires_after_cache_ttl_ms(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    waiter w = { 0 }, w2 = { 0 };
    fill(c, "u", "L\na");
    now_ms += 4999;
    assert_null(contacts_get(c, "u", NULL, 0, on_list, &w));
    assert_string_equal(w.got, "a");
    now_ms += 1;                              /* 5000 ms after the fill */
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list, &w2));
    assert_int_equal(ngets, 2);
    assert_int_equal(w2.calls, 0);
    assert_int_equal(contacts_cached(c), 0);  /* the expired entry is gone */
    redis_hit(1, "L\nb");
    assert_string_equal(w2.got, "b");
    assert_int_equal(contacts_cached(c), 1);
    contacts_destroy(c);
}

static void test_a_full_cache_drops_its_oldest_entry(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    fill(c, "a", "L\n1");
    now_ms += 10;
    fill(c, "b", "L\n2");
    fill(c, "c", "L\n3");
    assert_int_equal(contacts_cached(c), 3);
    fill(c, "d", "L\n4");                     /* cache_max 3: "a" goes */
    assert_int_equal(contacts_cached(c), 3);
    waiter w[4] = { 0 };
    assert_null(contacts_get(c, "b", NULL, 0, on_list, &w[0]));
    assert_string_equal(w[0].got, "2");
    assert_null(contacts_get(c, "c", NULL, 0, on_list, &w[1]));
    assert_null(contacts_get(c, "d", NULL, 0, on_list, &w[2]));
    int before = ngets;
    assert_non_null(contacts_get(c, "a", NULL, 0, on_list, &w[3]));
    assert_int_equal(ngets, before + 1);
    contacts_destroy(c);                      /* w[3] answered ok false */
    assert_string_equal(w[3].got, "fail");
    redis_hit(before, "L\n1");                /* the orphan's late answer frees it */
    assert_int_equal(w[3].calls, 1);
}

static void test_no_cache_when_a_knob_is_zero(void **state)
{
    (void)state;
    cfg.cache_ttl_ms = 0;
    contacts *c = make(true, true);
    waiter w = { 0 };
    fill(c, "u", "L\na");
    assert_int_equal(contacts_cached(c), 0);
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list, &w));
    redis_hit(1, "L\na");
    contacts_destroy(c);

    cfg.cache_ttl_ms = 5000;
    cfg.cache_max = 0;
    c = make(true, true);
    fill(c, "u", "L\na");
    assert_int_equal(contacts_cached(c), 0);
    contacts_destroy(c);
}

/* --- 7. failures and destroy ------------------------------------------------------ */

static void test_redis_and_mysql_failing_answers_ok_false(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    waiter w = { 0 }, w2 = { 0 };
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list, &w));
    redis_error(0);
    assert_int_equal(nreads, 1);
    mysql_answer(0, false, NULL, 0);
    assert_int_equal(w.calls, 1);
    assert_string_equal(w.got, "fail");
    assert_int_equal(m.contacts_errors, 1);
    assert_int_equal(contacts_cached(c), 0);  /* a failure is not cached */
    assert_int_equal(nsets, 0);
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list, &w2));
    assert_int_equal(ngets, 2);
    redis_hit(1, "L\na");
    assert_string_equal(w2.got, "a");
    contacts_destroy(c);
}

/* The store cannot say whether a list is stored: a token's claim serves
 * (what the token allows), a request without one fails. */
static void test_a_claim_serves_when_the_store_cannot_answer(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    waiter w = { 0 }, w2 = { 0 };
    const char *const claim[] = { "x", "y" };
    assert_non_null(contacts_get(c, "u", claim, 2, on_list, &w));
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list, &w2));
    redis_error(0);
    mysql_answer(0, false, NULL, 0);
    assert_string_equal(w.got, "x,y");
    assert_string_equal(w2.got, "fail");
    assert_int_equal(contacts_cached(c), 0);
    contacts_destroy(c);
}

static void test_nothing_to_ask_fails_at_once(void **state)
{
    (void)state;
    contacts *c = make(true, false);          /* no MySQL */
    waiter w = { 0 }, w2 = { 0 };
    redis_down = true;
    assert_null(contacts_get(c, "u", NULL, 0, on_list, &w));
    assert_int_equal(w.calls, 1);
    assert_string_equal(w.got, "fail");
    assert_int_equal(m.contacts_errors, 1);

    /* Redis answers a miss, and there is no MySQL to read it from. */
    redis_down = false;
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list, &w2));
    redis_miss(0, "1");
    assert_int_equal(w2.calls, 1);
    assert_string_equal(w2.got, "fail");
    contacts_destroy(c);
}

static void test_destroy_answers_the_waiting_requests_with_ok_false(void **state)
{
    (void)state;
    contacts *c = make(true, true);
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list_ordered, &ws[0]));
    assert_non_null(contacts_get(c, "v", NULL, 0, on_list_ordered, &ws[1]));
    assert_non_null(contacts_get(c, "u", NULL, 0, on_list_ordered, &ws[2]));
    redis_miss(1, "1");                       /* v waits for MySQL, u for Redis */
    assert_int_equal(nreads, 1);
    contacts_destroy(c);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ws[i].calls, 1);
        assert_string_equal(ws[i].got, "fail");
    }
    /* u's requests in the order made (the order across users is the
     * lookups', not pinned here). */
    assert_true(strchr(order, 'a') < strchr(order, 'c'));
    const char *ids[] = { "a" };
    redis_hit(0, "L\na");                     /* late answers: dropped, freed */
    mysql_answer(0, true, ids, 1);
    assert_int_equal(nsets, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ws[i].calls, 1);
    contacts_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_a_miss_reads_redis_once_then_the_cache_answers, setup),
        cmocka_unit_test_setup(test_the_stored_list_wins_over_the_claim, setup),
        cmocka_unit_test_setup(test_a_claim_counts_at_most_contacts_max, setup),
        cmocka_unit_test_setup(test_a_redis_miss_reads_mysql_and_writes_the_value_back, setup),
        cmocka_unit_test_setup(test_a_value_that_does_not_parse_is_read_from_mysql_and_overwritten,
                               setup),
        cmocka_unit_test_setup(
            test_after_a_redis_failure_mysql_answers_and_nothing_is_written_back, setup),
        cmocka_unit_test_setup(test_concurrent_lookups_of_one_user_share_one_read, setup),
        cmocka_unit_test_setup(test_a_lookup_whose_waiters_all_left_still_fills_the_cache, setup),
        cmocka_unit_test_setup(test_a_change_during_a_redis_read_restarts_the_lookup, setup),
        cmocka_unit_test_setup(test_a_change_during_a_mysql_read_is_never_hidden_by_it, setup),
        cmocka_unit_test_setup(test_a_change_drops_the_cached_entry_and_calls_on_changed, setup),
        cmocka_unit_test_setup(test_a_change_with_only_cancelled_waiters_starts_nothing, setup),
        cmocka_unit_test_setup(test_an_entry_expires_after_cache_ttl_ms, setup),
        cmocka_unit_test_setup(test_a_full_cache_drops_its_oldest_entry, setup),
        cmocka_unit_test_setup(test_no_cache_when_a_knob_is_zero, setup),
        cmocka_unit_test_setup(test_redis_and_mysql_failing_answers_ok_false, setup),
        cmocka_unit_test_setup(test_a_claim_serves_when_the_store_cannot_answer, setup),
        cmocka_unit_test_setup(test_nothing_to_ask_fails_at_once, setup),
        cmocka_unit_test_setup(test_destroy_answers_the_waiting_requests_with_ok_false, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
