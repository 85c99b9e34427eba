/* test_userid.c — the user id rule (server/userid.c), the Redis value of a
 * contact list (registry_contacts_encode/decode) and the API's bodies
 * (http_contacts_parse). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http_contacts.h"
#include "registry_contacts.h"
#include "userid.h"

static void test_valid(void **state)
{
    (void)state;
    static const struct { const char *s; int ok; } cases[] = {
        { "alice", 1 }, { "a", 1 }, { "x@example.edu", 1 }, { "Zoë", 1 }, { "a b", 1 },
        { "a/b:c", 1 }, { "", 0 }, { "a,b", 0 }, { "a\nb", 0 }, { "a\tb", 0 },
        { "a\x7f", 0 }, { "\xc2\x85", 0 } /* NEL, a C1 control */, { "\xc3\x28", 0 },
        { "\xed\xa0\x80", 0 } /* a surrogate */,
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(userid_valid(cases[i].s, strlen(cases[i].s)), cases[i].ok);
    char id[USERID_MAX + 2];
    memset(id, 'u', sizeof id);
    assert_true(userid_valid(id, USERID_MAX));
    assert_false(userid_valid(id, USERID_MAX + 1));
    assert_false(userid_valid("a\0b", 3));
    assert_false(userid_valid(NULL, 0));
}

static void test_sort_unique(void **state)
{
    (void)state;
    const char *v[] = { "b", "a", "c", "a", "b" };
    size_t n = userid_sort_unique(v, 5);
    assert_int_equal(n, 3);
    assert_string_equal(v[0], "a");
    assert_string_equal(v[2], "c");
    assert_true(userid_sorted_has(v, n, "b"));
    assert_false(userid_sorted_has(v, n, "d"));
    assert_false(userid_sorted_has(v, 0, "a"));
}

static void test_first_missing(void **state)
{
    (void)state;
    const char *have[] = { "carol", "alice", "bob", "alice" };
    const char *some[] = { "bob", "alice" }, *stray[] = { "alice", "zed", "yan" };
    assert_null(userid_first_missing(have, 4, some, 2));
    assert_string_equal(userid_first_missing(have, 4, stray, 3), "zed");
    assert_string_equal(userid_first_missing(NULL, 0, some, 2), "bob");
    assert_null(userid_first_missing(have, 4, NULL, 0));
    assert_string_equal(have[0], "carol");      /* have is left as it was */
}

static void test_value(void **state)
{
    (void)state;
    const char *ids[] = { "a", "bob" };
    size_t len;
    char *v = registry_contacts_encode(true, ids, 2, &len);
    assert_string_equal(v, "L\na\nbob");
    assert_int_equal(len, 7);
    bool stored;
    char **out;
    size_t n;
    assert_int_equal(registry_contacts_decode(v, len, 10, &stored, &out, &n), 0);
    assert_true(stored);
    assert_int_equal(n, 2);
    assert_string_equal(out[1], "bob");
    registry_contacts_free_ids(out, n);
    /* At most max ids are taken. */
    assert_int_equal(registry_contacts_decode(v, len, 1, &stored, &out, &n), 0);
    assert_int_equal(n, 1);
    registry_contacts_free_ids(out, n);
    free(v);

    v = registry_contacts_encode(true, NULL, 0, &len);
    assert_string_equal(v, "L");
    assert_int_equal(registry_contacts_decode(v, len, 10, &stored, &out, &n), 0);
    assert_true(stored);
    assert_int_equal(n, 0);
    registry_contacts_free_ids(out, n);
    free(v);
    v = registry_contacts_encode(false, ids, 2, &len);
    assert_string_equal(v, "N");
    assert_int_equal(registry_contacts_decode(v, len, 10, &stored, &out, &n), 0);
    assert_false(stored);
    registry_contacts_free_ids(out, n);
    free(v);

    /* Not ours: a miss for the caller. */
    assert_int_equal(registry_contacts_decode("X", 1, 10, &stored, &out, &n), -1);
    assert_int_equal(registry_contacts_decode("", 0, 10, &stored, &out, &n), -1);
    assert_int_equal(registry_contacts_decode("La", 2, 10, &stored, &out, &n), -1);
    /* Ids that break the rule are left out. */
    assert_int_equal(registry_contacts_decode("L\n\na,b\nok", 9, 10, &stored, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0], "ok");
    registry_contacts_free_ids(out, n);
}

/* Parse body as PUT (patch false) or PATCH; returns the status (0 or -1). */
static int parse(const char *body, bool patch, size_t max, size_t *na, size_t *nb)
{
    json_t *root;
    const char **a, **b, *why = NULL;
    int rc = http_contacts_parse(body, strlen(body), patch, max, &root, &a, na, &b, nb, &why);
    assert_true(rc == 0 || why != NULL);
    free(a);
    free(b);
    json_decref(root);
    return rc;
}

static void test_bodies(void **state)
{
    (void)state;
    size_t na, nb;
    assert_int_equal(parse("{\"contacts\":[\"b\",\"a\",\"b\"]}", false, 5, &na, &nb), 0);
    assert_int_equal(na, 2);
    assert_int_equal(parse("{\"contacts\":[]}", false, 5, &na, &nb), 0);
    assert_int_equal(na, 0);
    assert_int_equal(parse("{\"add\":[\"a\"],\"remove\":[\"b\",\"c\"]}", true, 5, &na, &nb), 0);
    assert_int_equal(na, 1);
    assert_int_equal(nb, 2);
    assert_int_equal(parse("{}", true, 5, &na, &nb), 0);
    static const char *const bad_put[] = {
        "", "[", "[]", "{}", "{\"contacts\":\"a\"}", "{\"contacts\":[1]}",
        "{\"contacts\":[\"a,b\"]}", "{\"contacts\":[\"\"]}", "{\"contacts\":[],\"x\":1}",
        "{\"contacts\":[\"a\",\"b\",\"c\"]}", "{\"contacts\":[],\"contacts\":[]}",
        "{\"add\":[]}",
    };
    for (size_t i = 0; i < sizeof bad_put / sizeof bad_put[0]; i++)
        assert_int_equal(parse(bad_put[i], false, 2, &na, &nb), -1);
    static const char *const bad_patch[] = {
        "{\"add\":[\"a\"],\"remove\":[\"a\"]}", "{\"contacts\":[]}", "{\"add\":{}}",
        "{\"remove\":[\"a\",\"b\",\"c\"]}",
    };
    for (size_t i = 0; i < sizeof bad_patch / sizeof bad_patch[0]; i++)
        assert_int_equal(parse(bad_patch[i], true, 2, &na, &nb), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_sort_unique),
        cmocka_unit_test(test_first_missing),
        cmocka_unit_test(test_value),
        cmocka_unit_test(test_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
