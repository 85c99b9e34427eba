/* listener.c — listening sockets of our own, feeding an lws vhost (listener.h).
 *
 * Resolution is deliberately narrow: a dotted-quad IPv4 address
 * (inet_pton, so "127.1" and "localhost" are refused rather than guessed
 * at), or an interface name looked up with getifaddrs. Anything else is an
 * error at start, never a silent "every address".
 *
 * A listener is a non-blocking socket watched by a uv_poll_t on the
 * program's loop. When it is readable, accept4 runs until EAGAIN and each
 * descriptor goes to lws_adopt_socket_vhost, which owns it from then on,
 * whether it succeeds or not: when adoption fails (a TLS handshake can fail
 * inside it, when the ClientHello was already waiting) lws closes the
 * descriptor itself, and with the libuv loop it does so only once its poll
 * handle has closed, a loop iteration later. Closing it here as well would
 * close whichever connection is accepted next on the same number, and
 * libuv aborts on a descriptor closed under a live poll handle.
 *
 * Every accepted socket gets TCP_NODELAY first (adopting a socket leaves
 * its options to us): with Nagle's algorithm a conversation of small
 * writes, such as a TLS handshake's last flight followed by the 101, stalls
 * until the peer's delayed ACK. A program that prefers Nagle once the
 * conversation is over turns it back on itself (lectern-server does for
 * established WebSockets, websocket.tcp_nodelay). When the process is out
 * of descriptors (EMFILE, ENFILE) or memory,
 * the pending connection stays in the kernel's queue and the socket stays
 * readable: polling on would spin a core, so accepting pauses for
 * LISTENER_PAUSE_MS (one log line per pause) and resumes by timer.
 *
 * Invariant: once listener_destroy has run, no connection is accepted (the
 * socket is closed at once; the handles close asynchronously and the last
 * close callback frees the struct).
 */
#include "listener.h"

#include "log.h"
#include "mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <libwebsockets.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTENER_PAUSE_MS 100

struct listener {
    uv_loop_t *loop;
    struct lws_vhost *vh;
    void *tag;
    int fd;
    struct sockaddr_in addr;
    uv_poll_t poll;
    uv_timer_t pause;
    int open_handles;            /* freed when the last one has closed */
};

int listener_resolve(const char *what, const char *text, int port, struct sockaddr_in *out,
                     char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    if (port < 0 || port > 65535) {
        snprintf(err, errlen, "%s: port %d is not in 0..65535", what, port);
        return -1;
    }
    out->sin_port = htons((uint16_t)port);
    if (!text || !text[0]) {
        out->sin_addr.s_addr = htonl(INADDR_ANY);
        return 0;
    }
    if (inet_pton(AF_INET, text, &out->sin_addr) == 1)
        return 0;
    struct ifaddrs *ifs = NULL;
    bool named = false;
    if (strlen(text) < IFNAMSIZ && getifaddrs(&ifs) == 0) {
        for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
            if (strcmp(i->ifa_name, text))
                continue;
            named = true;
            if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET) {
                out->sin_addr = ((const struct sockaddr_in *)i->ifa_addr)->sin_addr;
                freeifaddrs(ifs);
                return 0;
            }
        }
        freeifaddrs(ifs);
    }
    if (named)
        snprintf(err, errlen, "%s: interface '%s' has no IPv4 address", what, text);
    else
        snprintf(err, errlen, "%s: '%s' is neither an IPv4 address (a.b.c.d) nor the name of "
                 "an interface (IPv6 and host names are not supported)", what, text);
    return -1;
}

int listener_resolve_hostport(const char *what, const char *text, struct sockaddr_in *out,
                              char *err, size_t errlen)
{
    const char *colon = text ? strrchr(text, ':') : NULL;
    if (!colon || !colon[1] || strlen(colon + 1) > 5 ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
        snprintf(err, errlen, "%s: '%s' is not host:port (e.g. 127.0.0.1:9300, or :9300 for "
                 "every address)", what, text ? text : "");
        return -1;
    }
    char host[64];
    size_t hl = (size_t)(colon - text);
    if (hl >= sizeof host) {
        snprintf(err, errlen, "%s: host part of '%s' is too long", what, text);
        return -1;
    }
    memcpy(host, text, hl);
    host[hl] = '\0';
    return listener_resolve(what, host, atoi(colon + 1), out, err, errlen);
}

bool listener_is_loopback(const struct sockaddr_in *sa)
{
    return (ntohl(sa->sin_addr.s_addr) >> 24) == 127;
}

void listener_format(const struct sockaddr_in *sa, char *out, size_t outlen)
{
    char a[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &sa->sin_addr, a, sizeof a);
    snprintf(out, outlen, "%s:%u", a, (unsigned)ntohs(sa->sin_port));
}

static void listener_on_poll(uv_poll_t *h, int status, int events);

static void listener_on_pause(uv_timer_t *t)
{
    listener *l = t->data;
    uv_poll_start(&l->poll, UV_READABLE, listener_on_poll);
}

static void listener_on_poll(uv_poll_t *h, int status, int events)
{
    listener *l = h->data;
    (void)events;
    if (status < 0)
        return;
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            int one = 1;
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            /* On failure lws has closed, or will close, fd: never here. */
            struct lws *wsi = lws_adopt_socket_vhost(l->vh, fd);
            if (wsi && l->tag)
                lws_set_opaque_user_data(wsi, l->tag);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        char at[48];
        listener_format(&l->addr, at, sizeof at);
        log_warn("accept_failed", "listen=%s error=\"%s\" pause_ms=%d", at, strerror(errno),
                 LISTENER_PAUSE_MS);
        uv_poll_stop(&l->poll);
        uv_timer_start(&l->pause, listener_on_pause, LISTENER_PAUSE_MS, 0);
        return;
    }
}

listener *listener_create(uv_loop_t *loop, struct lws_vhost *vh, const struct sockaddr_in *at,
                          bool reuseport, void *tag, char *err, size_t errlen)
{
    char where[48];
    listener_format(at, where, sizeof where);
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one)) ||
        bind(fd, (const struct sockaddr *)at, sizeof *at) || listen(fd, 1024)) {
        snprintf(err, errlen, "cannot listen on %s%s: %s", where,
                 reuseport ? " with SO_REUSEPORT" : "", strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    listener *l = xcalloc(1, sizeof *l);
    l->loop = loop;
    l->vh = vh;
    l->tag = tag;
    l->fd = fd;
    socklen_t sl = sizeof l->addr;
    if (getsockname(fd, (struct sockaddr *)&l->addr, &sl))
        l->addr = *at;
    uv_poll_init(loop, &l->poll, fd);
    l->poll.data = l;
    uv_timer_init(loop, &l->pause);
    l->pause.data = l;
    l->open_handles = 2;
    uv_poll_start(&l->poll, UV_READABLE, listener_on_poll);
    return l;
}

const struct sockaddr_in *listener_addr(const listener *l)
{
    return &l->addr;
}

static void listener_on_closed(uv_handle_t *h)
{
    listener *l = h->data;
    if (--l->open_handles == 0)
        free(l);
}

void listener_destroy(listener *l)
{
    if (!l)
        return;
    uv_poll_stop(&l->poll);
    uv_timer_stop(&l->pause);
    uv_close((uv_handle_t *)&l->poll, listener_on_closed);
    uv_close((uv_handle_t *)&l->pause, listener_on_closed);
    close(l->fd);
    l->fd = -1;
}
