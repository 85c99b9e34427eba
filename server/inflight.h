/* inflight.h — one connection's operations in flight and the receipts
 * that wait for them.
 *
 * Publishing and joining a room are asynchronous (Redis, then RabbitMQ,
 * answer later), and a receipt promises that everything before it is done.
 * So operations are numbered as they start, a receipt asked for while any
 * is in flight waits for all of those started before it, and receipts go
 * out in the order they were asked for. A SEND's own receipt is tied to its
 * publish (inflight_wait_op) and carries the message id the publish
 * reports (inflight_set_id). The queue only keeps the books; the session
 * writes the receipts and charges the costs (stored here so that they can
 * be given back) to its memory budget.
 */
#ifndef LECTERN_INFLIGHT_H
#define LECTERN_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct inflight_op inflight_op;     /* one operation in flight (opaque) */

/* Longest message id a receipt carries (a Redis stream id is at most 41
 * bytes: two 20-digit numbers and '-'). */
#define INFLIGHT_MID_MAX 47

/* A receipt (or a DISCONNECT) waiting; id[0..id_len) is its receipt id,
 * mid[0..mid_len) the message id of its SEND (mid_len 0: none). */
typedef struct inflight_receipt {
    struct inflight_receipt *next;
    uint64_t need;               /* the queue's `done` must reach this */
    bool disconnect;
    uint8_t mid_len;
    char mid[INFLIGHT_MID_MAX];
    size_t id_len;
    char id[];
} inflight_receipt;

/* Embedded in its owner; zero-initialised and then inflight_init'ed. */
typedef struct inflight {
    void *owner;                 /* what inflight_finish hands back */
    uint64_t issued, done;       /* operations 1..done have all completed */
    inflight_op *ops;            /* in flight */
    uint64_t *early;             /* completed out of order, above done+1; sorted */
    uint32_t nearly, cearly;
    inflight_receipt *head, *tail;
} inflight;

void inflight_init(inflight *q, void *owner);
/* Free the waiting receipts; operations still in flight are orphaned: their
 * inflight_finish only frees them and returns NULL. */
void inflight_deinit(inflight *q);

/* Heap bytes one operation's record (and its possible place among the
 * early completions) takes, and a waiting receipt with an id of len bytes. */
size_t inflight_op_cost(void);
size_t inflight_receipt_cost(size_t len);

/* Start an operation; `cost` is kept for inflight_finish. The op is the
 * context of its completion callback. */
inflight_op *inflight_start(inflight *q, size_t cost);
/* The operation just started (the latest) could not begin: forget it,
 * and the receipt tied to it (inflight_wait_op) if any. Returns its cost,
 * plus that receipt's inflight_receipt_cost. */
size_t inflight_cancel(inflight *q, inflight_op *op);
/* The operation completed: free it; returns the owner, or NULL when the
 * queue was deinit'ed meanwhile, and its cost in *cost. */
void *inflight_finish(inflight_op *op, size_t *cost);

/* Nothing in flight and no receipt waiting: a receipt may go out now. */
bool inflight_idle(const inflight *q);
/* Queue a receipt after every operation started so far (id is copied). */
void inflight_wait(inflight *q, const char *id, size_t len, bool disconnect);
/* Queue a receipt after every operation started so far, op being the
 * latest, and tie it to op: the message id given by inflight_set_id(op)
 * goes into it (id is copied). */
void inflight_wait_op(inflight *q, inflight_op *op, const char *id, size_t len);
/* The message id op produced (before inflight_finish), for the receipt
 * tied to it; nothing when none is, the queue is gone, or len is over
 * INFLIGHT_MID_MAX (no id rather than a cut one). id is copied. */
void inflight_set_id(inflight_op *op, const char *id, size_t len);
/* The receipt id of the receipt tied to op (inflight_wait_op), valid
 * until op finishes, in *len; NULL when none is (or the queue is gone).
 * For an ERROR about op's failure, which names the frame's receipt. */
const char *inflight_receipt_of(const inflight_op *op, size_t *len);
/* Take the first waiting receipt if the operations it waits for are all
 * done (the caller frees it); NULL otherwise. */
inflight_receipt *inflight_ready(inflight *q);

#endif
