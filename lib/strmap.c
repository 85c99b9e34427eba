/* strmap.c — a compact hash table of string-keyed records (see strmap.h).
 *
 * Separate chaining through the records' own nodes: bucket i holds the
 * records whose hash & mask is i, in a singly linked list. The hash is
 * stored in the node, so a lookup compares keys only on a full 32-bit hash
 * match (and equal length), and growing rehashes without reading a key.
 *
 * Size: the bucket array starts at STRMAP_MIN_BUCKETS when the first record
 * comes, doubles when there are more than two records per bucket, and is
 * freed when the last record goes; so a table costs between 4 and 8 bytes
 * per record on top of the records, and chains average at most two.
 *
 * The hash is FNV-1a over the key, started from a seed drawn for each
 * table (getrandom): keys come from clients (user ids, room names), and a
 * seed they cannot know keeps them from choosing keys that all land in one
 * chain.
 *
 * Invariants: count is the number of records in the chains; buckets is
 * NULL exactly when count is 0; mask + 1 is a power of two >=
 * STRMAP_MIN_BUCKETS; each record sits in bucket (its hash & mask).
 */
#include "strmap.h"

#include "mem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define STRMAP_MIN_BUCKETS 8u
#define STRMAP_MAX_LOAD 2u

/* A seed for one table; without entropy yet (early boot), the FNV offset
 * basis, as unseeded. */
static uint32_t strmap_draw_seed(void)
{
    uint32_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = 0;
    return seed;
}

static uint32_t strmap_hash(uint32_t seed, const char *key, size_t len)
{
    uint32_t h = seed ^ 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 16777619u;
    }
    /* FNV's low bits mix poorly and the bucket is the low bits: fold the
     * high half in. */
    return h ^ (h >> 16);
}

void strmap_init(strmap *m, size_t key_off)
{
    m->buckets = NULL;
    m->mask = 0;
    m->count = 0;
    m->key_off = (uint32_t)key_off;
    m->seed = strmap_draw_seed();
}

void strmap_deinit(strmap *m)
{
    free(m->buckets);
    m->buckets = NULL;
    m->mask = 0;
    m->count = 0;
}

strmap_node *strmap_find(const strmap *m, const char *key, size_t len)
{
    if (!m->buckets)
        return NULL;
    uint32_t h = strmap_hash(m->seed, key, len);
    for (strmap_node *n = m->buckets[h & m->mask]; n; n = n->next)
        if (n->hash == h && n->len == len && memcmp(strmap_key(m, n), key, len) == 0)
            return n;
    return NULL;
}

/* Move every record to a bucket array of nb (a power of two) heads. */
static void strmap_rehash(strmap *m, uint32_t nb)
{
    strmap_node **b = xcalloc(nb, sizeof *b);
    for (uint32_t i = 0; m->buckets && i <= m->mask; i++) {
        strmap_node *n = m->buckets[i];
        while (n) {
            strmap_node *next = n->next;
            strmap_node **head = &b[n->hash & (nb - 1)];
            n->next = *head;
            *head = n;
            n = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->mask = nb - 1;
}

void strmap_insert(strmap *m, strmap_node *n, size_t len)
{
    if (!m->buckets)
        strmap_rehash(m, STRMAP_MIN_BUCKETS);
    else if (m->count >= STRMAP_MAX_LOAD * (m->mask + 1) && m->mask < UINT32_MAX / 2)
        strmap_rehash(m, 2 * (m->mask + 1));
    n->len = (uint32_t)len;
    n->hash = strmap_hash(m->seed, strmap_key(m, n), len);
    strmap_node **head = &m->buckets[n->hash & m->mask];
    n->next = *head;
    *head = n;
    m->count++;
}

void strmap_remove(strmap *m, strmap_node *n)
{
    strmap_node **link = &m->buckets[n->hash & m->mask];
    while (*link != n)
        link = &(*link)->next;
    *link = n->next;
    n->next = NULL;
    if (--m->count == 0)
        strmap_deinit(m);
}

static strmap_node *strmap_scan(const strmap *m, uint32_t from)
{
    for (uint32_t i = from; m->buckets && i <= m->mask; i++)
        if (m->buckets[i])
            return m->buckets[i];
    return NULL;
}

strmap_node *strmap_first(const strmap *m)
{
    return strmap_scan(m, 0);
}

strmap_node *strmap_next(const strmap *m, const strmap_node *n)
{
    if (n->next)
        return n->next;
    uint32_t b = n->hash & m->mask;
    return b == m->mask ? NULL : strmap_scan(m, b + 1);
}
