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
 * Design. The parser finds one frame per call, picohttpparser style, and
 * keeps nothing of its own between calls: what it knows about an
 * incomplete frame (phase, how far the scan got, the state of the current
 * header line, the header count, where the body starts, the content-length)
 * goes into a small stomp_scan the caller holds next to its buffered bytes.
 * The next call resumes where the last one stopped, so each byte is
 * examined a bounded number of times however the input is split: a 240 KB
 * frame fed one byte at a time costs what it costs whole, not 240,000
 * re-scans of a growing prefix. The state holds offsets from the frame's
 * first byte, so the caller may move its buffer between calls. The parser
 * never mutates the buffer until it has seen the whole frame, so feeding
 * the same bytes again after STOMP_AGAIN is always safe. Every check that
 * can fire on a partial frame (line too long, frame too large, unknown
 * command) fires with the same reason it would give on the complete frame,
 * so a hostile peer cannot make a session buffer more than the limits
 * allow, and whole, split and byte-by-byte feeds agree.
 *
 * Two passes: the scan pass validates the command, each header line (colon,
 * non-empty name, no NUL, no bare CR, valid escapes, limits) and locates the
 * body, one byte at a time and resumable; only when the frame is complete
 * does the decode pass walk the header lines once more to split them,
 * unescape names and values in place (the decoded form is never longer)
 * and fill the frame's views.
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
    /* stomp_scan keeps offsets in 32 bits and the header count in 16. */
    if (p->lim.max_headers > UINT16_MAX)
        p->lim.max_headers = UINT16_MAX;
    if (p->lim.max_frame > STOMP_MAX_FRAME_LIMIT)
        p->lim.max_frame = STOMP_MAX_FRAME_LIMIT;
    p->hdrs = xcalloc(p->lim.max_headers, sizeof *p->hdrs);
    p->err = NULL;
    p->examined = 0;
}

void stomp_parser_deinit(stomp_parser *p)
{
    free(p->hdrs);
    p->hdrs = NULL;
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

/* stomp_scan.phase */
enum { STOMP_SCAN_START, STOMP_SCAN_COMMAND, STOMP_SCAN_HEADERS, STOMP_SCAN_BODY };

/* stomp_scan.flags: the first four describe the current header line, the
 * last two the frame. */
enum {
    STOMP_SCAN_CR = 1,          /* the last byte examined is a CR (the EOL's, or content?) */
    STOMP_SCAN_ESC = 2,         /* the last content byte is a backslash opening an escape */
    STOMP_SCAN_COLON = 4,       /* the line's ':' has been seen */
    STOMP_SCAN_EMPTY_NAME = 8,  /* ... as the line's first byte */
    STOMP_SCAN_CLEN = 16,       /* a content-length header has been seen (the first wins) */
    STOMP_SCAN_CLEN_BAD = 32,   /* ... and its value is not a valid length */
};
#define STOMP_SCAN_LINE_FLAGS (STOMP_SCAN_CR | STOMP_SCAN_ESC | STOMP_SCAN_COLON | \
                               STOMP_SCAN_EMPTY_NAME)

/* stomp_scan.line_err: the first fault found inside a header line. */
enum { STOMP_LINE_OK, STOMP_LINE_NUL, STOMP_LINE_CR, STOMP_LINE_ESCAPE };
static const char *const stomp_line_errors[] = {
    [STOMP_LINE_OK] = "",
    [STOMP_LINE_NUL] = "NUL in header line",
    [STOMP_LINE_CR] = "CR not followed by LF",
    [STOMP_LINE_ESCAPE] = "invalid escape sequence in header",
};

static ssize_t stomp_fail(stomp_parser *p, stomp_scan *st, const char *why)
{
    p->err = why;
    memset(st, 0, sizeof *st);
    return STOMP_BAD;
}

/* Incomplete within the examined window: see the comment in stomp_parse. */
static ssize_t stomp_again(stomp_parser *p, stomp_scan *st, size_t len)
{
    return len >= p->lim.max_frame ? stomp_fail(p, st, "frame too large") : STOMP_AGAIN;
}

/* Heart-beats: a run of EOLs where a frame could start. Returns the bytes
 * they take (0: none), STOMP_AGAIN for a lone CR that may be half a CRLF, or
 * STOMP_BAD. Nothing is kept between calls: a partial run is one byte. */
