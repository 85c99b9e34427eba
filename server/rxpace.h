/* rxpace.h — pace the reads of a connection that drips a frame in tiny pieces.
 *
 * lws reads a connection whenever epoll reports it readable, and hands each
 * WebSocket frame (or the part of one that a read brought) to the session.
 * A peer that sends a frame one byte at a time — 1-byte WebSocket frames, or
 * one WebSocket message in 1-byte TCP segments — makes the server wake,
 * read a few bytes and dispatch them once per byte it sends: microseconds of
 * kernel and lws work per byte, most of a second of CPU for a 240 KB frame
 * even though the STOMP parser itself is linear.
 *
 * Once a frame has arrived in more than `limit` small pieces (under a
 * quarter of a full read) and the peer's TCP segments since the first of
 * them carried under 64 bytes on average (TCP_INFO), the socket's low-water
 * mark (SO_RCVLOWAT) is raised to 4 KiB (or one full read,
 * websocket.rx_buffer, when that is larger): the kernel then reports the
 * connection readable only when that much is queued, so a wakeup reads
 * several full buffers and the kernel has merged the tiny segments first.
 * The mark goes back to 1 when the frame completes and at every tick (the
 * session's timer), so the last bytes of a frame wait at most one tick; a
 * frame still dripping raises it again after `limit` more small pieces.
 * Clients that write whole messages fill their segments and are never
 * paced, however their frames are cut into pieces on the way in.
 *
 * The state lives with the session's partial frame and costs idle
 * connections nothing.
 */
#ifndef LECTERN_RXPACE_H
#define LECTERN_RXPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rxpace {
    uint32_t small;          /* small pieces since the last verdict */
    uint32_t bytes, segs;    /* TCP counters at the first of those pieces, modulo
                              * 2^32 (their differences are what counts) */
    bool raised;             /* SO_RCVLOWAT is above 1 */
} rxpace;

/* A piece of `len` bytes of a frame that is still incomplete arrived on the
 * socket fd; `full` is a full read (websocket.rx_buffer), `limit` the small
 * pieces between two looks at the peer's segments (stomp.drip_pieces; 0:
 * never pace). Returns true when this call raised the low-water mark. */
bool rxpace_piece(rxpace *rp, int fd, size_t len, size_t full, uint32_t limit);

/* Wake on every byte again (a tick, or the frame ended). */
void rxpace_reset(rxpace *rp, int fd);

#endif
