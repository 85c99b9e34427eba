/* control.c — reading a moderation frame's body (see control.h).
 *
 * The body is small JSON with one "action" and the members that action
 * takes; anything else is refused with a reason naming the member, before
 * the session does anything. Members an action does not take are refused
 * too (a "duration_s" on a kick is a client's mistake worth hearing about,
 * not something to ignore). jansson parses in time linear in the body,
 * and the STOMP frame limits already bound the body's size.
 */
#include "control.h"

#include "msgid.h"
#include "userid.h"

#include <string.h>

static const char *const control_names[] = {
    [CONTROL_REDACT] = "redact",
    [CONTROL_MUTE] = "mute",
    [CONTROL_UNMUTE] = "unmute",
    [CONTROL_KICK] = "kick",
};

const char *control_action_name(control_action a)
{
    return (unsigned)a < sizeof control_names / sizeof control_names[0] ? control_names[a]
                                                                       : "other";
}

/* Which members each action takes besides "action". */
static const char *const control_members[][3] = {
    [CONTROL_REDACT] = { "id", NULL, NULL },
    [CONTROL_MUTE] = { "user", "duration_s", "reason" },
    [CONTROL_UNMUTE] = { "user", NULL, NULL },
    [CONTROL_KICK] = { "user", "reason", NULL },
};

static int control_takes(control_action a, const char *key)
{
    for (size_t i = 0; i < 3 && control_members[a][i]; i++)
        if (!strcmp(control_members[a][i], key))
            return 1;
    return 0;
}

json_t *control_parse(const char *body, size_t len, const control_limits *lim,
                      control_cmd *cmd, const char **why)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->reason = "";
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) {
        *why = "The body must be a JSON object with an \"action\".";
        goto fail;
    }
    const char *action = json_string_value(json_object_get(o, "action"));
    size_t a = 0;
    while (action && a < sizeof control_names / sizeof control_names[0] &&
           strcmp(action, control_names[a]))
        a++;
    if (!action || a == sizeof control_names / sizeof control_names[0]) {
        *why = "\"action\" must be one of redact, mute, unmute, kick.";
        goto fail;
    }
    cmd->action = (control_action)a;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "action") && !control_takes(cmd->action, key)) {
            *why = "The body has a member this action does not take (redact: id; mute: user, "
                   "duration_s, reason; unmute: user; kick: user, reason).";
            goto fail;
        }
    }
    if (cmd->action == CONTROL_REDACT) {
        json_t *id = json_object_get(o, "id");
        msgid m;
        if (!json_is_string(id) ||
            msgid_parse(json_string_value(id), json_string_length(id), &m) < 0) {
            *why = "\"id\" must be a message id (<ms>-<n>, as in message-id).";
            goto fail;
        }
        cmd->id = json_string_value(id);
        return o;
    }
    json_t *user = json_object_get(o, "user");
    if (!json_is_string(user) || !userid_valid(json_string_value(user), json_string_length(user))) {
        *why = "\"user\" must be a user id (1 to 128 bytes of UTF-8 without control characters "
               "or ',').";
        goto fail;
    }
    cmd->user = json_string_value(user);
    json_t *d = json_object_get(o, "duration_s");
    if (d && (!json_is_integer(d) || json_integer_value(d) < 1 ||
              json_integer_value(d) > lim->max_duration_s)) {
        *why = "\"duration_s\" must be a whole number of seconds from 1 to the longest the "
               "server allows (omit it: until lifted).";
        goto fail;
    }
    if (d)
        cmd->duration_ms = (int64_t)json_integer_value(d) * 1000;
    json_t *r = json_object_get(o, "reason");
    if (r && (!json_is_string(r) || json_string_length(r) > lim->max_reason)) {
        *why = "\"reason\" must be a string no longer than the server allows.";
        goto fail;
    }
    if (r)
        cmd->reason = json_string_value(r);
    return o;
fail:
    json_decref(o);
    return NULL;
}
