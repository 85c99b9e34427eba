/* http_query.h — the query string of GET /api/rooms/<room>/messages.
 *
 * Pure parsing, apart from http.c (which holds the libwebsockets handlers)
 * so that unit tests and the fuzzer link it alone.
 */
#ifndef LECTERN_HTTP_QUERY_H
#define LECTERN_HTTP_QUERY_H

#include "history.h"

#include <stddef.h>

/* Parse the query of GET /api/rooms/<room>/messages: args are the
 * "name=value" fragments (URL-decoded). Fills limit (default_limit when
 * absent), after and before of q. Pure. Returns 0, or -1 with *why set to
 * the reason for the 400 (unknown or repeated parameter, limit not in
 * 1..max_limit, a bound that is not a message id, after >= before). */
int http_history_params(const char *const *args, size_t nargs, int default_limit,
                        int max_limit, history_query *q, const char **why);

#endif
