/* stomp.h — STOMP 1.0/1.1/1.2 frame codec (pure: no I/O, no clocks).
 *
 * Parsing follows the picohttpparser shape: stomp_parse() looks at the bytes
 * the caller has so far and returns how many it consumed, STOMP_AGAIN when a
 * frame is not complete yet, or STOMP_BAD with a reason; a caller-held
 * stomp_scan lets the next call resume where the last one stopped. The parsed frame
 * points into the caller's buffer (header values are unescaped in place, so
 * the buffer must be writable); nothing is copied. Leading EOLs are
 * heart-beats and come back as a frame with command STOMP_CMD_NONE.
 *
 * Encoding helpers append frames to a buf, escaping header values by the
 * rules of the frame's command; stomp_transcode_headers rewrites header
 * lines encoded for 1.2 into what a 1.1 or 1.0 peer can read.
 */
#ifndef LECTERN_STOMP_H
#define LECTERN_STOMP_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STOMP_BAD   (-1)  /* malformed input; reason in parser->err */
#define STOMP_AGAIN (-2)  /* need more bytes; call again with the same prefix plus more */

typedef enum stomp_version {
    STOMP_V10 = 10,   /* no header escapes */
    STOMP_V11 = 11,   /* \n \c \\ */
    STOMP_V12 = 12    /* \r \n \c \\ */
} stomp_version;

typedef enum stomp_command {
    STOMP_CMD_NONE = 0,   /* heart-beat EOLs, no frame */
    /* client frames */
    STOMP_CMD_CONNECT, STOMP_CMD_STOMP, STOMP_CMD_SEND, STOMP_CMD_SUBSCRIBE,
    STOMP_CMD_UNSUBSCRIBE, STOMP_CMD_ACK, STOMP_CMD_NACK, STOMP_CMD_BEGIN,
    STOMP_CMD_COMMIT, STOMP_CMD_ABORT, STOMP_CMD_DISCONNECT,
    /* server frames */
    STOMP_CMD_CONNECTED, STOMP_CMD_MESSAGE, STOMP_CMD_RECEIPT, STOMP_CMD_ERROR,
    STOMP_CMD_COUNT
} stomp_command;

/* A view: len bytes at p, not NUL-terminated in general. */
typedef struct stomp_str {
    const char *p;
    size_t len;
} stomp_str;

typedef struct stomp_header {
    stomp_str name;
    stomp_str value;
} stomp_header;

typedef struct stomp_frame {
    stomp_command command;
    stomp_header *headers;   /* nheaders entries, in wire order */
    size_t nheaders;
    stomp_str body;          /* body.p[body.len] is the frame's NUL */
} stomp_frame;

typedef struct stomp_limits {
    size_t max_frame;        /* bytes from the command to the NUL, inclusive */
    size_t max_headers;      /* header lines per frame */
    size_t max_header_line;  /* bytes of one header line as sent (escaped), without EOL */
} stomp_limits;

typedef struct stomp_parser {
    stomp_limits lim;
    stomp_header *hdrs;      /* lim.max_headers slots; frames point here */
    const char *err;         /* static reason after STOMP_BAD */
    size_t examined;         /* bytes looked at so far, all calls (tests check linearity) */
} stomp_parser;

/* Largest max_frame the parser honours (stomp_scan's offsets are 32-bit). */
#define STOMP_MAX_FRAME_LIMIT ((size_t)1 << 31)

/* How far the scan of one frame has got, kept by the caller between calls
 * while the frame is incomplete. Offsets count from the frame's first byte,
 * never point into the buffer, so the caller may move or grow its buffer
 * between calls. All zero: nothing scanned yet (a frame boundary). A plain
 * value of 24 bytes; the fields are the parser's business. */
typedef struct stomp_scan {
    uint32_t pos;            /* bytes of the frame examined */
    uint32_t line;           /* start of the header line being scanned */
    uint32_t body;           /* start of the body, once the blank line is found */
    uint32_t clen;           /* the first content-length (saturated) */
    uint16_t nh;             /* complete header lines */
    uint8_t  phase;          /* start, command, headers, body */
    uint8_t  cmd;            /* stomp_command, once the command line is complete */
    uint8_t  flags;          /* line state (CR / backslash pending, ':' seen) and frame state */
    uint8_t  line_err;       /* first fault inside the current line, reported at its end */
} stomp_scan;

