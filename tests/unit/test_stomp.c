/* test_stomp.c — unit tests for the STOMP codec (server/stomp.c).
 *
 * Every case is a byte stream and the transcript the parser must produce for
 * it: one line per event (a frame with its headers and body, a run of
 * heart-beats, an error with its reason, a trailing partial frame). Each
 * stream is fed whole, byte by byte and in 3- and 7-byte chunks, the way a
 * session feeds it (a stomp_scan carried between calls), and byte by byte
 * without a scan state (every call scans from the frame's start); all
 * transcripts must equal the expected one, so a split anywhere in a frame
 * can never change what the parser decides.
 *
 * Linearity: the parser counts the bytes it looks at (p.examined). The
 * worst legal CONNECT (60 header lines of 4,000 bytes, ~240 KB) fed one
 * byte at a time must cost a small constant times its length, the same as
 * when fed whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "stomp.h"

static const stomp_limits default_limits = {
    .max_frame = 256, .max_headers = 8, .max_header_line = 64,
};

/* Render bytes readably: printable ASCII as is, the rest as \xNN. */
static void put_visible(buf *out, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '|')
            buf_append_char(out, (char)c);
        else
            buf_printf(out, "\\x%02x", c);
    }
}

/* Feed `n` bytes of `in` in chunks of `chunk` (0 = whole) into an
 * accumulating buffer, parsing after each chunk as a session does: with a
 * scan state kept between calls, or (stateless) without one. */
static char *transcript_x(const char *in, size_t n, size_t chunk, stomp_version v,
                          const stomp_limits *lim, bool stateless)
{
    stomp_parser p;
    stomp_scan st = { 0 };
    buf acc, out;
    bool last_hb = false, failed = false;

    stomp_parser_init(&p, lim);
    buf_init(&acc);
    buf_init(&out);
    if (chunk == 0)
        chunk = n ? n : 1;
    for (size_t off = 0; off < n && !failed; off += chunk) {
        size_t take = n - off < chunk ? n - off : chunk;
        buf_append(&acc, in + off, take);
        for (;;) {
            stomp_frame f;
            ssize_t r = stomp_parse(&p, stateless ? NULL : &st, v, acc.data, acc.len, &f);
            if (r == STOMP_AGAIN)
                break;
            /* Every verdict but "again" leaves the state at a frame boundary. */
            assert_true(st.phase == 0 && st.pos == 0);
            if (r == STOMP_BAD) {
                buf_printf(&out, "ERR %s\n", p.err);
                failed = true;
                break;
            }
            assert_true(r > 0 && (size_t)r <= acc.len);
            if (f.command == STOMP_CMD_NONE) {
                if (!last_hb)
                    buf_append_str(&out, "HB\n");
                last_hb = true;
            } else {
                last_hb = false;
                buf_append_str(&out, stomp_command_name(f.command));
                for (size_t i = 0; i < f.nheaders; i++) {
                    buf_append_char(&out, '|');
                    put_visible(&out, f.headers[i].name.p, f.headers[i].name.len);
                    buf_append_char(&out, '=');
                    put_visible(&out, f.headers[i].value.p, f.headers[i].value.len);
                }
                buf_append_str(&out, "|body=");
                put_visible(&out, f.body.p, f.body.len);
                assert_int_equal(f.body.p[f.body.len], '\0');
                buf_append_char(&out, '\n');
            }
            buf_consume(&acc, (size_t)r);
        }
    }
    if (!failed && acc.len)
        buf_append_str(&out, "PARTIAL\n");
    stomp_parser_deinit(&p);
    buf_deinit(&acc);
    if (!out.data)
        buf_append_str(&out, "");
    return buf_detach(&out, NULL);
}

static char *transcript(const char *in, size_t n, size_t chunk, stomp_version v,
                        const stomp_limits *lim)
{
    return transcript_x(in, n, chunk, v, lim, false);
}

typedef struct parse_case {
    const char *name;
    const char *in;
    size_t len;              /* 0: strlen(in) */
    stomp_version version;   /* 0: 1.2 */
    const stomp_limits *lim; /* NULL: default_limits */
    const char *want;
} parse_case;

#define L(s) s, sizeof(s) - 1

