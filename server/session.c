/* session.c — the STOMP state machine of one WebSocket connection.
 *
 * States: AWAIT_CONNECT (only CONNECT/STOMP and heart-beats are accepted),
 * CONNECTED, CLOSING (an ERROR or the DISCONNECT receipt is being flushed;
 * input is ignored; the connection closes once the queue is empty).
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
 *
 * The other jobs of a session are files of their own (session_internal.h lists
 * them): output, CONNECT, transactions, input, moderation (a topic
 * SUBSCRIBE joins after its ban check: session_moderation.c).
 */
#include "session_internal.h"
#include "session.h"

#include "idemkey.h"
#include "log.h"
#include "mem.h"
#include "msgid.h"
#include "presence.h"
#include "registry.h"
#include "relay.h"
#include "resume.h"
#include "room.h"
#include "status.h"
#include "tokens.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Loop time, ms. */
uint64_t session_now(const session *s)
{
    return uv_now(s->list->env->loop);
}

/* --- memory ------------------------------------------------------------- */

/* The input buffer, by capacity (what malloc holds for it). */
size_t session_input_bytes(const session *s)
{
    if (!s->busy)
        return 0;
    return s->busy->rx.cap + (s->busy->rx_part ? sizeof *s->busy->rx_part : 0);
}

session_busy *session_busy_get(session *s)
{
    if (!s->busy) {
        s->busy = xcalloc(1, sizeof *s->busy);
        buf_init(&s->busy->rx);
        inflight_init(&s->busy->ops, s);
    }
    return s->busy;
}

/* Free b and all it holds; operations still in flight are orphaned (their
 * completions find no session). */
static void session_busy_free(session_busy *b)
{
    if (!b)
        return;
    txn_clear(&b->txns);
    inflight_deinit(&b->ops);
    buf_deinit(&b->rx);
    free(b->rx_part);
    free(b);
}

void session_busy_trim(session *s)
{
    session_busy *b = s->busy;
    if (!b || b->rx.data || b->rx_part || b->rx_since_ms || b->txns.n ||
        !inflight_idle(&b->ops))
        return;
    session_busy_free(b);
    s->busy = NULL;
}

/* The output queue: its bytes and a per-frame cost. */
size_t session_output_bytes(const session *s)
{
    return s->pending + s->qlen * SESSION_ENTRY_COST;
}

/* Everything charged to limits.conn_memory. */
size_t session_held(const session *s)
{
    return budget_total(&s->budget) + session_input_bytes(s) + session_output_bytes(s);
}

/* --- the list ----------------------------------------------------------- */

session_list *session_list_create(const session_env *env)
{
    session_list *list = xcalloc(1, sizeof(session_list));
    list->env = env;
    list->next_id = 1;
    /* One buffer for all: the loop is single-threaded and a write
     * completes within one call. */
    list->scratch = xmalloc(LWS_PRE + env->conf->ws_write_max);
    /* The loop may not be running yet: the wheel starts at time 0, and its
     * first advance catches up (visiting each slot once). */
    session_timer_init(list, 0);
    session_delay_init(list, 0);
    return list;
}

void session_list_destroy(session_list *list)
{
    if (!list)
        return;
    session_timer_deinit(list);
    session_delay_deinit(list);
    free(list->scratch);
    free(list->dirty);
    free(list);
}

void session_list_gauges(const session_list *list, metrics_gauges *g)
{
    g->connections = list->count;
    g->subscriptions = 0;
    g->pending_bytes = 0;
    g->conn_memory = 0;
    g->conn_connecting = g->conn_connected = g->conn_closing = 0;
    for (const session *s = list->head; s; s = s->next) {
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
                         s->list->env->conf->conn_memory);
}

static void session_resume_unhold(void *ctx, size_t bytes)
{
    budget_release(&((subscription *)ctx)->session->budget, BUDGET_HELD, bytes);
}

