/* userid.h — the rule every user id Lectern stores or matches must follow.
 *
 * Contacts (stored lists, the token's `contacts` claim), the x-users of a
 * /status subscription and ?users= lists all name users by id: 1 to
 * USERID_MAX bytes of well-formed UTF-8, without control characters (C0,
 * DEL, C1) and without ',' (lists of ids are comma-separated in headers and
 * query strings). Pure functions.
 */
#ifndef LECTERN_USERID_H
#define LECTERN_USERID_H

#include <stdbool.h>
#include <stddef.h>

#define USERID_MAX 128

/* Is s[0..n) a valid user id? */
bool userid_valid(const char *s, size_t n);

/* Sort the n NUL-terminated ids of v (pointers only; the strings are
 * borrowed) bytewise and drop repeats. Returns the new count. */
size_t userid_sort_unique(const char **v, size_t n);

/* Is id one of the n ids of v, sorted by userid_sort_unique? */
bool userid_sorted_has(const char *const *v, size_t n, const char *id);

/* The first of want[0..nw) that is not one of have[0..n) (in any order),
 * or NULL when all are. For "may these be watched": the x-users of a
 * /status subscription, ?users= of its HTTP twin. */
const char *userid_first_missing(const char *const *have, size_t n, const char *const *want,
                                 size_t nw);

#endif
