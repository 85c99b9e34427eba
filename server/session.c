/* session.c — the STOMP state machine of one WebSocket connection.
 *
 * States: AWAIT_CONNECT (only CONNECT/STOMP and heart-beats are accepted),
 * CONNECTED, CLOSING (an ERROR or the DISCONNECT receipt is being flushed;
 * input is ignored; the connection closes once the queue is empty).
 *
 * Input. Bytes from lws are parsed straight out of lws's buffer when nothing
 * is left over from before (the common case: whole frames per WebSocket
 * message), and only an incomplete tail is copied into s->rx. The buffer is
 * released as soon as it empties, so idle connections hold no input memory.
 * While rx holds a partial frame, s->rx_part keeps the parser's scan state
 * (each byte is examined once however the frame is split) and the read
 * pacing of a frame dripped in tiny pieces (rxpace.h).
 *
 * Output. The queue is a ring of (msg, subscription) pairs: a reference to a
 * shared, already-encoded block plus, for MESSAGE blocks, the subscription
 * whose "MESSAGE\nsubscription:<id>\n" prefix goes in front. On each writable
 * write the writer packs queued frames of the same kind (text or binary)
 * into one WebSocket message of at most websocket.write_max bytes, so a burst
 * to one connection costs one send(), not one per frame. A frame larger than
 * that is sent as a fragmented message across several writes.
 *
 * Writing directly. A session with new output is put on the set's dirty
 * list, and the server flushes that list once per loop iteration
 * (session_set_flush, from libuv prepare and check handles), writing
 * straight to the socket. Asking lws for a writable callback instead would
 * cost, with lws on libuv, an epoll_ctl pair (uv_poll_start re-registers
 * the descriptor) to arm and another to disarm, per connection per burst:
 * a third of the server's CPU in a fan-out profile. Everything that arrived
 * during one iteration (a batch from the bus, several publishes) goes out
 * in one write per connection. Only when the kernel does not take it all
 * (lws keeps the rest, lws_partial_buffered) or a close must follow the
 * last bytes does the session fall back to lws's writable callback
 * (s->armed), which lws delivers once its own buffer has drained.
 *
 * Invariants: s->pending is the sum of the sizes of the queued entries minus
 * s->frag_off; every queued entry holds one reference to its msg; a queued
 * subscription pointer is live (unsubscribing scrubs it from the queue).
 *
 * Transactions (txn.c) buffer copies of their SENDs, published on COMMIT;
 * ACK and NACK change nothing (room messages are not redelivered), so in a
 * transaction they are checked and receipted but not kept.
 *
 * Memory. All a connection makes the server hold is charged against
 * limits.conn_memory (budget.c): the input buffer (by capacity),
 * transactions, operations in flight and receipts waiting, subscriptions,
 * messages held for a replay, and the output queue (s->pending plus
 * SESSION_ENTRY_COST a frame). Input that would not fit gets ERROR
 * "Connection memory limit" before it takes effect; output, the slow-
 * consumer close. Only the input buffer and the output queue are measured
 * where they live, so the delivery path's check is a few additions.
 * Every frame is also charged to token buckets (ratelimit.c); while one is
 * in debt the session stops reading and TCP slows the peer down.
 *
 * Publishing and joining a new room are asynchronous (Redis answers first),
 * so each receipt waits until every operation issued before it has
 * completed (inflight.c). A SEND's receipt therefore means "stored in the
 * room log and delivered locally", a SUBSCRIBE's "a member of the room
 * cluster-wide: every later message reaches you", and the receipts of
 * COMMIT and DISCONNECT follow those before them (DISCONNECT's promise:
 * everything before it was processed).
 */
#include "session.h"

#include "auth.h"
#include "budget.h"
#include "config.h"
#include "error_reason.h"
#include "inflight.h"
#include "log.h"
#include "mem.h"
#include "presence.h"
#include "ratelimit.h"
#include "registry.h"
#include "relay.h"
#include "resume.h"
#include "room.h"
#include "rxpace.h"
#include "subscription.h"
#include "stomp.h"
#include "tokens.h"
#include "txn.h"
#include "version.h"
#include "msgid.h"
#include "utf8.h"
#include "clock.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SESSION_AWAIT_CONNECT, SESSION_CONNECTED, SESSION_CLOSING };

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

/* Charged per queued frame on top of its bytes: its ring slot (twice, as
 * the ring may be twice as long as needed) and, for a frame of its own
 * (RECEIPT, ERROR), its msg header and malloc's; a flood of tiny frames
 * costs the server several times their bytes. */
#define SESSION_ENTRY_COST (2 * sizeof(outq_entry) + sizeof(msg) + 16)

struct session {
    session *prev, *next;        /* the set's list */
    session *reap_next;          /* the set's list of closes to perform */
    session_set *set;
    const session_env *env;      /* the set's */
    struct lws *wsi;
    uint64_t id;
    uint64_t created_ms, last_rx_ms, last_tx_ms;
    uint32_t hb_send_ms;         /* we send a heart-beat after this much silence */
    uint32_t hb_recv_ms;         /* the peer promised to send at least this often */
    uint8_t state;
    uint8_t version;             /* stomp_version once connected */
    bool armed;                  /* writable callback requested and not yet run */
    uint32_t dirty_at;           /* 1 + index on the set's dirty list; 0: not on it */
    bool dead;                   /* closing: queue nothing more, write nothing */
    bool reap_queued;            /* on the set's reap list */
    uint16_t close_code;
    const char *close_reason;    /* static text for the close frame */
    buf rx;                      /* incomplete input carried between callbacks */
    struct rx_partial *rx_part;  /* while rx holds a partial frame; NULL otherwise */
    outq_entry *q;
    uint32_t qcap, qhead, qlen;
    uint32_t pre_bytes;          /* bytes received before CONNECTED (bounded) */
    size_t pending;
    size_t frag_off;             /* bytes of the head entry already written */
    subscription *subs;
    uint32_t nsubs;
    txn_set txns;
    budget budget;               /* memory charged to limits.conn_memory (see the essay) */
    char *user;                  /* identity from CONNECT; owns user_name's bytes too */
    char *user_name;
    jwt_claims *who;             /* auth.mode=jwt: the token's claims; NULL otherwise */
    uint64_t token_deadline_ms;  /* who's expiry in loop time (tokens.h); 0: none */
    uint8_t role;                /* jwt_role: the token's, or CONNECT's x-role (auth none) */
    bool restarting;             /* drained by SIGTERM: close with 1012 when done */
    bool throttled;              /* input paused by the token buckets (lws rx flow off) */
    ratelimit rl;                /* limits.send_*, limits.frame_* */
    uint64_t rx_since_ms;        /* when s->rx started holding a partial frame */
    const char *addr;            /* client address (owned by the server's peer count) */
    bool online;                 /* counted online in the registry */
    bool draining;               /* DISCONNECT received: read nothing more */
    inflight ops;                /* operations in flight, receipts waiting for them */
};

struct session_set {
    const session_env *env;
    unsigned char *scratch;      /* LWS_PRE + websocket.write_max: every write is packed here */
    uint64_t next_id;
    session *head;
    size_t count;
    session *reap;               /* sessions whose close is due */
    session **dirty;             /* sessions with output to write; NULL: destroyed since */
    uint32_t ndirty, dirty_cap;
};

/* Loop time, ms. */
static uint64_t session_now(const session *s)
{
    return uv_now(s->env->loop);
}

/* --- memory ------------------------------------------------------------- */

/* The input buffer, by capacity (what malloc holds for it). */
static size_t session_input_bytes(const session *s)
{
    return s->rx.cap + (s->rx_part ? sizeof *s->rx_part : 0);
}

/* The output queue: its bytes and a per-frame cost. */
static size_t session_output_bytes(const session *s)
{
    return s->pending + s->qlen * SESSION_ENTRY_COST;
}

/* Everything charged to limits.conn_memory. */
static size_t session_held(const session *s)
{
    return budget_total(&s->budget) + session_input_bytes(s) + session_output_bytes(s);
}

/* --- the set ----------------------------------------------------------- */

session_set *session_set_create(const session_env *env)
{
    session_set *set = xcalloc(1, sizeof(session_set));
    set->env = env;
    set->next_id = 1;
    /* One buffer for all: the loop is single-threaded and a write
     * completes within one call. */
    set->scratch = xmalloc(LWS_PRE + env->conf->ws_write_max);
    return set;
}

void session_set_destroy(session_set *set)
{
    if (!set)
        return;
    free(set->scratch);
    free(set->dirty);
    free(set);
}

void session_set_gauges(const session_set *set, metrics_gauges *g)
{
    g->connections = set->count;
    g->subscriptions = 0;
    g->pending_bytes = 0;
    g->conn_memory = 0;
    g->conn_connecting = g->conn_connected = g->conn_closing = 0;
    for (const session *s = set->head; s; s = s->next) {
        g->subscriptions += s->nsubs;
        g->pending_bytes += s->pending;
        g->conn_memory += session_held(s);
        if (s->state == SESSION_AWAIT_CONNECT)
            g->conn_connecting++;
        else if (s->state == SESSION_CONNECTED && !s->draining)
            g->conn_connected++;
        else
            g->conn_closing++;
    }
}

