/* amqptls.h — the socket of an AMQP connection: plain TCP, or TLS with the
 * broker's certificate verified.
 *
 * Both programs reach RabbitMQ with rabbitmq-c (the server's bus threads,
 * server/bus_conn.c; lectern-storage's consumer, storage-worker/consumer.c)
 * and both take the same TLS knobs, under their own section: bus.tls* for
 * the server, amqp.tls* for the worker. amqptls_config is those knobs'
 * values and AMQPTLS_KNOBS declares their rows in a program's knob table
 * (lib/cfg), so the names, defaults and help are written once.
 *
 * With tls off, amqptls_open is rabbitmq-c's TCP socket. With tls on, the
 * broker must present a certificate that chains to tls_ca (or to the
 * system's trusted CAs when tls_ca is empty) and names the host connected
 * to (a DNS name, or an IP address, in its subjectAltName); TLS 1.2 or
 * later. A client certificate (tls_cert and tls_key) is sent when set, for
 * brokers that ask for one. Nothing here can turn verification off.
 */
#ifndef LECTERN_AMQPTLS_H
#define LECTERN_AMQPTLS_H

#include "cfg.h"

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>

typedef struct amqptls_config {
    bool        on;              /* connect over TLS */
    const char *ca;              /* PEM CA file; "" = the system's trusted CAs */
    const char *cert;            /* PEM client certificate chain; "" = none */
    const char *key;             /* its PEM private key */
} amqptls_config;

/* The knob rows of amqptls_config at offset `base` of a program's config
 * struct, named "<section>.tls", "<section>.tls_ca", "<section>.tls_cert"
 * and "<section>.tls_key". `section` is a string literal ("bus", "amqp");
 * `hosts` names the knob listing the nodes ("bus.host"). */
#define AMQPTLS_KNOBS(section, base, hosts)                                                     \
    { section ".tls", CFG_BOOL, (base) + offsetof(amqptls_config, on), "false", 0, 0, NULL,    \
      "Connect to RabbitMQ over TLS (AMQPS: RabbitMQ's listeners.ssl, port 5671\n"            \
      "by convention; set the port to it). The broker's certificate must chain to\n"          \
      section ".tls_ca and name the host connected to, as written in " hosts ",\n"             \
      "in its subjectAltName (a DNS name or an IP address); TLS 1.2 or later.\n"               \
      "A connection that fails the check is not made (logged as bus_down or\n"                 \
      "amqp_down with the reason) and is retried with backoff." },                             \
    { section ".tls_ca", CFG_STR, (base) + offsetof(amqptls_config, ca), "", 0, 0, NULL,        \
      "PEM file of the CA certificate(s) the broker's certificate must chain to\n"            \
      "(with " section ".tls). Empty: the system's trusted CAs." },                            \
    { section ".tls_cert", CFG_STR, (base) + offsetof(amqptls_config, cert), "", 0, 0, NULL,    \
      "PEM client certificate (chain) sent to a broker that asks for one\n"                     \
      "(RabbitMQ's ssl_options.verify = verify_peer). Empty: none." },                         \
    { section ".tls_key", CFG_STR, (base) + offsetof(amqptls_config, key), "", 0, 0, NULL,      \
      "PEM private key (unencrypted) of " section ".tls_cert." }

/* What the knob table cannot check: tls_cert and tls_key go together, and
 * every file named (with tls on) is readable now. `section` names the knobs
 * in the message. Returns 0, or -1 with the reason in err. */
int amqptls_check(const amqptls_config *c, const char *section, char *err, size_t errlen);

/* Make conn's socket (TCP, or TLS per c) and connect it to host:port within
 * *timeout, the TLS handshake and its checks included. c is borrowed for
 * the call. Returns the socket (owned by conn: amqp_destroy_connection
 * frees it), or NULL with why: "connect: <reason>" (for TLS, OpenSSL's
 * reason when it gave one, e.g. "certificate verify failed", followed by
 * the check that failed, e.g. ": IP address mismatch"). Blocks. */
amqp_socket_t *amqptls_open(amqp_connection_state_t conn, const amqptls_config *c,
                            const char *host, int port, struct timeval *timeout, char *why,
                            size_t whylen);

#endif
