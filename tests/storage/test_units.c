/* test_units.c — the pure parts of lectern-storage, under ASan/UBSan:
 * splitting migrations into statements (storage-worker/schema.c), the
 * reconnect delays (lib/backoff.c) and the Prometheus text of the metrics
 * (storage-worker/metrics.c). Run by tests/storage/run.sh before the
 * service tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "backoff.h"
#include "buf.h"
/* By path: test objects are compiled with -Iserver, which has a metrics.h too. */
#include "../../storage-worker/metrics.h"
#include "../../storage-worker/schema.h"

/* Split text; the statements joined with '|'. */
static void split(const char *text, char *out, size_t n)
{
    const char *p = text, *stmt;
    size_t len, o = 0;
    out[0] = '\0';
    while ((len = schema_next_statement(&p, &stmt)) > 0) {
        o += (size_t)snprintf(out + o, n - o, "%s%.*s", o ? "|" : "", (int)len, stmt);
        assert_true(o < n);
    }
}

static void test_split(void **state)
{
    (void)state;
    static const struct { const char *in, *want; } cases[] = {
        { "", "" },
        { "  \n\t\n", "" },
        { "CREATE TABLE a (x INT);\n", "CREATE TABLE a (x INT)" },
        { "A;\nB;\n", "A|B" },
        { "A;  \r\n  B ;\t\n", "A|B" },                     /* blanks around are not part of it */
        { "A;\n\n;\n\nB", "A|B" },                       /* a lone ';', a last one without */
        { "SELECT 'a;b' FROM t;\nC;", "SELECT 'a;b' FROM t|C" },   /* ';' inside a line */
        { "CREATE TABLE t (\n  x INT\n);\n", "CREATE TABLE t (\n  x INT\n)" },
        { "A; B;\n", "A; B" },                            /* only a ';' ending its line ends */
    };
    char got[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        split(cases[i].in, got, sizeof got);
        if (strcmp(got, cases[i].want))
            fail_msg("case %zu: got [%s], want [%s]", i, got, cases[i].want);
    }
}

/* Every embedded migration splits into statements without comment lines,
 * versions increase, and the table ends with { 0, NULL, NULL }. */
static void test_embedded(void **state)
{
    (void)state;
    int last = 0, n = 0;
    const schema_migration *m;
    for (m = schema_migrations; m->version; m++, n++) {
        assert_true(m->version > last);
        last = m->version;
        assert_non_null(m->name);
        const char *p = m->sql, *stmt;
        size_t len;
        int k = 0;
        while ((len = schema_next_statement(&p, &stmt)) > 0) {
            assert_true(strncmp(stmt, "--", 2) != 0);
            k++;
        }
        assert_true(k >= 1);
    }
    assert_true(n >= 1);
    assert_null(m->name);
    assert_true(strstr(schema_migrations[0].sql, "CREATE TABLE IF NOT EXISTS messages") != NULL);
}

static void test_backoff(void **state)
{
    (void)state;
    backoff b;
    backoff_init(&b, 100, 5000, 42);
    int cap = 100;
    for (int i = 0; i < 20; i++) {
        int d = backoff_next(&b);
        assert_true(d >= 100 && d <= cap);
        cap = cap * 2 > 5000 ? 5000 : cap * 2;
    }
    backoff_reset(&b);
    for (int i = 0; i < 50; i++) {
        backoff_reset(&b);
        assert_int_equal(backoff_next(&b), 100);    /* first delay after a success: the floor */
    }
    /* Jitter: over many draws at the cap, not all the same. */
    int lo = 1 << 30, hi = 0;
    for (int i = 0; i < 200; i++) {
        int d = backoff_next(&b);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(hi - lo > 1000);
    backoff_init(&b, 0, -1, 0);                      /* nonsense bounds are clamped */
    assert_int_equal(backoff_next(&b), 1);
}

static void test_metrics_text(void **state)
{
    (void)state;
    metrics m;
    buf b;
    metrics_init(&m);
    buf_init(&b);
    metrics_batch(&m, 7, 5, 3000, 1000, 250);       /* 7 rows, 5 new, 3 ms */
    metrics_batch(&m, 500, 500, 40000, 2500, 40);   /* 500 rows, 40 ms */
    metrics_add(&m.errors_poison, 3);
    metrics_render(&m, 4000, &b);
    static const char *const want[] = {
        "lectern_storage_rows_written_total 505\n",
        "lectern_storage_duplicates_total 2\n",
        "lectern_storage_batches_total 2\n",
        "lectern_storage_batch_rows_bucket{le=\"5\"} 0\n",
        "lectern_storage_batch_rows_bucket{le=\"10\"} 1\n",
        "lectern_storage_batch_rows_bucket{le=\"250\"} 1\n",
        "lectern_storage_batch_rows_bucket{le=\"500\"} 2\n",
        "lectern_storage_batch_rows_bucket{le=\"+Inf\"} 2\n",
        "lectern_storage_batch_rows_sum 507\n",
        "lectern_storage_commit_seconds_bucket{le=\"0.0025\"} 0\n",
        "lectern_storage_commit_seconds_bucket{le=\"0.005\"} 1\n",
        "lectern_storage_commit_seconds_bucket{le=\"0.05\"} 2\n",
        "lectern_storage_commit_seconds_sum 0.043000\n",
        "lectern_storage_commit_seconds_count 2\n",
        "lectern_storage_lag_seconds 1.500\n",       /* 4000 - newest 2500 */
        "lectern_storage_lag_max_seconds 0.040\n",   /* of the last batch */
        "lectern_storage_queue_messages -1\n",
        "lectern_storage_errors_total{kind=\"poison\"} 3\n",
        "lectern_storage_up{dep=\"mysql\"} 0\n",
        "# TYPE lectern_storage_batch_rows histogram\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(b.data, want[i]))
            fail_msg("missing: %s", want[i]);
    buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_embedded),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_metrics_text),
    };
    return cmocka_run_group_tests_name("lectern-storage units", tests, NULL, NULL);
}
