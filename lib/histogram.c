/* histogram.c — bucket counts, their cumulative rendering, quantiles. */
#include "histogram.h"

#include "prom.h"

static const uint64_t histogram_le_us[HISTOGRAM_BUCKETS] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000,
};
static const char *const histogram_le[HISTOGRAM_BUCKETS] = {
    "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "10",
};

static uint64_t histogram_get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

void histogram_init(histogram *h)
{
    for (int i = 0; i <= HISTOGRAM_BUCKETS; i++)
        atomic_init(&h->bucket[i], 0);
    atomic_init(&h->sum_us, 0);
}

void histogram_observe_us(histogram *h, uint64_t us)
{
    int i = 0;
    while (i < HISTOGRAM_BUCKETS && us > histogram_le_us[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

uint64_t histogram_count(const histogram *h)
{
    uint64_t n = 0;
    for (int i = 0; i <= HISTOGRAM_BUCKETS; i++)
        n += histogram_get(&h->bucket[i]);
    return n;
}

double histogram_quantile(const histogram *h, double q)
{
    uint64_t n = histogram_count(h);
    if (!n)
        return 0;
    double rank = q * (double)n, cum = 0;
    for (int i = 0; i < HISTOGRAM_BUCKETS; i++) {
        double c = (double)histogram_get(&h->bucket[i]);
        if (cum + c >= rank && c > 0) {
            double lo = i ? (double)histogram_le_us[i - 1] : 0, hi = (double)histogram_le_us[i];
            return (lo + (hi - lo) * (rank - cum) / c) / 1e6;
        }
        cum += c;
    }
    return (double)histogram_le_us[HISTOGRAM_BUCKETS - 1] / 1e6;   /* in +Inf: at least */
}

void histogram_render(const histogram *h, const char *name, const char *help, buf *out)
{
    uint64_t counts[HISTOGRAM_BUCKETS + 1];
    for (int i = 0; i <= HISTOGRAM_BUCKETS; i++)
        counts[i] = histogram_get(&h->bucket[i]);
    prom_histogram(out, name, help, HISTOGRAM_BUCKETS, histogram_le, counts,
                   histogram_get(&h->sum_us), 6);
}
