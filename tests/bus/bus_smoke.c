/* bus_smoke.c — the bus (server/bus*.c) against a real RabbitMQ (started by run.sh).
 *
 * One uv loop, several buses in this process standing in for servers A and
 * B. Every wait polls the loop (UV_RUN_NOWAIT + 1 ms naps) against a
 * deadline; nothing sleeps for a fixed time to "let things settle", except
 * where the absence of something is checked, and there a sentinel message
 * published after the things that must not arrive proves that they had
 * their chance. The broker restart runs `$LECTERN_SERVICES stop|start
 * rabbitmq` itself (system()), with the environment run.sh exported.
 *
 * Output is TAP-like ("ok - sentence" / "not ok - sentence", "# " notes);
 * the exit status is 1 when a check failed. ASan's leak check runs at exit.
 *
 * Environment: LECTERN_AMQP_PORT (required), LECTERN_SERVICES (path of
 * scripts/services; without it the restart checks are skipped),
 * BUS_SMOKE_SKIP_RESTART=1 to skip them anyway.
 */
#include "bus.h"
#include "envbatch.h"
#include "envelope.h"
#include "log.h"
#include "mem.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

typedef struct peer {
    const char *name;
    bus *b;
    bool up;
    int ups, downs;
    envelope **got;          /* owned: every envelope on_message handed over */
    size_t ngot, cap;
    int nbound;
    char last_bound[64];
    bool last_bound_ok;
    bool destroy_in_message;     /* bus_destroy from inside on_message */
    uintptr_t issued, last_done; /* publishes accepted / the last done callback's number */
    unsigned done_ok, done_fail;
    bool done_order_ok;          /* done callbacks came in publish order */
    char squeue[96];
} peer;

static uv_loop_t loop;
static int nchecks, nfailed;
static int amqp_port;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pump(void)
{
    struct timespec nap = { 0, 1000000 };
    uv_run(&loop, UV_RUN_NOWAIT);
    nanosleep(&nap, NULL);
}

/* Poll the loop until cond holds or ms pass; ok = the final value. */
#define WAIT(ok, cond, ms)                                              \
    do {                                                                \
        uint64_t dl_ = now_ms() + (uint64_t)(ms);                       \
        while (!((ok) = (cond)) && now_ms() < dl_)                      \
            pump();                                                     \
    } while (0)

static void pump_for(int ms)
{
    uint64_t until = now_ms() + (uint64_t)ms;
    while (now_ms() < until)
        pump();
}

__attribute__((format(printf, 2, 3)))
static bool check(bool ok, const char *fmt, ...)
{
    va_list ap;
    nchecks++;
    if (!ok)
        nfailed++;
    printf("%s - ", ok ? "ok" : "not ok");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    return ok;
}

