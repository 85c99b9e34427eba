/* test_cfg.c — the declarative config loader (lib/cfg.c): defaults, the INI
 * file with "file:line: reason" errors, --set, bounds, sizes and printing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"

typedef struct conf {
    int n;
    size_t size;
    double ratio;
    bool flag;
    char *name;
    char *mode;
} conf;

static const cfg_knob knobs[] = {
    { "a.n", CFG_INT, offsetof(conf, n), "5", 1, 10, NULL, "A number." },
    { "a.size", CFG_SIZE, offsetof(conf, size), "4k", 1, 1 << 30, NULL, "A size.\nTwo lines." },
    { "b.ratio", CFG_DOUBLE, offsetof(conf, ratio), "1.5", 1.0, 3.0, NULL, "A ratio." },
    { "b.flag", CFG_BOOL, offsetof(conf, flag), "false", 0, 0, NULL, "A flag." },
    { "b.name", CFG_STR, offsetof(conf, name), "", 0, 0, NULL, "Any string." },
    { "b.mode", CFG_STR, offsetof(conf, mode), "fast", 0, 0, "fast|slow", "A choice." },
    { NULL, CFG_INT, 0, NULL, 0, 0, NULL, NULL },
};

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/lectern-cfg-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults(void **state)
{
    (void)state;
    conf c = { 0 };
    char err[256];
    assert_int_equal(cfg_defaults(knobs, &c, err, sizeof err), 0);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.size, 4096);
    assert_true(c.ratio == 1.5);
    assert_false(c.flag);
    assert_string_equal(c.name, "");
    assert_string_equal(c.mode, "fast");
    cfg_free(knobs, &c);
    assert_null(c.name);
}

static void test_get_str(void **state)
{
    (void)state;
    conf c = { 0 };
    char err[256];
    assert_int_equal(cfg_defaults(knobs, &c, err, sizeof err), 0);
    assert_string_equal(cfg_get_str(knobs, &c, "b.mode"), "fast");
    assert_int_equal(cfg_set(knobs, &c, "b.mode=slow", err, sizeof err), 0);
    assert_string_equal(cfg_get_str(knobs, &c, "b.mode"), "slow");
    assert_null(cfg_get_str(knobs, &c, "a.n"));       /* not a string knob */
    assert_null(cfg_get_str(knobs, &c, "no.such"));
    cfg_free(knobs, &c);
}

static void test_file_values_and_comments(void **state)
{
    (void)state;
    conf c = { 0 };
    char err[256];
    char *path = write_tmp("# comment\n; another\n[a]\nn = 7\nsize = 2m\n\n[b]\nflag = yes\n"
                           "name = hello world\nmode = slow\nratio = 2.25\n");
    assert_int_equal(cfg_defaults(knobs, &c, err, sizeof err), 0);
    assert_int_equal(cfg_load_file(knobs, &c, path, err, sizeof err), 0);
    assert_int_equal(c.n, 7);
    assert_int_equal(c.size, 2 << 20);
    assert_true(c.flag);
    assert_string_equal(c.name, "hello world");
    assert_string_equal(c.mode, "slow");
    assert_true(c.ratio == 2.25);
    cfg_free(knobs, &c);
    unlink(path);
    free(path);
}

static void expect_file_error(const char *text, const char *want)
{
    conf c = { 0 };
    char err[256], expect[512];
    char *path = write_tmp(text);
    assert_int_equal(cfg_defaults(knobs, &c, err, sizeof err), 0);
    assert_int_equal(cfg_load_file(knobs, &c, path, err, sizeof err), -1);
    snprintf(expect, sizeof expect, "%s:%s", path, want);
    assert_string_equal(err, expect);
    cfg_free(knobs, &c);
    unlink(path);
    free(path);
}

static void test_file_errors_name_the_line(void **state)
{
    (void)state;
    expect_file_error("[a]\nn = 11\n", "2: a.n = '11': out of range (allowed 1..10)");
    expect_file_error("[a]\nn = 3\nn = x3\n", "3: a.n = 'x3': not an integer (allowed 1..10)");
    expect_file_error("[a]\n\nsize = 12q\n",
                      "3: a.size = '12q': not a size (use a number with an optional k, m or g "
                      "suffix) (allowed 1..1073741824)");
    expect_file_error("[b]\nflag = maybe\n", "2: b.flag = 'maybe': not a boolean (true/false)");
    expect_file_error("[b]\nmode = medium\n",
                      "2: b.mode = 'medium': not one of the allowed values (allowed fast|slow)");
    expect_file_error("[b]\nratio = 0.5\n", "2: b.ratio = '0.5': out of range (allowed 1..3)");
    expect_file_error("[c]\nx = 1\n", "2: unknown knob 'c.x'");
    expect_file_error("n = 1\n", "1: 'n' outside any [section]");
    expect_file_error("[a]\nthis line is junk\n",
                      "2: syntax error (expected key = value or [section])");
}

