/* relay.c — publish path, bus path, gaps and catch-ups.
 *
 * A MESSAGE is encoded once from an envelope (the same struct whether the
 * message was published here, came over the bus or was read back from the
 * room log) into a refcounted msg carrying its room order (epoch, seq); the
 * room's seqbuf decides when it goes out.
 *
 * Gap handling. After every offer the relay checks whether the room is now
 * waiting for a missing sequence number. Rooms with a gap are tracked in a
 * small table and a timer (running only while the table is not empty) reads
 * the missing messages from the room log once a gap is older than
 * relay.gap_timeout_ms: the `to - from + 1` entries just before the first
 * held message. A gap that the log cannot fill (trimmed, or lost with a
 * registry restart) is skipped, and counted.
 *
 * Catch-up. When the registry reports a room's (epoch, seq) (first join:
 * base; replay after a Redis reconnect, bus reconnect, new binding: status)
 * and this server is behind, the newest missing messages are read from the
 * log and offered; anything older still missing shows up as a gap.
 *
 * Bus outage. SENDs need only the bus's publisher (relay_ready): while the
 * consumer is down — moving to another RabbitMQ node, which can take up to
 * the cluster's partition detection time when the old node was cut off —
 * this server still stores and forwards what its clients send, and a pull
 * timer asks the registry for every local room's (epoch, seq) each
 * relay.pull_ms, so the other servers' messages arrive from the room logs
 * (catch-up) instead of not at all. The timer always ticks; it does nothing
 * while the bus is up.
 *
 * Storage limits. A SEND becomes one row of the message store; the row's
 * fields may not exceed lib/storelimits.h. relay_check_send computes the
 * exact stored sizes from the frame (the header lines as the envelope will
 * carry them: escaped by STOMP 1.2 rules, sender-role first, reserved
 * headers left out) without building anything, so that the session can
 * answer ERROR before any RECEIPT, at SEND time and, for a transaction, when
 * the SEND is buffered. relay_publish checks the envelope it built once
 * more, the one place every published message passes: nothing that storage
 * would refuse is delivered, logged in Redis or handed to RabbitMQ.
 *
 * Invariant: the relay never holds a room pointer across a callback; rooms
 * are looked up by name when Redis answers, since they may be gone.
 */
#include "relay.h"

#include "log.h"
#include "mem.h"
#include "msg.h"
#include "seqbuf.h"
#include "storelimits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uthash.h>

typedef struct relay_gap {
    char *room;
    uint64_t since;          /* loop time the gap was first seen */
    uint64_t from;           /* its first missing seq then */
    bool fetching;
    UT_hash_handle hh;
} relay_gap;

struct relay {
    uv_loop_t *loop;
    room_index *rooms;
    metrics *metrics;
    registry *reg;
    bus *bus;
    char *server_id;
    int gap_timeout_ms;
    int catchup_max;
    relay_gap *gaps;
    uv_timer_t gap_timer;
    bool timer_running;
    uv_timer_t pull_timer;       /* ticks; while the bus is down it polls the room logs */
    int pull_ms;
    int open_handles;            /* the two timers; the last close frees r */
    relay_stats stats;
    buf enc;
};

relay *relay_create(uv_loop_t *loop, room_index *rooms, metrics *m, const relay_config *cfg)
{
    relay *r = xcalloc(1, sizeof *r);
    r->loop = loop;
    r->rooms = rooms;
    r->metrics = m;
    r->server_id = xstrdup(cfg->server_id);
    r->gap_timeout_ms = cfg->gap_timeout_ms;
    r->catchup_max = cfg->catchup_max;
    buf_init(&r->enc);
    r->pull_ms = cfg->pull_ms > 0 ? cfg->pull_ms : 1000;
    uv_timer_init(loop, &r->gap_timer);
    r->gap_timer.data = r;
    uv_timer_init(loop, &r->pull_timer);
    r->pull_timer.data = r;
    r->open_handles = 2;
    return r;
}

static void relay_on_pull_timer(uv_timer_t *t);

void relay_attach(relay *r, registry *reg, bus *b)
{
    r->reg = reg;
    r->bus = b;
    /* Always ticking (a no-op while the bus is up): the bus may be down
     * from the start, with no state change to announce it. */
    uv_timer_start(&r->pull_timer, relay_on_pull_timer, (uint64_t)r->pull_ms,
                   (uint64_t)r->pull_ms);
}

