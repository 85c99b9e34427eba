/* test_strmap.c — the compact string-keyed hash table (lib/strmap.c):
 * insert, find, remove; keys that differ only in length or after a NUL;
 * growth keeps every record findable; iteration visits each record once,
 * removing as it goes included; the bucket array goes with the last
 * record; and a random sequence of operations checked against a plain
 * array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "strmap.h"

/* A record as the registry lays one out: the node, a count, the key. */
typedef struct rec {
    strmap_node node;
    uint32_t count;
    char key[];
} rec;

#define REC_KEY_OFF (offsetof(rec, key) - offsetof(rec, node))

static rec *rec_new(const char *key, size_t len)
{
    rec *r = malloc(sizeof *r + len + 1);
    assert_non_null(r);
    memcpy(r->key, key, len);
    r->key[len] = '\0';
    r->count = 0;
    return r;
}

static rec *rec_of(strmap_node *n)
{
    return n ? (rec *)(void *)((char *)n - offsetof(rec, node)) : NULL;
}

static rec *find(const strmap *m, const char *key)
{
    return rec_of(strmap_find(m, key, strlen(key)));
}

static rec *add(strmap *m, const char *key)
{
    rec *r = rec_new(key, strlen(key));
    strmap_insert(m, &r->node, strlen(key));
    return r;
}

static void test_insert_find_remove(void **state)
{
    (void)state;
    strmap m;
    strmap_init(&m, REC_KEY_OFF);
    assert_null(find(&m, "alice"));
    assert_null(strmap_first(&m));
    rec *a = add(&m, "alice"), *b = add(&m, "bob");
    assert_int_equal(m.count, 2);
    assert_ptr_equal(find(&m, "alice"), a);
    assert_ptr_equal(find(&m, "bob"), b);
    assert_string_equal(strmap_key(&m, &a->node), "alice");
    assert_null(find(&m, "carol"));
    strmap_remove(&m, &a->node);
    free(a);
    assert_null(find(&m, "alice"));
    assert_ptr_equal(find(&m, "bob"), b);
    strmap_remove(&m, &b->node);
    free(b);
    assert_int_equal(m.count, 0);
    assert_null(m.buckets);          /* freed with the last record */
    assert_null(find(&m, "bob"));
    add(&m, "again");                /* usable after emptying */
    rec *g = find(&m, "again");
    assert_non_null(g);
    strmap_remove(&m, &g->node);
    free(g);
    strmap_deinit(&m);
}

static void test_keys_are_bytes_with_their_length(void **state)
{
    (void)state;
    strmap m;
    strmap_init(&m, REC_KEY_OFF);
    rec *ab = add(&m, "ab");
    rec *abc = add(&m, "abc");
    rec *empty = add(&m, "");
    rec *nul = rec_new("ab\0x", 4);
    strmap_insert(&m, &nul->node, 4);
    assert_ptr_equal(rec_of(strmap_find(&m, "ab", 2)), ab);
    assert_ptr_equal(rec_of(strmap_find(&m, "abc", 3)), abc);
    assert_ptr_equal(rec_of(strmap_find(&m, "", 0)), empty);
    assert_ptr_equal(rec_of(strmap_find(&m, "ab\0x", 4)), nul);
    assert_null(strmap_find(&m, "ab\0y", 4));
    assert_null(strmap_find(&m, "abc", 2 + 2));
    rec *all[] = { ab, abc, empty, nul };
    for (size_t i = 0; i < 4; i++) {
        strmap_remove(&m, &all[i]->node);
        free(all[i]);
    }
    strmap_deinit(&m);
}

/* Enough records for several doublings: each one found, the chains short. */
static void test_growth_keeps_every_record(void **state)
{
    (void)state;
    enum { N = 20000 };
    strmap m;
    strmap_init(&m, REC_KEY_OFF);
    static rec *recs[N];
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "student-%d", i);
        recs[i] = add(&m, key);
        recs[i]->count = (uint32_t)i;
    }
    assert_int_equal(m.count, N);
    assert_true(m.mask + 1 >= N / 2);        /* at most two records per bucket */
    assert_true(m.mask + 1 <= N);
    size_t longest = 0;
    for (uint32_t b = 0; b <= m.mask; b++) {
        size_t len = 0;
        for (strmap_node *n = m.buckets[b]; n; n = n->next)
            len++;
        longest = len > longest ? len : longest;
    }
    assert_true(longest <= 16);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "student-%d", i);
        rec *r = find(&m, key);
        assert_non_null(r);
        assert_int_equal(r->count, i);
    }
    for (int i = 0; i < N; i++) {
        strmap_remove(&m, &recs[i]->node);
        free(recs[i]);
    }
    assert_null(m.buckets);
    strmap_deinit(&m);
}

static void test_iteration_visits_each_once_and_may_remove(void **state)
{
    (void)state;
    enum { N = 300 };
    strmap m;
    strmap_init(&m, REC_KEY_OFF);
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "room-%d", i);
        add(&m, key)->count = (uint32_t)i;
    }
    static int seen[N];
    memset(seen, 0, sizeof seen);
    for (strmap_node *n = strmap_first(&m); n; n = strmap_next(&m, n))
        seen[rec_of(n)->count]++;
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    /* Remove the odd ones while iterating, then the rest the same way. */
    for (int pass = 0; pass < 2; pass++) {
        strmap_node *next;
        for (strmap_node *n = strmap_first(&m); n; n = next) {
            next = strmap_next(&m, n);
            rec *r = rec_of(n);
            if (pass == 1 || r->count % 2) {
                strmap_remove(&m, n);
                free(r);
            }
        }
        assert_int_equal(m.count, pass == 0 ? N / 2 : 0);
    }
    assert_null(strmap_first(&m));
    strmap_deinit(&m);
}

/* Random inserts and removes over a small key space, against an array
 * indexed by key. */
static void test_random_operations_match_an_array(void **state)
{
    (void)state;
    enum { KEYS = 500, OPS = 50000 };
    strmap m;
    strmap_init(&m, REC_KEY_OFF);
    static rec *model[KEYS];
    memset(model, 0, sizeof model);
    srand(21);
    char key[32];
    uint32_t count = 0;
    for (int op = 0; op < OPS; op++) {
        int k = rand() % KEYS;
        snprintf(key, sizeof key, "u%d", k);
        rec *r = find(&m, key);
        assert_ptr_equal(r, model[k]);
        if (r) {
            strmap_remove(&m, &r->node);
            free(r);
            model[k] = NULL;
            count--;
        } else {
            model[k] = add(&m, key);
            count++;
        }
        assert_int_equal(m.count, count);
    }
    uint32_t walked = 0;
    for (strmap_node *n = strmap_first(&m); n; n = strmap_next(&m, n))
        walked++;
    assert_int_equal(walked, count);
    for (int k = 0; k < KEYS; k++)
        if (model[k]) {
            strmap_remove(&m, &model[k]->node);
            free(model[k]);
        }
    strmap_deinit(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_find_remove),
        cmocka_unit_test(test_keys_are_bytes_with_their_length),
        cmocka_unit_test(test_growth_keeps_every_record),
        cmocka_unit_test(test_iteration_visits_each_once_and_may_remove),
        cmocka_unit_test(test_random_operations_match_an_array),
    };
    return cmocka_run_group_tests_name("strmap", tests, NULL, NULL);
}
