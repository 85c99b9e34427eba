/* rxpace.c — read pacing for frames dripped in tiny pieces (see rxpace.h).
 *
 * Design. The kernel does the waiting: SO_RCVLOWAT makes epoll report a TCP
 * socket readable only once that many bytes are queued (or the peer closed),
 * and lowering it signals readiness at once if enough is already there, so
 * no timer of our own and no lws flow-control round trip are needed. Data
 * is never held back by more than one tick: the session lowers the mark on
 * each tick and whenever the frame completes.
 *
 * Invariants: `raised` is true only while the socket's SO_RCVLOWAT is above
 * 1; a failed setsockopt (not a TCP socket, closed) leaves `raised` false,
 * so the connection simply goes unpaced.
 */
#include "rxpace.h"

#include <sys/socket.h>

static bool rxpace_set(int fd, int lowat)
{
    return fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) == 0;
}

bool rxpace_piece(rxpace *rp, int fd, size_t len, size_t full, uint32_t limit)
{
    if (!limit || rp->raised || len >= full / 4)
        return false;
    if (rp->small < UINT32_MAX)
        rp->small++;
    if (rp->small <= limit)
        return false;
    rp->raised = rxpace_set(fd, full > 1 << 20 ? 1 << 20 : (int)full);
    return rp->raised;
}

void rxpace_reset(rxpace *rp, int fd)
{
    if (!rp->raised)
        return;
    rp->raised = false;
    rxpace_set(fd, 1);
}