/* --- output queue -------------------------------------------------------- */

static size_t entry_size(const outq_entry *e)
{
    size_t n = e->m->len;
    if (e->sub) {
        n += e->sub->prefix_len;
        if (e->sub->ack != SUB_ACK_AUTO)
            n += 5 + e->m->id_len;          /* "ack:" id "\n" */
    }
    return n;
}

static bool entry_binary(const outq_entry *e)
{
    return e->m->binary || (e->sub && !e->sub->utf8);
}

/* Copy bytes [off, off+n) of the entry's logical frame into dst. The frame
 * is the concatenation of: subscription prefix, "ack:<id>\n" (client ack
 * modes), the shared block. */
static void entry_copy(const outq_entry *e, size_t off, size_t n, unsigned char *dst)
{
    struct { const char *p; size_t len; } seg[5];
    size_t ns = 0;
    if (e->sub) {
        seg[ns].p = e->sub->prefix; seg[ns++].len = e->sub->prefix_len;
        if (e->sub->ack != SUB_ACK_AUTO) {
            seg[ns].p = "ack:"; seg[ns++].len = 4;
            seg[ns].p = e->m->id; seg[ns++].len = e->m->id_len;
            seg[ns].p = "\n"; seg[ns++].len = 1;
        }
    }
    seg[ns].p = e->m->data; seg[ns++].len = e->m->len;
    for (size_t i = 0; i < ns && n; i++) {
        if (off >= seg[i].len) {
            off -= seg[i].len;
            continue;
        }
        size_t take = seg[i].len - off;
        if (take > n)
            take = n;
        memcpy(dst, seg[i].p + off, take);
        dst += take;
        n -= take;
        off = 0;
    }
}

/* Ask lws for a writable callback (the slow path; see the essay). */
static void session_arm(session *s)
{
    if (!s->armed && !s->dead) {
        s->armed = true;
        lws_callback_on_writable(s->wsi);
    }
}

/* Have the output written at the end of this loop iteration. */
static void session_mark_dirty(session *s)
{
    if (s->dirty_at || s->armed || s->dead)
        return;
    session_set *set = s->set;
    if (set->ndirty == set->dirty_cap) {
        set->dirty_cap = set->dirty_cap ? set->dirty_cap * 2 : 64;
        set->dirty = xrealloc(set->dirty, set->dirty_cap * sizeof *set->dirty);
    }
    set->dirty[set->ndirty++] = s;
    s->dirty_at = set->ndirty;
}

static void session_kill(session *s, const char *why);
static void session_drop_slow(session *s);

/* Queue one entry. Every frame counts against stomp.max_pending and,
 * with what else the connection holds, limits.conn_memory: a peer that
 * does not read is dropped whatever it makes us queue (MESSAGEs, RECEIPTs
 * for a flood of SENDs). Only the ERROR that ends a session is exempt, so
 * the reason can still be written when there is room. */
static void session_push(session *s, msg *m, subscription *sub)
{
    if (s->dead)
        return;
    outq_entry e = { m, sub };
    size_t size = entry_size(&e);
    if (s->state != SESSION_CLOSING) {
        const server_config *c = s->env->conf;
        bool over_pending = s->pending + size > c->max_pending;
        if (over_pending || !budget_fits(&s->budget, size + SESSION_ENTRY_COST,
                                         session_input_bytes(s) + session_output_bytes(s),
                                         c->conn_memory)) {
            metrics *mt = s->env->metrics;
            mt->slow_consumers++;
            if (!over_pending)
                mt->conn_memory_closes++;
            log_info("slow_consumer", "conn=%llu pending=%zu limit=%zu held=%zu conn_memory=%zu",
                     (unsigned long long)s->id, s->pending, c->max_pending, session_held(s),
                     c->conn_memory);
            session_drop_slow(s);
            return;
        }
    }
    if (s->qlen == s->qcap) {
        uint32_t ncap = s->qcap ? s->qcap * 2 : 8;
        outq_entry *nq = xmalloc(ncap * sizeof *nq);
        for (uint32_t i = 0; i < s->qlen; i++)
            nq[i] = s->q[(s->qhead + i) % s->qcap];
        free(s->q);
        s->q = nq;
        s->qcap = ncap;
        s->qhead = 0;
    }
    metrics *mt = s->env->metrics;
    if (m->kind == MSG_MESSAGE)
        mt->frames_out[METRICS_OUT_MESSAGE]++;
    else
        mt->frames_out[m->data[0] == 'R' ? METRICS_OUT_RECEIPT :
                       m->data[0] == 'E' ? METRICS_OUT_ERROR :
                       m->data[0] == 'C' ? METRICS_OUT_CONNECTED : METRICS_OUT_HEARTBEAT]++;
    outq_entry *slot = &s->q[(s->qhead + s->qlen++) % s->qcap];
    slot->m = msg_ref(m);
    slot->sub = sub;
    s->pending += size;
    session_mark_dirty(s);
}

static void session_pop(session *s);

/* A slow consumer: drop what is queued for it (its memory goes now) and
 * close with 1008 (policy violation), the close frame following whatever
 * the kernel already holds for the peer. A peer that never reads again is
 * cut off after SESSION_SLOW_CLOSE_S. */
#define SESSION_SLOW_CLOSE_S 5
static void session_drop_slow(session *s)
{
    while (s->qlen)
        session_pop(s);
    s->state = SESSION_CLOSING;
    s->close_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
    s->close_reason = "slow consumer";
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, SESSION_SLOW_CLOSE_S);
    session_arm(s);
}

static void session_pop(session *s)
{
    outq_entry *e = &s->q[s->qhead];
    s->pending -= entry_size(e) - s->frag_off;
    s->frag_off = 0;
    msg_unref(e->m);
    s->qhead = (s->qhead + 1) % s->qcap;
    if (--s->qlen == 0) {
        /* An idle connection keeps no queue memory. */
        free(s->q);
        s->q = NULL;
        s->qcap = s->qhead = 0;
    }
}

static void session_push_frame(session *s, buf *b)
{
    msg *m = msg_create(MSG_FRAME, b);
    session_push(s, m, NULL);
    msg_unref(m);
}

/* Closing. lws must not close a connection from inside another
 * connection's callback, and Debian's lws 4.1.6 (built with _DEBUG) turns a
 * close requested by a callback's return value into an abrupt one: its
 * "uv repeat test" closes twice in a row and the second close skips the close
 * frame. So a session never closes itself on the spot: it is put on the
 * set's reap list and session_set_reap(), run by the server after each loop
 * iteration's I/O (outside every lws callback), closes it synchronously.
 * With a close reason prepared the close is polite (lws sends the close
 * frame and waits for the peer's); without one it is immediate, which is
 * right for peers that stopped reading or beating. */
static void session_schedule_close(session *s)
{
    if (s->dead)
        return;
    s->dead = true;
    s->state = SESSION_CLOSING;
    s->reap_queued = true;
    s->reap_next = s->set->reap;
    s->set->reap = s;
}

static void session_kill(session *s, const char *why)
{
    if (s->dead)
        return;
    log_debug("conn_kill", "conn=%llu reason=%s", (unsigned long long)s->id, why);
    session_schedule_close(s);
}

void session_set_reap(session_set *set)
{
    while (set->reap) {
        session *s = set->reap;
        set->reap = s->reap_next;
        s->reap_queued = false;
        /* May run LWS_CALLBACK_CLOSED, and so session_destroy(s), now. */
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
    }
}

/* Close with a WebSocket close frame carrying s->close_code. */
static void session_close_politely(session *s)
{
    if (s->dead)
        return;
    const char *why = s->close_reason ? s->close_reason : "";
    lws_close_reason(s->wsi, (enum lws_close_status)s->close_code,
                     (unsigned char *)(uintptr_t)why, strlen(why));
    session_schedule_close(s);
}

void session_deliver(subscriber *member, msg *m)
{
    subscription *sub = subscription_of(member);
    session *s = sub->session;
    if (s->state == SESSION_CONNECTED) {
        if (sub->resume && resume_hold(sub->resume, m))
            return;
        s->env->metrics->deliveries_local++;
        session_push(s, msg_for_version(m, s->version), sub);
    }
}

/* Queue m for sub now, bypassing a resume's hold (the resume's own replay). */
static void session_replay(void *ctx, msg *m)
{
    subscription *sub = ctx;
    session *s = sub->session;
    if (s->state == SESSION_CONNECTED) {
        s->env->metrics->deliveries_replayed++;
        session_push(s, msg_for_version(m, s->version), sub);
    }
}

/* Write one WebSocket message of queued frames (s->qlen > 0). Returns 0,
 * or -1 when lws failed to write. */