static const stomp_limits tiny_frame = { .max_frame = 32, .max_headers = 8, .max_header_line = 64 };
static const stomp_limits two_headers = { .max_frame = 256, .max_headers = 2, .max_header_line = 64 };
static const stomp_limits short_lines = { .max_frame = 256, .max_headers = 8, .max_header_line = 10 };

static const parse_case cases[] = {
    { "simple SEND with a body", L("SEND\ndestination:/topic/a\n\nhello\0"), 0, NULL,
      "SEND|destination=/topic/a|body=hello\n" },
    { "CRLF line endings everywhere", L("SEND\r\ndestination:/topic/a\r\nx:y\r\n\r\nhi\0"), 0, NULL,
      "SEND|destination=/topic/a|x=y|body=hi\n" },
    { "frame without headers or body", L("DISCONNECT\n\n\0"), 0, NULL,
      "DISCONNECT|body=\n" },
    { "empty header value is allowed", L("SEND\ndestination:/topic/a\nempty:\n\n\0"), 0, NULL,
      "SEND|destination=/topic/a|empty=|body=\n" },
    { "the first ':' splits; later colons belong to the value", L("SEND\na:b:c\n\n\0"), 0, NULL,
      "SEND|a=b:c|body=\n" },
    { "header whitespace is kept (no trimming in 1.2)", L("SEND\n a : b \n\n\0"), 0, NULL,
      "SEND| a = b |body=\n" },
    { "1.2 escapes \\r \\n \\c \\\\ are decoded in names and values",
      L("SEND\nk\\cey:a\\rb\\nc\\cd\\\\e\n\n\0"), 0, NULL,
      "SEND|k:ey=a\\x0db\\x0ac:d\\x5ce|body=\n" },
    { "1.1 does not define \\r", L("SEND\nk:a\\rb\n\n\0"), STOMP_V11, NULL,
      "ERR invalid escape sequence in header\n" },
    { "1.1 decodes \\n \\c \\\\", L("SEND\nk:a\\nb\\cc\\\\\n\n\0"), STOMP_V11, NULL,
      "SEND|k=a\\x0ab:c\\x5c|body=\n" },
    { "1.0 has no escapes: backslashes are literal", L("SEND\nk:a\\tb\\\n\n\0"), STOMP_V10, NULL,
      "SEND|k=a\\x5ctb\\x5c|body=\n" },
    { "CONNECT is never unescaped", L("CONNECT\nlogin:a\\cb\\q\n\n\0"), 0, NULL,
      "CONNECT|login=a\\x5ccb\\x5cq|body=\n" },
    { "STOMP is never unescaped", L("STOMP\npasscode:p\\\\\n\n\0"), 0, NULL,
      "STOMP|passcode=p\\x5c\\x5c|body=\n" },
    { "CONNECTED is never unescaped", L("CONNECTED\nserver:x\\y\n\n\0"), 0, NULL,
      "CONNECTED|server=x\\x5cy|body=\n" },
    { "an undefined escape is an error", L("SEND\nk:a\\tb\n\n\0"), 0, NULL,
      "ERR invalid escape sequence in header\n" },
    { "a backslash at the end of a line is an error", L("SEND\nk:ab\\\n\n\0"), 0, NULL,
      "ERR invalid escape sequence in header\n" },
    { "repeated headers are all kept, in order", L("SEND\nk:first\nk:second\n\n\0"), 0, NULL,
      "SEND|k=first|k=second|body=\n" },
    { "content-length body may contain NUL", L("SEND\ncontent-length:5\n\na\0b\0c\0"), 0, NULL,
      "SEND|content-length=5|body=a\\x00b\\x00c\n" },
    { "content-length 0 with an immediate NUL", L("SEND\ncontent-length:0\n\n\0"), 0, NULL,
      "SEND|content-length=0|body=\n" },
    { "the first content-length wins", L("SEND\ncontent-length:1\ncontent-length:3\n\nx\0"), 0, NULL,
      "SEND|content-length=1|content-length=3|body=x\n" },
    { "content-length shorter than the body (no NUL where it ends)",
      L("SEND\ncontent-length:2\n\nabc\0"), 0, NULL,
      "ERR body longer than content-length (no NUL after it)\n" },
    { "non-numeric content-length", L("SEND\ncontent-length:abc\n\n\0"), 0, NULL,
      "ERR invalid content-length\n" },
    { "negative content-length", L("SEND\ncontent-length:-1\n\n\0"), 0, NULL,
      "ERR invalid content-length\n" },
    { "content-length with a trailing space", L("SEND\ncontent-length:1 \n\nx\0"), 0, NULL,
      "ERR invalid content-length\n" },
    { "empty content-length", L("SEND\ncontent-length:\n\n\0"), 0, NULL,
      "ERR invalid content-length\n" },
    { "content-length that overflows", L("SEND\ncontent-length:99999999999999999999999\n\n\0"), 0, NULL,
      "ERR invalid content-length\n" },
    { "content-length beyond the frame limit is refused before the body arrives",
      L("SEND\ncontent-length:1000\n\n"), 0, NULL, "ERR frame too large\n" },
    { "heart-beats before, between and after frames",
      L("\n\r\n\nSEND\nk:v\n\na\0\n\r\nSEND\nk:w\n\nb\0\n\n"), 0, NULL,
      "HB\nSEND|k=v|body=a\nHB\nSEND|k=w|body=b\nHB\n" },
    { "several frames in one buffer", L("BEGIN\ntransaction:t\n\n\0COMMIT\ntransaction:t\n\n\0"), 0, NULL,
      "BEGIN|transaction=t|body=\nCOMMIT|transaction=t|body=\n" },
    { "an incomplete frame stays buffered", L("SEND\ndestination:/topic/a\n\nhel"), 0, NULL,
      "PARTIAL\n" },
    { "a lone CR between frames waits for its LF", L("\r"), 0, NULL, "PARTIAL\n" },
    { "CR not followed by LF between frames", L("\rSEND\n\n\0"), 0, NULL,
      "ERR CR not followed by LF\n" },
    { "heart-beats before a bad CR are still reported", L("\n\rX"), 0, NULL,
      "HB\nERR CR not followed by LF\n" },
    { "bare CR inside a header line", L("SEND\nk:a\rb\n\n\0"), 0, NULL,
      "ERR CR not followed by LF\n" },
    { "unknown command", L("FOO\n\n\0"), 0, NULL, "ERR unknown command\n" },
    { "commands are case-sensitive", L("send\n\n\0"), 0, NULL, "ERR unknown command\n" },
    { "a command with trailing text", L("SENDX\n\n\0"), 0, NULL, "ERR unknown command\n" },
    { "a command prefix alone is not a command", L("SEN\n\n\0"), 0, NULL, "ERR unknown command\n" },
    { "a server command prefix is accepted until it diverges", L("CONNECTE"), 0, NULL, "PARTIAL\n" },
    { "header line without a colon", L("SEND\nnocolon\n\n\0"), 0, NULL,
      "ERR header line without ':'\n" },
    { "empty header name", L("SEND\n:value\n\n\0"), 0, NULL, "ERR empty header name\n" },
    { "NUL inside a header line", L("SEND\nk:a\0b\n\n\0"), 0, NULL, "ERR NUL in header line\n" },
    { "body on a frame that must not have one", L("SUBSCRIBE\nid:1\n\nbody\0"), 0, NULL,
      "ERR this frame must not have a body\n" },
    { "too many headers", L("SEND\na:1\nb:2\nc:3\n\n\0"), 0, &two_headers, "ERR too many headers\n" },
    { "exactly the header limit is fine", L("SEND\na:1\nb:2\n\n\0"), 0, &two_headers,
      "SEND|a=1|b=2|body=\n" },
    { "header line too long", L("SEND\nkey:0123456789\n\n\0"), 0, &short_lines,
      "ERR header line too long\n" },
    { "header line too long is caught before its end arrives", L("SEND\nkey:0123456789"), 0,
      &short_lines, "ERR header line too long\n" },
    { "a header line at the limit is fine (CR not counted)", L("SEND\nkey:012345\r\n\n\0"), 0,
      &short_lines, "SEND|key=012345|body=\n" },
    { "frame of exactly max_frame bytes", L("SEND\nk:v\n\n012345678901234567890\0"), 0, &tiny_frame,
      "SEND|k=v|body=012345678901234567890\n" },
    { "frame one byte over max_frame", L("SEND\nk:v\n\n0123456789012345678901\0"), 0, &tiny_frame,
      "ERR frame too large\n" },
    { "an unterminated body is refused once it reaches max_frame",
      L("SEND\nk:v\n\n0123456789012345678901234567890123456789"), 0, &tiny_frame,
      "ERR frame too large\n" },
    { "content-length frame over max_frame", L("SEND\ncontent-length:30\n\n"), 0, &tiny_frame,
      "ERR frame too large\n" },
    { "endless headers hit the frame limit", L("SEND\na:1\na:1\na:1\na:1\na:1\na:1\na:1\na:1\n"),
      0, &tiny_frame, "ERR frame too large\n" },
    { "a backslash before the CRLF is an invalid escape", L("SEND\r\nk:ab\\\r\n\r\n\0"), 0, NULL,
      "ERR invalid escape sequence in header\n" },
    { "a backslash before a bare CR is an invalid escape", L("SEND\nk:a\\\rb\n\n\0"), 0, NULL,
      "ERR invalid escape sequence in header\n" },
    { "CR CR LF: the first CR is a bare one", L("SEND\nk:a\r\r\n\n\0"), 0, NULL,
      "ERR CR not followed by LF\n" },
    { "the first fault in a line wins (CR before NUL)", L("SEND\nk:\rx\0\n\n\0"), 0, NULL,
      "ERR CR not followed by LF\n" },
    { "the first fault in a line wins (NUL before a bad escape)", L("SEND\nk:\0\\t\n\n\0"), 0, NULL,
      "ERR NUL in header line\n" },
    { "too long beats a fault earlier in the line", L("SEND\nk:\0" "0123456789\n\n\0"), 0, &short_lines,
      "ERR header line too long\n" },
    { "too many headers beats a fault in the extra line", L("SEND\na:1\nb:2\nc\0\n\n\0"), 0,
      &two_headers, "ERR too many headers\n" },
    { "a bad content-length is reported after the later lines' own faults",
      L("SEND\ncontent-length:x\nnocolon\n\n\0"), 0, NULL, "ERR header line without ':'\n" },
    { "a bare CR counts toward the line length", L("SEND\nkey:012345\rX\n\n\0"), 0, &short_lines,
      "ERR header line too long\n" },
    { "a bare CR within the line length is a CR fault", L("SEND\nkey:0123\rX\n\n\0"), 0, &short_lines,
      "ERR CR not followed by LF\n" },
    { "content-length with CRLF lines", L("SEND\r\ncontent-length:2\r\n\r\nab\0"), 0, NULL,
      "SEND|content-length=2|body=ab\n" },
    { "an escaped colon opens a name; the raw ':' still splits", L("SEND\n\\cx:y:z\n\n\0"), 0, NULL,
      "SEND|:x=y:z|body=\n" },
    { "a colon first in a line after other lines is an empty name", L("SEND\na:1\n:v\n\n\0"), 0, NULL,
      "ERR empty header name\n" },
    { "escapes stay undecoded in 1.0 even before CR LF", L("SEND\r\nk:a\\\r\n\r\n\0"), STOMP_V10, NULL,
      "SEND|k=a\\x5c|body=\n" },
    { "UTF-8 in header values passes through", L("SEND\nname:Zo\xc3\xab\n\n\0"), 0, NULL,
      "SEND|name=Zo\\xc3\\xab|body=\n" },
    { "server frames parse too (for clients and tests)",
      L("MESSAGE\nsubscription:0\nmessage-id:1-0\ndestination:/topic/a\ncontent-length:2\n\nhi\0"
        "RECEIPT\nreceipt-id:7\n\n\0ERROR\nmessage:bad\n\noops\0"), 0, NULL,
      "MESSAGE|subscription=0|message-id=1-0|destination=/topic/a|content-length=2|body=hi\n"
      "RECEIPT|receipt-id=7|body=\nERROR|message=bad|body=oops\n" },
};

