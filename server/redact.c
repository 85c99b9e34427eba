/* redact.c — one redaction, step by step (see redact.h).
 *
 * A redaction is an op that walks at most four steps, each an answer from
 * another module, on the loop:
 *
 *   1. Redis (registry_redact_mark): atomically, "already marked?", "does
 *      the log hold it?", and if so the mark. From this moment every read
 *      of the log hands out the tombstone. The answer carries the entry as
 *      the log holds it.
 *   2. MySQL (db_redact.h): when the log held it, the tombstone row made
 *      from that entry (an upsert: storage may not have written the
 *      original yet, and its later insert is then a no-op); when the log
 *      did not, the stored row turned into a tombstone in place (or
 *      NOT_FOUND, or ALREADY when it was one).
 *   3. The redaction event through the relay (relay_publish_envelope): a
 *      room message with the x-redacts headers and an empty body; the op
 *      waits for its storage confirm, like a SEND's RECEIPT.
 *   4. The answer: OK with the event's id.
 *
 * Failure. A step that fails after the mark takes the mark back
 * (registry_redact_unmark, only that very mark), so a repeat of the
 * request starts again from step 1 and completes: the MySQL upsert and the
 * event are safe to do again (a client sees x-redacts for a message it
 * removed already, and ignores it). A message only MySQL holds has no mark
 * to take back: its row is a tombstone once step 2 ran, and a repeat after
 * a failed event answers ALREADY.
 *
 * The mark and the tombstone carry the same (by, at): at is this server's
 * wall clock when the request came in.
 *
 * Shutdown. redact_destroy only flags the redactor: an op in flight
 * finishes UNAVAILABLE at its next answer without calling any module again
 * (they are going away), and the last op frees the redactor.
 */
#include "redact.h"

#include "clock.h"
#include "db_redact.h"
#include "log.h"
#include "mem.h"
#include "msgid.h"
#include "registry_redact.h"
#include "relay.h"
#include "room.h"
#include "stomp.h"
#include "storelimits.h"
#include "userid.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct redact {
    redact_env env;
    size_t ops;               /* in flight */
    bool closing;             /* redact_destroy was called */
};

typedef struct redact_op {
    redact *rd;
    redact_done_fn done;
    void *ctx;
    char *room, *id, *by;
    char *mark;               /* the mark this op records (JSON) */
    uint64_t at_ms;
    bool marked;              /* step 1 marked: a failure takes it back */
} redact_op;

redact *redact_create(const redact_env *env)
{
    redact *rd = xcalloc(1, sizeof *rd);
    rd->env = *env;
    return rd;
}

void redact_destroy(redact *rd)
{
    if (!rd)
        return;
    rd->closing = true;
    if (rd->ops == 0)
        free(rd);
}

/* --- the pure parts ----------------------------------------------------------------- */

void redact_tombstone_headers(buf *out, const char *by, uint64_t at_ms)
{
    stomp_put_header_str(out, "x-redacted-by", by, true);
    buf_append_str(out, "x-redacted-at:");
    buf_append_u64(out, at_ms);
    buf_append_char(out, '\n');
}

void redact_event_headers(buf *out, const char *id, const char *by, uint64_t at_ms)
{
    stomp_put_header_str(out, "x-redacts", id, true);
    redact_tombstone_headers(out, by, at_ms);
}

char *redact_mark_json(const char *by, uint64_t at_ms)
{
    json_t *o = json_pack("{s:s, s:I}", "by", by, "at", (json_int_t)at_ms);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static void redact_copy_by(const char *p, size_t n, char *by_out, size_t by_cap)
{
    if (n >= by_cap)
        n = by_cap - 1;
    memcpy(by_out, p, n);
    by_out[n] = '\0';
}

bool redact_parse_mark(const char *text, size_t len, char *by_out, size_t by_cap,
                       uint64_t *at_ms)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    json_t *by = json_object_get(o, "by"), *at = json_object_get(o, "at");
    bool ok = json_is_string(by) && json_is_integer(at) && json_integer_value(at) >= 0;
    if (ok) {
        redact_copy_by(json_string_value(by), json_string_length(by), by_out, by_cap);
        *at_ms = (uint64_t)json_integer_value(at);
    }
    json_decref(o);
    return ok;
}