__attribute__((format(printf, 1, 2)))
static void note(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* --- callbacks ------------------------------------------------------------ */

static void on_message(void *ctx, envelope *env)
{
    peer *p = ctx;
    if (p->ngot == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 1024;
        p->got = xrealloc(p->got, p->cap * sizeof *p->got);
    }
    p->got[p->ngot++] = env;
    if (p->destroy_in_message && p->b) {
        bus_destroy(p->b);
        p->b = NULL;
    }
}

static void on_state(void *ctx, bool up)
{
    peer *p = ctx;
    p->up = up;
    if (up)
        p->ups++;
    else
        p->downs++;
}

static void on_bound(void *ctx, const char *room, bool ok)
{
    peer *p = ctx;
    p->nbound++;
    snprintf(p->last_bound, sizeof p->last_bound, "%s", room);
    p->last_bound_ok = ok;
}

static void peer_clear(peer *p)
{
    for (size_t i = 0; i < p->ngot; i++) {
        envelope_free(p->got[i]);
        free(p->got[i]);
    }
    p->ngot = 0;
}

/* A peer on the broker(s) `hosts` ("host[:port],..."; port for entries
 * without one). */
static size_t next_inbound_max;     /* bus_config.inbound_max of the next peer started */

static void peer_start_at(peer *p, const char *name, const char *exchange, bool dynamic,
                          const char *hosts, int port)
{
    static const bus_callbacks cb = { on_message, on_state, on_bound };
    memset(p, 0, sizeof *p);
    snprintf(p->squeue, sizeof p->squeue, "%s.storage", exchange);
    bus_config cfg = {
        .host = hosts, .port = port, .vhost = "/", .user = "guest", .password = "guest",
        .exchange = exchange, .dynamic = dynamic, .server_id = name, .heartbeat_s = 2,
        .reconnect_min_ms = 100, .reconnect_max_ms = 1000, .max_queue = 100000,
        .storage_queue = p->squeue, .storage_queue_type = "classic",
        .confirm_timeout_ms = 30000,    /* outlives a broker restart here */
        .nack_retry_ms = 200,
        /* the servers' defaults: both kinds of copies travel in batches */
        .batch_max = 256, .batch_linger_ms = 2, .room_batch_max = 64, .room_batch_linger_ms = 1,
        .inbound_max = next_inbound_max,
    };
    /* Except A's storage copies, one per message: the restart scenario
     * checks that copies in flight when the broker closes are published
     * again, and a broker that is shutting down confirms whole batches
     * first, which leaves nothing in flight often enough to make that check
     * a coin toss. Batched storage copies through a broker are checked with
     * A2 (dynamic) here and by tests/storage (kill -9 with batches). */
    if (!strcmp(name, "A"))
        cfg.batch_max = 1;
    p->name = name;
    p->done_order_ok = true;
    p->b = bus_create(&loop, &cfg, &cb, p);
}

static void peer_start(peer *p, const char *name, const char *exchange, bool dynamic, int port)
{
    peer_start_at(p, name, exchange, dynamic, "127.0.0.1", port);
}

static void peer_stop(peer *p)
{
    bus_destroy(p->b);
    p->b = NULL;
    peer_clear(p);
    free(p->got);
    p->got = NULL;
    p->cap = 0;
}

static bus_stats stats(const peer *p)
{
    bus_stats s;
    bus_get_stats(p->b, &s);
    return s;
}

/* --- messages ------------------------------------------------------------- */

/* Envelope number i, deterministic, with every kind of field value: binary
 * bodies with NULs, empty bodies, a body larger than a frame, absent content
 * types and header lines, empty senders, uint64 values above INT64_MAX. */
static void gen(envelope *e, unsigned i, const char *room, const char *origin)
{
    char tmp[96];
    memset(e, 0, sizeof *e);
    e->room = xstrdup(room);
    snprintf(tmp, sizeof tmp, "%llu-%u", 1700000000000ULL + i, i);
    e->id = xstrdup(tmp);
    e->seq = i + 1;
    e->epoch = i % 7 == 0 ? UINT64_MAX - i : 1700000000123456ULL;
    e->ts_ms = 1700000000000ULL + i;
    snprintf(tmp, sizeof tmp, "user-%u", i);
    e->sender = xstrdup(i % 5 == 0 ? "" : tmp);
    snprintf(tmp, sizeof tmp, "N\xc3\xa4me %u", i);
    e->sender_name = xstrdup(i % 6 == 0 ? "" : tmp);
    e->origin = xstrdup(origin);
    if (i % 3)
        e->content_type = xstrdup(i % 3 == 1 ? "text/plain" : "application/octet-stream");
    if (i % 4) {
        snprintf(tmp, sizeof tmp, "x-i:%u\nx-esc:a\\cb\\nc\n", i);
        e->headers = xstrdup(tmp);
        e->headers_len = strlen(tmp);
    }
    size_t len = 0;
    if (i == 500)
        len = 300000;                       /* > frame_max: several body frames */
    else if (i % 5 == 1)
        len = (size_t)snprintf(tmp, sizeof tmp, "hello %u", i);
    else if (i % 5)
        len = (i * 37) % 1000 + 1;
    if (len) {
        unsigned char *b = xmalloc(len);
        for (size_t j = 0; j < len; j++)
            b[j] = j % 7 == 0 ? 0 : (unsigned char)(j * i + j);
        if (i % 5 == 1)
            memcpy(b, tmp, len);
        e->body = b;
        e->body_len = len;
    }
}

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static const char *env_diff(const envelope *a, const envelope *b)
{
    if (!str_eq(a->room, b->room)) return "room";
    if (!str_eq(a->id, b->id)) return "id";
    if (a->seq != b->seq) return "seq";
    if (a->epoch != b->epoch) return "epoch";
    if (a->ts_ms != b->ts_ms) return "ts_ms";
    if (!str_eq(a->sender, b->sender)) return "sender";
    if (!str_eq(a->sender_name, b->sender_name)) return "sender_name";
    if (!str_eq(a->origin, b->origin)) return "origin";
    if (!str_eq(a->content_type, b->content_type)) return "content_type";
    if (a->headers_len != b->headers_len || (!a->headers) != (!b->headers) ||
        (a->headers_len && memcmp(a->headers, b->headers, a->headers_len)))
        return "headers";
    if (a->body_len != b->body_len || (!a->body) != (!b->body) ||
        (a->body_len && memcmp(a->body, b->body, a->body_len)))
        return "body";
    return NULL;
}

typedef struct done_rec {
    peer *p;
    uintptr_t n;             /* the publish's number on its peer */
} done_rec;

/* A storage confirm (or its failure). */
static void on_done(void *ctx, bool ok)
{
    done_rec *d = ctx;
    peer *p = d->p;
    uintptr_t n = d->n;
    free(d);
    if (n != p->last_done + 1)
        p->done_order_ok = false;
    p->last_done = n;
    if (ok)
        p->done_ok++;
    else
        p->done_fail++;
}

/* Publish envelopes first..first+n-1 from p to `room`; returns how many
 * bus_publish accepted. Every one also goes to the storage queue. */
static int publish_one(peer *p, const envelope *e)
{
    done_rec *d = xmalloc(sizeof *d);
    d->p = p;
    d->n = p->issued + 1;
    if (bus_publish(p->b, e, true, on_done, d) < 0) {
        free(d);
        return -1;
    }
    p->issued++;
    return 0;
}

static unsigned publish_range(peer *p, unsigned first, unsigned n, const char *room)
{
    unsigned ok = 0;
    for (unsigned i = first; i < first + n; i++) {
        envelope e;
        gen(&e, i, room, p->name);
        if (publish_one(p, &e) == 0)
            ok++;
        envelope_free(&e);
    }
    return ok;
}

/* got[from..] must be exactly envelopes want[0..n) (numbers) in order. */
static bool received_exactly(const peer *p, size_t from, const unsigned *want, size_t n,
                             const char *room, const char *origin, char *why, size_t whylen)
{
    if (p->ngot - from != n) {
        snprintf(why, whylen, "%zu received, %zu expected", p->ngot - from, n);
        return false;
    }
    for (size_t k = 0; k < n; k++) {
        envelope e;
        gen(&e, want[k], room, origin);
        const char *d = env_diff(&e, p->got[from + k]);
        envelope_free(&e);
        if (d) {
            snprintf(why, whylen, "message %zu (envelope %u) differs in %s", k, want[k], d);
            return false;
        }
    }
    why[0] = '\0';
    return true;
}

static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t al = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(fd, (struct sockaddr *)&a, &al)) {
        perror("closed_port");
        exit(2);
    }
    close(fd);              /* never listened: connections are refused */
    return ntohs(a.sin_port);
}

