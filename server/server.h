/* server.h — one lectern-server process: its event loop and what hangs off it.
 *
 * The server owns the libuv loop, the libwebsockets context running on it
 * (one port: WebSocket STOMP and HTTP), the room index, the relay, the
 * session list and the metrics. The server wires its modules together and
 * lends each what it uses (session_env, http_env, resume_env); no module
 * calls back into it.
 */
#ifndef LECTERN_SERVER_H
#define LECTERN_SERVER_H

#include "config.h"

typedef struct server server;

/* Create the loop and the lws context and start listening. conf is borrowed
 * and must outlive the server. Returns NULL with a reason in err. */
server *server_create(const server_config *conf, char *err, size_t errlen);

/* Run until SIGTERM or SIGINT, then close every connection and return 0. */
int server_run(server *srv);

/* Accepts NULL. */
void server_destroy(server *srv);

#endif