bool redact_parse_headers(const char *h, size_t len, char *by_out, size_t by_cap,
                          uint64_t *at_ms)
{
    static const char by_name[] = "x-redacted-by:", at_name[] = "x-redacted-at:";
    bool has_by = false, has_at = false;
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && h[end] != '\n')
            end++;
        const char *line = h + i;
        size_t ll = end - i;
        if (!has_by && ll >= sizeof by_name - 1 && !memcmp(line, by_name, sizeof by_name - 1)) {
            /* Undo STOMP 1.2 escapes into by_out. */
            size_t w = 0;
            for (size_t k = sizeof by_name - 1; k < ll && w + 1 < by_cap; k++) {
                char c = line[k];
                if (c == '\\' && k + 1 < ll) {
                    char e = line[++k];
                    c = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 'c' ? ':' : e;
                }
                by_out[w++] = c;
            }
            by_out[w] = '\0';
            has_by = true;
        } else if (!has_at && ll > sizeof at_name - 1 &&
                   !memcmp(line, at_name, sizeof at_name - 1)) {
            uint64_t v = 0;
            size_t k = sizeof at_name - 1;
            for (; k < ll && line[k] >= '0' && line[k] <= '9' && v < UINT64_MAX / 10; k++)
                v = v * 10 + (uint64_t)(line[k] - '0');
            if (k == ll) {
                *at_ms = v;
                has_at = true;
            }
        }
        i = end + 1;
    }
    return has_by && has_at;
}

/* --- the steps ---------------------------------------------------------------------- */

static void redact_op_free(redact_op *op)
{
    free(op->room);
    free(op->id);
    free(op->by);
    free(op->mark);
    free(op);
}

/* Answer and end the op. */
static void redact_finish(redact_op *op, redact_status st, const char *event_id, const char *by,
                          uint64_t at_ms, const char *why)
{
    redact *rd = op->rd;
    redact_result res = {
        .status = st,
        .room = op->room,
        .id = op->id,
        .redaction_id = event_id ? event_id : "",
        .by = by ? by : "",
        .at_ms = at_ms,
        .why = why ? why : "",
    };
    if (st == REDACT_OK) {
        char q[300];
        log_info("redacted", "room=%s id=%s by=%s event=%s", op->room, op->id,
                 log_q(q, sizeof q, op->by, strlen(op->by)), event_id);
    } else if (st == REDACT_UNAVAILABLE) {
        log_warn("redact_failed", "room=%s id=%s reason=\"%s\"", op->room, op->id, res.why);
    }
    op->done(op->ctx, &res);
    redact_op_free(op);
    /* After done: it may have called redact_destroy. */
    if (--rd->ops == 0 && rd->closing)
        free(rd);
}

/* A step failed: take our mark back (so a repeat starts over), answer. */
static void redact_fail(redact_op *op, const char *why)
{
    if (op->marked && !op->rd->closing &&
        registry_redact_unmark(op->rd->env.registry, op->room, op->id, op->mark) < 0)
        log_warn("redact_unmark_failed", "room=%s id=%s reason=\"registry down\"", op->room,
                 op->id);
    redact_finish(op, REDACT_UNAVAILABLE, NULL, NULL, 0, why);
}

static void redact_on_event(void *ctx, const relay_result *res)
{
    redact_op *op = ctx;
    if (op->rd->closing) {
        redact_finish(op, REDACT_UNAVAILABLE, NULL, NULL, 0, "shutting down");
        return;
    }
    if (res->outcome != RELAY_STORED) {
        redact_fail(op, "the redaction event was not confirmed stored (RabbitMQ or Redis)");
        return;
    }
    redact_finish(op, REDACT_OK, res->id, op->by, op->at_ms, NULL);
}

/* Step 3: the redaction event. */
static void redact_publish_event(redact_op *op)
{
    envelope ev;
    memset(&ev, 0, sizeof ev);
    ev.room = xstrdup(op->room);
    ev.id = xstrdup("");
    ev.sender = xstrdup(op->by);
    ev.sender_name = xstrdup(op->by);
    ev.origin = xstrdup("");
    buf h;
    buf_init(&h);
    redact_event_headers(&h, op->id, op->by, op->at_ms);
    ev.headers = buf_detach(&h, &ev.headers_len);
    if (relay_publish_envelope(op->rd->env.relay, &ev, redact_on_event, op) < 0)
        redact_fail(op, "the cluster cannot publish now (Redis or RabbitMQ unavailable)");
}