static void test_parse_cases(void **state)
{
    (void)state;
    size_t chunks[] = { 0, 1, 3, 7 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const parse_case *c = &cases[i];
        stomp_version v = c->version ? c->version : STOMP_V12;
        const stomp_limits *lim = c->lim ? c->lim : &default_limits;
        for (size_t k = 0; k <= sizeof chunks / sizeof chunks[0]; k++) {
            /* The last round: byte by byte without a scan state. */
            bool stateless = k == sizeof chunks / sizeof chunks[0];
            size_t chunk = stateless ? 1 : chunks[k];
            char *got = transcript_x(c->in, c->len, chunk, v, lim, stateless);
            bool bad = strcmp(got, c->want) != 0;
            if (bad)
                print_error("case \"%s\" (chunk %zu%s):\n  want: %s  got:  %s", c->name,
                            chunk, stateless ? ", stateless" : "", c->want, got);
            free(got);
            if (bad)
                fail();
        }
    }
}

/* Feeding garbage must always end in an error or a partial frame, never a
 * crash or an out-of-bounds read (ASan watches). */
static void test_parse_random_bytes_never_crash(void **state)
{
    (void)state;
    unsigned seed = 12345;
    char data[300];
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(rand_r(&seed) % sizeof data);
        static const char alphabet[] = "SEND\nCONNECT:\\nrc\r\0a-content-length:9";
        for (size_t i = 0; i < n; i++)
            data[i] = alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
        char *whole = transcript(data, n, 0, STOMP_V12, &default_limits);
        char *bytes = transcript(data, n, 1, STOMP_V12, &default_limits);
        char *fives = transcript(data, n, 5, STOMP_V12, &default_limits);
        char *rescan = transcript_x(data, n, 1, STOMP_V12, &default_limits, true);
        assert_string_equal(whole, bytes);
        assert_string_equal(whole, fives);
        assert_string_equal(whole, rescan);
        free(whole);
        free(bytes);
        free(fives);
        free(rescan);
    }
}

