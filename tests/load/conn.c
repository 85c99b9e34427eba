/* conn.c — the load generator's client connections (see conn.h).
 *
 * How it works. A connection is a small struct driven by one epoll loop:
 * conn_open starts a non-blocking connect (optionally from one of several
 * loopback source addresses, so that one destination is not limited to one
 * ephemeral port range) and registers for EPOLLIN|EPOLLOUT; the first
 * EPOLLOUT sends the WebSocket upgrade; the 101 answer is checked against
 * the key and answered with STOMP CONNECT; from then on input is WebSocket
 * frames carrying a STOMP byte stream, scanned into frames that go to the
 * caller's hooks. PINGs are answered, a CLOSE or any protocol error fails
 * the connection with its reason recorded.
 *
 * Reading. Each readable socket is read into one shared buffer (rbuf), up
 * to 8 reads in a row so that one busy connection does not starve the
 * others. Parsers work on the bytes where they lie; only an incomplete
 * tail is copied into the connection's carry buffer, once per layer
 * (WebSocket, STOMP), and a large carry is freed once it empties, so an
 * idle connection costs its struct and its socket. One clock read per
 * read() stamps every frame in those bytes (rx_now).
 *
 * Writing. conn_send writes straight to the socket; whatever the kernel
 * does not take is queued on the connection and EPOLLOUT is registered
 * until the queue drains, so output order is kept and the caller never
 * blocks. Client frames are masked with a fresh key from a xorshift
 * generator (masking defeats proxies' caches, not attackers: it need not
 * be cryptographic).
 *
 * Socket.IO (conn_opts.protocol = CONN_SOCKETIO). The same connection
 * under a different conversation: the upgrade offers no subprotocol, each
 * WebSocket message is one Engine.IO packet (sio.c); the open packet is
 * answered with the namespace connect "40", pings with "3", and the
 * packets the scenarios care about are handed to the same hooks as STOMP
 * frames (conn.h says how), so the caller's accounting does not change.
 * A message split into WebSocket fragments is gathered in the STOMP carry
 * buffer, which this protocol has no other use for.
 *
 * TLS (wss:// URLs). Once TCP connects, the connection is in state TLS
 * while tlsio.c's handshake runs, with EPOLLOUT registered only when the
 * handshake waits to write; after it, the upgrade goes out as for ws://.
 * Every read and write goes through conn_read and conn_write, which call
 * tlsio_read/tlsio_write (recv/send semantics) on a TLS connection, so
 * nothing above them knows.
 *
 * Invariants: l->inflight counts connections in TCP, TLS, HANDSHAKE, STOMP
 * or SUBSCRIBING; a CLOSED connection has fd -1 and no buffers; counts only
 * grow; library code never prints (errors go to counts->first_error).
 */
#include "conn.h"

#include "sio.h"
#include "ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONN_EVENTS 512          /* epoll events handled per wait */

int64_t conn_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t conn_rng(conn_loop *l)
{
    uint64_t x = l->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return l->rng = x;
}

static void *conn_realloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fputs("lectern-load: out of memory\n", stderr);
        exit(1);
    }
    return q;
}

/* ------------------------------------------------------------- buffers */

static void grow(void **p, uint32_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    *p = conn_realloc(*p, n);
    *cap = (uint32_t)n;
}

/* Append data[0..n) to k; returns k's bytes (now the whole unparsed run). */
static unsigned char *carry_append(conn_carry *k, const void *data, size_t n)
{
    grow((void **)&k->p, &k->cap, k->len + n);
    memcpy(k->p + k->len, data, n);
    k->len += (uint32_t)n;
    return k->p;
}

/* data[0..n) was parsed up to off: keep data[off..n) for the next read.
 * data is either k's own bytes (carry_append) or the caller's. A large
 * buffer is released once it empties. */
