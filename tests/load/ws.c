/* ws.c — WebSocket client codec (see ws.h).
 *
 * Only what a client needs: the opening handshake (with the
 * Sec-WebSocket-Accept check, so a proxy that answers 101 without speaking
 * WebSocket is caught), the server's unmasked frames, and our masked ones.
 * Masking is applied by the caller into its own output buffer, once per
 * frame, with a key it chooses per frame.
 */
#include "ws.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void ws_make_key(char key[25], uint64_t random_a, uint64_t random_b)
{
    unsigned char raw[16];
    memcpy(raw, &random_a, 8);
    memcpy(raw + 8, &random_b, 8);
    EVP_EncodeBlock((unsigned char *)key, raw, 16);   /* 24 chars + NUL */
}

size_t ws_request(char *dst, size_t cap, const char *host, const char *path,
                  const char *protocols, const char key[25])
{
    bool offer = protocols && protocols[0];
    int n = snprintf(dst, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s%s%s"
                     "\r\n",
                     path, host, key, offer ? "Sec-WebSocket-Protocol: " : "",
                     offer ? protocols : "", offer ? "\r\n" : "");
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}

/* The value of header `name` in the response head [p, end), or NULL. */
static const char *ws_find_header(const char *p, const char *end, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            return NULL;
        if ((size_t)(eol - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol + 1;
    }
    return NULL;
}

ssize_t ws_response(const char *data, size_t len, const char key[25], const char **why)
{
    const char *end = NULL;
    for (size_t i = 3; i < len; i++) {
        if (data[i] == '\n' && data[i - 1] == '\r' && data[i - 2] == '\n' && data[i - 3] == '\r') {
            end = data + i + 1;
            break;
        }
    }
    if (!end)
        return len > 16384 ? (*why = "response header too long", WS_BAD) : WS_AGAIN;
    if (len < 12 || memcmp(data, "HTTP/1.1 101", 12) != 0) {
        *why = "no 101 Switching Protocols";
        return WS_BAD;
    }
    unsigned char in[64], digest[EVP_MAX_MD_SIZE];
    char expect[32];
    unsigned dlen = 0;
    memcpy(in, key, 24);
    memcpy(in + 24, WS_GUID, 36);
    if (!EVP_Digest(in, 60, digest, &dlen, EVP_sha1(), NULL)) {
        *why = "sha1 failed";
        return WS_BAD;
    }
    EVP_EncodeBlock((unsigned char *)expect, digest, (int)dlen);
    size_t vlen = 0;
    const char *v = ws_find_header(data, end, "Sec-WebSocket-Accept", &vlen);
    if (!v || vlen != strlen(expect) || memcmp(v, expect, vlen) != 0) {
        *why = "bad Sec-WebSocket-Accept";
        return WS_BAD;
    }
    return end - data;
}

ssize_t ws_parse(unsigned char *data, size_t len, size_t max_payload, ws_frame *f)
{
    if (len < 2)
        return WS_AGAIN;
    if (data[0] & 0x70)          /* RSV1-3: no extension was negotiated */
        return WS_BAD;
    if (data[1] & 0x80)          /* servers never mask */
        return WS_BAD;
    uint64_t plen = data[1] & 0x7f;
    size_t hl = 2;
    if (plen == 126) {
        if (len < 4)
            return WS_AGAIN;
        plen = (uint64_t)data[2] << 8 | data[3];
        hl = 4;
    } else if (plen == 127) {
        if (len < 10)
            return WS_AGAIN;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | data[2 + i];
        hl = 10;
    }
    if (plen > max_payload)
        return WS_BAD;
    if (len - hl < plen)
        return WS_AGAIN;
    f->opcode = data[0] & 0x0f;
    f->fin = (data[0] & 0x80) != 0;
    f->payload = data + hl;
    f->len = (size_t)plen;
    return (ssize_t)(hl + plen);
}

size_t ws_header(unsigned char *dst, int opcode, size_t len, uint32_t mask)
{
    size_t n = 0;
    dst[n++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        dst[n++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        dst[n++] = 0x80 | 126;
        dst[n++] = (unsigned char)(len >> 8);
        dst[n++] = (unsigned char)len;
    } else {
        dst[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            dst[n++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memcpy(dst + n, &mask, 4);
    return n + 4;
}

void ws_mask(unsigned char *p, size_t n, uint32_t mask)
{
    unsigned char k[4];
    memcpy(k, &mask, 4);
    for (size_t i = 0; i < n; i++)
        p[i] ^= k[i & 3];
}