/* AGAIN and BAD must leave the buffer untouched: re-feeding is safe. */
static void test_parse_does_not_mutate_incomplete_frames(void **state)
{
    (void)state;
    stomp_parser p;
    stomp_parser_init(&p, &default_limits);
    char in[] = "SEND\nk:a\\nb\n\nbody";
    char copy[64];
    memcpy(copy, in, sizeof in);
    stomp_frame f;
    assert_int_equal(stomp_parse(&p, NULL, STOMP_V12, in, strlen(in), &f), STOMP_AGAIN);
    assert_memory_equal(in, copy, sizeof in);
    char bad[] = "SEND\nk:a\\nb\nbroken\n\n\0";
    memcpy(copy, bad, sizeof bad);
    assert_int_equal(stomp_parse(&p, NULL, STOMP_V12, bad, sizeof bad - 1, &f), STOMP_BAD);
    assert_memory_equal(bad, copy, sizeof bad);
    stomp_parser_deinit(&p);
}

static void test_header_lookup_first_wins(void **state)
{
    (void)state;
    stomp_parser p;
    stomp_parser_init(&p, &default_limits);
    char in[] = "SEND\ndestination:/topic/a\nx:1\nx:2\n\n\0";
    stomp_frame f;
    assert_true(stomp_parse(&p, NULL, STOMP_V12, in, sizeof in - 1, &f) > 0);
    const stomp_str *x = stomp_frame_header(&f, "x");
    assert_non_null(x);
    assert_true(stomp_str_eq(x, "1"));
    assert_null(stomp_frame_header(&f, "missing"));
    assert_null(stomp_frame_header(&f, "X"));   /* names are case-sensitive */
    stomp_parser_deinit(&p);
}

