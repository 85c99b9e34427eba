/* main.c — lectern-server's command line.
 *
 * Configuration is layered: built-in defaults (the knob table), then the
 * file given with --config, then the environment (LECTERN_SECTION_KEY
 * variables), then each --set in order, then --port. Any
 * invalid value stops the program with "where: why" before anything starts.
 */
#include "auth.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "peers.h"
#include "server.h"
#include "version.h"

#include <getopt.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: lectern-server [options]\n"
            "\n"
            "Lectern's STOMP 1.2-over-WebSocket server: lecture rooms are /topic/<room>.\n"
            "One port serves the WebSocket endpoint (/ws by default) and HTTP\n"
            "(GET /healthz, GET /metrics; /metrics on its own port with metrics.listen).\n"
            "Without authentication (auth.mode=none, the default) it starts only when\n"
            "server.listen is a loopback address; see auth.mode.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE    read knobs from FILE (see config/lectern.conf)\n"
            "  -p, --port N         listen on port N (same as --set server.port=N)\n"
            "  -s, --set KEY=VALUE  override one knob, e.g. --set stomp.max_frame=1m;\n"
            "                       may be repeated; applied after --config and the\n"
            "                       environment\n"
            "Every knob can also be set by an environment variable named after it:\n"
            "LECTERN_ and the knob upper-cased, '.' as '_' (redis.host ->\n"
            "LECTERN_REDIS_HOST); it overrides the file, --set overrides it.\n"
            "      --print-config   print every knob with its default and help, as a\n"
            "                       config file, and exit\n"
            "      --check-config   load the configuration, report any error, and exit\n"
            "  -V, --version        print the version and exit\n"
            "  -h, --help           print this help and exit\n"
            "\n"
            "Signals: SIGTERM or SIGINT drain: clients are closed with WebSocket code\n"
            "1012 once what they sent is confirmed, then the server exits 0\n"
            "(server.drain_timeout_ms).\n"
            "Logs: one key=value line per event on stderr.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "port", required_argument, NULL, 'p' },
        { "set", required_argument, NULL, 's' },
        { "print-config", no_argument, NULL, 'P' },
        { "check-config", no_argument, NULL, 'C' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    server_config conf;
    char err[512];
    const char *config_file = NULL, *port = NULL;
    const char **sets = calloc((size_t)argc, sizeof *sets);
    int nsets = 0, check_only = 0, rc = 1, opt;
    server *srv = NULL;

    memset(&conf, 0, sizeof conf);
    while ((opt = getopt_long(argc, argv, "c:p:s:Vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_file = optarg; break;
        case 'p': port = optarg; break;
        case 's': sets[nsets++] = optarg; break;
        case 'C': check_only = 1; break;
        case 'P':
            cfg_print(server_knobs, server_config_title, stdout);
            rc = 0;
            goto out;
        case 'V':
            printf("lectern-server %s\n", LECTERN_VERSION);
            rc = 0;
            goto out;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            usage(stderr);
            rc = 2;
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lectern-server: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        rc = 2;
        goto out;
    }

    if (cfg_load(server_knobs, &conf, config_file, sets, nsets, err, sizeof err) < 0)
        goto bad_config;
    if (port && cfg_set_value(server_knobs, &conf, "server.port", port, err, sizeof err) < 0)
        goto bad_config;
    if (server_config_check(&conf, err, sizeof err) < 0)
        goto bad_config;
    /* Where the server will listen decides whether auth.mode=none may run
     * (server.c checks the socket it really bound the same way). */
    struct sockaddr_in at;
    if (listener_resolve("server.listen", conf.listen, conf.port, &at, err, sizeof err) < 0 ||
        server_config_check_exposure(&conf, listener_is_loopback(&at), err, sizeof err) < 0 ||
        (conf.metrics_listen[0] &&
         listener_resolve_hostport("metrics.listen", conf.metrics_listen, &at, err,
                                   sizeof err) < 0))
        goto bad_config;
    if (check_only) {
        /* What only starting would find otherwise: the key file, the proxies. */
        peers *pp = peers_create(conf.trusted_proxies, conf.max_conns_per_ip, err, sizeof err);
        peers_destroy(pp);
        if (!pp || auth_check_config(&conf, err, sizeof err) < 0)
            goto bad_config;
        printf("configuration ok\n");
        rc = 0;
        goto out;
    }

    log_init("lectern-server", log_level_parse(conf.log_level));
    signal(SIGPIPE, SIG_IGN);
    /* Before any thread: libmariadb's global initialisation is not thread-safe. */
    if (mysql_library_init(0, NULL, NULL)) {
        log_error("startup_failed", "reason=\"cannot initialise the MySQL client library\"");
        goto out;
    }
    srv = server_create(&conf, err, sizeof err);
    if (!srv) {
        log_error("startup_failed", "reason=\"%s\"", err);
        mysql_library_end();
        goto out;
    }
    rc = server_run(srv);
    server_destroy(srv);
    mysql_library_end();
    log_info("exit", "status=%d", rc);
    goto out;

bad_config:
    fprintf(stderr, "lectern-server: configuration error: %s\n", err);
    rc = 2;
out:
    cfg_free(server_knobs, &conf);
    free(sets);
    return rc;
}
