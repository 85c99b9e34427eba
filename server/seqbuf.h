/* seqbuf.h — per-room ordering: deliver messages in sequence order, once.
 *
 * Every room message carries (epoch, seq): seq is the room's dense sequence
 * number assigned by the registry, epoch identifies the registry's lifetime
 * (it changes when Redis loses its data, and seq restarts at 1). Messages
 * reach a server from two directions (local publishes and the bus) in any
 * order; a seqbuf releases them in (epoch, seq) order, drops duplicates and
 * anything at or before the base, and holds later ones while an earlier one
 * is missing. A pure data structure: no I/O, no clocks.
 *
 * States: unbased (the room's join has not answered yet: everything is held)
 * and based (next = the seq expected next in `epoch`).
 */
#ifndef LECTERN_SEQBUF_H
#define LECTERN_SEQBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*seqbuf_fn)(void *ctx, void *item);

typedef struct seqbuf_entry {
    uint64_t epoch;
    uint64_t seq;
    void *item;
} seqbuf_entry;

typedef struct seqbuf {
    bool based;
    uint64_t epoch;          /* current epoch (once based) */
    uint64_t next;           /* next seq to release in `epoch` */
    seqbuf_entry *held;      /* sorted by (epoch, seq), no duplicates */
    size_t n, cap;
    seqbuf_fn release;       /* an item goes out, in order */
    seqbuf_fn drop;          /* an item is discarded (duplicate, stale) */
    void *ctx;
} seqbuf;

void seqbuf_init(seqbuf *sb, seqbuf_fn release, seqbuf_fn drop, void *ctx);
/* Drop every held item. */
void seqbuf_deinit(seqbuf *sb);

/* Offer an item. It is released now (with any held items it unblocks),
 * held, or dropped. Ownership passes to the seqbuf either way. */
void seqbuf_offer(seqbuf *sb, uint64_t epoch, uint64_t seq, void *item);

/* Set the base: in `epoch`, everything up to and including `last` happened
 * before this server joined and is not released. Releases what it can. */
void seqbuf_base(seqbuf *sb, uint64_t epoch, uint64_t last);

/* Move to a newer epoch (the registry was reset): held items of older
 * epochs are released in order (they are real messages whose predecessors
 * are gone), then next = 1 in the new epoch. No-op for an epoch not newer. */
void seqbuf_new_epoch(seqbuf *sb, uint64_t epoch);

/* Is something missing? Then [*from, *to] in sb->epoch is the first gap
 * and *after is the held item just after it. */
bool seqbuf_gap(const seqbuf *sb, uint64_t *from, uint64_t *to, void **after);

/* Give up on the first gap: release from the first held item on. */
void seqbuf_skip_gap(seqbuf *sb);

/* The seq released last in sb->epoch (0: none yet). */
static inline uint64_t seqbuf_last(const seqbuf *sb)
{
    return sb->next ? sb->next - 1 : 0;
}

#endif