/* A port whose connections complete (kernel backlog) but are never
 * answered: a broker hung before connection.start. Returns the listening fd. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t al = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)&a, &al)) {
        perror("silent_listener");
        exit(2);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static bool all_up(peer *const *ps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!ps[i]->up)
            return false;
    return true;
}

static bool all_down(peer *const *ps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ps[i]->up || bus_ready(ps[i]->b))
            return false;
    return true;
}

static bool has_id(const peer *p, size_t from, const char *id)
{
    for (size_t i = from; i < p->ngot; i++)
        if (!strcmp(p->got[i]->id, id))
            return true;
    return false;
}

static const char *id_of(unsigned i)
{
    static char idbuf[64];
    snprintf(idbuf, sizeof idbuf, "%llu-%u", 1700000000000ULL + i, i);
    return idbuf;
}

/* Publish one message as a foreign client would: its own connection,
 * whatever properties. connection.close returns after the broker routed it. */
static bool raw_publish(const char *exchange, const amqp_basic_properties_t *props,
                        const char *body)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    bool ok = s && amqp_socket_open(s, "127.0.0.1", amqp_port) == AMQP_STATUS_OK &&
              amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest")
                      .reply_type == AMQP_RESPONSE_NORMAL &&
              amqp_channel_open(c, 1) &&
              amqp_basic_publish(c, 1, amqp_cstring_bytes(exchange),
                                 amqp_cstring_bytes("room-f"), 0, 0, props,
                                 amqp_cstring_bytes(body)) == AMQP_STATUS_OK &&
              amqp_connection_close(c, AMQP_REPLY_SUCCESS).reply_type == AMQP_RESPONSE_NORMAL;
    amqp_destroy_connection(c);
    return ok;
}

/* Storage copies in a queue: every message is fetched unacked (basic.get)
 * and counted, a batch (lib/envbatch.h) as the envelopes it carries; the
 * connection then closes without acking, so the broker requeues them all. */
