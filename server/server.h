/* server.h — one lectern-server process: its event loop and what hangs off it.
 *
 * The server owns the libuv loop, the libwebsockets context running on it
 * (one port: WebSocket STOMP and HTTP), the room index, the relay, the
 * session set and the metrics. The accessors below are for the server's own
 * modules (session, http), which run on the same loop.
 */
#ifndef LECTERN_SERVER_H
#define LECTERN_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "metrics.h"
#include "ratelimit.h"
#include "relay.h"
#include "room.h"
#include "session.h"
#include "stomp.h"
#include "version.h"


typedef struct server server;

/* Create the loop and the lws context and start listening. conf is borrowed
 * and must outlive the server. Returns NULL with a reason in err. */
server *server_create(const server_config *conf, char *err, size_t errlen);

/* Run until SIGTERM or SIGINT, then close every connection and return 0. */
int server_run(server *srv);

/* Accepts NULL. */
void server_destroy(server *srv);

const server_config *server_conf(const server *srv);
metrics *server_metrics(server *srv);
stomp_parser *server_parser(server *srv);
/* The per-connection input limits (limits.send_*, limits.frame_*). */
const ratelimit_rules *server_ratelimit(const server *srv);
relay *server_relay(server *srv);
struct registry *server_registry(server *srv);
struct presence *server_presence(server *srv);
struct history *server_history(server *srv);
/* The slots of history reads (http.max_inflight), shared by GET .../messages
 * and x-since replays; lives as long as the server. */
struct gate *server_history_gate(server *srv);
struct auth *server_auth(server *srv);
/* websocket.allowed_origins, parsed. */
const struct origin_list *server_origins(const server *srv);

/* Rates over the last whole second (the tick measures them), for /api/stats. */
typedef struct server_rates {
    double published_per_s;      /* SENDs accepted */
    double delivered_per_s;      /* MESSAGEs queued to local subscribers */
} server_rates;
const server_rates *server_get_rates(const server *srv);
uint64_t server_uptime_ms(const server *srv);
/* This server's id in the cluster (server.id, or generated at start). */
const char *server_id(const server *srv);
uint64_t server_now_ms(const server *srv);
/* The event loop everything of this server runs on. */
uv_loop_t *server_loop(server *srv);
uint64_t server_next_session_id(server *srv);

/* The write buffer shared by all connections (the loop is single-threaded
 * and a write completes within one callback): LWS_PRE bytes of headroom
 * then *cap usable bytes. */
unsigned char *server_scratch(server *srv, size_t *cap);

/* Can this server take messages now? false with a reason otherwise. */
bool server_ready(const server *srv, const char **why);

/* Snapshot of the live-state gauges. */
void server_gauges(server *srv, metrics_gauges *g);

#endif
