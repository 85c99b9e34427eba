/* status.c — lectern-load's friends'-status scenarios.
 *
 * What they measure. Three scenarios of SUBSCRIBE /status (docs/protocol.md):
 *   status-churn    N users online over the servers, each watching C
 *                   contacts (an explicit x-users list); then K of them
 *                   log out and back in, spread over --churn-s seconds.
 *                   Every watcher must get every change of its contacts
 *                   exactly once (expected vs received per watcher and
 *                   contact, missing and extra reported); latency from
 *                   the change (when the generator closed the socket, or
 *                   got CONNECTED back) to the watcher's socket receiving
 *                   the event; servers' CPU per event delivered.
 *   status-bigsnap  one user with C stored contacts (PUT through the
 *                   contacts API with --api-key), M of them online, logs
 *                   in: SUBSCRIBE to snapshot time cold (first), warm
 *                   (again on the same server) and on another server, the
 *                   snapshot's size, and that it says exactly who is online.
 *   status-surge    N users connect within --surge-s seconds, each watching
 *                   C contacts: connect time, SUBSCRIBE to snapshot time,
 *                   and that once the surge is over every watcher's map
 *                   shows every contact online (no missing, no repeated
 *                   event).
 *
 * Design. One process, one epoll loop, one connection per user (at most
 * ST_MAX_USERS: the 20,000 open files a process may have here), so the
 * clock that stamps a change and the clock that stamps its arrival are the
 * same and nothing needs shared memory. Users are numbered 0..N-1 and named
 * by --login ("s<pid>-%u" unless given), so a name in a message maps back
 * to a number without a table. Contacts are the C/2 users on each side of
 * a user (mod N): symmetric, like friends, half of them on the other
 * server, and the slot of a contact in its watcher's row is arithmetic.
 * Each watcher keeps a row of C states (unknown, offline, online) rebuilt
 * from every snapshot and moved by every event, and during the measured
 * phase a row of C counters of events received; the expected count of a
 * (watcher, contact) pair is the number of changes the generator made to
 * that contact, counted only for watchers subscribed throughout (a user
 * who logs out stops watching; its new snapshot and its final map are
 * still checked). The connections themselves are conn.c's, shared with
 * load.c; this file plays the scenarios through its hooks.
 *
 * Invariants: loopback destinations only; every phase has a deadline, so a
 * run ends within connect-timeout + settle + churn + drain whatever the
 * servers do; sizes are bounded (users, contacts, frame bytes).
 */
#include "status.h"

#include "conn.h"
#include "hist.h"
#include "json.h"
#include "scan.h"
#include "statusmsg.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define ST_MAX_USERS  18000      /* connections in one process (20,000 open files) */
#define ST_MAX_BIG    100000     /* bigsnap: contacts of the one user */
#define ST_MAX_URLS   16
#define ST_MAX_PIDS   16
#define ST_MAX_FRAME  (16u << 20)
#define ST_SUB_ID     "status"

enum { SC_CHURN, SC_BIGSNAP, SC_SURGE };

static struct {
    int kind;
    const char *name;
    conn_url urls[ST_MAX_URLS];
    int nurls;
    long users, contacts, churn, online, rounds;
    double churn_s, gap_s, surge_s, ramp, slo_ms;
    long inflight, connect_timeout_ms, settle_ms, drain_ms;
    const char *login;
    const char *api_key;
    int watch[ST_MAX_PIDS];
    int nwatch;
    bool quiet;
} S;

/* ---------------------------------------------------------- connections */

/* One user's connection: the connection layer's part (conn.h) and the
 * scenario's. */
typedef struct sconn {
    conn net;                    /* first: hooks' conn * cast back to sconn * */
    bool sub;                    /* SUBSCRIBE /status once CONNECTED */
    bool xusers;                 /* ...with the x-users list of its contacts */
    bool stable;                 /* churn: watching since the setup, never logged out */
    bool relogin;                /* churn: this connection is a log-in again */
    uint32_t user;
    int64_t t_sub;
} sconn;

static sconn *U;                 /* one per user (bigsnap: + the big user) */
static long nusers;              /* entries of U */
static uint8_t *map;             /* nusers x contacts: 0 unknown, 1 offline, 2 online */
static uint8_t *got;             /* churn: events received per pair while measuring */
static int64_t *t_off, *t_on;    /* per user: when the generator changed it */
static uint8_t *changes;         /* per user: changes made while measuring */
static bool measuring;
static conn_loop loop;


/* What happened, for the report. */
static struct {
    conn_counts net;             /* connections and their errors (conn.h) */
    uint64_t snapshots, resnapshots, snap_foreign, snap_missing, snap_dup;
    uint64_t events, ev_online, ev_offline, foreign, redundant, early, unparsed, other;
} N;
static hist connect_h, snap_h, lat_all, lat_on, lat_off;

/* bigsnap: the big user's last snapshot */
static struct {
    uint8_t *seen;               /* per contact */
    uint64_t entries, online, wrong, dup, foreign;
    size_t bytes;
    int64_t ms_us;               /* SUBSCRIBE to snapshot, us; -1 none */
} B;

__attribute__((format(printf, 1, 2), noreturn))
static void st_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lectern-load: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static void *st_alloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "lectern-load: out of memory\n");
        exit(1);
    }
    return p;
}

/* ------------------------------------------------------------- contacts */

/* The k-th contact of user w (k < contacts): w+1..w+C/2, then w-1..w-C/2. */
static long contact_of(long w, long k)
{
    long half = S.contacts / 2;
    if (k < half)
        return (w + k + 1) % S.users;
    return (w + S.users - (k - half + 1)) % S.users;
}

