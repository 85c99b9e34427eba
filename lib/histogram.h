/* histogram.h — a latency histogram for Prometheus, safe across threads.
 *
 * Fixed buckets from 250 µs to 10 s (the range of everything Lectern
 * times: a local delivery, a broker confirm, a batch commit). Bucket
 * counters are not cumulative, so an observation is one relaxed atomic
 * increment (plus one for the sum); histogram_render sums them into the
 * cumulative `le` series. Observers may run on any thread; a scrape may
 * see an observation's bucket before its sum, never a torn value.
 */
#ifndef LECTERN_HISTOGRAM_H
#define LECTERN_HISTOGRAM_H

#include "buf.h"

#include <stdatomic.h>
#include <stdint.h>

#define HISTOGRAM_BUCKETS 15

typedef struct histogram {
    _Atomic uint64_t bucket[HISTOGRAM_BUCKETS + 1];   /* the last is +Inf */
    _Atomic uint64_t sum_us;
} histogram;

void histogram_init(histogram *h);
/* Count one observation of us microseconds. */
void histogram_observe_us(histogram *h, uint64_t us);
/* Observations so far, and the value (seconds) below which a fraction q of
 * them fall, interpolated within its bucket (0 when empty). For /api/stats. */
uint64_t histogram_count(const histogram *h);
double histogram_quantile(const histogram *h, double q);
/* Append the family (HELP, TYPE, _bucket, _sum, _count) named name, in
 * seconds. */
void histogram_render(const histogram *h, const char *name, const char *help, buf *out);

#endif
