/* test_moderation.c — the pure parts of moderation.c: action names, the
 * argument rules (moderation_valid: what the server API and the control
 * frame refuse), reading an announcement as moderate.lua writes it, and the
 * control MESSAGE that ends a subscription, in STOMP 1.2 and 1.0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "moderation.h"

static const moderation_limits lim = { 16, 100, 10 };

static void test_action_names(void **state)
{
    (void)state;
    static const char *const names[] = { "kick", "ban", "unban", "mute", "unmute" };
    for (int a = 0; a < MODERATION_ACTION_COUNT; a++) {
        assert_string_equal(moderation_action_name((moderation_action)a), names[a]);
        assert_int_equal(moderation_action_parse(names[a], strlen(names[a])), a);
    }
    assert_string_equal(moderation_action_name(MODERATION_ACTION_COUNT), "other");
    assert_int_equal(moderation_action_parse("kic", 3), -1);
    assert_int_equal(moderation_action_parse("kicks", 5), -1);
    assert_int_equal(moderation_action_parse("moderation", 10), -1);
    assert_int_equal(moderation_action_parse("", 0), -1);
}

static void test_valid(void **state)
{
    (void)state;
    /* Accepted, limits inclusive. */
    assert_null(moderation_valid(MODERATION_KICK, "room-1", "stu", 0, NULL, "system", &lim));
    assert_null(moderation_valid(MODERATION_BAN, "r", "stu", 100000, "0123456789", "prof", &lim));
    assert_null(moderation_valid(MODERATION_MUTE, "r", "stu", 1000, "", "prof", &lim));
    assert_null(moderation_valid(MODERATION_BAN, "r", "ünï cödé", 0, "çà: \\ ok", "p", &lim));
    /* Refused, each for its own reason. */
    struct { moderation_action a; const char *room, *user; int64_t ms; const char *reason, *by; }
    bad[] = {
        { MODERATION_ACTION_COUNT, "r", "u", 0, "", "s" },
        { MODERATION_KICK, "", "u", 0, "", "s" },
        { MODERATION_KICK, "a b", "u", 0, "", "s" },
        { MODERATION_KICK, "0123456789abcdefg", "u", 0, "", "s" },    /* 17 > 16 */
        { MODERATION_KICK, NULL, "u", 0, "", "s" },
        { MODERATION_KICK, "r", "", 0, "", "s" },
        { MODERATION_KICK, "r", "a,b", 0, "", "s" },
        { MODERATION_KICK, "r", "a\nb", 0, "", "s" },
        { MODERATION_KICK, "r", NULL, 0, "", "s" },
        { MODERATION_KICK, "r", "u", 0, "", "" },
        { MODERATION_KICK, "r", "u", 0, "", NULL },
        { MODERATION_BAN, "r", "u", -1, "", "s" },
        { MODERATION_BAN, "r", "u", 999, "", "s" },
        { MODERATION_BAN, "r", "u", 101000, "", "s" },
        { MODERATION_MUTE, "r", "u", 0, "01234567890", "s" },           /* 11 > 10 */
        { MODERATION_MUTE, "r", "u", 0, "a\nb", "s" },
        { MODERATION_MUTE, "r", "u", 0, "a\x7f", "s" },
        { MODERATION_MUTE, "r", "u", 0, "\xff", "s" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = moderation_valid(bad[i].a, bad[i].room, bad[i].user, bad[i].ms,
                                           bad[i].reason, bad[i].by, &lim);
        if (!why)
            fail_msg("case %zu accepted", i);
    }
}

