/* idemkey.c — the idempotency key rule (see idemkey.h).
 *
 * One pass over the bytes, so a key of any length costs time linear in
 * its bytes; a key over IDEMKEY_MAX is refused before it is read.
 */
#include "idemkey.h"

bool idemkey_valid(const char *p, size_t n)
{
    if (!p || n == 0 || n > IDEMKEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= ' ' || c > '~')
            return false;
    }
    return true;
}