static void carry_keep(conn_carry *k, const unsigned char *data, size_t n, size_t off)
{
    if (data == k->p) {
        memmove(k->p, k->p + off, n - off);
    } else if (off < n) {
        grow((void **)&k->p, &k->cap, n - off);
        memcpy(k->p, data + off, n - off);
    }
    k->len = (uint32_t)(n - off);
    if (k->len == 0 && k->cap > 65536) {
        free(k->p);
        *k = (conn_carry){ 0 };
    }
}

/* ------------------------------------------------------------ the loop */

int conn_url_parse(const char *s, conn_url *u, const char **why)
{
    u->tls = strncmp(s, "wss://", 6) == 0;
    if (!u->tls && strncmp(s, "ws://", 5) != 0)
        return *why = "only ws:// and wss:// URLs", -1;
    const char *p = s + (u->tls ? 6 : 5);
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    if (hl == 0 || hl >= sizeof u->hostport)
        return *why = "bad URL", -1;
    memcpy(u->hostport, p, hl);
    u->hostport[hl] = '\0';
    snprintf(u->path, sizeof u->path, "%s", slash ? slash : "/");
    char host[96];
    snprintf(host, sizeof host, "%s", u->hostport);
    char *colon = strrchr(host, ':');
    int port = u->tls ? 443 : 80;
    if (colon) {
        *colon = '\0';
        port = atoi(colon + 1);
    }
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    memset(&u->addr, 0, sizeof u->addr);
    u->addr.sin_family = AF_INET;
    u->addr.sin_port = htons((uint16_t)port);
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &u->addr.sin_addr) != 1)
        return *why = "bad URL (IPv4 address and port needed)", -1;
    if ((ntohl(u->addr.sin_addr.s_addr) >> 24) != 127)
        return *why = "refusing a non-loopback target", -1;
    return 0;
}

int conn_loop_init(conn_loop *l, const conn_opts *o, conn_counts *counts, uint64_t seed)
{
    memset(l, 0, sizeof *l);
    l->o = *o;
    l->counts = counts;
    l->rng = seed ? seed : 1;
    l->rbuf = conn_realloc(NULL, CONN_RBUF);
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    return l->ep < 0 ? -1 : 0;
}

int conn_heart_beat_parse(const char *s, long *cx, long *cy)
{
    long v[2];
    const char *p = s;
    for (int i = 0; i < 2; i++) {
        if (*p < '0' || *p > '9')
            return -1;
        long x = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            x = x * 10 + (*p - '0');
            if (x > 86400000L)
                return -1;
        }
        v[i] = x;
        if (i == 0 && *p++ != ',')
            return -1;
    }
    if (*p)
        return -1;
    *cx = v[0];
    *cy = v[1];
    return 0;
}

void conn_loop_deinit(conn_loop *l)
{
    if (l->ep >= 0)
        close(l->ep);
    free(l->rbuf);
    free(l->tx);
    l->rbuf = l->tx = NULL;
    l->tx_cap = 0;
    l->ep = -1;
}

void conn_error(conn_loop *l, const char *what, const char *detail, size_t dlen)
{
    char *dst = l->counts->first_error;
    if (dst[0])
        return;
    snprintf(dst, sizeof l->counts->first_error, "%s%s%.*s", what, dlen ? ": " : "",
             (int)(dlen > 150 ? 150 : dlen), detail ? detail : "");
}

static void conn_errno(conn_loop *l, const char *what, int err)
{
    const char *m = strerror(err);
    conn_error(l, what, m, strlen(m));
}

void conn_close(conn_loop *l, conn *c, bool failed)
{
    if (c->state == CONN_CLOSED || c->state == CONN_IDLE)
        return;
    if (c->state != CONN_READY) {
        l->inflight--;
        if (failed)
            l->counts->failed++;
    } else if (failed) {
        l->counts->dropped++;
    }
    epoll_ctl(l->ep, EPOLL_CTL_DEL, c->fd, NULL);
    tlsio_close(c->tls);
    c->tls = NULL;
    close(c->fd);
    c->fd = -1;
    c->state = CONN_CLOSED;
    free(c->ws.p);
    free(c->st.p);
    free(c->out);
    c->ws = (conn_carry){ 0 };
    c->st = (conn_carry){ 0 };
    c->out = NULL;
    c->out_len = c->out_off = c->out_cap = 0;
}

