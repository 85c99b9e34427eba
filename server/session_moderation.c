/* session_moderation.c — kicks and bans as a connection sees them.
 *
 * Two jobs, both on topic subscriptions:
 *
 * The ban check. A SUBSCRIBE to /topic/<room> asks Redis whether its user
 * is banned from the room (moderation_check_ban) before it joins: the
 * subscription is recorded at once (so a later UNSUBSCRIBE finds it) but is
 * not a member of its room until the answer, so a banned user is handed no
 * message at all. Banned: ERROR Banned (its body says until when). Not
 * banned: the join (and an x-since replay) as for any subscription. The
 * check is the operation the SUBSCRIBE's RECEIPT waits for, handed on to
 * the join, so a RECEIPT still means "a member of the room cluster-wide".
 * While the check is out the connection's input waits (session_hold_input),
 * so what the client sent after the SUBSCRIBE (a SEND to the same room,
 * typically) takes effect after the join, in the order sent: its message
 * reaches the new subscription, as STOMP's ordering promises. It costs a
 * Redis round trip per topic SUBSCRIBE, paid one after the other; a Redis
 * that does not answer holds the input for redis.reply_timeout_ms at most
 * (then the check fails and the subscription joins unchecked). Held input
 * stays in the socket (lws reads nothing), so it costs the server nothing.
 * When Redis cannot be asked, the subscription joins unchecked: reading
 * goes on through a Redis outage, as it always has, and nothing can be
 * published meanwhile (every publish goes through Redis, which refuses a
 * banned sender's SEND).
 *
 * Kicks and bans (session_list_moderate), announced by any server
 * (moderation.h): every topic subscription of the user to the room on this
 * server leaves the room and gets a control MESSAGE as its last frame
 * (moderation_control_frame). The subscription stays known, ended, so the
 * client's UNSUBSCRIBE is receipted. One whose check is still out ends the
 * same way; the check's answer then finds it ended and does not join. A
 * ban that took effect before a check ran is seen by the check; one after
 * it is announced to this server, which ends the subscription whatever
 * the check answers: so no message sent after a ban reaches the user.
 *
 * Invariants: a subscription with SUB_MOD_CHECKING is not a member of its
 * room and its union holds its check; the check holds the subscription
 * until that is dropped (session_moderation_forget clears it).
 */
#include "session_internal.h"
#include "session.h"

#include "log.h"
#include "mem.h"
#include "moderation.h"
#include "relay.h"
#include "resume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct session_modcheck {
    subscription *sub;         /* NULL once the subscription is gone */
    inflight_op *op;           /* the SUBSCRIBE's: the RECEIPT waits for it */
    bool has_since;
    msgid since;
} session_modcheck;

static void session_mod_on_joined(void *ctx, bool ok)
{
    (void)ok;                   /* not ok: unsubscribed before; nothing to say */
    session *s = session_op_finish(ctx);
    if (s)
        session_flush_receipts(s);
}

/* Join sub's room; op (the SUBSCRIBE's) completes when that is done. */
static void session_mod_join(session *s, subscription *sub, inflight_op *op, const msgid *since)
{
    stomp_str name = { sub->id + sub->id_len, sub->room_len };
    relay_join(s->list->env->relay, &sub->member, &name, s->user, session_user_name(s), session_mod_on_joined,
               op);
    if (since)
        resume_start(s->list->env->resume, &session_resume_sink, sub, &sub->resume,
                     sub->member.room, s->id, *since);
}

