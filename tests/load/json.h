/* json.h — the pieces of lectern-load's JSON reports that every scenario
 * writes: a string and a latency summary (see json.c).
 *
 * Each report is one JSON document on stdout that tests and make bench
 * parse, so its scenarios (load.c, status.c) must write these the same way.
 */
#ifndef LECTERN_LOAD_JSON_H
#define LECTERN_LOAD_JSON_H

#include "hist.h"

#include <stdio.h>

/* Write s (NUL-terminated, borrowed) to f as a JSON string: quotes and
 * backslashes escaped, control characters as \u00XX. */
void json_str(FILE *f, const char *s);

/* Write "name":{count,p50,p99,p999,max,mean} for h (borrowed), whose values
 * are microseconds, in milliseconds with three decimals. */
void json_lat(FILE *f, const char *name, const hist *h);

#endif