static int session_write(session *s)
{
    size_t cap = s->env->conf->ws_write_max;
    unsigned char *base = s->set->scratch;
    unsigned char *out = base + LWS_PRE;
    metrics *mt = s->env->metrics;
    outq_entry *head = &s->q[s->qhead];
    bool binary = entry_binary(head);
    size_t used = 0;
    int flags;

    /* The oldest MESSAGE of this write (the head, when it is one) is its
     * latency sample; a later one in the same write is younger. */
    uint64_t sample_ts = head->m->kind == MSG_MESSAGE && !s->frag_off ? head->m->ts_ms : 0;
    size_t hsize = entry_size(head);
    if (s->frag_off || hsize > cap) {
        /* One frame larger than a message: send it in fragments. */
        size_t left = hsize - s->frag_off;
        size_t take = left > cap ? cap : left;
        entry_copy(head, s->frag_off, take, out);
        flags = s->frag_off ? LWS_WRITE_CONTINUATION
                            : (binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        if (take < left)
            flags |= LWS_WRITE_NO_FIN;
        used = take;
        if (take < left) {
            s->frag_off += take;
            s->pending -= take;
        } else {
            session_pop(s);
        }
    } else {
        while (s->qlen) {
            outq_entry *e = &s->q[s->qhead];
            size_t n = entry_size(e);
            if (entry_binary(e) != binary || used + n > cap)
                break;
            if (!sample_ts && e->m->kind == MSG_MESSAGE)
                sample_ts = e->m->ts_ms;
            entry_copy(e, 0, n, out + used);
            used += n;
            session_pop(s);
        }
        flags = binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT;
    }

    if (lws_write(s->wsi, out, used, (enum lws_write_protocol)flags) < (int)used)
        return -1;
    mt->ws_messages_out++;
    mt->bytes_out += used;
    s->last_tx_ms = session_now(s);
    if (sample_ts) {
        uint64_t now = clock_wall_us(), at = sample_ts * 1000;
        histogram_observe_us(&mt->delivery, now > at ? now - at : 0);
    }
    return 0;
}

int session_flush(session *s)
{
    s->armed = false;
    if (s->dead)
        return 0;       /* a close is already under way */
    if (s->qlen == 0) {
        if (s->state == SESSION_CLOSING)
            session_close_politely(s);
        return 0;
    }
    if (session_write(s) < 0)
        return -1;
    /* More to write, or a close to perform after lws has sent these bytes. */
    if (s->qlen || s->state == SESSION_CLOSING)
        session_arm(s);
    return 0;
}

/* Messages per session per flush before the rest waits for a writable
 * callback: bounds one connection's share of an iteration. */
#define SESSION_DIRECT_WRITES 4

void session_set_flush(session_set *set)
{
    /* Entries may be appended while this runs (a failed write kills a
     * session, which queues nothing), so the bound is re-read. */
    for (uint32_t i = 0; i < set->ndirty; i++) {
        session *s = set->dirty[i];
        if (!s)
            continue;
        s->dirty_at = 0;
        if (s->dead || s->armed)
            continue;
        for (int n = 0; s->qlen && n < SESSION_DIRECT_WRITES; n++) {
            if (lws_partial_buffered(s->wsi))
                break;
            if (session_write(s) < 0) {
                session_kill(s, "write_failed");
                break;
            }
        }
        if (!s->dead && (s->qlen || s->state == SESSION_CLOSING))
            session_arm(s);
    }
    set->ndirty = 0;
}

/* --- frames we send ------------------------------------------------------- */

static bool session_escapes(const session *s)
{
    return s->version >= STOMP_V11;
}

static void session_emit_receipt(session *s, const char *id, size_t len)
{
    buf b;
    buf_init(&b);
    stomp_put_command(&b, STOMP_CMD_RECEIPT);
    stomp_put_header(&b, "receipt-id", 10, id, len, session_escapes(s));
    stomp_put_body(&b, NULL, 0);
    session_push_frame(s, &b);
    buf_deinit(&b);
    s->env->metrics->receipts++;
}

static void session_do_disconnect(session *s)
{
    s->state = SESSION_CLOSING;
    if (s->restarting) {
        /* RFC 6455 (IANA registry) 1012 "Service Restart": reconnect. */
        s->close_code = 1012;
        s->close_reason = "server restart";
        s->env->metrics->restart_closes++;
    } else {
        s->close_code = LWS_CLOSE_STATUS_NORMAL;
        s->close_reason = "DISCONNECT";
    }
    session_arm(s);
}

/* Emit the receipts whose publishes have all completed, in order. */
static void session_flush_receipts(session *s)
{
    inflight_receipt *w;
    while (!s->dead && (w = inflight_ready(&s->ops))) {
        budget_release(&s->budget, BUDGET_WAIT, inflight_receipt_cost(w->id_len));
        if (w->id_len || !w->disconnect)
            session_emit_receipt(s, w->id, w->id_len);
        if (w->disconnect)
            session_do_disconnect(s);
        free(w);
    }
}

/* The receipt for f (if it asked for one) once every publish issued so far
 * has completed; `disconnect` closes the session after it. A receipt that
 * has to wait is charged to the budget unchecked: session_handle checked
 * before the frame took effect that it fits. */
static void session_receipt_or_close(session *s, const stomp_frame *f, bool disconnect)
{
    const stomp_str *r = f ? stomp_frame_header(f, "receipt") : NULL;
    if (!r && !disconnect)
        return;
    if (inflight_idle(&s->ops)) {
        if (r)
            session_emit_receipt(s, r->p, r->len);
        if (disconnect)
            session_do_disconnect(s);
        return;
    }
    size_t n = r ? r->len : 0;
    budget_force(&s->budget, BUDGET_WAIT, inflight_receipt_cost(n));
    inflight_wait(&s->ops, r ? r->p : NULL, n, disconnect);
}

static void session_receipt(session *s, const stomp_frame *f)
{
    session_receipt_or_close(s, f, false);
}

/* Queue ERROR and close once it is written. `message` is the short summary
 * for the header; `detail` (may be NULL) goes in the body. `extra` is an
 * optional additional "name:value" header, unescaped. */
static void session_error_x(session *s, const stomp_frame *f, error_reason reason,
                            const char *detail, size_t detail_len, const char *extra_name,
                            const char *extra_value)
{
    if (s->state == SESSION_CLOSING)
        return;
    const char *message = error_reason_message(reason);
    bool esc = session_escapes(s);
    buf b;
    buf_init(&b);
    stomp_put_command(&b, STOMP_CMD_ERROR);
    stomp_put_header_str(&b, "message", message, esc);
    if (f) {
        const stomp_str *r = stomp_frame_header(f, "receipt");
        if (r)
            stomp_put_header(&b, "receipt-id", 10, r->p, r->len, esc);
    }
    if (extra_name)
        stomp_put_header_str(&b, extra_name, extra_value, esc);
    stomp_put_header_str(&b, "content-type", "text/plain", esc);
    if (!detail) {
        detail = message;
        detail_len = strlen(message);
    }
    buf_append_str(&b, "content-length:");
    buf_append_u64(&b, detail_len);
    buf_append_char(&b, '\n');
    stomp_put_body(&b, detail, detail_len);
    s->state = SESSION_CLOSING;     /* first: the ERROR is exempt from the output limits */
    session_push_frame(s, &b);
    buf_deinit(&b);

    char q[256];
    log_info("stomp_error", "conn=%llu command=%s message=%s", (unsigned long long)s->id,
             f ? stomp_command_name(f->command) : "-",
             log_q(q, sizeof q, message, strlen(message)));
    s->env->metrics->stomp_errors++;
    s->env->metrics->errors_by_reason[reason]++;
    s->close_code = LWS_CLOSE_STATUS_PROTOCOL_ERR;
    s->close_reason = "STOMP ERROR";
}

static void session_error(session *s, const stomp_frame *f, error_reason reason,
                          const char *detail)
{
    session_error_x(s, f, reason, detail, detail ? strlen(detail) : 0, NULL, NULL);
}


/* ERROR whose body is a fixed text followed by a client-supplied value. */
static void session_error_with(session *s, const stomp_frame *f, error_reason reason,
                               const char *text, const stomp_str *value)
{
    buf body;
    buf_init(&body);
    buf_append_str(&body, text);
    buf_append(&body, value->p, value->len);
    session_error_x(s, f, reason, body.data, body.len, NULL, NULL);
    buf_deinit(&body);
}

/* A frame (f, or NULL for input still arriving) whose effect would take
 * `need` more bytes than the connection's budget has left: ERROR, and a
 * close that a peer which stopped reading cannot put off. The open
 * transactions go at once (they can never commit now). */
static void session_over_budget(session *s, const stomp_frame *f, size_t need)
{
    const server_config *c = s->env->conf;
    buf body;
    buf_init(&body);
    budget_describe(&s->budget, session_input_bytes(s), session_output_bytes(s), need,
                    c->conn_memory, &body);
    s->env->metrics->conn_memory_closes++;
    log_info("conn_memory", "conn=%llu held=%zu need=%zu limit=%zu", (unsigned long long)s->id,
             session_held(s), need, c->conn_memory);
    budget_release(&s->budget, BUDGET_TXN, txn_clear(&s->txns));
    session_error_x(s, f, ERROR_CONN_MEMORY, body.data, body.len, NULL, NULL);
    buf_deinit(&body);
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, SESSION_SLOW_CLOSE_S);
}