static void test_missing_file(void **state)
{
    (void)state;
    conf c = { 0 };
    char err[256];
    assert_int_equal(cfg_load_file(knobs, &c, "/nonexistent/lectern.conf", err, sizeof err), -1);
    assert_string_equal(err, "/nonexistent/lectern.conf: cannot open: No such file or directory");
}

static void test_set(void **state)
{
    (void)state;
    conf c = { 0 };
    char err[256];
    assert_int_equal(cfg_defaults(knobs, &c, err, sizeof err), 0);
    assert_int_equal(cfg_set(knobs, &c, "a.n=9", err, sizeof err), 0);
    assert_int_equal(c.n, 9);
    assert_int_equal(cfg_set(knobs, &c, "a.size = 1G", err, sizeof err), 0);
    assert_int_equal(c.size, 1 << 30);
    assert_int_equal(cfg_set(knobs, &c, "a.size=2g", err, sizeof err), -1);
    assert_string_equal(err, "--set: a.size = '2g': out of range (allowed 1..1073741824)");
    assert_int_equal(cfg_set(knobs, &c, "a.size=-1", err, sizeof err), -1);
    assert_int_equal(cfg_set(knobs, &c, "nokey", err, sizeof err), -1);
    assert_string_equal(err, "--set: expected section.key=value, got 'nokey'");
    assert_int_equal(cfg_set(knobs, &c, "z.z=1", err, sizeof err), -1);
    assert_string_equal(err, "--set: unknown knob 'z.z'");
    assert_int_equal(c.n, 9);   /* failed sets change nothing */
    cfg_free(knobs, &c);
}

static void test_print_round_trips(void **state)
{
    (void)state;
    char *path = strdup("/tmp/lectern-cfg-print-XXXXXX");
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    cfg_print(knobs, "Title line.", f);
    fclose(f);
    /* The printed file loads and yields the defaults. */
    conf c = { 0 };
    char err[256];
    assert_int_equal(cfg_defaults(knobs, &c, err, sizeof err), 0);
    c.n = 1;
    assert_int_equal(cfg_load_file(knobs, &c, path, err, sizeof err), 0);
    assert_int_equal(c.n, 5);
    cfg_free(knobs, &c);
    /* And carries the help text as comments. */
    f = fopen(path, "r");
    char text[2048];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "# Title line.\n"));
    assert_non_null(strstr(text, "[a]\n\n# A number.\n# (allowed 1..10) env LECTERN_A_N\nn = 5\n"));
    assert_non_null(strstr(text, "# Any string.\n# env LECTERN_B_NAME\nname =\n"));
    assert_non_null(strstr(text, "# A size.\n# Two lines.\n"));
    assert_non_null(strstr(text, "name =\n"));
    unlink(path);
    free(path);
}

/* The environment sits between the file and --set; a bad value names its
 * variable. */
static void test_env(void **state)
{
    (void)state;
    char name[64], err[256];
    cfg_env_name("b.ratio", name, sizeof name);
    assert_string_equal(name, "LECTERN_B_RATIO");
    char *path = write_tmp("[a]\nn = 2\n[b]\nratio = 2.0\n");
    setenv("LECTERN_A_N", "7", 1);
    setenv("LECTERN_B_MODE", "slow", 1);
    conf c = { 0 };
    const char *sets[] = { "b.ratio=2.5", "a.n=8" };
    assert_int_equal(cfg_load(knobs, &c, path, sets, 1, err, sizeof err), 0);
    assert_int_equal(c.n, 7);                 /* env over the file */
    assert_string_equal(c.mode, "slow");
    assert_true(c.ratio == 2.5);              /* --set over the file */
    cfg_free(knobs, &c);
    assert_int_equal(cfg_load(knobs, &c, path, sets, 2, err, sizeof err), 0);
    assert_int_equal(c.n, 8);                 /* --set over env */
    cfg_free(knobs, &c);
    setenv("LECTERN_A_N", "11", 1);
    assert_int_equal(cfg_load(knobs, &c, NULL, NULL, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "environment LECTERN_A_N: a.n = '11'"));
    cfg_free(knobs, &c);
    unsetenv("LECTERN_A_N");
    unsetenv("LECTERN_B_MODE");
    unlink(path);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_get_str),
        cmocka_unit_test(test_file_values_and_comments),
        cmocka_unit_test(test_file_errors_name_the_line),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_print_round_trips),
        cmocka_unit_test(test_env),
    };
    return cmocka_run_group_tests_name("config loader", tests, NULL, NULL);
}