void conn_ready(conn_loop *l, conn *c)
{
    c->state = CONN_READY;
    l->inflight--;
    l->counts->ok++;
}

/* ------------------------------------------------------------- writing */

/* send (or, on TLS, tlsio_write) p[0..n) on c: bytes taken, or -1 and errno. */
static ssize_t conn_write(conn *c, const void *p, size_t n)
{
    return c->tls ? tlsio_write(c->tls, p, n) : send(c->fd, p, n, MSG_NOSIGNAL);
}

static void want_out(conn_loop *l, conn *c, bool on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

void conn_send(conn_loop *l, conn *c, const unsigned char *p, size_t n)
{
    if (c->state == CONN_CLOSED)
        return;
    if (c->out_len == 0) {
        ssize_t w = conn_write(c, p, n);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                conn_errno(l, "send", errno);
                conn_close(l, c, true);
                return;
            }
            w = 0;
        }
        if ((size_t)w == n)
            return;
        p += w;
        n -= (size_t)w;
    }
    grow((void **)&c->out, &c->out_cap, c->out_len + n);
    memcpy(c->out + c->out_len, p, n);
    c->out_len += (uint32_t)n;
    want_out(l, c, true);
}

static void conn_flush(conn_loop *l, conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = conn_write(c, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_close(l, c, true);
            return;
        }
        c->out_off += (uint32_t)w;
    }
    c->out_off = c->out_len = 0;
    want_out(l, c, false);
}

static size_t put_frame(conn_loop *l, unsigned char *dst, int opcode, const void *p, size_t n)
{
    uint32_t mask = (uint32_t)conn_rng(l);
    size_t hl = ws_header(dst, opcode, n, mask);
    memcpy(dst + hl, p, n);
    ws_mask(dst + hl, n, mask);
    return hl + n;
}

size_t conn_frame(conn_loop *l, unsigned char *dst, const char *text, size_t n)
{
    return put_frame(l, dst, WS_TEXT, text, n);
}

void conn_send_text(conn_loop *l, conn *c, const char *text, size_t n)
{
    if (n + 14 > l->tx_cap) {
        l->tx_cap = n + 14 + 4096;
        free(l->tx);
        l->tx = conn_realloc(NULL, l->tx_cap);
    }
    conn_send(l, c, l->tx, put_frame(l, l->tx, WS_TEXT, text, n));
}

void conn_send_stomp(conn_loop *l, conn *c, const char *text, size_t n)
{
    conn_send_text(l, c, text, n);
}

/* ------------------------------------------------------------- reading */

static void on_frame(conn_loop *l, conn *c, const scan_frame *f)
{
    switch (f->cmd) {
    case SCAN_HEARTBEAT:
        return;
    case SCAN_MESSAGE:
        l->o.hooks.message(l, c, f);
        return;
    case SCAN_RECEIPT:
        if (l->o.hooks.receipt)
            l->o.hooks.receipt(l, c, f);
        return;
    case SCAN_CONNECTED:
        if (c->state != CONN_STOMP)
            break;
        l->o.hooks.connected(l, c, f);
        return;
    case SCAN_ERROR: {
        size_t ml = 0;
        const char *m = scan_header(f, "message", &ml);
        l->counts->stomp_errors++;
        conn_error(l, "STOMP ERROR", m, ml);
        conn_close(l, c, true);
        return;
    }
    default:
        break;
    }
    l->counts->stomp_errors++;
    conn_error(l, "unexpected frame", NULL, 0);
}