/* Does `need` more fit in the budget? false after the ERROR otherwise. */
static bool session_fits(session *s, const stomp_frame *f, size_t need)
{
    if (budget_fits(&s->budget, need, session_input_bytes(s) + session_output_bytes(s),
                    s->env->conf->conn_memory))
        return true;
    session_over_budget(s, f, need);
    return false;
}

static const stomp_str *session_require(session *s, const stomp_frame *f, const char *name)
{
    const stomp_str *v = stomp_frame_header(f, name);
    if (!v) {
        char detail[160];
        snprintf(detail, sizeof detail, "%s frame requires the '%s' header",
                 stomp_command_name(f->command), name);
        session_error(s, f, ERROR_MISSING_HEADER, detail);
    }
    return v;
}

/* --- CONNECT -------------------------------------------------------------- */

/* "a,b" with decimal a, b -> 0; -1 when malformed. */
static int parse_heartbeat(const stomp_str *v, uint64_t *cx, uint64_t *cy)
{
    uint64_t a = 0, b = 0;
    size_t i = 0, digits = 0;
    for (; i < v->len && v->p[i] >= '0' && v->p[i] <= '9'; i++, digits++)
        if ((a = a * 10 + (uint64_t)(v->p[i] - '0')) > 0xffffffffULL)
            return -1;
    if (!digits || i == v->len || v->p[i] != ',')
        return -1;
    i++;
    digits = 0;
    for (; i < v->len && v->p[i] >= '0' && v->p[i] <= '9'; i++, digits++)
        if ((b = b * 10 + (uint64_t)(v->p[i] - '0')) > 0xffffffffULL)
            return -1;
    if (!digits || i != v->len)
        return -1;
    *cx = a;
    *cy = b;
    return 0;
}

/* Highest version in the comma-separated accept-version list, 0 if none. */
static int pick_version(const stomp_str *v)
{
    int best = 0;
    size_t i = 0;
    while (i <= v->len) {
        size_t j = i;
        while (j < v->len && v->p[j] != ',')
            j++;
        const char *t = v->p + i;
        size_t n = j - i;
        while (n && t[0] == ' ') { t++; n--; }
        while (n && t[n - 1] == ' ') n--;
        int ver = 0;
        if (n == 3 && !memcmp(t, "1.2", 3)) ver = STOMP_V12;
        else if (n == 3 && !memcmp(t, "1.1", 3)) ver = STOMP_V11;
        else if (n == 3 && !memcmp(t, "1.0", 3)) ver = STOMP_V10;
        if (ver > best)
            best = ver;
        i = j + 1;
    }
    return best;
}

/* The failure of a login: the same words whatever went wrong, so that a
 * prober learns nothing (the reason is logged and counted). */
static void session_refuse(session *s, const stomp_frame *f, const char *why)
{
    s->env->metrics->auth_failures++;
    log_info("auth_failed", "conn=%llu addr=%s reason=%s", (unsigned long long)s->id,
             s->addr ? s->addr : "-", why);
    session_error(s, f, ERROR_ACCESS_REFUSED, "Authentication failed.");
}

/* Set s->user, s->user_name and s->role from CONNECT: with auth.mode=jwt
 * from the token (the passcode header, or an "Authorization: Bearer"
 * header), never from what else the frame says; with auth.mode=none from
 * login (or a guest id unique in the cluster), x-display-name and x-role.
 * Returns -1 after queueing an ERROR. */
static int session_identify(session *s, const stomp_frame *f)
{
    auth *a = s->env->auth;
    const char *u, *name = NULL;
    size_t ul, nl = 0;
    char guest[160];

    if (auth_required(a)) {
        const stomp_str *tok = stomp_frame_header(f, "passcode");
        const stomp_str *ah = stomp_frame_header(f, "Authorization");
        if (!ah)
            ah = stomp_frame_header(f, "authorization");
        const char *tp = NULL;
        size_t tl = 0;
        if (tok && tok->len) {
            tp = tok->p;
            tl = tok->len;
        } else if (ah && !auth_bearer_token(ah->p, ah->len, &tp, &tl)) {
            tp = NULL;
        }
        if (!tp) {
            session_refuse(s, f, "no_token");
            return -1;
        }
        jwt_status st = auth_login(a, tp, tl, &s->who);
        if (st != JWT_OK) {
            session_refuse(s, f, jwt_status_name(st));
            return -1;
        }
        s->token_deadline_ms = tokens_deadline_ms(a, s->who, session_now(s));
        u = s->who->sub;
        ul = strlen(u);
        name = s->who->name;
        nl = name == s->who->sub ? 0 : strlen(name);
        s->role = (uint8_t)s->who->role;
    } else {
        const stomp_str *login = stomp_frame_header(f, "login");
        const stomp_str *dname = stomp_frame_header(f, "x-display-name");
        const stomp_str *role = stomp_frame_header(f, "x-role");
        if ((login && login->len > 128) || (dname && dname->len > 128)) {
            session_error(s, f, ERROR_INVALID_IDENTITY,
                          "login and x-display-name are limited to 128 bytes.");
            return -1;
        }
        if (login && login->len) {
            u = login->p;
            ul = login->len;
        } else {
            u = guest;
            ul = (size_t)snprintf(guest, sizeof guest, "guest-%s-%llu", s->env->server_id,
                                  (unsigned long long)s->id);
        }
        if (dname && dname->len) {
            name = dname->p;
            nl = dname->len;
        }
        s->role = JWT_ROLE_STUDENT;
        if (role && stomp_str_eq(role, "instructor"))
            s->role = JWT_ROLE_INSTRUCTOR;
        else if (role && stomp_str_eq(role, "admin"))
            s->role = JWT_ROLE_ADMIN;
    }
    /* One allocation for both (per-connection memory): "user\0name\0",
     * the name being the user when no display name was given. */
    s->user = xmalloc(ul + 1 + nl + 1);
    memcpy(s->user, u, ul);
    s->user[ul] = '\0';
    s->user_name = nl ? s->user + ul + 1 : s->user;
    if (nl) {
        memcpy(s->user_name, name, nl);
        s->user_name[nl] = '\0';
    }
    return 0;
}

static void on_connect(session *s, const stomp_frame *f)
{
    const server_config *c = s->env->conf;

    if (s->state != SESSION_AWAIT_CONNECT) {
        session_error(s, f, ERROR_ALREADY_CONNECTED, "CONNECT was sent twice on one connection");
        return;
    }
    const stomp_str *av = stomp_frame_header(f, "accept-version");
    int version = av ? pick_version(av) : STOMP_V10;
    if (!version) {
        static const char why[] = "None of the versions in accept-version is supported.";
        session_error_x(s, f, ERROR_UNSUPPORTED_VERSION, why,
                        sizeof why - 1, "version", "1.0,1.1,1.2");
        return;
    }
    s->version = (uint8_t)version;

    uint64_t cx = 0, cy = 0;
    const stomp_str *hb = stomp_frame_header(f, "heart-beat");
    if (hb && parse_heartbeat(hb, &cx, &cy) < 0) {
        session_error_with(s, f, ERROR_INVALID_HEARTBEAT,
                           "heart-beat must be two integers \"cx,cy\"; got: ", hb);
        return;
    }
    /* STOMP 1.2 "Heart-beating": each direction runs at the larger of what
     * one side can do and the other wants, or not at all if either is 0. */
    uint64_t sx = (uint64_t)c->hb_send_ms, sy = (uint64_t)c->hb_recv_ms;
    s->hb_send_ms = (sx && cy) ? (uint32_t)(sx > cy ? sx : cy) : 0;
    s->hb_recv_ms = (cx && sy) ? (uint32_t)(cx > sy ? cx : sy) : 0;

    if (session_identify(s, f) < 0)
        return;
    registry_online(s->env->registry, s->user);
    s->online = true;

    char hbv[32], sid[32];
    snprintf(hbv, sizeof hbv, "%u,%u", s->hb_send_ms, s->hb_recv_ms);
    snprintf(sid, sizeof sid, "%llu", (unsigned long long)s->id);
    buf b;
    buf_init(&b);
    stomp_put_command(&b, STOMP_CMD_CONNECTED);
    stomp_put_header_str(&b, "version", version == STOMP_V12 ? "1.2" :
                                        version == STOMP_V11 ? "1.1" : "1.0", false);
    stomp_put_header_str(&b, "heart-beat", hbv, false);
    stomp_put_header_str(&b, "server", "Lectern/" LECTERN_VERSION, false);
    stomp_put_header_str(&b, "session", sid, false);
    stomp_put_body(&b, NULL, 0);
    session_push_frame(s, &b);
    buf_deinit(&b);
    s->state = SESSION_CONNECTED;
    log_debug("stomp_connected", "conn=%llu version=%d hb_send=%u hb_recv=%u",
              (unsigned long long)s->id, version, s->hb_send_ms, s->hb_recv_ms);
}

