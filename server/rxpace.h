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
 * quarter of a full read), the socket's low-water mark (SO_RCVLOWAT) is
 * raised to one full read (websocket.rx_buffer): the kernel then reports the
 * connection readable only when that much is queued, so each wakeup reads a
 * full buffer. The mark goes back to 1 when the frame completes and at every
 * tick (the session's timer), so the last bytes of a frame wait at most one
 * tick; a frame still dripping raises it again with its next small piece.
 * Legitimate clients send a frame in one WebSocket message, which arrives
 * in full reads, and are never paced.
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
    uint32_t small;          /* small pieces of the current frame so far */
    bool raised;             /* SO_RCVLOWAT is above 1 */
} rxpace;

/* A piece of `len` bytes of a frame that is still incomplete arrived on the
 * socket fd; `full` is a full read (websocket.rx_buffer), `limit` the small
 * pieces allowed before pacing (stomp.drip_pieces; 0: never). Returns true
 * when this call raised the low-water mark. */
bool rxpace_piece(rxpace *rp, int fd, size_t len, size_t full, uint32_t limit);

/* Wake on every byte again (a tick, or the frame ended). */
void rxpace_reset(rxpace *rp, int fd);

#endif