static void session_mod_on_checked(void *ctx, bool ok, bool banned, uint64_t until_ms)
{
    session_modcheck *chk = ctx;
    subscription *sub = chk->sub;
    inflight_op *op = chk->op;
    bool has_since = chk->has_since;
    msgid since = chk->since;
    free(chk);
    if (!sub) {
        session *s = session_op_finish(op);      /* unsubscribed or closed meanwhile */
        if (s) {
            session_flush_receipts(s);
            session_release_input(s);
        }
        return;
    }
    session *s = sub->session;
    sub->check = NULL;
    sub->mod &= (uint8_t)~SUB_MOD_CHECKING;
    if (sub->mod & SUB_MOD_ENDED) {              /* kicked or banned meanwhile */
        session_op_finish(op);
        session_flush_receipts(s);
        session_release_input(s);
        return;
    }
    if (ok && banned) {
        session_op_finish(op);
        char why[160];
        if (until_ms)
            snprintf(why, sizeof why, "You are banned from this room until %llu (ms since the "
                     "epoch).", (unsigned long long)until_ms);
        else
            snprintf(why, sizeof why, "You are banned from this room until the ban is lifted.");
        s->list->env->metrics->moderation_banned_subscribes++;
        char q[160];
        log_info("subscribe_banned", "conn=%llu user=%s room=%.*s", (unsigned long long)s->id,
                 log_q(q, sizeof q, s->user, strlen(s->user)), (int)sub->room_len,
                 sub->id + sub->id_len);
        session_error(s, NULL, ERROR_BANNED, why);
        session_release_input(s);
        return;
    }
    /* Not banned, or Redis failed to say: join (see the essay), then the
     * frames that came after the SUBSCRIBE, now ordered after its join. */
    session_mod_join(s, sub, op, has_since ? &since : NULL);
    session_release_input(s);
}

void session_moderation_join(session *s, subscription *sub, const msgid *since)
{
    inflight_op *op = session_op(s, inflight_op_cost());
    struct moderation *m = s->list->env->moderation;
    if (!m) {
        session_mod_join(s, sub, op, since);
        return;
    }
    session_modcheck *chk = xcalloc(1, sizeof *chk);
    chk->sub = sub;
    chk->op = op;
    chk->has_since = since != NULL;
    if (since)
        chk->since = *since;
    char rname[256];
    snprintf(rname, sizeof rname, "%.*s", (int)sub->room_len, sub->id + sub->id_len);
    if (moderation_check_ban(m, rname, s->user, session_mod_on_checked, chk) < 0) {
        free(chk);
        session_mod_join(s, sub, op, since);
        return;
    }
    sub->mod |= SUB_MOD_CHECKING;
    sub->check = chk;
    session_hold_input(s);
}

void session_moderation_forget(subscription *sub)
{
    if (sub->mod & SUB_MOD_CHECKING) {
        sub->check->sub = NULL;
        sub->check = NULL;
        sub->mod &= (uint8_t)~SUB_MOD_CHECKING;
    }
}

/* End sub (of s) for ev: out of its room, its last frame the control MESSAGE. */
static void session_mod_end(session *s, subscription *sub, const moderation_event *ev)
{
    if (!(sub->mod & SUB_MOD_CHECKING)) {
        resume_cancel(sub->resume);
        relay_leave(s->list->env->relay, &sub->member, s->user);
    }
    sub->mod |= SUB_MOD_ENDED;
    buf pre, b;
    buf_init(&pre);
    buf_append(&pre, SUBSCRIPTION_HEAD, SUBSCRIPTION_HEAD_LEN);
    buf_append(&pre, subscription_wire_id(sub), sub->wire_len);
    buf_append_char(&pre, '\n');
    buf_init(&b);
    moderation_control_frame(&b, pre.data, pre.len, session_escapes(s), ev);
    session_push_frame(s, &b);
    buf_deinit(&b);
    buf_deinit(&pre);
    s->list->env->metrics->moderation_ended_subs++;
}

void session_list_moderate(session_list *list, const moderation_event *ev)
{
    size_t rl = strlen(ev->room);
    size_t n = 0;
    for (session *s = list->head; s; s = s->next) {
        if (s->state != SESSION_CONNECTED || !s->user || strcmp(s->user, ev->user))
            continue;
        for (subscription *sub = s->subs; sub; sub = sub->next) {
            if (sub->kind != SUB_TOPIC || (sub->mod & SUB_MOD_ENDED) || sub->room_len != rl ||
                memcmp(sub->id + sub->id_len, ev->room, rl))
                continue;
            session_mod_end(s, sub, ev);
            n++;
        }
    }
    char q[160];
    log_info("moderation_heard", "type=%s room=%s user=%s ended=%zu",
             ev->banned ? "banned" : "kicked", ev->room,
             log_q(q, sizeof q, ev->user, strlen(ev->user)), n);
}