static void test_escape_round_trip(void **state)
{
    (void)state;
    const char raw[] = "a:b\\c\nd\re";
    size_t el = stomp_escaped_len(raw, strlen(raw));
    assert_int_equal(el, strlen("a\\cb\\\\c\\nd\\re"));
    char esc[64];
    char *end = stomp_escape(esc, raw, strlen(raw));
    assert_int_equal((size_t)(end - esc), el);
    assert_memory_equal(esc, "a\\cb\\\\c\\nd\\re", el);

    /* Encode a frame with that header value and parse it back. */
    buf b;
    buf_init(&b);
    stomp_put_command(&b, STOMP_CMD_MESSAGE);
    stomp_put_header_str(&b, "k:ey", raw, true);
    stomp_put_body(&b, "xy", 2);
    stomp_parser p;
    stomp_parser_init(&p, &default_limits);
    stomp_frame f;
    assert_int_equal(stomp_parse(&p, NULL, STOMP_V12, b.data, b.len, &f), (ssize_t)b.len);
    assert_int_equal(f.nheaders, 1);
    assert_true(stomp_str_eq(&f.headers[0].name, "k:ey"));
    assert_int_equal(f.headers[0].value.len, strlen(raw));
    assert_memory_equal(f.headers[0].value.p, raw, strlen(raw));
    stomp_parser_deinit(&p);
    buf_deinit(&b);
}

