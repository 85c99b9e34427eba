/* session_input.c — a session's input: bytes from lws to handled frames.
 *
 * Input. Bytes from lws are parsed straight out of lws's buffer when nothing
 * is left over from before (the common case: whole frames per WebSocket
 * message), and only an incomplete tail is copied into s->busy->rx. The
 * buffer is released as soon as it empties, so idle connections hold no
 * input memory. While rx holds a partial frame, rx_part keeps the parser's scan state
 * (each byte is examined once however the frame is split) and the read
 * pacing of a frame dripped in tiny pieces (rxpace.h).
 *
 * Limits on input: before CONNECTED a peer may send one frame and a few
 * EOLs; a frame may span stomp.max_frame_pieces WebSocket frames; every
 * frame is charged to token buckets (ratelimit.c), and while one is in debt
 * the session stops reading, so TCP slows the peer down.
 */
#include "session_internal.h"
#include "session.h"

#include "log.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- limits on input --------------------------------------------------------- */

static bool session_limited(const session *s)
{
    return ratelimit_active(s->list->env->limits);
}

/* Refill the token buckets and say whether the session may go on reading
 * (see ratelimit.h: a frame is charged after it is parsed). */
bool session_may_read(session *s, uint64_t now)
{
    return ratelimit_may(&s->rl, s->list->env->limits, now);
}

/* Charge what one parse step consumed: a frame, or a run of heart-beats. */
static void session_charge(session *s, stomp_command cmd, size_t bytes)
{
    ratelimit_charge(&s->rl, s->list->env->limits,
                     cmd == STOMP_CMD_SEND ? RATELIMIT_SEND :
                     cmd == STOMP_CMD_NONE ? RATELIMIT_HEARTBEAT : RATELIMIT_FRAME, bytes);
}

/* Stop reading from the peer until the session's timer finds the buckets refilled:
 * TCP backpressure slows the sender instead of dropping it. */
static void session_throttle(session *s)
{
    if (s->throttled)
        return;
    s->throttled = true;
    s->list->env->metrics->throttled++;
    lws_rx_flow_control(s->wsi, 0);
    session_timer_update(s);            /* the buckets are looked at every tick */
    log_debug("throttled", "conn=%llu", (unsigned long long)s->id);
}

void session_hold_input(session *s)
{
    if (s->held)
        return;
    s->held = true;
    if (!s->throttled)
        lws_rx_flow_control(s->wsi, 0);
}

void session_release_input(session *s)
{
    if (!s->held)
        return;
    s->held = false;
    if (s->dead || s->state == SESSION_CLOSING)
        return;
    if (!s->throttled)
        lws_rx_flow_control(s->wsi, 1);
    session_feed(s, NULL, 0);       /* what waited in s->rx */
}

/* The partial frame's state goes (a frame boundary, or its bytes went). */
static void session_part_free(session *s)
{
    rx_partial *part = session_rx_part(s);
    if (!part)
        return;
    rxpace_reset(&part->pace, lws_get_socket_fd(s->wsi));
    free(part);
    s->busy->rx_part = NULL;
}

/* Forget every byte of input held (nothing of it will be parsed). */
static void session_drop_input(session *s)
{
    if (!s->busy)
        return;
    buf_deinit(&s->busy->rx);
    s->busy->rx_since_ms = 0;
    session_part_free(s);
    session_busy_trim(s);
}

/* The input buffer may have grown: over the budget, the connection ends
 * (the buffer goes at once; no frame of it will be parsed). */
static void session_check_input(session *s)
{
    if (budget_fits(&s->budget, session_input_bytes(s), session_output_bytes(s),
                    s->list->env->conf->conn_memory))
        return;
    size_t need = session_input_bytes(s);
    session_drop_input(s);
    session_over_budget(s, NULL, need);
}

/* Parse and handle the frames in data[0..n); returns the bytes consumed. */
static size_t session_parse(session *s, char *data, size_t n)
{
    metrics *mt = s->list->env->metrics;
    stomp_parser *parser = s->list->env->parser;
    bool limited = s->state == SESSION_CONNECTED && session_limited(s);
    uint64_t now = session_now(s);
    size_t off = 0;
    stomp_scan scan = session_rx_part(s) ? session_rx_part(s)->scan : (stomp_scan){ 0 };
    while (off < n && s->state != SESSION_CLOSING && !s->draining && !s->held) {
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
        session_busy *b = session_busy_get(s);
        if (!b->rx_part)
            b->rx_part = xcalloc(1, sizeof *b->rx_part);
        b->rx_part->scan = scan;
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
    size_t cap = s->list->env->conf->max_frame + SESSION_PRE_CONNECT_SLACK;
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
    int max = s->list->env->conf->max_frame_pieces;
    rx_partial *part = session_rx_part(s);
    if (!part || !max || lws_remaining_packet_payload(s->wsi) != 0)
        return true;
    if (++part->ws_frames <= (uint32_t)max)
        return true;
    s->list->env->metrics->pieces_refused++;
    session_refuse_flood(s, ERROR_TOO_MANY_PIECES,
                         "A STOMP frame was split across more WebSocket frames than "
                         "stomp.max_frame_pieces allows; send each frame in one WebSocket "
                         "message.");
    return false;
}

size_t session_read_again(const session *s)
{
    if (s->state == SESSION_CLOSING || s->draining || s->throttled || s->held)
        return 0;
    const rx_partial *part = session_rx_part(s);
    return part && part->pace.raised ? s->list->env->conf->ws_rx_buffer + LWS_PRE : 1;
}

int session_feed(session *s, void *in, size_t len)
{
    if (s->state == SESSION_CLOSING || s->draining)
        return 0;
    uint64_t now = session_now(s);
    if (len) {
        s->last_rx_ms = now;
        s->list->env->metrics->bytes_in += len;
    }
    if (!session_pre_connect_ok(s, len)) {
        session_drop_input(s);
        return 0;
    }
    if (s->throttled || s->held) {
        /* lws may hand over what it had read before the pause. */
        if (len)
            buf_append(&session_busy_get(s)->rx, in, len);
        session_check_input(s);
        return 0;
    }

    char *data = in;
    size_t n = len;
    if (s->busy && s->busy->rx.len) {
        if (len)
            buf_append(&s->busy->rx, in, len);
        data = s->busy->rx.data;
        n = s->busy->rx.len;
    }
    size_t off = n ? session_parse(s, data, n) : 0;

    if (s->state == SESSION_CLOSING || s->draining || off == n) {
        session_drop_input(s);
        return 0;
    }
    /* A partial frame is left: its clock starts when the frame began, which
     * is now unless it is the same partial frame as before. */
    session_busy *b = session_busy_get(s);
    if (off || !b->rx_since_ms)
        b->rx_since_ms = now;
    if (len && !session_count_piece(s)) {
        session_drop_input(s);
        return 0;
    }
    if (b->rx_part && len &&
        rxpace_piece(&b->rx_part->pace, lws_get_socket_fd(s->wsi), len,
                     s->list->env->conf->ws_rx_buffer, (uint32_t)s->list->env->conf->drip_pieces))
        s->list->env->metrics->rx_paced++;
    session_timer_update(s);            /* the frame's timeout; a raised read mark */
    if (data == b->rx.data)
        buf_consume(&b->rx, off);
    else
        buf_append(&b->rx, data + off, n - off);
    session_check_input(s);
    return 0;
}
