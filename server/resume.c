/* resume.c — replay after x-since, then live (see resume.h).
 *
 * State per resuming subscription: the last id delivered (at first the
 * x-since point), the live messages held meanwhile (references, in arrival
 * order, which is room order) and whether a history read is in flight.
 *
 *   joined -> read page after `last` -> deliver it, last = its newest id
 *          -> page said `more`? read the next one : release the held
 *             messages newer than `last` -> tail -> the first live
 *             message newer than `last`: detach from the subscription.
 *
 * The tail. History can be ahead of this server's live stream: a message
 * published elsewhere is in the room's Redis log before its copy has come
 * over the bus, so the replay may deliver it and the live copy arrive
 * after the resume has released what it held. Until the first live message
 * newer than `last` (live messages come in room order, so every later one
 * is newer too), the resume stays linked and drops the live ones at or
 * below `last`: each message exactly once. The tail holds nothing and costs
 * no more than the struct; it ends with that message, UNSUBSCRIBE or the
 * connection.
 *
 * A resume never names its subscription's type: it reaches the connection
 * through the sink's hooks (resume_sink) and what the server shares through
 * the env. The subscription can go away at any time (UNSUBSCRIBE,
 * disconnect): it then calls resume_cancel, which only cuts the link; the struct lives on
 * until the read in flight (or the room's based callback) comes back and
 * frees it. Held messages are bounded by stomp.max_pending (bytes) and are
 * charged to the connection's limits.conn_memory while held (a shared
 * message stays in memory as long as anyone holds it): a client that cannot
 * take them is a slow consumer and is disconnected, like any other.
 *
 * Pacing. A page is queued only while the connection has less than half of
 * stomp.max_pending waiting (the rest of the page is read again later), and
 * the next page is read only once the connection has written its queue down
 * below that (checked every RESUME_PACE_MS): a long replay follows the
 * client's reading speed instead of overrunning its queue.
 *
 * Slots. Each page read holds one of the server's history slots
 * (env->slots, http.max_inflight, shared with GET .../messages)
 * from the read until the page has been queued; pages are bounded by
 * history.max_bytes like HTTP ones. A replay cannot be refused the way an
 * HTTP request is, so it waits in line for a slot (first come, first
 * served; HTTP requests are refused while anyone waits). A thousand clients
 * resuming at once after a server died therefore hold at most
 * max_inflight pages of memory, and are served in turn.
 */
#include "resume.h"

#include "log.h"
#include "mem.h"
#include "room.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESUME_PACE_MS 10

struct resume {
    uv_timer_t pace;             /* first: its close callback frees the struct */
    bool pace_init;
    const resume_env *env;
    const resume_sink *sink;
    void *sub;                   /* the sink's ctx; NULL once cancelled */
    resume **slot;               /* the owner's pointer to this resume, while linked */
    uint64_t conn;
    gate_waiter wait;            /* in line for a history slot (wait.queued) */
    char *room;
    msgid last;                  /* newest id delivered, or the x-since point */
    msg **held;
    size_t nheld, cap;
    size_t held_bytes;
    size_t charged;              /* to the connection's budget (sink->hold) */
    uint64_t replayed;
    bool tail;                   /* replay done: dropping live copies at or below `last` */
};

static void resume_on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void resume_free(resume *rs)
{
    for (size_t i = 0; i < rs->nheld; i++)
        msg_unref(rs->held[i]);
    free(rs->held);
    free(rs->room);
    if (rs->pace_init)
        uv_close((uv_handle_t *)&rs->pace, resume_on_closed);
    else
        free(rs);
}

/* The id of a MESSAGE block, or false when it has none that parses. */
static bool resume_msg_id(const msg *m, msgid *out)
{
    return msgid_parse(m->id, m->id_len, out) == 0;
}

/* Give the connection back what the held messages were charged; before
 * the link to the subscription is cut (and before what is held is queued
 * as output, which is charged on its own). */
static void resume_unhold(resume *rs)
{
    if (rs->sub && rs->charged)
        rs->sink->unhold(rs->sub, rs->charged);
    rs->charged = 0;
}

/* The subscription no longer passes live messages here. */
static void resume_detach(resume *rs)
{
    if (rs->slot)
        *rs->slot = NULL;
    rs->slot = NULL;
}

/* Done: deliver what was held and newer than the replay, then go live
 * through the tail (see the essay). */
static void resume_finish(resume *rs)
{
    resume_unhold(rs);
    for (size_t i = 0; i < rs->nheld; i++) {
        msgid id;
        if (resume_msg_id(rs->held[i], &id) && msgid_cmp(id, rs->last) > 0) {
            rs->last = id;
            rs->sink->replay(rs->sub, rs->held[i]);
        }
    }
    log_debug("resume_done", "conn=%llu room=%s replayed=%llu held=%zu",
              (unsigned long long)rs->conn, rs->room,
              (unsigned long long)rs->replayed, rs->nheld);
    for (size_t i = 0; i < rs->nheld; i++)
        msg_unref(rs->held[i]);
    free(rs->held);
    rs->held = NULL;
    rs->nheld = rs->cap = 0;
    rs->held_bytes = 0;
    rs->tail = true;
}

static void resume_next(resume *rs);

/* Read the next page once the client has written most of the last one. */
static void resume_on_pace(uv_timer_t *t)
{
    resume *rs = t->data;
    if (!rs->sub) {
        resume_free(rs);
        return;
    }
    if (rs->sink->pending(rs->sub) > rs->env->max_pending / 2) {
        uv_timer_start(&rs->pace, resume_on_pace, RESUME_PACE_MS, 0);
        return;
    }
    resume_next(rs);
}

