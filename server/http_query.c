/* http_query.c — parsing the history query: limit, before, after.
 *
 * The fragments arrive URL-decoded from libwebsockets, one "name=value" per
 * parameter. Every parameter may appear once; anything else is a 400 with
 * a reason, never a guess: an unknown name, a repeated one, a limit outside
 * 1..history.max_limit, a bound that is not a message id, after >= before.
 * Nothing is allocated; q's ids are parsed into place.
 */
#include "http_query.h"

#include "msgid.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int http_history_params(const char *const *args, size_t nargs, int default_limit,
                        int max_limit, history_query *q, const char **why)
{
    bool seen_limit = false;
    q->limit = (size_t)default_limit;
    q->has_after = q->has_before = false;
    for (size_t i = 0; i < nargs; i++) {
        const char *a = args[i], *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const char *v = eq ? eq + 1 : "";
        if (nlen == 5 && !memcmp(a, "limit", 5)) {
            if (seen_limit)
                return *why = "limit given twice", -1;
            seen_limit = true;
            char *end;
            long n = strtol(v, &end, 10);
            if (v[0] < '0' || v[0] > '9' || *end || n < 1 || n > max_limit)
                return *why = "limit must be an integer from 1 to history.max_limit", -1;
            q->limit = (size_t)n;
        } else if ((nlen == 5 && !memcmp(a, "after", 5)) ||
                   (nlen == 6 && !memcmp(a, "before", 6))) {
            bool after = nlen == 5;
            bool *has = after ? &q->has_after : &q->has_before;
            if (*has)
                return *why = after ? "after given twice" : "before given twice", -1;
            if (msgid_parse(v, strlen(v), after ? &q->after : &q->before) < 0)
                return *why = after ? "after must be a message id (<ms>-<n>)"
                                    : "before must be a message id (<ms>-<n>)", -1;
            *has = true;
        } else {
            return *why = "unknown parameter (use limit, before, after)", -1;
        }
    }
    if (q->has_after && q->has_before && msgid_cmp(q->after, q->before) >= 0)
        return *why = "after must be smaller than before", -1;
    return 0;
}