static void test_unescaped_encoding_for_connected(void **state)
{
    (void)state;
    buf b;
    buf_init(&b);
    stomp_put_command(&b, STOMP_CMD_CONNECTED);
    stomp_put_header_str(&b, "server", "Lectern/1:a", false);
    stomp_put_body(&b, "", 0);
    assert_string_equal(b.data, "CONNECTED\nserver:Lectern/1:a\n\n");
    assert_int_equal(b.len, strlen("CONNECTED\nserver:Lectern/1:a\n\n") + 1);
    buf_deinit(&b);
}

static void test_clone_is_deep(void **state)
{
    (void)state;
    stomp_parser p;
    stomp_parser_init(&p, &default_limits);
    char in[] = "SEND\ndestination:/topic/a\ncontent-length:3\n\na\0b\0";
    stomp_frame f;
    assert_true(stomp_parse(&p, NULL, STOMP_V12, in, sizeof in - 1, &f) > 0);
    stomp_frame *c = stomp_frame_clone(&f);
    memset(in, 'z', sizeof in);          /* the original buffer goes away */
    assert_int_equal(c->command, STOMP_CMD_SEND);
    assert_int_equal(c->nheaders, 2);
    assert_true(stomp_str_eq(stomp_frame_header(c, "destination"), "/topic/a"));
    assert_int_equal(c->body.len, 3);
    assert_memory_equal(c->body.p, "a\0b", 3);
    assert_int_equal(c->body.p[3], '\0');
    stomp_frame_free(c);
    stomp_frame_free(NULL);
    stomp_parser_deinit(&p);
}

/* The worst legal CONNECT under the server's default limits: 60 header
 * lines of exactly 4,000 bytes. */
static void big_connect(buf *b, size_t lines)
{
    buf_append_str(b, "CONNECT\naccept-version:1.2\nhost:/\n");
    for (size_t i = 0; i < lines; i++) {
        size_t start = b->len;
        buf_printf(b, "x-pad-%02zu:", i);
        while (b->len - start < 4000)
            buf_append_char(b, 'v');
        buf_append_char(b, '\n');
    }
    buf_append(b, "\n", 2);     /* the blank line and the NUL */
}

/* Feed in[0..n) one byte at a time, as a session holding the partial frame
 * does; returns the bytes the parser examined and checks the frame. */
static size_t drip(const char *in, size_t n, const stomp_limits *lim, bool stateless,
                   size_t want_headers)
{
    stomp_parser p;
    stomp_scan st = { 0 };
    buf acc;
    stomp_parser_init(&p, lim);
    buf_init(&acc);
    ssize_t r = STOMP_AGAIN;
    stomp_frame f;
    for (size_t i = 0; i < n; i++) {
        buf_append(&acc, in + i, 1);
        r = stomp_parse(&p, stateless ? NULL : &st, STOMP_V12, acc.data, acc.len, &f);
        if (r != STOMP_AGAIN)
            break;
    }
    assert_int_equal(r, (ssize_t)n);
    assert_int_equal(f.command, STOMP_CMD_CONNECT);
    assert_int_equal(f.nheaders, want_headers);
    size_t examined = p.examined;
    stomp_parser_deinit(&p);
    buf_deinit(&acc);
    return examined;
}

