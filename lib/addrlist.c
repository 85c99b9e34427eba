/* addrlist.c — "host[:port], ..." lists (see addrlist.h).
 *
 * The parser walks the spec once, entry by entry; each entry is trimmed and
 * split into host and port without copying, and only a valid entry's host
 * is copied out. The list grows by doubling. On any error everything parsed
 * so far is released, so a failed parse leaves nothing to free.
 */
#include "addrlist.h"

#include "mem.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADDRLIST_HOST_MAX 255

static int addrlist_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Digits only, 1..65535. Returns the port or 0. */
static int addrlist_port(const char *p, size_t len)
{
    long v = 0;
    if (len == 0 || len > 5)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (p[i] - '0');
    }
    return v >= 1 && v <= 65535 ? (int)v : 0;
}

static int addrlist_is_v6(const char *p, size_t len)
{
    char v6[64];
    struct in6_addr in6;
    if (len >= sizeof v6)
        return 0;
    memcpy(v6, p, len);
    v6[len] = '\0';
    return inet_pton(AF_INET6, v6, &in6) == 1;
}

/* One trimmed entry p[0..len) into e. Returns 0 or -1 with err. */
static int addrlist_entry_parse(const char *p, size_t len, int default_port,
                                addrlist_entry *e, char *err, size_t errlen)
{
    const char *host = p, *port = NULL;
    size_t hlen = len, plen = 0;

    if (len == 0) {
        snprintf(err, errlen, "empty entry");
        return -1;
    }
    if (*p == '[') {
        const char *close = memchr(p, ']', len);
        if (!close) {
            snprintf(err, errlen, "'[' without ']' in '%.*s'", (int)len, p);
            return -1;
        }
        host = p + 1;
        hlen = (size_t)(close - host);
        size_t rest = len - (size_t)(close + 1 - p);
        if (rest && close[1] != ':') {
            snprintf(err, errlen, "junk after ']' in '%.*s'", (int)len, p);
            return -1;
        }
        if (rest) {
            port = close + 2;
            plen = rest - 1;
        }
        if (hlen && !addrlist_is_v6(host, hlen)) {
            snprintf(err, errlen, "not an IPv6 address in brackets: '%.*s'", (int)len, p);
            return -1;
        }
    } else {
        const char *colon = memchr(p, ':', len);
        /* One colon: host:port. More: a bare IPv6 address, which must then
         * be one, or typos such as "a:b:c" would pass as host names. */
        if (colon && !memchr(colon + 1, ':', len - (size_t)(colon + 1 - p))) {
            hlen = (size_t)(colon - p);
            port = colon + 1;
            plen = len - hlen - 1;
        } else if (colon && !addrlist_is_v6(p, len)) {
            snprintf(err, errlen, "neither host:port nor an IPv6 address: '%.*s'", (int)len, p);
            return -1;
        }
    }
    if (hlen == 0 || hlen > ADDRLIST_HOST_MAX) {
        snprintf(err, errlen, "empty or overlong host in '%.*s'", (int)len, p);
        return -1;
    }
    for (size_t i = 0; i < hlen; i++) {
        if (addrlist_blank(host[i]) || host[i] == ',') {
            snprintf(err, errlen, "blank inside the host in '%.*s'", (int)len, p);
            return -1;
        }
    }
    int pv = default_port;
    if (port && !(pv = addrlist_port(port, plen))) {
        snprintf(err, errlen, "bad port in '%.*s' (1..65535)", (int)len, p);
        return -1;
    }
    if (pv < 1 || pv > 65535) {
        snprintf(err, errlen, "no port in '%.*s' and no valid default", (int)len, p);
        return -1;
    }
    e->host = xstrndup(host, hlen);
    e->port = pv;
    return 0;
}

int addrlist_parse(addrlist *out, const char *spec, int default_port, char *err,
                   size_t errlen)
{
    size_t cap = 0;
    out->v = NULL;
    out->n = 0;
    if (!spec)
        spec = "";
    for (const char *p = spec;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *s = p;
        while (s < end && addrlist_blank(*s))
            s++;
        while (end > s && addrlist_blank(end[-1]))
            end--;
        if (s == end && !comma && out->n == 0) {
            snprintf(err, errlen, "no address listed");
            goto fail;
        }
        if (out->n == cap) {
            cap = cap ? cap * 2 : 4;
            out->v = xrealloc(out->v, cap * sizeof *out->v);
        }
        if (addrlist_entry_parse(s, (size_t)(end - s), default_port, &out->v[out->n], err,
                                 errlen) < 0)
            goto fail;
        out->n++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
fail:
    addrlist_deinit(out);
    return -1;
}

int addrlist_check(const char *knob, const char *spec, int default_port, char *err,
                   size_t errlen)
{
    addrlist l;
    char why[200];
    if (addrlist_parse(&l, spec, default_port, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", knob, why);
        return -1;
    }
    addrlist_deinit(&l);
    return 0;
}

void addrlist_deinit(addrlist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].host);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

size_t addrlist_start(const addrlist *l, uint64_t seed)
{
    /* splitmix64's finaliser: every input bit moves every output bit. */
    seed ^= seed >> 30;
    seed *= 0xbf58476d1ce4e5b9ULL;
    seed ^= seed >> 27;
    seed *= 0x94d049bb133111ebULL;
    seed ^= seed >> 31;
    return (size_t)(seed % l->n);
}

void addrlist_format(const addrlist *l, size_t i, char *out, size_t outlen)
{
    const addrlist_entry *e = &l->v[i];
    if (strchr(e->host, ':'))
        snprintf(out, outlen, "[%s]:%d", e->host, e->port);
    else
        snprintf(out, outlen, "%s:%d", e->host, e->port);
}
