/* scan.h — a minimal STOMP frame scanner for the load generator (pure).
 *
 * The generator receives hundreds of thousands of frames a second and needs
 * only the command, the body and one or two headers, so instead of the
 * server's full codec (which unescapes every header into a table) it finds
 * the frame's boundaries and leaves headers as one block to search on
 * demand. Returns bytes consumed (> 0), SCAN_AGAIN or SCAN_BAD.
 */
#ifndef LECTERN_LOAD_SCAN_H
#define LECTERN_LOAD_SCAN_H

#include <stddef.h>
#include <sys/types.h>

#define SCAN_AGAIN (-2)
#define SCAN_BAD   (-1)

typedef enum scan_cmd {
    SCAN_HEARTBEAT = 0,   /* only EOLs were consumed */
    SCAN_CONNECTED, SCAN_MESSAGE, SCAN_RECEIPT, SCAN_ERROR, SCAN_OTHER
} scan_cmd;

typedef struct scan_frame {
    scan_cmd cmd;
    const char *headers;     /* the header lines, each ending in \n */
    size_t headers_len;
    const char *body;
    size_t body_len;
} scan_frame;

/* Scan the frame (or run of heart-beat EOLs) at the start of p[0..n). A
 * frame longer than max_frame is SCAN_BAD. */
ssize_t scan_frame_next(const char *p, size_t n, size_t max_frame, scan_frame *f);

/* The raw (still escaped) value of header `name` in f, or NULL; *len gets
 * its length. The first occurrence wins, as in STOMP 1.2. */
const char *scan_header(const scan_frame *f, const char *name, size_t *len);

#endif
