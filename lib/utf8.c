/* utf8.c — strict UTF-8 validation.
 *
 * WebSocket text frames must carry valid UTF-8 (RFC 6455 §8.1): a browser
 * closes the connection on anything else. Lectern therefore checks each
 * outgoing message once, when it is encoded, and sends it in a binary frame
 * if the check fails. The validator follows the table in RFC 3629 §4, which
 * rules out overlong forms and surrogates by narrowing the range of the
 * second byte. ASCII runs are skipped eight bytes at a time because chat
 * text is mostly ASCII.
 */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

bool utf8_valid(const void *p, size_t n)
{
    const unsigned char *s = p, *end = s + n;

    while (s < end) {
        if (end - s >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            if (!(w & 0x8080808080808080ULL)) {
                s += 8;
                continue;
            }
        }
        unsigned c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;          /* overlong */
            else if (c == 0xED)
                hi = 0x9F;          /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;          /* overlong */
            else if (c == 0xF4)
                hi = 0x8F;          /* > U+10FFFF */
        } else {
            return false;
        }
        if ((size_t)(end - s) < need + 1)
            return false;
        if (s[1] < lo || s[1] > hi)
            return false;
        for (size_t i = 2; i <= need; i++)
            if (s[i] < 0x80 || s[i] > 0xBF)
                return false;
        s += need + 1;
    }
    return true;
}
