/* userid.c — the user id rule, and sorted sets of ids.
 *
 * Validity is checked byte by byte in one pass after utf8_valid: any byte
 * below 0x20, 0x7f or ',' is refused, and so are the C1 controls
 * U+0080..U+009F (encoded C2 80..C2 9F). Lists of ids are kept as sorted
 * arrays of pointers (strcmp order), so membership is a binary search and
 * repeats are dropped in one pass after qsort.
 */
#include "userid.h"

#include "mem.h"

#include "utf8.h"

#include <stdlib.h>
#include <string.h>

bool userid_valid(const char *s, size_t n)
{
    if (!s || n == 0 || n > USERID_MAX || !utf8_valid(s, n))
        return false;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f || p[i] == ',')
            return false;
        if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
            return false;
    }
    return true;
}

static int userid_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t userid_sort_unique(const char **v, size_t n)
{
    if (n < 2)
        return n;
    qsort(v, n, sizeof *v, userid_cmp);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i], v[k - 1]))
            v[k++] = v[i];
    return k;
}

bool userid_sorted_has(const char *const *v, size_t n, const char *id)
{
    return n && bsearch(&id, v, n, sizeof *v, userid_cmp) != NULL;
}

const char *userid_first_missing(const char *const *have, size_t n, const char *const *want,
                                 size_t nw)
{
    const char **sorted = xmalloc((n ? n : 1) * sizeof *sorted);
    if (n)
        memcpy(sorted, have, n * sizeof *sorted);
    n = userid_sort_unique(sorted, n);
    const char *missing = NULL;
    for (size_t i = 0; !missing && i < nw; i++)
        if (!userid_sorted_has(sorted, n, want[i]))
            missing = want[i];
    free(sorted);
    return missing;
}
