/* origin.h — which web pages may open a WebSocket to the server.
 *
 * A browser sends an Origin header with every WebSocket upgrade: the
 * scheme://host[:port] of the page running the script. websocket.allowed_origins
 * lists the pages allowed (comma-separated); an upgrade whose Origin is not
 * among them is refused with 403, so a page on another site cannot use a
 * visitor's browser to reach the server. An upgrade without Origin is not a
 * browser's (browsers always send it) and is allowed: native clients and
 * tools send none, and since a non-browser client can write any Origin it
 * likes, the header proves nothing outside a browser. An empty list allows
 * every origin.
 *
 * Origins compare as browsers serialise them: scheme and host in any case
 * (both are case-insensitive), the default port (80 for http/ws, 443 for
 * https/wss) the same as no port.
 */
#ifndef LECTERN_ORIGIN_H
#define LECTERN_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

typedef struct origin_list origin_list;

/* Parse the comma-separated list (NULL or "" allows every origin). NULL
 * with "websocket.allowed_origins: reason" in err when an entry is not
 * scheme://host[:port] (no path, no trailing '/'). */
origin_list *origin_list_create(const char *csv, char *err, size_t errlen);
/* Accepts NULL. */
void origin_list_destroy(origin_list *l);

/* Only validate csv, as origin_list_create would. Returns 0 or -1. */
int origin_list_check(const char *csv, char *err, size_t errlen);

/* Does the list allow every origin (it is empty)? */
bool origin_list_any(const origin_list *l);
/* Number of origins listed. */
size_t origin_list_count(const origin_list *l);

/* May a page of origin[0..len) open a WebSocket? Pure. */
bool origin_list_allows(const origin_list *l, const char *origin, size_t len);

#endif
