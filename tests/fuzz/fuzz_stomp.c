/* fuzz_stomp.c — libFuzzer target for the STOMP frame codec (server/stomp.c).
 *
 * Input: two control bytes, then the byte stream a client sends.
 *   byte 0, bits 0-1: protocol version (0: 1.0, 1: 1.1, else 1.2)
 *   byte 0, bit 2:    limits: the server's defaults (0) or the smallest the
 *                     config accepts (1), so the limit checks are reachable
 *   byte 1:           seed of the chunk sizes for the split feed (below)
 *
 * Each input is parsed three times and the results must agree:
 *   whole  the stream in one buffer, frame after frame, as a session does
 *          with a single receive;
 *   split  the stream cut into chunks of pseudo-random sizes and fed the way
 *          session_feed does (parse straight from the receive buffer, keep
 *          the unparsed tail in a buf with the parser's stomp_scan, append
 *          the next chunk to it and resume the scan);
 *   bytes  the same, one byte per chunk.
 * Each produces a transcript (frames with their headers and body, runs of
 * heart-beats, the error reason, a trailing partial frame); stomp.h promises
 * that a split never changes what the parser decides. The resumed scans
 * must also stay linear: the bytes the parser examined (stomp_parser's
 * examined) are at most a small multiple of the input's length plus a
 * constant per call.
 *
 * Every frame returned is checked against the contract of stomp_parse
 * (consumed bytes within the input, views inside the frame, the NUL after the
 * body, limits), then re-encoded with the stomp_put_* helpers and parsed
 * again (it must give back the same frame), its headers rewritten for 1.1
 * and 1.0 subscribers (stomp_transcode_headers: the frame parses by that
 * version's rules and holds exactly the headers it can carry), cloned (the
 * clone must equal it) and looked up with stomp_frame_header. A broken invariant aborts with the
 * condition, which libFuzzer reports as a crash.
 *
 * Every buffer handed to the parser is a heap block of exactly the input's
 * size, so ASan sees a read one byte past the end.
 */
#include "buf.h"
#include "stomp.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_stomp: %s:%d: check failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                                 \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* The server's defaults (server/config.c) and the config's minima. */
static const stomp_limits fuzz_server_limits = {
    .max_frame = 256 << 10, .max_headers = 64, .max_header_line = 4 << 10,
};
static const stomp_limits fuzz_small_limits = {
    .max_frame = 256, .max_headers = 4, .max_header_line = 64,
};

/* A copy of data[0..n) in a block of exactly n bytes (the parser writes). */
static char *fuzz_dup(const void *data, size_t n)
{
    char *p = malloc(n ? n : 1);
    CHECK(p);
    if (n)
        memcpy(p, data, n);
    return p;
}

static bool fuzz_str_same(const stomp_str *a, const stomp_str *b)
{
    return a->len == b->len && (a->len == 0 || !memcmp(a->p, b->p, a->len));
}

static bool fuzz_frame_same(const stomp_frame *a, const stomp_frame *b)
{
    if (a->command != b->command || a->nheaders != b->nheaders || !fuzz_str_same(&a->body, &b->body))
        return false;
    for (size_t i = 0; i < a->nheaders; i++)
        if (!fuzz_str_same(&a->headers[i].name, &b->headers[i].name) ||
            !fuzz_str_same(&a->headers[i].value, &b->headers[i].value))
            return false;
    return true;
}

/* Is v[0..len) within [lo, hi)? */
static bool fuzz_inside(const stomp_str *v, const char *lo, const char *hi)
{
    return v->p >= lo && v->p <= hi && v->len <= (size_t)(hi - v->p);
}

/* stomp.c's rule (static there): which frames have escaped headers. */
static bool fuzz_escapes(stomp_version v, stomp_command c)
{
    return v >= STOMP_V11 && c != STOMP_CMD_CONNECT && c != STOMP_CMD_STOMP &&
           c != STOMP_CMD_CONNECTED;
}

