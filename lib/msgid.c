/* msgid.c — parse, compare and format message ids (see msgid.h).
 *
 * The parser accepts exactly what a Redis stream produces, so that a cursor
 * or resume point that parses is also one the room log understands, and
 * anything else (a hostile query string, a stray space) is rejected before
 * it reaches Redis or MySQL.
 */
#include "msgid.h"

#include <stdio.h>

/* One decimal number s[0..len) into *out: no sign, no leading zero, 64 bits. */
static int msgid_number(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int msgid_parse(const char *s, size_t len, msgid *out)
{
    size_t dash = 0;
    while (dash < len && s[dash] != '-')
        dash++;
    if (dash == len)
        return -1;
    msgid id;
    if (msgid_number(s, dash, &id.ms) < 0 ||
        msgid_number(s + dash + 1, len - dash - 1, &id.n) < 0)
        return -1;
    *out = id;
    return 0;
}

int msgid_cmp(msgid a, msgid b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    if (a.n != b.n)
        return a.n < b.n ? -1 : 1;
    return 0;
}

size_t msgid_format(msgid id, char out[MSGID_MAX])
{
    int n = snprintf(out, MSGID_MAX, "%llu-%llu", (unsigned long long)id.ms,
                     (unsigned long long)id.n);
    return (size_t)n;
}
