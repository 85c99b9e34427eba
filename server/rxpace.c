/* rxpace.c — read pacing for frames dripped in tiny pieces (see rxpace.h).
 *
 * Design. The kernel does the waiting: SO_RCVLOWAT makes epoll report a TCP
 * socket readable only once that many bytes are queued (or the peer closed),
 * and lowering it signals readiness at once if enough is already there, so
 * no timer of our own and no lws flow-control round trip are needed. Data
 * is never held back by more than one tick: the session lowers the mark on
 * each tick and whenever the frame completes.
 *
 * Who is paced. Small pieces alone do not tell a drip from a large frame:
 * lws hands a steadily arriving WebSocket message over in pieces of one
 * read and then 16 bytes, turn about. What costs the server is the peer's
 * segments: the kernel's work per segment, and a wakeup per few segments
 * while the server keeps pace. So once `limit` small pieces have come, the
 * TCP counters (TCP_INFO: bytes and segments received) decide: a peer whose
 * segments since the first of those pieces carried under RXPACE_TINY bytes
 * on average is paced; any other is left alone and looked at again after
 * `limit` more small pieces (a getsockopt per `limit` pieces).
 *
 * Invariants: `raised` is true only while the socket's SO_RCVLOWAT is above
 * 1; a failed setsockopt or getsockopt (not a TCP socket, closed) leaves
 * `raised` false, so the connection simply goes unpaced.
 */
#include "rxpace.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* The mark while paced: several reads' worth, not one. With a mark of one
 * read (measured with websocket.rx_buffer at 256 bytes) a peer writing one
 * byte per TCP segment still woke the server every 256 segments whenever the
 * server kept pace with the writer, and each such read paid the kernel's
 * per-segment cost (~0.4 us a segment): 40-120 ms for the 240 KB drip in
 * one run out of two, ~1,000 wakeups, against ~10 ms and ~85 wakeups when
 * the queue had time to grow. 4 KiB lets one-byte segments queue (and the
 * kernel merge them) before the server reads: ~10 ms and ~85 wakeups every
 * time. Much more stalls the sender instead: at 64 KiB the receive window
 * closed before the mark was reached and the drip waited for the ticks. */
#define RXPACE_LOWAT 4096

/* Segments carrying fewer bytes than this on average are a drip: a sender
 * writing whole messages fills segments (up to the MSS), one writing a byte
 * at a time does not. */
#define RXPACE_TINY 64

static bool rxpace_set(int fd, int lowat)
{
    return fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) == 0;
}

/* The connection's bytes and segments received so far, modulo 2^32;
 * false when the socket cannot say. */
static bool rxpace_counters(int fd, uint32_t *bytes, uint32_t *segs)
{
    struct tcp_info ti;
    socklen_t n = sizeof ti;
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &n) != 0 ||
        n < offsetof(struct tcp_info, tcpi_segs_in) + sizeof ti.tcpi_segs_in)
        return false;
    *bytes = (uint32_t)ti.tcpi_bytes_received;
    *segs = ti.tcpi_segs_in;
    return true;
}

bool rxpace_piece(rxpace *rp, int fd, size_t len, size_t full, uint32_t limit)
{
    if (!limit || rp->raised || len >= full / 4)
        return false;
    if (rp->small == 0 && !rxpace_counters(fd, &rp->bytes, &rp->segs))
        return false;
    if (++rp->small <= limit)
        return false;
    uint32_t bytes, segs;
    bool tiny = rxpace_counters(fd, &bytes, &segs) && segs != rp->segs &&
                (uint64_t)(uint32_t)(bytes - rp->bytes) <
                    (uint64_t)(uint32_t)(segs - rp->segs) * RXPACE_TINY;
    rp->small = 0;          /* judged again after `limit` more small pieces */
    if (!tiny)
        return false;
    size_t lowat = full > RXPACE_LOWAT ? full : RXPACE_LOWAT;
    rp->raised = rxpace_set(fd, lowat > 1 << 20 ? 1 << 20 : (int)lowat);
    return rp->raised;
}

void rxpace_reset(rxpace *rp, int fd)
{
    if (!rp->raised)
        return;
    rp->raised = false;
    rxpace_set(fd, 1);
}
