/* tlsio.c — TLS for the load generator's connections (see tlsio.h).
 *
 * What it is. A thin layer over OpenSSL's SSL objects, on the non-blocking
 * sockets conn.c already drives from its epoll loop: one SSL_CTX per
 * process (the trusted certificates), one SSL per connection. The
 * handshake is SSL_connect repeated on each readiness it asks for
 * (SSL_ERROR_WANT_READ / WANT_WRITE); after it, tlsio_read and
 * tlsio_write turn SSL_read_ex / SSL_write_ex into recv/send semantics, so
 * that conn.c's buffering, EPOLLOUT handling and error paths stay the ones
 * plain connections use.
 *
 * What it measures. The generator exists to measure servers, so every
 * connection does what a browser's first visit does: a full handshake.
 * No session is cached or resumed (SSL_SESS_CACHE_OFF, no SSL_set_session),
 * whatever the server offers. ALPN offers http/1.1 as browsers do for a
 * WebSocket. TLS 1.2 and 1.3 are accepted; the server chooses.
 *
 * Verification. SSL_VERIFY_PEER against the CA file given (or the system's
 * store), and the certificate must name the URL's host: a DNS name
 * (SSL_set1_host, also sent as SNI) or an IP address
 * (X509_VERIFY_PARAM_set1_ip_asc, no SNI, as RFC 6066 wants). A refused
 * certificate fails the handshake with X509's reason.
 *
 * Non-blocking writes. SSL_MODE_ENABLE_PARTIAL_WRITE makes a write return
 * after each whole record, as send returns what the kernel took; with
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER a write that waited may be retried
 * from the caller's queue (another address, the same bytes first, perhaps
 * more after them), which is what conn.c does after EAGAIN.
 *
 * Invariants: library code never prints (reasons go to the caller's
 * buffer); OpenSSL's error queue is cleared before every call that may
 * fail, so a reason read after a failure is that failure's; the socket
 * belongs to the caller.
 *
 * Limits: a session that wants to write while reading (or to read while
 * writing) only happens on renegotiation or a key update, which Lectern's
 * server never asks for; it is reported as EAGAIN and resolved by the next
 * readiness of either kind.
 */
#include "tlsio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tlsio_ctx {
    SSL_CTX *ssl;
};

struct tlsio {
    SSL *ssl;
};

static void reason(char *err, size_t cap, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[200] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, cap, "%s%s%s", what, buf[0] ? ": " : "", buf);
    ERR_clear_error();
}

tlsio_ctx *tlsio_ctx_create(const char *ca_file, char *err, size_t cap)
{
    ERR_clear_error();
    SSL_CTX *s = SSL_CTX_new(TLS_client_method());
    if (!s) {
        reason(err, cap, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
    SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(s, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(s, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(s, alpn, sizeof alpn - 1);
    int ok = ca_file ? SSL_CTX_load_verify_locations(s, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(s);
    if (ok != 1) {
        char what[160];
        snprintf(what, sizeof what, "cannot load CA certificates from %s", ca_file ? ca_file : "the system's store");
        reason(err, cap, what);
        SSL_CTX_free(s);
        return NULL;
    }
    tlsio_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        fputs("lectern-load: out of memory\n", stderr);
        exit(1);
    }
    x->ssl = s;
    return x;
}

void tlsio_ctx_destroy(tlsio_ctx *x)
{
    if (!x)
        return;
    SSL_CTX_free(x->ssl);
    free(x);
}

int tlsio_peer_name(const char *hostport, char *dst, size_t cap, bool *is_ip)
{
    const char *colon = strrchr(hostport, ':');
    size_t n = colon ? (size_t)(colon - hostport) : strlen(hostport);
    if (n == 0 || n >= cap)
        return -1;
    memcpy(dst, hostport, n);
    dst[n] = '\0';
    struct in_addr a;
    *is_ip = inet_pton(AF_INET, dst, &a) == 1;
    return 0;
}

tlsio *tlsio_open(tlsio_ctx *x, int fd, const char *hostport, char *err, size_t cap)
{
    char host[96];
    bool ip = false;
    if (tlsio_peer_name(hostport, host, sizeof host, &ip) != 0) {
        snprintf(err, cap, "no host name in %s", hostport);
        return NULL;
    }
    ERR_clear_error();
    SSL *s = SSL_new(x->ssl);
    if (!s) {
        reason(err, cap, "SSL_new");
        return NULL;
    }
    int ok = SSL_set_fd(s, fd);
    if (ok == 1 && ip)
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), host);
    else if (ok == 1)
        ok = SSL_set1_host(s, host) == 1 && SSL_set_tlsext_host_name(s, host) == 1;
    if (ok != 1) {
        reason(err, cap, "setting up the TLS session");
        SSL_free(s);
        return NULL;
    }
    SSL_set_connect_state(s);
    tlsio *t = calloc(1, sizeof *t);
    if (!t) {
        fputs("lectern-load: out of memory\n", stderr);
        exit(1);
    }
    t->ssl = s;
    return t;
}

int tlsio_handshake(tlsio *t, bool *want_write, char *err, size_t cap)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_connect(t->ssl);
    if (r == 1)
        return 0;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *want_write = e == SSL_ERROR_WANT_WRITE;
        return TLSIO_AGAIN;
    }
    long v = SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK) {
        snprintf(err, cap, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else if (e == SSL_ERROR_SYSCALL && !ERR_peek_last_error()) {
        snprintf(err, cap, "%s", errno ? strerror(errno) : "connection closed during the handshake");
    } else if (e == SSL_ERROR_ZERO_RETURN) {
        snprintf(err, cap, "connection closed during the handshake");
    } else {
        reason(err, cap, "handshake");
    }
    return -1;
}

/* After SSL_read_ex/SSL_write_ex returned r (0): the recv/send-like
 * result. */
static ssize_t io_fail(tlsio *t, int r)
{
    int e = SSL_get_error(t->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (!ERR_peek_last_error() && errno)
            return -1;   /* errno from the socket call */
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    default:
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

ssize_t tlsio_read(tlsio *t, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t k = 0;
        ERR_clear_error();
        errno = 0;
        int r = SSL_read_ex(t->ssl, (unsigned char *)buf + got, n - got, &k);
        if (r == 1) {
            got += k;
            continue;
        }
        /* What came before a stop is returned now; an error or the close
         * is sticky and comes back on the next call. */
        if (got)
            break;
        return io_fail(t, r);
    }
    return (ssize_t)got;
}

ssize_t tlsio_write(tlsio *t, const void *buf, size_t n)
{
    size_t k = 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_write_ex(t->ssl, buf, n, &k);
    if (r == 1)
        return (ssize_t)k;
    return io_fail(t, r);
}

void tlsio_describe(const tlsio *t, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
}

void tlsio_close(tlsio *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t);
}