static void redact_on_db(void *ctx, const db_redact_result *r)
{
    redact_op *op = ctx;
    if (op->rd->closing) {
        redact_finish(op, REDACT_UNAVAILABLE, NULL, NULL, 0, "shutting down");
        return;
    }
    switch (r->status) {
    case DB_REDACT_FAILED:
        redact_fail(op, "the message store (MySQL) is unavailable");
        return;
    case DB_REDACT_NOT_FOUND:
        redact_finish(op, REDACT_NOT_FOUND, NULL, NULL, 0, NULL);
        return;
    case DB_REDACT_ALREADY: {
        char by[USERID_MAX + 1] = "";
        uint64_t at = 0;
        redact_parse_headers(r->headers, r->headers_len, by, sizeof by, &at);
        redact_finish(op, REDACT_ALREADY, NULL, by, at, NULL);
        return;
    }
    case DB_REDACT_DONE:
        break;
    }
    redact_publish_event(op);
}

/* The tombstone's header lines, for MySQL. */
static void redact_tomb_headers(const redact_op *op, char **h, size_t *len)
{
    buf b;
    buf_init(&b);
    redact_tombstone_headers(&b, op->by, op->at_ms);
    *h = buf_detach(&b, len);
}

static void redact_on_mark(void *ctx, const registry_redact_result *r)
{
    redact_op *op = ctx;
    if (op->rd->closing) {
        redact_finish(op, REDACT_UNAVAILABLE, NULL, NULL, 0, "shutting down");
        return;
    }
    switch (r->status) {
    case REGISTRY_REDACT_FAILED:
        redact_finish(op, REDACT_UNAVAILABLE, NULL, NULL, 0,
                      "the registry (Redis) is unavailable");
        return;
    case REGISTRY_REDACT_ALREADY: {
        char by[USERID_MAX + 1] = "";
        uint64_t at = 0;
        redact_parse_mark(r->mark, strlen(r->mark), by, sizeof by, &at);
        redact_finish(op, REDACT_ALREADY, NULL, by, at, NULL);
        return;
    }
    case REGISTRY_REDACT_EVENT:
        /* A redaction event is no message to remove (and clients act on it). */
        redact_finish(op, REDACT_NOT_FOUND, NULL, NULL, 0, NULL);
        return;
    case REGISTRY_REDACT_ABSENT: {
        char *h;
        size_t hl;
        redact_tomb_headers(op, &h, &hl);
        db_redact_stored(op->rd->env.db, op->room, op->id, h, hl, redact_on_db, op);
        free(h);
        return;
    }
    case REGISTRY_REDACT_MARKED:
        break;
    }
    op->marked = true;
    envelope tomb;
    envelope_copy(&tomb, r->orig);
    free(tomb.content_type);
    tomb.content_type = NULL;
    free(tomb.body);
    tomb.body = NULL;
    tomb.body_len = 0;
    free(tomb.headers);
    redact_tomb_headers(op, &tomb.headers, &tomb.headers_len);
    db_redact_write(op->rd->env.db, &tomb, redact_on_db, op);
    envelope_free(&tomb);
}

int redact_message(redact *rd, const char *rname, const char *id, const char *by,
                   redact_done_fn done, void *ctx)
{
    msgid mid;
    if (!room_name_valid(rname, strlen(rname), STORELIMITS_ROOM_MAX) ||
        msgid_parse(id, strlen(id), &mid) < 0 || !userid_valid(by, strlen(by)))
        return REDACT_EINVAL;
    if (rd->closing || !rd->env.db)
        return REDACT_EDOWN;
    redact_op *op = xcalloc(1, sizeof *op);
    op->rd = rd;
    op->done = done;
    op->ctx = ctx;
    op->room = xstrdup(rname);
    op->id = xstrdup(id);
    op->by = xstrdup(by);
    op->at_ms = clock_wall_ms();
    op->mark = redact_mark_json(by, op->at_ms);
    if (registry_redact_mark(rd->env.registry, rname, id, op->mark, redact_on_mark, op) < 0) {
        redact_op_free(op);
        return REDACT_EDOWN;
    }
    rd->ops++;
    return 0;
}
