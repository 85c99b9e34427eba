/* conn.h — the load generator's client connections: TCP, the WebSocket
 * handshake, STOMP CONNECT, reading, writing and the epoll loop (see conn.c).
 *
 * Both lectern-load's room scenarios (load.c) and its status scenarios
 * (status.c) drive thousands of connections from one epoll loop per
 * process. This module owns everything up to "a whole STOMP frame arrived
 * on connection c"; what a frame means is the caller's, through hooks.
 * With CONN_SOCKETIO the same hooks are fed from Socket.IO packets (sio.h)
 * instead, so the room scenarios run unchanged against a Socket.IO peer.
 *
 * A caller keeps its own per-connection data in a struct whose FIRST member
 * is a `conn` (as hiredis' redisAsyncContext embeds its redisContext), so a
 * hook's `conn *` casts back to the caller's struct.
 */
#ifndef LECTERN_LOAD_CONN_H
#define LECTERN_LOAD_CONN_H

#include "scan.h"
#include "tlsio.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONN_RBUF (256 * 1024)   /* bytes read from a socket at once */

/* A connection's life. The module moves it IDLE/CLOSED -> TCP (-> TLS, for
 * a wss:// URL) -> HANDSHAKE -> STOMP (CONNECT sent; with CONN_SOCKETIO: waiting for the Engine.IO
 * open, then for the namespace's connect); the caller moves it on to SUBSCRIBING when it
 * waits for an answer of its own, and to READY with conn_ready. Anything
 * before READY (and not IDLE or CLOSED) counts as in flight. */
typedef enum conn_state {
    CONN_IDLE = 0,               /* never opened */
    CONN_TCP, CONN_TLS, CONN_HANDSHAKE, CONN_STOMP, CONN_SUBSCRIBING, CONN_READY,
    CONN_CLOSED                  /* closed, or failed to open; may be opened again */
} conn_state;

/* Bytes carried from one read to the next: the incomplete tail of what was
 * parsed. Empty (and usually unallocated) between bursts. */
typedef struct conn_carry {
    unsigned char *p;
    uint32_t len, cap;
} conn_carry;

/* One connection. The caller sets id and url before conn_open and reads
 * state, t_open and out_len; the rest is the module's. */
typedef struct conn {
    int fd;
    uint8_t state;               /* conn_state */
    uint8_t url;                 /* index into conn_opts.urls */
    bool want_out;               /* EPOLLOUT registered */
    uint32_t id;                 /* the caller's number: picks the source address */
    int64_t t_open;              /* conn_now_ns() when conn_open began */
    char key[25];                /* Sec-WebSocket-Key sent */
    conn_carry ws;               /* raw input not yet a whole WebSocket frame */
    conn_carry st;               /* WebSocket payload not yet a whole STOMP frame
                                  * (Socket.IO: a fragmented message so far) */
    unsigned char *out;          /* output not yet accepted by the kernel */
    uint32_t out_len, out_off, out_cap;
    tlsio *tls;                  /* wss://: the TLS session on fd, else NULL */
} conn;

/* A ws:// or wss:// endpoint on this machine. */
typedef struct conn_url {
    char hostport[96];           /* the Host header (and, for wss://, the name checked) */
    char path[128];
    struct sockaddr_in addr;
    bool tls;                    /* wss:// */
} conn_url;

/* What happened to the connections, written by the module (and by the
 * caller for its own errors). volatile: load.c keeps these in memory a
 * parent process reads while its child writes. */
typedef struct conn_counts {
    volatile uint64_t opened;    /* sockets created (and bound) */
    volatile uint64_t ok;        /* made READY */
    volatile uint64_t failed;    /* closed before READY, or never opened */
    volatile uint64_t dropped;   /* closed by failure after READY */
    volatile uint64_t stomp_errors, ws_errors;
    uint64_t reads;              /* recv() calls */
    uint64_t polls;              /* epoll_wait() calls that returned events */
    char first_error[200];       /* the first error, for the report; "" if none */
    char tls[64];                /* the first TLS session's protocol and cipher; "" if none */
} conn_counts;

typedef struct conn_loop conn_loop;

/* What the connections speak inside WebSocket. */
typedef enum conn_protocol {
    CONN_STOMP_PROTO = 0,        /* STOMP 1.2 (the default) */
    CONN_SOCKETIO                /* Socket.IO 5 over Engine.IO 4, WebSocket transport */
} conn_protocol;

/* What the caller does with a connection's frames. Each hook borrows f
 * (valid during the call) and may send on c or close it. With
 * CONN_SOCKETIO, f is made from a packet: the namespace's connect is
 * CONNECTED (no headers), an event "m" is a MESSAGE whose body is the
 * event's first argument (still JSON-escaped), an ack is a RECEIPT with one
 * header, receipt-id:<ack id>. */
typedef struct conn_hooks {
    /* CONNECTED on a connection in state STOMP. Required. */
    void (*connected)(conn_loop *l, conn *c, const scan_frame *f);
    /* A MESSAGE. Required. */
    void (*message)(conn_loop *l, conn *c, const scan_frame *f);
    /* A RECEIPT, in any state; NULL ignores them. */
    void (*receipt)(conn_loop *l, conn *c, const scan_frame *f);
    /* Write c's CONNECT login (NUL-terminated) into dst[0..cap). Required
     * for STOMP; Socket.IO connects without one. */
    void (*login)(const conn *c, char *dst, size_t cap);
} conn_hooks;

