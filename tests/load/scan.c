/* scan.c — STOMP frame boundaries for the load generator (see scan.h).
 *
 * A frame is: command line, header lines, an empty line, the body, a NUL.
 * Lines end in LF or CRLF. The body ends at content-length bytes when that
 * header is present (so bodies may hold NULs), else at the first NUL.
 * Nothing is copied or rewritten: the caller's bytes stay as they are, so
 * a SCAN_AGAIN can be retried with more bytes appended.
 */
#include "scan.h"

#include <stdlib.h>
#include <string.h>

static scan_cmd scan_command(const char *p, size_t n)
{
    if (n == 7 && memcmp(p, "MESSAGE", 7) == 0)
        return SCAN_MESSAGE;
    if (n == 7 && memcmp(p, "RECEIPT", 7) == 0)
        return SCAN_RECEIPT;
    if (n == 9 && memcmp(p, "CONNECTED", 9) == 0)
        return SCAN_CONNECTED;
    if (n == 5 && memcmp(p, "ERROR", 5) == 0)
        return SCAN_ERROR;
    return SCAN_OTHER;
}

ssize_t scan_frame_next(const char *p, size_t n, size_t max_frame, scan_frame *f)
{
    size_t i = 0;
    while (i < n && (p[i] == '\n' || p[i] == '\r'))
        i++;
    if (i > 0) {
        f->cmd = SCAN_HEARTBEAT;
        return (ssize_t)i;
    }
    const char *end = p + (n < max_frame ? n : max_frame);
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol)
        return n >= max_frame ? SCAN_BAD : SCAN_AGAIN;
    size_t clen = (size_t)(eol - p);
    if (clen > 0 && p[clen - 1] == '\r')
        clen--;
    f->cmd = scan_command(p, clen);
    const char *h = eol + 1;
    const char *q = h;
    /* Walk the header lines once, noting content-length on the way (the
     * first occurrence wins). */
    const char *cl = NULL;
    size_t cl_len = 0;
    for (;;) {
        if (q >= end)
            return n >= max_frame ? SCAN_BAD : SCAN_AGAIN;
        if (*q == '\n' || (*q == '\r' && q + 1 < end && q[1] == '\n'))
            break;
        if (*q == '\r' && q + 1 >= end)
            return n >= max_frame ? SCAN_BAD : SCAN_AGAIN;
        const char *nl = memchr(q, '\n', (size_t)(end - q));
        if (!nl)
            return n >= max_frame ? SCAN_BAD : SCAN_AGAIN;
        if (!cl && *q == 'c' && nl - q > 15 && memcmp(q, "content-length:", 15) == 0) {
            cl = q + 15;
            cl_len = (size_t)(nl - cl);
            if (cl_len && cl[cl_len - 1] == '\r')
                cl_len--;
        }
        q = nl + 1;
    }
    f->headers = h;
    f->headers_len = (size_t)(q - h);
    const char *body = q + (*q == '\r' ? 2 : 1);
    if (cl) {
        size_t want = 0;
        for (size_t k = 0; k < cl_len; k++) {
            if (cl[k] < '0' || cl[k] > '9')
                return SCAN_BAD;
            want = want * 10 + (size_t)(cl[k] - '0');
            if (want > max_frame)
                return SCAN_BAD;
        }
        if ((size_t)(end - body) < want + 1)
            return n >= max_frame ? SCAN_BAD : SCAN_AGAIN;
        if (body[want] != '\0')
            return SCAN_BAD;
        f->body = body;
        f->body_len = want;
        return (ssize_t)(body + want + 1 - p);
    }
    const char *nul = memchr(body, '\0', (size_t)(end - body));
    if (!nul)
        return n >= max_frame ? SCAN_BAD : SCAN_AGAIN;
    f->body = body;
    f->body_len = (size_t)(nul - body);
    return (ssize_t)(nul + 1 - p);
}

const char *scan_header(const scan_frame *f, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    const char *p = f->headers, *end = f->headers + f->headers_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        if ((size_t)(nl - p) > nlen && p[nlen] == ':' && memcmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            const char *ve = nl;
            if (ve > v && ve[-1] == '\r')
                ve--;
            *len = (size_t)(ve - v);
            return v;
        }
        p = nl + 1;
    }
    return NULL;
}