/* Feed WebSocket payload bytes (a STOMP byte stream) to c. */
static void feed_stomp(conn_loop *l, conn *c, char *p, size_t n)
{
    if (c->st.len > 0) {
        p = (char *)carry_append(&c->st, p, n);
        n = c->st.len;
    }
    size_t off = 0;
    while (off < n && c->state != CONN_CLOSED) {
        scan_frame f;
        ssize_t r = scan_frame_next(p + off, n - off, l->o.max_frame, &f);
        if (r == SCAN_AGAIN)
            break;
        if (r == SCAN_BAD) {
            l->counts->stomp_errors++;
            conn_error(l, "malformed STOMP frame", NULL, 0);
            conn_close(l, c, true);
            return;
        }
        on_frame(l, c, &f);
        off += (size_t)r;
    }
    if (c->state == CONN_CLOSED)
        return;
    carry_keep(&c->st, (const unsigned char *)p, n, off);
}

/* One whole Socket.IO packet p[0..n) on c, as conn.h's hooks. */
static void on_packet(conn_loop *l, conn *c, const char *p, size_t n)
{
    sio_packet k;
    if (sio_parse(p, n, &k) != 0) {
        l->counts->stomp_errors++;
        conn_error(l, "malformed Socket.IO packet", p, n);
        conn_close(l, c, true);
        return;
    }
    scan_frame f = { 0 };
    char hdr[40];
    switch (k.kind) {
    case SIO_OPEN:
        if (c->state == CONN_STOMP)
            conn_send_text(l, c, "40", 2);
        return;
    case SIO_PING:
        conn_send_text(l, c, "3", 1);
        return;
    case SIO_CONNECT:
        if (c->state != CONN_STOMP)
            break;
        f.cmd = SCAN_CONNECTED;
        l->o.hooks.connected(l, c, &f);
        return;
    case SIO_EVENT:
        if (k.name_len != 1 || k.name[0] != 'm' || !k.arg)
            break;
        f.cmd = SCAN_MESSAGE;
        f.body = k.arg;
        f.body_len = k.arg_len;
        l->o.hooks.message(l, c, &f);
        return;
    case SIO_ACK:
        if (!l->o.hooks.receipt)
            return;
        f.cmd = SCAN_RECEIPT;
        f.headers = hdr;
        f.headers_len = (size_t)snprintf(hdr, sizeof hdr, "receipt-id:%ld\n", k.ack);
        l->o.hooks.receipt(l, c, &f);
        return;
    case SIO_PONG:
    case SIO_NOOP:
    case SIO_OTHER:
        return;
    case SIO_CLOSE:
    case SIO_DISCONNECT:
    case SIO_CONNECT_ERROR:
        l->counts->stomp_errors++;
        conn_error(l, "Socket.IO session ended", p, n);
        conn_close(l, c, true);
        return;
    }
    l->counts->stomp_errors++;
    conn_error(l, "unexpected Socket.IO packet", p, n);
}

/* WebSocket text payload p[0..n) on c (fin: the message's last fragment). */
static void feed_sio(conn_loop *l, conn *c, char *p, size_t n, bool fin)
{
    if (!fin || c->st.len > 0) {
        carry_append(&c->st, p, n);
        if (!fin)
            return;
        p = (char *)c->st.p;
        n = c->st.len;
    }
    on_packet(l, c, p, n);
    if (c->state != CONN_CLOSED && p == (char *)c->st.p)
        carry_keep(&c->st, c->st.p, n, n);
}

