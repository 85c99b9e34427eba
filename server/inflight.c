/* inflight.c — operations in flight and waiting receipts (see inflight.h).
 *
 * Completions are counted as a prefix: `done` is the highest n such that
 * operations 1..n have all completed. One that finishes before an earlier
 * one (a SUBSCRIBE's join answered before a SEND's storage confirm) is
 * parked, sorted, in `early` until the gap closes. A receipt records the
 * number of the last operation started before it and is ready once `done`
 * reaches it; receipts are a FIFO, so they go out in order.
 *
 * An operation's completion may come after its connection is gone: the
 * queue keeps its operations on a list and, when deinit'ed, orphans them
 * (q = NULL), so the completion only frees. (A hash of sessions by id did
 * this before, at 56 bytes per connection.)
 *
 * A receipt tied to an operation (a SEND's own) is linked from it, so the
 * publish's message id can be copied in when it completes; the receipt is
 * freed only after its operation completed (it waits for it) or when the
 * queue goes (which unlinks every operation), so the link never dangles.
 *
 * Invariants: done <= issued; every number in early is above done + 1 and
 * at most issued; head is NULL iff tail is.
 */
#include "inflight.h"

#include "budget.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

struct inflight_op {
    struct inflight_op *prev, *next;  /* the queue's operations in flight */
    inflight *q;                      /* NULL once the queue is gone */
    uint64_t n;                       /* this operation's number */
    size_t cost;
    inflight_receipt *rcpt;           /* the receipt carrying its id, or NULL */
};

void inflight_init(inflight *q, void *owner)
{
    memset(q, 0, sizeof *q);
    q->owner = owner;
}

void inflight_deinit(inflight *q)
{
    while (q->head) {
        inflight_receipt *w = q->head;
        q->head = w->next;
        free(w);
    }
    q->tail = NULL;
    free(q->early);
    q->early = NULL;
    for (inflight_op *op = q->ops; op; op = op->next) {
        op->q = NULL;
        op->rcpt = NULL;
    }
    q->ops = NULL;
}

size_t inflight_op_cost(void)
{
    return budget_chunk(sizeof(inflight_op)) + 2 * sizeof(uint64_t);
}

size_t inflight_receipt_cost(size_t len)
{
    return budget_chunk(sizeof(inflight_receipt) + len);
}

inflight_op *inflight_start(inflight *q, size_t cost)
{
    inflight_op *op = xmalloc(sizeof *op);
    op->q = q;
    op->n = ++q->issued;
    op->cost = cost;
    op->rcpt = NULL;
    op->prev = NULL;
    op->next = q->ops;
    if (q->ops)
        q->ops->prev = op;
    q->ops = op;
    return op;
}

static void inflight_unlink(inflight *q, inflight_op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        q->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
}

size_t inflight_cancel(inflight *q, inflight_op *op)
{
    size_t cost = op->cost;
    inflight_receipt *w = op->rcpt;
    if (w) {
        /* Queued right after op, so it is normally the tail; unlinked
         * wherever it is all the same. */
        inflight_receipt **pp = &q->head;
        while (*pp != w)
            pp = &(*pp)->next;
        *pp = w->next;
        q->tail = NULL;
        for (inflight_receipt *t = q->head; t; t = t->next)
            q->tail = t;
        cost += inflight_receipt_cost(w->id_len);
        free(w);
    }
    inflight_unlink(q, op);
    q->issued--;
    free(op);
    return cost;
}

static void inflight_complete(inflight *q, uint64_t n)
{
    if (n != q->done + 1) {
        if (q->nearly == q->cearly) {
            q->cearly = q->cearly ? q->cearly * 2 : 4;
            q->early = xrealloc(q->early, q->cearly * sizeof *q->early);
        }
        uint32_t i = q->nearly++;
        while (i > 0 && q->early[i - 1] > n) {
            q->early[i] = q->early[i - 1];
            i--;
        }
        q->early[i] = n;
        return;
    }
    q->done = n;
    uint32_t k = 0;
    while (k < q->nearly && q->early[k] == q->done + 1)
        q->done = q->early[k++];
    if (k) {
        memmove(q->early, q->early + k, (q->nearly - k) * sizeof *q->early);
        q->nearly -= k;
    }
}

void *inflight_finish(inflight_op *op, size_t *cost)
{
    inflight *q = op->q;
    *cost = op->cost;
    if (q) {
        inflight_unlink(q, op);
        inflight_complete(q, op->n);
    }
    free(op);
    return q ? q->owner : NULL;
}

const char *inflight_receipt_of(const inflight_op *op, size_t *len)
{
    *len = op->rcpt ? op->rcpt->id_len : 0;
    return op->rcpt ? op->rcpt->id : NULL;
}

bool inflight_idle(const inflight *q)
{
    return !q->head && q->done >= q->issued;
}

static inflight_receipt *inflight_queue(inflight *q, const char *id, size_t len,
                                        bool disconnect)
{
    inflight_receipt *w = xmalloc(sizeof *w + len);
    w->next = NULL;
    w->need = q->issued;
    w->disconnect = disconnect;
    w->mid_len = 0;
    w->id_len = len;
    if (len)
        memcpy(w->id, id, len);
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    return w;
}

void inflight_wait(inflight *q, const char *id, size_t len, bool disconnect)
{
    inflight_queue(q, id, len, disconnect);
}

void inflight_wait_op(inflight *q, inflight_op *op, const char *id, size_t len)
{
    op->rcpt = inflight_queue(q, id, len, false);
}

void inflight_set_id(inflight_op *op, const char *id, size_t len)
{
    inflight_receipt *w = op->rcpt;
    if (!w || len > INFLIGHT_MID_MAX)
        return;
    memcpy(w->mid, id, len);
    w->mid_len = (uint8_t)len;
}

inflight_receipt *inflight_ready(inflight *q)
{
    inflight_receipt *w = q->head;
    if (!w || q->done < w->need)
        return NULL;
    q->head = w->next;
    if (!q->head)
        q->tail = NULL;
    return w;
}