/* The contract of a successful stomp_parse of data[0..len) into *f. */
static void fuzz_check_frame(const stomp_parser *p, const char *data, size_t len,
                             ssize_t r, const stomp_frame *f)
{
    CHECK(r > 0 && (size_t)r <= len);
    size_t used = (size_t)r;
    if (f->command == STOMP_CMD_NONE) {
        CHECK(f->nheaders == 0 && f->headers == NULL && f->body.len == 0);
        for (size_t i = 0; i < used; i++)
            CHECK(data[i] == '\n' || data[i] == '\r');
        return;
    }
    CHECK(f->command > STOMP_CMD_NONE && f->command < STOMP_CMD_COUNT);
    CHECK(used <= p->lim.max_frame);
    const char *name = stomp_command_name(f->command);
    CHECK(used > strlen(name) && !memcmp(data, name, strlen(name)));
    CHECK(f->nheaders <= p->lim.max_headers);
    CHECK(f->nheaders == 0 || f->headers == p->hdrs);
    /* The body ends at the frame's NUL, the last byte consumed. */
    CHECK(fuzz_inside(&f->body, data, data + used - 1));
    CHECK(f->body.p + f->body.len == data + used - 1 && f->body.p[f->body.len] == '\0');
    if (f->body.len > 0)
        CHECK(f->command == STOMP_CMD_SEND || f->command == STOMP_CMD_MESSAGE ||
              f->command == STOMP_CMD_ERROR);
    const stomp_str *cl = NULL;
    for (size_t i = 0; i < f->nheaders; i++) {
        const stomp_header *h = &f->headers[i];
        CHECK(h->name.len > 0);
        CHECK(fuzz_inside(&h->name, data, f->body.p) && fuzz_inside(&h->value, data, f->body.p));
        if (!cl && stomp_str_eq(&h->name, "content-length"))
            cl = &h->value;
    }
    /* stomp_frame_header finds the first header of a name. */
    CHECK(stomp_frame_header(f, "content-length") == cl);
    if (f->nheaders > 0) {
        char first[64];
        const stomp_str *n0 = &f->headers[0].name;
        if (n0->len < sizeof first && !memchr(n0->p, '\0', n0->len)) {
            memcpy(first, n0->p, n0->len);
            first[n0->len] = '\0';
            CHECK(stomp_frame_header(f, first) == &f->headers[0].value);
        }
    }
    /* Without content-length the body is everything up to the first NUL. */
    if (!cl)
        CHECK(f->body.len == 0 || !memchr(f->body.p, '\0', f->body.len));
}

/* Encode f with the stomp_put_* helpers as the server would send it, parse
 * the result again: it must be one frame, consumed whole, equal to f. */
static void fuzz_check_roundtrip(stomp_version v, const stomp_frame *f)
{
    bool escape = fuzz_escapes(v, f->command);
    buf enc;
    buf_init(&enc);
    stomp_put_command(&enc, f->command);
    for (size_t i = 0; i < f->nheaders; i++) {
        const stomp_header *h = &f->headers[i];
        stomp_put_header(&enc, h->name.p, h->name.len, h->value.p, h->value.len, escape);
    }
    stomp_put_body(&enc, f->body.p, f->body.len);

    /* Escaping may lengthen lines (a raw ':' in a value becomes "\c"), so
     * the re-parse has room for that; the header count is unchanged. */
    stomp_limits big = { .max_frame = enc.len + 1, .max_headers = f->nheaders,
                         .max_header_line = enc.len };
    stomp_parser p;
    stomp_parser_init(&p, &big);
    char *copy = fuzz_dup(enc.data, enc.len);
    stomp_frame g;
    ssize_t r = stomp_parse(&p, NULL, v, copy, enc.len, &g);
    if (r < 0)
        fprintf(stderr, "fuzz_stomp: re-encoded frame rejected: %s\n", p.err ? p.err : "again");
    CHECK(r == (ssize_t)enc.len);
    CHECK(fuzz_frame_same(f, &g));
    free(copy);
    stomp_parser_deinit(&p);
    buf_deinit(&enc);
}

static void fuzz_check_clone(const stomp_frame *f)
{
    stomp_frame *c = stomp_frame_clone(f);
    CHECK(fuzz_frame_same(f, c));
    CHECK(c->body.p[c->body.len] == '\0');
    CHECK(stomp_frame_footprint(c) == stomp_frame_footprint(f));
    stomp_frame_free(c);
}

static bool fuzz_has(const stomp_str *s, char c)
{
    return s->len && memchr(s->p, c, s->len);
}

/* f's headers as the server would write them in a MESSAGE (1.2 escapes),
 * rewritten for 1.1 and 1.0 by stomp_transcode_headers: the result parses
 * by that version's own rules, holds exactly the headers the version can
 * carry (docs/protocol.md), in order and byte for byte, and the body is
 * unchanged. */
