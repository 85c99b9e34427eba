/* tlscert.c — checking the server's certificate and key (see tlscert.h).
 *
 * The check mirrors what libwebsockets 4.1 does with the paths
 * (SSL_CTX_use_certificate_chain_file, SSL_CTX_use_PrivateKey_file), on a
 * context of our own that is freed at once, then asks OpenSSL whether the
 * key belongs to the certificate (SSL_CTX_check_private_key). A certificate
 * not yet valid or already expired is refused as well: serving it would
 * fail every client's handshake, which is worse than keeping the old one.
 * What it reports (serial, fingerprint, expiry) is what an operator
 * compares with `openssl x509 -noout -serial -fingerprint -sha256 -enddate`.
 */
#include "tlscert.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* "what: OpenSSL's reason" into err; the error queue is emptied. */
static int tlscert_fail(char *err, size_t errlen, const char *what, const char *path)
{
    unsigned long e = ERR_peek_last_error();
    char ossl[160] = "no detail";
    if (e)
        ERR_error_string_n(e, ossl, sizeof ossl);
    ERR_clear_error();
    snprintf(err, errlen, "%s%s%s%s: %s", what, path ? " '" : "", path ? path : "",
             path ? "'" : "", ossl);
    return -1;
}

static void tlscert_hex(const unsigned char *p, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 3 <= outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%02X", p[i]);
}

/* The leaf's details into *out. Returns 0, or -1 with err. */
static int tlscert_describe(X509 *x, tlscert_info *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    snprintf(out->serial, sizeof out->serial, "%s", hex ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1)
        tlscert_hex(md, mdlen, out->sha256, sizeof out->sha256);
    X509_NAME_oneline(X509_get_subject_name(x), out->subject, sizeof out->subject);
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
        return tlscert_fail(err, errlen, "certificate has an unreadable notAfter", NULL);
    out->not_after = (int64_t)timegm(&tm);
    if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
        snprintf(err, errlen, "certificate (serial %s) is not valid yet", out->serial);
        return -1;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
        snprintf(err, errlen, "certificate (serial %s) has expired", out->serial);
        return -1;
    }
    return 0;
}

int tlscert_check(const char *cert, const char *key, tlscert_info *out, char *err,
                  size_t errlen)
{
    int rc = -1;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return tlscert_fail(err, errlen, "cannot make a TLS context", NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        tlscert_fail(err, errlen, "server.tls_cert: cannot load", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        tlscert_fail(err, errlen, "server.tls_key: cannot load", key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tlscert_fail(err, errlen, "server.tls_key does not match server.tls_cert", NULL);
        goto fail;
    }
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (!leaf) {
        snprintf(err, errlen, "server.tls_cert: no certificate in '%s'", cert);
        goto fail;
    }
    rc = tlscert_describe(leaf, out, err, errlen);
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}
