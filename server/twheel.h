/* twheel.h — a hashed timer wheel: many deadlines, each one node, O(1) to
 * add, move or cancel; advancing the clock visits only the slots it passes.
 *
 * The owner embeds a twheel_node in its own struct (zero-initialised: not
 * scheduled) and finds itself again from the node in the fire callback
 * (container arithmetic). The wheel knows nothing about its owners: the
 * caller hands twheel_advance the callback to run for each due node. Pure:
 * no clock of its own (the caller passes times in ms, monotonic), no I/O.
 */
#ifndef LECTERN_TWHEEL_H
#define LECTERN_TWHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One deadline, embedded in its owner. Zero-initialised it is not
 * scheduled; its fields belong to the wheel. */
typedef struct twheel_node {
    struct twheel_node *next;
    struct twheel_node **pprev;  /* the link pointing at this node; NULL: not scheduled */
    uint64_t due_ms;             /* fires at the first advance with now >= this */
} twheel_node;

typedef struct twheel {
    twheel_node **slots;         /* nslots lists, by due tick modulo nslots */
    uint64_t mask;               /* nslots - 1 */
    uint64_t tick_ms;            /* a slot's width */
    uint64_t at;                 /* first tick the next advance visits */
    size_t count;                /* nodes scheduled */
    twheel_node *firing;         /* the slot being worked through by an advance */
} twheel;

/* Called by twheel_advance for each due node, already unscheduled: it may
 * add it again (anywhere), and add or cancel any other node. It must not
 * advance or deinit the wheel. ctx is twheel_advance's. */
typedef void (*twheel_fire_fn)(twheel_node *n, uint64_t now_ms, void *ctx);

/* Slots of tick_ms (>= 1) each, nslots of them (a power of two, >= 2):
 * one revolution is tick_ms * nslots. now_ms: the caller's clock now. */
void twheel_init(twheel *w, uint64_t tick_ms, size_t nslots, uint64_t now_ms);
/* Free the slots. Nodes still scheduled are left as they are: their
 * owners must not cancel them afterwards. Accepts NULL. */
void twheel_deinit(twheel *w);

/* Schedule n to fire at due_ms (moving it if it is scheduled already). A
 * time already past fires at the next advance. */
void twheel_add(twheel *w, twheel_node *n, uint64_t due_ms);
/* Unschedule n; nothing if it is not scheduled. */
void twheel_cancel(twheel *w, twheel_node *n);
/* Is n scheduled? (Its time is then n->due_ms, which the owner may read.) */
bool twheel_scheduled(const twheel_node *n);

/* Advance the clock to now_ms (never backwards) and fire every node due by
 * then (due_ms <= now_ms), through fire(node, now_ms, ctx); returns how
 * many fired. A node added by fire for a time already past fires in the
 * same advance when ticks are left to visit after the current one, and
 * otherwise at the next advance: an advance always ends. */
size_t twheel_advance(twheel *w, uint64_t now_ms, twheel_fire_fn fire, void *ctx);

#endif
