/* test_control.c — the body of a SEND to /control/<room> (server/control.c):
 * each action with its members, and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "control.h"

static const control_limits lim = { .max_duration_s = 86400, .max_reason = 16 };

static json_t *parse(const char *body, control_cmd *cmd, const char **why)
{
    *why = NULL;
    return control_parse(body, strlen(body), &lim, cmd, why);
}

static void test_actions(void **state)
{
    (void)state;
    control_cmd c;
    const char *why;
    json_t *o = parse("{\"action\":\"redact\",\"id\":\"1700000000000-3\"}", &c, &why);
    assert_non_null(o);
    assert_int_equal(c.action, CONTROL_REDACT);
    assert_string_equal(c.id, "1700000000000-3");
    json_decref(o);

    o = parse("{\"action\":\"mute\",\"user\":\"bob\",\"duration_s\":600,\"reason\":\"spam\"}", &c, &why);
    assert_non_null(o);
    assert_int_equal(c.action, CONTROL_MUTE);
    assert_string_equal(c.user, "bob");
    assert_int_equal(c.duration_ms, 600000);
    assert_string_equal(c.reason, "spam");
    json_decref(o);

    o = parse("{\"action\":\"mute\",\"user\":\"bob\"}", &c, &why);   /* until lifted */
    assert_non_null(o);
    assert_int_equal(c.duration_ms, 0);
    assert_string_equal(c.reason, "");
    json_decref(o);

    o = parse("{\"user\":\"bob\",\"action\":\"unmute\"}", &c, &why);
    assert_non_null(o);
    assert_int_equal(c.action, CONTROL_UNMUTE);
    json_decref(o);

    o = parse("{\"action\":\"kick\",\"user\":\"Zoë\",\"reason\":\"bye\"}", &c, &why);
    assert_non_null(o);
    assert_int_equal(c.action, CONTROL_KICK);
    assert_string_equal(c.user, "Zoë");
    json_decref(o);
    assert_string_equal(control_action_name(CONTROL_UNMUTE), "unmute");
}

static void test_refusals(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "[]", "\"redact\"", "{}", "{\"action\":\"ban\",\"user\":\"bob\"}",
        "{\"action\":7}", "{\"action\":\"redact\"}", "{\"action\":\"redact\",\"id\":\"abc\"}",
        "{\"action\":\"redact\",\"id\":\"1-2\",\"user\":\"bob\"}",
        "{\"action\":\"mute\"}", "{\"action\":\"mute\",\"user\":\"\"}",
        "{\"action\":\"mute\",\"user\":\"a,b\"}", "{\"action\":\"mute\",\"user\":\"a\\nb\"}",
        "{\"action\":\"mute\",\"user\":\"bob\",\"duration_s\":0}",
        "{\"action\":\"mute\",\"user\":\"bob\",\"duration_s\":86401}",
        "{\"action\":\"mute\",\"user\":\"bob\",\"duration_s\":1.5}",
        "{\"action\":\"mute\",\"user\":\"bob\",\"duration_s\":\"60\"}",
        "{\"action\":\"mute\",\"user\":\"bob\",\"reason\":\"seventeen bytes!!\"}",
        "{\"action\":\"mute\",\"user\":\"bob\",\"reason\":5}",
        "{\"action\":\"kick\",\"user\":\"bob\",\"duration_s\":60}",
        "{\"action\":\"unmute\",\"user\":\"bob\",\"reason\":\"x\"}",
        "{\"action\":\"kick\",\"user\":\"bob\",\"user\":\"eve\"}",
        "{\"action\":\"kick\",\"user\":\"bob\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        control_cmd c;
        const char *why;
        json_t *o = parse(bad[i], &c, &why);
        if (o)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
