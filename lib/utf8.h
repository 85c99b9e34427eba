/* utf8.h — UTF-8 validation (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
#ifndef LECTERN_UTF8_H
#define LECTERN_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True when the n bytes at p are well-formed UTF-8. NUL bytes are valid. */
bool utf8_valid(const void *p, size_t n);

#endif
