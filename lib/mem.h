/* mem.h — allocation that never returns NULL.
 *
 * Out of memory is not a condition a messaging server can recover from in a
 * useful way, so every allocation goes through these wrappers, which abort
 * with a message instead of returning NULL. Call sites stay free of checks.
 */
#ifndef LECTERN_MEM_H
#define LECTERN_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
