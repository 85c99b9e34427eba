/* session.h — one STOMP connection.
 *
 * A session is created when a WebSocket is established and destroyed when
 * lws reports it closed. lws callbacks only dispatch to it:
 *
 *   RECEIVE          -> session_feed()    bytes in any split
 *   SERVER_WRITEABLE -> session_flush()   write queued frames
 *   CLOSED           -> session_destroy()
 *
 * Outgoing frames are queued as references to shared msg blocks and packed
 * into as few WebSocket messages as possible, written once per loop
 * iteration by session_list_flush() (or on SERVER_WRITEABLE when the socket
 * was full); with websocket.write_delay_ms, MESSAGEs to a connection are
 * written at most that often (session_list_write_due).
 * Every session belongs to a session_list, which the server ticks for
 * heart-beats and timeouts, and which carries what the sessions borrow of
 * the server (session_env): a session never sees the server itself.
 */
#ifndef LECTERN_SESSION_H
#define LECTERN_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "metrics.h"
#include "msg.h"
#include "ratelimit.h"
#include "status.h"
#include "stomp.h"
#include "subscriber.h"

struct lws;
struct auth;
struct moderation;
struct moderation_event;
struct presence;
struct registry;
struct relay;
struct resume_env;

typedef struct session session;
typedef struct session_list session_list;

/* What a server's sessions use of it. All borrowed: they outlive the list. */
typedef struct session_env {
    const server_config *conf;
    metrics *metrics;
    stomp_parser *parser;            /* shared: the loop is single-threaded */
    const ratelimit_rules *limits;   /* limits.send_*, limits.frame_* */
    struct relay *relay;             /* rooms: join, leave, publish */
    struct registry *registry;       /* who is online */
    struct presence *presence;       /* /presence/<room> subscriptions */
    struct status *status;           /* /status subscriptions */
    struct auth *auth;
    const struct resume_env *resume; /* x-since replays */
    struct moderation *moderation;   /* a topic SUBSCRIBE's ban check (NULL: none); control */
    struct redact *redact;           /* control frames: redact */
    const char *server_id;           /* names guests ("guest-<id>-<conn>") */
    uv_loop_t *loop;                 /* its clock (uv_now) */
} session_env;

/* env is borrowed and must outlive the list. */
session_list *session_list_create(const session_env *env);
/* Accepts NULL. The list must be empty: sessions are destroyed by lws first. */
void session_list_destroy(session_list *list);
/* Heart-beats due, dead peers, timeouts: run the checks of the sessions
 * whose next check time has come (session_timer.c); the others are not
 * visited. Call it once per tick (1/heartbeat.hz). now_ms: loop time. */
void session_list_tick(session_list *list, uint64_t now_ms);
/* Perform the closes sessions asked for. Must run outside lws callbacks
 * (the server calls it from a libuv check handle, after each poll). */
void session_list_reap(session_list *list);
/* Write the output of every session that queued some since the last call,
 * straight to its socket where the kernel takes it. Must run outside lws
 * callbacks (the server calls it from libuv prepare and check handles). */
void session_list_flush(session_list *list);
/* The loop time (ms) at which output waiting for websocket.write_delay_ms
 * is next due, or 0 when none waits: the server wakes the loop then, and
 * its next session_list_flush writes it. */
uint64_t session_list_write_due(session_list *list);
/* Fill the live-state gauges (connections, subscriptions, pending bytes). */
void session_list_gauges(const session_list *list, metrics_gauges *g);
/* A kick or ban announced (moderation.h's kick hook): every topic
 * subscription of ev->user to ev->room here ends with a control MESSAGE
 * and leaves the room; it stays known until UNSUBSCRIBE. */
void session_list_moderate(session_list *list, const struct moderation_event *ev);
/* session_restart every session (SIGTERM). */
void session_list_restart(session_list *list);

/* A new session of list for an established WebSocket from client address
 * addr. Borrows wsi and addr (which must outlive the session). */
session *session_create(session_list *list, struct lws *wsi, const char *addr);
/* Leave every room, drop queued frames, free. Accepts NULL. */
void session_destroy(session *s);

/* Consume received bytes. `in` is writable and is modified (escapes are
 * decoded in place). Returns 0; protocol errors queue an ERROR frame and
 * close the session after it is written. */
int session_feed(session *s, void *in, size_t len);

/* Whether the connection may be read again within this loop iteration
 * (rxmore.h): 0 when the session takes no input now (closing, draining, its
 * reads paused by rate limits or a ban check); otherwise the bytes that must
 * be queued for another read: 1, or a full read (websocket.rx_buffer + 16)
 * while its reads are paced (a drip), so that a paced connection is still
 * never read for a few bytes. */
size_t session_read_again(const session *s);

/* Write what is queued. Returns 0, or -1 when lws should close the
 * connection now (after an ERROR or DISCONNECT has been flushed). */
int session_flush(session *s);

/* The deliver hook of the room and presence indexes (subscriber.h): queue
 * the MESSAGE m for the subscription that embeds member. While the
 * subscription resumes (x-since), live messages are held by its resume. m
 * is the 1.2 block; the session queues the block for its own STOMP version
 * (msg_for_version). */
void session_deliver(subscriber *member, msg *m);
/* status.h's fail hook: end member's /status subscription's connection
 * with an ERROR (after the frames before it are written). */
void session_status_fail(subscriber *member, status_failure why, const char *detail);
/* Drain for a restart: read nothing more, and once the operations in
 * flight are done and their receipts written, close with WebSocket code
 * 1012 (service restart) so that the client reconnects elsewhere. */
void session_restart(session *s);

#endif
