/* session_out.c — a session's output: the queue, the writer, closing,
 * and the frames the server sends of its own (RECEIPT, ERROR).
 *
 * Output. The queue is a ring of (msg, subscription) pairs: a reference to a
 * shared, already-encoded block plus, for MESSAGE blocks, the subscription
 * whose "MESSAGE\nsubscription:<id>\n" prefix goes in front. On each writable
 * write the writer packs queued frames of the same kind (text or binary)
 * into one WebSocket message of at most websocket.write_max bytes, so a burst
 * to one connection costs one send(), not one per frame. A frame larger than
 * that is sent as a fragmented message across several writes.
 *
 * Writing directly. A session with new output is put on the list's dirty
 * list, and the server flushes that list once per loop iteration
 * (session_list_flush, from libuv prepare and check handles), writing
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
 * Waiting. With websocket.write_delay_ms set, a MESSAGE for a session
 * that wrote less than that long ago does not make it dirty at once: the
 * session waits on a wheel until its last write is that old
 * (session_delay.c), and session_list_flush takes it from there when its
 * time comes. The server's own frames never wait.
 *
 * Invariants: s->pending is the sum of the sizes of the queued entries minus
 * s->frag_off; every queued entry holds one reference to its msg; a queued
 * subscription pointer is live (unsubscribing scrubs it from the queue).
 */
#include "session_internal.h"
#include "session.h"

#include "clock.h"
#include "log.h"
#include "mem.h"
#include "resume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- output queue -------------------------------------------------------- */

