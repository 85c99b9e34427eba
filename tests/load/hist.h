/* hist.h — a fixed-size latency histogram (log-linear buckets).
 *
 * Values are non-negative integers in any unit (the load generator uses
 * microseconds). Buckets are exact below 128 and then 64 per power of two,
 * so a reported percentile is within 1.6% of the true value, and a
 * histogram is one flat array that can live in shared memory and be merged
 * by adding counts. Values beyond the last bucket land in it (and in max).
 */
#ifndef LECTERN_LOAD_HIST_H
#define LECTERN_LOAD_HIST_H

#include <stdint.h>

#define HIST_BUCKETS 2560    /* covers values up to about 2^41 */

typedef struct hist {
    uint64_t count;
    uint64_t sum;
    uint64_t max;
    uint64_t bucket[HIST_BUCKETS];
} hist;

/* Record one value. */
void hist_add(hist *h, uint64_t v);

/* Add every count of src into dst. */
void hist_merge(hist *dst, const hist *src);

/* The value at quantile q (0..1): the lower bound of the bucket holding the
 * q-th value, capped by max; 0 for an empty histogram. */
uint64_t hist_quantile(const hist *h, double q);

#endif
