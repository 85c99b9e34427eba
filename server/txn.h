/* txn.h — the open STOMP transactions of one connection.
 *
 * A transaction is a name and the frames buffered under it (deep copies),
 * replayed by the session on COMMIT and dropped on ABORT. The set only
 * stores: the session checks names and limits, and decides what a frame
 * costs against its memory budget; each transaction remembers the sum it
 * was charged so that the session can give it back in one step.
 */
#ifndef LECTERN_TXN_H
#define LECTERN_TXN_H

#include "stomp.h"

#include <stddef.h>
#include <stdint.h>

typedef struct txn txn;

/* A connection's transactions; zero-initialised storage is an empty set. */
typedef struct txn_set {
    txn *head;
    uint32_t n;
} txn_set;

/* The open transaction named name[0..len), or NULL. */
txn *txn_find(const txn_set *ts, const char *name, size_t len);

/* Heap bytes an open transaction with a name of `len` bytes takes. */
size_t txn_open_cost(size_t len);
/* Heap bytes buffering f takes (its copy and its slot). */
size_t txn_frame_cost(const stomp_frame *f);

/* Open a transaction (the caller checked that the name is not open).
 * `cost` is what the caller charged for it. Returns it, owned by ts. */
txn *txn_begin(txn_set *ts, const char *name, size_t len, size_t cost);
/* Buffer a deep copy of f (f is borrowed); `cost` is what the caller
 * charged for it. */
void txn_add(txn *t, const stomp_frame *f, size_t cost);

/* Bytes of the frames buffered (stomp.max_transaction_bytes counts these). */
size_t txn_bytes(const txn *t);
/* Everything charged for t: its opening plus each txn_add's cost. */
size_t txn_charged(const txn *t);
/* The buffered frames, in order: txn_frame(t, 0 .. txn_count(t)-1), valid
 * until t is ended. */
size_t txn_count(const txn *t);
const stomp_frame *txn_frame(const txn *t, size_t i);

/* Take t out of ts and free it with its frames. */
void txn_end(txn_set *ts, txn *t);
/* End every transaction of ts; returns the sum they were charged. */
size_t txn_clear(txn_set *ts);

#endif
