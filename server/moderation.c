/* moderation.c — kick, ban, mute (see moderation.h).
 *
 * Each action is one call of moderate.lua (registry_moderation.h), which
 * makes the change and, for a kick or a ban, PUBLISHes the announcement in
 * the same atomic step: there is no moment at which the ban holds and the
 * announcement is still to go, or the other way round. The servers hear
 * the announcement on their registry subscriber connection
 * (moderation_on_announcement, this server's too) and hand it to their
 * sessions through env.kick.
 *
 * `until` is Redis's clock plus the duration, the same clock publish.lua
 * compares with, so every server agrees when a ban ends. `at` is the
 * asking server's wall clock, shown only.
 *
 * Shutdown. moderation_destroy only flags: a call in flight answers
 * UNAVAILABLE when Redis's reply (or the registry's failure) comes, and
 * the last one frees the struct.
 */
#include "moderation.h"

#include "clock.h"
#include "log.h"
#include "mem.h"
#include "registry_moderation.h"
#include "room.h"
#include "stomp.h"
#include "userid.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)MODERATION_ACTION_COUNT == (int)METRICS_MOD_COUNT,
               "metrics counts each moderation action");

struct moderation {
    moderation_env env;
    size_t ops;               /* in flight */
    bool closing;             /* moderation_destroy was called */
};

typedef struct moderation_op {
    moderation *m;
    moderation_action action;
    moderation_done_fn done;
    moderation_list_fn list_done;
    moderation_check_fn check_done;
    void *ctx;
    uint64_t at_ms;
    char *room, *user, *reason, *by;
} moderation_op;

moderation *moderation_create(const moderation_env *env)
{
    moderation *m = xcalloc(1, sizeof *m);
    m->env = *env;
    return m;
}

void moderation_destroy(moderation *m)
{
    if (!m)
        return;
    m->closing = true;
    if (m->ops == 0)
        free(m);
}

/* --- the pure parts ----------------------------------------------------------------- */

static const char *const moderation_names[MODERATION_ACTION_COUNT] = {
    [MODERATION_KICK] = "kick",
    [MODERATION_BAN] = "ban",
    [MODERATION_UNBAN] = "unban",
    [MODERATION_MUTE] = "mute",
    [MODERATION_UNMUTE] = "unmute",
};

const char *moderation_action_name(moderation_action a)
{
    return (unsigned)a < MODERATION_ACTION_COUNT ? moderation_names[a] : "other";
}

int moderation_action_parse(const char *name, size_t len)
{
    for (int a = 0; a < MODERATION_ACTION_COUNT; a++)
        if (strlen(moderation_names[a]) == len && !memcmp(moderation_names[a], name, len))
            return a;
    return -1;
}

/* Text shown in a header and in JSON: UTF-8 without control characters
 * (so it needs no escaping beyond STOMP's ':' and '\\', even for 1.0). */
static bool moderation_text_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return utf8_valid(s, n);
}

const char *moderation_valid(moderation_action a, const char *rname, const char *user,
                             int64_t duration_ms, const char *reason, const char *by,
                             const moderation_limits *lim)
{
    if ((unsigned)a >= MODERATION_ACTION_COUNT)
        return "unknown action";
    if (!rname || !room_name_valid(rname, strlen(rname), lim->max_room_name))
        return "room names are 1 to stomp.max_room_name characters of A-Z a-z 0-9 . _ ~ -";
    if (!user || !userid_valid(user, strlen(user)))
        return "user ids are 1 to 128 bytes of UTF-8 without control characters or ','";
    if (!by || !userid_valid(by, strlen(by)))
        return "by must be a user id (1 to 128 bytes of UTF-8 without control characters "
               "or ',')";
    if (duration_ms < 0 || duration_ms / 1000 > lim->max_duration_s ||
        (duration_ms > 0 && duration_ms < 1000))
        return "a duration is 1 s to moderation.max_duration_s (none: until lifted)";
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > lim->max_reason || !moderation_text_ok(reason ? reason : "", rl))
        return "a reason is at most moderation.max_reason bytes of UTF-8 without control "
               "characters";
    return NULL;
}

bool moderation_event_parse(const char *json, size_t len, json_t **root, moderation_event *ev)
{
    memset(ev, 0, sizeof *ev);
    json_t *o = json_loadb(json, len, 0, NULL);
    *root = o;
    const char *type = json_string_value(json_object_get(o, "type"));
    json_t *at = json_object_get(o, "at"), *until = json_object_get(o, "until");
    ev->room = json_string_value(json_object_get(o, "room"));
    ev->user = json_string_value(json_object_get(o, "user"));
    ev->reason = json_string_value(json_object_get(o, "reason"));
    ev->by = json_string_value(json_object_get(o, "by"));
    if (!type || (strcmp(type, "kicked") && strcmp(type, "banned")) || !ev->room || !ev->user ||
        !ev->reason || !ev->by || !json_is_number(at) || !json_is_number(until))
        return false;
    ev->banned = !strcmp(type, "banned");
    /* Lua's cjson writes whole numbers as integers up to 14 digits; take
     * either form. */
    ev->at_ms = (uint64_t)json_number_value(at);
    ev->until_ms = (uint64_t)json_number_value(until);
    return true;
}