/* The slot of user u in w's row, or -1 when u is not w's contact. */
static long slot_of(long w, long u)
{
    long half = S.contacts / 2;
    long d = (u - w + S.users) % S.users;
    if (d >= 1 && d <= half)
        return d - 1;
    if (d >= S.users - half && d <= S.users - 1)
        return half + (S.users - d) - 1;
    return -1;
}

static size_t user_name(char *dst, size_t cap, long n)
{
    return status_user_name(dst, cap, S.login, (unsigned)n);
}

/* ------------------------------------------------------------- receiving */

typedef struct snap_ctx {
    long w;                      /* the watcher (churn, surge) */
    uint8_t *row;
} snap_ctx;

static void snap_entry(void *arg, const status_entry *e)
{
    snap_ctx *s = arg;
    long u = status_user_index(e->user, e->user_len, S.login);
    long slot = u >= 0 && u < S.users ? slot_of(s->w, u) : -1;
    if (slot < 0) {
        N.snap_foreign++;
        return;
    }
    if (s->row[slot])
        N.snap_dup++;
    s->row[slot] = e->online == 1 ? 2 : 1;
}

static void big_entry(void *arg, const status_entry *e)
{
    (void)arg;
    long u = status_user_index(e->user, e->user_len, S.login);
    B.entries++;
    if (u < 0 || u >= S.contacts) {
        B.foreign++;
        return;
    }
    if (B.seen[u]) {
        B.dup++;
        return;
    }
    B.seen[u] = 1;
    if (e->online == 1)
        B.online++;
    if ((e->online == 1) != (u < S.online))
        B.wrong++;
}

static void on_snapshot(sconn *c, const scan_frame *f)
{
    status_msg m;
    int r;
    N.snapshots++;
    if (S.kind == SC_BIGSNAP) {
        memset(B.seen, 0, (size_t)S.contacts);
        B.entries = B.online = B.wrong = B.dup = B.foreign = 0;
        r = status_msg_parse(f->body, f->body_len, &m, big_entry, NULL);
        B.bytes = f->body_len;
        B.ms_us = (loop.rx_now - c->t_sub) / 1000;
    } else {
        snap_ctx s = { c->user, map + (size_t)c->user * (size_t)S.contacts };
        memset(s.row, 0, (size_t)S.contacts);
        r = status_msg_parse(f->body, f->body_len, &m, snap_entry, &s);
        for (long k = 0; k < S.contacts; k++)
            if (!s.row[k])
                N.snap_missing++;
    }
    if (r < 0) {
        N.unparsed++;
        conn_error(&loop, "bad snapshot", m.err, strlen(m.err));
    }
    if (c->net.state == CONN_SUBSCRIBING) {
        hist_add(&snap_h, (uint64_t)(loop.rx_now - c->t_sub) / 1000);
        conn_ready(&loop, &c->net);
    } else {
        N.resnapshots++;
    }
}

static void on_change(sconn *c, const status_msg *m)
{
    N.events++;
    bool online = m->kind == STATUS_ONLINE;
    if (online)
        N.ev_online++;
    else
        N.ev_offline++;
    long u = status_user_index(m->ev.user, m->ev.user_len, S.login);
    long slot = u >= 0 && u < S.users && S.kind != SC_BIGSNAP ? slot_of(c->user, u) : -1;
    if (slot < 0) {
        N.foreign++;
        return;
    }
    size_t pair = (size_t)c->user * (size_t)S.contacts + (size_t)slot;
    uint8_t now_state = online ? 2 : 1;
    if (map[pair] == now_state)
        N.redundant++;
    map[pair] = now_state;
    if (!measuring)
        return;
    if (got && c->stable && got[pair] < 255)
        got[pair]++;
    int64_t base = online ? t_on[u] : t_off[u];
    int64_t lat = loop.rx_now - base;
    if (online && U[u].net.state == CONN_STOMP) {
        /* the server announced the log-in before the generator read its
         * CONNECTED: the change did happen before the event */
        N.early++;
        lat = 0;
    } else if (base <= 0) {
        return;                  /* not a change the generator made: counted at the end */
    }
    if (lat < 0)
        lat = 0;
    hist_add(&lat_all, (uint64_t)lat / 1000);
    hist_add(online ? &lat_on : &lat_off, (uint64_t)lat / 1000);
}

static void on_message(conn_loop *l, conn *nc, const scan_frame *f)
{
    (void)l;
    sconn *c = (sconn *)nc;
    size_t dl = 0;
    const char *d = scan_header(f, "destination", &dl);
    if (!d || dl != 7 || memcmp(d, "/status", 7) != 0) {
        N.other++;
        return;
    }
    /* A snapshot is found by its type; the parser is run once more for a
     * change (cheap: a change is a few dozen bytes). */
    status_msg m;
    if (status_msg_parse(f->body, f->body_len, &m, NULL, NULL) < 0) {
        N.unparsed++;
        conn_error(&loop, "bad /status body", m.err, strlen(m.err));
        return;
    }
    if (m.kind == STATUS_SNAPSHOT)
        on_snapshot(c, f);
    else if (m.kind == STATUS_ONLINE || m.kind == STATUS_OFFLINE)
        on_change(c, &m);
    else
        N.other++;
}

static void send_subscribe(sconn *c)
{
    static char *text;
    static size_t cap;
    size_t need = 128 + (c->xusers ? (size_t)S.contacts * (STATUS_USER_MAX + 1) : 0);
    if (need > cap) {
        free(text);
        cap = need;
        text = st_alloc(cap);
    }
    size_t n = (size_t)snprintf(text, cap, "SUBSCRIBE\nid:" ST_SUB_ID "\ndestination:/status\nack:auto\n");
    if (c->xusers) {
        memcpy(text + n, "x-users:", 8);
        n += 8;
        for (long k = 0; k < S.contacts; k++) {
            if (k)
                text[n++] = ',';
            n += user_name(text + n, cap - n, contact_of(c->user, k));
        }
        text[n++] = '\n';
    }
    text[n++] = '\n';
    text[n++] = '\0';
    c->t_sub = conn_now_ns();
    c->net.state = CONN_SUBSCRIBING;
    conn_send_stomp(&loop, &c->net, text, n);
}