static void gap_free(relay_gap *g)
{
    free(g->room);
    free(g);
}

static void relay_on_timer_closed(uv_handle_t *h)
{
    relay *r = h->data;
    if (--r->open_handles > 0)
        return;
    relay_gap *g, *tmp;
    HASH_ITER(hh, r->gaps, g, tmp) {
        HASH_DEL(r->gaps, g);
        gap_free(g);
    }
    buf_deinit(&r->enc);
    free(r->server_id);
    free(r);
}

void relay_destroy(relay *r)
{
    if (!r)
        return;
    uv_timer_stop(&r->gap_timer);
    uv_timer_stop(&r->pull_timer);
    uv_close((uv_handle_t *)&r->gap_timer, relay_on_timer_closed);
    uv_close((uv_handle_t *)&r->pull_timer, relay_on_timer_closed);
}

bool relay_ready(const relay *r)
{
    /* Sending needs the publisher only: a server whose consumer is down
     * still stores and forwards what its clients send. */
    return r->reg && r->bus && registry_up(r->reg) && bus_can_publish(r->bus);
}

void relay_get_stats(const relay *r, relay_stats *out)
{
    *out = r->stats;
}

/* --- encoding ----------------------------------------------------------------- */

/* Headers the server sets (or STOMP reserves) are never taken from a SEND:
 * what a subscriber sees in them is always the server's word. */
static bool relay_reserved(const stomp_str *name)
{
    static const char *const reserved[] = {
        "destination", "transaction", "receipt", "content-length", "content-type",
        "message-id", "subscription", "ack", "timestamp", "user-id", "passcode", "login",
    };
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (stomp_str_eq(name, reserved[i]))
            return true;
    /* sender, sender-name, sender-role and any sender-* to come, the
     * envelope's own x-lectern-* names, and what only moderation writes
     * (x-redacts, x-redacted-by, x-redacted-at): the server's word only.
     * x-idempotency-key is the sender's word to this server, not kept. */
    static const char *const prefixes[] = { "sender", "x-lectern-", "x-redact",
                                            "x-idempotency-key" };
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i]);
        if (name->len >= n && !strncasecmp(name->p, prefixes[i], n))
            return true;
    }
    return false;
}

static void relay_put_u64(buf *b, const char *name, uint64_t v)
{
    buf_append_str(b, name);
    buf_append_u64(b, v);
    buf_append_char(b, '\n');
}

/* The shared part of a MESSAGE for env (see msg.h). */
static msg *relay_encode(relay *r, const envelope *env)
{
    buf *b = &r->enc;
    buf_clear(b);
    buf_append_str(b, "destination:/topic/");
    buf_append_str(b, env->room);
    buf_append_str(b, "\nmessage-id:");
    buf_append_str(b, env->id);
    buf_append_char(b, '\n');
    if (env->content_type)
        stomp_put_header_str(b, "content-type", env->content_type, true);
    relay_put_u64(b, "content-length:", env->body_len);
    if (env->sender && env->sender[0])
        stomp_put_header_str(b, "sender", env->sender, true);
    if (env->sender_name && env->sender_name[0])
        stomp_put_header_str(b, "sender-name", env->sender_name, true);
    relay_put_u64(b, "timestamp:", env->ts_ms);
    if (env->headers_len)
        buf_append(b, env->headers, env->headers_len);
    stomp_put_body(b, env->body, env->body_len);

    msg *m = msg_create(MSG_MESSAGE, b);
    msg_set_id(m, env->id, strlen(env->id));
    m->epoch = env->epoch;
    m->seq = env->seq;
    m->ts_ms = env->ts_ms;
    return m;
}

msg *relay_message(relay *r, const envelope *env)
{
    return relay_encode(r, env);
}

/* --- gaps ------------------------------------------------------------------------ */

static void relay_on_gap_timer(uv_timer_t *t);