/* --- the resume's hooks (resume.h): ctx is the subscription ----------------- */

static size_t session_resume_pending(void *ctx)
{
    return ((subscription *)ctx)->session->pending;
}

static bool session_resume_hold(void *ctx, size_t bytes)
{
    session *s = ((subscription *)ctx)->session;
    return budget_charge(&s->budget, BUDGET_HELD, bytes,
                         session_input_bytes(s) + session_output_bytes(s),
                         s->env->conf->conn_memory);
}

static void session_resume_unhold(void *ctx, size_t bytes)
{
    budget_release(&((subscription *)ctx)->session->budget, BUDGET_HELD, bytes);
}

static void session_resume_abort(void *ctx, error_reason reason, const char *detail)
{
    session_error(((subscription *)ctx)->session, NULL, reason, detail);
}

static const resume_sink session_resume_sink = {
    .pending = session_resume_pending,
    .replay = session_replay,
    .hold = session_resume_hold,
    .unhold = session_resume_unhold,
    .abort = session_resume_abort,
};

/* --- destinations, subscriptions ------------------------------------------ */

/* Validate a destination header; returns its kind (ROOM_DEST_TOPIC or
 * ROOM_DEST_PRESENCE) or -1 after queueing an ERROR. */
static int session_room(session *s, const stomp_frame *f, const stomp_str *dest,
                        stomp_str *name, auth_action act)
{
    int r = room_destination(dest, (size_t)s->env->conf->max_room_name, name);
    if (r == ROOM_DEST_UNKNOWN) {
        session_error_with(s, f, ERROR_UNKNOWN_DESTINATION,
                           "Destinations are /topic/<room> and /presence/<room>; "
                           "unknown destination: ", dest);
        return -1;
    }
    if (r == ROOM_DEST_INVALID) {
        session_error_with(s, f, ERROR_INVALID_DESTINATION,
                           "Room names are 1 to stomp.max_room_name characters of "
                           "A-Z a-z 0-9 . _ ~ -; invalid destination: ", dest);
        return -1;
    }
    if (!auth_allows(s->env->auth, s->who, name->p, name->len, act)) {
        char q[160];
        s->env->metrics->access_denied++;
        log_info("access_denied", "conn=%llu user=%s action=%s room=%s",
                 (unsigned long long)s->id, s->user, act == AUTH_SEND ? "send" : "read",
                 log_q(q, sizeof q, name->p, name->len));
        session_error_with(s, f, ERROR_ACCESS_REFUSED,
                           act == AUTH_SEND ? "Not permitted to send to: "
                                            : "Not permitted to read: ", dest);
        return -1;
    }
    return r;
}

static void session_unavailable(session *s, const stomp_frame *f)
{
    session_error(s, f, ERROR_SERVICE_UNAVAILABLE,
                  "The cluster cannot take this now (its Redis registry or RabbitMQ bus "
                  "is unreachable); nothing was done. Reconnect and try again.");
}

/* What a SEND holds until it is stored: its operation, and twice its bytes
 * (the relay's envelope, plus the command carrying it to Redis and then the
 * storage copy waiting for RabbitMQ's confirm). A SEND buffered in a
 * transaction is charged the same, so that COMMIT only hands it on. */
static size_t session_send_cost(const stomp_frame *f)
{
    return inflight_op_cost() + 2 * stomp_frame_footprint(f);
}

/* A new operation in flight, charged `cost` (the caller checked that it
 * fits, or is handing on memory already charged). */
static inflight_op *session_op(session *s, size_t cost)
{
    budget_force(&s->budget, BUDGET_WAIT, cost);
    return inflight_start(&s->ops, cost);
}

/* An operation that could not even start: forget it (the latest issued). */
static void session_op_cancel(session *s, inflight_op *op)
{
    budget_release(&s->budget, BUDGET_WAIT, inflight_cancel(&s->ops, op));
}

/* An operation completed: its session, or NULL when that is gone. */
static session *session_op_finish(inflight_op *op)
{
    size_t cost;
    session *s = inflight_finish(op, &cost);
    if (s)
        budget_release(&s->budget, BUDGET_WAIT, cost);
    return s;
}

static void session_on_joined(void *ctx, bool ok)
{
    (void)ok;                   /* not ok: unsubscribed before; nothing to say */
    session *s = session_op_finish(ctx);
    if (s)
        session_flush_receipts(s);
}

static void session_on_published(void *ctx, bool ok)
{
    session *s = session_op_finish(ctx);
    if (!s)
        return;
    if (!ok) {
        session_error(s, NULL, ERROR_MESSAGE_NOT_STORED,
                      "The cluster could not confirm that the message was stored durably "
                      "(Redis or RabbitMQ unavailable); it may or may not have been "
                      "delivered. Reconnect and send it again.");
        return;
    }
    session_flush_receipts(s);
}

/* A subscription: its record (the prefix, then the id and the room's name
 * after it), plus an estimate of what membership adds elsewhere (its room
 * slot, the registry's member record and command, a presence request). The
 * same sizes are charged at SUBSCRIBE and released when it goes. */
static size_t session_sub_cost(size_t prefix_len, size_t id_len, size_t room_len)
{
    return budget_chunk(sizeof(subscription) + prefix_len + id_len + room_len) + 256;
}

static subscription *session_find_sub(session *s, const char *id, size_t len)
{
    for (subscription *sub = s->subs; sub; sub = sub->next)
        if (sub->id_len == len && !memcmp(sub->id, id, len))
            return sub;
    return NULL;
}

static void on_subscribe(session *s, const stomp_frame *f)
{
    const server_config *c = s->env->conf;
    const stomp_str *dest = session_require(s, f, "destination");
    if (!dest)
        return;
    const stomp_str *id = stomp_frame_header(f, "id");
    if (!id) {
        if (s->version != STOMP_V10) {
            session_require(s, f, "id");
            return;
        }
        id = dest;      /* STOMP 1.0: the destination identifies the subscription */
    }
    stomp_str name;
    int kind = session_room(s, f, dest, &name, AUTH_READ);
    if (kind < 0)
        return;
    if (session_find_sub(s, id->p, id->len)) {
        session_error_with(s, f, ERROR_DUPLICATE_SUBSCRIPTION,
                           "This connection already has a subscription with id: ", id);
        return;
    }
    if (s->nsubs >= (uint32_t)c->max_subscriptions) {
        session_error(s, f, ERROR_TOO_MANY_SUBSCRIPTIONS,
                      "This connection reached stomp.max_subscriptions.");
        return;
    }
    const stomp_str *since_h = stomp_frame_header(f, "x-since");
    msgid since;
    if (since_h && (kind != ROOM_DEST_TOPIC || msgid_parse(since_h->p, since_h->len, &since) < 0)) {
        session_error_with(s, f, ERROR_INVALID_SINCE,
                           "x-since takes a message id (<ms>-<n>, as in message-id) and only "
                           "on /topic/ destinations; got: ", since_h);
        return;
    }
    uint8_t ack = SUB_ACK_AUTO;
    const stomp_str *am = stomp_frame_header(f, "ack");
    if (am) {
        if (stomp_str_eq(am, "auto"))
            ack = SUB_ACK_AUTO;
        else if (stomp_str_eq(am, "client"))
            ack = SUB_ACK_CLIENT;
        else if (stomp_str_eq(am, "client-individual"))
            ack = SUB_ACK_CLIENT_INDIVIDUAL;
        else {
            session_error_with(s, f, ERROR_INVALID_ACK_MODE,
                               "ack must be auto, client or client-individual; got: ", am);
            return;
        }
    }

    static const char head[] = "MESSAGE\nsubscription:";
    bool esc = session_escapes(s);
    size_t idesc = esc ? stomp_escaped_len(id->p, id->len) : id->len;
    size_t plen = sizeof head - 1 + idesc + 1;
    size_t cost = session_sub_cost(plen, id->len, name.len);
    if (!session_fits(s, f, cost + (kind == ROOM_DEST_TOPIC ? inflight_op_cost() : 0)))
        return;
    subscription *sub = xmalloc(sizeof *sub + plen + id->len + name.len);
    memcpy(sub->prefix, head, sizeof head - 1);
    char *p = sub->prefix + sizeof head - 1;
    if (esc)
        p = stomp_escape(p, id->p, id->len);
    else {
        memcpy(p, id->p, id->len);
        p += id->len;
    }
    *p++ = '\n';
    sub->prefix_len = plen;
    sub->id = p;
    memcpy(sub->id, id->p, id->len);
    sub->id_len = id->len;
    memcpy(sub->id + id->len, name.p, name.len);    /* for tokens_refresh */
    sub->room_len = (uint8_t)name.len;
    sub->session = s;
    sub->member = (subscriber){ 0 };
    sub->resume = NULL;
    sub->ack = ack;
    sub->kind = kind == ROOM_DEST_PRESENCE ? SUB_PRESENCE : SUB_TOPIC;
    sub->utf8 = utf8_valid(id->p, id->len);
    if (sub->kind == SUB_PRESENCE) {
        char rname[256];
        snprintf(rname, sizeof rname, "%.*s", (int)name.len, name.p);
        if (presence_subscribe(s->env->presence, &sub->member, rname) < 0) {
            free(sub);
            session_unavailable(s, f);
            return;
        }
    } else {
        relay_join(s->env->relay, &sub->member, &name, s->user, s->user_name,
                   session_on_joined, session_op(s, inflight_op_cost()));
        if (since_h)
            resume_start(s->env->resume, &session_resume_sink, sub, &sub->resume,
                         sub->member.room, s->id, since);
    }
    budget_force(&s->budget, BUDGET_SUBS, cost);
    sub->next = s->subs;
    s->subs = sub;
    s->nsubs++;
    session_receipt(s, f);
}