void moderation_control_frame(buf *out, const char *prefix, size_t prefix_len, bool esc,
                              const moderation_event *ev)
{
    const char *type = ev->banned ? "banned" : "kicked";
    char id[48];
    snprintf(id, sizeof id, "%s-%llu", type, (unsigned long long)ev->at_ms);
    buf_append(out, prefix, prefix_len);
    buf_append_str(out, "destination:/topic/");
    buf_append_str(out, ev->room);
    buf_append_char(out, '\n');
    stomp_put_header_str(out, "message-id", id, esc);
    stomp_put_header_str(out, "x-lectern-event", type, esc);
    stomp_put_header_str(out, "x-reason", ev->reason, esc);
    stomp_put_header_str(out, "x-by", ev->by, esc);
    json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "type", type, "room", ev->room, "reason",
                             ev->reason, "by", ev->by);
    if (ev->banned) {
        buf_append_str(out, "x-until:");
        buf_append_u64(out, ev->until_ms);
        buf_append_char(out, '\n');
        json_object_set_new(body, "until",
                            ev->until_ms ? json_integer((json_int_t)ev->until_ms) : json_null());
    }
    char *text = json_dumps(body, JSON_COMPACT);
    size_t tl = strlen(text);
    stomp_put_header_str(out, "content-type", "application/json", esc);
    buf_append_str(out, "content-length:");
    buf_append_u64(out, tl);
    buf_append_char(out, '\n');
    stomp_put_body(out, text, tl);
    free(text);
    json_decref(body);
}

/* --- calls ------------------------------------------------------------------------- */

static moderation_op *moderation_op_new(moderation *m, const char *rname, const char *user,
                                        void *ctx)
{
    moderation_op *op = xcalloc(1, sizeof *op);
    op->m = m;
    op->ctx = ctx;
    op->room = xstrdup(rname);
    op->user = xstrdup(user ? user : "");
    op->at_ms = clock_wall_ms();
    m->ops++;
    return op;
}

/* The op is over: free it, and the moderator with its last op once closing. */
static void moderation_op_end(moderation_op *op)
{
    moderation *m = op->m;
    free(op->room);
    free(op->user);
    free(op->reason);
    free(op->by);
    free(op);
    if (--m->ops == 0 && m->closing)
        free(m);
}

static void moderation_on_changed(void *ctx, const registry_mod_result *r)
{
    moderation_op *op = ctx;
    moderation *m = op->m;
    moderation_result res = {
        .status = r->ok && !m->closing ? MODERATION_OK : MODERATION_UNAVAILABLE,
        .action = op->action,
        .room = op->room,
        .user = op->user,
        .reason = op->reason,
        .by = op->by,
        .at_ms = op->at_ms,
        .until_ms = r->until_ms,
        .lifted = r->was,
    };
    if (res.status == MODERATION_OK) {
        m->env.metrics->moderation_actions[op->action]++;
        char q[160], qb[160];
        log_info("moderation", "action=%s room=%s user=%s by=%s until=%llu servers=%llu",
                 moderation_action_name(op->action), op->room,
                 log_q(q, sizeof q, op->user, strlen(op->user)),
                 log_q(qb, sizeof qb, op->by, strlen(op->by)),
                 (unsigned long long)r->until_ms, (unsigned long long)r->receivers);
    }
    op->done(op->ctx, &res);
    moderation_op_end(op);
}

int moderation_apply(moderation *m, moderation_action a, const char *rname, const char *user,
                     int64_t duration_ms, const char *reason, const char *by,
                     moderation_done_fn done, void *ctx)
{
    if (moderation_valid(a, rname, user, duration_ms, reason, by, &m->env.lim))
        return MODERATION_EINVAL;
    if (m->closing)
        return MODERATION_EDOWN;
    moderation_op *op = moderation_op_new(m, rname, user, ctx);
    op->action = a;
    op->done = done;
    op->reason = xstrdup(reason ? reason : "");
    op->by = xstrdup(by);
    bool ban = a == MODERATION_BAN || a == MODERATION_UNBAN;
    registry_mod_change ch = {
        .op = a == MODERATION_KICK ? REGISTRY_MOD_KICK
              : a == MODERATION_BAN || a == MODERATION_MUTE ? REGISTRY_MOD_SET
                                                            : REGISTRY_MOD_LIFT,
        .kind = a == MODERATION_KICK ? "" : ban ? "ban" : "mute",
        .room = op->room,
        .user = op->user,
        .duration_ms = a == MODERATION_BAN || a == MODERATION_MUTE ? (uint64_t)duration_ms : 0,
        .reason = op->reason,
        .by = op->by,
        .at_ms = op->at_ms,
    };
    if (registry_moderation_change(m->env.registry, &ch, moderation_on_changed, op) < 0) {
        moderation_op_end(op);
        return MODERATION_EDOWN;
    }
    return 0;
}