/* Track (or stop tracking) the room's gap after its order changed. */
static void relay_check_gap(relay *r, room *rm)
{
    uint64_t from, to;
    void *after;
    const char *name = room_name(rm);
    relay_gap *g = NULL;
    HASH_FIND_STR(r->gaps, name, g);
    if (!seqbuf_gap(room_order(rm), &from, &to, &after)) {
        if (g && !g->fetching) {
            HASH_DEL(r->gaps, g);
            gap_free(g);
        }
        return;
    }
    if (g && g->from == from)
        return;                       /* the same gap, already timed */
    if (!g) {
        g = xcalloc(1, sizeof *g);
        g->room = xstrdup(name);
        HASH_ADD_KEYPTR(hh, r->gaps, g->room, strlen(g->room), g);
    }
    g->since = uv_now(r->loop);
    g->from = from;
    if (!r->timer_running) {
        uint64_t period = (uint64_t)(r->gap_timeout_ms / 2 > 5 ? r->gap_timeout_ms / 2 : 5);
        uv_timer_start(&r->gap_timer, relay_on_gap_timer, period, period);
        r->timer_running = true;
    }
}

typedef struct gap_fetch {
    relay *r;
    uint64_t from;           /* the gap as it was when the fetch started */
    bool catchup;            /* a catch-up read, not a gap fill */
    char room[];
} gap_fetch;

static gap_fetch *gap_fetch_new(relay *r, const char *rname, uint64_t from, bool catchup)
{
    size_t n = strlen(rname);
    gap_fetch *f = xmalloc(sizeof *f + n + 1);
    f->r = r;
    f->from = from;
    f->catchup = catchup;
    memcpy(f->room, rname, n + 1);
    return f;
}

static void relay_on_fetched(void *ctx, envelope *msgs, size_t n, bool ok)
{
    gap_fetch *f = ctx;
    relay *r = f->r;
    room *rm = room_lookup(r->rooms, f->room, strlen(f->room));
    relay_gap *g = NULL;
    HASH_FIND_STR(r->gaps, f->room, g);
    if (g && !f->catchup)
        g->fetching = false;
    if (rm) {
        uint64_t before = room_released(rm);
        for (size_t i = 0; i < n; i++) {
            msg *m = relay_encode(r, &msgs[i]);
            room_offer(rm, m);
            msg_unref(m);
        }
        r->stats.gaps_filled += room_released(rm) - before;
        uint64_t from, to;
        void *after;
        /* The log did not have what was missing: give up on it, so the
         * room does not wait forever. */
        if (ok && !f->catchup && seqbuf_gap(room_order(rm), &from, &to, &after) &&
            from == f->from) {
            uint64_t lost = to == UINT64_MAX ? 1 : to - from + 1;
            r->stats.gaps_lost += lost;
            log_warn("room_gap_lost", "room=%s from=%llu to=%llu", f->room,
                     (unsigned long long)from, (unsigned long long)to);
            seqbuf_skip_gap(room_order(rm));
        }
        relay_check_gap(r, rm);
    }
    free(f);
}

static void relay_fetch_gap(relay *r, relay_gap *g, room *rm)
{
    uint64_t from, to;
    void *after;
    if (!seqbuf_gap(room_order(rm), &from, &to, &after))
        return;
    if (to == UINT64_MAX) {
        /* The gap runs into a newer epoch: the old log is gone. */
        r->stats.gaps_lost++;
        seqbuf_skip_gap(room_order(rm));
        relay_check_gap(r, rm);
        return;
    }
    uint64_t count = to - from + 1;
    if (count > (uint64_t)r->catchup_max)
        count = (uint64_t)r->catchup_max;
    const msg *held = after;
    char id[41];
    memcpy(id, held->id, held->id_len);
    id[held->id_len] = '\0';
    gap_fetch *f = gap_fetch_new(r, g->room, from, false);
    if (registry_fetch_before(r->reg, g->room, id, (size_t)count, relay_on_fetched, f) < 0) {
        free(f);
        return;
    }
    g->fetching = true;
}

static void relay_on_gap_timer(uv_timer_t *t)
{
    relay *r = t->data;
    uint64_t now = uv_now(r->loop);
    relay_gap *g, *tmp;
    HASH_ITER(hh, r->gaps, g, tmp) {
        room *rm = room_lookup(r->rooms, g->room, strlen(g->room));
        if (!rm && !g->fetching) {
            HASH_DEL(r->gaps, g);
            gap_free(g);
            continue;
        }
        if (rm && !g->fetching && now - g->since >= (uint64_t)r->gap_timeout_ms)
            relay_fetch_gap(r, g, rm);
    }
    if (!r->gaps) {
        uv_timer_stop(&r->gap_timer);
        r->timer_running = false;
    }
}