static long queue_copies(const char *queue)
{
    long n = -1;
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    if (s && amqp_socket_open(s, "127.0.0.1", amqp_port) == AMQP_STATUS_OK &&
        amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest")
                .reply_type == AMQP_RESPONSE_NORMAL &&
        amqp_channel_open(c, 1)) {
        n = 0;
        for (;;) {
            amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(queue), 0);
            if (r.reply_type != AMQP_RESPONSE_NORMAL) {
                n = -1;
                break;
            }
            if (r.reply.id != AMQP_BASIC_GET_OK_METHOD)
                break;                                  /* get-empty */
            amqp_message_t m;
            if (amqp_read_message(c, 1, &m, 0).reply_type != AMQP_RESPONSE_NORMAL) {
                n = -1;
                break;
            }
            if (envbatch_is(&m.properties)) {
                envelope *envs;
                size_t k;
                const char *why;
                if (envbatch_decode(m.body, &envs, &k, &why) == 0) {
                    n += (long)k;
                    envbatch_free(envs, k);
                }
            } else {
                n++;
            }
            amqp_destroy_message(&m);
        }
        amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(c);
    return n;
}

/* --- the scenarios ---------------------------------------------------------- */

/* Sleep without running the loop: what a stalled event loop looks like to
 * the bus's threads. */
static void stall(int ms)
{
    struct timespec nap = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&nap, NULL);
}

/* Backpressure: C's loop stalls while A publishes far more than C's
 * inbound cap. C's consumer must stop reading at the cap (memory bounded),
 * keep its connection alive meanwhile (heartbeats: the stall outlasts two
 * heartbeat intervals), and deliver everything, in order, once the loop
 * runs again. */
static void backpressure(peer *a, peer *b)
{
    /* The consumer checks the cap between deliveries, and one delivery is
     * a batch of up to room_batch_max (64) envelopes, each costing its body
     * (here at most 1,000 bytes) plus its structs and header fields (well
     * under 512): the most the cap can be passed by. The N messages cost
     * some two megabytes, so an uncapped consumer is far over it. */
    enum { N = 3000, CAP = 32 << 10, OVER = 64 * (1000 + 512) };
    peer c;
    next_inbound_max = CAP;
    peer_start(&c, "C", "smoke", false, amqp_port);
    next_inbound_max = 0;
    bool ok;
    WAIT(ok, c.up, 15000);
    check(ok, "backpressure: C (bus.inbound_max %d bytes) is up", CAP);
    size_t from_b = b->ngot;
    unsigned accepted = publish_range(a, 5000, N, "bp");
    stall(6000);
    bus_stats s = stats(&c);
    check(accepted == N && c.ngot == 0 && s.inbound_paused && s.inbound_pauses == 1 &&
          s.inbound_bytes >= CAP && s.inbound_bytes < CAP + OVER,
          "backpressure: with C's loop stalled, its consumer stops at the cap (checked "
          "between deliveries, one of which may be a batch of 64): %llu bytes waiting (cap %d), "
          "paused %d, %llu pause(s), %zu delivered",
          (unsigned long long)s.inbound_bytes, CAP, s.inbound_paused,
          (unsigned long long)s.inbound_pauses, c.ngot);
    WAIT(ok, c.ngot >= N && b->ngot - from_b >= N, 20000);
    pump_for(200);
    static unsigned want[N];
    for (unsigned i = 0; i < N; i++)
        want[i] = 5000 + i;
    char why[160];
    ok = ok && received_exactly(&c, 0, want, N, "bp", "A", why, sizeof why);
    s = stats(&c);
    check(ok && c.downs == 0 && c.ups == 1 && s.inbound_bytes == 0 && !s.inbound_paused &&
          s.inbound_pauses >= 1 && s.reconnects == 0,
          "backpressure: the loop running again, C gets all %d in order over the same "
          "connection (heartbeats kept it through a 6 s stall; %llu pauses)%s%s", N,
          (unsigned long long)s.inbound_pauses, ok ? "" : ": ", ok ? "" : why);
    peer_stop(&c);
}

