/* prom.h — the Prometheus text exposition format (version 0.0.4), written.
 *
 * Both programs' /metrics pages are made of these calls: a family header
 * (HELP and TYPE), then its samples. Values are unsigned or signed integers,
 * or fixed-point numbers kept as integers (milliseconds written as seconds
 * with three decimals, microseconds with six), so that what is written is
 * exact. A histogram is written from per-bucket counts that are not
 * cumulative (an observation is one increment); prom_histogram sums them into
 * the cumulative `le` series.
 *
 * Names, labels and help texts are the caller's and are written as given:
 * they are constants of the program, not outside input.
 */
#ifndef LECTERN_PROM_H
#define LECTERN_PROM_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

/* "# HELP name help" and "# TYPE name type". HELP is one line: a '\n' in
 * help (a text written over several lines) is written as a space. */
void prom_family(buf *out, const char *name, const char *type, const char *help);

/* One sample "name value" or, with labels (e.g. `dep="amqp"`, NULL for
 * none), "name{labels} value". */
void prom_sample(buf *out, const char *name, const char *labels, uint64_t v);
void prom_sample_signed(buf *out, const char *name, const char *labels, int64_t v);

/* A sample whose value is v / 10^decimals, written exactly with that many
 * decimals (decimals 0..9): 1500 with 3 is "1.500". */
void prom_sample_fixed(buf *out, const char *name, const char *labels, uint64_t v,
                       unsigned decimals);

/* The family header and the single sample of a counter or gauge. */
void prom_metric(buf *out, const char *name, const char *type, const char *help, uint64_t v);

/* A histogram family: HELP, TYPE, name_bucket{le="..."} for each of the
 * nbuckets upper bounds le[] and for +Inf, name_sum and name_count.
 * counts[] holds nbuckets + 1 counts, not cumulative, the last above every
 * bound. The sum is sum / 10^sum_decimals (prom_sample_fixed). */
void prom_histogram(buf *out, const char *name, const char *help, size_t nbuckets,
                    const char *const le[], const uint64_t counts[], uint64_t sum,
                    unsigned sum_decimals);

#endif