/* Consume whole WebSocket frames from p[0..n); returns bytes consumed. */
static size_t feed_ws(conn_loop *l, conn *c, unsigned char *p, size_t n)
{
    size_t off = 0;
    while (off < n && c->state != CONN_CLOSED) {
        ws_frame f;
        ssize_t r = ws_parse(p + off, n - off, l->o.max_frame, &f);
        if (r == WS_AGAIN)
            break;
        if (r == WS_BAD) {
            l->counts->ws_errors++;
            conn_error(l, "bad WebSocket frame", NULL, 0);
            conn_close(l, c, true);
            return n;
        }
        off += (size_t)r;
        switch (f.opcode) {
        case WS_TEXT:
        case WS_BINARY:
        case WS_CONT:
            if (l->o.protocol == CONN_SOCKETIO)
                feed_sio(l, c, (char *)f.payload, f.len, f.fin);
            else
                feed_stomp(l, c, (char *)f.payload, f.len);
            break;
        case WS_PING:
            if (f.len <= 125) {
                unsigned char tmp[160];
                conn_send(l, c, tmp, put_frame(l, tmp, WS_PONG, f.payload, f.len));
            }
            break;
        case WS_CLOSE: {
            unsigned code = f.len >= 2 ? (unsigned)f.payload[0] << 8 | f.payload[1] : 0;
            char d[160];
            int dl = snprintf(d, sizeof d, "%u %.*s", code, (int)(f.len > 2 ? (f.len - 2 > 100 ? 100 : f.len - 2) : 0),
                              f.len > 2 ? (const char *)f.payload + 2 : "");
            conn_error(l, "closed by server", d, (size_t)dl);
            conn_close(l, c, true);
            return n;
        }
        default:
            break;
        }
    }
    return off;
}

/* The 101 came: STOMP CONNECT with c's login. */
static void send_connect(conn_loop *l, conn *c)
{
    char text[1024], login[160];
    l->o.hooks.login(c, login, sizeof login);
    int tl = snprintf(text, sizeof text,
                      "CONNECT\naccept-version:%s\nhost:%s\nlogin:%s\npasscode:%s\n"
                      "heart-beat:%s\n\n", l->o.accept_version, l->o.vhost, login, l->o.passcode,
                      l->o.heart_beat ? l->o.heart_beat : "0,0");
    if (tl < 0 || (size_t)tl >= sizeof text) {
        conn_error(l, "CONNECT frame too long", NULL, 0);
        conn_close(l, c, true);
        return;
    }
    conn_send_stomp(l, c, text, (size_t)tl + 1);   /* with the NUL */
}

/* recv (or, on TLS, tlsio_read) into p[0..n): bytes read, 0 at the peer's
 * close, or -1 and errno. */
static ssize_t conn_read(conn *c, void *p, size_t n)
{
    return c->tls ? tlsio_read(c->tls, p, n) : recv(c->fd, p, n, 0);
}

static void on_readable(conn_loop *l, conn *c)
{
    for (int rounds = 0; rounds < 8 && c->state != CONN_CLOSED; rounds++) {
        ssize_t r = conn_read(c, l->rbuf, CONN_RBUF);
        l->counts->reads++;
        l->rx_now = conn_now_ns();   /* one clock read for every frame in these bytes */
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_errno(l, "recv", errno);
            conn_close(l, c, true);
            return;
        }
        if (r == 0) {
            conn_error(l, "connection closed", NULL, 0);
            conn_close(l, c, true);
            return;
        }
        size_t n = (size_t)r;
        unsigned char *p = l->rbuf;
        if (c->ws.len > 0 || c->state == CONN_HANDSHAKE) {
            p = carry_append(&c->ws, l->rbuf, n);
            n = c->ws.len;
        }
        size_t off = 0;
        if (c->state == CONN_HANDSHAKE) {
            const char *why = "";
            ssize_t h = ws_response((const char *)p, n, c->key, &why);
            if (h == WS_AGAIN)
                continue;
            if (h == WS_BAD) {
                l->counts->ws_errors++;
                conn_error(l, "handshake", why, strlen(why));
                conn_close(l, c, true);
                return;
            }
            off = (size_t)h;
            c->state = CONN_STOMP;
            /* Socket.IO's server speaks first (the open packet). */
            if (l->o.protocol != CONN_SOCKETIO)
                send_connect(l, c);
        }
        if (c->state != CONN_CLOSED)
            off += feed_ws(l, c, p + off, n - off);
        if (c->state == CONN_CLOSED)
            return;
        carry_keep(&c->ws, p, n, off);
        if ((size_t)r < CONN_RBUF)
            return;
    }
}