/* Set limits and allocate header storage. Frames returned by stomp_parse
 * borrow that storage until the next call. */
void stomp_parser_init(stomp_parser *p, const stomp_limits *lim);
void stomp_parser_deinit(stomp_parser *p);

/* Parse the first frame (or run of heart-beat EOLs) in data[0..len).
 * `version` selects the header escape rules for frames other than CONNECT,
 * STOMP and CONNECTED (which are never escaped).
 *
 * `st` (borrowed; NULL: none) carries the scan of an incomplete frame from
 * one call to the next, so that feeding a frame in n pieces costs O(frame)
 * in all rather than O(n * frame): after STOMP_AGAIN it records how far the
 * scan got, and the next call must pass the same bytes (anywhere in memory)
 * followed by more, with the same version. Every other return leaves *st
 * zeroed, ready for the next frame. Without a state each call scans from
 * the start; the results are the same.
 *
 * Returns bytes consumed (> 0) and fills *f; STOMP_AGAIN; or STOMP_BAD with
 * p->err set. On success the bytes of the frame in data may have been
 * rewritten (escapes decoded); on STOMP_AGAIN or STOMP_BAD data is untouched,
 * so feeding the same bytes again is always safe. Where the input is split
 * never changes the outcome (frames, reasons). */
ssize_t stomp_parse(stomp_parser *p, stomp_scan *st, stomp_version version, char *data,
                    size_t len, stomp_frame *f);

/* First header named `name` (a repeated header's first value wins), or NULL. */
const stomp_str *stomp_frame_header(const stomp_frame *f, const char *name);

/* Does the header value equal the C string s? */
bool stomp_str_eq(const stomp_str *s, const char *cstr);

const char *stomp_command_name(stomp_command c);

/* Deep copy: one allocation holding the header array and every byte the
 * frame points to. Free with stomp_frame_free (accepts NULL). */
stomp_frame *stomp_frame_clone(const stomp_frame *f);
void stomp_frame_free(stomp_frame *f);
/* Bytes a clone of f occupies (for accounting buffered frames). */
size_t stomp_frame_footprint(const stomp_frame *f);

/* Encoding. Header escaping is applied when `escape` is true (every frame
 * but CONNECTED, for 1.1 and 1.2 sessions). */
void stomp_put_command(buf *b, stomp_command c);
void stomp_put_header(buf *b, const char *name, size_t nlen,
                      const char *value, size_t vlen, bool escape);
void stomp_put_header_str(buf *b, const char *name, const char *value, bool escape);
/* Blank line, body bytes, NUL. */
void stomp_put_body(buf *b, const void *body, size_t len);

/* Length of s[0..n) once escaped, and the escaping itself (dst must have
 * stomp_escaped_len bytes). Returns the end of the written bytes. */
size_t stomp_escaped_len(const char *s, size_t n);
char *stomp_escape(char *dst, const char *s, size_t n);

/* Header lines the server wrote by STOMP 1.2 rules (stomp_put_header with
 * escaping), rewritten for a peer of version `to`, appended to out.
 * in[0..len) starts with "name:value" lines ended by LF; the rewriting
 * stops after the blank line that ends them (copied too). Returns the bytes
 * of `in` consumed; what follows (body, NUL) is the caller's to copy, never
 * changed. *omitted (may be NULL) gets the number of headers left out.
 *   1.2  unchanged.
 *   1.1  escapes \n \c \\ unchanged; a header whose name or value holds a CR
 *        cannot be written in 1.1 (no \r) and is omitted.
 *   1.0  no escapes: names and values are written decoded; a header whose
 *        name holds ':' or whose name or value holds LF or CR is omitted.
 * A malformed line (no ':', empty name, an undefined escape) is omitted for
 * 1.1 and 1.0. Pure: reads in, writes out. */
size_t stomp_transcode_headers(buf *out, stomp_version to, const char *in, size_t len,
                               size_t *omitted);

#endif