typedef struct conn_opts {
    const conn_url *urls;        /* borrowed for the loop's life; conn.url indexes it */
    conn_protocol protocol;      /* STOMP unless set */
    const char *protocols;       /* the Sec-WebSocket-Protocol offer (NULL: none) */
    const char *accept_version;  /* CONNECT's accept-version, host and passcode */
    const char *vhost;
    const char *passcode;
    const char *heart_beat;      /* CONNECT's heart-beat value, "cx,cy" (NULL: "0,0") */
    long sources;                /* > 1: bind connection id to 127.0.0.1 + id % sources */
    size_t max_frame;            /* longer WebSocket or STOMP frames fail the connection */
    tlsio_ctx *tls;              /* borrowed: the TLS context of wss:// URLs (NULL: none) */
    conn_hooks hooks;
} conn_opts;

/* One epoll loop and its connections' shared state. Open so that callers
 * can hold it in static storage; read rx_now and inflight, touch nothing
 * else. */
struct conn_loop {
    conn_opts o;
    conn_counts *counts;         /* borrowed */
    int ep;
    long inflight;               /* opened, not yet READY or closed */
    int64_t rx_now;              /* when the bytes the hooks are given were read */
    uint64_t rng;
    unsigned char *rbuf;         /* CONN_RBUF bytes */
    unsigned char *tx;           /* conn_send_stomp's frame, grown as needed */
    size_t tx_cap;
};

/* CLOCK_MONOTONIC in ns: the clock of t_open and rx_now (and, since every
 * process on the machine shares it, of timestamps in message bodies). */
int64_t conn_now_ns(void);

/* Parse a STOMP heart-beat value "cx,cy" (two non-negative decimal
 * integers of ms, at most 24 h each, nothing else) into *cx and *cy.
 * Returns 0, or -1 with *cx and *cy untouched. */
int conn_heart_beat_parse(const char *s, long *cx, long *cy);

/* Parse "ws://host:port/path" or "wss://..." (host an IPv4 address or
 * "localhost"; port 80 or 443 when absent; path "/" when absent) into u.
 * Returns 0, or -1 with *why set to a static reason (the URL is neither
 * ws:// nor wss://, malformed, or not a loopback address: load goes to
 * this machine only). */
int conn_url_parse(const char *s, conn_url *u, const char **why);

/* Set up l with a copy of o (its pointers are borrowed), counting into
 * counts (borrowed), masking with a xorshift generator seeded by seed
 * (non-zero). Returns 0, or -1 when the epoll instance cannot be created
 * (errno says why; l is still safe to deinit). Out of memory aborts. */
int conn_loop_init(conn_loop *l, const conn_opts *o, conn_counts *counts, uint64_t seed);

/* Release l's epoll instance and buffers (not its connections: close them
 * first). For any l conn_loop_init was called on, whatever it returned. */
void conn_loop_deinit(conn_loop *l);

/* Start connecting c (state IDLE or CLOSED) to urls[c->url]: non-blocking,
 * so it returns at once with c in state TCP (0), or with c CLOSED and
 * counted failed (-1, the reason in first_error). */
int conn_open(conn_loop *l, conn *c);

/* Close c now and free its buffers: `failed` counts it as a failed connect
 * (before READY) or a dropped connection (after); a log-out passes false.
 * Does nothing to an IDLE or CLOSED connection. */
void conn_close(conn_loop *l, conn *c, bool failed);

/* c (in flight) has done what its caller needed: READY, counted ok. */
void conn_ready(conn_loop *l, conn *c);

/* Send p[0..n) (copied), keeping what the kernel does not take until the
 * socket is writeable. A send error closes c as failed. */
void conn_send(conn_loop *l, conn *c, const unsigned char *p, size_t n);

/* Send text[0..n) as one masked text frame: a STOMP frame (its NUL
 * included) or a Socket.IO packet. */
void conn_send_text(conn_loop *l, conn *c, const char *text, size_t n);

/* Send the STOMP frame text[0..n) (its NUL included) as one masked text
 * frame (conn_send_text). */
void conn_send_stomp(conn_loop *l, conn *c, const char *text, size_t n);

/* Write the STOMP frame text[0..n) (its NUL included) as one masked text
 * frame into dst (room for n + 14 bytes), for callers that batch frames
 * before one conn_send; returns the bytes written. */
size_t conn_frame(conn_loop *l, unsigned char *dst, const char *text, size_t n);

/* Record the first error of the run: "what" or "what: detail" with detail
 * (borrowed, may be NULL when dlen is 0) cut to 150 bytes. Later errors
 * are not kept. */
void conn_error(conn_loop *l, const char *what, const char *detail, size_t dlen);

/* Wait up to timeout_ms for socket events and handle them all: finish TCP
 * connects and TLS handshakes, flush output, read and parse input, calling the hooks. Returns
 * the number of events handled. */
int conn_poll(conn_loop *l, int timeout_ms);

#endif