/* --- catch-up ----------------------------------------------------------------- */

void relay_on_room_sync(relay *r, const char *name, uint64_t epoch, uint64_t seq)
{
    room *rm = room_lookup(r->rooms, name, strlen(name));
    if (!rm)
        return;
    seqbuf *sb = room_order(rm);
    if (!sb->based) {
        seqbuf_base(sb, epoch, seq);     /* messages up to seq are history */
        relay_check_gap(r, rm);
        room_based(rm);
        return;
    }
    if (epoch < sb->epoch)
        return;
    if (epoch > sb->epoch)
        seqbuf_new_epoch(sb, epoch);
    if (seq < sb->next)
        return;                          /* up to date */
    uint64_t count = seq - sb->next + 1;
    if (count > (uint64_t)r->catchup_max)
        count = (uint64_t)r->catchup_max;
    r->stats.catchups++;
    gap_fetch *f = gap_fetch_new(r, name, sb->next, true);
    if (registry_fetch_before(r->reg, name, NULL, (size_t)count, relay_on_fetched, f) < 0)
        free(f);
}

/* --- membership --------------------------------------------------------------- */

void relay_join(relay *r, subscriber *sub, const stomp_str *name, const char *user,
                const char *user_name, room_ready_fn done, void *ctx)
{
    char rname[256];
    size_t n = name->len < sizeof rname - 1 ? name->len : sizeof rname - 1;
    memcpy(rname, name->p, n);
    rname[n] = '\0';
    bool created = room_join(r->rooms, rname, n, sub);
    registry_join(r->reg, rname, user, user_name);
    /* Dynamic mode: the binding arrives after the join made us visible to
     * publishers; relay_on_bus_bound catches up on what fell between. */
    if (created)
        bus_bind(r->bus, rname);
    room_when_based(sub->room, done, ctx);
}

void relay_leave(relay *r, subscriber *sub, const char *user)
{
    if (!sub->room)
        return;
    char rname[256];
    snprintf(rname, sizeof rname, "%s", room_name(sub->room));
    bool destroyed = room_leave(r->rooms, sub);
    registry_leave(r->reg, rname, user);
    if (destroyed)
        bus_unbind(r->bus, rname);
}

void relay_on_bus_bound(relay *r, const char *rname, bool ok)
{
    if (!ok) {
        log_warn("bus_bind_failed", "room=%s", rname);
        return;
    }
    if (room_lookup(r->rooms, rname, strlen(rname)))
        registry_room_status(r->reg, rname);
}

static void relay_pull_all(relay *r)
{
    for (room *rm = room_first(r->rooms); rm; rm = room_next(rm))
        registry_room_status(r->reg, room_name(rm));
}

/* The bus is down (typically our consumer, while it moves to another
 * RabbitMQ node): other servers' messages still reach the room logs, so
 * read them from there, every pull_ms, until the bus is back. */
static void relay_on_pull_timer(uv_timer_t *t)
{
    relay *r = t->data;
    if (r->bus && !bus_ready(r->bus) && r->reg && registry_up(r->reg))
        relay_pull_all(r);
}

void relay_on_bus_state(relay *r, bool up)
{
    if (!up)
        return;
    /* Whatever the bus dropped while it was down is in the room logs. */
    relay_pull_all(r);
}

/* --- publishing ----------------------------------------------------------------- */

typedef struct publish_job {
    relay *r;
    envelope env;
    relay_published_fn done;
    void *ctx;
    bool duplicate;
} publish_job;

static void publish_job_finish(publish_job *j, relay_outcome outcome, uint64_t until_ms)
{
    relay_result res = { outcome, j->env.id ? j->env.id : "", j->duplicate, until_ms };
    j->done(j->ctx, &res);
    envelope_free(&j->env);
    free(j);
}

