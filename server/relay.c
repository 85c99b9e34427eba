/* relay.c — message ids, MESSAGE encoding, local delivery.
 *
 * Message ids have the shape of Redis stream ids, "<ms>-<seq>": wall-clock
 * milliseconds and a sequence within that millisecond. Ids only ever grow
 * (a clock step backwards keeps the last millisecond and bumps the sequence),
 * so they order every message of a room. The format is the one the cluster
 * build takes from XADD, so ids keep their meaning for clients, history and
 * resume.
 *
 * The MESSAGE is encoded once, without the per-subscriber `subscription`
 * header (see msg.h). Header values are escaped with the STOMP 1.2 rules.
 */
#include "relay.h"

#include "mem.h"
#include "msg.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct relay {
    room_index *rooms;
    metrics *metrics;
    uint64_t last_ms;
    uint64_t seq;
    buf enc;             /* reused encoding buffer */
};

relay *relay_create(room_index *rooms, metrics *m)
{
    relay *r = xcalloc(1, sizeof *r);
    r->rooms = rooms;
    r->metrics = m;
    buf_init(&r->enc);
    return r;
}

void relay_destroy(relay *r)
{
    if (!r)
        return;
    buf_deinit(&r->enc);
    free(r);
}

static int relay_next_id(relay *r, char *out, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (ms > r->last_ms) {
        r->last_ms = ms;
        r->seq = 0;
    } else {
        r->seq++;
    }
    return snprintf(out, n, "%llu-%llu", (unsigned long long)r->last_ms,
                    (unsigned long long)r->seq);
}

/* Headers a client may not pass through: STOMP's own and the ones the
 * server sets on every MESSAGE. */
static bool relay_reserved(const stomp_str *name)
{
    static const char *const reserved[] = {
        "destination", "transaction", "receipt", "content-length", "content-type",
        "message-id", "subscription", "ack",
    };
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (stomp_str_eq(name, reserved[i]))
            return true;
    return false;
}

size_t relay_publish(relay *r, const stomp_str *name, const stomp_frame *f)
{
    char id[40];
    int idlen = relay_next_id(r, id, sizeof id);
    buf *b = &r->enc;

    buf_clear(b);
    buf_append_str(b, "destination:/topic/");
    buf_append(b, name->p, name->len);
    buf_append_str(b, "\nmessage-id:");
    buf_append(b, id, (size_t)idlen);
    buf_append_char(b, '\n');
    const stomp_str *ct = stomp_frame_header(f, "content-type");
    if (ct)
        stomp_put_header(b, "content-type", 12, ct->p, ct->len, true);
    buf_append_str(b, "content-length:");
    buf_append_u64(b, f->body.len);
    buf_append_char(b, '\n');
    for (size_t i = 0; i < f->nheaders; i++) {
        const stomp_header *h = &f->headers[i];
        if (!relay_reserved(&h->name))
            stomp_put_header(b, h->name.p, h->name.len, h->value.p, h->value.len, true);
    }
    stomp_put_body(b, f->body.p, f->body.len);

    msg *m = msg_create(MSG_MESSAGE, b);
    msg_set_id(m, id, (size_t)idlen);
    r->metrics->messages_published++;
    size_t n = 0;
    room *rm = room_lookup(r->rooms, name->p, name->len);
    if (rm)
        n = room_deliver(rm, m);
    r->metrics->deliveries_local += n;
    msg_unref(m);
    return n;
}