static ssize_t stomp_heartbeats(stomp_parser *p, stomp_scan *st, const char *data, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (data[i] == '\n') {
            i++;
        } else if (data[i] == '\r') {
            if (i + 1 == len)
                break;          /* CR may be the start of CRLF */
            if (data[i + 1] != '\n') {
                if (i > 0)
                    break;      /* report the heart-beats first, as a split feed would */
                return stomp_fail(p, st, "CR not followed by LF");
            }
            i += 2;
        } else {
            break;
        }
    }
    p->examined += i < len ? i + 1 : i;
    if (i == 0 && len == 1 && data[0] == '\r')
        return STOMP_AGAIN;
    return (ssize_t)i;
}

/* The command line, from st->pos on. Returns 0 once the line is complete
 * (st->cmd set, st->pos after its LF), STOMP_AGAIN or STOMP_BAD. An
 * incomplete command line is at most STOMP_LONGEST_COMMAND + 1 bytes (any
 * longer cannot be a prefix of a command), so matching it again on every
 * call costs a bounded amount. */
static ssize_t stomp_scan_command(stomp_parser *p, stomp_scan *st, const char *data, size_t len,
                                  size_t view)
{
    const char *nl = memchr(data + st->pos, '\n', view - st->pos);
    size_t eol = nl ? (size_t)(nl - data) : view;
    size_t cmdlen = eol;
    if (cmdlen > 0 && data[cmdlen - 1] == '\r')
        cmdlen--;       /* CRLF, or a CR at the end of a partial line */
    bool prefix;
    stomp_command cmd = stomp_match_command(data, cmdlen, &prefix);
    p->examined += eol - st->pos + cmdlen;
    if (!nl) {
        if (cmd == STOMP_CMD_NONE && !prefix)
            return stomp_fail(p, st, "unknown command");
        st->pos = (uint32_t)view;
        return stomp_again(p, st, len);
    }
    if (cmd == STOMP_CMD_NONE)
        return stomp_fail(p, st, "unknown command");
    st->cmd = (uint8_t)cmd;
    st->pos = st->line = (uint32_t)(eol + 1);
    st->phase = STOMP_SCAN_HEADERS;
    return 0;
}

/* Header lines, from st->pos on, each byte examined once; the state of the
 * current line lives in st between calls. Returns 0 at the blank line that
 * ends them (st->body set), STOMP_AGAIN or STOMP_BAD.
 *
 * A line's verdict is the one a scan of the complete line gives: first
 * "header line too long" (fired as soon as the line's bytes so far exceed
 * the limit, since the rest can only make it longer), then at its LF "too
 * many headers", then the first fault inside the line (NUL, a CR not
 * followed by LF, an invalid escape), then a missing ':' or an empty name.
 * Faults inside the line are remembered and reported at its end, so the
 * verdict never depends on where the input was split. A CR is judged by the
 * byte after it: the EOL's CR before LF, content (a fault) before anything
 * else; it is not counted in the line's length until then. */
static ssize_t stomp_scan_headers(stomp_parser *p, stomp_scan *st, stomp_version version,
                                  const char *data, size_t len, size_t view)
{
    const stomp_limits *lim = &p->lim;
    bool escapes = stomp_escapes_apply(version, (stomp_command)st->cmd);
    size_t pos = st->pos, line = st->line;
    unsigned flags = st->flags, lerr = st->line_err;

    p->examined += view - pos;
    for (; pos < view; pos++) {
        char c = data[pos];
        if (c == '\n') {
            size_t ll = pos - line - ((flags & STOMP_SCAN_CR) ? 1 : 0);
            if ((flags & STOMP_SCAN_ESC) && !lerr)
                lerr = STOMP_LINE_ESCAPE;       /* a backslash ends the line */
            if (ll == 0) {
                p->examined -= view - pos - 1;
                st->body = (uint32_t)(pos + 1);
                st->flags = (uint8_t)flags;
                return 0;
            }
            if (st->nh == lim->max_headers)
                return stomp_fail(p, st, "too many headers");
            if (lerr)
                return stomp_fail(p, st, stomp_line_errors[lerr]);
            if (!(flags & STOMP_SCAN_COLON))
                return stomp_fail(p, st, "header line without ':'");
            if (flags & STOMP_SCAN_EMPTY_NAME)
                return stomp_fail(p, st, "empty header name");
            /* The first content-length wins, like every repeated header. A
             * raw name equal to "content-length" cannot contain escapes,
             * so the undecoded comparison is exact. Its value is checked
             * at the blank line, after every later line's own checks. */
            if (!(flags & STOMP_SCAN_CLEN) && ll >= 15 && !memcmp(data + line, "content-length:", 15)) {
                size_t cl;
                flags |= STOMP_SCAN_CLEN;
                p->examined += ll;
                if (stomp_parse_length(data + line + 15, ll - 15, (size_t)-1, &cl))
                    st->clen = cl > UINT32_MAX ? UINT32_MAX : (uint32_t)cl;
                else
                    flags |= STOMP_SCAN_CLEN_BAD;
            }
            st->nh++;
            flags &= ~(unsigned)STOMP_SCAN_LINE_FLAGS;
            lerr = STOMP_LINE_OK;
            line = pos + 1;
            continue;
        }
        if (flags & STOMP_SCAN_CR) {
            flags &= ~(unsigned)STOMP_SCAN_CR;      /* the CR before c was content */
            if (!lerr)
                lerr = STOMP_LINE_CR;
        }
        if (flags & STOMP_SCAN_ESC) {
            flags &= ~(unsigned)STOMP_SCAN_ESC;
            if (!stomp_escape_ok(version, c) && !lerr)
                lerr = STOMP_LINE_ESCAPE;
            if (c == '\r')
                flags |= STOMP_SCAN_CR;
        } else if (c == '\r') {
            flags |= STOMP_SCAN_CR;
        } else if (c == '\0') {
            if (!lerr)
                lerr = STOMP_LINE_NUL;
        } else if (c == ':') {
            if (!(flags & STOMP_SCAN_COLON))
                flags |= STOMP_SCAN_COLON | (pos == line ? STOMP_SCAN_EMPTY_NAME : 0);
        } else if (c == '\\' && escapes) {
            flags |= STOMP_SCAN_ESC;
        }
        if (pos + 1 - line - ((flags & STOMP_SCAN_CR) ? 1 : 0) > lim->max_header_line)
            return stomp_fail(p, st, "header line too long");
    }
    st->pos = (uint32_t)pos;
    st->line = (uint32_t)line;
    st->flags = (uint8_t)flags;
    st->line_err = (uint8_t)lerr;
    return stomp_again(p, st, len);
}

