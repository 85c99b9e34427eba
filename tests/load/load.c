/* load.c — lectern-load, the load generator for Lectern (and for any
 * STOMP-over-WebSocket server, such as RabbitMQ Web-STOMP, and with
 * --protocol socketio for a Socket.IO deployment).
 *
 * What it does. It opens many WebSocket connections, speaks STOMP 1.2 on
 * them, and plays a scenario: subscribers in rooms (/topic/<prefix>-<n>),
 * publishers sending timestamped messages to those rooms at a paced rate
 * (optionally rising step by step), and idle connections that only
 * subscribe and wait. It measures connect success and time, end-to-end
 * latency (publish to receive, from a timestamp in the body), delivery
 * completeness (expected vs received, gaps, duplicates) and deliveries per
 * second, prints live progress on stderr and one JSON document on stdout.
 * Given --watch-pid it also samples the servers' CPU time over the
 * connect and publishing phases and their RSS before and after connecting,
 * which gives CPU per connection made, CPU per delivery and memory per
 * connection; --watch-extra NAME=PID
 * samples the other processes a system needs (its registry, broker, load
 * balancer) over the same window and reports them apart, by name, so a
 * comparison can count every process while the servers' figures stay the
 * servers'.
 *
 * Design. The parent forks --procs children; each child owns the
 * connections whose global index i has i % procs == child, and drives them
 * with one non-blocking epoll loop (no threads, no locks). Children and
 * parent share one anonymous MAP_SHARED region: a control block written by
 * the parent (start time, stop time) and one result block per child
 * (counters, histograms, per-room tallies) written by that child only. The
 * phases are: connect (at --ramp connections/s, at most --inflight
 * handshakes at once per child, from --sources source addresses
 * 127.0.0.1..N so that one destination is not limited to one ephemeral port
 * range) -> every child ready -> the parent sets a common start time ->
 * publish for --duration (or until the parent stops it: a rising-rate step
 * missed --slo-ms or lost messages) -> drain (until --quiet-ms without a
 * delivery, at most --drain-ms) -> the parent merges and reports.
 *
 * Messages. A body is "<publisher>:<seq>:<step>:<t_ns>:" padded with 'x' to
 * --size bytes; t_ns is CLOCK_MONOTONIC, which every process on the machine
 * shares. A subscriber knows the publishers of its room and keeps the next
 * expected seq of each, which counts gaps and duplicates without storing
 * what it saw. Delivery is complete when, for every room and step, the
 * received count equals sent x ready subscribers with no gap.
 *
 * Invariants: only loopback destinations are accepted (127.0.0.0/8); every
 * phase has a deadline, so a run ends within connect-timeout + duration +
 * drain-ms whatever the server does; counts are bounded (LOAD_MAX_CONNS).
 *
 * The connection layer (TCP, WebSocket handshake, STOMP CONNECT, reading,
 * writing, the epoll loop) is conn.c's; this file plays the scenario
 * through its hooks.
 *
 * Socket.IO. --protocol socketio plays the same room scenarios, with the
 * same bodies and the same accounting, against the events of the peer in
 * tests/peers/socketio/: a subscriber emits join(room) and is ready at its
 * acknowledgement (where STOMP waits for the SUBSCRIBE's RECEIPT), a
 * publisher is ready once connected and emits pub(room, body) for each
 * SEND, and the peer's event m(body) is a MESSAGE. Rooms are named as the
 * STOMP destinations without "/topic/". conn.c speaks Engine.IO.
 *
 * TLS. wss:// URLs make their connections TLS (tlsio.c under conn.c), each
 * a full handshake verified against --tls-ca or the system's store; the
 * connect time then includes the handshake. The status-* scenarios (friends' online status) are
 * status.c's: main() hands them over whole.
 */
#include "conn.h"
#include "hist.h"
#include "json.h"
#include "scan.h"
#include "sio.h"
#include "status.h"
#include "tlsio.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOAD_MAX_CONNS   120000
#define LOAD_MAX_URLS    16
#define LOAD_MAX_STEPS   64
#define LOAD_MAX_PIDS    16
#define LOAD_MAX_DURATION_S 900
#define LOAD_RBUF        (256 * 1024)
#define LOAD_MAX_FRAME   (16u << 20)
#define LOAD_FDS_PER_PROC 18000  /* connections per process (20,000 open files here) */

/* ---------------------------------------------------------------- options */

typedef struct opts {
    const char *scenario;
    conn_url urls[LOAD_MAX_URLS];
    int nurls;
    long subs;               /* subscribers in rooms (total) */
    long rooms;
    long pubs;               /* publishers per room */
    long idle;               /* idle subscribed connections */
    long idle_room;          /* idle connections per idle room */
    double rate;             /* messages/s per room, first step */
    double rate_step;        /* added per step (0: one step) */
    double rate_max;
    double step_s;
    double duration_s;       /* publishing (or holding) time */
    long size;               /* body bytes */
    long procs;
    long sources;
    double ramp;             /* new connections/s, all children together */
    long inflight;           /* handshakes at once per child */
    long connect_timeout_ms;
    long drain_ms, quiet_ms;
    double slo_ms;           /* stop rising when a step's p99 exceeds this */
    const char *login, *passcode, *vhost, *prefix;
    const char *heart_beat;  /* CONNECT's heart-beat (NULL: 0,0) */
    long hb_cx;              /* > 0: send an EOL to every connection this often, ms */
    int watch[LOAD_MAX_PIDS];
    int nwatch;
    int extra[LOAD_MAX_PIDS];            /* --watch-extra pids */
    const char *extra_name[LOAD_MAX_PIDS];
    int nextra;
    bool json;
    bool quiet;
    bool sio;                /* --protocol socketio */
    const char *tls_ca;      /* --tls-ca: trusted for wss:// (NULL: the system's store) */
    tlsio_ctx *tls;          /* made in main when a URL is wss:// */
} opts;

/* --------------------------------------------------------- shared region */

typedef struct control {
    volatile int64_t go_ns;      /* 0 until every child is connected */
    volatile int64_t stop_ns;    /* INT64_MAX, or when publishing stops */
    volatile int abort_all;
} control;

/* One child's results; written only by that child. The variable parts
 * (latency histograms per step and locality, per-room tallies) follow the
 * struct in the region, see region_layout(). */
typedef struct child_res {
    volatile int ready;          /* connect phase over */
    volatile int done;           /* drained; results final */
    conn_counts net;             /* connections and their errors (conn.h) */
    volatile uint64_t sent, received, gaps, dups, foreign, bad_body;
    volatile uint64_t pub_behind;
    volatile int64_t last_rx_ns;
    volatile int64_t cpu_pub_us; /* this process's CPU from publishing start to done */
    volatile uint64_t reads_pub, polls_pub;  /* recv() and epoll_wait() calls over the same */
    hist connect_us;
} child_res;

typedef struct layout {
    size_t child_size;           /* bytes per child block */
    size_t off_lat;              /* hist[nsteps][2] */
    size_t off_sent;             /* uint64_t[rooms * nsteps] */
    size_t off_recv;             /* uint64_t[rooms * nsteps] */
    size_t off_ready;            /* uint64_t[rooms]: subscribed subscribers */
} layout;

static opts O;
static int nsteps;
static double rates[LOAD_MAX_STEPS];
static layout L;
static control *ctl;
static unsigned char *region;    /* control, then procs child blocks */

