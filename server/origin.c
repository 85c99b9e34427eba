/* origin.c — the WebSocket Origin policy (origin.h).
 *
 * Each listed origin is parsed once into its canonical form: scheme and host
 * lower-cased, the port kept only when it is not the scheme's default. An
 * Origin header is put in the same form and compared with each entry; the
 * list is a handful of sites and the check runs once per upgrade.
 *
 * The grammar accepted is narrow on purpose: scheme "://" host [":" port],
 * the scheme made of letters, digits, '+', '-', '.', the host of letters,
 * digits, '-', '.', or an IPv6 address in brackets, the port 1 to 5 digits.
 * Anything else (a path, user info, "null", a wildcard) is not an origin
 * that could be listed, and an Origin header of that kind is refused.
 */
#include "origin.h"

#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct origin_list {
    char **v;                    /* canonical forms */
    size_t n;
};

static char origin_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool origin_scheme_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' ||
           c == '.';
}

static bool origin_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* The canonical form of s[0..len) into out (at least len + 1 bytes), or
 * false when s is not scheme://host[:port]. */
static bool origin_canonical(const char *s, size_t len, char *out)
{
    size_t i = 0, w = 0;
    while (i < len && origin_scheme_char(origin_lower(s[i])))
        out[w++] = origin_lower(s[i++]);
    if (w == 0 || len - i < 3 || memcmp(s + i, "://", 3))
        return false;
    out[w] = '\0';
    const char *def = !strcmp(out, "http") || !strcmp(out, "ws") ? "80"
                    : !strcmp(out, "https") || !strcmp(out, "wss") ? "443" : NULL;
    memcpy(out + w, "://", 3);
    w += 3;
    i += 3;
    size_t host = w;
    if (i < len && s[i] == '[') {
        out[w++] = s[i++];
        while (i < len && s[i] != ']') {
            char c = origin_lower(s[i++]);
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.'))
                return false;
            out[w++] = c;
        }
        if (i == len)
            return false;
        out[w++] = s[i++];
    } else {
        while (i < len && origin_host_char(origin_lower(s[i])))
            out[w++] = origin_lower(s[i++]);
    }
    if (w == host || (w == host + 2 && out[host] == '['))
        return false;
    if (i < len) {
        if (s[i] != ':' || len - i - 1 < 1 || len - i - 1 > 5)
            return false;
        for (size_t k = i + 1; k < len; k++)
            if (s[k] < '0' || s[k] > '9')
                return false;
        char port[6];
        memcpy(port, s + i + 1, len - i - 1);
        port[len - i - 1] = '\0';
        long p = strtol(port, NULL, 10);
        if (p < 1 || p > 65535)
            return false;
        char num[8];
        snprintf(num, sizeof num, "%ld", p);
        if (!def || strcmp(num, def)) {
            out[w++] = ':';
            memcpy(out + w, num, strlen(num));
            w += strlen(num);
        }
    }
    out[w] = '\0';
    return true;
}

origin_list *origin_list_create(const char *csv, char *err, size_t errlen)
{
    origin_list *l = xcalloc(1, sizeof *l);
    const char *p = csv ? csv : "";
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end == start)
            continue;
        size_t len = (size_t)(end - start);
        char *canon = xmalloc(len + 1);
        if (!origin_canonical(start, len, canon)) {
            snprintf(err, errlen, "websocket.allowed_origins: '%.*s' is not scheme://host[:port] "
                     "(e.g. https://lectures.example.edu)", (int)(len > 200 ? 200 : len), start);
            free(canon);
            origin_list_destroy(l);
            return NULL;
        }
        l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
        l->v[l->n++] = canon;
    }
    return l;
}

void origin_list_destroy(origin_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    free(l);
}

int origin_list_check(const char *csv, char *err, size_t errlen)
{
    origin_list *l = origin_list_create(csv, err, errlen);
    origin_list_destroy(l);
    return l ? 0 : -1;
}

bool origin_list_any(const origin_list *l)
{
    return l->n == 0;
}

size_t origin_list_count(const origin_list *l)
{
    return l->n;
}

bool origin_list_allows(const origin_list *l, const char *origin, size_t len)
{
    if (l->n == 0)
        return true;
    if (len > 1024)
        return false;
    char canon[1025];
    if (!origin_canonical(origin, len, canon))
        return false;
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], canon))
            return true;
    return false;
}
