/* rxmore.c — read a busy connection again within one loop iteration (rxmore.h).
 *
 * Design. Two arrays of connections: `cur`, being serviced, and `next`,
 * filled by rxmore_note while it is (a read brings data, and the connection
 * is noted for the round after). A round swaps them and services each
 * connection of `cur` that has bytes queued: a FIONREAD ioctl, then
 * lws_service_fd with POLLIN, exactly what lws's own poll callback does
 * when epoll reports the socket. Rounds stop when nothing was noted or
 * after reads - 1 of them; what is noted after the last round is dropped
 * (epoll reports those connections again next iteration, since its
 * notifications are level-triggered).
 *
 * Invariants: every pointer in `cur` or `next` is a live wsi or NULL;
 * rxmore_forget clears a closing wsi from both, so a connection closed by a
 * read (its peer hung up) is never serviced after. Both arrays are bounded
 * by `cap`: memory never depends on the number of connections.
 */
#include "rxmore.h"

#include "mem.h"

#include <libwebsockets.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>

typedef struct rxmore_entry {
    struct lws *wsi;             /* NULL: forgotten */
    size_t min;                  /* bytes that must be queued to read again */
} rxmore_entry;

struct rxmore {
    struct lws_context *ctx;
    int reads;                   /* reads per connection per iteration, epoll's included */
    int cap;                     /* entries of cur and next */
    int ncur, nnext;
    rxmore_entry *cur, *next;
    uint64_t serviced;
};

rxmore *rxmore_create(struct lws_context *ctx, int reads, int cap)
{
    rxmore *r = xcalloc(1, sizeof *r);
    r->ctx = ctx;
    r->reads = reads < 1 ? 1 : reads;
    r->cap = cap < 1 ? 1 : cap;
    r->cur = xcalloc((size_t)r->cap, sizeof *r->cur);
    r->next = xcalloc((size_t)r->cap, sizeof *r->next);
    return r;
}

void rxmore_destroy(rxmore *r)
{
    if (!r)
        return;
    free(r->cur);
    free(r->next);
    free(r);
}

void rxmore_note(rxmore *r, struct lws *wsi, size_t min)
{
    if (r->reads < 2)
        return;
    /* lws hands one read over in several RECEIVE callbacks (one per
     * WebSocket frame): note the connection once, as its last callback
     * says (pacing may have started meanwhile). */
    if (r->nnext && r->next[r->nnext - 1].wsi == wsi) {
        r->next[r->nnext - 1].min = min;
        return;
    }
    if (r->nnext == r->cap)
        return;
    r->next[r->nnext++] = (rxmore_entry){ wsi, min };
}

void rxmore_forget(rxmore *r, struct lws *wsi)
{
    for (int i = 0; i < r->ncur; i++)
        if (r->cur[i].wsi == wsi)
            r->cur[i].wsi = NULL;
    for (int i = 0; i < r->nnext; i++)
        if (r->next[i].wsi == wsi)
            r->next[i].wsi = NULL;
}

void rxmore_run(rxmore *r)
{
    for (int round = 1; round < r->reads && r->nnext; round++) {
        rxmore_entry *t = r->cur;
        r->cur = r->next;
        r->ncur = r->nnext;
        r->next = t;
        r->nnext = 0;
        for (int i = 0; i < r->ncur; i++) {
            struct lws *wsi = r->cur[i].wsi;
            if (!wsi)
                continue;
            int fd = lws_get_socket_fd(wsi), queued = 0;
            if (fd < 0 || ioctl(fd, FIONREAD, &queued) != 0 || queued <= 0 ||
                (size_t)queued < r->cur[i].min)
                continue;
            struct lws_pollfd p = { .fd = fd, .events = POLLIN, .revents = POLLIN };
            r->serviced++;
            lws_service_fd(r->ctx, &p);
        }
        r->ncur = 0;
    }
    r->nnext = 0;
}

uint64_t rxmore_reads(const rxmore *r)
{
    return r->serviced;
}
