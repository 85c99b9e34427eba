/* listener.h — listening TCP sockets of our own, feeding a libwebsockets vhost.
 *
 * libwebsockets 4.1 binds its listener from a text (info.iface), and what it
 * binds is not always what was asked: an IPv6 address with IPv6 off listens
 * on every IPv4 address, and a name that is neither a local address nor an
 * interface leaves the vhost without any listener while the program runs on
 * silently. Where a program listens decides who can reach it (lectern-server
 * allows auth.mode=none only on loopback), so the socket is ours: the address
 * is resolved here, bound exactly, read back with getsockname, and every
 * accepted connection is handed to lws (lws_adopt_socket_vhost), which then
 * treats it as one of its own, down to closing it when adoption fails.
 *
 * An address is written as lectern's knobs write it: "" (every address), an
 * IPv4 address in dotted-quad form, or the name of an interface that has an
 * IPv4 address (its first one). Host names and IPv6 are refused (the
 * programs run lws with IPv6 off).
 */
#ifndef LECTERN_LISTENER_H
#define LECTERN_LISTENER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct lws_vhost;

typedef struct listener listener;

/* Resolve `text` (see above) and `port` into *out. Returns 0, or -1 with
 * "<what>: reason" in err. Reads the interface list; never blocks on the
 * network. */
int listener_resolve(const char *what, const char *text, int port, struct sockaddr_in *out,
                     char *err, size_t errlen);

/* The same for "host:port" (host as above and possibly empty: ":9300" is
 * every address; port 0..65535). */
int listener_resolve_hostport(const char *what, const char *text, struct sockaddr_in *out,
                              char *err, size_t errlen);

/* Is sa in 127.0.0.0/8 (reachable from this host only)? Pure. */
bool listener_is_loopback(const struct sockaddr_in *sa);

/* "127.0.0.1:8300" into out. Pure. */
void listener_format(const struct sockaddr_in *sa, char *out, size_t outlen);

/* Bind and listen on *at (SO_REUSEADDR; SO_REUSEPORT too when reuseport, so
 * that several processes share the port), and from then on hand every
 * accepted connection to vh, with `tag` as its opaque user data
 * (lws_get_opaque_user_data): how the program tells its listeners'
 * connections apart, since lws re-binds an HTTP connection to whichever of
 * its vhosts the Host header names. NULL with the reason in err. loop, vh
 * and tag are borrowed and must outlive the listener. */
listener *listener_create(uv_loop_t *loop, struct lws_vhost *vh, const struct sockaddr_in *at,
                          bool reuseport, void *tag, char *err, size_t errlen);

/* The address really bound (the port filled in when 0 was asked). */
const struct sockaddr_in *listener_addr(const listener *l);

/* Stop accepting and close the socket now; the memory goes once libuv has
 * closed its handles (the loop must run). Accepts NULL. */
void listener_destroy(listener *l);

#endif
