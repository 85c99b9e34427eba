/* backoff.c — exponential backoff with jitter (see backoff.h).
 *
 * The random share comes from xorshift64*: jitter only needs to differ
 * between processes and attempts, not to be unpredictable. The seed is mixed
 * with the monotonic clock and the pid so that two workers started together
 * with the same seed still drift apart.
 */
#include "backoff.h"

#include "clock.h"

#include <unistd.h>

static uint64_t backoff_rand(backoff *b)
{
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * 2685821657736338717ULL;
}

void backoff_init(backoff *b, int min_ms, int max_ms, uint64_t seed)
{
    uint64_t now = clock_us();
    b->min_ms = min_ms > 0 ? min_ms : 1;
    b->max_ms = max_ms > b->min_ms ? max_ms : b->min_ms;
    b->attempt = 0;
    b->rng = (seed ^ (now << 20) ^ ((uint64_t)getpid() << 40) ^ 0x9e3779b97f4a7c15ULL) | 1;
}

int backoff_next(backoff *b)
{
    uint64_t lo = (uint64_t)b->min_ms, hi = (uint64_t)b->max_ms, cap = lo;
    for (unsigned i = 0; i < b->attempt && cap < hi; i++)
        cap *= 2;
    if (cap > hi)
        cap = hi;
    if (b->attempt < 64)
        b->attempt++;
    return (int)(lo + backoff_rand(b) % (cap - lo + 1));
}

void backoff_reset(backoff *b)
{
    b->attempt = 0;
}