/* Remove every queued delivery for sub (it must not be written after the
 * UNSUBSCRIBE, and its memory is about to go). */
static void session_scrub(session *s, subscription *sub)
{
    uint32_t w = 0, n = s->qlen;
    if (!n)
        return;
    outq_entry *kept = xmalloc(n * sizeof *kept);
    for (uint32_t i = 0; i < n; i++) {
        outq_entry *e = &s->q[(s->qhead + i) % s->qcap];
        /* A partly written (fragmented) head must be finished, or the
         * WebSocket message would be cut in the middle. */
        if (e->sub == sub && !(i == 0 && s->frag_off)) {
            s->pending -= entry_size(e);
            msg_unref(e->m);
        } else {
            kept[w++] = *e;
        }
    }
    if (w && kept[0].sub == sub) {
        /* The fragmented head stays; give it its own copy of the prefix by
         * detaching it from the subscription: write it as a plain frame. */
        buf b;
        buf_init(&b);
        buf_reserve(&b, entry_size(&kept[0]));
        entry_copy(&kept[0], 0, entry_size(&kept[0]), (unsigned char *)b.data);
        b.len = entry_size(&kept[0]);
        msg *m = msg_create(MSG_FRAME, &b);
        buf_deinit(&b);
        msg_unref(kept[0].m);
        kept[0].m = m;
        kept[0].sub = NULL;
    }
    free(s->q);
    s->q = kept;
    s->qcap = n;
    s->qhead = 0;
    s->qlen = w;
    if (!w) {
        free(s->q);
        s->q = NULL;
        s->qcap = 0;
    }
}

static void session_drop_sub(session *s, subscription *sub)
{
    resume_cancel(sub->resume);
    if (sub->kind == SUB_PRESENCE)
        presence_unsubscribe(s->env->presence, &sub->member);
    else
        relay_leave(s->env->relay, &sub->member, s->user);
    session_scrub(s, sub);
    for (subscription **pp = &s->subs; *pp; pp = &(*pp)->next) {
        if (*pp == sub) {
            *pp = sub->next;
            break;
        }
    }
    s->nsubs--;
    budget_release(&s->budget, BUDGET_SUBS,
                   session_sub_cost(sub->prefix_len, sub->id_len, sub->room_len));
    free(sub);
}

static void on_unsubscribe(session *s, const stomp_frame *f)
{
    const stomp_str *id = stomp_frame_header(f, "id");
    if (!id && s->version == STOMP_V10)
        id = stomp_frame_header(f, "destination");
    if (!id) {
        session_require(s, f, "id");
        return;
    }
    subscription *sub = session_find_sub(s, id->p, id->len);
    if (!sub) {
        session_error_with(s, f, ERROR_UNKNOWN_SUBSCRIPTION,
                           "No subscription on this connection has id: ", id);
        return;
    }
    session_drop_sub(s, sub);
    session_receipt(s, f);
}

/* --- SEND, ACK ------------------------------------------------------------ */

/* A frame naming a transaction: a SEND is buffered in it, an ACK or NACK
 * (which would change nothing on COMMIT) only checked. Returns true when
 * the frame was consumed (buffered, or rejected with an ERROR). */
static bool session_buffer_in_txn(session *s, const stomp_frame *f)
{
    const stomp_str *tn = stomp_frame_header(f, "transaction");
    if (!tn)
        return false;
    txn *t = txn_find(&s->txns, tn->p, tn->len);
    if (!t) {
        session_error_with(s, f, ERROR_UNKNOWN_TRANSACTION,
                           "No transaction was begun with the name: ", tn);
        return true;
    }
    if (f->command == STOMP_CMD_SEND) {
        if (txn_bytes(t) + stomp_frame_footprint(f) > s->env->conf->max_transaction_bytes) {
            session_error(s, f, ERROR_TRANSACTION_TOO_LARGE,
                          "The transaction would exceed stomp.max_transaction_bytes.");
            return true;
        }
        size_t cost = session_send_cost(f);
        if (cost < txn_frame_cost(f))
            cost = txn_frame_cost(f);
        if (!session_fits(s, f, cost))
            return true;
        budget_force(&s->budget, BUDGET_TXN, cost);
        txn_add(t, f, cost);
    }
    session_receipt(s, f);
    return true;
}

/* Publish one SEND; false (after an ERROR) when the cluster cannot take it
 * or, unless `charged` (COMMIT hands on what its transaction was charged),
 * the connection's budget cannot. */
static bool send_publish(session *s, const stomp_frame *f, const stomp_str *name, bool charged)
{
    size_t cost = session_send_cost(f);
    if (!charged && !session_fits(s, f, cost))
        return false;
    inflight_op *op = session_op(s, cost);
    if (relay_publish(s->env->relay, name, f, s->user, s->user_name,
                      auth_role_name((jwt_role)s->role), session_on_published, op) < 0) {
        session_op_cancel(s, op);
        session_unavailable(s, f);
        return false;
    }
    return true;
}

/* A fresh token (tokens.h), applied at once (never buffered in a
 * transaction). auth.mode=none has no tokens: there is nothing to replace. */
static void on_token(session *s, const stomp_frame *f)
{
    auth *a = s->env->auth;
    tokens_result r;
    if (!auth_required(a)) {
        session_receipt(s, f);
        return;
    }
    switch (tokens_refresh(a, s->who, f, s->subs, &r)) {
    case TOKENS_REFUSED:
        session_refuse(s, f, r.why);
        return;
    case TOKENS_ROOM_LOST:
        s->env->metrics->access_denied++;
        session_error_with(s, f, ERROR_ACCESS_REFUSED, "Not permitted to read: ",
                           &(stomp_str){ r.lost, strlen(r.lost) });
        return;
    case TOKENS_OK:
        break;
    }
    jwt_claims_free(s->who);
    s->who = r.claims;
    s->role = (uint8_t)r.claims->role;
    s->token_deadline_ms = tokens_deadline_ms(a, s->who, session_now(s));
    s->env->metrics->token_refreshes++;
    session_receipt(s, f);
}

static void on_send(session *s, const stomp_frame *f)
{
    const stomp_str *dest = session_require(s, f, "destination");
    if (!dest)
        return;
    if (tokens_is_refresh(dest)) {
        on_token(s, f);
        return;
    }
    stomp_str name;
    int kind = session_room(s, f, dest, &name, AUTH_SEND);
    if (kind < 0)
        return;
    if (kind == ROOM_DEST_PRESENCE) {
        session_error_with(s, f, ERROR_READ_ONLY_DESTINATION,
                           "Presence is published by the server; SEND is not allowed to: ", dest);
        return;
    }
    /* Before buffering too: nothing in a COMMIT may fail storage. */
    char why[400];
    if (relay_check_send(s->env->relay, &name, f, s->user, s->user_name,
                         auth_role_name((jwt_role)s->role), why, sizeof why) < 0) {
        session_error(s, f, ERROR_TOO_LARGE_FOR_STORAGE, why);
        return;
    }
    if (session_buffer_in_txn(s, f))
        return;
    if (send_publish(s, f, &name, false))
        session_receipt(s, f);
}

static bool ack_headers_ok(session *s, const stomp_frame *f)
{
    if (s->version == STOMP_V12)
        return session_require(s, f, "id") != NULL;
    if (!session_require(s, f, "message-id"))
        return false;
    return s->version == STOMP_V10 || session_require(s, f, "subscription") != NULL;
}

/* Topic messages are not redelivered, so ACK and NACK change nothing; they
 * are checked for the headers the negotiated version requires. */