static void fuzz_check_transcode(const stomp_frame *f)
{
    buf enc;
    buf_init(&enc);
    for (size_t i = 0; i < f->nheaders; i++) {
        const stomp_header *h = &f->headers[i];
        stomp_put_header(&enc, h->name.p, h->name.len, h->value.p, h->value.len, true);
    }
    stomp_put_body(&enc, f->body.p, f->body.len);
    for (int k = 0; k < 2; k++) {
        stomp_version v = k ? STOMP_V10 : STOMP_V11;
        buf out;
        buf_init(&out);
        stomp_put_command(&out, STOMP_CMD_MESSAGE);
        size_t omitted = 0;
        size_t used = stomp_transcode_headers(&out, v, enc.data, enc.len, &omitted);
        CHECK(used <= enc.len);
        buf_append(&out, enc.data + used, enc.len - used);

        stomp_limits big = { .max_frame = out.len + 1, .max_headers = f->nheaders + 1,
                             .max_header_line = out.len };
        stomp_parser p;
        stomp_parser_init(&p, &big);
        char *copy = fuzz_dup(out.data, out.len);
        stomp_frame g;
        ssize_t r = stomp_parse(&p, NULL, v, copy, out.len, &g);
        if (r < 0)
            fprintf(stderr, "fuzz_stomp: transcoded frame rejected: %s\n", p.err ? p.err : "again");
        CHECK(r == (ssize_t)out.len);
        size_t j = 0;
        for (size_t i = 0; i < f->nheaders; i++) {
            const stomp_header *h = &f->headers[i];
            bool cr = fuzz_has(&h->name, '\r') || fuzz_has(&h->value, '\r');
            bool lf = fuzz_has(&h->name, '\n') || fuzz_has(&h->value, '\n');
            if (cr || (v == STOMP_V10 && (lf || fuzz_has(&h->name, ':'))))
                continue;
            CHECK(j < g.nheaders);
            CHECK(fuzz_str_same(&h->name, &g.headers[j].name));
            CHECK(fuzz_str_same(&h->value, &g.headers[j].value));
            j++;
        }
        CHECK(j == g.nheaders && omitted == f->nheaders - j);
        CHECK(fuzz_str_same(&f->body, &g.body));
        free(copy);
        stomp_parser_deinit(&p);
        buf_deinit(&out);
    }
    buf_deinit(&enc);
}

/* A length-prefixed transcript, so distinct events never print alike. */
static void fuzz_put_str(buf *t, const char *p, size_t n)
{
    buf_append_u64(t, n);
    buf_append_char(t, ':');
    buf_append(t, p, n);
}

typedef struct fuzz_run {
    stomp_parser parser;
    stomp_scan scan;         /* carried between calls, as session.c does */
    stomp_version version;
    buf transcript;
    bool last_hb;
    bool failed;
    size_t calls;            /* stomp_parse calls */
} fuzz_run;

/* Parse frames out of data[0..n) until it runs out or the parser says
 * "again" or "bad". Returns the bytes consumed. */
static size_t fuzz_parse_all(fuzz_run *run, char *data, size_t n)
{
    size_t off = 0;
    while (off < n) {
        stomp_frame f;
        run->parser.err = NULL;
        ssize_t r = stomp_parse(&run->parser, &run->scan, run->version, data + off, n - off, &f);
        run->calls++;
        if (r == STOMP_AGAIN)
            break;
        CHECK(run->scan.phase == 0 && run->scan.pos == 0);
        if (r == STOMP_BAD) {
            CHECK(run->parser.err && run->parser.err[0]);
            buf_append_str(&run->transcript, "ERR ");
            buf_append_str(&run->transcript, run->parser.err);
            buf_append_char(&run->transcript, '\n');
            run->failed = true;
            break;
        }
        CHECK(r > 0);
        fuzz_check_frame(&run->parser, data + off, n - off, r, &f);
        off += (size_t)r;
        if (f.command == STOMP_CMD_NONE) {
            /* A run of heart-beats may come back in pieces when split. */
            if (!run->last_hb)
                buf_append_str(&run->transcript, "HB\n");
            run->last_hb = true;
            continue;
        }
        run->last_hb = false;
        buf *t = &run->transcript;
        buf_append_str(t, stomp_command_name(f.command));
        for (size_t i = 0; i < f.nheaders; i++) {
            buf_append_char(t, ' ');
            fuzz_put_str(t, f.headers[i].name.p, f.headers[i].name.len);
            buf_append_char(t, '=');
            fuzz_put_str(t, f.headers[i].value.p, f.headers[i].value.len);
        }
        buf_append_str(t, " body=");
        fuzz_put_str(t, f.body.p, f.body.len);
        buf_append_char(t, '\n');
        fuzz_check_clone(&f);
        fuzz_check_roundtrip(run->version, &f);
        fuzz_check_transcode(&f);
    }
    return off;
}

