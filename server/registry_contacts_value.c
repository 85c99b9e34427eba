/* registry_contacts_value.c — the Redis value of a cached contact list.
 *
 * P contacts:U holds "N" (no stored list: a negative entry) or "L" followed
 * by "\n<id>" per contact ("L" alone: a stored, empty list); the format is
 * registry_contacts.h's. Encoding and decoding are pure, apart from their
 * allocations, and live apart from the Redis calls so that the modules
 * that read lists (contacts.c) are tested against the real format. An id
 * the user id rule refuses is skipped on decoding.
 */
#include "registry_contacts.h"

#include "buf.h"
#include "mem.h"
#include "userid.h"

#include <stdlib.h>
#include <string.h>

char *registry_contacts_encode(bool stored, const char *const *ids, size_t n, size_t *len)
{
    buf b;
    buf_init(&b);
    buf_append(&b, stored ? "L" : "N", 1);
    for (size_t i = 0; stored && i < n; i++) {
        buf_append(&b, "\n", 1);
        buf_append(&b, ids[i], strlen(ids[i]));
    }
    *len = b.len;
    return b.data;           /* NUL-terminated by buf */
}

void registry_contacts_free_ids(char **ids, size_t n)
{
    for (size_t i = 0; ids && i < n; i++)
        free(ids[i]);
    free(ids);
}

int registry_contacts_decode(const char *v, size_t len, size_t max, bool *stored, char ***ids,
                             size_t *n)
{
    *ids = NULL;
    *n = 0;
    *stored = false;
    if (len == 1 && v[0] == 'N')
        return 0;
    if (len < 1 || v[0] != 'L' || (len > 1 && v[1] != '\n'))
        return -1;
    *stored = true;
    size_t cap = 0;
    for (size_t i = 1; i < len; i++)
        cap += v[i] == '\n';
    if (cap > max)
        cap = max;
    *ids = xcalloc(cap ? cap : 1, sizeof **ids);
    const char *p = v + 1, *end = v + len;
    while (p < end && *n < cap) {
        p++;                                    /* the '\n' */
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            e = end;
        if (userid_valid(p, (size_t)(e - p)))
            (*ids)[(*n)++] = xstrndup(p, (size_t)(e - p));
        p = e;
    }
    return 0;
}