/* ------------------------------------------------------------ opening */

/* Connected (TCP, and TLS if any): send the WebSocket upgrade. */
static void send_upgrade(conn_loop *l, conn *c)
{
    char req[1024];
    const conn_url *u = &l->o.urls[c->url];
    uint64_t a = conn_rng(l);
    ws_make_key(c->key, a, conn_rng(l));
    size_t n = ws_request(req, sizeof req, u->hostport, u->path, l->o.protocols, c->key);
    c->state = CONN_HANDSHAKE;
    want_out(l, c, false);
    conn_send(l, c, (const unsigned char *)req, n);
}

/* Advance c's TLS handshake (state TLS); once done, the upgrade. */
static void tls_step(conn_loop *l, conn *c)
{
    char why[160];
    bool wr = false;
    int r = tlsio_handshake(c->tls, &wr, why, sizeof why);
    if (r == TLSIO_AGAIN) {
        want_out(l, c, wr);
        return;
    }
    if (r != 0) {
        conn_error(l, "TLS", why, strlen(why));
        conn_close(l, c, true);
        return;
    }
    if (!l->counts->tls[0])
        tlsio_describe(c->tls, l->counts->tls, sizeof l->counts->tls);
    send_upgrade(l, c);
}

static void on_connected_tcp(conn_loop *l, conn *c)
{
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        conn_errno(l, "connect", err);
        conn_close(l, c, true);
        return;
    }
    if (!l->o.urls[c->url].tls) {
        send_upgrade(l, c);
        return;
    }
    char why[160] = "wss:// URL without a TLS context";
    c->tls = l->o.tls ? tlsio_open(l->o.tls, c->fd, l->o.urls[c->url].hostport, why, sizeof why) : NULL;
    if (!c->tls) {
        conn_error(l, "TLS", why, strlen(why));
        conn_close(l, c, true);
        return;
    }
    c->state = CONN_TLS;
    tls_step(l, c);
}

int conn_open(conn_loop *l, conn *c)
{
    c->t_open = conn_now_ns();
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_errno(l, "socket", errno);
        c->state = CONN_CLOSED;
        l->counts->failed++;
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (l->o.sources > 1) {
        /* Spread connections over source addresses 127.0.0.1..N; the port
         * is chosen at connect time for the whole 4-tuple. */
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(c->id % (uint32_t)l->o.sources));
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) {
            conn_errno(l, "bind", errno);
            close(c->fd);
            c->fd = -1;
            c->state = CONN_CLOSED;
            l->counts->failed++;
            return -1;
        }
    }
    c->want_out = true;
    c->state = CONN_TCP;
    l->inflight++;
    l->counts->opened++;
    const conn_url *u = &l->o.urls[c->url];
    if (connect(c->fd, (const struct sockaddr *)&u->addr, sizeof u->addr) != 0 && errno != EINPROGRESS) {
        conn_errno(l, "connect", errno);
        close(c->fd);
        c->fd = -1;
        c->state = CONN_CLOSED;
        l->inflight--;
        l->counts->failed++;
        return -1;
    }
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
    epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

int conn_poll(conn_loop *l, int timeout_ms)
{
    struct epoll_event evs[CONN_EVENTS];
    int n = epoll_wait(l->ep, evs, CONN_EVENTS, timeout_ms);
    if (n > 0)
        l->counts->polls++;
    for (int i = 0; i < n; i++) {
        conn *c = evs[i].data.ptr;
        if (c->state == CONN_CLOSED)
            continue;
        if (c->state == CONN_TCP) {
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                on_connected_tcp(l, c);
            continue;
        }
        if (c->state == CONN_TLS) {
            tls_step(l, c);
            continue;
        }
        if (evs[i].events & EPOLLOUT)
            conn_flush(l, c);
        if (c->state != CONN_CLOSED && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            on_readable(l, c);
    }
    return n < 0 ? 0 : n;
}
