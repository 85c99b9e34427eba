/* ratelimit.c — token buckets pacing one connection's input (see ratelimit.h).
 *
 * Each bucket holds up to `burst` tokens and gains `per_s` a second. Levels
 * are doubles: a slow rule (0.2 a second) refilled at every read of a busy
 * connection gains a fraction of a token each time, which integer levels
 * would round away. A charge is taken after the frame was parsed and may
 * leave a bucket below zero: the parser makes one pass over a frame (it
 * decodes escapes in place, so a frame cannot be parsed twice), and a frame
 * larger than the byte burst must still get through once the bucket is
 * full, or it would wait forever.
 *
 * Invariants: a bucket that is off (per_s == 0) keeps its initial level and
 * so never blocks; a bucket never holds more than its burst.
 */
#include "ratelimit.h"

static bool ratelimit_on(const ratelimit_rate *r)
{
    return r->per_s > 0;
}

bool ratelimit_active(const ratelimit_rules *r)
{
    return ratelimit_on(&r->sends) || ratelimit_on(&r->frames) || ratelimit_on(&r->bytes);
}

void ratelimit_init(ratelimit *rl, const ratelimit_rules *r, uint64_t now_ms)
{
    rl->sends = r->sends.burst;
    rl->frames = r->frames.burst;
    rl->bytes = r->bytes.burst;
    rl->at_ms = now_ms;
}

static void ratelimit_refill(double *level, const ratelimit_rate *r, uint64_t dt_ms)
{
    if (!ratelimit_on(r))
        return;
    double v = *level + (double)dt_ms * r->per_s / 1000.0;
    *level = v > r->burst ? r->burst : v;
}

bool ratelimit_may(ratelimit *rl, const ratelimit_rules *r, uint64_t now_ms)
{
    uint64_t dt = 0;
    if (now_ms > rl->at_ms) {
        dt = now_ms - rl->at_ms;
        rl->at_ms = now_ms;
    }
    ratelimit_refill(&rl->sends, &r->sends, dt);
    ratelimit_refill(&rl->frames, &r->frames, dt);
    ratelimit_refill(&rl->bytes, &r->bytes, dt);
    return rl->sends >= 0 && rl->frames >= 0 && rl->bytes >= 0;
}

void ratelimit_charge(ratelimit *rl, const ratelimit_rules *r, ratelimit_kind kind,
                      size_t bytes)
{
    if (kind == RATELIMIT_SEND && ratelimit_on(&r->sends))
        rl->sends -= 1;
    if (ratelimit_on(&r->frames))
        rl->frames -= 1;
    if (ratelimit_on(&r->bytes))
        rl->bytes -= (double)bytes;
}
