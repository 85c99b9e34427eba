/* gate.h — at most n holders of an expensive resource at once.
 *
 * A history read holds up to history.max_bytes of messages from the moment
 * it is asked until its answer has been written; http.max_inflight of them
 * may run at once per server. A gate counts those slots. Callers that can
 * say "no" (an HTTP request: 503) try for a slot; callers that cannot (a
 * SUBSCRIBE with x-since replaying history) wait in line, first come first
 * served, and are given the slot of the next holder that leaves. Someone in
 * line is never overtaken: gate_try refuses while anyone waits.
 *
 * A plain counter on the loop thread: no locks, no timers, no I/O.
 */
#ifndef LECTERN_GATE_H
#define LECTERN_GATE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct gate gate;

typedef void (*gate_fn)(void *ctx);

/* A place in line, in the waiter's own storage (no allocation). Fields are
 * the gate's; the owner only keeps it alive while it waits. */
typedef struct gate_waiter {
    struct gate_waiter *prev, *next;
    gate_fn fn;
    void *ctx;
    bool queued;
} gate_waiter;

/* slots >= 1. Never fails. */
gate *gate_create(int slots);

/* Accepts NULL. Nobody may be waiting any more (cancel them first); slots
 * still held are forgotten. */
void gate_destroy(gate *g);

/* A slot now, when one is free and nobody waits: true. Otherwise false,
 * counted as a refusal. */
bool gate_try(gate *g);

/* A slot now (true: fn is not called), or a place in line (false): fn(ctx)
 * runs later, inside the gate_leave that hands over its slot. w must stay
 * valid until then or until gate_cancel. */
bool gate_enter(gate *g, gate_waiter *w, gate_fn fn, void *ctx);

/* Leave the line without a slot. Accepts a waiter not in line. */
void gate_cancel(gate *g, gate_waiter *w);

/* Give a slot back. The first in line, if any, gets it at once: its fn runs
 * before this returns. */
void gate_leave(gate *g);

typedef struct gate_stats {
    uint64_t busy;        /* slots held now */
    uint64_t waiting;     /* in line now */
    uint64_t refused;     /* gate_try that said no, ever */
} gate_stats;

void gate_get_stats(const gate *g, gate_stats *out);

#endif
