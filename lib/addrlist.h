/* addrlist.h — lists of network addresses: "host[:port], host[:port], ...".
 *
 * The form of every knob that names several nodes of one service (a
 * RabbitMQ cluster's nodes, Redis Sentinels). An entry is a host name, an
 * IPv4 address or an IPv6 address, with or without a port:
 *
 *     rabbit1            rabbit1:5672         10.0.0.5:5672
 *     ::1                [::1]                [fd00::5]:5672
 *
 * A bare IPv6 address (more than one ':') is taken whole and must parse as
 * one, so that a typo such as "host:56:72" is an error rather than a host.
 * Spaces and tabs around entries are ignored; empty entries ("a,,b", "a,"),
 * empty hosts, hosts longer than 255 bytes and ports outside 1..65535 are
 * errors. Entries without a port get the caller's default.
 */
#ifndef LECTERN_ADDRLIST_H
#define LECTERN_ADDRLIST_H

#include <stddef.h>
#include <stdint.h>

typedef struct addrlist_entry {
    char *host;     /* NUL-terminated, without brackets */
    int   port;     /* 1..65535 */
} addrlist_entry;

typedef struct addrlist {
    addrlist_entry *v;
    size_t n;       /* >= 1 after a successful parse */
} addrlist;

/* Parse `spec` into `out` (which need not be initialised). Returns 0, or -1
 * with the reason in err and `out` empty (deinit is then a no-op). An empty
 * or all-blank spec is an error: a list names at least one node. On success
 * the caller owns the entries and releases them with addrlist_deinit. */
int addrlist_parse(addrlist *out, const char *spec, int default_port, char *err,
                   size_t errlen);

/* Only validate: parse `spec` and throw the result away. Returns 0, or -1
 * with "<knob>: <reason>" in err (for configuration checks). */
int addrlist_check(const char *knob, const char *spec, int default_port, char *err,
                   size_t errlen);

/* Release the entries; `l` is left empty. Accepts NULL and empty lists. */
void addrlist_deinit(addrlist *l);

/* Where a client of the list should start: an index in [0, n) derived from
 * `seed` (mixed, so that nearby seeds land apart). Clients that start at
 * different nodes and walk the list on failure spread over a cluster
 * instead of all piling onto its first node. n must be >= 1. */
size_t addrlist_start(const addrlist *l, uint64_t seed);

/* Write entry i as "host:port" ("[v6]:port" for IPv6) into out. */
void addrlist_format(const addrlist *l, size_t i, char *out, size_t outlen);

#endif