static void on_ack(session *s, const stomp_frame *f)
{
    if (!ack_headers_ok(s, f))
        return;
    if (session_buffer_in_txn(s, f))
        return;
    session_receipt(s, f);
}

/* --- transactions --------------------------------------------------------- */

static void on_begin(session *s, const stomp_frame *f)
{
    const stomp_str *tn = session_require(s, f, "transaction");
    if (!tn)
        return;
    if (txn_find(&s->txns, tn->p, tn->len)) {
        session_error_with(s, f, ERROR_DUPLICATE_TRANSACTION,
                           "A transaction with this name is already open: ", tn);
        return;
    }
    if (s->txns.n >= (uint32_t)s->env->conf->max_transactions) {
        session_error(s, f, ERROR_TOO_MANY_TRANSACTIONS,
                      "This connection reached stomp.max_transactions.");
        return;
    }
    size_t cost = txn_open_cost(tn->len);
    if (!session_fits(s, f, cost))
        return;
    budget_force(&s->budget, BUDGET_TXN, cost);
    txn_begin(&s->txns, tn->p, tn->len, cost);
    session_receipt(s, f);
}

static void on_commit_or_abort(session *s, const stomp_frame *f)
{
    const stomp_str *tn = session_require(s, f, "transaction");
    if (!tn)
        return;
    txn *t = txn_find(&s->txns, tn->p, tn->len);
    if (!t) {
        session_error_with(s, f, ERROR_UNKNOWN_TRANSACTION,
                           "No transaction was begun with the name: ", tn);
        return;
    }
    /* Each SEND was charged what it holds in flight: COMMIT hands that on
     * to its publish (so a transaction that was accepted always commits). */
    budget_release(&s->budget, BUDGET_TXN, txn_charged(t));
    if (f->command == STOMP_CMD_COMMIT) {
        for (size_t i = 0; i < txn_count(t); i++) {
            const stomp_frame *bf = txn_frame(t, i);
            stomp_str name;
            const stomp_str *dest = stomp_frame_header(bf, "destination");
            room_destination(dest, (size_t)s->env->conf->max_room_name, &name);
            if (!send_publish(s, bf, &name, true))
                break;
        }
    }
    txn_end(&s->txns, t);
    session_receipt(s, f);
}

/* --- dispatch ------------------------------------------------------------- */

static void on_disconnect(session *s, const stomp_frame *f)
{
    s->draining = true;
    session_receipt_or_close(s, f, true);
}

static void session_handle(session *s, const stomp_frame *f)
{
    if (s->state == SESSION_AWAIT_CONNECT && f->command != STOMP_CMD_CONNECT &&
        f->command != STOMP_CMD_STOMP) {
        session_error(s, f, ERROR_NOT_CONNECTED, "The first frame must be CONNECT or STOMP.");
        return;
    }
    /* A receipt that will wait (behind operations in flight, or this
     * frame's own) must fit before the frame takes effect; one written at
     * once is output, checked as such. DISCONNECT is always let go. */
    const stomp_str *r = stomp_frame_header(f, "receipt");
    bool waits = !inflight_idle(&s->ops) || f->command == STOMP_CMD_SEND ||
                 f->command == STOMP_CMD_SUBSCRIBE || f->command == STOMP_CMD_COMMIT;
    if (r && waits && f->command != STOMP_CMD_DISCONNECT && s->state == SESSION_CONNECTED &&
        !session_fits(s, f, inflight_receipt_cost(r->len)))
        return;
    switch (f->command) {
    case STOMP_CMD_CONNECT:
    case STOMP_CMD_STOMP:       on_connect(s, f); break;
    case STOMP_CMD_SEND:        on_send(s, f); break;
    case STOMP_CMD_SUBSCRIBE:   on_subscribe(s, f); break;
    case STOMP_CMD_UNSUBSCRIBE: on_unsubscribe(s, f); break;
    case STOMP_CMD_ACK:
    case STOMP_CMD_NACK:        on_ack(s, f); break;
    case STOMP_CMD_BEGIN:       on_begin(s, f); break;
    case STOMP_CMD_COMMIT:
    case STOMP_CMD_ABORT:       on_commit_or_abort(s, f); break;
    case STOMP_CMD_DISCONNECT:  on_disconnect(s, f); break;
    default: {
        char detail[96];
        snprintf(detail, sizeof detail, "%s is a server frame; clients may not send it",
                 stomp_command_name(f->command));
        session_error(s, f, ERROR_UNEXPECTED_FRAME, detail);
        break;
    }
    }
}

/* --- limits on input --------------------------------------------------------- */

static bool session_limited(const session *s)
{
    return ratelimit_active(s->env->limits);
}

/* Refill the token buckets and say whether the session may go on reading
 * (see ratelimit.h: a frame is charged after it is parsed). */
static bool session_may_read(session *s, uint64_t now)
{
    return ratelimit_may(&s->rl, s->env->limits, now);
}

/* Charge what one parse step consumed: a frame, or a run of heart-beats. */
static void session_charge(session *s, stomp_command cmd, size_t bytes)
{
    ratelimit_charge(&s->rl, s->env->limits,
                     cmd == STOMP_CMD_SEND ? RATELIMIT_SEND :
                     cmd == STOMP_CMD_NONE ? RATELIMIT_HEARTBEAT : RATELIMIT_FRAME, bytes);
}

/* Stop reading from the peer until session_tick finds the buckets refilled:
 * TCP backpressure slows the sender instead of dropping it. */
static void session_throttle(session *s)
{
    if (s->throttled)
        return;
    s->throttled = true;
    s->env->metrics->throttled++;
    lws_rx_flow_control(s->wsi, 0);
    log_debug("throttled", "conn=%llu", (unsigned long long)s->id);
}

/* The partial frame's state goes (a frame boundary, or its bytes went). */
static void session_part_free(session *s)
{
    if (!s->rx_part)
        return;
    rxpace_reset(&s->rx_part->pace, lws_get_socket_fd(s->wsi));
    free(s->rx_part);
    s->rx_part = NULL;
}

/* Forget every byte of input held (nothing of it will be parsed). */
static void session_drop_input(session *s)
{
    buf_deinit(&s->rx);
    s->rx_since_ms = 0;
    session_part_free(s);
}

/* The input buffer may have grown: over the budget, the connection ends
 * (the buffer goes at once; no frame of it will be parsed). */
static void session_check_input(session *s)
{
    if (budget_fits(&s->budget, session_input_bytes(s), session_output_bytes(s),
                    s->env->conf->conn_memory))
        return;
    size_t need = session_input_bytes(s);
    session_drop_input(s);
    session_over_budget(s, NULL, need);
}

/* Parse and handle the frames in data[0..n); returns the bytes consumed. */
static size_t session_parse(session *s, char *data, size_t n)
{
    metrics *mt = s->env->metrics;
    stomp_parser *parser = s->env->parser;
    bool limited = s->state == SESSION_CONNECTED && session_limited(s);
    uint64_t now = session_now(s);
    size_t off = 0;
    stomp_scan scan = s->rx_part ? s->rx_part->scan : (stomp_scan){ 0 };
    while (off < n && s->state != SESSION_CLOSING && !s->draining) {
        if (limited && !session_may_read(s, now)) {
            session_throttle(s);
            break;
        }
        stomp_frame f;
        stomp_version v = s->version ? (stomp_version)s->version : STOMP_V12;
        ssize_t r = stomp_parse(parser, &scan, v, data + off, n - off, &f);
        if (r == STOMP_AGAIN)
            break;
        if (r == STOMP_BAD) {
            session_error(s, NULL, ERROR_MALFORMED_FRAME, parser->err);
            break;
        }
        off += (size_t)r;
        mt->frames_in[f.command]++;
        session_charge(s, f.command, (size_t)r);
        if (f.command != STOMP_CMD_NONE)
            session_handle(s, &f);
        limited = s->state == SESSION_CONNECTED && session_limited(s);
    }
    if (scan.phase) {
        if (!s->rx_part)
            s->rx_part = xcalloc(1, sizeof *s->rx_part);
        s->rx_part->scan = scan;
    } else {                            /* at a frame boundary */
        session_part_free(s);
    }
    return off;
}

/* ERROR for a peer flooding the server with input, and read nothing more:
 * a polite close waits for the peer's close frame, which comes after
 * whatever it has queued, and reading that would cost what the refusal
 * saves. lws gives up on the close handshake after its close timeout. */
static void session_refuse_flood(session *s, error_reason reason, const char *detail)
{
    session_error(s, NULL, reason, detail);
    lws_rx_flow_control(s->wsi, 0);
}

/* Bytes a peer may send before CONNECTED beyond one frame of
 * stomp.max_frame: heart-beat EOLs ahead of the CONNECT. */
#define SESSION_PRE_CONNECT_SLACK 1024

/* Before CONNECTED the only frame a peer may send is CONNECT (the rate
 * limits start with the session), so what it may send at all is bounded:
 * one frame and a few EOLs. Returns false after queueing ERROR. */
