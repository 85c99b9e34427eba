/* ratelimit.h — the token buckets that pace one connection's input.
 *
 * Pure: no clock of its own (the caller passes loop time), no I/O. A
 * connection has three buckets: SEND frames, frames of any command, and
 * bytes of every frame. A frame is charged after it has been parsed, so a
 * bucket may go into debt by one frame; the caller stops reading while any
 * bucket is in debt and reads again once ratelimit_may() says they have all
 * refilled (TCP backpressure slows the peer; nothing is dropped).
 */
#ifndef LECTERN_RATELIMIT_H
#define LECTERN_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One bucket's rule. */
typedef struct ratelimit_rate {
    double per_s;     /* tokens added per second; 0: the bucket is off */
    double burst;     /* most tokens the bucket holds (it starts full) */
} ratelimit_rate;

typedef struct ratelimit_rules {
    ratelimit_rate sends;    /* SEND frames */
    ratelimit_rate frames;   /* frames of any command, and runs of heart-beat EOLs (a
                              * peer's one EOL per interval is nothing; a flood of
                              * EOLs, each in a WebSocket frame of its own, costs
                              * per frame like any frame) */
    ratelimit_rate bytes;    /* bytes of every frame and heart-beat */
} ratelimit_rules;

/* What was parsed, for ratelimit_charge. */
typedef enum ratelimit_kind {
    RATELIMIT_HEARTBEAT,     /* a run of EOLs between frames: a frame, and its bytes */
    RATELIMIT_FRAME,         /* a frame other than SEND */
    RATELIMIT_SEND
} ratelimit_kind;

/* One connection's buckets (tokens; negative while in debt). */
typedef struct ratelimit {
    double sends, frames, bytes;
    uint64_t at_ms;          /* when they were last refilled */
} ratelimit;

/* Any bucket on? When none is, callers need not call the rest. */
bool ratelimit_active(const ratelimit_rules *r);

/* Fill every bucket to its burst, as of now_ms. */
void ratelimit_init(ratelimit *rl, const ratelimit_rules *r, uint64_t now_ms);

/* Refill the buckets for the time since the last call (now_ms is
 * monotonic) and say whether input may be read: no bucket is in debt. */
bool ratelimit_may(ratelimit *rl, const ratelimit_rules *r, uint64_t now_ms);

/* Charge one parsed frame (or run of heart-beat EOLs) of `bytes` bytes to
 * the buckets that are on. */
void ratelimit_charge(ratelimit *rl, const ratelimit_rules *r, ratelimit_kind kind,
                      size_t bytes);

#endif