/* One list of entries as JSON [{"user","until","reason","by","at"}...]. */
static json_t *moderation_entries_json(const registry_mod_entry *e, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *info = e[i].info_len ? json_loadb(e[i].info, e[i].info_len, 0, NULL) : NULL;
        json_t *reason = json_object_get(info, "reason"), *by = json_object_get(info, "by"),
               *at = json_object_get(info, "at");
        json_array_append_new(
            arr, json_pack("{s:s, s:o, s:O, s:O, s:O}", "user", e[i].user, "until",
                           e[i].until_ms ? json_integer((json_int_t)e[i].until_ms) : json_null(),
                           "reason", json_is_string(reason) ? reason : json_null(), "by",
                           json_is_string(by) ? by : json_null(), "at",
                           json_is_number(at) ? at : json_null()));
        json_decref(info);
    }
    return arr;
}

static void moderation_on_listed(void *ctx, const registry_mod_list *l)
{
    moderation_op *op = ctx;
    json_t *v = NULL;
    if (l->ok && !op->m->closing)
        v = json_pack("{s:s, s:o, s:o}", "room", op->room, "bans",
                      moderation_entries_json(l->bans, l->nbans), "mutes",
                      moderation_entries_json(l->mutes, l->nmutes));
    op->list_done(op->ctx, v);
    json_decref(v);
    moderation_op_end(op);
}

int moderation_list(moderation *m, const char *rname, moderation_list_fn done, void *ctx)
{
    if (!rname || !room_name_valid(rname, strlen(rname), m->env.lim.max_room_name))
        return MODERATION_EINVAL;
    if (m->closing)
        return MODERATION_EDOWN;
    moderation_op *op = moderation_op_new(m, rname, NULL, ctx);
    op->list_done = done;
    if (registry_moderation_get(m->env.registry, rname, "", moderation_on_listed, op) < 0) {
        moderation_op_end(op);
        return MODERATION_EDOWN;
    }
    return 0;
}

/* The bans of a room swept (moderation_sweep): each one hands its user's
 * subscriptions to env.kick, as its announcement would have. */
static void moderation_on_swept(void *ctx, const registry_mod_list *l)
{
    moderation_op *op = ctx;
    moderation *m = op->m;
    for (size_t i = 0; l->ok && !m->closing && m->env.kick && i < l->nbans; i++) {
        const registry_mod_entry *e = &l->bans[i];
        json_t *info = e->info_len ? json_loadb(e->info, e->info_len, 0, NULL) : NULL;
        const char *reason = json_string_value(json_object_get(info, "reason"));
        const char *by = json_string_value(json_object_get(info, "by"));
        json_t *at = json_object_get(info, "at");
        moderation_event ev = {
            .banned = true, .room = op->room, .user = e->user, .reason = reason ? reason : "",
            .by = by ? by : "system",
            .at_ms = json_is_integer(at) ? (uint64_t)json_integer_value(at) : 0,
            .until_ms = e->until_ms,
        };
        m->env.kick(m->env.ctx, &ev);
        json_decref(info);
    }
    moderation_op_end(op);
}

int moderation_sweep(moderation *m, const char *rname)
{
    if (!rname || !room_name_valid(rname, strlen(rname), m->env.lim.max_room_name))
        return MODERATION_EINVAL;
    if (m->closing)
        return MODERATION_EDOWN;
    moderation_op *op = moderation_op_new(m, rname, NULL, NULL);
    if (registry_moderation_get(m->env.registry, rname, "", moderation_on_swept, op) < 0) {
        moderation_op_end(op);
        return MODERATION_EDOWN;
    }
    return 0;
}

static void moderation_on_checked(void *ctx, const registry_mod_list *l)
{
    moderation_op *op = ctx;
    bool ok = l->ok && !op->m->closing;
    op->check_done(op->ctx, ok, ok && l->nbans > 0, ok && l->nbans ? l->bans[0].until_ms : 0);
    moderation_op_end(op);
}

int moderation_check_ban(moderation *m, const char *rname, const char *user,
                         moderation_check_fn done, void *ctx)
{
    if (!rname || !room_name_valid(rname, strlen(rname), m->env.lim.max_room_name) || !user ||
        !*user)
        return MODERATION_EINVAL;
    if (m->closing)
        return MODERATION_EDOWN;
    moderation_op *op = moderation_op_new(m, rname, user, ctx);
    op->check_done = done;
    if (registry_moderation_get(m->env.registry, rname, user, moderation_on_checked, op) < 0) {
        moderation_op_end(op);
        return MODERATION_EDOWN;
    }
    return 0;
}

void moderation_on_announcement(moderation *m, const char *json, size_t len)
{
    json_t *root;
    moderation_event ev;
    if (!moderation_event_parse(json, len, &root, &ev)) {
        log_warn("moderation_malformed", "len=%zu", len);
        json_decref(root);
        return;
    }
    if (!m->closing && m->env.kick)
        m->env.kick(m->env.ctx, &ev);
    json_decref(root);
}
