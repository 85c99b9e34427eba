/* peers.c — client addresses behind trusted proxies, and per-address counts.
 *
 * Trusted proxies are parsed once into (family, network bytes, prefix
 * length) triples; a check is a masked compare per entry (the list is a
 * handful of load balancers). Addresses are normalised through
 * inet_pton/inet_ntop, so "::ffff:127.0.0.1" style mapped IPv4 counts as the
 * IPv4 address, and two spellings of one IPv6 address are one key.
 *
 * Counts live in a uthash keyed by the normalised address; an entry is
 * freed when its count drops to zero, so idle memory is proportional to the
 * addresses connected now.
 */
#include "peers.h"

#include "mem.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

typedef struct net {
    int family;                  /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int bits;
} net;

struct peer_entry {
    UT_hash_handle hh;
    unsigned count;
    char addr[INET6_ADDRSTRLEN];
};

struct peers {
    net *trusted;
    size_t ntrusted;
    int max;
    peer_entry *by_addr;
};

/* Parse text as an address into a (family, bytes); IPv4-mapped IPv6 is
 * folded to IPv4. */
static bool peers_parse(const char *text, int *family, unsigned char out[16])
{
    unsigned char a6[16];
    if (inet_pton(AF_INET, text, out) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text, a6) != 1)
        return false;
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (!memcmp(a6, mapped, 12)) {
        memcpy(out, a6 + 12, 4);
        *family = AF_INET;
    } else {
        memcpy(out, a6, 16);
        *family = AF_INET6;
    }
    return true;
}

static bool peers_in(const net *n, int family, const unsigned char *a)
{
    if (n->family != family)
        return false;
    int full = n->bits / 8, rest = n->bits % 8;
    if (memcmp(n->addr, a, (size_t)full))
        return false;
    if (!rest)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (n->addr[full] & mask) == (a[full] & mask);
}

static bool peers_trusted(const peers *p, const char *text)
{
    int family;
    unsigned char a[16];
    if (!peers_parse(text, &family, a))
        return false;
    for (size_t i = 0; i < p->ntrusted; i++)
        if (peers_in(&p->trusted[i], family, a))
            return true;
    return false;
}

peers *peers_create(const char *trusted, int max, char *why, size_t whylen)
{
    peers *p = xcalloc(1, sizeof *p);
    p->max = max;
    char *list = xstrdup(trusted ? trusted : "");
    char *save = NULL;
    for (char *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        net n = { 0 };
        char *slash = strchr(tok, '/');
        if (slash)
            *slash = '\0';
        if (!peers_parse(tok, &n.family, n.addr)) {
            snprintf(why, whylen, "limits.trusted_proxies: \"%s\" is not an address", tok);
            goto fail;
        }
        int maxbits = n.family == AF_INET ? 32 : 128;
        n.bits = maxbits;
        if (slash) {
            char *end;
            long b = strtol(slash + 1, &end, 10);
            if (*end || end == slash + 1 || b < 0 || b > maxbits) {
                snprintf(why, whylen, "limits.trusted_proxies: bad prefix length in \"%s/%s\"",
                         tok, slash + 1);
                goto fail;
            }
            n.bits = (int)b;
        }
        p->trusted = xrealloc(p->trusted, (p->ntrusted + 1) * sizeof *p->trusted);
        p->trusted[p->ntrusted++] = n;
    }
    free(list);
    return p;
fail:
    free(list);
    peers_destroy(p);
    return NULL;
}

void peers_destroy(peers *p)
{
    if (!p)
        return;
    peer_entry *e, *tmp;
    HASH_ITER(hh, p->by_addr, e, tmp) {
        HASH_DEL(p->by_addr, e);
        free(e);
    }
    free(p->trusted);
    free(p);
}

/* Normalise an address's text (inet_ntop of its parse); as given when it
 * does not parse (it is then only a counting key). */
static void peers_normal(const char *text, char *out, size_t outlen)
{
    int family;
    unsigned char a[16];
    if (peers_parse(text, &family, a) && inet_ntop(family, a, out, (socklen_t)outlen))
        return;
    snprintf(out, outlen, "%s", text);
}

void peers_client_addr(const peers *p, const char *peer, const char *xff, char *out,
                       size_t outlen)
{
    peers_normal(peer, out, outlen);
    if (!xff || !p->ntrusted || !peers_trusted(p, peer))
        return;
    /* Walk X-Forwarded-For from the right: every hop our proxies added. */
    size_t end = strlen(xff);
    while (end) {
        size_t start = end;
        while (start && xff[start - 1] != ',')
            start--;
        size_t a = start, b = end;
        while (a < b && (xff[a] == ' ' || xff[a] == '\t'))
            a++;
        while (b > a && (xff[b - 1] == ' ' || xff[b - 1] == '\t'))
            b--;
        char hop[INET6_ADDRSTRLEN + 8];
        if (b - a == 0 || b - a >= sizeof hop)
            return;             /* empty or junk: keep the last address believed */
        memcpy(hop, xff + a, b - a);
        hop[b - a] = '\0';
        int family;
        unsigned char bytes[16];
        if (!peers_parse(hop, &family, bytes))
            return;
        peers_normal(hop, out, outlen);
        if (!peers_trusted(p, hop))
            return;
        end = start ? start - 1 : 0;
    }
}

bool peers_full(const peers *p, const char *addr)
{
    if (p->max <= 0)
        return false;
    peer_entry *e;
    HASH_FIND_STR(p->by_addr, addr, e);
    return e && e->count >= (unsigned)p->max;
}

peer_entry *peers_acquire(peers *p, const char *addr)
{
    peer_entry *e;
    HASH_FIND_STR(p->by_addr, addr, e);
    if (!e) {
        e = xcalloc(1, sizeof *e);
        snprintf(e->addr, sizeof e->addr, "%s", addr);
        HASH_ADD_STR(p->by_addr, addr, e);
    }
    e->count++;
    return e;
}

void peers_release(peers *p, peer_entry *e)
{
    if (!e)
        return;
    if (--e->count == 0) {
        HASH_DEL(p->by_addr, e);
        free(e);
    }
}

const char *peer_entry_addr(const peer_entry *e)
{
    return e->addr;
}

size_t peers_count(const peers *p)
{
    return HASH_COUNT(p->by_addr);
}