/* This process's CPU time (user + system) so far, in µs. */
static int64_t self_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static child_res *child_at(int c)
{
    return (child_res *)(region + 4096 + (size_t)c * L.child_size);
}
static hist *lat_of(child_res *r, int step, int remote)
{
    return (hist *)((unsigned char *)r + L.off_lat) + step * 2 + remote;
}
static uint64_t *sent_of(child_res *r) { return (uint64_t *)((unsigned char *)r + L.off_sent); }
static uint64_t *recv_of(child_res *r) { return (uint64_t *)((unsigned char *)r + L.off_recv); }
static uint64_t *ready_of(child_res *r) { return (uint64_t *)((unsigned char *)r + L.off_ready); }

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static void region_layout(void)
{
    size_t off = align64(sizeof(child_res));
    L.off_lat = off;
    off += align64(sizeof(hist) * (size_t)nsteps * 2);
    L.off_sent = off;
    off += align64(sizeof(uint64_t) * (size_t)(O.rooms * nsteps));
    L.off_recv = off;
    off += align64(sizeof(uint64_t) * (size_t)(O.rooms * nsteps));
    L.off_ready = off;
    off += align64(sizeof(uint64_t) * (size_t)(O.rooms > 0 ? O.rooms : 1));
    L.child_size = (off + 4095) & ~(size_t)4095;
}

/* ------------------------------------------------------------ utilities */

__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lectern-load: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* ---------------------------------------------------------- connections */

enum { ROLE_SUB, ROLE_PUB, ROLE_IDLE };

/* One connection of this child: the connection layer's part (conn.h; its
 * id is the global index) and the scenario's. */
typedef struct client {
    conn net;                    /* first: hooks' conn * cast back to client * */
    uint8_t role;
    uint32_t room;               /* SUB/PUB: room; IDLE: idle room */
    uint32_t pub;                /* PUB: publisher number (room * pubs + k) */
    uint32_t *next;              /* SUB: next seq expected per publisher of the room */
    uint64_t seq;                /* PUB: next seq */
    uint64_t step_sent;          /* PUB: sent in the current step */
    int step;                    /* PUB: step step_sent counts */
} client;

static int me;                   /* child number */
static child_res *R;             /* this child's results */
static conn_loop loop;
static client *conns;
static size_t nconns;
static unsigned char wbuf[LOAD_RBUF];
static int64_t go_ns, pub_end_ns;
static client **pubs;            /* this child's publishers */
static size_t npubs;

static void room_name(char *dst, size_t cap, const client *c)
{
    if (O.sio) {
        snprintf(dst, cap, c->role == ROLE_IDLE ? "%s-idle-%u" : "%s-%u", O.prefix, c->room);
        return;
    }
    if (c->role == ROLE_IDLE)
        snprintf(dst, cap, "/topic/%s-idle-%u", O.prefix, c->room);
    else
        snprintf(dst, cap, "/topic/%s-%u", O.prefix, c->room);
}

static void became_ready(client *c)
{
    conn_ready(&loop, &c->net);
    hist_add(&R->connect_us, (uint64_t)(conn_now_ns() - c->net.t_open) / 1000);
    if (c->role == ROLE_SUB)
        ready_of(R)[c->room]++;
}

/* ------------------------------------------------------------- receiving */

static uint64_t parse_u64(const char **p, const char *end, bool *ok)
{
    uint64_t v = 0;
    const char *q = *p;
    if (q >= end || *q < '0' || *q > '9')
        *ok = false;
    while (q < end && *q >= '0' && *q <= '9')
        v = v * 10 + (uint64_t)(*q++ - '0');
    if (q >= end || *q != ':')
        *ok = false;
    *p = q + 1;
    return v;
}

static void on_message(conn_loop *l, conn *nc, const scan_frame *f)
{
    client *c = (client *)nc;
    if (c->role != ROLE_SUB) {
        R->foreign++;
        return;
    }
    int64_t t = l->rx_now;
    const char *p = f->body, *end = f->body + f->body_len;
    bool ok = true;
    uint64_t pub = parse_u64(&p, end, &ok);
    uint64_t seq = parse_u64(&p, end, &ok);
    uint64_t step = parse_u64(&p, end, &ok);
    uint64_t ts = parse_u64(&p, end, &ok);
    if (!ok || step >= (uint64_t)nsteps) {
        R->bad_body++;
        return;
    }
    if (pub / (uint64_t)O.pubs != c->room) {
        R->foreign++;
        return;
    }
    uint32_t k = (uint32_t)(pub % (uint64_t)O.pubs);
    if (seq == c->next[k]) {
        c->next[k]++;
    } else if (seq > c->next[k]) {
        R->gaps += seq - c->next[k];
        c->next[k] = (uint32_t)seq + 1;
    } else {
        R->dups++;
        return;
    }
    R->received++;
    R->last_rx_ns = t;
    recv_of(R)[(size_t)c->room * (size_t)nsteps + step]++;
    int remote = (int)(pub % (uint64_t)O.nurls) != c->net.url;
    int64_t lat = t - (int64_t)ts;
    hist_add(lat_of(R, (int)step, remote), lat > 0 ? (uint64_t)lat / 1000 : 0);
}

static void on_connected(conn_loop *l, conn *nc, const scan_frame *f)
{
    (void)f;
    client *c = (client *)nc;
    if (c->role == ROLE_PUB) {
        became_ready(c);
        return;
    }
    char text[512], dest[160];
    room_name(dest, sizeof dest, c);
    if (O.sio) {
        const char *args[] = { dest };
        size_t sn = sio_event(text, sizeof text, 0, "join", args, 1);
        c->net.state = CONN_SUBSCRIBING;
        conn_send_text(l, nc, text, sn);
        return;
    }
    int n = snprintf(text, sizeof text,
                     "SUBSCRIBE\nid:0\ndestination:%s\nack:auto\nreceipt:s\n\n", dest);
    c->net.state = CONN_SUBSCRIBING;
    conn_send_stomp(l, nc, text, (size_t)n + 1);   /* with the NUL */
}

static void on_receipt(conn_loop *l, conn *nc, const scan_frame *f)
{
    (void)l;
    (void)f;
    if (nc->state == CONN_SUBSCRIBING)
        became_ready((client *)nc);
}

/* --login with "%u" in it names every connection differently (a distinct
 * user each, as in a real lecture); without, all share the login. */
static void login_for(const conn *c, char *dst, size_t cap)
{
    const char *p = strstr(O.login, "%u");
    if (!p) {
        snprintf(dst, cap, "%s", O.login);
        return;
    }
    snprintf(dst, cap, "%.*s%u%s", (int)(p - O.login), O.login, c->id, p + 2);
}

/* ------------------------------------------------------------ publishing */

/* Socket.IO: the next message of publisher c in step `step` as the packet
 * pub(dest, body) into dst[0..cap) (the same body as STOMP's SEND);
 * returns its length, 0 when it does not fit. */
static size_t sio_publish(char *dst, size_t cap, client *c, const char *dest, int step)
{
    static char body[65536 + 1];
    int bl = snprintf(body, sizeof body, "%u:%" PRIu64 ":%d:%" PRId64 ":", c->pub, c->seq, step, conn_now_ns());
    size_t blen = (size_t)O.size > (size_t)bl ? (size_t)O.size : (size_t)bl;
    memset(body + bl, 'x', blen - (size_t)bl);
    body[blen] = '\0';
    const char *args[] = { dest, body };
    return sio_event(dst, cap, -1, "pub", args, 2);
}

