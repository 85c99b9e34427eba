/* prom.c — writing the Prometheus text format (see prom.h).
 *
 * Every line goes through buf_printf into the caller's buffer; nothing is
 * kept between calls. Fixed-point values are split into whole and fraction
 * parts with integer arithmetic, so a sum of microseconds is written to the
 * microsecond however large it grows (a double would round it).
 */
#include "prom.h"

#include <inttypes.h>
#include <stdio.h>

void prom_family(buf *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP %s ", name);
    for (const char *p = help; *p; p++)
        buf_append_char(out, *p == '\n' ? ' ' : *p);
    buf_printf(out, "\n# TYPE %s %s\n", name, type);
}

/* "name" or "name{labels}", then a space. */
static void prom_series(buf *out, const char *name, const char *labels)
{
    if (labels)
        buf_printf(out, "%s{%s} ", name, labels);
    else
        buf_printf(out, "%s ", name);
}

void prom_sample(buf *out, const char *name, const char *labels, uint64_t v)
{
    prom_series(out, name, labels);
    buf_printf(out, "%" PRIu64 "\n", v);
}

void prom_sample_signed(buf *out, const char *name, const char *labels, int64_t v)
{
    prom_series(out, name, labels);
    buf_printf(out, "%" PRId64 "\n", v);
}

void prom_sample_fixed(buf *out, const char *name, const char *labels, uint64_t v,
                       unsigned decimals)
{
    uint64_t scale = 1;
    for (unsigned i = 0; i < decimals; i++)
        scale *= 10;
    prom_series(out, name, labels);
    if (decimals)
        buf_printf(out, "%" PRIu64 ".%0*" PRIu64 "\n", v / scale, (int)decimals, v % scale);
    else
        buf_printf(out, "%" PRIu64 "\n", v);
}

void prom_metric(buf *out, const char *name, const char *type, const char *help, uint64_t v)
{
    prom_family(out, name, type, help);
    prom_sample(out, name, NULL, v);
}

void prom_histogram(buf *out, const char *name, const char *help, size_t nbuckets,
                    const char *const le[], const uint64_t counts[], uint64_t sum,
                    unsigned sum_decimals)
{
    char series[160], labels[48];
    uint64_t cum = 0;

    prom_family(out, name, "histogram", help);
    snprintf(series, sizeof series, "%s_bucket", name);
    for (size_t i = 0; i <= nbuckets; i++) {
        cum += counts[i];
        snprintf(labels, sizeof labels, "le=\"%s\"", i < nbuckets ? le[i] : "+Inf");
        prom_sample(out, series, labels, cum);
    }
    snprintf(series, sizeof series, "%s_sum", name);
    prom_sample_fixed(out, series, NULL, sum, sum_decimals);
    snprintf(series, sizeof series, "%s_count", name);
    prom_sample(out, series, NULL, cum);
}