static void fanout(peer *a, peer *b)
{
    bool ok;
    char why[160];
    uint64_t t0 = now_ms();

    WAIT(ok, a->up && b->up, 20000);
    check(ok, "fanout: A and B both report up (%.2f s)", (double)(now_ms() - t0) / 1000);
    if (!ok)
        return;
    check(bus_ready(a->b) && bus_ready(b->b) && a->ups == 1 && b->ups == 1 && !a->downs,
          "fanout: bus_ready agrees and on_state(true) came exactly once");

    int before = b->nbound;
    bus_bind(b->b, "anything");
    check(b->nbound == before, "fanout: bus_bind does not call on_bound synchronously");
    WAIT(ok, b->nbound == before + 1, 2000);
    check(ok && b->last_bound_ok && !strcmp(b->last_bound, "anything"),
          "fanout: bus_bind reports on_bound(room, ok) through the loop");
    bus_unbind(b->b, "anything");

    t0 = now_ms();
    unsigned accepted = publish_range(a, 0, 1000, "room-f");
    check(accepted == 1000, "fanout: bus_publish accepts 1,000 envelopes (%u)", accepted);
    WAIT(ok, b->ngot >= 1000, 30000);
    uint64_t dt = now_ms() - t0;
    check(ok, "fanout: 1,000 envelopes from A reach B (%llu ms)", (unsigned long long)dt);
    pump_for(200);      /* duplicates would show up now */
    unsigned want[1000];
    for (unsigned i = 0; i < 1000; i++)
        want[i] = i;
    ok = received_exactly(b, 0, want, 1000, "room-f", "A", why, sizeof why);
    check(ok, "fanout: B got each exactly once, in publish order, every field equal%s%s",
          ok ? "" : ": ", why);
    WAIT(ok, a->done_ok + a->done_fail >= 1000, 10000);
    check(ok && a->done_ok == 1000 && a->done_order_ok && stats(a).stored == 1000 &&
          stats(a).unconfirmed == 0,
          "storage: RabbitMQ confirmed all 1,000 storage copies, done callbacks in order "
          "(mean confirm %.2f ms)",
          stats(a).stored ? (double)stats(a).confirm_us_sum / stats(a).stored / 1000 : 0.0);
    long depth = queue_copies(a->squeue);
    check(depth == 1000, "storage: the durable storage queue holds the 1,000 copies (%ld, "
          "in %llu AMQP messages)", depth,
          (unsigned long long)stats(a).storage_publishes);
    WAIT(ok, stats(a).dropped_own >= 1000, 5000);
    bus_stats sa = stats(a), sb = stats(b);
    check(a->ngot == 0 && sa.dropped_own == 1000,
          "fanout: none reach A; A counts them as dropped_own (%llu)",
          (unsigned long long)sa.dropped_own);
    check(sa.published == 1000 && sa.publish_failures == 0 && sb.received == 1000 &&
          sb.dropped_own == 0 && sb.malformed == 0 && sa.queued == 0,
          "fanout: stats: A published 1000, B received 1000, no failures");
    peer_clear(b);

    /* malformed deliveries: counted and dropped by both, before a sentinel */
    amqp_basic_properties_t props = { 0 };
    amqp_table_entry_t ent[3];
    bool raw = raw_publish("smoke.fanout", &props, "no headers at all");
    ent[0].key = amqp_cstring_bytes("x-lectern-room");
    ent[0].value.kind = AMQP_FIELD_KIND_UTF8;
    ent[0].value.value.bytes = amqp_cstring_bytes("room-f");
    ent[1].key = amqp_cstring_bytes("x-lectern-origin");
    ent[1].value.kind = AMQP_FIELD_KIND_UTF8;
    ent[1].value.value.bytes = amqp_cstring_bytes("X");
    ent[2].key = amqp_cstring_bytes("x-lectern-id");
    ent[2].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    ent[2].value.value.boolean = 1;
    props._flags = AMQP_BASIC_HEADERS_FLAG;
    props.headers.num_entries = 3;
    props.headers.entries = ent;
    raw = raw_publish("smoke.fanout", &props, "id is a boolean") && raw;
    check(raw, "malformed: a foreign client publishes two messages without a valid envelope");
    uint64_t own = stats(a).dropped_own;
    publish_range(a, 600, 1, "room-f");
    WAIT(ok, has_id(b, 0, id_of(600)) && stats(a).dropped_own > own, 10000);
    sa = stats(a);
    sb = stats(b);
    check(ok && b->ngot == 1 && a->ngot == 0 && sa.malformed == 2 && sb.malformed == 2,
          "malformed: both buses count them (A %llu, B %llu) and deliver only the sentinel",
          (unsigned long long)sa.malformed, (unsigned long long)sb.malformed);
    peer_clear(b);

    /* throughput: small messages, as fast as the loop can queue them */
    enum { BURST = 20000 };
    t0 = now_ms();
    unsigned sent = 0;
    for (unsigned i = 0; i < BURST; i++) {
        envelope e;
        gen(&e, 1 + (i % 4) * 5, "room-f", "A");      /* small bodies only */
        if (publish_one(a, &e) == 0)
            sent++;
        envelope_free(&e);
        if (i % 1000 == 999)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    WAIT(ok, b->ngot >= sent, 60000);
    dt = now_ms() - t0;
    check(ok && sent == BURST, "fanout: a burst of %u small envelopes reaches B (%u accepted)",
          BURST, sent);
#ifdef __SANITIZE_ADDRESS__
    const char *build = "ASan build";
#else
    const char *build = "no sanitizers";
#endif
    note("throughput A->B: %u messages in %llu ms = %.0f msg/s (%s)", sent,
         (unsigned long long)dt, dt ? sent * 1000.0 / (double)dt : 0.0, build);
    peer_clear(b);

    /* bus_destroy inside a callback: the rest of that batch is dropped */
    peer e;
    peer_start(&e, "E", "smoke", false, amqp_port);
    e.destroy_in_message = true;
    WAIT(ok, e.up, 10000);
    check(ok, "fanout: a third bus E joins the exchange");
    publish_range(a, 700, 200, "room-f");
    WAIT(ok, !e.b, 10000);
    pump_for(200);
    check(ok && e.ngot == 1, "bus_destroy inside on_message: no callback runs after it "
          "(%zu delivered)", e.ngot);
    peer_stop(&e);
    WAIT(ok, b->ngot >= 200, 10000);
    peer_clear(b);
}

static void dynamic(peer *a, peer *b)
{
    bool ok;
    char why[160];
    uint64_t t0 = now_ms();

    WAIT(ok, a->up && b->up, 20000);
    check(ok, "dynamic: A2 and B2 both report up (%.2f s)", (double)(now_ms() - t0) / 1000);
    if (!ok)
        return;

    bus_bind(b->b, "r1");
    WAIT(ok, b->nbound == 1, 5000);
    check(ok && b->last_bound_ok && !strcmp(b->last_bound, "r1"),
          "dynamic: bus_bind(r1) reports on_bound(r1, ok)");

    /* 0..19 alternate r1/r2; then a sentinel (100) on r1 */
    unsigned want[11];
    size_t nwant = 0;
    for (unsigned i = 0; i < 20; i++) {
        const char *room = i % 2 ? "r2" : "r1";
        publish_range(a, i, 1, room);
        if (!(i % 2))
            want[nwant++] = i;
    }
    publish_range(a, 100, 1, "r1");
    want[nwant++] = 100;
    WAIT(ok, has_id(b, 0, id_of(100)), 10000);
    check(ok, "dynamic: the r1 sentinel reaches B2");
    ok = received_exactly(b, 0, want, nwant, "r1", "A2", why, sizeof why);
    check(ok, "dynamic: B2 receives r1's messages only, in order%s%s", ok ? "" : ": ", why);

    /* unbind r1; binding r3 afterwards proves the unbind is done (FIFO) */
    bus_unbind(b->b, "r1");
    bus_bind(b->b, "r3");
    WAIT(ok, b->nbound == 2, 5000);
    check(ok && b->last_bound_ok && !strcmp(b->last_bound, "r3"),
          "dynamic: bus_bind(r3) after bus_unbind(r1) reports ok");
    size_t from = b->ngot;
    publish_range(a, 200, 5, "r1");
    publish_range(a, 300, 1, "r3");
    WAIT(ok, has_id(b, from, id_of(300)), 10000);
    check(ok, "dynamic: the r3 sentinel reaches B2");
    unsigned want3[] = { 300 };
    ok = received_exactly(b, from, want3, 1, "r3", "A2", why, sizeof why);
    check(ok, "dynamic: after bus_unbind(r1) nothing more arrives for r1%s%s",
          ok ? "" : ": ", why);
    check(stats(b).dropped_own == 0 && a->ngot == 0,
          "dynamic: A2 is bound to nothing and receives nothing");
    WAIT(ok, a->done_ok + a->done_fail >= a->issued, 10000);
    long copies = queue_copies(a->squeue);
    bus_stats sa = stats(a);
    check(ok && a->done_fail == 0 && copies == (long)a->done_ok && sa.storage_publishes < sa.stored,
          "dynamic: A2's %u storage copies are confirmed and all in its queue (%ld), "
          "batched into %llu AMQP messages", a->done_ok, copies,
          (unsigned long long)sa.storage_publishes);
    peer_clear(b);
}

static int services(const char *svc, const char *action)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s rabbitmq >&2", svc, action);
    return system(cmd);
}

