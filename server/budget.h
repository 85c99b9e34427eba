/* budget.h — the server memory one connection holds, against limits.conn_memory.
 *
 * A connection makes the server hold memory in a few places: a partial
 * frame (its input buffer), frames buffered in open transactions,
 * operations in flight (a SEND until it is stored, a SUBSCRIBE until the
 * room is joined) and the receipts waiting behind them, subscriptions, live
 * messages held for a subscription that replays history, and its output
 * queue. One budget per connection adds them up so that a single knob
 * bounds the sum. The session owns the input buffer and the output queue
 * and passes their sizes in (`others`); the rest is charged here by kind,
 * which also lets the ERROR say where the memory went.
 *
 * Pure: plain arithmetic and text, no I/O.
 */
#ifndef LECTERN_BUDGET_H
#define LECTERN_BUDGET_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum budget_kind {
    BUDGET_TXN,      /* frames buffered in open transactions */
    BUDGET_WAIT,     /* operations in flight and the receipts waiting for them */
    BUDGET_SUBS,     /* subscriptions */
    BUDGET_HELD,     /* live messages held while subscriptions replay history */
    BUDGET_KINDS
} budget_kind;

/* Bytes charged, by kind. 32 bits each: limits.conn_memory is at most 1 GiB
 * and refused charges never pass it (forced ones are a few bytes). */
typedef struct budget {
    uint32_t by[BUDGET_KINDS];
} budget;

/* The heap an allocation of n bytes takes: glibc's chunk (n plus an 8-byte
 * header, rounded up to 16, at least 32). An estimate for other allocators,
 * close enough to keep RSS near what is charged. */
static inline size_t budget_chunk(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return c < 32 ? 32 : c;
}

static inline size_t budget_total(const budget *b)
{
    size_t t = 0;
    for (int k = 0; k < BUDGET_KINDS; k++)
        t += b->by[k];
    return t;
}

/* Would `n` more bytes, with `others` bytes held outside the budget (input
 * buffer, output queue), stay within `limit`? */
static inline bool budget_fits(const budget *b, size_t n, size_t others, size_t limit)
{
    return budget_total(b) + others + n <= limit;
}

/* Charge n bytes of kind k if they fit (budget_fits); returns false and
 * charges nothing otherwise. */
bool budget_charge(budget *b, budget_kind k, size_t n, size_t others, size_t limit);
/* Charge n bytes of kind k whether they fit or not (memory that must be
 * held: the receipt of a DISCONNECT, a COMMIT handing its frames on). */
void budget_force(budget *b, budget_kind k, size_t n);
/* Give back n bytes of kind k (at most what is charged). */
void budget_release(budget *b, budget_kind k, size_t n);

/* Append the explanation of a refused charge of `need` bytes for the
 * ERROR's body: what is held, by kind, and the limit. input and output are
 * the bytes of the input buffer and the output queue. */
void budget_describe(const budget *b, size_t input, size_t output, size_t need,
                     size_t limit, buf *out);

#endif
