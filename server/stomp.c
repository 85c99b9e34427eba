/* stomp.c — STOMP frame codec.
 *
 * Grammar (STOMP 1.2 §"Augmented BNF"), as enforced here:
 *
 *   stream  = *( EOL | frame )            EOL = [CR] LF  (heart-beats)
 *   frame   = command EOL *( header EOL ) EOL body NUL
 *   header  = name ":" value              name is non-empty; the first ':'
 *                                         splits (later ones are value bytes)
 *   body    = content-length octets (may contain NUL) when that header is
 *             present, otherwise every octet up to the first NUL
 *
 * Design. The parser is stateless between calls: given the bytes buffered so
 * far it either finds one complete frame or says "again". It never mutates
 * the buffer until it has seen the whole frame, so re-scanning a prefix after
 * STOMP_AGAIN is safe, and feeding a frame byte by byte gives the same result
 * as feeding it whole. Every check that can fire on a partial frame (line
 * too long, frame too large, unknown command) fires with the same reason it
 * would give on the complete frame, so a hostile peer cannot make a session
 * buffer more than the limits allow.
 *
 * Two passes: the scan pass validates the command, each header line (colon,
 * non-empty name, no NUL, no bare CR, valid escapes, limits) and locates the
 * body; only when the frame is complete does the decode pass unescape header
 * names and values in place (the decoded form is never longer) and fill the
 * frame's views.
 *
 * Escapes: 1.2 defines \r \n \c \\; 1.1 defines \n \c \\; 1.0 has none. Any
 * other escape is an error. CONNECT, STOMP and CONNECTED are never escaped,
 * for compatibility with 1.0 clients (STOMP 1.2 §"Value Encoding").
 */
#include "stomp.h"

#include "mem.h"

#include <stdlib.h>
#include <string.h>

static const char *const stomp_names[STOMP_CMD_COUNT] = {
    [STOMP_CMD_NONE] = "",
    [STOMP_CMD_CONNECT] = "CONNECT",
    [STOMP_CMD_STOMP] = "STOMP",
    [STOMP_CMD_SEND] = "SEND",
    [STOMP_CMD_SUBSCRIBE] = "SUBSCRIBE",
    [STOMP_CMD_UNSUBSCRIBE] = "UNSUBSCRIBE",
    [STOMP_CMD_ACK] = "ACK",
    [STOMP_CMD_NACK] = "NACK",
    [STOMP_CMD_BEGIN] = "BEGIN",
    [STOMP_CMD_COMMIT] = "COMMIT",
    [STOMP_CMD_ABORT] = "ABORT",
    [STOMP_CMD_DISCONNECT] = "DISCONNECT",
    [STOMP_CMD_CONNECTED] = "CONNECTED",
    [STOMP_CMD_MESSAGE] = "MESSAGE",
    [STOMP_CMD_RECEIPT] = "RECEIPT",
    [STOMP_CMD_ERROR] = "ERROR",
};

#define STOMP_LONGEST_COMMAND 11   /* "UNSUBSCRIBE" */

const char *stomp_command_name(stomp_command c)
{
    return (unsigned)c < STOMP_CMD_COUNT ? stomp_names[c] : "?";
}

void stomp_parser_init(stomp_parser *p, const stomp_limits *lim)
{
    p->lim = *lim;
    if (p->lim.max_headers < 1)
        p->lim.max_headers = 1;
    p->hdrs = xcalloc(p->lim.max_headers, sizeof *p->hdrs);
    p->err = NULL;
}

void stomp_parser_deinit(stomp_parser *p)
{
    free(p->hdrs);
    p->hdrs = NULL;
}

static ssize_t stomp_fail(stomp_parser *p, const char *why)
{
    p->err = why;
    return STOMP_BAD;
}

/* Incomplete within the examined window: see the comment in stomp_parse. */
static ssize_t stomp_again(stomp_parser *p, size_t len)
{
    return len >= p->lim.max_frame ? stomp_fail(p, "frame too large") : STOMP_AGAIN;
}

/* Is s[0..n) the start of (or all of) some known command? */
static stomp_command stomp_match_command(const char *s, size_t n, bool *prefix)
{
    *prefix = false;
    for (int c = STOMP_CMD_CONNECT; c < STOMP_CMD_COUNT; c++) {
        size_t cl = strlen(stomp_names[c]);
        if (n <= cl && !memcmp(s, stomp_names[c], n)) {
            if (n == cl)
                return (stomp_command)c;
            *prefix = true;
        }
    }
    return STOMP_CMD_NONE;
}

static bool stomp_escapes_apply(stomp_version v, stomp_command c)
{
    return v >= STOMP_V11 && c != STOMP_CMD_CONNECT && c != STOMP_CMD_STOMP &&
           c != STOMP_CMD_CONNECTED;
}

static bool stomp_escape_ok(stomp_version v, char c)
{
    return c == 'n' || c == 'c' || c == '\\' || (c == 'r' && v >= STOMP_V12);
}

