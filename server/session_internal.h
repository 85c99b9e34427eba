/* session_internal.h — what the files of one session share (not for anyone else).
 *
 * A session is one STOMP connection (session.h is its contract). Its code
 * is split by job, each file reading and writing the one struct below:
 *
 *   session.c        states, dispatch, SUBSCRIBE/UNSUBSCRIBE/SEND/ACK, the
 *                    memory budget, the list
 *   session_timer.c  heart-beats, timeouts, token expiry: the checks and
 *                    when each session is next due for them (its timer)
 *   session_out.c    the output queue and its writer; RECEIPT and ERROR
 *   session_delay.c  write coalescing: output that waits for
 *                    websocket.write_delay_ms, on a wheel of its own
 *   session_login.c  CONNECT: version, heart-beats, identity
 *   session_txn.c    BEGIN, COMMIT, ABORT and the frames buffered in them
 *   session_input.c  bytes in: parsing, partial frames, pacing, rate limits
 *   session_moderation.c  a topic SUBSCRIBE's ban check and join; kicks and bans
 *   session_control.c     SEND to /control/<room>: moderation by instructors
 *   session_status.c      /status: friends' online status
 *
 * Only these files include this header; the struct stays opaque to the
 * rest of the server.
 */
#ifndef LECTERN_SESSION_INTERNAL_H
#define LECTERN_SESSION_INTERNAL_H

#include "auth.h"
#include "budget.h"
#include "error_reason.h"
#include "inflight.h"
#include "msg.h"
#include "msgid.h"
#include "ratelimit.h"
#include "rxpace.h"
#include "stomp.h"
#include "subscription.h"
#include "twheel.h"
#include "txn.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* session.h's types, declared again: this header needs no more of it (the
 * files that include it include session.h as well). */
typedef struct session session;
typedef struct session_list session_list;
struct session_env;

enum { SESSION_AWAIT_CONNECT, SESSION_CONNECTED, SESSION_CLOSING };

/* The reason a polite close gives (session_out.c has the texts). */
enum { SESSION_CLOSE_NONE, SESSION_CLOSE_SLOW, SESSION_CLOSE_RESTART, SESSION_CLOSE_DISCONNECT,
       SESSION_CLOSE_ERROR };

/* What is known about the partial frame in s->rx; allocated only while
 * there is one, so idle connections pay nothing for it. */
typedef struct rx_partial {
    stomp_scan scan;             /* the parser resumes here: linear in the frame */
    rxpace pace;                 /* reads paced for a frame dripped in tiny pieces */
    uint32_t ws_frames;          /* WebSocket frames that ended inside this frame */
} rx_partial;

typedef struct outq_entry {
    msg *m;
    subscription *sub;      /* MESSAGE: whose prefix to write; NULL otherwise */
} outq_entry;

/* What a session holds only while it is busy with something: input carried
 * between callbacks, operations in flight and the receipts waiting for
 * them, open transactions. Allocated on first use (session_busy_get) and
 * freed as soon as all of it is empty again (session_busy_trim), so an idle
 * connection pays one pointer for it. */
typedef struct session_busy {
    buf rx;                      /* incomplete input carried between callbacks */
    uint64_t rx_since_ms;        /* when rx started holding a partial frame */
    struct rx_partial *rx_part;  /* while rx holds a partial frame; NULL otherwise */
    txn_set txns;
    inflight ops;                /* operations in flight, receipts waiting for them */
} session_busy;

/* Charged per queued frame on top of its bytes: its ring slot (twice, as
 * the ring may be twice as long as needed) and, for a frame of its own
 * (RECEIPT, ERROR), its msg header and malloc's; a flood of tiny frames
 * costs the server several times their bytes. */
#define SESSION_ENTRY_COST (2 * sizeof(outq_entry) + sizeof(msg) + 16)

/* Ordered by size to leave no padding: this struct is most of what an idle
 * connection costs the server beyond libwebsockets' own. */
