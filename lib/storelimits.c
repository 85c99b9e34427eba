/* storelimits.c — the message store's size limits (see storelimits.h).
 *
 * The table is data; the functions are pure arithmetic over it, so that the
 * server's check of a SEND, the worker's check of its schema and the
 * worker's explanation of a refused row all read the same numbers. Fields
 * are checked before the row: a client told "content-type is 1025 bytes"
 * learns more than "the message is too large".
 */
#include "storelimits.h"

#include <stdio.h>
#include <string.h>

const storelimits_limit storelimits_table[STORELIMITS_NFIELDS + 1] = {
    [STORELIMITS_ROOM]         = { "room", "room name", STORELIMITS_ROOM_MAX },
    [STORELIMITS_SENDER]       = { "sender", "sender (login or token subject)",
                                   STORELIMITS_SENDER_MAX },
    [STORELIMITS_SENDER_NAME]  = { "sender_name", "sender name (x-display-name or token name)",
                                   STORELIMITS_SENDER_NAME_MAX },
    [STORELIMITS_CONTENT_TYPE] = { "content_type", "content-type header",
                                   STORELIMITS_CONTENT_TYPE_MAX },
    [STORELIMITS_HEADERS]      = { "headers",
                                   "header lines as stored (escaped STOMP 1.2, with sender-role)",
                                   STORELIMITS_HEADERS_MAX },
    [STORELIMITS_BODY]         = { "body", "body", STORELIMITS_BODY_MAX },
    [STORELIMITS_ORIGIN]       = { "origin", "server id (server.id)", STORELIMITS_ORIGIN_MAX },
    [STORELIMITS_ROW]          = { "", "message as stored (every field together)",
                                   STORELIMITS_ROW_MAX },
};

_Static_assert(STORELIMITS_ROW_MAX <= STORELIMITS_BODY_MAX,
               "a body as large as the row must fit its column");

static size_t storelimits_len(const char *s)
{
    return s ? strlen(s) : 0;
}

void storelimits_of_envelope(const envelope *env, storelimits_sizes *out)
{
    out->v[STORELIMITS_ROOM] = storelimits_len(env->room);
    out->v[STORELIMITS_SENDER] = storelimits_len(env->sender);
    out->v[STORELIMITS_SENDER_NAME] = storelimits_len(env->sender_name);
    out->v[STORELIMITS_CONTENT_TYPE] = storelimits_len(env->content_type);
    out->v[STORELIMITS_HEADERS] = env->headers ? env->headers_len : 0;
    out->v[STORELIMITS_BODY] = env->body_len;
    out->v[STORELIMITS_ORIGIN] = storelimits_len(env->origin);
}

size_t storelimits_row(const storelimits_sizes *s)
{
    size_t row = 0;
    for (int i = 0; i < STORELIMITS_NFIELDS; i++)
        row += s->v[i];
    return row;
}

int storelimits_check(const storelimits_sizes *s)
{
    for (int i = 0; i < STORELIMITS_NFIELDS; i++)
        if (s->v[i] > storelimits_table[i].max)
            return i;
    return storelimits_row(s) > STORELIMITS_ROW_MAX ? STORELIMITS_ROW : -1;
}

void storelimits_explain(const storelimits_sizes *s, int field, char *out, size_t outlen)
{
    if (!outlen)
        return;
    if (field < 0 || field > STORELIMITS_ROW) {
        snprintf(out, outlen, "the message fits the message store");
        return;
    }
    const storelimits_limit *l = &storelimits_table[field];
    if (field == STORELIMITS_ROW) {
        snprintf(out, outlen,
                 "The %s would be %zu bytes (body %zu, header lines %zu, content-type %zu, "
                 "room, sender and server id %zu); storage holds at most %zu bytes per message.",
                 l->what, storelimits_row(s), s->v[STORELIMITS_BODY], s->v[STORELIMITS_HEADERS],
                 s->v[STORELIMITS_CONTENT_TYPE],
                 s->v[STORELIMITS_ROOM] + s->v[STORELIMITS_SENDER] +
                     s->v[STORELIMITS_SENDER_NAME] + s->v[STORELIMITS_ORIGIN],
                 l->max);
        return;
    }
    snprintf(out, outlen, "The %s is %zu bytes; storage holds at most %zu (messages.%s).",
             l->what, s->v[field], l->max, l->column);
}