/* Decode escapes of s[0..n) in place; returns the new length. The scan pass
 * has already checked that every escape is valid. */
static size_t stomp_unescape(char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') {
            switch (s[++i]) {
            case 'r': c = '\r'; break;
            case 'n': c = '\n'; break;
            case 'c': c = ':'; break;
            default:  c = '\\'; break;
            }
        }
        s[o++] = c;
    }
    return o;
}

/* Strict decimal, no sign, no spaces; fails on overflow past max. */
static bool stomp_parse_length(const char *s, size_t n, size_t max, size_t *out)
{
    size_t v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (max - (size_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

ssize_t stomp_parse(stomp_parser *p, stomp_version version, char *data, size_t len,
                    stomp_frame *f)
{
    const stomp_limits *lim = &p->lim;
    size_t i = 0;

    /* Heart-beats: any run of EOLs before a frame. */
    while (i < len) {
        if (data[i] == '\n') {
            i++;
        } else if (data[i] == '\r') {
            if (i + 1 == len)
                break;          /* CR may be the start of CRLF */
            if (data[i + 1] != '\n') {
                if (i > 0)
                    break;      /* report the heart-beats first, as a split feed would */
                return stomp_fail(p, "CR not followed by LF");
            }
            i += 2;
        } else {
            break;
        }
    }
    if (i > 0) {
        f->command = STOMP_CMD_NONE;
        f->headers = NULL;
        f->nheaders = 0;
        f->body.p = NULL;
        f->body.len = 0;
        return (ssize_t)i;
    }
    if (len == 0 || (len == 1 && data[0] == '\r'))
        return STOMP_AGAIN;

    /* A frame has at most max_frame bytes, so only that many are examined:
     * whatever lies beyond cannot belong to a legal frame. A frame not
     * complete within the window is "too large" if the window is full and
     * "again" otherwise, which keeps whole and split feeds in agreement. */
    size_t view = len < lim->max_frame ? len : lim->max_frame;

    /* Command line. */
    const char *nl = memchr(data, '\n', view);
    size_t cmdlen = nl ? (size_t)(nl - data) : view;
    if (cmdlen > 0 && data[cmdlen - 1] == '\r')
        cmdlen--;       /* CRLF, or a CR at the end of a partial line */
    bool prefix;
    stomp_command cmd = stomp_match_command(data, cmdlen, &prefix);
    if (!nl) {
        if (cmd == STOMP_CMD_NONE && !prefix)
            return stomp_fail(p, "unknown command");
        return stomp_again(p, len);
    }
    if (cmd == STOMP_CMD_NONE)
        return stomp_fail(p, "unknown command");
    size_t pos = (size_t)(nl - data) + 1;

    /* Header lines, up to the blank line. */
    bool escapes = stomp_escapes_apply(version, cmd);
    size_t nh = 0, body_start = 0;
    for (;;) {
        const char *line = data + pos;
        const char *eol = memchr(line, '\n', view - pos);
        size_t ll = eol ? (size_t)(eol - line) : view - pos;
        if (ll > 0 && line[ll - 1] == '\r')
            ll--;
        if (ll > lim->max_header_line)
            return stomp_fail(p, "header line too long");
        if (!eol)
            return stomp_again(p, len);
        if (ll == 0) {
            body_start = (size_t)(eol - data) + 1;
            break;
        }
        if (nh == lim->max_headers)
            return stomp_fail(p, "too many headers");

        const char *colon = NULL;
        for (size_t k = 0; k < ll; k++) {
            char c = line[k];
            if (c == '\0')
                return stomp_fail(p, "NUL in header line");
            if (c == '\r')
                return stomp_fail(p, "CR not followed by LF");
            if (c == ':' && !colon)
                colon = line + k;
            if (c == '\\' && escapes) {
                if (k + 1 == ll || !stomp_escape_ok(version, line[k + 1]))
                    return stomp_fail(p, "invalid escape sequence in header");
                k++;
            }
        }
        if (!colon)
            return stomp_fail(p, "header line without ':'");
        if (colon == line)
            return stomp_fail(p, "empty header name");
        stomp_header *h = &p->hdrs[nh++];
        h->name.p = line;
        h->name.len = (size_t)(colon - line);
        h->value.p = colon + 1;
        h->value.len = ll - h->name.len - 1;
        pos = (size_t)(eol - data) + 1;
    }

    /* Body. The first content-length wins, like every repeated header. A
     * raw name equal to "content-length" cannot contain escapes, so the
     * undecoded comparison is exact. */
    const stomp_header *clh = NULL;
    for (size_t k = 0; k < nh; k++) {
        if (p->hdrs[k].name.len == 14 && !memcmp(p->hdrs[k].name.p, "content-length", 14)) {
            clh = &p->hdrs[k];
            break;
        }
    }
    size_t end;
    if (clh) {
        size_t cl;
        if (!stomp_parse_length(clh->value.p, clh->value.len, (size_t)-1, &cl))
            return stomp_fail(p, "invalid content-length");
        if (cl >= lim->max_frame || body_start + cl + 1 > lim->max_frame)
            return stomp_fail(p, "frame too large");
        if (view < body_start + cl + 1)
            return stomp_again(p, len);
        if (data[body_start + cl] != '\0')
            return stomp_fail(p, "body longer than content-length (no NUL after it)");
        end = body_start + cl + 1;
    } else {
        const char *nul = memchr(data + body_start, '\0', view - body_start);
        if (!nul)
            return stomp_again(p, len);
        end = (size_t)(nul - data) + 1;
    }
    size_t body_len = end - 1 - body_start;
    if (body_len > 0 && cmd != STOMP_CMD_SEND && cmd != STOMP_CMD_MESSAGE &&
        cmd != STOMP_CMD_ERROR)
        return stomp_fail(p, "this frame must not have a body");

    /* Complete: decode in place. */
    if (escapes) {
        for (size_t k = 0; k < nh; k++) {
            stomp_header *h = &p->hdrs[k];
            h->name.len = stomp_unescape((char *)h->name.p, h->name.len);
            h->value.len = stomp_unescape((char *)h->value.p, h->value.len);
        }
    }
    f->command = cmd;
    f->headers = p->hdrs;
    f->nheaders = nh;
    f->body.p = data + body_start;
    f->body.len = body_len;
    return (ssize_t)end;
}

bool stomp_str_eq(const stomp_str *s, const char *cstr)
{
    size_t n = strlen(cstr);
    return s->len == n && !memcmp(s->p, cstr, n);
}

const stomp_str *stomp_frame_header(const stomp_frame *f, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < f->nheaders; i++)
        if (f->headers[i].name.len == n && !memcmp(f->headers[i].name.p, name, n))
            return &f->headers[i].value;
    return NULL;
}

size_t stomp_frame_footprint(const stomp_frame *f)
{
    size_t n = sizeof(stomp_frame) + f->nheaders * sizeof(stomp_header) + f->body.len + 1;
    for (size_t i = 0; i < f->nheaders; i++)
        n += f->headers[i].name.len + f->headers[i].value.len;
    return n;
}

stomp_frame *stomp_frame_clone(const stomp_frame *f)
{
    char *mem = xmalloc(stomp_frame_footprint(f));
    stomp_frame *c = (stomp_frame *)mem;
    stomp_header *h = (stomp_header *)(mem + sizeof *c);
    char *s = (char *)(h + f->nheaders);

    c->command = f->command;
    c->headers = h;
    c->nheaders = f->nheaders;
    for (size_t i = 0; i < f->nheaders; i++) {
        memcpy(s, f->headers[i].name.p, f->headers[i].name.len);
        h[i].name.p = s;
        h[i].name.len = f->headers[i].name.len;
        s += h[i].name.len;
        memcpy(s, f->headers[i].value.p, f->headers[i].value.len);
        h[i].value.p = s;
        h[i].value.len = f->headers[i].value.len;
        s += h[i].value.len;
    }
    if (f->body.len)
        memcpy(s, f->body.p, f->body.len);
    s[f->body.len] = '\0';
    c->body.p = s;
    c->body.len = f->body.len;
    return c;
}

void stomp_frame_free(stomp_frame *f)
{
    free(f);
}

size_t stomp_escaped_len(const char *s, size_t n)
{
    size_t extra = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\\' || s[i] == '\n' || s[i] == '\r' || s[i] == ':')
            extra++;
    return n + extra;
}

char *stomp_escape(char *dst, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '\\': *dst++ = '\\'; *dst++ = '\\'; break;
        case '\n': *dst++ = '\\'; *dst++ = 'n'; break;
        case '\r': *dst++ = '\\'; *dst++ = 'r'; break;
        case ':':  *dst++ = '\\'; *dst++ = 'c'; break;
        default:   *dst++ = s[i]; break;
        }
    }
    return dst;
}

void stomp_put_command(buf *b, stomp_command c)
{
    buf_append_str(b, stomp_command_name(c));
    buf_append_char(b, '\n');
}

static void stomp_put_escaped(buf *b, const char *s, size_t n, bool escape)
{
    if (!escape) {
        buf_append(b, s, n);
        return;
    }
    size_t el = stomp_escaped_len(s, n);
    buf_reserve(b, el);
    stomp_escape(b->data + b->len, s, n);
    b->len += el;
    b->data[b->len] = '\0';
}

void stomp_put_header(buf *b, const char *name, size_t nlen,
                      const char *value, size_t vlen, bool escape)
{
    stomp_put_escaped(b, name, nlen, escape);
    buf_append_char(b, ':');
    stomp_put_escaped(b, value, vlen, escape);
    buf_append_char(b, '\n');
}

void stomp_put_header_str(buf *b, const char *name, const char *value, bool escape)
{
    stomp_put_header(b, name, strlen(name), value, strlen(value), escape);
}

void stomp_put_body(buf *b, const void *body, size_t len)
{
    buf_append_char(b, '\n');
    buf_append(b, body, len);
    buf_append_char(b, '\0');
}