static void test_drip_is_linear(void **state)
{
    (void)state;
    static const stomp_limits server = {     /* server/config.c defaults */
        .max_frame = 256 << 10, .max_headers = 64, .max_header_line = 4 << 10,
    };
    buf b;
    buf_init(&b);
    big_connect(&b, 60);
    assert_true(b.len > 240000 && b.len <= server.max_frame);

    /* Whole: one call. */
    stomp_parser p;
    stomp_parser_init(&p, &server);
    char *copy = malloc(b.len);
    memcpy(copy, b.data, b.len);
    stomp_frame f;
    assert_int_equal(stomp_parse(&p, NULL, STOMP_V12, copy, b.len, &f), (ssize_t)b.len);
    size_t whole = p.examined;
    stomp_parser_deinit(&p);
    free(copy);

    /* One byte per call: every call adds a bounded amount of work. */
    size_t dripped = drip(b.data, b.len, &server, false, 62);
    print_message("240 KB CONNECT: %zu bytes, examined %zu whole, %zu dripped byte by byte\n",
                  b.len, whole, dripped);
    assert_true(whole <= 3 * b.len);
    assert_true(dripped <= 3 * b.len);

    /* The measure can fail: without the scan state the same drip re-scans
     * the growing prefix (quadratic). A 4-line frame already shows it. */
    buf small;
    buf_init(&small);
    big_connect(&small, 4);
    size_t rescanned = drip(small.data, small.len, &server, true, 6);
    assert_true(rescanned > 100 * small.len);
    buf_deinit(&small);
    buf_deinit(&b);
}

/* --- per-version transcoding (stomp_transcode_headers) --------------------- */

typedef struct transcode_case {
    const char *name;
    const char *in;          /* 1.2 header lines, blank line, body */
    const char *v11, *v10;   /* the header part for 1.1 and 1.0 */
    size_t drop11, drop10;
} transcode_case;

static const transcode_case transcode_cases[] = {
    { "plain headers are the same in every version",
      "destination:/topic/a\nmessage-id:1-0\ncontent-length:2\n\nhi",
      "destination:/topic/a\nmessage-id:1-0\ncontent-length:2\n\n",
      "destination:/topic/a\nmessage-id:1-0\ncontent-length:2\n\n", 0, 0 },
    { "a CR in a value: omitted for 1.1 and 1.0",
      "a:1\nx:a\\rb\nb:2\n\n", "a:1\nb:2\n\n", "a:1\nb:2\n\n", 1, 1 },
    { "a CR in a name: omitted for 1.1 and 1.0", "k\\rx:v\nb:2\n\n", "b:2\n\n", "b:2\n\n", 1, 1 },
    { "LF, ':' and '\\' in a value: 1.1 keeps the escapes, 1.0 writes them raw, except LF",
      "x-lf:a\\nb\nx-colon:a\\cb\nx-back:a\\\\b\n\n",
      "x-lf:a\\nb\nx-colon:a\\cb\nx-back:a\\\\b\n\n",
      "x-colon:a:b\nx-back:a\\b\n\n", 0, 1 },
    { "':' in a name: 1.1 keeps \\c, 1.0 omits the header", "x\\cy:v\n\n", "x\\cy:v\n\n", "\n", 0, 1 },
    { "a backslash in a name is written raw for 1.0", "x\\\\y:v\n\n", "x\\\\y:v\n\n", "x\\y:v\n\n", 0, 0 },
    { "a raw ':' later in a value stays", "k:a:b\n\n", "k:a:b\n\n", "k:a:b\n\n", 0, 0 },
    { "malformed lines (no ':', undefined escape) are omitted",
      "nocolon\nk:a\\tb\nok:1\n\n", "ok:1\n\n", "ok:1\n\n", 2, 2 },
    { "an escaped backslash before r is not a CR", "k:a\\\\rb\n\n", "k:a\\\\rb\n\n", "k:a\\rb\n\n", 0, 0 },
    { "headers without a blank line end with the input", "k:v\n", "k:v\n", "k:v\n", 0, 0 },
};

static void test_transcode_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof transcode_cases / sizeof transcode_cases[0]; i++) {
        const transcode_case *c = &transcode_cases[i];
        size_t n = strlen(c->in);
        const char *want[] = { c->v11, c->v10, NULL };
        size_t drops[] = { c->drop11, c->drop10, 0 };
        stomp_version vs[] = { STOMP_V11, STOMP_V10, STOMP_V12 };
        for (int k = 0; k < 3; k++) {
            buf out;
            buf_init(&out);
            size_t omitted = 99;
            size_t used = stomp_transcode_headers(&out, vs[k], c->in, n, &omitted);
            const char *hdrs_end = strstr(c->in, "\n\n");
            size_t want_used = hdrs_end ? (size_t)(hdrs_end - c->in) + 2 : n;
            const char *w = want[k] ? want[k] : "";
            size_t wl = want[k] ? strlen(w) : want_used;
            if (!want[k])
                w = c->in;                      /* 1.2: unchanged */
            if (used != want_used || out.len != wl || memcmp(out.data ? out.data : "", w, wl) ||
                omitted != drops[k]) {
                print_error("case \"%s\" (version %d): used %zu/%zu omitted %zu/%zu\n  want: %.*s\n  got:  %.*s\n",
                            c->name, vs[k], used, want_used, omitted, drops[k], (int)wl, w,
                            (int)out.len, out.data ? out.data : "");
                buf_deinit(&out);
                fail();
            }
            buf_deinit(&out);
        }
    }
}