static size_t entry_size(const outq_entry *e)
{
    size_t n = e->m->len;
    if (e->sub) {
        n += subscription_prefix_len(e->sub);
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
 * is the concatenation of: subscription prefix (its head, wire id and
 * "\n"), "ack:<id>\n" (client ack modes), the shared block. */
static void entry_copy(const outq_entry *e, size_t off, size_t n, unsigned char *dst)
{
    struct { const char *p; size_t len; } seg[7];
    size_t ns = 0;
    if (e->sub) {
        seg[ns].p = SUBSCRIPTION_HEAD; seg[ns++].len = SUBSCRIPTION_HEAD_LEN;
        seg[ns].p = subscription_wire_id(e->sub); seg[ns++].len = e->sub->wire_len;
        seg[ns].p = "\n"; seg[ns++].len = 1;
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

void session_write_soon(session *s)
{
    if (s->dirty_at || s->armed || s->dead)
        return;
    session_list *list = s->list;
    if (list->ndirty == list->dirty_cap) {
        list->dirty_cap = list->dirty_cap ? list->dirty_cap * 2 : 64;
        list->dirty = xrealloc(list->dirty, list->dirty_cap * sizeof *list->dirty);
    }
    list->dirty[list->ndirty++] = s;
    s->dirty_at = list->ndirty;
}

/* s has new output: a MESSAGE (may_wait) may wait for
 * websocket.write_delay_ms; any other frame is written at the end of this
 * iteration, with everything queued before it (waiting or not). */
static void session_mark_dirty(session *s, bool may_wait)
{
    if (s->wait_at) {
        if (may_wait)
            return;             /* written when its wait ends */
        session_delay_cancel(s);
    } else if (may_wait && !s->dirty_at && !s->armed && !s->dead && session_delay_wait(s)) {
        return;
    }
    session_write_soon(s);
}

static void session_drop_slow(session *s);

/* Queue one entry. Every frame counts against stomp.max_pending and,
 * with what else the connection holds, limits.conn_memory: a peer that
 * does not read is dropped whatever it makes us queue (MESSAGEs, RECEIPTs
 * for a flood of SENDs). Only the ERROR that ends a session is exempt, so
 * the reason can still be written when there is room. */
void session_push(session *s, msg *m, subscription *sub)
{
    if (s->dead)
        return;
    outq_entry e = { m, sub };
    size_t size = entry_size(&e);
    if (s->state != SESSION_CLOSING) {
        const server_config *c = s->list->env->conf;
        bool over_pending = s->pending + size > c->max_pending;
        if (over_pending || !budget_fits(&s->budget, size + SESSION_ENTRY_COST,
                                         session_input_bytes(s) + session_output_bytes(s),
                                         c->conn_memory)) {
            metrics *mt = s->list->env->metrics;
            mt->slow_consumers++;
            if (!over_pending)
                mt->conn_memory_closes++;
            log_info("slow_consumer", "conn=%llu pending=%zu limit=%zu held=%zu conn_memory=%zu",
                     (unsigned long long)s->id, (size_t)s->pending, c->max_pending, session_held(s),
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
    metrics *mt = s->list->env->metrics;
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
    session_mark_dirty(s, m->kind == MSG_MESSAGE);
}


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
    s->close_why = SESSION_CLOSE_SLOW;
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, SESSION_SLOW_CLOSE_S);
    session_arm(s);
}

void session_pop(session *s)
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

void session_push_frame(session *s, buf *b)
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
 * list's reap list and session_list_reap(), run by the server after each loop
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
    s->reap_next = s->list->reap;
    s->list->reap = s;
}

void session_kill(session *s, const char *why)
{
    if (s->dead)
        return;
    log_debug("conn_kill", "conn=%llu reason=%s", (unsigned long long)s->id, why);
    session_schedule_close(s);
}

void session_list_reap(session_list *list)
{
    while (list->reap) {
        session *s = list->reap;
        list->reap = s->reap_next;
        s->reap_queued = false;
        /* May run LWS_CALLBACK_CLOSED, and so session_destroy(s), now. */
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
    }
}

/* Close with a WebSocket close frame carrying s->close_code and the text
 * of s->close_why. */
static void session_close_politely(session *s)
{
    static const char *const texts[] = {
        [SESSION_CLOSE_NONE] = "",
        [SESSION_CLOSE_SLOW] = "slow consumer",
        [SESSION_CLOSE_RESTART] = "server restart",
        [SESSION_CLOSE_DISCONNECT] = "DISCONNECT",
        [SESSION_CLOSE_ERROR] = "STOMP ERROR",
    };
    if (s->dead)
        return;
    const char *why = texts[s->close_why];
    lws_close_reason(s->wsi, (enum lws_close_status)s->close_code,
                     (unsigned char *)(uintptr_t)why, strlen(why));
    session_schedule_close(s);
}

void session_deliver(subscriber *member, msg *m)
{
    subscription *sub = subscription_of(member);
    session *s = sub->session;
    if (s->state == SESSION_CONNECTED) {
        if (sub->kind == SUB_TOPIC && sub->resume && resume_hold(sub->resume, m))
            return;
        s->list->env->metrics->deliveries_local++;
        session_push(s, msg_for_version(m, s->version), sub);
    }
}

/* Queue m for sub now, bypassing a resume's hold (the resume's own replay). */
void session_replay(void *ctx, msg *m)
{
    subscription *sub = ctx;
    session *s = sub->session;
    if (s->state == SESSION_CONNECTED) {
        s->list->env->metrics->deliveries_replayed++;
        session_push(s, msg_for_version(m, s->version), sub);
    }
}

/* Write one WebSocket message of queued frames (s->qlen > 0). Returns 0,
 * or -1 when lws failed to write. */
static int session_write(session *s)
{
    size_t cap = s->list->env->conf->ws_write_max;
    unsigned char *base = s->list->scratch;
    unsigned char *out = base + LWS_PRE;
    metrics *mt = s->list->env->metrics;
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

void session_list_flush(session_list *list)
{
    if (list->waits.count)
        session_delay_due(list, uv_now(list->env->loop));
    /* Entries may be appended while this runs (a failed write kills a
     * session, which queues nothing), so the bound is re-read. */
    for (uint32_t i = 0; i < list->ndirty; i++) {
        session *s = list->dirty[i];
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
    list->ndirty = 0;
}

/* Remove every queued delivery for sub (it must not be written after the
 * UNSUBSCRIBE, and its memory is about to go). */
void session_scrub(session *s, subscription *sub)
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

/* --- frames we send ------------------------------------------------------- */

bool session_escapes(const session *s)
{
    return s->version >= STOMP_V11;
}

/* RECEIPT receipt-id:id [message-id:mid] (mid_len 0: none). */
static void session_emit_receipt(session *s, const char *id, size_t len, const char *mid,
                                 size_t mid_len)
{
    buf b;
    buf_init(&b);
    stomp_put_command(&b, STOMP_CMD_RECEIPT);
    stomp_put_header(&b, "receipt-id", 10, id, len, session_escapes(s));
    if (mid_len)
        stomp_put_header(&b, "message-id", 10, mid, mid_len, session_escapes(s));
    stomp_put_body(&b, NULL, 0);
    session_push_frame(s, &b);
    buf_deinit(&b);
    s->list->env->metrics->receipts++;
}

void session_do_disconnect(session *s)
{
    s->state = SESSION_CLOSING;
    if (s->restarting) {
        /* RFC 6455 (IANA registry) 1012 "Service Restart": reconnect. */
        s->close_code = 1012;
        s->close_why = SESSION_CLOSE_RESTART;
        s->list->env->metrics->restart_closes++;
    } else {
        s->close_code = LWS_CLOSE_STATUS_NORMAL;
        s->close_why = SESSION_CLOSE_DISCONNECT;
    }
    session_arm(s);
}

/* Emit the receipts whose publishes have all completed, in order. */
void session_flush_receipts(session *s)
{
    inflight_receipt *w;
    while (!s->dead && s->busy && (w = inflight_ready(&s->busy->ops))) {
        budget_release(&s->budget, BUDGET_WAIT, inflight_receipt_cost(w->id_len));
        if (w->id_len || !w->disconnect)
            session_emit_receipt(s, w->id, w->id_len, w->mid, w->mid_len);
        if (w->disconnect)
            session_do_disconnect(s);
        free(w);
    }
    session_busy_trim(s);
}

/* The receipt for f (if it asked for one) once every publish issued so far
 * has completed; `disconnect` closes the session after it. A receipt that
 * has to wait is charged to the budget unchecked: session_handle checked
 * before the frame took effect that it fits. */
void session_receipt_or_close(session *s, const stomp_frame *f, bool disconnect)
{
    const stomp_str *r = f ? stomp_frame_header(f, "receipt") : NULL;
    if (!r && !disconnect)
        return;
    if (session_ops_idle(s)) {
        if (r)
            session_emit_receipt(s, r->p, r->len, NULL, 0);
        if (disconnect)
            session_do_disconnect(s);
        return;
    }
    size_t n = r ? r->len : 0;
    budget_force(&s->budget, BUDGET_WAIT, inflight_receipt_cost(n));
    inflight_wait(&s->busy->ops, r ? r->p : NULL, n, disconnect);
}

/* Always queued (op is in flight): charged unchecked like any waiting
 * receipt. */
void session_receipt_for(session *s, const stomp_frame *f, inflight_op *op)
{
    const stomp_str *r = stomp_frame_header(f, "receipt");
    if (!r)
        return;
    budget_force(&s->budget, BUDGET_WAIT, inflight_receipt_cost(r->len));
    inflight_wait_op(&s->busy->ops, op, r->p, r->len);
}

void session_receipt(session *s, const stomp_frame *f)
{
    session_receipt_or_close(s, f, false);
}

/* Queue ERROR and close once it is written. `message` is the short summary
 * for the header; `detail` (may be NULL) goes in the body. `extra` is an
 * optional additional "name:value" header, unescaped. */
void session_error_x(session *s, const stomp_frame *f, error_reason reason,
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
    s->list->env->metrics->stomp_errors++;
    s->list->env->metrics->errors_by_reason[reason]++;
    s->close_code = LWS_CLOSE_STATUS_PROTOCOL_ERR;
    s->close_why = SESSION_CLOSE_ERROR;
}

void session_error(session *s, const stomp_frame *f, error_reason reason,
                          const char *detail)
{
    session_error_x(s, f, reason, detail, detail ? strlen(detail) : 0, NULL, NULL);
}


/* ERROR whose body is a fixed text followed by a client-supplied value. */
void session_error_with(session *s, const stomp_frame *f, error_reason reason,
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
void session_over_budget(session *s, const stomp_frame *f, size_t need)
{
    const server_config *c = s->list->env->conf;
    buf body;
    buf_init(&body);
    budget_describe(&s->budget, session_input_bytes(s), session_output_bytes(s), need,
                    c->conn_memory, &body);
    s->list->env->metrics->conn_memory_closes++;
    log_info("conn_memory", "conn=%llu held=%zu need=%zu limit=%zu", (unsigned long long)s->id,
             session_held(s), need, c->conn_memory);
    if (s->busy) {
        budget_release(&s->budget, BUDGET_TXN, txn_clear(&s->busy->txns));
        session_busy_trim(s);
    }
    session_error_x(s, f, ERROR_CONN_MEMORY, body.data, body.len, NULL, NULL);
    buf_deinit(&body);
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, SESSION_SLOW_CLOSE_S);
}

/* Does `need` more fit in the budget? false after the ERROR otherwise. */
bool session_fits(session *s, const stomp_frame *f, size_t need)
{
    if (budget_fits(&s->budget, need, session_input_bytes(s) + session_output_bytes(s),
                    s->list->env->conf->conn_memory))
        return true;
    session_over_budget(s, f, need);
    return false;
}

const stomp_str *session_require(session *s, const stomp_frame *f, const char *name)
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
