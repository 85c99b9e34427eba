/* json.c — JSON pieces of lectern-load's reports (see json.h).
 *
 * Streams straight to the FILE: a report is written once, at the end of a
 * run, so there is nothing to gain from building it in memory. Latencies
 * are kept in microseconds (hist.h) and reported in milliseconds; the
 * percentiles carry the histogram's error (within 1.6%).
 */
#include "json.h"

#include <inttypes.h>

void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

void json_lat(FILE *f, const char *name, const hist *h)
{
    fprintf(f, "\"%s\":{\"count\":%" PRIu64 ",\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f}",
            name, h->count, hist_quantile(h, 0.5) / 1000.0, hist_quantile(h, 0.99) / 1000.0,
            hist_quantile(h, 0.999) / 1000.0, h->max / 1000.0,
            h->count ? (double)h->sum / (double)h->count / 1000.0 : 0.0);
}
