/* tlsio.h — TLS for the load generator's connections (wss://), with
 * OpenSSL, non-blocking (see tlsio.c).
 *
 * conn.c opens a TCP connection as for ws://; once it is connected, a
 * wss:// connection gets a tlsio session on the same socket, drives its
 * handshake from the epoll loop (tlsio_handshake says which readiness it
 * waits for) and then reads and writes through tlsio_read/tlsio_write,
 * which behave like recv/send on a non-blocking socket. The peer's
 * certificate is always verified, against a CA file or the system's store,
 * and must name the URL's host; there is no way to turn that off.
 */
#ifndef LECTERN_LOAD_TLSIO_H
#define LECTERN_LOAD_TLSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TLSIO_AGAIN (-2)

/* What every session of a process shares: the OpenSSL context with the
 * trusted certificates. */
typedef struct tlsio_ctx tlsio_ctx;

/* One session on one socket. */
typedef struct tlsio tlsio;

/* A context trusting the PEM certificates of ca_file (borrowed), or the
 * system's store when ca_file is NULL. Returns NULL with the reason in
 * err[0..cap) when the file cannot be read or holds no certificate. */
tlsio_ctx *tlsio_ctx_create(const char *ca_file, char *err, size_t cap);

/* Free x (accepts NULL). Its sessions must be closed first. */
void tlsio_ctx_destroy(tlsio_ctx *x);

/* The name a certificate must carry for "host[:port]" (a URL's
 * authority): host, without the port, into dst[0..cap); *is_ip says
 * whether it is an IPv4 address (matched against the certificate's IP
 * addresses) or a DNS name. Returns 0, or -1 when host is empty or does
 * not fit. Pure. */
int tlsio_peer_name(const char *hostport, char *dst, size_t cap, bool *is_ip);

/* A client session of x on the connected socket fd (borrowed: closing it
 * stays the caller's), expecting a certificate for hostport. Returns NULL
 * with the reason in err[0..cap). Out of memory aborts. */
tlsio *tlsio_open(tlsio_ctx *x, int fd, const char *hostport, char *err, size_t cap);

/* Advance the handshake: 0 when it is done, TLSIO_AGAIN when it waits for
 * the socket (*want_write: for writeability, else for readability), or -1
 * with the reason (a refused certificate says why) in err[0..cap). */
int tlsio_handshake(tlsio *t, bool *want_write, char *err, size_t cap);

/* Like recv on a non-blocking socket: the bytes read into buf[0..n) (as
 * many as arrived, over several records), 0 when the peer closed, or -1
 * with errno (EAGAIN: nothing yet; EPROTO: a TLS error). */
ssize_t tlsio_read(tlsio *t, void *buf, size_t n);

/* Like send on a non-blocking socket: bytes of buf[0..n) taken (each whole
 * record), or -1 with errno (EAGAIN: try again when writeable, with at
 * least the bytes not taken, from any address; EPROTO: a TLS error). */
ssize_t tlsio_write(tlsio *t, const void *buf, size_t n);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for a session whose handshake is done,
 * into dst[0..cap). */
void tlsio_describe(const tlsio *t, char *dst, size_t cap);

/* Free t without a close_notify (the caller closes the socket); accepts
 * NULL. */
void tlsio_close(tlsio *t);

#endif