/* The decode pass over a complete frame: find each header line again (the
 * scan has validated them all), split it at its first ':' and unescape
 * name and value in place (the decoded form is never longer). */
static void stomp_decode(stomp_parser *p, const stomp_scan *st, bool escapes, char *data)
{
    size_t at = (size_t)((char *)memchr(data, '\n', st->body) - data) + 1;
    p->examined += at;
    for (size_t k = 0; k < st->nh; k++) {
        char *line = data + at;
        char *eol = memchr(line, '\n', st->body - at);
        size_t ll = (size_t)(eol - line);
        if (ll > 0 && line[ll - 1] == '\r')
            ll--;
        char *colon = memchr(line, ':', ll);
        stomp_header *h = &p->hdrs[k];
        h->name.p = line;
        h->name.len = (size_t)(colon - line);
        h->value.p = colon + 1;
        h->value.len = ll - h->name.len - 1;
        p->examined += (size_t)(eol - line) + 1 + h->name.len;
        if (escapes) {
            p->examined += ll;
            h->name.len = stomp_unescape(line, h->name.len);
            h->value.len = stomp_unescape(colon + 1, h->value.len);
        }
        at = (size_t)(eol - data) + 1;
    }
}

ssize_t stomp_parse(stomp_parser *p, stomp_scan *st, stomp_version version, char *data,
                    size_t len, stomp_frame *f)
{
    const stomp_limits *lim = &p->lim;
    stomp_scan fresh;
    if (!st)
        st = &fresh;
    if (st == &fresh || st->pos > len)
        memset(st, 0, sizeof *st);     /* no state, or not the bytes it was made for */

    if (st->phase == STOMP_SCAN_START) {
        ssize_t hb = stomp_heartbeats(p, st, data, len);
        if (hb > 0) {
            f->command = STOMP_CMD_NONE;
            f->headers = NULL;
            f->nheaders = 0;
            f->body.p = NULL;
            f->body.len = 0;
            return hb;
        }
        if (hb < 0 || len == 0)
            return hb < 0 ? hb : STOMP_AGAIN;
        st->phase = STOMP_SCAN_COMMAND;
    }

    /* A frame has at most max_frame bytes, so only that many are examined:
     * whatever lies beyond cannot belong to a legal frame. A frame not
     * complete within the window is "too large" if the window is full and
     * "again" otherwise, which keeps whole and split feeds in agreement. */
    size_t view = len < lim->max_frame ? len : lim->max_frame;
    ssize_t r;
    if (st->phase == STOMP_SCAN_COMMAND && (r = stomp_scan_command(p, st, data, len, view)) < 0)
        return r;
    if (st->phase == STOMP_SCAN_HEADERS) {
        if ((r = stomp_scan_headers(p, st, version, data, len, view)) < 0)
            return r;
        if (st->flags & STOMP_SCAN_CLEN_BAD)
            return stomp_fail(p, st, "invalid content-length");
        if ((st->flags & STOMP_SCAN_CLEN) &&
            (st->clen >= lim->max_frame || (size_t)st->body + st->clen + 1 > lim->max_frame))
            return stomp_fail(p, st, "frame too large");
        st->pos = st->body;
        st->phase = STOMP_SCAN_BODY;
    }

    /* Body: content-length octets then a NUL, or everything up to a NUL. */
    size_t end;
    if (st->flags & STOMP_SCAN_CLEN) {
        end = (size_t)st->body + st->clen + 1;
        if (view < end)
            return stomp_again(p, st, len);
        p->examined++;
        if (data[end - 1] != '\0')
            return stomp_fail(p, st, "body longer than content-length (no NUL after it)");
    } else {
        const char *nul = memchr(data + st->pos, '\0', view - st->pos);
        size_t stop = nul ? (size_t)(nul - data) + 1 : view;
        p->examined += stop - st->pos;
        if (!nul) {
            st->pos = (uint32_t)view;
            return stomp_again(p, st, len);
        }
        end = stop;
    }
    stomp_command cmd = (stomp_command)st->cmd;
    size_t body_len = end - 1 - st->body;
    if (body_len > 0 && cmd != STOMP_CMD_SEND && cmd != STOMP_CMD_MESSAGE &&
        cmd != STOMP_CMD_ERROR)
        return stomp_fail(p, st, "this frame must not have a body");

    /* Complete: decode in place. */
    stomp_decode(p, st, stomp_escapes_apply(version, cmd), data);
    f->command = cmd;
    f->headers = p->hdrs;
    f->nheaders = st->nh;
    f->body.p = data + st->body;
    f->body.len = body_len;
    memset(st, 0, sizeof *st);
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

/* One header line written by 1.2 rules, looked at for an older version:
 * where it splits, what its escapes decode to. */
typedef struct stomp_line_facts {
    size_t colon;            /* offset of the first raw ':' */
    bool cr, lf;             /* an escaped CR / LF in the name or the value */
    bool name_colon;         /* an escaped ':' in the name */
    bool bad;                /* no ':', an undefined escape or a lone backslash */
} stomp_line_facts;

static stomp_line_facts stomp_line_look(const char *line, size_t ll)
{
    stomp_line_facts lf = { .colon = ll };
    for (size_t k = 0; k < ll; k++) {
        char c = line[k];
        if (c == ':' && lf.colon == ll) {
            lf.colon = k;
        } else if (c == '\\') {
            char e = k + 1 < ll ? line[++k] : '\0';
            if (e == 'r')
                lf.cr = true;
            else if (e == 'n')
                lf.lf = true;
            else if (e == 'c')
                lf.name_colon |= lf.colon == ll;
            else if (e != '\\')
                lf.bad = true;
        } else if (c == '\r' || c == '\0') {
            lf.bad = true;
        }
    }
    if (lf.colon == ll || lf.colon == 0)
        lf.bad = true;
    return lf;
}

size_t stomp_transcode_headers(buf *out, stomp_version to, const char *in, size_t len,
                               size_t *omitted)
{
    size_t at = 0, dropped = 0;
    while (at < len) {
        const char *line = in + at;
        const char *eol = memchr(line, '\n', len - at);
        size_t ll = eol ? (size_t)(eol - line) : len - at;
        size_t next = at + ll + (eol ? 1 : 0);
        if (ll == 0) {                      /* the blank line: headers end */
            buf_append(out, line, next - at);
            at = next;
            break;
        }
        if (to >= STOMP_V12) {
            buf_append(out, line, next - at);
            at = next;
            continue;
        }
        stomp_line_facts f = stomp_line_look(line, ll);
        if (f.bad || f.cr || (to == STOMP_V10 && (f.lf || f.name_colon))) {
            dropped++;
        } else if (to == STOMP_V11) {
            /* Without \r the 1.2 and 1.1 encodings are the same bytes. */
            buf_append(out, line, ll);
            buf_append_char(out, '\n');
        } else {
            /* 1.0: raw bytes; the value may hold ':' (the first one splits). */
            buf_reserve(out, ll + 1);
            char *w = out->data + out->len;
            memcpy(w, line, f.colon);
            size_t nl = stomp_unescape(w, f.colon);
            w[nl] = ':';
            size_t vlen = ll - f.colon - 1;
            memcpy(w + nl + 1, line + f.colon + 1, vlen);
            out->len += nl + 1 + stomp_unescape(w + nl + 1, vlen);
            buf_append_char(out, '\n');
        }
        at = next;
    }
    if (omitted)
        *omitted = dropped;
    return at;
}

