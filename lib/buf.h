/* buf.h — a growable byte buffer.
 *
 * An open struct (a plain value): `data` holds `len` bytes and always has
 * room for a terminating NUL, which is kept in place so the contents can be
 * used as a C string when they are text. A zeroed struct is an empty buffer.
 */
#ifndef LECTERN_BUF_H
#define LECTERN_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char  *data;   /* NULL until the first append */
    size_t len;    /* bytes in use, excluding the NUL */
    size_t cap;    /* bytes allocated */
} buf;

void buf_init(buf *b);
void buf_deinit(buf *b);                 /* frees the storage; b is empty after */
void buf_reserve(buf *b, size_t extra);  /* ensure room for len + extra + NUL */
void buf_append(buf *b, const void *p, size_t n);
void buf_append_str(buf *b, const char *s);
void buf_append_char(buf *b, char c);
void buf_append_u64(buf *b, unsigned long long v);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void buf_consume(buf *b, size_t n);      /* drop n bytes from the front */
void buf_clear(buf *b);                  /* len = 0, keeps the storage */
char *buf_detach(buf *b, size_t *len);   /* hand the storage to the caller */

#endif
