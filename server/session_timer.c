/* session_timer.c — a session's timers: heart-beats, timeouts, token
 * expiry, the end of a throttle, and when each is next due.
 *
 * The checks (session_tick) are the same for every session: a paced
 * frame's read mark goes back to 1 (rxpace.h), CONNECT must come within
 * stomp.connect_timeout_ms, a token expires, a throttled session reads
 * again once its buckets refill, a frame must be completed within
 * stomp.frame_timeout_ms, a silent peer is closed (stomp.idle_timeout_ms
 * without heart-beats, heartbeat.grace x its interval with them), and a
 * heart-beat goes out when nothing else did.
 *
 * They run only when one of them can act. Each session has one node on the
 * list's timer wheel (twheel.h; a slot is one tick, 1/heartbeat.hz),
 * scheduled at the earliest time any check that applies could act
 * (session_timer_next), or not scheduled at all when none applies: an idle
 * connection without heart-beats or an idle timeout costs nothing per
 * tick, and one with heart-beats is visited about once per interval
 * instead of heartbeat.hz times a second. When the node fires, the checks
 * run as they always do and the node goes to the session's next time.
 *
 * Lazy. A node is never later than any check's time, but may be earlier:
 * an early visit finds nothing to do and moves the node on. Input and
 * output only ever push the times back (last_rx_ms, last_tx_ms move
 * forward), so reads and writes never touch the wheel; the node finds the
 * later time when it fires. What brings a time nearer calls
 * session_timer_update: a new session, CONNECT (heart-beats, a token's
 * expiry, an idle timeout start), a fresh token, a throttle, a partial
 * frame (its timeout; a raised read mark waits one tick at most).
 *
 * A check that looks every tick in some state keeps doing so there: a
 * throttled session (until its buckets refill), a heart-beat due while
 * output is still queued (it waits for the queue to empty), a raised read
 * mark (one tick).
 */
#include "session_internal.h"
#include "session.h"

#include "log.h"
#include "tokens.h"

#include <stddef.h>

/* A minute of ticks, rounded up to a power of two (at 10 ticks a second,
 * 1,024 slots): the default heart-beats and timeouts fall within one
 * revolution of the wheel; a deadline further out (a token expiring in an
 * hour) is looked at once per revolution until it is due. */
#define SESSION_TIMER_SPAN_MS 60000
#define SESSION_TIMER_MIN_SLOTS 64
#define SESSION_TIMER_MAX_SLOTS 8192

/* One tick (1/heartbeat.hz), ms. */
static uint64_t session_tick_ms(const server_config *c)
{
    return 1000 / (uint64_t)c->hz;
}

void session_timer_init(session_list *list, uint64_t now_ms)
{
    uint64_t tick = session_tick_ms(list->env->conf);
    size_t n = SESSION_TIMER_MIN_SLOTS;
    while (n < SESSION_TIMER_MAX_SLOTS && n * tick < SESSION_TIMER_SPAN_MS)
        n *= 2;
    twheel_init(&list->timers, tick, n, now_ms);
}

void session_timer_deinit(session_list *list)
{
    twheel_deinit(&list->timers);
}