/* Random headers holding CR, LF, ':' and '\', written by 1.2 rules as a
 * MESSAGE, transcoded and parsed by the older version's own rules: the
 * frame parses, every header allowed in that version is there with its
 * exact name and value, in order, and the body is untouched. */
static void test_transcode_round_trip(void **state)
{
    (void)state;
    static const char alphabet[] = "ab:\\\r\n";
    unsigned seed = 777;
    stomp_limits big = { .max_frame = 1 << 16, .max_headers = 16, .max_header_line = 1024 };
    for (int round = 0; round < 3000; round++) {
        char names[8][8], values[8][8];
        size_t nh = 1 + (size_t)(rand_r(&seed) % 8);
        buf enc;
        buf_init(&enc);
        stomp_put_command(&enc, STOMP_CMD_MESSAGE);
        size_t head = enc.len;
        for (size_t i = 0; i < nh; i++) {
            size_t nl = 1 + (size_t)(rand_r(&seed) % 7), vl = (size_t)(rand_r(&seed) % 8);
            for (size_t k = 0; k < nl; k++)
                names[i][k] = alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
            for (size_t k = 0; k < vl; k++)
                values[i][k] = alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
            names[i][nl] = values[i][vl] = '\0';
            stomp_put_header(&enc, names[i], nl, values[i], vl, true);
        }
        stomp_put_body(&enc, "b\\c\r", 4);
        for (int vi = 0; vi < 2; vi++) {
            stomp_version v = vi ? STOMP_V10 : STOMP_V11;
            buf out;
            buf_init(&out);
            stomp_put_command(&out, STOMP_CMD_MESSAGE);
            size_t omitted;
            size_t used = stomp_transcode_headers(&out, v, enc.data + head, enc.len - head, &omitted);
            buf_append(&out, enc.data + head + used, enc.len - head - used);

            stomp_parser p;
            stomp_parser_init(&p, &big);
            stomp_frame f;
            assert_int_equal(stomp_parse(&p, NULL, v, out.data, out.len, &f), (ssize_t)out.len);
            size_t j = 0;
            for (size_t i = 0; i < nh; i++) {
                bool cr = strchr(names[i], '\r') || strchr(values[i], '\r');
                bool lf = strchr(names[i], '\n') || strchr(values[i], '\n');
                bool keep = v == STOMP_V11 ? !cr : !cr && !lf && !strchr(names[i], ':');
                if (!keep)
                    continue;
                assert_true(j < f.nheaders);
                assert_true(stomp_str_eq(&f.headers[j].name, names[i]));
                assert_true(stomp_str_eq(&f.headers[j].value, values[i]));
                j++;
            }
            assert_int_equal(j, f.nheaders);
            assert_int_equal(omitted, nh - j);
            assert_int_equal(f.body.len, 4);
            assert_memory_equal(f.body.p, "b\\c\r", 4);
            stomp_parser_deinit(&p);
            buf_deinit(&out);
        }
        buf_deinit(&enc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_cases),
        cmocka_unit_test(test_parse_random_bytes_never_crash),
        cmocka_unit_test(test_drip_is_linear),
        cmocka_unit_test(test_parse_does_not_mutate_incomplete_frames),
        cmocka_unit_test(test_header_lookup_first_wins),
        cmocka_unit_test(test_escape_round_trip),
        cmocka_unit_test(test_unescaped_encoding_for_connected),
        cmocka_unit_test(test_clone_is_deep),
        cmocka_unit_test(test_transcode_cases),
        cmocka_unit_test(test_transcode_round_trip),
    };
    return cmocka_run_group_tests_name("stomp codec", tests, NULL, NULL);
}
