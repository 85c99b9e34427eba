/* gate.c — counted slots with a line of waiters (see gate.h).
 *
 * State: `busy` slots held out of `slots`, and a doubly linked FIFO of
 * waiters living in their owners' storage. Invariant: someone waits only
 * while every slot is held (busy == slots); a leaving holder's slot goes
 * straight to the head of the line, so busy does not change then.
 */
#include "gate.h"

#include "mem.h"

#include <stdlib.h>

struct gate {
    uint64_t slots;
    uint64_t busy;
    uint64_t waiting;
    uint64_t refused;
    gate_waiter *head, *tail;
};

gate *gate_create(int slots)
{
    gate *g = xcalloc(1, sizeof *g);
    g->slots = slots > 0 ? (uint64_t)slots : 1;
    return g;
}

void gate_destroy(gate *g)
{
    free(g);
}

bool gate_try(gate *g)
{
    if (g->busy < g->slots && !g->head) {
        g->busy++;
        return true;
    }
    g->refused++;
    return false;
}

bool gate_enter(gate *g, gate_waiter *w, gate_fn fn, void *ctx)
{
    if (g->busy < g->slots && !g->head) {
        g->busy++;
        return true;
    }
    w->fn = fn;
    w->ctx = ctx;
    w->next = NULL;
    w->prev = g->tail;
    if (g->tail)
        g->tail->next = w;
    else
        g->head = w;
    g->tail = w;
    w->queued = true;
    g->waiting++;
    return false;
}

static void gate_unlink(gate *g, gate_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        g->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        g->tail = w->prev;
    w->prev = w->next = NULL;
    w->queued = false;
    g->waiting--;
}

void gate_cancel(gate *g, gate_waiter *w)
{
    if (w->queued)
        gate_unlink(g, w);
}

void gate_leave(gate *g)
{
    gate_waiter *w = g->head;
    if (!w) {
        if (g->busy)
            g->busy--;
        return;
    }
    gate_unlink(g, w);           /* the slot passes on: busy stays */
    w->fn(w->ctx);
}

void gate_get_stats(const gate *g, gate_stats *out)
{
    out->busy = g->busy;
    out->waiting = g->waiting;
    out->refused = g->refused;
}