static void publish_tick(int64_t t)
{
    int step = (int)((t - go_ns) / (int64_t)(O.step_s * 1e9));
    if (step >= nsteps)
        step = nsteps - 1;
    double per_pub = rates[step] / (double)O.pubs;
    double in_step = (double)(t - go_ns) / 1e9 - step * O.step_s;
    char text[1024];
    char dest[160];
    for (size_t i = 0; i < npubs; i++) {
        client *c = pubs[i];
        if (c->net.state != CONN_READY)
            continue;
        if (c->step != step) {
            c->step = step;
            c->step_sent = 0;
        }
        uint64_t target = (uint64_t)(per_pub * in_step) + 1;
        if (c->step_sent >= target)
            continue;
        if (c->net.out_len > 0) {        /* the server is not reading: fall behind */
            R->pub_behind++;
            continue;
        }
        room_name(dest, sizeof dest, c);
        size_t used = 0;
        if (O.sio) {
            /* One WebSocket message per packet; the batch is one send(). */
            static char packet[65536 + 512];
            while (c->step_sent < target) {
                size_t pl = sio_publish(packet, sizeof packet, c, dest, step);
                if (pl == 0 || used + pl + 14 > sizeof wbuf)
                    break;
                used += conn_frame(&loop, wbuf + used, packet, pl);
                c->seq++;
                c->step_sent++;
                R->sent++;
                sent_of(R)[(size_t)c->room * (size_t)nsteps + (size_t)step]++;
            }
            conn_send(&loop, &c->net, wbuf, used);
            continue;
        }
        while (c->step_sent < target && used + sizeof text + 16 < sizeof wbuf) {
            char body[64];
            int bl = snprintf(body, sizeof body, "%u:%" PRIu64 ":%d:%" PRId64 ":", c->pub, c->seq, step, conn_now_ns());
            size_t blen = (size_t)O.size > (size_t)bl ? (size_t)O.size : (size_t)bl;
            int hl = snprintf(text, sizeof text,
                              "SEND\ndestination:%s\ncontent-type:text/plain\ncontent-length:%zu\n\n",
                              dest, blen);
            memcpy(text + hl, body, (size_t)bl);
            memset(text + hl + bl, 'x', blen - (size_t)bl);
            text[(size_t)hl + blen] = '\0';
            used += conn_frame(&loop, wbuf + used, text, (size_t)hl + blen + 1);
            c->seq++;
            c->step_sent++;
            R->sent++;
            sent_of(R)[(size_t)c->room * (size_t)nsteps + (size_t)step]++;
        }
        conn_send(&loop, &c->net, wbuf, used);
    }
}

/* -------------------------------------------------------------- a child */

/* Which process drives connection g. The active ones (subscribers and
 * publishers) go to as few processes as their descriptors allow: spreading
 * them over more processes than needed made tail latency worse on a small
 * machine (more processes waking and waiting for a core). Idle connections
 * go to the other processes when there are any. */
static int owner_of(long g, long active)
{
    long active_procs = active ? active / LOAD_FDS_PER_PROC + 1 : 0;
    if (active_procs > O.procs)
        active_procs = O.procs;
    if (g < active)
        return (int)(g % active_procs);
    long idle_procs = O.procs - active_procs;
    if (idle_procs <= 0)
        return (int)(g % O.procs);
    return (int)(active_procs + (g - active) % idle_procs);
}

static void child_assign(void)
{
    long total = O.subs + O.rooms * O.pubs + O.idle;
    long active = O.subs + O.rooms * O.pubs;
    nconns = 0;
    conns = calloc((size_t)total, sizeof *conns);
    pubs = calloc((size_t)(O.rooms * O.pubs + 1), sizeof *pubs);
    long members = O.rooms > 0 ? O.subs / O.rooms : 0;
    for (long g = 0; g < total; g++) {
        if (owner_of(g, active) != me)
            continue;
        client *c = &conns[nconns++];
        c->net.fd = -1;
        c->net.id = (uint32_t)g;
        c->net.state = CONN_CLOSED;
        c->step = -1;
        if (g < O.subs) {
            c->role = ROLE_SUB;
            c->room = (uint32_t)(members > 0 ? g / members : 0);
            if (c->room >= (uint32_t)O.rooms)
                c->room = (uint32_t)O.rooms - 1;
            c->net.url = (uint8_t)(g % O.nurls);
            c->next = calloc((size_t)O.pubs, sizeof *c->next);
        } else if (g < O.subs + O.rooms * O.pubs) {
            c->role = ROLE_PUB;
            pubs[npubs++] = c;
            c->pub = (uint32_t)(g - O.subs);
            c->room = c->pub / (uint32_t)O.pubs;
            c->net.url = (uint8_t)(c->pub % (uint32_t)O.nurls);
        } else {
            long i = g - O.subs - O.rooms * O.pubs;
            c->role = ROLE_IDLE;
            c->room = (uint32_t)(i / O.idle_room);
            c->net.url = (uint8_t)(i % O.nurls);
        }
    }
}

static void child_run(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    const conn_opts co = {
        .urls = O.urls, .protocols = O.sio ? NULL : "v12.stomp, v11.stomp, v10.stomp",
        .protocol = O.sio ? CONN_SOCKETIO : CONN_STOMP_PROTO,
        .accept_version = "1.2,1.1", .vhost = O.vhost, .passcode = O.passcode, .heart_beat = O.heart_beat,
        .sources = O.sources, .max_frame = LOAD_MAX_FRAME, .tls = O.tls,
        .hooks = { .connected = on_connected, .message = on_message, .receipt = on_receipt,
                   .login = login_for },
    };
    conn_loop_init(&loop, &co, &R->net, 88172645463325252ull ^ (uint64_t)getpid() * 0x9E3779B97F4A7C15ull);
    child_assign();

    int64_t start = conn_now_ns();
    int64_t deadline = start + (int64_t)O.connect_timeout_ms * 1000000;
    double ramp = O.ramp / (double)O.procs;
    size_t next_open = 0;
    int64_t last_sweep = start;
    int64_t next_beat = start + O.hb_cx * 1000000;   /* when the EOLs are next due */
    enum { PH_CONNECT, PH_WAIT, PH_PUBLISH, PH_DRAIN } phase = PH_CONNECT;
    int64_t drain_start = 0, drain_end = 0, cpu_go = 0;

    for (;;) {
        int64_t t = conn_now_ns();
        if (ctl->abort_all)
            break;
        if (phase == PH_CONNECT) {
            size_t allowed = (size_t)((double)(t - start) / 1e9 * ramp) + 1;
            while (next_open < nconns && next_open < allowed && loop.inflight < O.inflight)
                conn_open(&loop, &conns[next_open++].net);
            if (t - last_sweep > 200000000) {
                last_sweep = t;
                if (t > deadline) {
                    for (size_t i = 0; i < nconns; i++)
                        if (conns[i].net.state != CONN_READY && conns[i].net.state != CONN_CLOSED) {
                            conn_error(&loop, "connect timeout", NULL, 0);
                            conn_close(&loop, &conns[i].net, true);
                        }
                    while (next_open < nconns) {
                        conns[next_open++].net.state = CONN_CLOSED;
                        R->net.failed++;
                    }
                }
            }
            if (next_open == nconns && loop.inflight == 0) {
                phase = PH_WAIT;
                __atomic_store_n(&R->ready, 1, __ATOMIC_RELEASE);
            }
        } else if (phase == PH_WAIT) {
            if (ctl->go_ns && t >= ctl->go_ns) {
                go_ns = ctl->go_ns;
                phase = PH_PUBLISH;
                cpu_go = self_cpu_us();
                R->reads_pub = R->net.reads;
                R->polls_pub = R->net.polls;
                pub_end_ns = go_ns + (int64_t)(O.duration_s * 1e9);
            }
        }
        if (phase == PH_PUBLISH) {
            int64_t stop = ctl->stop_ns;
            int64_t end = stop < pub_end_ns ? stop : pub_end_ns;
            if (t >= end) {
                /* The pacing tick runs between polls, so the last one can
                 * fall a little before the window's end: what the window
                 * still owes is sent now, and a step carries exactly its
                 * rate times its length. */
                publish_tick(end - 1);
                phase = PH_DRAIN;
                drain_start = t;
                drain_end = t + (int64_t)O.drain_ms * 1000000;
            } else {
                publish_tick(t);
            }
        }
        if (phase == PH_DRAIN) {
            int64_t since = R->last_rx_ns > drain_start ? R->last_rx_ns : drain_start;
            if (t >= drain_end || t - since > (int64_t)O.quiet_ms * 1000000)
                break;
        }
        /* Our heart-beats: an EOL (one WebSocket message) to every
         * connection in STOMP state or ready, every cx ms. */
        if (O.hb_cx > 0 && t >= next_beat && !O.sio) {
            next_beat = t + O.hb_cx * 1000000;
            for (size_t i = 0; i < nconns; i++)
                if (conns[i].net.state == CONN_READY)
                    conn_send_text(&loop, &conns[i].net, "\n", 1);
        }
        /* Only a process with publishers needs the 1 ms pacing tick. */
        int timeout = phase == PH_PUBLISH && npubs ? 1 : 10;
        conn_poll(&loop, timeout);
    }
    if (cpu_go) {
        R->cpu_pub_us = self_cpu_us() - cpu_go;
        R->reads_pub = R->net.reads - R->reads_pub;
        R->polls_pub = R->net.polls - R->polls_pub;
    }
    __atomic_store_n(&R->done, 1, __ATOMIC_RELEASE);
}

