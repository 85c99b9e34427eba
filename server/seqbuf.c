/* seqbuf.c — hold-back buffer for in-order, exactly-once room delivery.
 *
 * Held items live in an array kept sorted by (epoch, seq). In the common
 * case nothing is held: an item with seq == next is released at once and
 * the array is never touched. Out-of-order arrivals are rare and few (a
 * message overtaken by a later one from another server), so insertion by
 * binary search plus memmove is the right trade.
 *
 * Invariants, once based: every held item is newer than (epoch, next - 1),
 * i.e. has epoch > sb->epoch or seq >= next in sb->epoch; and the first held
 * item of sb->epoch, if any, has seq > next (otherwise it would have been
 * released).
 */
#include "seqbuf.h"

#include "mem.h"

#include <stdlib.h>
#include <string.h>

void seqbuf_init(seqbuf *sb, seqbuf_fn release, seqbuf_fn drop, void *ctx)
{
    memset(sb, 0, sizeof *sb);
    sb->release = release;
    sb->drop = drop;
    sb->ctx = ctx;
}

void seqbuf_deinit(seqbuf *sb)
{
    for (size_t i = 0; i < sb->n; i++)
        sb->drop(sb->ctx, sb->held[i].item);
    free(sb->held);
    sb->held = NULL;
    sb->n = sb->cap = 0;
}

static int seqbuf_cmp(uint64_t e1, uint64_t s1, uint64_t e2, uint64_t s2)
{
    if (e1 != e2)
        return e1 < e2 ? -1 : 1;
    if (s1 != s2)
        return s1 < s2 ? -1 : 1;
    return 0;
}

/* Insert keeping the order; a duplicate (epoch, seq) is dropped. */
static void seqbuf_hold(seqbuf *sb, uint64_t epoch, uint64_t seq, void *item)
{
    size_t lo = 0, hi = sb->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = seqbuf_cmp(sb->held[mid].epoch, sb->held[mid].seq, epoch, seq);
        if (c == 0) {
            sb->drop(sb->ctx, item);
            return;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (sb->n == sb->cap) {
        sb->cap = sb->cap ? sb->cap * 2 : 8;
        sb->held = xrealloc(sb->held, sb->cap * sizeof *sb->held);
    }
    memmove(&sb->held[lo + 1], &sb->held[lo], (sb->n - lo) * sizeof *sb->held);
    sb->held[lo] = (seqbuf_entry){ epoch, seq, item };
    sb->n++;
}

/* Remove the first k held entries (already handed out). */
static void seqbuf_shift(seqbuf *sb, size_t k)
{
    if (k == 0)
        return;         /* held may be NULL: no memmove on it, even of 0 bytes */
    memmove(sb->held, sb->held + k, (sb->n - k) * sizeof *sb->held);
    sb->n -= k;
}

/* Release held items that are next in line; drop those now behind. */
static void seqbuf_drain(seqbuf *sb)
{
    size_t k = 0;
    while (k < sb->n) {
        seqbuf_entry *e = &sb->held[k];
        if (e->epoch < sb->epoch || (e->epoch == sb->epoch && e->seq < sb->next)) {
            sb->drop(sb->ctx, e->item);
        } else if (e->epoch == sb->epoch && e->seq == sb->next) {
            sb->next++;
            sb->release(sb->ctx, e->item);
        } else {
            break;
        }
        k++;
    }
    if (k)
        seqbuf_shift(sb, k);
}

void seqbuf_offer(seqbuf *sb, uint64_t epoch, uint64_t seq, void *item)
{
    if (!sb->based) {
        seqbuf_hold(sb, epoch, seq, item);
        return;
    }
    if (epoch > sb->epoch)
        seqbuf_new_epoch(sb, epoch);
    if (epoch < sb->epoch || seq < sb->next) {
        sb->drop(sb->ctx, item);
    } else if (seq == sb->next) {
        sb->next++;
        sb->release(sb->ctx, item);
        seqbuf_drain(sb);
    } else {
        seqbuf_hold(sb, epoch, seq, item);
    }
}

void seqbuf_base(seqbuf *sb, uint64_t epoch, uint64_t last)
{
    sb->based = true;
    sb->epoch = epoch;
    sb->next = last + 1;
    seqbuf_drain(sb);
}

void seqbuf_new_epoch(seqbuf *sb, uint64_t epoch)
{
    if (!sb->based || epoch <= sb->epoch)
        return;
    size_t k = 0;
    while (k < sb->n && sb->held[k].epoch < epoch) {
        sb->release(sb->ctx, sb->held[k].item);
        k++;
    }
    seqbuf_shift(sb, k);
    sb->epoch = epoch;
    sb->next = 1;
    seqbuf_drain(sb);
}

bool seqbuf_gap(const seqbuf *sb, uint64_t *from, uint64_t *to, void **after)
{
    if (!sb->based || sb->n == 0)
        return false;
    const seqbuf_entry *e = &sb->held[0];
    *from = sb->next;
    /* The first held item is in this epoch (seq > next) or a later one (the
     * rest of this epoch is unknown: ask up to just before it). */
    *to = e->epoch == sb->epoch ? e->seq - 1 : UINT64_MAX;
    *after = e->item;
    return true;
}

void seqbuf_skip_gap(seqbuf *sb)
{
    if (!sb->based || sb->n == 0)
        return;
    const seqbuf_entry *e = &sb->held[0];
    if (e->epoch > sb->epoch) {
        seqbuf_new_epoch(sb, e->epoch);
        if (sb->n == 0 || sb->held[0].epoch != sb->epoch)
            return;
        e = &sb->held[0];
    }
    sb->next = e->seq;
    seqbuf_drain(sb);
}
