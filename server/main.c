/* main.c — lectern-server's command line: what the program is, for the
 * front end that every Lectern program shares (lib/cli).
 *
 * Configuration is layered: built-in defaults (the knob table), then the
 * file given with --config, then the environment (LECTERN_SECTION_KEY
 * variables), then each --set in order, then --port. Any
 * invalid value stops the program with "where: why" before anything starts.
 */
#include "auth.h"
#include "cli.h"
#include "config.h"
#include "listener.h"
#include "mysqlconn.h"
#include "peers.h"
#include "server.h"
#include "tlscert.h"
#include "version.h"

/* What the knob table cannot check, and where the server will listen: that
 * decides whether auth.mode=none may run (server.c checks the socket it
 * really bound the same way). */
static int main_check(const void *conf, char *err, size_t errlen)
{
    const server_config *c = conf;
    struct sockaddr_in at;
    if (server_config_check(c, err, errlen) < 0 ||
        listener_resolve("server.listen", c->listen, c->port, &at, err, errlen) < 0 ||
        server_config_check_exposure(c, listener_is_loopback(&at), err, errlen) < 0)
        return -1;
    if (c->metrics_listen[0] &&
        listener_resolve_hostport("metrics.listen", c->metrics_listen, &at, err, errlen) < 0)
        return -1;
    return 0;
}

/* --check-config: what only starting would find otherwise: the key file,
 * the proxies, the TLS certificate and key. */
static int main_check_start(const void *conf, char *err, size_t errlen)
{
    const server_config *c = conf;
    peers *pp = peers_create(c->trusted_proxies, c->max_conns_per_ip, err, errlen);
    peers_destroy(pp);
    if (!pp || auth_check_config(c, err, errlen) < 0)
        return -1;
    tlscert_info cert;
    if (c->tls_cert[0] && tlscert_check(c->tls_cert, c->tls_key, &cert, err, errlen) < 0)
        return -1;
    return 0;
}

static void *main_create(const void *conf, char *err, size_t errlen)
{
    return server_create(conf, err, errlen);
}

static int main_run(void *app) { return server_run(app); }
static void main_destroy(void *app) { server_destroy(app); }

static const cli_alias aliases[] = {
    { "port", 'p', "N", "server.port", "listen on port N (same as --set server.port=N)" },
    { NULL, 0, NULL, NULL, NULL },
};

static const cli_program program = {
    .name = "lectern-server",
    .version = LECTERN_VERSION,
    .about =
        "Lectern's STOMP 1.2-over-WebSocket server: lecture rooms are /topic/<room>.\n"
        "One port serves the WebSocket endpoint (/ws by default) and HTTP\n"
        "(GET /healthz, GET /metrics; /metrics on its own port with metrics.listen).\n"
        "Without authentication (auth.mode=none, the default) it starts only when\n"
        "server.listen is a loopback address; see auth.mode.\n",
    .config_file = "config/lectern.conf",
    .set_example = "stomp.max_frame=1m",
    .epilog =
        "Signals: SIGTERM or SIGINT drain: clients are closed with WebSocket code\n"
        "1012 once what they sent is confirmed, then the server exits 0\n"
        "(server.drain_timeout_ms). SIGHUP reloads server.tls_cert and\n"
        "server.tls_key (open connections keep theirs).\n"
        "Logs: one key=value line per event on stderr.\n",
    .aliases = aliases,
    .knobs = server_knobs,
    .config_title = server_config_title,
    .conf_size = sizeof(server_config),
    .check = main_check,
    .check_start = main_check_start,
    .init = mysqlconn_library_init,
    .end = mysqlconn_library_end,
    .create = main_create,
    .run = main_run,
    .destroy = main_destroy,
};

int main(int argc, char **argv)
{
    static server_config conf;
    return cli_main(&program, &conf, argc, argv);
}