/* --------------------------------------------------------- the parent */

/* Add process pid's CPU ticks (utime + stime) and RSS (KiB) to *cpu_ticks
 * and *rss_kib; a process that is gone adds nothing. */
static void pid_sample(int pid, long *cpu_ticks, long *rss_kib)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(line, sizeof line, f)) {
            char *p = strrchr(line, ')');
            unsigned long ut = 0, st = 0;
            /* after ") ": state ppid pgrp session tty tpgid flags minflt
             * cminflt majflt cmajflt utime stime */
            if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
                *cpu_ticks += (long)(ut + st);
        }
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            long v;
            if (sscanf(line, "VmRSS: %ld", &v) == 1)
                *rss_kib += v;
        }
        fclose(f);
    }
}

/* The --watch-pid processes' CPU ticks and RSS, summed. */
static void proc_sample(long *cpu_ticks, long *rss_kib)
{
    *cpu_ticks = 0;
    *rss_kib = 0;
    for (int i = 0; i < O.nwatch; i++)
        pid_sample(O.watch[i], cpu_ticks, rss_kib);
}

/* Each --watch-extra process's CPU ticks and RSS into cpu[i], rss[i];
 * returns the CPU ticks of all of them. */
static long extra_sample(long cpu[LOAD_MAX_PIDS], long rss[LOAD_MAX_PIDS])
{
    long all = 0;
    for (int i = 0; i < O.nextra; i++) {
        cpu[i] = rss[i] = 0;
        pid_sample(O.extra[i], &cpu[i], &rss[i]);
        all += cpu[i];
    }
    return all;
}

/* The "extra" block of the report: every --watch-extra process together,
 * then by name (processes of one name summed), from the samples taken
 * before connecting (0), with every connection held (held) and at the end
 * (1); CPU over the publishing phase, as the servers'. */
static void json_extra(FILE *f, const long *cpu_held, const long *cpu1, const long *rss0, const long *rss_held,
                       uint64_t deliveries, uint64_t conns_ok, double hz)
{
    long c = 0, r0 = 0, rh = 0;
    for (int i = 0; i < O.nextra; i++) {
        c += cpu1[i] - cpu_held[i];
        r0 += rss0[i];
        rh += rss_held[i];
    }
    double cs = (double)c / hz;
    fprintf(f, ",\"extra\":{\"pids\":%d,\"cpu_s\":%.3f,\"cpu_us_per_delivery\":%.4f,\"rss_before_kib\":%ld,"
               "\"rss_connected_kib\":%ld,\"rss_per_conn_bytes\":%.0f,\"by_name\":{",
            O.nextra, cs, deliveries ? cs * 1e6 / (double)deliveries : 0.0, r0, rh,
            conns_ok ? (double)(rh - r0) * 1024.0 / (double)conns_ok : 0.0);
    bool first = true;
    for (int i = 0; i < O.nextra; i++) {
        bool seen = false;
        for (int j = 0; j < i; j++)
            seen = seen || strcmp(O.extra_name[j], O.extra_name[i]) == 0;
        if (seen)
            continue;
        long nc = 0, n0 = 0, nh = 0;
        int np = 0;
        for (int j = i; j < O.nextra; j++)
            if (strcmp(O.extra_name[j], O.extra_name[i]) == 0) {
                nc += cpu1[j] - cpu_held[j];
                n0 += rss0[j];
                nh += rss_held[j];
                np++;
            }
        if (!first)
            fputc(',', f);
        first = false;
        json_str(f, O.extra_name[i]);
        fprintf(f, ":{\"pids\":%d,\"cpu_s\":%.3f,\"rss_before_kib\":%ld,\"rss_connected_kib\":%ld}",
                np, (double)nc / hz, n0, nh);
    }
    fprintf(f, "}}");
}

typedef struct totals {
    uint64_t opened, ok, failed, dropped, sent, received, gaps, dups, foreign, bad_body;
    uint64_t stomp_errors, ws_errors, pub_behind;
} totals;

static totals sum_children(void)
{
    totals t = { 0 };
    for (int c = 0; c < O.procs; c++) {
        child_res *r = child_at(c);
        t.opened += r->net.opened;
        t.ok += r->net.ok;
        t.failed += r->net.failed;
        t.dropped += r->net.dropped;
        t.sent += r->sent;
        t.received += r->received;
        t.gaps += r->gaps;
        t.dups += r->dups;
        t.foreign += r->foreign;
        t.bad_body += r->bad_body;
        t.stomp_errors += r->net.stomp_errors;
        t.ws_errors += r->net.ws_errors;
        t.pub_behind += r->pub_behind;
    }
    return t;
}

/* Messages of step s: sent, and the deliveries expected and received. */
static void step_tally(int s, uint64_t *sent, uint64_t *expected, uint64_t *received)
{
    *sent = *expected = *received = 0;
    for (long room = 0; room < O.rooms; room++) {
        uint64_t rs = 0, rr = 0, subs = 0;
        for (int c = 0; c < O.procs; c++) {
            child_res *r = child_at(c);
            rs += sent_of(r)[room * nsteps + s];
            rr += recv_of(r)[room * nsteps + s];
            subs += ready_of(r)[room];
        }
        *sent += rs;
        *expected += rs * subs;
        *received += rr;
    }
}