static void on_connected(conn_loop *l, conn *nc, const scan_frame *f)
{
    (void)f;
    sconn *c = (sconn *)nc;
    hist_add(&connect_h, (uint64_t)(l->rx_now - c->net.t_open) / 1000);
    if (c->relogin && measuring) {
        t_on[c->user] = l->rx_now;
        changes[c->user]++;
    } else if (S.kind == SC_SURGE) {
        t_on[c->user] = l->rx_now;
    }
    if (c->sub)
        send_subscribe(c);
    else
        conn_ready(l, nc);
}

static void login_for(const conn *c, char *dst, size_t cap)
{
    user_name(dst, cap, ((const sconn *)c)->user);
}

/* Log out: close the socket; the server sees the connection end. */
static void user_logout(sconn *c)
{
    if (c->net.state != CONN_READY)
        return;
    conn_close(&loop, &c->net, false);
}

/* ------------------------------------------------------------ the phases */

static int64_t last_progress;

static void progress(const char *phase)
{
    if (S.quiet)
        return;
    int64_t t = conn_now_ns();
    if (t - last_progress < 1000000000)
        return;
    last_progress = t;
    fprintf(stderr, "lectern-load: %s: %" PRIu64 " connected, %" PRIu64 " failed, %" PRIu64
            " snapshots, %" PRIu64 " events\n", phase, N.net.ok, N.net.failed, N.snapshots, N.events);
}

/* Open U[from..to) at `ramp` per second (at most --inflight handshakes at
 * once) and wait until each is READY or closed, or the connect deadline. */
static void connect_range(long from, long to, double ramp, const char *phase)
{
    int64_t start = conn_now_ns();
    int64_t deadline = start + (int64_t)S.connect_timeout_ms * 1000000;
    long next = from;
    for (;;) {
        int64_t t = conn_now_ns();
        long allowed = from + (long)((double)(t - start) / 1e9 * ramp) + 1;
        while (next < to && next < allowed && loop.inflight < S.inflight)
            conn_open(&loop, &U[next++].net);
        if (next == to && loop.inflight == 0)
            return;
        if (t > deadline) {
            for (long i = from; i < to; i++)
                if (U[i].net.state != CONN_READY && U[i].net.state != CONN_CLOSED && U[i].net.state != CONN_IDLE) {
                    conn_error(&loop, "connect timeout", NULL, 0);
                    conn_close(&loop, &U[i].net, true);
                }
            N.net.failed += (uint64_t)(to - next);
            return;
        }
        progress(phase);
        conn_poll(&loop, next < to ? 1 : 10);
    }
}

/* Pairs of live watchers whose contact is not shown online. */
static uint64_t not_online(long *watchers_wrong)
{
    uint64_t wrong = 0;
    long ww = 0;
    for (long w = 0; w < S.users; w++) {
        if (U[w].net.state != CONN_READY || !U[w].sub)
            continue;
        const uint8_t *row = map + (size_t)w * (size_t)S.contacts;
        uint64_t before = wrong;
        for (long k = 0; k < S.contacts; k++)
            wrong += row[k] != 2;
        ww += wrong != before;
    }
    if (watchers_wrong)
        *watchers_wrong = ww;
    return wrong;
}

/* churn: expected minus received, and received beyond expected, over the
 * stable watchers. */
static void churn_tally(uint64_t *expected, uint64_t *received, uint64_t *missing, uint64_t *extra,
                        long *watchers, long *watchers_missing, long *watchers_extra)
{
    *expected = *received = *missing = *extra = 0;
    *watchers = *watchers_missing = *watchers_extra = 0;
    for (long w = 0; w < S.users; w++) {
        if (!U[w].stable)
            continue;
        (*watchers)++;
        uint64_t m0 = *missing, x0 = *extra;
        for (long k = 0; k < S.contacts; k++) {
            size_t pair = (size_t)w * (size_t)S.contacts + (size_t)k;
            uint64_t e = changes[contact_of(w, k)], g = got[pair];
            *expected += e;
            *received += g;
            if (g < e)
                *missing += e - g;
            else
                *extra += g - e;
        }
        *watchers_missing += *missing != m0;
        *watchers_extra += *extra != x0;
    }
}

/* Run the loop until done() says so or `ms` pass; returns the ms taken. */
static double wait_until(bool (*done)(void), long ms, const char *phase)
{
    int64_t start = conn_now_ns(), deadline = start + ms * 1000000L, check = 0;
    for (;;) {
        int64_t t = conn_now_ns();
        if (t - check > 50000000) {
            check = t;
            if (done())
                break;
        }
        if (t > deadline)
            break;
        progress(phase);
        conn_poll(&loop, 5);
    }
    return (double)(conn_now_ns() - start) / 1e6;
}

static bool all_online(void)
{
    return not_online(NULL) == 0;
}

static bool churn_complete(void)
{
    uint64_t e, r, m, x;
    long w, wm, wx;
    churn_tally(&e, &r, &m, &x, &w, &wm, &wx);
    return m == 0 && all_online();
}

/* --------------------------------------------------------- measurements */

/* CPU time of the watched processes, in ns: every thread's time on a CPU
 * (/proc/<pid>/task/<tid>/schedstat), which is exact where utime+stime
 * count 10 ms ticks. */