static void test_event_parse(void **state)
{
    (void)state;
    /* As moderate.lua's cjson writes it (key order is cjson's). */
    const char *j = "{\"until\":1795337300010,\"room\":\"r1\",\"by\":\"prof\",\"user\":\"stu\","
                    "\"type\":\"banned\",\"reason\":\"spam\",\"at\":1795337298000}";
    json_t *root;
    moderation_event ev;
    assert_true(moderation_event_parse(j, strlen(j), &root, &ev));
    assert_true(ev.banned);
    assert_string_equal(ev.room, "r1");
    assert_string_equal(ev.user, "stu");
    assert_string_equal(ev.reason, "spam");
    assert_string_equal(ev.by, "prof");
    assert_int_equal(ev.until_ms, 1795337300010ULL);
    assert_int_equal(ev.at_ms, 1795337298000ULL);
    json_decref(root);
    const char *k = "{\"type\":\"kicked\",\"room\":\"r\",\"user\":\"u\",\"reason\":\"\","
                    "\"by\":\"system\",\"at\":1.795337298e+12,\"until\":0}";
    assert_true(moderation_event_parse(k, strlen(k), &root, &ev));
    assert_false(ev.banned);
    assert_int_equal(ev.at_ms, 1795337298000ULL);
    json_decref(root);
    static const char *const bad[] = {
        "", "[]", "not json",
        "{\"type\":\"muted\",\"room\":\"r\",\"user\":\"u\",\"reason\":\"\",\"by\":\"s\",\"at\":1,\"until\":0}",
        "{\"type\":\"kicked\",\"user\":\"u\",\"reason\":\"\",\"by\":\"s\",\"at\":1,\"until\":0}",
        "{\"type\":\"kicked\",\"room\":\"r\",\"reason\":\"\",\"by\":\"s\",\"at\":1,\"until\":0}",
        "{\"type\":\"kicked\",\"room\":\"r\",\"user\":\"u\",\"by\":\"s\",\"at\":1,\"until\":0}",
        "{\"type\":\"kicked\",\"room\":\"r\",\"user\":\"u\",\"reason\":\"\",\"at\":1,\"until\":0}",
        "{\"type\":\"kicked\",\"room\":\"r\",\"user\":\"u\",\"reason\":\"\",\"by\":\"s\",\"until\":0}",
        "{\"type\":\"kicked\",\"room\":\"r\",\"user\":\"u\",\"reason\":\"\",\"by\":\"s\",\"at\":\"1\",\"until\":0}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool ok = moderation_event_parse(bad[i], strlen(bad[i]), &root, &ev);
        json_decref(root);
        if (ok)
            fail_msg("bad announcement %zu accepted", i);
    }
}

static char *frame(bool escape, const moderation_event *ev)
{
    static const char prefix[] = "MESSAGE\nsubscription:sub-1\n";
    buf b;
    buf_init(&b);
    moderation_control_frame(&b, prefix, sizeof prefix - 1, escape, ev);
    size_t n;
    char *s = buf_detach(&b, &n);
    assert_int_equal(strlen(s) + 1, n);          /* one NUL, at the end */
    return s;
}

static void test_control_frame(void **state)
{
    (void)state;
    moderation_event kick = { false, "physics", "stu", "off: topic", "prof\\x", 1700, 0 };
    char *s = frame(true, &kick);
    const char *body = "{\"type\":\"kicked\",\"room\":\"physics\",\"reason\":\"off: topic\","
                       "\"by\":\"prof\\\\x\"}";
    char want[1024];
    snprintf(want, sizeof want,
             "MESSAGE\nsubscription:sub-1\ndestination:/topic/physics\nmessage-id:kicked-1700\n"
             "x-lectern-event:kicked\nx-reason:off\\c topic\nx-by:prof\\\\x\n"
             "content-type:application/json\ncontent-length:%zu\n\n%s",
             strlen(body), body);
    assert_string_equal(s, want);
    free(s);
    /* STOMP 1.0: no escapes. */
    s = frame(false, &kick);
    assert_non_null(strstr(s, "\nx-reason:off: topic\nx-by:prof\\x\n"));
    free(s);
    moderation_event ban = { true, "r", "stu", "", "system", 5, 9000 };
    s = frame(true, &ban);
    assert_non_null(strstr(s, "\nmessage-id:banned-5\nx-lectern-event:banned\nx-reason:\n"
                              "x-by:system\nx-until:9000\n"));
    assert_non_null(strstr(s, "\"until\":9000}"));
    free(s);
    ban.until_ms = 0;
    s = frame(true, &ban);
    assert_non_null(strstr(s, "\nx-until:0\n"));
    assert_non_null(strstr(s, "\"until\":null}"));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_action_names),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_event_parse),
        cmocka_unit_test(test_control_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
