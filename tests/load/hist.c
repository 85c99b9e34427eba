/* hist.c — log-linear latency histogram (see hist.h).
 *
 * Index layout: values 0..127 map to themselves. A larger value v with its
 * top set bit at position b (b >= 7) is shifted right by s = b - 6, leaving
 * a mantissa in 64..127; its bucket is 128 + (s - 1) * 64 + (mantissa - 64).
 * The lower bound of a bucket is the mantissa shifted back, so the relative
 * width of every bucket above 128 is at most 1/64.
 */
#include "hist.h"

static unsigned hist_index(uint64_t v)
{
    if (v < 128)
        return (unsigned)v;
    unsigned b = 63u - (unsigned)__builtin_clzll(v);
    unsigned s = b - 6;
    unsigned i = 128 + (s - 1) * 64 + (unsigned)((v >> s) - 64);
    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

static uint64_t hist_lower(unsigned i)
{
    if (i < 128)
        return i;
    unsigned s = (i - 128) / 64 + 1;
    uint64_t mant = (i - 128) % 64 + 64;
    return mant << s;
}

void hist_add(hist *h, uint64_t v)
{
    h->bucket[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

void hist_merge(hist *dst, const hist *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->bucket[i] += src->bucket[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_quantile(const hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q >= 1.0)
        return h->max;
    /* The rank of the value wanted, 1-based: ceil(q * count), at least 1. */
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t v = hist_lower(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}