static void restart(const char *svc, peer *a, peer *b, peer *a2, peer *b2)
{
    peer *all[] = { a, b, a2, b2 };
    bool ok;
    char why[160];
    int downs[4];
    for (int i = 0; i < 4; i++)
        downs[i] = all[i]->downs;
    uint64_t reconnects = stats(a).reconnects;

    /* Publish all through the stop (which runs in the background): the
     * storage copies in flight when the connection dies must be published
     * again after the restart and confirmed then. */
    char done_file[512], cmd[1200];
    snprintf(done_file, sizeof done_file, "%s/stop.rc", getenv("LECTERN_VAR_DIR") ?
             getenv("LECTERN_VAR_DIR") : "/tmp");
    unlink(done_file);
    snprintf(cmd, sizeof cmd, "('%s' stop rabbitmq >&2; echo $? > '%s') &", svc, done_file);
    uint64_t t0 = now_ms();
    int rc = system(cmd);
    unsigned burst = 0, tried = 0;
    bool stopped = false;
    while (!stopped && now_ms() - t0 < 20000) {
        if (bus_ready(a->b)) {
            tried += 50;
            burst += publish_range(a, 2000 + tried, 50, "room-f");
        }
        pump_for(2);
        stopped = access(done_file, F_OK) == 0;
    }
    FILE *rf = fopen(done_file, "r");
    if (!rf || fscanf(rf, "%d", &rc) != 1)
        rc = -1;
    if (rf)
        fclose(rf);
    check(rc == 0, "restart: scripts/services stop rabbitmq succeeds while A publishes "
          "(%.1f s, %u accepted meanwhile)", (double)(now_ms() - t0) / 1000, burst);
    WAIT(ok, all_down(all, 4), 15000);
    bool each = true;
    for (int i = 0; i < 4; i++)
        each = each && all[i]->downs == downs[i] + 1;
    check(ok && each, "restart: all four buses report down once");
    envelope e;
    gen(&e, 1, "room-f", "A");
    check(publish_one(a, &e) == -1 && publish_one(a2, &e) == -1 && !bus_ready(a->b),
          "restart: bus_publish fails (-1) while the bus is down");
    envelope_free(&e);

    t0 = now_ms();
    rc = services(svc, "start");
    uint64_t ready = now_ms();
    check(rc == 0, "restart: scripts/services start rabbitmq succeeds (%.1f s)",
          (double)(ready - t0) / 1000);
    WAIT(ok, all_up(all, 4), 30000);
    uint64_t up = now_ms();
    check(ok, "restart: all four buses report up again (%.2f s after the start command, "
          "%.2f s after the broker was ready)", (double)(up - t0) / 1000,
          (double)(up - ready) / 1000);
    if (!ok)
        return;
    check(stats(a).reconnects == reconnects + 1, "restart: A counts one reconnect");
    WAIT(ok, a->done_ok + a->done_fail >= a->issued, 30000);
    long depth = queue_copies(a->squeue);
    check(ok && a->done_fail == 0 && a->done_order_ok && depth >= (long)a->done_ok &&
          stats(a).republished > 0,
          "restart: every storage copy accepted while the broker went down was confirmed, "
          "in order (%llu published again after the restart; queue holds %ld >= %u "
          "confirmed)", (unsigned long long)stats(a).republished, depth, a->done_ok);

    size_t from = b->ngot;
    unsigned accepted = publish_range(a, 0, 100, "room-f");
    WAIT(ok, b->ngot - from >= 100, 10000);
    unsigned want[100];
    for (unsigned i = 0; i < 100; i++)
        want[i] = i;
    bool same = received_exactly(b, from, want, 100, "room-f", "A", why, sizeof why);
    check(ok && accepted == 100 && same,
          "restart: messages flow A -> B again over the re-declared queue%s%s",
          same ? "" : ": ", why);

    /* B2's set is {r3}: re-bound before it reported up; r1 stays unbound */
    from = b2->ngot;
    publish_range(a2, 400, 3, "r1");
    publish_range(a2, 410, 1, "r3");
    WAIT(ok, has_id(b2, from, id_of(410)), 10000);
    unsigned want2[] = { 410 };
    same = received_exactly(b2, from, want2, 1, "r3", "A2", why, sizeof why);
    check(ok && same, "restart: B2's binding r3 was re-established and r1 was not%s%s",
          same ? "" : ": ", why);
    peer_clear(b);
    peer_clear(b2);
}