static void fuzz_run_init(fuzz_run *run, stomp_version v, const stomp_limits *lim)
{
    stomp_parser_init(&run->parser, lim);
    memset(&run->scan, 0, sizeof run->scan);
    run->calls = 0;
    run->version = v;
    buf_init(&run->transcript);
    run->last_hb = false;
    run->failed = false;
}

static void fuzz_run_deinit(fuzz_run *run)
{
    stomp_parser_deinit(&run->parser);
    buf_deinit(&run->transcript);
}

/* The stream in one receive. */
static void fuzz_whole(fuzz_run *run, const uint8_t *in, size_t n)
{
    char *data = fuzz_dup(in, n);
    size_t off = fuzz_parse_all(run, data, n);
    if (!run->failed && off < n)
        buf_append_str(&run->transcript, "PARTIAL\n");
    free(data);
}

static uint32_t fuzz_next(uint32_t *s)
{
    /* xorshift32; the state is never 0. */
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* The stream in chunks, buffered exactly as session_feed does; chunks of
 * 1 to max_chunk bytes (1: byte by byte). */
static void fuzz_split(fuzz_run *run, const uint8_t *in, size_t n, uint8_t seed, size_t max_chunk)
{
    uint32_t state = 0x9e3779b9u ^ seed;
    buf rx;
    buf_init(&rx);
    for (size_t at = 0; at < n && !run->failed;) {
        size_t take = 1 + fuzz_next(&state) % max_chunk;
        if (take > n - at)
            take = n - at;
        char *chunk = fuzz_dup(in + at, take);   /* the receive buffer */
        at += take;

        char *data = chunk;
        size_t len = take;
        if (rx.len) {
            buf_append(&rx, chunk, take);
            data = rx.data;
            len = rx.len;
        }
        size_t off = fuzz_parse_all(run, data, len);
        CHECK(off <= len);
        if (run->failed || off == len)
            buf_clear(&rx);
        else if (data == rx.data)
            buf_consume(&rx, off);
        else
            buf_append(&rx, data + off, len - off);
        free(chunk);
    }
    if (!run->failed && rx.len)
        buf_append_str(&run->transcript, "PARTIAL\n");
    buf_deinit(&rx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const stomp_version versions[4] = { STOMP_V10, STOMP_V11, STOMP_V12, STOMP_V12 };
    stomp_version v = versions[data[0] & 3];
    const stomp_limits *lim = (data[0] & 4) ? &fuzz_small_limits : &fuzz_server_limits;
    uint8_t seed = data[1];
    data += 2;
    size -= 2;

    fuzz_run whole, split, bytes;
    fuzz_run_init(&whole, v, lim);
    fuzz_run_init(&split, v, lim);
    fuzz_run_init(&bytes, v, lim);
    fuzz_whole(&whole, data, size);
    fuzz_split(&split, data, size, seed, 1 + seed % 64);
    fuzz_split(&bytes, data, size, seed, 1);

    const fuzz_run *runs[] = { &split, &bytes };
    const char *names[] = { "split", "bytes" };
    const buf *a = &whole.transcript;
    for (size_t i = 0; i < 2; i++) {
        const buf *b = &runs[i]->transcript;
        bool same = a->len == b->len && (a->len == 0 || !memcmp(a->data, b->data, a->len));
        if (!same)
            fprintf(stderr, "fuzz_stomp: whole and %s feeds disagree\n--- whole:\n%.*s"
                            "--- %s:\n%.*s---\n", names[i],
                    (int)a->len, a->data ? a->data : "", names[i], (int)b->len,
                    b->data ? b->data : "");
        CHECK(same);
        /* Linear: each byte examined a bounded number of times (scan,
         * decode, a content-length value once more), plus a bounded amount
         * per call (a partial command line is matched again: <= 12 bytes). */
        CHECK(runs[i]->parser.examined <= 5 * size + 16 * runs[i]->calls);
    }
    fuzz_run_deinit(&whole);
    fuzz_run_deinit(&split);
    fuzz_run_deinit(&bytes);
    return 0;
}
