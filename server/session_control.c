/* session_control.c — moderation from inside the room: SEND to /control/<room>.
 *
 * An instructor moderates the rooms their token lists (an admin any room)
 * over the connection they already have: redact a message, mute or unmute
 * a user, kick a user (control.h has the bodies). Students are refused
 * with ERROR "Access refused", whatever they send. The work itself is the
 * server API's (redact.h, moderation.h): the same Redis scripts, the same
 * live effects on every server, with the instructor as `by`.
 *
 * A control frame is answered like any other: a RECEIPT once it took
 * effect cluster-wide, or an ERROR naming what went wrong (an unknown
 * message id, Redis or RabbitMQ unreachable). Like SEND /status it is not
 * part of a transaction, and it is not a room message: nothing of it is
 * delivered or stored but its effects (a redaction's event, a kick's
 * control MESSAGE).
 */
#include "session_internal.h"
#include "session.h"

#include "control.h"
#include "log.h"
#include "moderation.h"
#include "redact.h"

#include <stdio.h>
#include <string.h>

/* May this connection moderate `room`? Instructors and admins (session_room
 * has already checked that the token lists the room for them). */
static bool session_may_moderate(const session *s)
{
    return s->role == JWT_ROLE_INSTRUCTOR || s->role == JWT_ROLE_ADMIN;
}

static void session_on_control_done(session *s, error_reason fail, const char *why)
{
    if (!s)
        return;
    if (why) {
        session_error(s, NULL, fail, why);
        return;
    }
    session_flush_receipts(s);
}

static void session_on_redacted(void *ctx, const redact_result *res)
{
    session *s = session_op_finish(ctx);
    switch (res->status) {
    case REDACT_OK:
    case REDACT_ALREADY:
        session_on_control_done(s, ERROR_INVALID_CONTROL, NULL);
        return;
    case REDACT_NOT_FOUND:
        session_on_control_done(s, ERROR_INVALID_CONTROL,
                                "No message with that id in this room (redact).");
        return;
    default:
        session_on_control_done(s, ERROR_SERVICE_UNAVAILABLE,
                                "The redaction could not be completed now (Redis, MySQL or "
                                "RabbitMQ unavailable); send it again.");
        return;
    }
}

static void session_on_moderated(void *ctx, const moderation_result *res)
{
    session_on_control_done(session_op_finish(ctx), ERROR_SERVICE_UNAVAILABLE,
                            res->status == MODERATION_OK
                                ? NULL
                                : "The registry (Redis) did not take the moderation; send it "
                                  "again.");
}

static moderation_action session_moderation_of(control_action a)
{
    return a == CONTROL_MUTE ? MODERATION_MUTE : a == CONTROL_UNMUTE ? MODERATION_UNMUTE
                                                                     : MODERATION_KICK;
}

void session_control_send(session *s, const stomp_frame *f, const stomp_str *name)
{
    if (!session_may_moderate(s)) {
        s->list->env->metrics->access_denied++;
        log_info("access_denied", "conn=%llu user=%s action=control",
                 (unsigned long long)s->id, s->user);
        session_error(s, f, ERROR_ACCESS_REFUSED,
                      "Only instructors (in rooms their token lists) and admins may send to "
                      "/control/<room>.");
        return;
    }
    const server_config *c = s->list->env->conf;
    control_limits lim = { c->mod_max_duration_s, (size_t)c->mod_max_reason };
    control_cmd cmd;
    const char *why;
    json_t *o = control_parse(f->body.p, f->body.len, &lim, &cmd, &why);
    if (!o) {
        session_error(s, f, ERROR_INVALID_CONTROL, why);
        return;
    }
    char rname[256];
    snprintf(rname, sizeof rname, "%.*s", (int)name->len, name->p);
    if (cmd.action != CONTROL_REDACT) {
        /* The stricter rules of the moderation itself (a reason's characters),
         * named before anything is done. */
        const char *bad = moderation_valid(session_moderation_of(cmd.action), rname, cmd.user,
                                           cmd.duration_ms, cmd.reason, s->user,
                                           &(moderation_limits){ (size_t)c->max_room_name,
                                                                 c->mod_max_duration_s,
                                                                 (size_t)c->mod_max_reason });
        if (bad) {
            json_decref(o);
            session_error(s, f, ERROR_INVALID_CONTROL, bad);
            return;
        }
    }
    if (!session_fits(s, f, inflight_op_cost())) {
        json_decref(o);
        return;
    }
    inflight_op *op = session_op(s, inflight_op_cost());
    int rc;
    if (cmd.action == CONTROL_REDACT)
        rc = redact_message(s->list->env->redact, rname, cmd.id, s->user, session_on_redacted, op);
    else
        rc = moderation_apply(s->list->env->moderation, session_moderation_of(cmd.action), rname,
                              cmd.user, cmd.duration_ms, cmd.reason, s->user,
                              session_on_moderated, op);
    log_info("control", "conn=%llu user=%s room=%s action=%s", (unsigned long long)s->id,
             s->user, rname, control_action_name(cmd.action));
    json_decref(o);
    if (rc < 0) {
        session_op_cancel(s, op);
        if (rc == -1)     /* REDACT_EINVAL, MODERATION_EINVAL: checked above; an id */
            session_error(s, f, ERROR_INVALID_CONTROL, "The control frame names an invalid "
                                                       "message id or user.");
        else
            session_unavailable(s, f);
        return;
    }
    session_receipt(s, f);
}