static void unreachable(void)
{
    peer c;
    int port = closed_port();

    peer_start(&c, "C", "smoke.unreach", false, port);
    pump_for(300);      /* a few refused connects and backoff waits */
    check(!c.up && !bus_ready(c.b), "unreachable: a bus on a closed port never reports up");
    uint64_t t0 = now_ms();
    peer_stop(&c);
    uint64_t dt = now_ms() - t0;
    check(dt < 1000, "unreachable: bus_destroy returns promptly (%llu ms)",
          (unsigned long long)dt);

    peer_start(&c, "D", "smoke.unreach", true, port);
    bus_bind(c.b, "r1");
    t0 = now_ms();
    peer_stop(&c);
    dt = now_ms() - t0;
    check(dt < 1000, "unreachable: bus_destroy right after bus_create returns promptly "
          "(%llu ms)", (unsigned long long)dt);

    /* both threads blocked in amqp_login (12 s handshake timeout) */
    int hung_port, lfd = silent_listener(&hung_port);
    peer_start(&c, "H", "smoke.hung", false, hung_port);
    pump_for(300);
    check(!c.up, "hung broker: a bus whose broker never answers the handshake stays down");
    t0 = now_ms();
    peer_stop(&c);
    dt = now_ms() - t0;
    check(dt < 1000, "hung broker: bus_destroy cuts the blocked handshake off (%llu ms)",
          (unsigned long long)dt);
    close(lfd);
    pump_for(20);
}