static void step_hist(int s, int remote, hist *out)
{
    memset(out, 0, sizeof *out);
    for (int c = 0; c < O.procs; c++) {
        if (remote < 0) {
            hist_merge(out, lat_of(child_at(c), s, 0));
            hist_merge(out, lat_of(child_at(c), s, 1));
        } else {
            hist_merge(out, lat_of(child_at(c), s, remote));
        }
    }
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: lectern-load --url ws://127.0.0.1:PORT/ws [--url ...] [--scenario NAME] [options]\n"
"\n"
"Load generator for Lectern and other STOMP-over-WebSocket servers (loopback only).\n"
"Prints progress on stderr and one JSON result on stdout.\n"
"\n"
"Scenarios (each sets defaults that the options below override):\n"
"  small    100 subscribers, 10 rooms, 1 publisher/room at 10 msg/s, 10 s\n"
"  medium   1,000 subscribers, 50 rooms, 10 msg/s per room, 15 s\n"
"  large    10,000 subscribers, 200 rooms, 5 msg/s per room, 20 s\n"
"  rooms    6,000 subscribers in 300 rooms of 20, 5 msg/s per room, 15 s\n"
"  fanout   1 room of 1,000 subscribers, 2 publishers, rate rising from 250 msg/s\n"
"           by 250 every 4 s up to 2,500 (stops at the first step that misses --slo-ms)\n"
"  idle     5,000 connections, each subscribed (rooms of 50), held 10 s\n"
"\n"
"Options:\n"
"  --url URL             server endpoint (repeat for several servers; connections\n"
"                        are spread round-robin); ws://127.x.x.x:port/path, or\n"
"                        wss://... for TLS (full handshakes, no session resumed;\n"
"                        the certificate must name the URL's host)\n"
"  --tls-ca FILE         trust the CA certificates of FILE (PEM) for wss:// URLs\n"
"                        (default: the system's store); verification is never off\n"
"  --protocol P          stomp (default) or socketio: Socket.IO 5 over Engine.IO 4,\n"
"                        WebSocket transport, against tests/peers/socketio/ (events\n"
"                        join+ack, pub, m; room scenarios only; a URL path \"/\" means\n"
"                        /socket.io/, and ?" SIO_QUERY " is added)\n"
"  --scenario NAME       small|medium|large|rooms|fanout|idle (default small)\n"
"  --subscribers N       subscribers in rooms, in total\n"
"  --rooms N             rooms\n"
"  --publishers N        publishers per room (each its own connection)\n"
"  --idle N              extra idle subscribed connections\n"
"  --idle-room N         idle connections per idle room (default 50)\n"
"  --rate R              messages/s per room (first step)\n"
"  --rate-step R         added to the rate each step (0: one step)\n"
"  --rate-max R          last step's rate\n"
"  --step S              seconds per step\n"
"  --duration S          publishing (or holding) time, s (at most %d)\n"
"  --size B              message body bytes (default 100)\n"
"  --procs N             generator processes (default: enough for 18,000 fds each)\n"
"  --sources N           source addresses 127.0.0.1..N (default 1; 4 above 20,000 conns)\n"
"  --ramp R              new connections per second (default 5000)\n"
"  --inflight N          handshakes at once per process (default 256)\n"
"  --connect-timeout MS  connect phase deadline (default 60000)\n"
"  --drain MS            wait at most this long for deliveries after publishing (default 10000)\n"
"  --quiet MS            ...or until no delivery for this long (default 1000)\n"
"  --slo MS              p99 a rising step must meet to continue (default 50)\n"
"  --login L --passcode P --vhost H   CONNECT credentials (default guest/guest, /);\n"
"                        a %%u in L becomes the connection's number (one user each)\n"
"  --heart-beat CX,CY    CONNECT's heart-beat header (default 0,0); CX > 0: every\n"
"                        connection sends an EOL every CX ms (server beats are not checked)\n"
"  --prefix P            room name prefix (default load-<pid>)\n"
"  --watch-pid PID       sample this server process's CPU and RSS (repeatable)\n"
"  --watch-extra NAME=PID  sample another process the system needs (registry,\n"
"                        broker, load balancer) over the same window; reported\n"
"                        apart under \"extra\", by NAME (repeatable; a NAME may repeat)\n"
"  --json                (accepted for clarity; the result is always JSON on stdout)\n"
"  --no-progress         no progress lines on stderr\n"
"  --help\n\n", LOAD_MAX_DURATION_S);
    status_usage(f);
}

static void parse_url(const char *s)
{
    if (O.nurls >= LOAD_MAX_URLS)
        die("too many --url (max %d)", LOAD_MAX_URLS);
    const char *why;
    if (conn_url_parse(s, &O.urls[O.nurls], &why) != 0)
        die("%s: %s", why, s);
    O.nurls++;
}

/* Socket.IO's endpoint: the path given ("/" means the default,
 * /socket.io/) with the query that opens an Engine.IO session on the
 * WebSocket transport, unless the URL has a query of its own. */
static void sio_url(conn_url *u)
{
    if (strchr(u->path, '?'))
        return;
    char path[sizeof u->path];
    int n = snprintf(path, sizeof path, "%s?" SIO_QUERY, strcmp(u->path, "/") == 0 ? "/socket.io/" : u->path);
    if (n < 0 || (size_t)n >= sizeof path)
        die("URL path too long: %s", u->path);
    memcpy(u->path, path, (size_t)n + 1);
}

static void scenario_defaults(const char *name)
{
    O.rooms = 10; O.subs = 100; O.pubs = 1; O.idle = 0; O.rate = 10; O.rate_step = 0;
    O.rate_max = 0; O.duration_s = 10; O.step_s = 0;
    if (strcmp(name, "small") == 0) {
        /* the defaults */
    } else if (strcmp(name, "medium") == 0) {
        O.subs = 1000; O.rooms = 50; O.duration_s = 15;
    } else if (strcmp(name, "large") == 0) {
        O.subs = 10000; O.rooms = 200; O.rate = 5; O.duration_s = 20;
    } else if (strcmp(name, "rooms") == 0) {
        O.subs = 6000; O.rooms = 300; O.rate = 5; O.duration_s = 15;
    } else if (strcmp(name, "fanout") == 0) {
        O.subs = 1000; O.rooms = 1; O.pubs = 2; O.rate = 250; O.rate_step = 250;
        O.rate_max = 2500; O.step_s = 4;
    } else if (strcmp(name, "idle") == 0) {
        O.subs = 0; O.rooms = 0; O.pubs = 0; O.idle = 5000; O.rate = 0;
    } else {
        die("unknown scenario %s", name);
    }
}

