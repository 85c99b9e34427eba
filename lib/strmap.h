/* strmap.h — a compact hash table of string-keyed records, the links
 * embedded in the records themselves.
 *
 * For tables with one record per connection (the registry's mirror of
 * members and online users), where a general-purpose handle of seven
 * pointers would cost more than the record: a node here is a chain link,
 * the key's 32-bit hash and its length (16 bytes), and the key's bytes
 * stay in the owner's record, at the same offset from the node in every
 * record of one table (given at strmap_init). The table itself is one
 * array of bucket heads, a power of two long, doubled when the records
 * outnumber it twice.
 *
 * The table allocates only its bucket array; records belong to the
 * caller, who finds its record from the node by container arithmetic
 * (offsetof). Keys are bytes (a NUL in them is fine); the caller writes
 * the key into the record before strmap_insert and leaves it unchanged
 * while the record is in the table.
 */
#ifndef LECTERN_STRMAP_H
#define LECTERN_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct strmap_node {
    struct strmap_node *next;    /* the bucket's chain */
    uint32_t hash;               /* of the key, under the table's seed */
    uint32_t len;                /* the key's length in bytes */
} strmap_node;

typedef struct strmap {
    strmap_node **buckets;       /* mask + 1 chains; NULL until the first insert */
    uint32_t mask;
    uint32_t count;              /* records in the table */
    uint32_t key_off;            /* a record's key starts this far after its node */
    uint32_t seed;
} strmap;

/* An empty table whose records keep their key key_off bytes after their
 * strmap_node (the key's offset minus the node's, in the record). */
void strmap_init(strmap *m, size_t key_off);
/* Free the bucket array (not the records: the caller frees those, before
 * or after) and leave the table empty. */
void strmap_deinit(strmap *m);

/* The record whose key is key[0..len), or NULL. */
strmap_node *strmap_find(const strmap *m, const char *key, size_t len);
/* Add n, whose key (len bytes, at key_off from n) is written and not in
 * the table yet. len must fit in 32 bits. */
void strmap_insert(strmap *m, strmap_node *n, size_t len);
/* Take n (in the table) out. */
void strmap_remove(strmap *m, strmap_node *n);

/* The key of n (in m, or to be inserted into m). */
static inline const char *strmap_key(const strmap *m, const strmap_node *n)
{
    return (const char *)n + m->key_off;
}

/* Iteration, in no particular order: the first record (NULL: empty) and
 * the one after n (NULL: n was the last). n may be removed after its
 * successor was taken; nothing may be inserted during an iteration. */
strmap_node *strmap_first(const strmap *m);
strmap_node *strmap_next(const strmap *m, const strmap_node *n);

#endif
