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
 * iteration by session_set_flush() (or on SERVER_WRITEABLE when the socket
 * was full).
 * Every session belongs to a session_set, which the server ticks for
 * heart-beats and timeouts.
 */
#ifndef LECTERN_SESSION_H
#define LECTERN_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "msg.h"

struct lws;
struct room;
struct server;

typedef struct session session;
typedef struct session_set session_set;

enum sub_ack { SUB_ACK_AUTO, SUB_ACK_CLIENT, SUB_ACK_CLIENT_INDIVIDUAL };
enum sub_kind { SUB_TOPIC, SUB_PRESENCE };

/* One SUBSCRIBE. Owned by its session; `room` and `slot` are maintained by
 * room.c while the subscription is a member of a room. */
typedef struct subscription {
    session *session;
    struct room *room;
    uint32_t slot;
    uint8_t ack;               /* enum sub_ack */
    uint8_t kind;              /* enum sub_kind */
    bool utf8;                 /* id (and so prefix) is valid UTF-8 */
    uint8_t room_len;          /* the room's name follows the id (sub->id + sub->id_len) */
    struct subscription *next; /* the session's list */
    uint64_t pv;               /* presence: the last version sent */
    struct resume *resume;     /* topic: replaying history (x-since); NULL once live */
    size_t id_len;
    char *id;                  /* client's id, unescaped; points into mem below */
    size_t prefix_len;
    char prefix[];             /* "MESSAGE\nsubscription:<escaped id>\n", the id, the room */
} subscription;

session_set *session_set_create(void);
/* Accepts NULL. The set must be empty: sessions are destroyed by lws first. */
void session_set_destroy(session_set *set);
/* Heart-beats due, dead peers, CONNECT timeouts. now_ms: loop time. */
void session_set_tick(session_set *set, uint64_t now_ms);
/* Perform the closes sessions asked for. Must run outside lws callbacks
 * (the server calls it from a libuv check handle, after each poll). */
void session_set_reap(session_set *set);
/* Write the output of every session that queued some since the last call,
 * straight to its socket where the kernel takes it. Must run outside lws
 * callbacks (the server calls it from libuv prepare and check handles). */
void session_set_flush(session_set *set);
/* Fill the live-state gauges (connections, subscriptions, pending bytes). */
void session_set_gauges(const session_set *set, metrics_gauges *g);

/* A new session for an established WebSocket from client address addr.
 * Borrows srv, wsi and addr (which must outlive the session). */
session *session_create(struct server *srv, session_set *set, struct lws *wsi,
                        const char *addr);
/* Leave every room, drop queued frames, free. Accepts NULL. */
void session_destroy(session *s);

/* Consume received bytes. `in` is writable and is modified (escapes are
 * decoded in place). Returns 0; protocol errors queue an ERROR frame and
 * close the session after it is written. */
int session_feed(session *s, void *in, size_t len);

/* Write what is queued. Returns 0, or -1 when lws should close the
 * connection now (after an ERROR or DISCONNECT has been flushed). */
int session_flush(session *s);

/* Queue the MESSAGE m for one subscription (called by room_deliver). While
 * the subscription resumes (x-since), live messages are held by its resume.
 * m is the 1.2 block; the session queues the block for its own STOMP
 * version (msg_for_version). */
void session_deliver(subscription *sub, msg *m);
/* Queue m for sub now, bypassing a resume's hold (the resume's own replay). */
void session_replay(subscription *sub, msg *m);
/* Drain for a restart: read nothing more, and once the operations in
 * flight are done and their receipts written, close with WebSocket code
 * 1012 (service restart) so that the client reconnects elsewhere. */
void session_restart(session *s);
/* session_restart every session (SIGTERM). */
void session_set_restart(session_set *set);
/* Send ERROR (message, detail) and close the connection. */
void session_abort(session *s, const char *message, const char *detail);

uint64_t session_id(const session *s);
/* Bytes queued for the connection and not yet written. */
size_t session_pending(const session *s);
/* Charge `bytes` of messages held for one of s's subscriptions (a replay's
 * live messages) to its limits.conn_memory. false, charging nothing, when
 * they do not fit: the caller must then end the session. */
bool session_hold(session *s, size_t bytes);
/* Give back what session_hold charged. */
void session_unhold(session *s, size_t bytes);

#endif