int main(int argc, char **argv)
{
    enum { OPT_URL = 256, OPT_SCEN, OPT_SUBS, OPT_ROOMS, OPT_PUBS, OPT_IDLE, OPT_IDLE_ROOM,
           OPT_RATE, OPT_RATE_STEP, OPT_RATE_MAX, OPT_STEP, OPT_DURATION, OPT_SIZE, OPT_PROCS,
           OPT_SOURCES, OPT_RAMP, OPT_INFLIGHT, OPT_CTIMEOUT, OPT_DRAIN, OPT_QUIET, OPT_SLO,
           OPT_LOGIN, OPT_PASS, OPT_VHOST, OPT_HB, OPT_PREFIX, OPT_WATCH, OPT_JSON, OPT_NOPROG, OPT_HELP,
           OPT_PROTO, OPT_EXTRA, OPT_TLS_CA };
    static const struct option lo[] = {
        { "url", 1, 0, OPT_URL }, { "scenario", 1, 0, OPT_SCEN }, { "subscribers", 1, 0, OPT_SUBS },
        { "connections", 1, 0, OPT_SUBS }, { "rooms", 1, 0, OPT_ROOMS },
        { "publishers", 1, 0, OPT_PUBS }, { "idle", 1, 0, OPT_IDLE }, { "idle-room", 1, 0, OPT_IDLE_ROOM },
        { "rate", 1, 0, OPT_RATE }, { "rate-step", 1, 0, OPT_RATE_STEP }, { "rate-max", 1, 0, OPT_RATE_MAX },
        { "step", 1, 0, OPT_STEP }, { "duration", 1, 0, OPT_DURATION }, { "size", 1, 0, OPT_SIZE },
        { "procs", 1, 0, OPT_PROCS }, { "sources", 1, 0, OPT_SOURCES }, { "ramp", 1, 0, OPT_RAMP },
        { "inflight", 1, 0, OPT_INFLIGHT }, { "connect-timeout", 1, 0, OPT_CTIMEOUT },
        { "drain", 1, 0, OPT_DRAIN }, { "quiet", 1, 0, OPT_QUIET }, { "slo", 1, 0, OPT_SLO },
        { "login", 1, 0, OPT_LOGIN }, { "passcode", 1, 0, OPT_PASS }, { "vhost", 1, 0, OPT_VHOST }, { "heart-beat", 1, 0, OPT_HB },
        { "prefix", 1, 0, OPT_PREFIX }, { "watch-pid", 1, 0, OPT_WATCH }, { "json", 0, 0, OPT_JSON },
        { "no-progress", 0, 0, OPT_NOPROG }, { "help", 0, 0, OPT_HELP },
        { "protocol", 1, 0, OPT_PROTO }, { "watch-extra", 1, 0, OPT_EXTRA },
        { "tls-ca", 1, 0, OPT_TLS_CA }, { 0, 0, 0, 0 }
    };
    /* The scenario is applied first so that every other option overrides it. */
    const char *scen = "small";
    for (int i = 1; i < argc - 1; i++)
        if (strcmp(argv[i], "--scenario") == 0)
            scen = argv[i + 1];
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--scenario=", 11) == 0)
            scen = argv[i] + 11;
    if (status_is_scenario(scen))
        return status_main(argc, argv);
    O.scenario = scen;
    scenario_defaults(scen);
    O.size = 100; O.procs = 0; O.sources = 0; O.ramp = 5000; O.inflight = 256;
    O.connect_timeout_ms = 60000; O.drain_ms = 10000; O.quiet_ms = 1000; O.slo_ms = 50;
    O.login = "guest"; O.passcode = "guest"; O.vhost = "/"; O.idle_room = 50;
    static char prefix[32];
    snprintf(prefix, sizeof prefix, "load-%d", (int)getpid());
    O.prefix = prefix;

    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case OPT_URL: parse_url(optarg); break;
        case OPT_SCEN: break;
        case OPT_SUBS: O.subs = atol(optarg); break;
        case OPT_ROOMS: O.rooms = atol(optarg); break;
        case OPT_PUBS: O.pubs = atol(optarg); break;
        case OPT_IDLE: O.idle = atol(optarg); break;
        case OPT_IDLE_ROOM: O.idle_room = atol(optarg); break;
        case OPT_RATE: O.rate = atof(optarg); break;
        case OPT_RATE_STEP: O.rate_step = atof(optarg); break;
        case OPT_RATE_MAX: O.rate_max = atof(optarg); break;
        case OPT_STEP: O.step_s = atof(optarg); break;
        case OPT_DURATION: O.duration_s = atof(optarg); break;
        case OPT_SIZE: O.size = atol(optarg); break;
        case OPT_PROCS: O.procs = atol(optarg); break;
        case OPT_SOURCES: O.sources = atol(optarg); break;
        case OPT_RAMP: O.ramp = atof(optarg); break;
        case OPT_INFLIGHT: O.inflight = atol(optarg); break;
        case OPT_CTIMEOUT: O.connect_timeout_ms = atol(optarg); break;
        case OPT_DRAIN: O.drain_ms = atol(optarg); break;
        case OPT_QUIET: O.quiet_ms = atol(optarg); break;
        case OPT_SLO: O.slo_ms = atof(optarg); break;
        case OPT_LOGIN: O.login = optarg; break;
        case OPT_PASS: O.passcode = optarg; break;
        case OPT_VHOST: O.vhost = optarg; break;
        case OPT_HB: {
            long cy;
            if (conn_heart_beat_parse(optarg, &O.hb_cx, &cy) != 0)
                die("--heart-beat must be CX,CY (ms, e.g. 10000,10000)");
            O.heart_beat = optarg;
            break;
        }
        case OPT_PREFIX: O.prefix = optarg; break;
        case OPT_WATCH:
            if (O.nwatch < LOAD_MAX_PIDS)
                O.watch[O.nwatch++] = atoi(optarg);
            break;
        case OPT_EXTRA: {
            char *eq = strrchr(optarg, '=');
            if (!eq || eq == optarg || atoi(eq + 1) <= 0)
                die("--watch-extra wants NAME=PID, not %s", optarg);
            if (O.nextra >= LOAD_MAX_PIDS)
                die("too many --watch-extra (max %d)", LOAD_MAX_PIDS);
            *eq = '\0';
            O.extra_name[O.nextra] = optarg;
            O.extra[O.nextra++] = atoi(eq + 1);
            break;
        }
        case OPT_JSON: O.json = true; break;
        case OPT_NOPROG: O.quiet = true; break;
        case OPT_PROTO:
            if (strcmp(optarg, "socketio") == 0)
                O.sio = true;
            else if (strcmp(optarg, "stomp") == 0)
                O.sio = false;
            else
                die("unknown --protocol %s (stomp or socketio)", optarg);
            break;
        case OPT_TLS_CA: O.tls_ca = optarg; break;
        case OPT_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || O.nurls == 0) {
        usage(stderr);
        return 2;
    }
    bool any_tls = false;
    for (int i = 0; i < O.nurls; i++)
        any_tls |= O.urls[i].tls;
    if (O.tls_ca && !any_tls)
        die("%s", "--tls-ca is for wss:// URLs, and none was given");
    if (any_tls) {
        /* Made once, before the children fork: a CA file that cannot be
         * read stops the run here, not on every connection. */
        char why[300];
        O.tls = tlsio_ctx_create(O.tls_ca, why, sizeof why);
        if (!O.tls)
            die("%s", why);
    }
    if (O.sio)
        for (int i = 0; i < O.nurls; i++)
            sio_url(&O.urls[i]);

    /* Steps: a rising rate when rate-step and rate-max are set. */
    if (O.rate_step > 0 && O.rate_max > O.rate) {
        nsteps = 0;
        for (double r = O.rate; r <= O.rate_max + 1e-9 && nsteps < LOAD_MAX_STEPS; r += O.rate_step)
            rates[nsteps++] = r;
        if (O.step_s <= 0)
            O.step_s = 4;
        O.duration_s = nsteps * O.step_s;
    } else {
        nsteps = 1;
        rates[0] = O.rate;
        O.step_s = O.duration_s > 0 ? O.duration_s : 1;
    }
    long total = O.subs + O.rooms * O.pubs + O.idle;
    if (O.subs < 0 || O.rooms < 0 || O.pubs < 0 || O.idle < 0 || total <= 0 || total > LOAD_MAX_CONNS)
        die("connections must total 1..%d", LOAD_MAX_CONNS);
    if ((O.subs > 0 || O.pubs > 0) && O.rooms <= 0)
        die("%s", "subscribers and publishers need --rooms >= 1");
    if (O.rooms > 0 && O.pubs <= 0)
        O.pubs = 1, O.rate = 0;
    if (O.duration_s <= 0 || O.duration_s > LOAD_MAX_DURATION_S)
        die("--duration must be in (0, %d] s", LOAD_MAX_DURATION_S);
    if (O.size < 40 || O.size > 65536)
        die("--size must be %s", "40..65536");
    if (O.idle_room <= 0 || O.ramp <= 0 || O.inflight <= 0 || O.rate < 0)
        die("%s", "bad --idle-room, --ramp, --inflight or --rate");
    if (O.procs <= 0)
        O.procs = total / LOAD_FDS_PER_PROC + 1;
    if (O.procs > 64)
        O.procs = 64;
    if (O.sources <= 0)
        O.sources = total > 20000 ? 4 : 1;
    if (O.sources > 250)
        O.sources = 250;

    region_layout();
    size_t region_size = 4096 + (size_t)O.procs * L.child_size;
    region = mmap(NULL, region_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    ctl = (control *)region;
    ctl->stop_ns = INT64_MAX;
    signal(SIGPIPE, SIG_IGN);

    long cpu0 = 0, rss0 = 0, cpu1 = 0, rss1 = 0, rss_held = 0, cpu_pub0 = 0;
    proc_sample(&cpu0, &rss0);
    /* The --watch-extra processes, each apart: before connecting, at the
     * start of publishing, at the end. */
    long xcpu0[LOAD_MAX_PIDS], xrss0[LOAD_MAX_PIDS], xcpu_held[LOAD_MAX_PIDS], xrss_held[LOAD_MAX_PIDS];
    long xcpu1[LOAD_MAX_PIDS], xrss1[LOAD_MAX_PIDS];
    extra_sample(xcpu0, xrss0);
    int64_t t0 = conn_now_ns();
    pid_t kids[64];
    for (int c = 0; c < O.procs; c++) {
        pid_t p = fork();
        if (p < 0)
            die("fork: %s", strerror(errno));
        if (p == 0) {
            me = c;
            R = child_at(c);
            child_run();
            _exit(0);
        }
        kids[c] = p;
    }

    /* Coordinate: wait for every child to connect, start them together,
     * watch the steps, wait for the drain. */
    int64_t last_print = t0, connected_at = 0, go = 0;
    uint64_t last_recv = 0;
    int checked_step = 0;
    int stopped_step = -1;
    /* The servers' CPU ticks when each step began (and when all ended). */
    long step_cpu[LOAD_MAX_STEPS + 1] = { 0 };
    long step_xcpu[LOAD_MAX_STEPS + 1] = { 0 };   /* the same for --watch-extra */
    int cpu_step = 0;
    for (;;) {
        usleep(20000);
        int64_t t = conn_now_ns();
        int ready = 0, done = 0;
        for (int c = 0; c < O.procs; c++) {
            ready += __atomic_load_n(&child_at(c)->ready, __ATOMIC_ACQUIRE);
            done += __atomic_load_n(&child_at(c)->done, __ATOMIC_ACQUIRE);
        }
        int alive = 0, died = 0;
        for (int c = 0; c < O.procs; c++)
            if (kids[c] > 0) {
                int st;
                if (waitpid(kids[c], &st, WNOHANG) == kids[c]) {
                    kids[c] = -1;
                    /* exiting after its results are final is the normal end */
                    if (!__atomic_load_n(&child_at(c)->done, __ATOMIC_ACQUIRE))
                        died++;
                } else {
                    alive++;
                }
            }
        if (!go && ready == O.procs) {
            connected_at = t;
            usleep(300000);          /* let the servers settle their accounting */
            proc_sample(&cpu_pub0, &rss_held);
            step_xcpu[0] = extra_sample(xcpu_held, xrss_held);
            go = conn_now_ns() + 100000000;
            ctl->go_ns = go;
            step_cpu[0] = cpu_pub0;
            cpu_step = 1;
        }
        if (go && t > go && cpu_step < nsteps && stopped_step < 0 &&
            (t - go) / (int64_t)(O.step_s * 1e9) >= cpu_step) {
            long rss_unused, xc[LOAD_MAX_PIDS], xr[LOAD_MAX_PIDS];
            proc_sample(&step_cpu[cpu_step], &rss_unused);
            step_xcpu[cpu_step] = extra_sample(xc, xr);
            cpu_step++;
        }
        if (died && !ctl->abort_all) {
            fprintf(stderr, "lectern-load: a generator process died\n");
            ctl->abort_all = 1;
        }
        /* Rising rate: after each step, stop if that step missed the SLO
         * or is visibly losing messages. */
        if (go && nsteps > 1 && stopped_step < 0 && t > go) {
            int cur = (int)((t - go) / (int64_t)(O.step_s * 1e9));
            if (cur > checked_step && checked_step < nsteps) {
                int s = checked_step;
                hist h;
                step_hist(s, -1, &h);
                uint64_t sent, exp, rec;
                step_tally(s, &sent, &exp, &rec);
                double p99 = hist_quantile(&h, 0.99) / 1000.0;
                if (p99 > O.slo_ms || rec < exp * 0.9) {
                    stopped_step = s;
                    ctl->stop_ns = t;
                    if (!O.quiet)
                        fprintf(stderr, "lectern-load: step %d (%.0f msg/s) missed: p99 %.1f ms, %" PRIu64
                                " of %" PRIu64 " delivered; stopping\n", s, rates[s], p99, rec, exp);
                }
                checked_step = cur;
            }
        }
        if (!O.quiet && t - last_print >= 1000000000) {
            totals s = sum_children();
            double dt = (double)(t - last_print) / 1e9;
            if (!go)
                fprintf(stderr, "lectern-load: %.1fs connecting: %" PRIu64 " ok, %" PRIu64 " failed of %ld\n",
                        (double)(t - t0) / 1e9, s.ok, s.failed, total);
            else
                fprintf(stderr, "lectern-load: %.1fs %s: sent %" PRIu64 ", received %" PRIu64
                        " (%.0f deliveries/s), gaps %" PRIu64 ", dropped conns %" PRIu64 "\n",
                        (double)(t - go) / 1e9, t < go + (int64_t)(O.duration_s * 1e9) ? "publishing" : "draining",
                        s.sent, s.received, (double)(s.received - last_recv) / dt, s.gaps, s.dropped);
            last_recv = s.received;
            last_print = t;
        }
        if (done == O.procs || alive == 0)
            break;
    }
    proc_sample(&cpu1, &rss1);
    long xall1 = extra_sample(xcpu1, xrss1);
    for (int k = cpu_step; k <= nsteps; k++) {
        step_cpu[k] = cpu1;
        step_xcpu[k] = xall1;
    }
    for (int c = 0; c < O.procs; c++)
        if (kids[c] > 0)
            waitpid(kids[c], NULL, 0);

    /* ---- report */
    totals s = sum_children();
    hist conn_h, all_h, local_h, remote_h;
    memset(&conn_h, 0, sizeof conn_h);
    memset(&all_h, 0, sizeof all_h);
    memset(&local_h, 0, sizeof local_h);
    memset(&remote_h, 0, sizeof remote_h);
    for (int c = 0; c < O.procs; c++) {
        hist_merge(&conn_h, &child_at(c)->connect_us);
        for (int st = 0; st < nsteps; st++) {
            hist_merge(&local_h, lat_of(child_at(c), st, 0));
            hist_merge(&remote_h, lat_of(child_at(c), st, 1));
        }
    }
    hist_merge(&all_h, &local_h);
    hist_merge(&all_h, &remote_h);
    uint64_t exp_all = 0, rec_all = 0, sent_all = 0;
    int last_step = stopped_step >= 0 ? stopped_step : nsteps - 1;
    double pub_s = go ? (double)((ctl->stop_ns < go + (int64_t)(O.duration_s * 1e9) ? ctl->stop_ns : go + (int64_t)(O.duration_s * 1e9)) - go) / 1e9 : 0;
    long hz = sysconf(_SC_CLK_TCK);
    double cpu_s = (double)(cpu1 - cpu_pub0) / (double)hz;
    /* The servers' CPU while the connections were made (from before the
     * first to the start of publishing): what setting them up cost. */
    double connect_cpu_s = go ? (double)(cpu_pub0 - cpu0) / (double)hz : 0.0;

    FILE *f = stdout;
    fprintf(f, "{\"scenario\":");
    json_str(f, O.scenario);
    if (O.sio)
        fprintf(f, ",\"protocol\":\"socketio\"");
    fprintf(f, ",\"urls\":[");
    for (int i = 0; i < O.nurls; i++) {
        if (i)
            fputc(',', f);
        char u[256];
        snprintf(u, sizeof u, "%s://%s%s", O.urls[i].tls ? "wss" : "ws", O.urls[i].hostport, O.urls[i].path);
        json_str(f, u);
    }
    fprintf(f, "]");
    /* The negotiated protocol and cipher, as the first TLS connection of
     * any child saw them. */
    for (int c = 0; O.tls && c < O.procs; c++)
        if (child_at(c)->net.tls[0]) {
            fprintf(f, ",\"tls\":");
            json_str(f, child_at(c)->net.tls);
            break;
        }
    fprintf(f, ",\"procs\":%ld,\"sources\":%ld,\"size\":%ld,", O.procs, O.sources, O.size);
    fprintf(f, "\"connections\":{\"target\":%ld,\"subscribers\":%ld,\"publishers\":%ld,\"idle\":%ld,"
               "\"opened\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"dropped\":%" PRIu64 ","
               "\"time_s\":%.3f,", total, O.subs, O.rooms * O.pubs, O.idle, s.opened, s.ok, s.failed,
            s.dropped, connected_at ? (double)(connected_at - t0) / 1e9 : 0.0);
    json_lat(f, "connect_ms", &conn_h);
    fprintf(f, "},\"rooms\":%ld,\"steps\":[", O.rooms);
    double peak = 0;
    for (int st = 0; st <= last_step && st < nsteps; st++) {
        uint64_t sent, exp, rec;
        step_tally(st, &sent, &exp, &rec);
        sent_all += sent;
        exp_all += exp;
        rec_all += rec;
        hist h, hr;
        step_hist(st, -1, &h);
        step_hist(st, 1, &hr);
        double secs = st == last_step && stopped_step >= 0
                          ? pub_s - st * O.step_s : O.step_s;
        if (secs <= 0)
            secs = O.step_s;
        double dps = (double)rec / secs;
        bool ok = rec == exp && hist_quantile(&h, 0.99) / 1000.0 <= O.slo_ms;
        if (ok && dps > peak)
            peak = dps;
        if (st)
            fputc(',', f);
        /* CPU of a step: from its start to the next one's (the last step
         * also carries the drain). Only meaningful with --watch-pid. */
        double scpu = (double)(step_cpu[st + 1] - step_cpu[st]) / (double)hz;
        fprintf(f, "{\"rate\":%.0f,\"seconds\":%.3f,\"sent\":%" PRIu64 ",\"expected\":%" PRIu64
                   ",\"received\":%" PRIu64 ",\"deliveries_per_s\":%.0f,\"ok\":%s,"
                   "\"cpu_s\":%.2f,\"cpu_us_per_delivery\":%.4f,",
                rates[st], secs, sent, exp, rec, dps, ok ? "true" : "false",
                O.nwatch ? scpu : 0.0, O.nwatch && rec ? scpu * 1e6 / (double)rec : 0.0);
        if (O.nextra) {
            double xs = (double)(step_xcpu[st + 1] - step_xcpu[st]) / (double)hz;
            fprintf(f, "\"extra_cpu_s\":%.2f,\"extra_cpu_us_per_delivery\":%.4f,", xs,
                    rec ? xs * 1e6 / (double)rec : 0.0);
        }
        json_lat(f, "latency_ms", &h);
        fputc(',', f);
        json_lat(f, "remote_latency_ms", &hr);
        fputc('}', f);
    }
    fprintf(f, "],\"stopped_at_step\":%d,", stopped_step);
    fprintf(f, "\"deliveries\":{\"sent\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"received\":%" PRIu64
               ",\"ratio\":%.6f,\"gaps\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"foreign\":%" PRIu64
               ",\"bad_body\":%" PRIu64 ",\"per_s\":%.0f,\"peak_ok_per_s\":%.0f,\"publish_s\":%.3f,"
               "\"publisher_behind\":%" PRIu64 "},",
            sent_all, exp_all, rec_all, exp_all ? (double)rec_all / (double)exp_all : 1.0, s.gaps, s.dups,
            s.foreign, s.bad_body, pub_s > 0 ? (double)rec_all / pub_s : 0.0, peak, pub_s, s.pub_behind);
    json_lat(f, "latency_ms", &all_h);
    fputc(',', f);
    json_lat(f, "local_latency_ms", &local_h);
    fputc(',', f);
    json_lat(f, "remote_latency_ms", &remote_h);
    fprintf(f, ",\"errors\":{\"stomp\":%" PRIu64 ",\"websocket\":%" PRIu64 ",\"first\":",
            s.stomp_errors, s.ws_errors);
    const char *first = "";
    for (int c = 0; c < O.procs; c++)
        if (child_at(c)->net.first_error[0]) {
            first = child_at(c)->net.first_error;
            break;
        }
    json_str(f, first);
    fputc('}', f);
    if (O.nwatch > 0) {
        fprintf(f, ",\"servers\":{\"pids\":%d,\"rss_before_kib\":%ld,\"rss_connected_kib\":%ld,"
                   "\"rss_after_kib\":%ld,\"rss_per_conn_bytes\":%.0f,\"cpu_s\":%.3f,"
                   "\"cpu_us_per_delivery\":%.4f,\"connect_cpu_s\":%.3f,\"connect_cpu_us_per_conn\":%.1f}",
                O.nwatch, rss0, rss_held, rss1,
                s.ok ? (double)(rss_held - rss0) * 1024.0 / (double)s.ok : 0.0, cpu_s,
                rec_all ? cpu_s * 1e6 / (double)rec_all : 0.0, connect_cpu_s,
                s.ok ? connect_cpu_s * 1e6 / (double)s.ok : 0.0);
    }
    if (O.nextra > 0)
        json_extra(f, xcpu_held, xcpu1, xrss0, xrss_held, rec_all, s.ok, (double)hz);
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    fprintf(f, ",\"generator_cpu_s\":%.3f",
            (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
            (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    /* The generator's own work over the servers' window (publishing and
     * drain): its CPU, in all and per process, and its recv() and
     * epoll_wait() calls. On a shared machine it competes with the servers
     * for the cores, so it belongs next to their figures. */
    int64_t gen_us = 0;
    uint64_t gen_reads = 0, gen_polls = 0;
    fprintf(f, ",\"generator\":{\"procs_cpu_s\":[");
    for (int c = 0; c < O.procs; c++) {
        gen_us += child_at(c)->cpu_pub_us;
        gen_reads += child_at(c)->reads_pub;
        gen_polls += child_at(c)->polls_pub;
        fprintf(f, "%s%.3f", c ? "," : "", (double)child_at(c)->cpu_pub_us / 1e6);
    }
    fprintf(f, "],\"cpu_s\":%.3f,\"reads\":%" PRIu64 ",\"polls\":%" PRIu64 "}", (double)gen_us / 1e6,
            gen_reads, gen_polls);
    fprintf(f, "}\n");
    fflush(f);
    return s.failed || ctl->abort_all ? 1 : 0;
}
