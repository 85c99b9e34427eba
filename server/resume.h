/* resume.h — SUBSCRIBE with x-since: replay what a client missed, then go live.
 *
 * A client that reconnects (to any server) subscribes with the id of the
 * last message it saw:
 *
 *   SUBSCRIBE
 *   destination:/topic/<room>
 *   x-since:<message id>
 *
 * The subscription joins the room as usual. Once this server is a member of
 * the room cluster-wide (the room is "based"), every message after x-since is
 * read from history (Redis room log, then MySQL for older ones; see
 * history.h) page by page and delivered in order; live messages that arrive
 * for the subscription meanwhile are held. When history has nothing newer,
 * the held messages newer than the last replayed one are delivered and the
 * subscription is live; live copies of messages the replay delivered (history
 * can be ahead of the bus) are dropped until the first newer one. No gap: every message published after the join
 * reaches the subscription live (the join made this server visible to every
 * publisher first), every earlier one is in history. No duplicate: delivery
 * is by strictly increasing id.
 */
#ifndef LECTERN_RESUME_H
#define LECTERN_RESUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "error_reason.h"
#include "gate.h"
#include "history.h"
#include "metrics.h"
#include "msg.h"
#include "msgid.h"
#include "relay.h"

typedef struct resume resume;

/* What every replay of one server shares. All borrowed: they outlive every
 * resume. */
typedef struct resume_env {
    uv_loop_t *loop;
    history *history;
    gate *slots;                 /* history reads (http.max_inflight), shared with HTTP */
    relay *relay;                /* encodes replayed envelopes (relay_message) */
    metrics *metrics;            /* slow_consumers, conn_memory_closes */
    size_t max_pending;          /* stomp.max_pending: the cap on what is held */
    size_t page;                 /* stomp.resume_page: messages per history read */
} resume_env;

/* The subscription being resumed, as a resume sees it: hooks into its
 * owner (a connection), each called with the ctx given to resume_start. */
typedef struct resume_sink {
    /* Bytes the connection has queued and not written (for pacing). */
    size_t (*pending)(void *ctx);
    /* Queue m now, bypassing the hold (the replay itself). */
    void (*replay)(void *ctx, msg *m);
    /* Charge `bytes` of held messages to the connection's memory budget;
     * false, charging nothing, when they do not fit. */
    bool (*hold)(void *ctx, size_t bytes);
    /* Give back what hold charged. */
    void (*unhold)(void *ctx, size_t bytes);
    /* ERROR (reason, detail) and close the connection; the resume has
     * detached itself first. */
    void (*abort)(void *ctx, error_reason reason, const char *detail);
} resume_sink;

/* Begin resuming a topic subscription (ctx, with the hooks of sink) that
 * has just joined room r, after `since`. *slot, the owner's pointer to
 * its resume, is set now and cleared by the resume when the subscription
 * goes live (or the replay fails): while it is set, the owner passes live
 * messages to resume_hold. conn_id names the connection in logs. env, sink
 * and slot are borrowed for the resume's life; slot until resume_cancel.
 * Never fails; errors reach the client through sink->abort later. */
void resume_start(const resume_env *env, const resume_sink *sink, void *ctx, resume **slot,
                  struct room *r, uint64_t conn_id, msgid since);

/* A live message for sub while it resumes: true when it was taken (held,
 * with its own reference, or, once the replay is done, dropped as one the
 * replay delivered already); false when it is to be delivered as usual:
 * the first live message newer than the replay, which also detaches the
 * resume (clears *slot) and frees it. */
bool resume_hold(resume *rs, msg *m);

/* The subscription is going away; the resume stops and clears its slot (its pending history
 * read completes into nothing; one waiting for a history slot is freed at
 * once). Accepts NULL; rs is not to be used afterwards. */
void resume_cancel(resume *rs);

#endif
