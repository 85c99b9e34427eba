/* txn.c — a connection's open transactions (see txn.h).
 *
 * The set is a short singly linked list (stomp.max_transactions is small,
 * and a connection rarely has more than one open), each transaction an
 * array of frame copies that doubles as it grows. A frame copy is one
 * allocation (stomp_frame_clone), so buffering costs one malloc per frame
 * and ending a transaction one free per frame.
 *
 * Invariants: ts->n is the length of the list; t->bytes is the sum of the
 * footprints of t's frames; t->charged is the sum of the costs given to
 * txn_begin and txn_add.
 */
#include "txn.h"

#include "budget.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

struct txn {
    struct txn *next;
    stomp_frame **frames;
    size_t n, cap;
    size_t bytes;
    size_t charged;
    size_t name_len;
    char name[];
};

txn *txn_find(const txn_set *ts, const char *name, size_t len)
{
    for (txn *t = ts->head; t; t = t->next)
        if (t->name_len == len && !memcmp(t->name, name, len))
            return t;
    return NULL;
}

size_t txn_open_cost(size_t len)
{
    return budget_chunk(sizeof(txn) + len);
}

size_t txn_frame_cost(const stomp_frame *f)
{
    /* The copy, and its slot in an array that may be twice as long as it
     * needs to be. */
    return budget_chunk(stomp_frame_footprint(f)) + 2 * sizeof(stomp_frame *);
}

txn *txn_begin(txn_set *ts, const char *name, size_t len, size_t cost)
{
    txn *t = xcalloc(1, sizeof *t + len);
    memcpy(t->name, name, len);
    t->name_len = len;
    t->charged = cost;
    t->next = ts->head;
    ts->head = t;
    ts->n++;
    return t;
}

void txn_add(txn *t, const stomp_frame *f, size_t cost)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 4;
        t->frames = xrealloc(t->frames, t->cap * sizeof *t->frames);
    }
    t->frames[t->n++] = stomp_frame_clone(f);
    t->bytes += stomp_frame_footprint(f);
    t->charged += cost;
}

size_t txn_bytes(const txn *t)
{
    return t->bytes;
}

size_t txn_charged(const txn *t)
{
    return t->charged;
}

size_t txn_count(const txn *t)
{
    return t->n;
}

const stomp_frame *txn_frame(const txn *t, size_t i)
{
    return t->frames[i];
}

void txn_end(txn_set *ts, txn *t)
{
    for (txn **pp = &ts->head; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            ts->n--;
            break;
        }
    }
    for (size_t i = 0; i < t->n; i++)
        stomp_frame_free(t->frames[i]);
    free(t->frames);
    free(t);
}

size_t txn_clear(txn_set *ts)
{
    size_t charged = 0;
    while (ts->head) {
        charged += ts->head->charged;
        txn_end(ts, ts->head);
    }
    return charged;
}
