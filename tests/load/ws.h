/* ws.h — the client side of WebSocket (RFC 6455), pure: no I/O.
 *
 * The load generator speaks WebSocket itself so that tens of thousands of
 * connections cost a small struct each and one epoll loop drives them.
 * Parsers follow the project's shape: they look at the bytes so far and
 * return bytes consumed, WS_AGAIN (need more) or WS_BAD; results point into
 * the caller's buffer.
 */
#ifndef LECTERN_LOAD_WS_H
#define LECTERN_LOAD_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WS_AGAIN (-2)
#define WS_BAD   (-1)

enum { WS_CONT = 0x0, WS_TEXT = 0x1, WS_BINARY = 0x2, WS_CLOSE = 0x8, WS_PING = 0x9, WS_PONG = 0xA };

/* A fresh Sec-WebSocket-Key (24 base64 characters and a NUL) from 16 random
 * bytes. */
void ws_make_key(char key[25], uint64_t random_a, uint64_t random_b);

/* Write the upgrade request for `path` on `host` (host[:port]) offering the
 * comma-separated `protocols` (none when NULL or "") into dst; returns its
 * length, or 0 if cap is too small. */
size_t ws_request(char *dst, size_t cap, const char *host, const char *path,
                  const char *protocols, const char key[25]);

/* Look for the server's complete 101 answer in data[0..len). Returns the
 * bytes it takes (> 0) when it is a valid upgrade for `key`, WS_AGAIN when
 * the header is not complete, WS_BAD otherwise (*why says what). */
ssize_t ws_response(const char *data, size_t len, const char key[25], const char **why);

/* One frame from the server (which never masks). */
typedef struct ws_frame {
    int opcode;
    bool fin;
    unsigned char *payload;  /* points into the caller's buffer */
    size_t len;
} ws_frame;

/* Parse the frame at the start of data[0..len): bytes consumed, WS_AGAIN or
 * WS_BAD (a masked or oversized frame, reserved bits set). Frames longer
 * than max_payload are WS_BAD. */
ssize_t ws_parse(unsigned char *data, size_t len, size_t max_payload, ws_frame *f);

/* Write the header of a final, masked client frame carrying `len` bytes into
 * dst (room for 14 bytes); returns its length. The payload that follows
 * must be masked with ws_mask and the same key. */
size_t ws_header(unsigned char *dst, int opcode, size_t len, uint32_t mask);

/* XOR p[0..n) with the 4-byte key, starting at key offset 0. */
void ws_mask(unsigned char *p, size_t n, uint32_t mask);

#endif