static int64_t servers_cpu_ns(void)
{
    int64_t total = 0;
    for (int i = 0; i < S.nwatch; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task", S.watch[i]);
        DIR *d = opendir(path);
        if (!d)
            continue;
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char p2[128];
            snprintf(p2, sizeof p2, "/proc/%d/task/%.20s/schedstat", S.watch[i], de->d_name);
            FILE *f = fopen(p2, "r");
            if (!f)
                continue;
            long long ns = 0;
            if (fscanf(f, "%lld", &ns) == 1)
                total += ns;
            fclose(f);
        }
        closedir(d);
    }
    return total;
}

/* The report's common head: scenario, urls, connections. */
static void report_head(FILE *f, double connect_s)
{
    fprintf(f, "{\"scenario\":");
    json_str(f, S.name);
    fprintf(f, ",\"urls\":[");
    for (int i = 0; i < S.nurls; i++) {
        char u[256];
        snprintf(u, sizeof u, "ws://%s%s", S.urls[i].hostport, S.urls[i].path);
        if (i)
            fputc(',', f);
        json_str(f, u);
    }
    fprintf(f, "],\"users\":%ld,\"contacts\":%ld,", S.users, S.contacts);
    fprintf(f, "\"connections\":{\"opened\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"failed\":%" PRIu64
               ",\"dropped\":%" PRIu64 ",\"time_s\":%.3f,",
            N.net.opened, N.net.ok, N.net.failed, N.net.dropped, connect_s);
    json_lat(f, "connect_ms", &connect_h);
    fputs("},", f);
    json_lat(f, "snapshot_ms", &snap_h);
    fprintf(f, ",\"snapshots\":{\"count\":%" PRIu64 ",\"again\":%" PRIu64 ",\"missing_entries\":%" PRIu64
               ",\"foreign_entries\":%" PRIu64 ",\"duplicate_entries\":%" PRIu64 "},",
            N.snapshots, N.resnapshots, N.snap_missing, N.snap_foreign, N.snap_dup);
}