static bool session_pre_connect_ok(session *s, size_t len)
{
    if (s->state != SESSION_AWAIT_CONNECT)
        return true;
    size_t cap = s->env->conf->max_frame + SESSION_PRE_CONNECT_SLACK;
    s->pre_bytes = s->pre_bytes + len > cap ? (uint32_t)cap + 1 : s->pre_bytes + (uint32_t)len;
    if (s->pre_bytes <= cap)
        return true;
    session_refuse_flood(s, ERROR_NOT_CONNECTED,
                         "Only one CONNECT frame (at most stomp.max_frame bytes) may come "
                         "before CONNECTED.");
    return false;
}

/* A WebSocket frame ended (lws reports no payload left) while a STOMP frame
 * is still incomplete: one more piece of it. Over stomp.max_frame_pieces
 * the frame is refused: each piece costs libwebsockets work whatever its
 * size, so a frame dripped one byte per WebSocket frame would otherwise
 * cost a quarter of a second of CPU per megabyte. Returns false after
 * queueing ERROR. */
static bool session_count_piece(session *s)
{
    int max = s->env->conf->max_frame_pieces;
    if (!s->rx_part || !max || lws_remaining_packet_payload(s->wsi) != 0)
        return true;
    if (++s->rx_part->ws_frames <= (uint32_t)max)
        return true;
    s->env->metrics->pieces_refused++;
    session_refuse_flood(s, ERROR_TOO_MANY_PIECES,
                         "A STOMP frame was split across more WebSocket frames than "
                         "stomp.max_frame_pieces allows; send each frame in one WebSocket "
                         "message.");
    return false;
}

int session_feed(session *s, void *in, size_t len)
{
    if (s->state == SESSION_CLOSING || s->draining)
        return 0;
    uint64_t now = session_now(s);
    if (len) {
        s->last_rx_ms = now;
        s->env->metrics->bytes_in += len;
    }
    if (!session_pre_connect_ok(s, len)) {
        session_drop_input(s);
        return 0;
    }
    if (s->throttled) {
        /* lws may hand over what it had read before the pause. */
        if (len)
            buf_append(&s->rx, in, len);
        session_check_input(s);
        return 0;
    }

    char *data = in;
    size_t n = len;
    if (s->rx.len) {
        if (len)
            buf_append(&s->rx, in, len);
        data = s->rx.data;
        n = s->rx.len;
    }
    size_t off = n ? session_parse(s, data, n) : 0;

    if (s->state == SESSION_CLOSING || s->draining || off == n) {
        session_drop_input(s);
        return 0;
    }
    /* A partial frame is left: its clock starts when the frame began, which
     * is now unless it is the same partial frame as before. */
    if (off || !s->rx_since_ms)
        s->rx_since_ms = now;
    if (len && !session_count_piece(s)) {
        session_drop_input(s);
        return 0;
    }
    if (s->rx_part && len &&
        rxpace_piece(&s->rx_part->pace, lws_get_socket_fd(s->wsi), len,
                     s->env->conf->ws_rx_buffer, (uint32_t)s->env->conf->drip_pieces))
        s->env->metrics->rx_paced++;
    if (data == s->rx.data)
        buf_consume(&s->rx, off);
    else
        buf_append(&s->rx, data + off, n - off);
    session_check_input(s);
    return 0;
}

/* --- lifecycle and timers ------------------------------------------------- */

session *session_create(session_set *set, struct lws *wsi, const char *addr)
{
    session *s = xcalloc(1, sizeof *s);
    s->env = set->env;
    s->addr = addr;
    s->set = set;
    s->wsi = wsi;
    s->id = set->next_id++;
    s->created_ms = s->last_rx_ms = s->last_tx_ms = session_now(s);
    ratelimit_init(&s->rl, s->env->limits, s->created_ms);
    s->state = SESSION_AWAIT_CONNECT;
    s->close_code = LWS_CLOSE_STATUS_NORMAL;
    buf_init(&s->rx);
    inflight_init(&s->ops, s);
    s->next = set->head;
    if (set->head)
        set->head->prev = s;
    set->head = s;
    set->count++;
    s->env->metrics->connections_opened++;
    return s;
}

void session_destroy(session *s)
{
    if (!s)
        return;
    while (s->subs)
        session_drop_sub(s, s->subs);
    txn_clear(&s->txns);
    inflight_deinit(&s->ops);   /* completions still to come find no session */
    if (s->online)
        registry_offline(s->env->registry, s->user);
    free(s->user);              /* user_name lives in the same block */
    jwt_claims_free(s->who);
    if (s->dirty_at)
        s->set->dirty[s->dirty_at - 1] = NULL;
    while (s->qlen)
        session_pop(s);
    free(s->q);
    buf_deinit(&s->rx);
    free(s->rx_part);
    if (s->reap_queued) {
        for (session **pp = &s->set->reap; *pp; pp = &(*pp)->reap_next) {
            if (*pp == s) {
                *pp = s->reap_next;
                break;
            }
        }
    }
    if (s->prev)
        s->prev->next = s->next;
    else
        s->set->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->set->count--;
    s->env->metrics->connections_closed++;
    free(s);
}

static void session_tick(session *s, uint64_t now)
{
    const server_config *c = s->env->conf;
    if (s->dead)
        return;
    if (s->rx_part)                     /* a paced frame's last bytes wait one tick at most */
        rxpace_reset(&s->rx_part->pace, lws_get_socket_fd(s->wsi));
    if (s->state == SESSION_AWAIT_CONNECT) {
        if (now - s->created_ms >= (uint64_t)c->connect_timeout_ms) {
            s->env->metrics->connect_timeouts++;
            log_info("connect_timeout", "conn=%llu", (unsigned long long)s->id);
            session_kill(s, "connect_timeout");
        }
        return;
    }
    if (s->token_deadline_ms && now >= s->token_deadline_ms && s->state == SESSION_CONNECTED &&
        !s->draining) {
        s->env->metrics->token_expiries++;
        session_error(s, NULL, ERROR_TOKEN_EXPIRED, tokens_expired_detail);
        return;
    }
    if (s->throttled && session_may_read(s, now)) {
        s->throttled = false;
        lws_rx_flow_control(s->wsi, 1);
        session_feed(s, NULL, 0);       /* what waited in s->rx */
        if (s->dead)
            return;
    }
    if (!s->throttled && s->rx_since_ms && now - s->rx_since_ms >= (uint64_t)c->frame_timeout_ms &&
        s->state == SESSION_CONNECTED) {
        s->env->metrics->frame_timeouts++;
        session_error(s, NULL, ERROR_FRAME_TIMEOUT,
                      "A frame was not completed within stomp.frame_timeout_ms.");
        return;
    }
    if (c->idle_timeout_ms && !s->hb_recv_ms && s->state == SESSION_CONNECTED &&
        now - s->last_rx_ms >= (uint64_t)c->idle_timeout_ms) {
        s->env->metrics->idle_timeouts++;
        log_info("idle_timeout", "conn=%llu silent_ms=%llu", (unsigned long long)s->id,
                 (unsigned long long)(now - s->last_rx_ms));
        session_kill(s, "idle_timeout");
        return;
    }
    if (s->hb_recv_ms && now - s->last_rx_ms > (uint64_t)(s->hb_recv_ms * c->hb_grace)) {
        s->env->metrics->heartbeat_timeouts++;
        log_info("heartbeat_timeout", "conn=%llu silent_ms=%llu", (unsigned long long)s->id,
                 (unsigned long long)(now - s->last_rx_ms));
        session_kill(s, "heartbeat_timeout");
        return;
    }
    /* Send a little early rather than late: the tick is coarse, and the
     * peer's timeout is a multiple of the interval anyway. */
    uint64_t tick = 1000 / (uint64_t)c->hz;
    if (s->hb_send_ms && s->state == SESSION_CONNECTED && s->qlen == 0 &&
        now - s->last_tx_ms + tick >= s->hb_send_ms) {
        session_push(s, msg_heartbeat(), NULL);
        s->last_tx_ms = now;
    }
}

void session_set_tick(session_set *set, uint64_t now_ms)
{
    for (session *s = set->head; s; s = s->next)
        session_tick(s, now_ms);
}

void session_restart(session *s)
{
    if (s->dead || s->restarting)
        return;
    s->restarting = true;
    if (s->state == SESSION_CLOSING || s->draining)
        return;             /* already on its way out (a DISCONNECT closes with 1012 now) */
    if (s->throttled) {
        s->throttled = false;
        lws_rx_flow_control(s->wsi, 1);
    }
    s->draining = true;     /* read nothing more */
    if (s->state == SESSION_AWAIT_CONNECT)
        session_do_disconnect(s);
    else
        session_receipt_or_close(s, NULL, true);   /* after what is in flight */
}

void session_set_restart(session_set *set)
{
    for (session *s = set->head; s; s = s->next)
        session_restart(s);
}
