/* peers.h — who is on the other end: client addresses and their counts.
 *
 * A client's address is the TCP peer's, unless the peer is a trusted proxy
 * (limits.trusted_proxies) that passed X-Forwarded-For: then it is the
 * right-most address in that header not itself a trusted proxy (the left
 * part of the header is whatever the client wrote, so only the hops our
 * proxies appended are believed). Connections are counted per address so
 * that one address cannot hold more than limits.max_conns_per_ip.
 */
#ifndef LECTERN_PEERS_H
#define LECTERN_PEERS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct peers peers;
typedef struct peer_entry peer_entry;

/* trusted: comma-separated addresses or CIDRs (IPv4 and IPv6); max: most
 * connections per address, 0 for no limit. NULL with why on a bad list. */
peers *peers_create(const char *trusted, int max, char *why, size_t whylen);
/* Accepts NULL. Every entry must have been released. */
void peers_destroy(peers *p);

/* The client address of a connection from `peer` (numeric text) that sent
 * X-Forwarded-For `xff` (NULL when absent), written to out. Pure. */
void peers_client_addr(const peers *p, const char *peer, const char *xff, char *out,
                       size_t outlen);

/* Would one more connection from addr exceed the limit? */
bool peers_full(const peers *p, const char *addr);
/* Count a connection from addr; the entry is released with peers_release.
 * Never fails (the limit is checked by peers_full, before the upgrade). */
peer_entry *peers_acquire(peers *p, const char *addr);
/* Accepts NULL. */
void peers_release(peers *p, peer_entry *e);
/* The address an entry counts. */
const char *peer_entry_addr(const peer_entry *e);
/* Addresses with at least one connection. */
size_t peers_count(const peers *p);

#endif