static void session_tick(session *s, uint64_t now)
{
    const server_config *c = s->list->env->conf;
    if (s->dead)
        return;
    if (session_rx_part(s))             /* a paced frame's last bytes wait one tick at most */
        rxpace_reset(&session_rx_part(s)->pace, lws_get_socket_fd(s->wsi));
    if (s->state == SESSION_AWAIT_CONNECT) {
        if (now - s->created_ms >= (uint64_t)c->connect_timeout_ms) {
            s->list->env->metrics->connect_timeouts++;
            log_info("connect_timeout", "conn=%llu", (unsigned long long)s->id);
            session_kill(s, "connect_timeout");
        }
        return;
    }
    if (s->token_deadline_ms && now >= s->token_deadline_ms && s->state == SESSION_CONNECTED &&
        !s->draining) {
        s->list->env->metrics->token_expiries++;
        session_error(s, NULL, ERROR_TOKEN_EXPIRED, tokens_expired_detail);
        return;
    }
    if (s->throttled && session_may_read(s, now)) {
        s->throttled = false;
        if (!s->held)
            lws_rx_flow_control(s->wsi, 1);
        session_feed(s, NULL, 0);       /* what waited in s->rx */
        if (s->dead)
            return;
    }
    if (!s->throttled && !s->held && session_rx_since(s) &&
        now - session_rx_since(s) >= (uint64_t)c->frame_timeout_ms &&
        s->state == SESSION_CONNECTED) {
        s->list->env->metrics->frame_timeouts++;
        session_error(s, NULL, ERROR_FRAME_TIMEOUT,
                      "A frame was not completed within stomp.frame_timeout_ms.");
        return;
    }
    if (c->idle_timeout_ms && !s->hb_recv_ms && s->state == SESSION_CONNECTED &&
        now - s->last_rx_ms >= (uint64_t)c->idle_timeout_ms) {
        s->list->env->metrics->idle_timeouts++;
        log_info("idle_timeout", "conn=%llu silent_ms=%llu", (unsigned long long)s->id,
                 (unsigned long long)(now - s->last_rx_ms));
        session_kill(s, "idle_timeout");
        return;
    }
    if (s->hb_recv_ms && now - s->last_rx_ms > (uint64_t)(s->hb_recv_ms * c->hb_grace)) {
        s->list->env->metrics->heartbeat_timeouts++;
        log_info("heartbeat_timeout", "conn=%llu silent_ms=%llu", (unsigned long long)s->id,
                 (unsigned long long)(now - s->last_rx_ms));
        session_kill(s, "heartbeat_timeout");
        return;
    }
    /* Send a little early rather than late: the tick is coarse, and the
     * peer's timeout is a multiple of the interval anyway. */
    uint64_t tick = session_tick_ms(c);
    if (s->hb_send_ms && s->state == SESSION_CONNECTED && s->qlen == 0 &&
        now - s->last_tx_ms + tick >= s->hb_send_ms) {
        session_push(s, msg_heartbeat(), NULL);
        s->last_tx_ms = now;
    }
}

static void session_timer_min(uint64_t *next, uint64_t t)
{
    if (t < *next)
        *next = t;
}

/* The earliest time at which a check of session_tick could act on s, for
 * the state s is in (each condition mirrors its check's); a time already
 * past is the next tick's (now + 1). 0: no check can act until s changes
 * (session_timer_update). */
static uint64_t session_timer_next(const session *s, uint64_t now)
{
    const server_config *c = s->list->env->conf;
    uint64_t next = UINT64_MAX;
    if (s->dead)
        return 0;
    if (session_rx_part(s) && session_rx_part(s)->pace.raised)
        session_timer_min(&next, now + 1);
    if (s->state == SESSION_AWAIT_CONNECT) {
        session_timer_min(&next, s->created_ms + (uint64_t)c->connect_timeout_ms);
    } else {
        bool connected = s->state == SESSION_CONNECTED;
        if (s->token_deadline_ms && connected && !s->draining)
            session_timer_min(&next, s->token_deadline_ms);
        if (s->throttled)               /* the buckets are looked at every tick */
            session_timer_min(&next, now + 1);
        else if (!s->held && session_rx_since(s) && connected)
            session_timer_min(&next, session_rx_since(s) + (uint64_t)c->frame_timeout_ms);
        if (c->idle_timeout_ms && !s->hb_recv_ms && connected)
            session_timer_min(&next, s->last_rx_ms + (uint64_t)c->idle_timeout_ms);
        if (s->hb_recv_ms)
            session_timer_min(&next, s->last_rx_ms + (uint64_t)(s->hb_recv_ms * c->hb_grace) + 1);
        if (s->hb_send_ms && connected) {
            /* Due while output is queued too: the check then waits a tick
             * at a time for the queue to empty, as it says. */
            uint64_t at = s->last_tx_ms + s->hb_send_ms, tick = session_tick_ms(c);
            session_timer_min(&next, at > tick ? at - tick : 0);
        }
    }
    if (next == UINT64_MAX)
        return 0;
    return next > now ? next : now + 1;
}

void session_timer_update(session *s)
{
    uint64_t next = session_timer_next(s, session_now(s));
    if (next && (!twheel_scheduled(&s->timer) || next < s->timer.due_ms))
        twheel_add(&s->list->timers, &s->timer, next);
}

void session_timer_cancel(session *s)
{
    twheel_cancel(&s->list->timers, &s->timer);
}

/* The wheel's fire callback: the checks, then the node to the next time
 * (which the checks may have moved: a throttle's end parses input). */
static void session_timer_fire(twheel_node *n, uint64_t now_ms, void *ctx)
{
    (void)ctx;
    session *s = (session *)(void *)((char *)n - offsetof(session, timer));
    session_tick(s, now_ms);
    uint64_t next = session_timer_next(s, now_ms);
    if (next)
        twheel_add(&s->list->timers, n, next);
    else
        twheel_cancel(&s->list->timers, n);
}

void session_list_tick(session_list *list, uint64_t now_ms)
{
    twheel_advance(&list->timers, now_ms, session_timer_fire, NULL);
}