/* RabbitMQ confirmed the storage copy durable (ok), or could not. */
static void relay_on_stored(void *ctx, bool ok)
{
    publish_job *j = ctx;
    if (!ok)
        log_warn("store_failed", "room=%s id=%s", j->env.room, j->env.id);
    publish_job_finish(j, ok ? RELAY_STORED : RELAY_FAILED, 0);
}

static void relay_on_published(void *ctx, envelope *env, const registry_pub_result *res)
{
    publish_job *j = ctx;
    relay *r = j->r;
    switch (res->status) {
    case REGISTRY_PUB_FAILED: publish_job_finish(j, RELAY_FAILED, 0); return;
    case REGISTRY_PUB_BANNED: publish_job_finish(j, RELAY_BANNED, res->until_ms); return;
    case REGISTRY_PUB_MUTED: publish_job_finish(j, RELAY_MUTED, res->until_ms); return;
    case REGISTRY_PUB_DUPLICATE:
        /* Delivered already (or in the room log, whence every server gets
         * it): only make sure it is stored, under the first copy's id. */
        j->duplicate = true;
        r->stats.duplicates++;
        if (bus_publish(r->bus, env, false, relay_on_stored, j) < 0)
            publish_job_finish(j, RELAY_FAILED, 0);
        return;
    case REGISTRY_PUB_OK:
        break;
    }
    msg *m = relay_encode(r, env);
    room *rm = room_lookup(r->rooms, env->room, strlen(env->room));
    if (rm) {
        room_offer(rm, m);
        relay_check_gap(r, rm);
    }
    msg_unref(m);
    r->metrics->messages_published++;
    /* One job: the storage copy always, the room copy only when another
     * server has members (local bypass otherwise). */
    bool fanout = res->others > 0;
    if (bus_publish(r->bus, env, fanout, relay_on_stored, j) < 0) {
        /* In the room log and delivered here, but not durable: the sender
         * is told (no RECEIPT); other servers catch up from the log. */
        log_warn("bus_publish_failed", "room=%s id=%s", env->room, env->id);
        publish_job_finish(j, RELAY_FAILED, 0);
        return;
    }
    if (fanout)
        r->stats.bus_published++;
    else
        r->stats.bus_skipped++;
}

/* The SEND's own headers, as STOMP 1.2 header lines for the envelope,
 * after the sender's role (which the server vouches for). */
static void relay_user_headers(const stomp_frame *f, const char *role, buf *out)
{
    if (role)
        stomp_put_header_str(out, "sender-role", role, true);
    for (size_t i = 0; i < f->nheaders; i++) {
        const stomp_header *h = &f->headers[i];
        if (!relay_reserved(&h->name))
            stomp_put_header(out, h->name.p, h->name.len, h->value.p, h->value.len, true);
    }
}

/* What relay_user_headers appends, counted instead of written. */
static size_t relay_user_headers_len(const stomp_frame *f, const char *role)
{
    size_t n = 0;
    if (role)
        n += stomp_escaped_len("sender-role", 11) + 1 + stomp_escaped_len(role, strlen(role)) + 1;
    for (size_t i = 0; i < f->nheaders; i++) {
        const stomp_header *h = &f->headers[i];
        if (!relay_reserved(&h->name))
            n += stomp_escaped_len(h->name.p, h->name.len) + 1 +
                 stomp_escaped_len(h->value.p, h->value.len) + 1;
    }
    return n;
}

void relay_envelope_of_send(envelope *env, const stomp_str *name, const stomp_frame *f,
                            const char *user, const char *user_name, const char *role,
                            const char *origin)
{
    memset(env, 0, sizeof *env);
    env->room = xstrndup(name->p, name->len);
    env->id = xstrdup("");
    env->sender = xstrdup(user);
    env->sender_name = xstrdup(user_name);
    env->origin = xstrdup(origin);
    const stomp_str *ct = stomp_frame_header(f, "content-type");
    if (ct)
        env->content_type = xstrndup(ct->p, ct->len);
    buf h;
    buf_init(&h);
    relay_user_headers(f, role, &h);
    env->headers = buf_detach(&h, &env->headers_len);
    if (f->body.len) {
        env->body = xmalloc(f->body.len);
        memcpy(env->body, f->body.p, f->body.len);
    }
    env->body_len = f->body.len;
}