/* A node list whose other entries are a closed port and a node that never
 * answers: whichever entry each connection starts at, both reach the live
 * node (the silent one costs at most the 5 s handshake deadline). */
static void node_list(void)
{
    peer c;
    char hosts[128];
    int closed = closed_port(), silent, lfd = silent_listener(&silent);
    bool ok;

    snprintf(hosts, sizeof hosts, " 127.0.0.1:%d, 127.0.0.1:%d ,127.0.0.1", closed, silent);
    uint64_t t0 = now_ms();
    peer_start_at(&c, "L", "smoke.list", false, hosts, amqp_port);
    WAIT(ok, c.up && bus_ready(c.b), 15000);
    check(ok, "node list: '%s' (port %d for the last) comes up on the live node (%llu ms)",
          hosts, amqp_port, (unsigned long long)(now_ms() - t0));
    peer_stop(&c);
    close(lfd);
    pump_for(20);

    peer_start_at(&c, "M", "smoke.list", false, "127.0.0.1:0", amqp_port);
    check(c.b == NULL, "node list: bus_create refuses a malformed list");
}

int main(void)
{
    const char *port = getenv("LECTERN_AMQP_PORT");
    const char *svc = getenv("LECTERN_SERVICES");
    const char *skip = getenv("BUS_SMOKE_SKIP_RESTART");
    if (!port) {
        fprintf(stderr, "bus_smoke: LECTERN_AMQP_PORT is not set (run tests/bus/run.sh)\n");
        return 2;
    }
    amqp_port = atoi(port);
    log_init("bus_smoke", LOG_LEVEL_INFO);
    uv_loop_init(&loop);

    peer a, b, a2, b2;
    peer_start(&a, "A", "smoke", false, amqp_port);
    peer_start(&b, "B", "smoke", false, amqp_port);
    fanout(&a, &b);
    backpressure(&a, &b);

    peer_start(&a2, "A2", "smoke-dyn", true, amqp_port);
    peer_start(&b2, "B2", "smoke-dyn", true, amqp_port);
    dynamic(&a2, &b2);

    peer *all[] = { &a, &b, &a2, &b2 };
    int downs = 0;
    for (int i = 0; i < 4; i++)
        downs += all[i]->downs;
    pump_for(8000);
    int downs_after = 0;
    for (int i = 0; i < 4; i++)
        downs_after += all[i]->downs;
    check(downs_after == downs && all_up(all, 4),
          "idle: 8 s without traffic (heartbeat 2 s): no connection is dropped");
    bus_stats before = stats(&a);
    size_t from = b.ngot;
    unsigned accepted = publish_range(&a, 800, 10, "room-f");
    bool ok;
    WAIT(ok, b.ngot - from >= 10, 5000);
    pump_for(100);
    bus_stats after = stats(&a);
    check(ok && accepted == 10 && b.ngot - from == 10 && after.publish_failures == 0 &&
          after.reconnects == before.reconnects && a.downs == 0,
          "idle: afterwards A's messages reach B over the same connections");
    peer_clear(&b);

    if (svc && !(skip && *skip == '1'))
        restart(svc, &a, &b, &a2, &b2);
    else
        note("restart checks skipped (LECTERN_SERVICES unset or BUS_SMOKE_SKIP_RESTART=1)");

    uint64_t t0 = now_ms();
    peer_stop(&a);
    peer_stop(&b);
    peer_stop(&a2);
    peer_stop(&b2);
    uint64_t dt = now_ms() - t0;
    check(dt < 2000, "bus_destroy of four connected buses takes %llu ms (< 2 s)",
          (unsigned long long)dt);

    unreachable();
    node_list();

    uv_run(&loop, UV_RUN_DEFAULT);     /* the async handles' close callbacks */
    check(uv_loop_close(&loop) == 0, "every uv handle is closed after bus_destroy");

    printf("1..%d\n", nchecks);
    if (nfailed) {
        printf("# %d of %d checks failed\n", nfailed, nchecks);
        return 1;
    }
    printf("# all %d checks passed\n", nchecks);
    return 0;
}