struct session {
    session *prev, *next;        /* the list's list */
    session *reap_next;          /* the list's list of closes to perform */
    session_list *list;
    struct lws *wsi;
    uint64_t id;
    /* Before CONNECTED, when the connection opened (stomp.connect_timeout_ms
     * counts from it); from CONNECTED on, the token's expiry in loop time
     * (tokens.h), 0 for none. One field: no state needs both. */
    union {
        uint64_t created_ms;
        uint64_t token_deadline_ms;
    };
    uint64_t last_rx_ms, last_tx_ms;
    twheel_node timer;           /* on the list's wheel at the next check's time (session_timer.c) */
    outq_entry *q;
    subscription *subs;
    const char *user;            /* identity from CONNECT (session_user_name): with a display
                                  * name, "user\0name\0" of its own (user_own); without,
                                  * the registry's copy of the user (registry_online),
                                  * valid while online */
    jwt_claims *who;             /* auth.mode=jwt: the token's claims; NULL otherwise */
    const char *addr;            /* client address (owned by the server's peer count) */
    session_busy *busy;          /* NULL while idle (session_busy_get) */
    ratelimit rl;                /* limits.send_*, limits.frame_* */
    budget budget;               /* memory charged to limits.conn_memory (see the essay) */
    uint32_t hb_send_ms;         /* we send a heart-beat after this much silence */
    uint32_t hb_recv_ms;         /* the peer promised to send at least this often */
    uint32_t dirty_at;           /* 1 + index on the list's dirty list; 0: not on it */
    uint32_t wait_at;            /* 1 + index in its wait slot (session_delay.c); 0: not waiting */
    uint32_t qcap, qhead, qlen;
    /* Bytes queued, and of the head entry already written: 32 bits, as
     * stomp.max_pending is at most 1 GiB and only the last ERROR of a
     * closing session passes it. */
    uint32_t pending;
    uint32_t frag_off;
    uint32_t pre_bytes;          /* bytes received before CONNECTED (bounded) */
    uint32_t nsubs;
    uint16_t close_code;
    uint8_t close_why;           /* SESSION_CLOSE_*: the close frame's reason text */
    uint8_t state;
    uint8_t version;             /* stomp_version once connected */
    uint8_t wait_slot;           /* while wait_at: its slot on the list's wait wheel */
    uint8_t role;                /* jwt_role: the token's, or CONNECT's x-role (auth none) */
    /* One byte of flags, not eight: the struct stays within malloc's
     * 256-byte chunk (SESSION_SIZE_MAX). */
    bool armed : 1;              /* writable callback requested and not yet run */
    bool dead : 1;               /* closing: queue nothing more, write nothing */
    bool reap_queued : 1;        /* on the list's reap list */
    bool restarting : 1;         /* drained by SIGTERM: close with 1012 when done */
    bool throttled : 1;          /* input paused by the token buckets (lws rx flow off) */
    bool held : 1;               /* input paused for a SUBSCRIBE's ban check (in order) */
    bool online : 1;             /* counted online in the registry: user is its copy */
    bool draining : 1;           /* DISCONNECT received: read nothing more */
    bool user_own : 1;           /* user is this session's own block (a display name) */
};

/* What an idle connection pays for its session: glibc's malloc serves a
 * request of n bytes from a chunk of n + 8 rounded up to 16, so 248 bytes
 * take a 256-byte chunk and 249 a 272-byte one. */
#define SESSION_SIZE_MAX 248
_Static_assert(sizeof(struct session) <= SESSION_SIZE_MAX,
               "struct session outgrew its malloc chunk (SESSION_SIZE_MAX)");

/* Output waiting for websocket.write_delay_ms (session_delay.c): a wheel of
 * one-ms slots, each the sessions due in that ms (a power of two of them,
 * more than the delay); NULL entries are sessions gone or written since. */
typedef struct session_wait_slot {
    session **s;
    uint32_t len, cap;
} session_wait_slot;

typedef struct session_waits {
    session_wait_slot *slots;    /* mask + 1 of them; NULL with write_delay_ms 0 */
    uint64_t mask;
    uint64_t from;               /* loop ms of the first slot not yet emptied */
    size_t count;                /* entries in the slots, NULLs included */
} session_waits;

struct session_list {
    const struct session_env *env;
    unsigned char *scratch;      /* LWS_PRE + websocket.write_max: every write is packed here */
    uint64_t next_id;
    session *head;
    size_t count;
    session *reap;               /* sessions whose close is due */
    session **dirty;             /* sessions with output to write; NULL: destroyed since */
    uint32_t ndirty, dirty_cap;
    twheel timers;               /* every session's timer (session_timer.c) */
    session_waits waits;         /* output waiting to be written (session_delay.c) */
};

/* Loop time, ms. */
uint64_t session_now(const session *s);

/* The display name given at CONNECT (the user id when none was); valid
 * while s->user is (set by CONNECT). */
static inline const char *session_user_name(const session *s)
{
    return s->user_own ? s->user + strlen(s->user) + 1 : s->user;
}