void relay_send_sizes(const stomp_str *name, const stomp_frame *f, const char *user,
                      const char *user_name, const char *role, const char *origin,
                      storelimits_sizes *out)
{
    const stomp_str *ct = stomp_frame_header(f, "content-type");
    out->v[STORELIMITS_ROOM] = name->len;
    out->v[STORELIMITS_SENDER] = strlen(user);
    out->v[STORELIMITS_SENDER_NAME] = strlen(user_name);
    /* The envelope keeps it as a C string: a NUL would end it there. */
    out->v[STORELIMITS_CONTENT_TYPE] = ct ? strnlen(ct->p, ct->len) : 0;
    out->v[STORELIMITS_HEADERS] = relay_user_headers_len(f, role);
    out->v[STORELIMITS_BODY] = f->body.len;
    out->v[STORELIMITS_ORIGIN] = strlen(origin);
}

int relay_check_send(const relay *r, const stomp_str *name, const stomp_frame *f,
                     const char *user, const char *user_name, const char *role, char *why,
                     size_t whylen)
{
    storelimits_sizes sz;
    relay_send_sizes(name, f, user, user_name, role, r->server_id, &sz);
    int field = storelimits_check(&sz);
    if (field < 0)
        return 0;
    char what[300];
    storelimits_explain(&sz, field, what, sizeof what);
    snprintf(why, whylen, "%s The message was not delivered or stored.", what);
    return -1;
}

/* Check j->env against the store's limits and hand it to the registry.
 * 0, or -1 with j and its envelope freed (done not called). */
static int relay_submit(relay *r, publish_job *j, const registry_pub_opts *ro)
{
    envelope *env = &j->env;
    storelimits_sizes sz;
    storelimits_of_envelope(env, &sz);
    int field = storelimits_check(&sz);
    if (field >= 0) {
        /* The session checks every SEND first (relay_check_send); this one
         * changed in between (an identity refreshed inside a transaction). */
        char what[300], q[400];
        storelimits_explain(&sz, field, what, sizeof what);
        log_warn("send_over_storage_limits", "room=%s reason=%s", env->room,
                 log_q(q, sizeof q, what, strlen(what)));
        goto fail;
    }
    if (registry_publish(r->reg, env, ro, relay_on_published, j) < 0)
        goto fail;
    return 0;
fail:
    envelope_free(env);
    free(j);
    return -1;
}

int relay_publish(relay *r, const stomp_str *name, const stomp_frame *f, const char *user,
                  const char *user_name, const char *role, const relay_pub_opts *opts,
                  relay_published_fn done, void *ctx)
{
    if (!relay_ready(r))
        return -1;
    publish_job *j = xcalloc(1, sizeof *j);
    relay_envelope_of_send(&j->env, name, f, user, user_name, role, r->server_id);
    j->r = r;
    j->done = done;
    j->ctx = ctx;
    registry_pub_opts ro = { 0 };
    if (opts) {
        ro.check_user = opts->moderated ? user : NULL;
        ro.idem_key = opts->idem_key;
        ro.idem_key_len = opts->idem_key_len;
        ro.idem_window_ms = opts->idem_window_ms;
    }
    return relay_submit(r, j, &ro);
}

int relay_publish_envelope(relay *r, envelope *env, relay_published_fn done, void *ctx)
{
    if (!relay_ready(r)) {
        envelope_free(env);
        return -1;
    }
    publish_job *j = xcalloc(1, sizeof *j);
    j->env = *env;
    memset(env, 0, sizeof *env);
    free(j->env.id);
    j->env.id = xstrdup("");
    free(j->env.origin);
    j->env.origin = xstrdup(r->server_id);
    j->r = r;
    j->done = done;
    j->ctx = ctx;
    return relay_submit(r, j, NULL);
}

void relay_on_bus_message(relay *r, envelope *env)
{
    room *rm = room_lookup(r->rooms, env->room, strlen(env->room));
    if (!rm) {
        r->stats.bus_no_room++;      /* fanout mode: a room we do not host */
    } else {
        msg *m = relay_encode(r, env);
        room_offer(rm, m);
        msg_unref(m);
        r->stats.bus_received++;
        relay_check_gap(r, rm);
    }
    envelope_free(env);
    free(env);
}