static void session_resume_abort(void *ctx, error_reason reason, const char *detail)
{
    session_error(((subscription *)ctx)->session, NULL, reason, detail);
}

const resume_sink session_resume_sink = {
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
    int r = room_destination(dest, (size_t)s->list->env->conf->max_room_name, name);
    if (r == ROOM_DEST_UNKNOWN) {
        session_error_with(s, f, ERROR_UNKNOWN_DESTINATION,
                           "Destinations are /topic/<room>, /presence/<room>, /control/<room> "
                           "and /status; "
                           "unknown destination: ", dest);
        return -1;
    }
    if (r == ROOM_DEST_INVALID) {
        session_error_with(s, f, ERROR_INVALID_DESTINATION,
                           "Room names are 1 to stomp.max_room_name characters of "
                           "A-Z a-z 0-9 . _ ~ -; invalid destination: ", dest);
        return -1;
    }
    if (!auth_allows(s->list->env->auth, s->who, name->p, name->len, act)) {
        char q[160];
        s->list->env->metrics->access_denied++;
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

void session_unavailable(session *s, const stomp_frame *f)
{
    session_error(s, f, ERROR_SERVICE_UNAVAILABLE,
                  "The cluster cannot take this now (its Redis registry or RabbitMQ bus "
                  "is unreachable); nothing was done. Reconnect and try again.");
}

/* What a SEND holds until it is stored: its operation, and twice its bytes
 * (the relay's envelope, plus the command carrying it to Redis and then the
 * storage copy waiting for RabbitMQ's confirm). A SEND buffered in a
 * transaction is charged the same, so that COMMIT only hands it on. */
size_t session_send_cost(const stomp_frame *f)
{
    return inflight_op_cost() + 2 * stomp_frame_footprint(f);
}

/* A new operation in flight, charged `cost` (the caller checked that it
 * fits, or is handing on memory already charged). */
inflight_op *session_op(session *s, size_t cost)
{
    budget_force(&s->budget, BUDGET_WAIT, cost);
    return inflight_start(&session_busy_get(s)->ops, cost);
}

/* An operation that could not even start: forget it (the latest issued). */
void session_op_cancel(session *s, inflight_op *op)
{
    budget_release(&s->budget, BUDGET_WAIT, inflight_cancel(&s->busy->ops, op));
    session_busy_trim(s);
}

/* An operation completed: its session, or NULL when that is gone. */
session *session_op_finish(inflight_op *op)
{
    size_t cost;
    session *s = inflight_finish(op, &cost);
    if (s) {
        budget_release(&s->budget, BUDGET_WAIT, cost);
        session_busy_trim(s);
    }
    return s;
}

/* "until <ms since the epoch>" or "with no end", for a refusal's ERROR. */
static void session_until(char *out, size_t len, uint64_t until_ms)
{
    if (until_ms)
        snprintf(out, len, "until %llu (ms since the epoch)", (unsigned long long)until_ms);
    else
        snprintf(out, len, "with no end");
}

/* A publish of s ended: the RECEIPTs it held go out, or the ERROR that
 * ends the session (naming the SEND's receipt, when it asked for one). */
static void session_published(session *s, const relay_result *res, const char *receipt)
{
    if (res->outcome == RELAY_BANNED || res->outcome == RELAY_MUTED) {
        char why[160], until[64];
        bool banned = res->outcome == RELAY_BANNED;
        session_until(until, sizeof until, res->until_ms);
        snprintf(why, sizeof why, "You are %s in this room %s; the message was not sent.",
                 banned ? "banned" : "muted", until);
        session_error_x(s, NULL, banned ? ERROR_BANNED : ERROR_MUTED, why, strlen(why),
                        receipt ? "receipt-id" : NULL, receipt);
        return;
    }
    if (res->outcome != RELAY_STORED) {
        static const char why[] =
            "The cluster could not confirm that the message was stored durably "
            "(Redis or RabbitMQ unavailable); it may or may not have been "
            "delivered. Reconnect and send it again (with the same x-idempotency-key, "
            "it is stored once).";
        session_error_x(s, NULL, ERROR_MESSAGE_NOT_STORED, why, sizeof why - 1,
                        receipt ? "receipt-id" : NULL, receipt);
        return;
    }
    session_flush_receipts(s);
}

static void session_on_published(void *ctx, const relay_result *res)
{
    size_t rlen;
    const char *rid = inflight_receipt_of(ctx, &rlen);
    /* A refusal's ERROR names the SEND by its receipt (read before the op
     * goes), so a client can tell which message it was. */
    char *receipt = res->outcome != RELAY_STORED && rid ? xstrndup(rid, rlen) : NULL;
    if (res->outcome == RELAY_STORED)
        inflight_set_id(ctx, res->id, strlen(res->id));
    session *s = session_op_finish(ctx);
    if (s)
        session_published(s, res, receipt);
    free(receipt);
}

/* A subscription: its record (subscription_size), plus an estimate of
 * what membership adds elsewhere (its room slot, the registry's member
 * record and command, a presence request). The same sizes are charged at
 * SUBSCRIBE and released when it goes. */
static size_t session_sub_cost(size_t id_len, size_t wire_len, size_t room_len)
{
    return budget_chunk(subscription_size(id_len, wire_len, room_len)) + 256;
}

/* What a /status subscription may hold besides its record, charged in
 * full at SUBSCRIBE (its list's length is known only later): a link on
 * each side per watched user, and the user's name in the lists it keeps
 * (claim, x-users). So a connection's watches are bounded by
 * limits.conn_memory like everything else it holds. */
static size_t session_status_cost(const server_config *c)
{
    return (size_t)c->contacts.max * 48;
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
    const server_config *c = s->list->env->conf;
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
    stomp_str name = { "", 0 };
    bool to_status = stomp_str_eq(dest, "/status");
    int kind = to_status ? ROOM_DEST_TOPIC : session_room(s, f, dest, &name, AUTH_READ);
    if (kind < 0)
        return;
    if (kind == ROOM_DEST_CONTROL) {
        session_error_with(s, f, ERROR_UNKNOWN_DESTINATION,
                           "/control/<room> takes SEND (moderation) only; cannot subscribe to: ",
                           dest);
        return;
    }
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
    if (since_h && (to_status || kind != ROOM_DEST_TOPIC || msgid_parse(since_h->p, since_h->len, &since) < 0)) {
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

    bool esc = session_escapes(s);
    size_t idesc = esc ? stomp_escaped_len(id->p, id->len) : id->len;
    size_t cost = session_sub_cost(id->len, idesc, name.len) +
                  (to_status ? session_status_cost(c) : 0);
    if (!session_fits(s, f, cost + (kind == ROOM_DEST_TOPIC && !to_status ? inflight_op_cost() : 0)))
        return;
    subscription *sub = xmalloc(subscription_size(id->len, idesc, name.len));
    memcpy(sub->id, id->p, id->len);
    sub->id_len = (uint32_t)id->len;
    memcpy(sub->id + id->len, name.p, name.len);    /* for tokens_refresh */
    sub->room_len = (uint8_t)name.len;
    sub->wire_len = (uint32_t)idesc;
    if (idesc != id->len)
        stomp_escape(sub->id + id->len + name.len, id->p, id->len);
    sub->session = s;
    sub->member = (subscriber){ 0 };
    sub->resume = NULL;
    sub->ack = ack;
    sub->kind = to_status ? SUB_STATUS : kind == ROOM_DEST_PRESENCE ? SUB_PRESENCE : SUB_TOPIC;
    sub->utf8 = utf8_valid(id->p, id->len);
    if (sub->kind == SUB_STATUS) {
        if (session_status_start(s, f, sub) < 0) {
            free(sub);
            return;
        }
    } else if (sub->kind == SUB_PRESENCE) {
        char rname[256];
        snprintf(rname, sizeof rname, "%.*s", (int)name.len, name.p);
        if (presence_subscribe(s->list->env->presence, &sub->member, rname) < 0) {
            free(sub);
            session_unavailable(s, f);
            return;
        }
    } else {
        sub->mod = 0;
        session_moderation_join(s, sub, since_h ? &since : NULL);   /* a ban check first */
    }
    budget_force(&s->budget, BUDGET_SUBS, cost);
    sub->next = s->subs;
    s->subs = sub;
    s->nsubs++;
    session_receipt(s, f);
}

static void session_drop_sub(session *s, subscription *sub)
{
    if (sub->kind == SUB_STATUS)
        status_unsubscribe(sub->status);
    else if (sub->kind == SUB_PRESENCE)
        presence_unsubscribe(s->list->env->presence, &sub->member);
    else if (sub->mod & SUB_MOD_CHECKING)
        session_moderation_forget(sub);     /* not a member yet */
    else {
        resume_cancel(sub->resume);
        relay_leave(s->list->env->relay, &sub->member, s->user);
    }
    session_scrub(s, sub);
    for (subscription **pp = &s->subs; *pp; pp = &(*pp)->next) {
        if (*pp == sub) {
            *pp = sub->next;
            break;
        }
    }
    s->nsubs--;
    budget_release(&s->budget, BUDGET_SUBS,
                   session_sub_cost(sub->id_len, sub->wire_len, sub->room_len) +
                       (sub->kind == SUB_STATUS ? session_status_cost(s->list->env->conf) : 0));
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

/* Publish one SEND; false (after an ERROR) when the cluster cannot take it
 * or, unless `charged` (COMMIT hands on what its transaction was charged),
 * the connection's budget cannot. A SEND's x-idempotency-key (checked by
 * on_send) goes with it. */
bool session_send_publish(session *s, const stomp_frame *f, const stomp_str *name, bool charged)
{
    size_t cost = session_send_cost(f);
    if (!charged && !session_fits(s, f, cost))
        return false;
    inflight_op *op = session_op(s, cost);
    if (!charged)
        session_receipt_for(s, f, op);
    const stomp_str *ik = stomp_frame_header(f, IDEMKEY_STOMP_HEADER);
    relay_pub_opts o = { .moderated = true, .idem_key = ik ? ik->p : NULL,
                         .idem_key_len = ik ? ik->len : 0,
                         .idem_window_ms = s->list->env->conf->api_idempotency_window_s * 1000LL };
    if (relay_publish(s->list->env->relay, name, f, s->user, session_user_name(s),
                      auth_role_name((jwt_role)s->role), &o, session_on_published, op) < 0) {
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
    auth *a = s->list->env->auth;
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
        s->list->env->metrics->access_denied++;
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
    session_timer_update(s);            /* the new token may expire sooner */
    s->list->env->metrics->token_refreshes++;
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
    if (stomp_str_eq(dest, "/status")) {
        session_status_send(s, f);
        return;
    }
    stomp_str name;
    int kind = session_room(s, f, dest, &name, AUTH_SEND);
    if (kind < 0)
        return;
    if (kind == ROOM_DEST_CONTROL) {
        session_control_send(s, f, &name);
        return;
    }
    if (kind == ROOM_DEST_PRESENCE) {
        session_error_with(s, f, ERROR_READ_ONLY_DESTINATION,
                           "Presence is published by the server; SEND is not allowed to: ", dest);
        return;
    }
    const stomp_str *ik = stomp_frame_header(f, IDEMKEY_STOMP_HEADER);
    if (ik && !idemkey_valid(ik->p, ik->len)) {
        session_error(s, f, ERROR_INVALID_IDEMPOTENCY_KEY,
                      IDEMKEY_RULE "; the message was not sent.");
        return;
    }
    /* Before buffering too: nothing in a COMMIT may fail storage. */
    char why[400];
    if (relay_check_send(s->list->env->relay, &name, f, s->user, session_user_name(s),
                         auth_role_name((jwt_role)s->role), why, sizeof why) < 0) {
        session_error(s, f, ERROR_TOO_LARGE_FOR_STORAGE, why);
        return;
    }
    if (session_buffer_in_txn(s, f))
        return;
    session_send_publish(s, f, &name, false);   /* its receipt comes with its id */
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

/* --- dispatch ------------------------------------------------------------- */

static void on_disconnect(session *s, const stomp_frame *f)
{
    s->draining = true;
    session_receipt_or_close(s, f, true);
}

void session_handle(session *s, const stomp_frame *f)
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
    bool waits = !session_ops_idle(s) || f->command == STOMP_CMD_SEND ||
                 f->command == STOMP_CMD_SUBSCRIBE || f->command == STOMP_CMD_COMMIT;
    if (r && waits && f->command != STOMP_CMD_DISCONNECT && s->state == SESSION_CONNECTED &&
        !session_fits(s, f, inflight_receipt_cost(r->len)))
        return;
    switch (f->command) {
    case STOMP_CMD_CONNECT:
    case STOMP_CMD_STOMP:
        session_on_connect(s, f);
        session_timer_update(s);        /* heart-beats, the token's expiry */
        break;
    case STOMP_CMD_SEND:        on_send(s, f); break;
    case STOMP_CMD_SUBSCRIBE:   on_subscribe(s, f); break;
    case STOMP_CMD_UNSUBSCRIBE: on_unsubscribe(s, f); break;
    case STOMP_CMD_ACK:
    case STOMP_CMD_NACK:        on_ack(s, f); break;
    case STOMP_CMD_BEGIN:       session_on_begin(s, f); break;
    case STOMP_CMD_COMMIT:
    case STOMP_CMD_ABORT:       session_on_commit_or_abort(s, f); break;
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

/* --- lifecycle ------------------------------------------------------------- */

session *session_create(session_list *list, struct lws *wsi, const char *addr)
{
    session *s = xcalloc(1, sizeof *s);
    s->addr = addr;
    s->list = list;
    s->wsi = wsi;
    s->id = list->next_id++;
    s->created_ms = s->last_rx_ms = s->last_tx_ms = session_now(s);
    ratelimit_init(&s->rl, s->list->env->limits, s->created_ms);
    s->state = SESSION_AWAIT_CONNECT;
    s->close_code = LWS_CLOSE_STATUS_NORMAL;
    s->next = list->head;
    if (list->head)
        list->head->prev = s;
    list->head = s;
    list->count++;
    s->list->env->metrics->connections_opened++;
    session_timer_update(s);            /* stomp.connect_timeout_ms */
    return s;
}

void session_destroy(session *s)
{
    if (!s)
        return;
    session_timer_cancel(s);
    while (s->subs)
        session_drop_sub(s, s->subs);
    session_busy_free(s->busy);     /* completions still to come find no session */
    s->busy = NULL;
    if (s->online)
        registry_offline(s->list->env->registry, s->user);   /* s->user may be its copy: last use */
    if (s->user_own)
        free((char *)s->user);  /* the display name lives in the same block */
    s->user = NULL;
    jwt_claims_free(s->who);
    if (s->dirty_at)
        s->list->dirty[s->dirty_at - 1] = NULL;
    if (s->wait_at)
        session_delay_cancel(s);
    while (s->qlen)
        session_pop(s);
    free(s->q);
    if (s->reap_queued) {
        for (session **pp = &s->list->reap; *pp; pp = &(*pp)->reap_next) {
            if (*pp == s) {
                *pp = s->reap_next;
                break;
            }
        }
    }
    if (s->prev)
        s->prev->next = s->next;
    else
        s->list->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->list->count--;
    s->list->env->metrics->connections_closed++;
    free(s);
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

void session_list_restart(session_list *list)
{
    for (session *s = list->head; s; s = s->next)
        session_restart(s);
}
