/* twheel.c — a hashed timer wheel (see twheel.h).
 *
 * Time is cut into ticks of tick_ms. A node due at D belongs to tick
 * D / tick_ms and lives in the slot of that tick modulo nslots, a list
 * linked through the node itself (next, and pprev: the link that points at
 * it), so adding, moving and cancelling are a few pointer writes, with no
 * allocation and no search.
 *
 * Advancing to `now` visits the slots of the ticks from `at` (the first one
 * not fully worked through) to now's tick, and in each fires the nodes with
 * due_ms <= now. The check is on the node's exact time, not its tick, so a
 * node fires at the first advance whose clock has reached its time, however
 * the caller's calls fall against the tick boundaries: the slot of now's
 * own tick may hold nodes due later in that tick, so it is visited again by
 * the next advance (`at` stays on it). Ticks before now's are finished and
 * never visited again for this revolution.
 *
 * Deadlines further than one revolution (nslots ticks) share a slot with
 * nearer ones: they are not cascaded from a coarser wheel but re-checked
 * lazily, each time the advance passes their slot, and stay put until their
 * time has come. That costs one look per revolution per far node; callers
 * size the wheel so that their usual deadlines fit in one revolution and
 * far ones are few or rare. A clock that jumped more than a revolution
 * (a stalled loop) visits each slot once: everything due fires.
 *
 * Changes during an advance. The slot being worked through is first moved
 * to w->firing, a list of its own, and each node is taken off it before it
 * fires or is put back: so fire may add the node again (even to this very
 * tick, which then waits for the next advance), and may cancel any other
 * node, one still waiting on w->firing included (pprev points into that
 * list as into any other). A node added for a time already past goes to
 * the first tick the advance has not reached: later in this advance if it
 * has ticks left, otherwise the next one, so an advance always ends.
 *
 * Invariants: a scheduled node sits in the slot of a tick >= the `at` of
 * the moment it was added, congruent to max(its due tick, that at); `count`
 * is the number of scheduled nodes (those on w->firing included).
 */
#include "twheel.h"

#include "mem.h"

#include <stdlib.h>

void twheel_init(twheel *w, uint64_t tick_ms, size_t nslots, uint64_t now_ms)
{
    w->tick_ms = tick_ms ? tick_ms : 1;
    w->slots = xcalloc(nslots, sizeof *w->slots);
    w->mask = nslots - 1;
    w->at = now_ms / w->tick_ms;
    w->count = 0;
    w->firing = NULL;
}

void twheel_deinit(twheel *w)
{
    if (!w)
        return;
    free(w->slots);
    w->slots = NULL;
}

static void twheel_link(twheel_node **head, twheel_node *n)
{
    n->next = *head;
    if (n->next)
        n->next->pprev = &n->next;
    *head = n;
    n->pprev = head;
}

static void twheel_unlink(twheel_node *n)
{
    *n->pprev = n->next;
    if (n->next)
        n->next->pprev = n->pprev;
    n->next = NULL;
    n->pprev = NULL;
}

bool twheel_scheduled(const twheel_node *n)
{
    return n->pprev != NULL;
}

void twheel_add(twheel *w, twheel_node *n, uint64_t due_ms)
{
    if (n->pprev)
        twheel_unlink(n);
    else
        w->count++;
    uint64_t tick = due_ms / w->tick_ms;
    if (tick < w->at)
        tick = w->at;           /* past: the first tick still to be visited */
    n->due_ms = due_ms;
    twheel_link(&w->slots[tick & w->mask], n);
}

void twheel_cancel(twheel *w, twheel_node *n)
{
    if (!n->pprev)
        return;
    twheel_unlink(n);
    w->count--;
}

size_t twheel_advance(twheel *w, uint64_t now_ms, twheel_fire_fn fire, void *ctx)
{
    uint64_t end = now_ms / w->tick_ms;
    if (end < w->at)
        end = w->at;            /* a clock that went back: look at `at` only */
    uint64_t tick = w->at;
    if (end - tick > w->mask)
        tick = end - w->mask;   /* more than a revolution: every slot once */
    size_t fired = 0;
    for (; tick <= end; tick++) {
        /* What fire adds for a time already past goes to the next tick this
         * advance visits, or, at the last, waits for the next advance. */
        w->at = tick < end ? tick + 1 : tick;
        twheel_node **slot = &w->slots[tick & w->mask];
        w->firing = *slot;
        *slot = NULL;
        if (w->firing)
            w->firing->pprev = &w->firing;
        while (w->firing) {
            twheel_node *n = w->firing;
            twheel_unlink(n);
            if (n->due_ms <= now_ms) {
                w->count--;
                fired++;
                fire(n, now_ms, ctx);
            } else {
                twheel_link(slot, n);   /* later in this tick, or a later revolution */
            }
        }
    }
    return fired;
}
