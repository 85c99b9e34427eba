/* backoff.h — reconnect delays: exponential, capped, with jitter.
 *
 * After the n-th consecutive failure (n from 0) a caller waits
 *
 *     min_ms + uniform(0 .. cap - min_ms),   cap = min(min_ms * 2^n, max_ms)
 *
 * (full jitter above a floor): a restarted service is neither hit by every
 * client at once nor in a tight loop. A plain value, one per connection;
 * not thread-safe (each connection is driven by one thread).
 */
#ifndef LECTERN_BACKOFF_H
#define LECTERN_BACKOFF_H

#include <stdint.h>

typedef struct backoff {
    int      min_ms;
    int      max_ms;
    unsigned attempt;   /* consecutive failures so far */
    uint64_t rng;       /* xorshift state, never 0 */
} backoff;

/* Start with no failures. min_ms <= 0 is taken as 1; max_ms below min_ms as
 * min_ms. `seed` spreads processes apart (any value; mixed with the clock). */
void backoff_init(backoff *b, int min_ms, int max_ms, uint64_t seed);

/* The delay before the next attempt, in ms; counts one more failure. */
int backoff_next(backoff *b);

/* A success: the next failure waits about min_ms again. */
void backoff_reset(backoff *b);

#endif