static void report_tail(FILE *f, int64_t cpu_ns, uint64_t per)
{
    fprintf(f, ",\"errors\":{\"stomp\":%" PRIu64 ",\"websocket\":%" PRIu64 ",\"unparsed\":%" PRIu64
               ",\"other_messages\":%" PRIu64 ",\"first\":",
            N.net.stomp_errors, N.net.ws_errors, N.unparsed, N.other);
    json_str(f, N.net.first_error);
    fputc('}', f);
    if (S.nwatch > 0) {
        fprintf(f, ",\"servers\":{\"pids\":%d,\"cpu_s\":%.3f", S.nwatch, (double)cpu_ns / 1e9);
        if (per)
            fprintf(f, ",\"cpu_us_per_event\":%.3f", (double)cpu_ns / 1e3 / (double)per);
        fputc('}', f);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(f, ",\"generator_cpu_s\":%.3f}\n",
            (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
            (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    fflush(f);
}

static void setup_users(long n, long with_sub)
{
    nusers = n;
    U = st_alloc(sizeof *U * (size_t)n);
    for (long i = 0; i < n; i++) {
        U[i].net.fd = -1;
        U[i].net.state = CONN_IDLE;
        U[i].user = (uint32_t)i;
        U[i].net.url = (uint8_t)(i % S.nurls);
        U[i].sub = i < with_sub;
        U[i].xusers = U[i].sub;
    }
}

static void close_all(void)
{
    for (long i = 0; i < nusers; i++)
        if (U[i].net.state != CONN_IDLE)
            conn_close(&loop, &U[i].net, false);
}

/* ------------------------------------------------------------ churn */

static int run_churn(void)
{
    setup_users(S.users, S.users);
    size_t pairs = (size_t)S.users * (size_t)S.contacts;
    map = st_alloc(pairs);
    got = st_alloc(pairs);
    t_off = st_alloc(sizeof *t_off * (size_t)S.users);
    t_on = st_alloc(sizeof *t_on * (size_t)S.users);
    changes = st_alloc((size_t)S.users);

    int64_t t0 = conn_now_ns();
    connect_range(0, S.users, S.ramp, "connecting");
    double connect_s = (double)(conn_now_ns() - t0) / 1e9;
    /* Everyone connected: the earliest snapshots showed the later users
     * offline; their online events bring every map to all-online. */
    double settle_ms = wait_until(all_online, S.settle_ms, "settling");
    long settle_wrong_w = 0;
    uint64_t settle_wrong = not_online(&settle_wrong_w);
    uint64_t setup_events = N.events, setup_redundant = N.redundant, setup_foreign = N.foreign;
    uint64_t setup_on = N.ev_online, setup_off = N.ev_offline;
    for (long w = 0; w < S.users; w++)
        U[w].stable = U[w].net.state == CONN_READY;

    /* The churners, spread evenly over the users; each logs out at its
     * time and back in gap-s later. */
    long K = S.churn;
    long *who = st_alloc(sizeof *who * (size_t)(K ? K : 1));
    for (long j = 0; j < K; j++)
        who[j] = j * S.users / K;
    double span = S.churn_s - S.gap_s > 0 ? S.churn_s - S.gap_s : S.churn_s;
    int64_t cpu0 = servers_cpu_ns();
    uint64_t ev0 = N.events;
    measuring = true;
    int64_t start = conn_now_ns();
    long next_out = 0, next_in = 0, skipped = 0;
    int64_t gap_ns = (int64_t)(S.gap_s * 1e9);
    while (next_in < K) {
        int64_t t = conn_now_ns();
        while (next_out < K && t >= start + (int64_t)(span * 1e9 * (double)next_out / (double)K)) {
            sconn *c = &U[who[next_out]];
            if (c->net.state == CONN_READY) {
                c->stable = false;
                t_off[c->user] = conn_now_ns();
                user_logout(c);
                changes[c->user]++;
            } else {
                skipped++;
            }
            next_out++;
        }
        while (next_in < next_out &&
               t >= start + (int64_t)(span * 1e9 * (double)next_in / (double)K) + gap_ns) {
            sconn *c = &U[who[next_in]];
            if (c->net.state == CONN_CLOSED && t_off[c->user] > 0) {
                c->relogin = true;
                conn_open(&loop, &c->net);
            }
            next_in++;
        }
        progress("churning");
        conn_poll(&loop, 1);
    }
    /* The last log-ins finish, then every event arrives (or the drain ends). */
    for (int64_t dl = conn_now_ns() + S.connect_timeout_ms * 1000000L; loop.inflight > 0 && conn_now_ns() < dl;)
        conn_poll(&loop, 5);
    double churn_s = (double)(conn_now_ns() - start) / 1e9;
    double drain_ms = wait_until(churn_complete, S.drain_ms, "draining");
    measuring = false;
    int64_t cpu = servers_cpu_ns() - cpu0;
    uint64_t churn_events = N.events - ev0;

    uint64_t expected, received, missing, extra;
    long watchers, wmissing, wextra, final_wrong_w = 0;
    churn_tally(&expected, &received, &missing, &extra, &watchers, &wmissing, &wextra);
    uint64_t final_wrong = not_online(&final_wrong_w);
    uint64_t made = 0;
    for (long u = 0; u < S.users; u++)
        made += changes[u];

    FILE *f = stdout;
    report_head(f, connect_s);
    fprintf(f, "\"setup\":{\"settle_ms\":%.1f,\"not_online\":%" PRIu64 ",\"watchers_not_online\":%ld,"
               "\"events\":%" PRIu64 ",\"redundant\":%" PRIu64 ",\"foreign\":%" PRIu64 "},",
            settle_ms, settle_wrong, settle_wrong_w, setup_events, setup_redundant, setup_foreign);
    fprintf(f, "\"churn\":{\"users\":%ld,\"skipped\":%ld,\"changes\":%" PRIu64 ",\"gap_s\":%.3f,"
               "\"seconds\":%.3f,\"drain_ms\":%.1f},",
            K, skipped, made, S.gap_s, churn_s, drain_ms);
    fprintf(f, "\"events\":{\"watchers\":%ld,\"expected\":%" PRIu64 ",\"received\":%" PRIu64
               ",\"missing\":%" PRIu64 ",\"extra\":%" PRIu64 ",\"watchers_missing\":%ld,"
               "\"watchers_extra\":%ld,\"delivered\":%" PRIu64 ",\"online\":%" PRIu64
               ",\"offline\":%" PRIu64 ",\"redundant\":%" PRIu64 ",\"foreign\":%" PRIu64
               ",\"before_connected\":%" PRIu64 ",\"per_s\":%.0f},",
            watchers, expected, received, missing, extra, wmissing, wextra, churn_events,
            N.ev_online - setup_on, N.ev_offline - setup_off, N.redundant - setup_redundant, N.foreign - setup_foreign,
            N.early, churn_s > 0 ? (double)churn_events / churn_s : 0.0);
    fprintf(f, "\"final\":{\"not_online\":%" PRIu64 ",\"watchers_not_online\":%ld},", final_wrong,
            final_wrong_w);
    json_lat(f, "latency_ms", &lat_all);
    fputc(',', f);
    json_lat(f, "offline_latency_ms", &lat_off);
    fputc(',', f);
    json_lat(f, "online_latency_ms", &lat_on);
    fprintf(f, ",\"slo_ms\":%.0f,\"slo_met\":%s", S.slo_ms,
            hist_quantile(&lat_all, 0.99) / 1000.0 <= S.slo_ms ? "true" : "false");
    report_tail(f, cpu, churn_events);
    close_all();
    free(who);
    bool ok = N.net.failed == 0 && N.net.dropped == 0 && missing == 0 && extra == 0 && final_wrong == 0 &&
              N.unparsed == 0 && N.net.stomp_errors == 0 && skipped == 0;
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------ surge */

static int run_surge(void)
{
    setup_users(S.users, S.users);
    size_t pairs = (size_t)S.users * (size_t)S.contacts;
    map = st_alloc(pairs);
    t_on = st_alloc(sizeof *t_on * (size_t)S.users);
    t_off = st_alloc(sizeof *t_off * (size_t)S.users);
    int64_t cpu0 = servers_cpu_ns();
    measuring = true;
    int64_t t0 = conn_now_ns();
    connect_range(0, S.users, (double)S.users / S.surge_s, "surge");
    double connect_s = (double)(conn_now_ns() - t0) / 1e9;
    double converge_ms = wait_until(all_online, S.drain_ms, "converging");
    measuring = false;
    int64_t cpu = servers_cpu_ns() - cpu0;
    long wrong_w = 0;
    uint64_t wrong = not_online(&wrong_w);

    FILE *f = stdout;
    report_head(f, connect_s);
    fprintf(f, "\"surge_s\":%.3f,\"status\":{\"watchers\":%" PRIu64 ",\"pairs\":%zu,\"not_online\":%" PRIu64
               ",\"watchers_not_online\":%ld,\"converge_ms\":%.1f,\"events\":%" PRIu64
               ",\"online\":%" PRIu64 ",\"offline\":%" PRIu64 ",\"redundant\":%" PRIu64
               ",\"foreign\":%" PRIu64 "},",
            S.surge_s, N.net.ok, pairs, wrong, wrong_w, converge_ms, N.events, N.ev_online, N.ev_offline,
            N.redundant, N.foreign);
    json_lat(f, "event_latency_ms", &lat_all);
    report_tail(f, cpu, N.events);
    close_all();
    bool ok = N.net.failed == 0 && N.net.dropped == 0 && wrong == 0 && N.ev_offline == 0 && N.redundant == 0 &&
              N.foreign == 0 && N.unparsed == 0 && N.net.stomp_errors == 0;
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------ bigsnap */

/* PUT body to http://url/path with the API key, synchronously (the
 * setup phase, before any measured traffic); returns the HTTP status or
 * -1, with the response body's start in resp. */
static int http_put(const conn_url *u, const char *path, const char *body, size_t blen, char *resp, size_t rcap)
{
    int status = -1;
    char *head = NULL, *in = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    struct timeval tv = { .tv_sec = 30 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (const struct sockaddr *)&u->addr, sizeof u->addr) != 0)
        goto fail;
    head = st_alloc(1024);
    int hl = snprintf(head, 1024,
                      "PUT %s HTTP/1.1\r\nHost: %s\r\nX-API-Key: %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      path, u->hostport, S.api_key ? S.api_key : "", blen);
    if (hl <= 0 || hl >= 1024 || send(fd, head, (size_t)hl, MSG_NOSIGNAL) != hl)
        goto fail;
    for (size_t off = 0; off < blen;) {
        ssize_t w = send(fd, body + off, blen - off, MSG_NOSIGNAL);
        if (w <= 0)
            goto fail;
        off += (size_t)w;
    }
    /* Read until the header and Content-Length bytes are in, or EOF. */
    size_t cap = 65536, n = 0;
    in = st_alloc(cap + 1);
    for (;;) {
        ssize_t r = recv(fd, in + n, cap - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        in[n] = '\0';
        char *eoh = strstr(in, "\r\n\r\n");
        if (eoh) {
            char *cl = strcasestr(in, "\r\ncontent-length:");
            if (cl && cl < eoh && n >= (size_t)(eoh + 4 - in) + strtoul(cl + 17, NULL, 10))
                break;
        }
        if (n == cap)
            break;
    }
    in[n] = '\0';
    if (n < 12 || strncmp(in, "HTTP/1.", 7) != 0)
        goto fail;
    status = atoi(in + 9);
    char *b = strstr(in, "\r\n\r\n");
    snprintf(resp, rcap, "%s", b ? b + 4 : "");
fail:
    if (fd >= 0)
        close(fd);
    free(head);
    free(in);
    return status;
}

typedef struct big_round {
    double ms;                   /* SUBSCRIBE to snapshot; < 0: none */
    uint64_t entries, online, wrong, dup, foreign;
    size_t bytes;
} big_round;

/* Log the big user in on url `ui`, subscribe, take the snapshot, log out. */
static big_round big_login(long ui)
{
    sconn *c = &U[S.contacts];
    c->net.url = (uint8_t)ui;
    c->sub = true;
    c->xusers = false;
    c->net.state = CONN_IDLE;
    B.ms_us = -1;
    conn_open(&loop, &c->net);
    int64_t deadline = conn_now_ns() + S.connect_timeout_ms * 1000000L;
    while (c->net.state != CONN_READY && c->net.state != CONN_CLOSED && conn_now_ns() < deadline)
        conn_poll(&loop, 5);
    big_round r = { -1, 0, 0, 0, 0, 0, 0 };
    if (c->net.state == CONN_READY && B.ms_us >= 0)
        r = (big_round){ (double)B.ms_us / 1000.0, B.entries, B.online, B.wrong, B.dup, B.foreign, B.bytes };
    if (c->net.state == CONN_READY)
        user_logout(c);
    else
        conn_close(&loop, &c->net, true);
    return r;
}

static void json_round(FILE *f, const char *name, const big_round *r)
{
    fprintf(f, "\"%s\":{\"ms\":%.3f,\"bytes\":%zu,\"entries\":%" PRIu64 ",\"online\":%" PRIu64
               ",\"wrong\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"foreign\":%" PRIu64 ",\"ok\":%s}",
            name, r->ms, r->bytes, r->entries, r->online, r->wrong, r->dup, r->foreign,
            r->ms >= 0 && r->entries == (uint64_t)S.contacts && r->online == (uint64_t)S.online &&
            !r->wrong && !r->dup && !r->foreign ? "true" : "false");
}

static bool round_ok(const big_round *r)
{
    return r->ms >= 0 && r->entries == (uint64_t)S.contacts && r->online == (uint64_t)S.online &&
           !r->wrong && !r->dup && !r->foreign;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_bigsnap(void)
{
    /* U[0..contacts) are the contacts (the first `online` of them log
     * in, without subscribing); U[contacts] is the big user. */
    setup_users(S.contacts + 1, 0);
    B.seen = st_alloc((size_t)S.contacts);
    int64_t t0 = conn_now_ns();
    connect_range(0, S.online, S.ramp, "contacts logging in");
    double connect_s = (double)(conn_now_ns() - t0) / 1e9;

    /* The list, through the API. */
    size_t cap = 32 + (size_t)S.contacts * (STATUS_USER_MAX + 4), n = 0;
    char *body = st_alloc(cap);
    n += (size_t)snprintf(body, cap, "{\"contacts\":[");
    for (long i = 0; i < S.contacts; i++) {
        if (i)
            body[n++] = ',';
        body[n++] = '"';
        n += user_name(body + n, cap - n, i);
        body[n++] = '"';
    }
    n += (size_t)snprintf(body + n, cap - n, "]}");
    char big[STATUS_USER_MAX + 1], path[STATUS_USER_MAX + 64], resp[512];
    user_name(big, sizeof big, S.contacts);
    snprintf(path, sizeof path, "/api/users/%s/contacts", big);
    int64_t tp = conn_now_ns();
    int put_status = http_put(&S.urls[0], path, body, n, resp, sizeof resp);
    double put_ms = (double)(conn_now_ns() - tp) / 1e6;
    free(body);
    if (put_status != 200) {
        char why[300];
        int wl = snprintf(why, sizeof why, "%d %.200s", put_status, resp);
        conn_error(&loop, "PUT contacts", why, (size_t)wl);
    }

    int64_t cpu0 = servers_cpu_ns();
    big_round cold = big_login(0);
    big_round *warm = st_alloc(sizeof *warm * (size_t)(S.rounds > 0 ? S.rounds : 1));
    double *wms = st_alloc(sizeof *wms * (size_t)(S.rounds > 0 ? S.rounds : 1));
    bool warm_ok = true;
    for (long r = 0; r < S.rounds; r++) {
        warm[r] = big_login(0);
        wms[r] = warm[r].ms;
        warm_ok = warm_ok && round_ok(&warm[r]);
    }
    bool ok = put_status == 200 && round_ok(&cold) && warm_ok;
    big_round other = { -1, 0, 0, 0, 0, 0, 0 };
    if (S.nurls > 1) {
        other = big_login(1);
        ok = ok && round_ok(&other);
    }
    int64_t cpu = servers_cpu_ns() - cpu0;   /* every log-in and snapshot */
    qsort(wms, (size_t)S.rounds, sizeof *wms, cmp_double);

    FILE *f = stdout;
    report_head(f, connect_s);
    fprintf(f, "\"online\":%ld,\"put\":{\"status\":%d,\"ms\":%.1f},", S.online, put_status, put_ms);
    json_round(f, "cold", &cold);
    fputc(',', f);
    fprintf(f, "\"warm\":{\"rounds\":%ld,\"min_ms\":%.3f,\"p50_ms\":%.3f,\"max_ms\":%.3f,\"ok\":%s},",
            S.rounds, S.rounds ? wms[0] : -1.0, S.rounds ? wms[S.rounds / 2] : -1.0,
            S.rounds ? wms[S.rounds - 1] : -1.0, warm_ok ? "true" : "false");
    if (S.rounds)
        json_round(f, "warm_last", &warm[S.rounds - 1]);
    else
        fputs("\"warm_last\":null", f);
    fputc(',', f);
    if (S.nurls > 1)
        json_round(f, "other_server", &other);
    else
        fputs("\"other_server\":null", f);
    report_tail(f, cpu, 0);
    close_all();
    free(warm);
    free(wms);
    ok = ok && N.net.failed == 0 && N.net.dropped == 0 && N.net.stomp_errors == 0;
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------ options */

bool status_is_scenario(const char *scenario)
{
    return strncmp(scenario, "status-", 7) == 0;
}

void status_usage(FILE *f)
{
    fprintf(f,
"Status scenarios (SUBSCRIBE /status; their own options, below):\n"
"  status-churn    --users (10000) watchers over the --url servers, --contacts (200)\n"
"                  each, sent as x-users; then --churn (1000) of them log out and\n"
"                  back in --gap-s (2) later, spread over --churn-s (10) s: every\n"
"                  change reaches every watcher once; latency p99 against --slo (1000 ms)\n"
"  status-bigsnap  one user with --contacts (5000) stored through the contacts API\n"
"                  (--api-key, or LECTERN_LOAD_API_KEY in the environment), --online\n"
"                  (1000) of them logged in: snapshot time cold,\n"
"                  --rounds (5) warm, and on a second --url; its size and correctness\n"
"  status-surge    --users (5000) connect within --surge-s (10) s, each watching\n"
"                  --contacts (50): connect p99, snapshot time, every map all online\n"
"  Shared: --ramp R (2000 conn/s), --inflight N (256), --connect-timeout MS (60000),\n"
"  --settle MS (30000), --drain MS (15000), --login PATTERN (user ids; %%u = number;\n"
"  default s<pid>-%%u), --watch-pid PID (servers' CPU per event), --no-progress.\n");
}

static void parse_url(const char *s)
{
    if (S.nurls >= ST_MAX_URLS)
        st_die("too many --url (max %d)", ST_MAX_URLS);
    const char *why;
    if (conn_url_parse(s, &S.urls[S.nurls], &why) != 0)
        st_die("%s: %s", why, s);
    S.nurls++;
}

int status_main(int argc, char **argv)
{
    enum { O_URL = 256, O_SCEN, O_USERS, O_CONTACTS, O_CHURN, O_CHURN_S, O_GAP, O_ONLINE, O_ROUNDS,
           O_SURGE, O_RAMP, O_INFLIGHT, O_CTIMEOUT, O_SETTLE, O_DRAIN, O_SLO, O_LOGIN, O_KEY,
           O_WATCH, O_JSON, O_NOPROG, O_HELP };
    static const struct option lo[] = {
        { "url", 1, 0, O_URL }, { "scenario", 1, 0, O_SCEN }, { "users", 1, 0, O_USERS },
        { "contacts", 1, 0, O_CONTACTS }, { "churn", 1, 0, O_CHURN }, { "churn-s", 1, 0, O_CHURN_S },
        { "gap-s", 1, 0, O_GAP }, { "online", 1, 0, O_ONLINE }, { "rounds", 1, 0, O_ROUNDS },
        { "surge-s", 1, 0, O_SURGE }, { "ramp", 1, 0, O_RAMP }, { "inflight", 1, 0, O_INFLIGHT },
        { "connect-timeout", 1, 0, O_CTIMEOUT }, { "settle", 1, 0, O_SETTLE }, { "drain", 1, 0, O_DRAIN },
        { "slo", 1, 0, O_SLO }, { "login", 1, 0, O_LOGIN }, { "api-key", 1, 0, O_KEY },
        { "watch-pid", 1, 0, O_WATCH }, { "json", 0, 0, O_JSON }, { "no-progress", 0, 0, O_NOPROG },
        { "help", 0, 0, O_HELP }, { 0, 0, 0, 0 }
    };
    static char login[64];
    snprintf(login, sizeof login, "s%d-%%u", (int)getpid());
    S.login = login;
    S.ramp = 2000; S.inflight = 256; S.connect_timeout_ms = 60000; S.settle_ms = 30000;
    S.drain_ms = 15000; S.slo_ms = 1000; S.rounds = 5; S.churn_s = 10; S.gap_s = 2; S.surge_s = 10;
    S.name = "";
    S.api_key = getenv("LECTERN_LOAD_API_KEY");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--scenario") == 0 && i + 1 < argc)
            S.name = argv[i + 1];
        else if (strncmp(argv[i], "--scenario=", 11) == 0)
            S.name = argv[i] + 11;
    }
    if (strcmp(S.name, "status-churn") == 0) {
        S.kind = SC_CHURN; S.users = 10000; S.contacts = 200; S.churn = 1000;
    } else if (strcmp(S.name, "status-bigsnap") == 0) {
        S.kind = SC_BIGSNAP; S.contacts = 5000; S.online = 1000;
    } else if (strcmp(S.name, "status-surge") == 0) {
        S.kind = SC_SURGE; S.users = 5000; S.contacts = 50;
    } else {
        st_die("unknown scenario %s", S.name);
    }
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case O_URL: parse_url(optarg); break;
        case O_SCEN: break;
        case O_USERS: S.users = atol(optarg); break;
        case O_CONTACTS: S.contacts = atol(optarg); break;
        case O_CHURN: S.churn = atol(optarg); break;
        case O_CHURN_S: S.churn_s = atof(optarg); break;
        case O_GAP: S.gap_s = atof(optarg); break;
        case O_ONLINE: S.online = atol(optarg); break;
        case O_ROUNDS: S.rounds = atol(optarg); break;
        case O_SURGE: S.surge_s = atof(optarg); break;
        case O_RAMP: S.ramp = atof(optarg); break;
        case O_INFLIGHT: S.inflight = atol(optarg); break;
        case O_CTIMEOUT: S.connect_timeout_ms = atol(optarg); break;
        case O_SETTLE: S.settle_ms = atol(optarg); break;
        case O_DRAIN: S.drain_ms = atol(optarg); break;
        case O_SLO: S.slo_ms = atof(optarg); break;
        case O_LOGIN: S.login = optarg; break;
        case O_KEY: S.api_key = optarg; break;
        case O_WATCH:
            if (S.nwatch < ST_MAX_PIDS)
                S.watch[S.nwatch++] = atoi(optarg);
            break;
        case O_JSON: break;
        case O_NOPROG: S.quiet = true; break;
        case O_HELP: status_usage(stdout); return 0;
        default: status_usage(stderr); return 2;
        }
    }
    if (optind < argc || S.nurls == 0) {
        status_usage(stderr);
        return 2;
    }
    if (!strstr(S.login, "%u") || strlen(S.login) > 40)
        st_die("%s", "--login must hold %u and be at most 40 bytes");
    if (S.ramp <= 0 || S.inflight <= 0 || S.connect_timeout_ms <= 0 || S.settle_ms < 0 || S.drain_ms < 0)
        st_die("%s", "bad --ramp, --inflight, --connect-timeout, --settle or --drain");
    if (S.kind == SC_BIGSNAP) {
        if (S.contacts < 1 || S.contacts > ST_MAX_BIG)
            st_die("--contacts must be 1..%d", ST_MAX_BIG);
        if (S.online < 0 || S.online > S.contacts || S.online > ST_MAX_USERS - 1)
            st_die("--online must be 0..min(--contacts, %d)", ST_MAX_USERS - 1);
        if (S.rounds < 0 || S.rounds > 1000)
            st_die("%s", "--rounds must be 0..1000");
        if (!S.api_key || !*S.api_key)
            st_die("%s", "status-bigsnap stores the list through the API: --api-key (or "
                   "LECTERN_LOAD_API_KEY) is needed");
        S.users = S.contacts;     /* user numbers range over the contacts */
    } else {
        if (S.users < 3 || S.users > ST_MAX_USERS)
            st_die("--users must be 3..%d", ST_MAX_USERS);
        if (S.contacts < 2 || S.contacts % 2 || S.contacts >= S.users)
            st_die("%s", "--contacts must be even, at least 2 and below --users");
        if (S.kind == SC_CHURN) {
            if (S.churn < 0 || S.churn > S.users)
                st_die("%s", "--churn must be 0..--users");
            if (S.churn_s <= 0 || S.churn_s > 600 || S.gap_s < 0 || S.gap_s > 600)
                st_die("%s", "--churn-s must be in (0, 600], --gap-s in [0, 600]");
        }
        if (S.kind == SC_SURGE && (S.surge_s <= 0 || S.surge_s > 600))
            st_die("%s", "--surge-s must be in (0, 600]");
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    const conn_opts co = {
        .urls = S.urls, .protocols = "v12.stomp", .accept_version = "1.2", .vhost = "/",
        .passcode = "x", .max_frame = ST_MAX_FRAME,
        .hooks = { .connected = on_connected, .message = on_message, .login = login_for },
    };
    if (conn_loop_init(&loop, &co, &N.net, 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() * 0x9E3779B97F4A7C15ull) != 0)
        st_die("epoll: %s", strerror(errno));
    int rc = S.kind == SC_CHURN ? run_churn() : S.kind == SC_SURGE ? run_surge() : run_bigsnap();
    conn_loop_deinit(&loop);
    free(U);
    free(map);
    free(got);
    free(t_off);
    free(t_on);
    free(changes);
    free(B.seen);
    return rc;
}