/* Every function below works on a live session of the calling file's
 * family. "After an ERROR" means the frame was answered with ERROR and the
 * session is CLOSING: the caller stops handling it. */

/* --- session.c — the state machine, its memory accounting ------------------ */

/* s->busy, allocated (empty) if s has none. */
session_busy *session_busy_get(session *s);
/* Free s->busy if it holds nothing: no input, no operation in flight, no
 * receipt waiting, no transaction. Call it where one of those may have
 * ended; the pointers into s->busy a caller holds are dead after it. */
void session_busy_trim(session *s);
/* The parts of s->busy, read without allocating it. */
static inline bool session_ops_idle(const session *s)
{
    return !s->busy || inflight_idle(&s->busy->ops);
}
static inline struct rx_partial *session_rx_part(const session *s)
{
    return s->busy ? s->busy->rx_part : NULL;
}
static inline uint64_t session_rx_since(const session *s)
{
    return s->busy ? s->busy->rx_since_ms : 0;
}

/* Handle one parsed frame (the dispatch on its command). */
void session_handle(session *s, const stomp_frame *f);
/* Publish one SEND to room `name`; false after an ERROR when the cluster or
 * (unless `charged`: COMMIT hands on what its transaction was charged) the
 * connection's budget cannot take it. Unless `charged` (a SEND of a COMMIT
 * was receipted when it was buffered), f's receipt waits for this publish
 * and carries its message id. */
bool session_send_publish(session *s, const stomp_frame *f, const stomp_str *name, bool charged);
/* What a SEND holds until it is stored (charged to the budget). */
size_t session_send_cost(const stomp_frame *f);
/* Bytes of input held, by capacity; bytes of output queued plus a per-frame
 * cost; everything charged to limits.conn_memory. */
size_t session_input_bytes(const session *s);
size_t session_output_bytes(const session *s);
size_t session_held(const session *s);

/* --- session_out.c — the output queue, its writer, and the frames the server sends --- */

/* Queue m (one reference taken) for sub (NULL: a frame of its own); a
 * connection over stomp.max_pending or limits.conn_memory is dropped as a
 * slow consumer instead. */
void session_push(session *s, msg *m, subscription *sub);
/* Queue the frame in b (copied into a msg of its own). */
void session_push_frame(session *s, buf *b);
/* Have s's output written at the end of this loop iteration (its wait,
 * if any, is over). */
void session_write_soon(session *s);
/* Drop the head of the queue. */
void session_pop(session *s);
/* Remove every queued delivery for sub (it is about to go). */
void session_scrub(session *s, subscription *sub);
/* Queue m for the subscription ctx, bypassing a resume's hold. */
void session_replay(void *ctx, msg *m);
/* Close without a word (peer gone or silent); why is logged. */
void session_kill(session *s, const char *why);
/* Close politely once the queue is written (1012 while restarting). */
void session_do_disconnect(session *s);
/* Does the negotiated version escape header values (1.1 and up)? */
bool session_escapes(const session *s);
/* RECEIPT for f if it asked for one, once every operation issued before it
 * has completed; `disconnect` closes the session after it. */
void session_receipt(session *s, const stomp_frame *f);
void session_receipt_or_close(session *s, const stomp_frame *f, bool disconnect);
/* RECEIPT for the SEND f (if it asked for one) tied to op, its publish just
 * started (the latest): it goes out once op and everything before it have
 * completed, with message-id:<the id op reported> (inflight_set_id). */
void session_receipt_for(session *s, const stomp_frame *f, inflight_op *op);
/* Emit the receipts whose operations have all completed, in order. */
void session_flush_receipts(session *s);
/* ERROR (reason, detail; NULL: the reason's text) for f (NULL: none) and
 * close once it is written. _with: the body is text then value. _x: the
 * body has detail_len bytes, plus an optional extra header. */
void session_error(session *s, const stomp_frame *f, error_reason reason, const char *detail);

/* Input paused while a topic SUBSCRIBE's ban check is out, so the frames
 * after it (a SEND to the room) take effect after its join, in order:
 * session_hold_input stops parsing after the current frame, and
 * session_release_input parses what waited (session_input.c). */
void session_hold_input(session *s);
void session_release_input(session *s);

/* session_control.c: a SEND to /control/<room> (name: the room, validated
 * and permitted by session_room). */
void session_control_send(session *s, const stomp_frame *f, const stomp_str *name);
void session_error_with(session *s, const stomp_frame *f, error_reason reason, const char *text,
                        const stomp_str *value);
