/* rxmore.h — read a busy connection again within one loop iteration.
 *
 * libwebsockets 4.1 reads at most websocket.rx_buffer bytes (plus 16) from a
 * connection each time epoll reports it readable, and the buffer it reads
 * into is allocated for the connection's whole life. A large buffer makes
 * every idle connection pay for the few that publish fast; a small one
 * starves a publisher, which gets one small read per loop iteration.
 *
 * rxmore lets the buffer stay small: connections that received data in an
 * iteration are noted, and after the iteration's I/O, one that still has
 * bytes queued in the kernel (FIONREAD) is serviced again, as if epoll had
 * reported it, up to `reads` reads per iteration in all. Idle connections
 * are never looked at; the caller says how much must be queued for a read
 * (a connection whose reads are paced waits for a full read) and does not
 * note one whose reads are paused.
 */
#ifndef LECTERN_RXMORE_H
#define LECTERN_RXMORE_H

#include <stddef.h>
#include <stdint.h>

struct lws;
struct lws_context;

typedef struct rxmore rxmore;

/* Read again, at most `reads` - 1 more times per iteration, connections of
 * ctx noted during the iteration; at most `cap` connections are noted per
 * round (the others wait for epoll, as without rxmore). Never NULL. */
rxmore *rxmore_create(struct lws_context *ctx, int reads, int cap);
/* Accepts NULL. */
void rxmore_destroy(rxmore *r);

/* wsi received data and may read more now (from LWS_CALLBACK_RECEIVE),
 * once at least `min` bytes (>= 1) are queued. */
void rxmore_note(rxmore *r, struct lws *wsi, size_t min);
/* wsi is closing: never service it again (from LWS_CALLBACK_CLOSED). */
void rxmore_forget(rxmore *r, struct lws *wsi);

/* After the iteration's I/O (a uv_check handle): service the noted
 * connections that have bytes waiting, round after round. */
void rxmore_run(rxmore *r);

/* Reads made by rxmore_run since start (the metric). */
uint64_t rxmore_reads(const rxmore *r);

#endif