static void resume_more(resume *rs)
{
    if (rs->sink->pending(rs->sub) <= rs->env->max_pending / 2) {
        resume_next(rs);
        return;
    }
    if (!rs->pace_init) {
        uv_timer_init(rs->env->loop, &rs->pace);
        rs->pace.data = rs;
        rs->pace_init = true;
    }
    uv_timer_start(&rs->pace, resume_on_pace, RESUME_PACE_MS, 0);
}

static void resume_on_page(void *ctx, const history_page *page)
{
    resume *rs = ctx;
    gate *g = rs->env->slots;
    if (!rs->sub) {
        gate_leave(g);
        resume_free(rs);
        return;
    }
    if (page->status != HISTORY_OK) {
        gate_leave(g);
        void *sub = rs->sub;
        const resume_sink *sink = rs->sink;
        resume_unhold(rs);
        resume_detach(rs);
        char detail[256];
        snprintf(detail, sizeof detail,
                 "The messages after x-since could not be read (%s). Reconnect and "
                 "subscribe again with the same x-since.", page->why ? page->why : "unavailable");
        resume_free(rs);
        sink->abort(sub, ERROR_RESUME_FAILED, detail);
        return;
    }
    relay *r = rs->env->relay;
    size_t half = rs->env->max_pending / 2;
    bool cut = false;
    for (size_t i = 0; i < page->n; i++) {
        msgid id;
        const envelope *env = &page->msgs[i];
        if (msgid_parse(env->id, strlen(env->id), &id) < 0 || msgid_cmp(id, rs->last) <= 0)
            continue;
        if (rs->sink->pending(rs->sub) > half) {
            cut = true;         /* the rest of the page is read again, later */
            break;
        }
        msg *m = relay_message(r, env);
        rs->sink->replay(rs->sub, m);
        msg_unref(m);
        rs->last = id;
        rs->replayed++;
    }
    /* The page is queued (or dropped): its slot goes to the next in line. */
    gate_leave(g);
    if (cut || (page->more && page->n))
        resume_more(rs);
    else
        resume_finish(rs);
}

/* Read the page after `last`; the caller holds a slot for it. */
static void resume_read(resume *rs)
{
    history_query q = {
        .room = rs->room,
        .has_after = true,
        .after = rs->last,
        .limit = rs->env->page,
    };
    history_fetch(rs->env->history, &q, resume_on_page, rs);
}

/* A slot came free for rs (inside someone's gate_leave). */
static void resume_on_slot(void *ctx)
{
    resume_read(ctx);
}

static void resume_next(resume *rs)
{
    if (gate_enter(rs->env->slots, &rs->wait, resume_on_slot, rs))
        resume_read(rs);
}

static void resume_on_based(void *ctx, bool ok)
{
    resume *rs = ctx;
    if (!ok || !rs->sub) {
        resume_unhold(rs);
        resume_detach(rs);
        resume_free(rs);
        return;
    }
    resume_next(rs);
}

void resume_start(const resume_env *env, const resume_sink *sink, void *ctx, resume **slot,
                  room *r, uint64_t conn_id, msgid since)
{
    resume *rs = xcalloc(1, sizeof *rs);
    rs->env = env;
    rs->sink = sink;
    rs->sub = ctx;
    rs->slot = slot;
    rs->conn = conn_id;
    rs->room = xstrdup(room_name(r));
    rs->last = since;
    *slot = rs;
    room_when_based(r, resume_on_based, rs);
}

/* A slow consumer while replaying: detach, then ERROR and close. */
static void resume_slow(resume *rs, const char *detail)
{
    void *sub = rs->sub;
    const resume_sink *sink = rs->sink;
    rs->env->metrics->slow_consumers++;
    resume_cancel(rs);
    sink->abort(sub, ERROR_SLOW_CONSUMER, detail);
}

bool resume_hold(resume *rs, msg *m)
{
    if (rs->tail) {
        msgid id;
        if (resume_msg_id(m, &id) && msgid_cmp(id, rs->last) <= 0) {
            rs->env->metrics->resume_overlap_dropped++;
            return true;                /* the replay delivered it */
        }
        resume_detach(rs);              /* live from here on */
        resume_free(rs);
        return false;
    }
    if (rs->held_bytes + m->len > rs->env->max_pending) {
        resume_slow(rs, "Live messages held while replaying history exceeded stomp.max_pending.");
        return true;
    }
    size_t cost = m->len + 2 * sizeof *rs->held;
    if (!rs->sink->hold(rs->sub, cost)) {
        rs->env->metrics->conn_memory_closes++;
        resume_slow(rs, "Live messages held while replaying history would exceed the "
                        "connection's limits.conn_memory.");
        return true;
    }
    rs->charged += cost;
    if (rs->nheld == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 16;
        rs->held = xrealloc(rs->held, rs->cap * sizeof *rs->held);
    }
    rs->held[rs->nheld++] = msg_ref(m);
    rs->held_bytes += m->len;
    return true;
}

void resume_cancel(resume *rs)
{
    if (!rs || !rs->sub)
        return;
    resume_unhold(rs);
    resume_detach(rs);
    rs->sub = NULL;
    if (rs->tail) {
        /* Nothing in flight comes back for it. */
        resume_free(rs);
    } else if (rs->wait.queued) {
        /* In line for a slot: nothing else will come back to free it. */
        gate_cancel(rs->env->slots, &rs->wait);
        resume_free(rs);
    }
}