void session_error_x(session *s, const stomp_frame *f, error_reason reason, const char *detail,
                     size_t detail_len, const char *extra_name, const char *extra_value);
/* Does `need` more fit in limits.conn_memory? false after an ERROR. */
bool session_fits(session *s, const stomp_frame *f, size_t need);
/* ERROR "Connection memory limit" for `need` bytes that did not fit. */
void session_over_budget(session *s, const stomp_frame *f, size_t need);
/* ERROR "Service unavailable": Redis or RabbitMQ cannot take f now. */
void session_unavailable(session *s, const stomp_frame *f);
/* Operations in flight (inflight.h), charged to the connection's budget:
 * start one of `cost` (the caller checked it fits), forget the latest one
 * that could not start, finish one (its session, or NULL when gone). */
inflight_op *session_op(session *s, size_t cost);
void session_op_cancel(session *s, inflight_op *op);
session *session_op_finish(inflight_op *op);
/* SUBSCRIBE and SEND to /status (session_status.c). start: 0, or -1
 * after an ERROR (sub is not started and the caller frees it). */
int session_status_start(session *s, const stomp_frame *f, subscription *sub);
void session_status_send(session *s, const stomp_frame *f);

/* f's header `name`, or NULL after an ERROR "Missing header". */
const stomp_str *session_require(session *s, const stomp_frame *f, const char *name);

/* --- session_delay.c — write coalescing (websocket.write_delay_ms) ---------- */

/* The list's wheel: init (now_ms: loop time; nothing with the delay off)
 * and deinit. */
void session_delay_init(session_list *list, uint64_t now_ms);
void session_delay_deinit(session_list *list);
/* s has a MESSAGE queued and is on no list: if its last write was less
 * than websocket.write_delay_ms ago, put it on the wheel at that write
 * plus the delay and return true; false (the delay is off, or over) and
 * the caller writes it soon. */
bool session_delay_wait(session *s);
/* Take s off the wheel (it is on it: s->wait_at), unwritten. */
void session_delay_cancel(session *s);
/* Every session whose wait ends by now_ms goes to session_write_soon. */
void session_delay_due(session_list *list, uint64_t now_ms);

/* --- session_login.c — CONNECT --------------------------------------------- */

/* CONNECT or STOMP: negotiate, identify, answer CONNECTED (or ERROR). */
void session_on_connect(session *s, const stomp_frame *f);
/* ERROR "Access refused" for a failed login; why is logged and counted. */
void session_refuse(session *s, const stomp_frame *f, const char *why);

/* --- session_txn.c — transactions ------------------------------------------ */

/* BEGIN; COMMIT or ABORT. */
void session_on_begin(session *s, const stomp_frame *f);
void session_on_commit_or_abort(session *s, const stomp_frame *f);
/* A frame naming a transaction: true when it was consumed (a SEND buffered,
 * an ACK/NACK checked and receipted, or an ERROR). */
bool session_buffer_in_txn(session *s, const stomp_frame *f);

/* The resume hooks of a topic subscription (session.c). */
extern const struct resume_sink session_resume_sink;

/* --- session_moderation.c — ban checks, kicks and bans ---------------------- */

/* Start sub (a new SUB_TOPIC of s, not yet a member: its room is its name)
 * on its way: the ban check, then the join and, with since, the x-since
 * replay; the SUBSCRIBE's RECEIPT (issued after this) waits for them. A
 * banned user gets ERROR Banned instead. */
void session_moderation_join(session *s, subscription *sub, const msgid *since);
/* sub is being dropped while its check is out: the answer finds it gone. */
void session_moderation_forget(subscription *sub);

/* --- session_timer.c — heart-beats, timeouts, token expiry ------------------ */

/* The list's wheel: init (now_ms: loop time) and deinit. */
void session_timer_init(session_list *list, uint64_t now_ms);
void session_timer_deinit(session_list *list);
/* Something may have brought one of s's check times nearer (a new session,
 * CONNECT, a fresh token, a throttle, a partial frame): schedule s's timer
 * at that time unless it is due sooner already. Reads and writes need not
 * call it (they only push the times back). */
void session_timer_update(session *s);
/* s goes: take its timer off the wheel. */
void session_timer_cancel(session *s);

/* --- session_input.c — input: parsing, pacing, rate limits ----------------- */

/* Refill the token buckets; may the session go on reading? */
bool session_may_read(session *s, uint64_t now);

#endif
