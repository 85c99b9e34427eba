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
 * subscription is live. No gap: every message published after the join
 * reaches the subscription live (the join made this server visible to every
 * publisher first), every earlier one is in history. No duplicate: delivery
 * is by strictly increasing id.
 */
#ifndef LECTERN_RESUME_H
#define LECTERN_RESUME_H

#include <stdbool.h>

#include "msg.h"
#include "msgid.h"

struct server;
struct subscription;
typedef struct resume resume;

/* Begin resuming sub (a topic subscription that has just joined its room)
 * after `since`. Sets sub->resume. Never fails; errors reach the client as
 * an ERROR frame later. */
void resume_start(struct server *srv, struct subscription *sub, msgid since);

/* A live message for sub while it resumes: true when it was taken (held,
 * with its own reference). */
bool resume_hold(resume *rs, msg *m);

/* The subscription is going away; the resume stops (its pending history
 * read completes into nothing; one waiting for a history slot is freed at
 * once). Accepts NULL; rs is not to be used afterwards. */
void resume_cancel(resume *rs);

#endif
