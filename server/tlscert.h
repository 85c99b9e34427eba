/* tlscert.h — the server's own certificate (server.tls_cert and
 * server.tls_key) checked before libwebsockets is given it.
 *
 * libwebsockets loads the pair when the vhost is made and again when told
 * (lws_tls_cert_updated, on SIGHUP); on a bad file it logs and leaves the
 * vhost's context half changed (a new certificate without its key), so
 * every handshake after it would fail. tlscert_check loads the pair into a
 * scratch OpenSSL context first, the same way lws does (the chain file,
 * then the key, then the two compared), so that a pair it accepts loads,
 * and one it refuses is never handed over: the server refuses to start,
 * or keeps serving the previous pair, with the reason logged.
 */
#ifndef LECTERN_TLSCERT_H
#define LECTERN_TLSCERT_H

#include <stddef.h>
#include <stdint.h>

typedef struct tlscert_info {
    char serial[80];            /* the leaf's serial number, hex */
    char sha256[72];            /* SHA-256 of the leaf (DER), hex */
    char subject[160];          /* its subject, one line */
    int64_t not_after;          /* its expiry, Unix seconds */
} tlscert_info;

/* Load the PEM chain at `cert` and the PEM key at `key` (paths, borrowed)
 * into a scratch context and check that the key is the certificate's and
 * that the certificate is valid now. Fills *out from the leaf certificate.
 * Returns 0, or -1 with the reason in err. Reads the files; no other side
 * effect (OpenSSL's error queue is left empty). */
int tlscert_check(const char *cert, const char *key, tlscert_info *out, char *err,
                  size_t errlen);

#endif
