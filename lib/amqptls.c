/* amqptls.c — plain or TLS sockets for rabbitmq-c (see amqptls.h).
 *
 * rabbitmq-c 0.11 verifies the peer itself after the handshake, and its own
 * host name check reads DNS names only: a broker reached by IP address
 * could never pass it. So the whole check is OpenSSL's, set up on the
 * socket's SSL_CTX before connecting: SSL_VERIFY_PEER (the handshake fails
 * at once on a bad chain, with OpenSSL's reason in this thread's error
 * queue) and the expected host on the context's verify parameters
 * (X509_VERIFY_PARAM_set1_host, or set1_ip_asc for an address), which
 * every SSL made from the context inherits. rabbitmq-c's peer check then
 * only reads the result OpenSSL already enforced; its host name check is
 * off because OpenSSL's covers it. Protocols below TLS 1.2 are refused.
 *
 * OpenSSL's own reason for a refused handshake is "certificate verify
 * failed" whatever failed; the verify callback keeps the first error of the
 * chain check (unable to get local issuer certificate, IP address mismatch,
 * certificate has expired...) in a thread-local, and the reason given to
 * the caller names it. A connect runs on one thread from start to end, so
 * the thread-local is that connect's.
 *
 * Each socket has a context of its own (rabbitmq-c makes one per socket),
 * so the CA and client certificate files are read at every connect: a
 * renewed file is picked up by the next reconnect.
 */
#include "amqptls.h"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int amqptls_check(const amqptls_config *c, const char *section, char *err, size_t errlen)
{
    if (!c->on)
        return 0;
    if (!c->cert[0] != !c->key[0]) {
        snprintf(err, errlen, "%s.tls_cert and %s.tls_key go together: set both or neither",
                 section, section);
        return -1;
    }
    const char *files[3] = { c->ca, c->cert, c->key };
    static const char *const names[3] = { "tls_ca", "tls_cert", "tls_key" };
    for (int i = 0; i < 3; i++) {
        if (files[i][0] && access(files[i], R_OK) != 0) {
            snprintf(err, errlen, "%s.%s: cannot read '%s'", section, names[i], files[i]);
            return -1;
        }
    }
    return 0;
}

/* The first certificate check that failed during this thread's connect
 * (X509_V_OK: none). */
static _Thread_local int amqptls_verify_error;

static int amqptls_verify_cb(int ok, X509_STORE_CTX *store)
{
    if (!ok && amqptls_verify_error == X509_V_OK)
        amqptls_verify_error = X509_STORE_CTX_get_error(store);
    return ok;
}

/* "connect: <rabbitmq-c's reason>", with OpenSSL's when it left one, and
 * the failed certificate check when there was one. */
static void amqptls_why(char *why, size_t whylen, int rc)
{
    unsigned long e = ERR_peek_last_error();
    char ossl[160] = "";
    if (e)
        ERR_error_string_n(e, ossl, sizeof ossl);
    ERR_clear_error();
    int v = amqptls_verify_error;
    snprintf(why, whylen, "connect: %s%s%s%s%s%s", amqp_error_string2(rc), e ? " (" : "", ossl,
             e ? ")" : "", v != X509_V_OK ? ": " : "",
             v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
}

/* The TLS settings of a fresh SSL socket. Returns 0, or -1 with why. */
static int amqptls_setup(amqp_socket_t *sock, const amqptls_config *c, const char *host,
                         char *why, size_t whylen)
{
    SSL_CTX *ctx = amqp_ssl_socket_get_context(sock);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (c->ca[0] ? amqp_ssl_socket_set_cacert(sock, c->ca) != AMQP_STATUS_OK
                 : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(why, whylen, "tls_ca: cannot load '%s'", c->ca[0] ? c->ca : "system CAs");
        return -1;
    }
    if (c->cert[0] && amqp_ssl_socket_set_key(sock, c->cert, c->key) != AMQP_STATUS_OK) {
        snprintf(why, whylen, "tls_cert: cannot load '%s' with key '%s'", c->cert, c->key);
        return -1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, amqptls_verify_cb);
    X509_VERIFY_PARAM *p = SSL_CTX_get0_param(ctx);
    unsigned char addr[16];
    bool ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(p, host)
            : X509_VERIFY_PARAM_set1_host(p, host, 0)) != 1) {
        snprintf(why, whylen, "tls: cannot expect host '%s'", host);
        return -1;
    }
    amqp_ssl_socket_set_verify_peer(sock, 1);
    amqp_ssl_socket_set_verify_hostname(sock, 0);   /* OpenSSL checks it (above) */
    return 0;
}

amqp_socket_t *amqptls_open(amqp_connection_state_t conn, const amqptls_config *c,
                            const char *host, int port, struct timeval *timeout, char *why,
                            size_t whylen)
{
    amqp_socket_t *sock = c->on ? amqp_ssl_socket_new(conn) : amqp_tcp_socket_new(conn);
    if (!sock) {
        snprintf(why, whylen, "connect: cannot make a%s socket", c->on ? " TLS" : "");
        ERR_clear_error();
        return NULL;
    }
    if (c->on && amqptls_setup(sock, c, host, why, whylen) < 0) {
        ERR_clear_error();
        return NULL;
    }
    ERR_clear_error();
    amqptls_verify_error = X509_V_OK;
    int rc = amqp_socket_open_noblock(sock, host, port, timeout);
    if (rc != AMQP_STATUS_OK) {
        amqptls_why(why, whylen, rc);
        return NULL;
    }
    return sock;
}
