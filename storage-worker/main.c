/* main.c — lectern-storage's command line.
 *
 * Configuration is layered as in lectern-server: built-in defaults (the knob
 * table), then the file given with --config, then the environment
 * (LECTERN_SECTION_KEY variables), then each --set in order. Any
 * invalid value stops the program with "where: why" (exit 2) before
 * anything starts.
 */
#include "config.h"
#include "log.h"
#include "service.h"
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
            "Usage: lectern-storage [options]\n"
            "\n"
            "Lectern's storage worker: consumes the durable storage queue that\n"
            "lectern-server publishes every room message to, and writes the messages\n"
            "into MySQL/MariaDB in batches (idempotent: a message is stored once however\n"
            "often it is delivered), acknowledging each batch only after its COMMIT.\n"
            "Run any number of workers side by side. The schema (table messages) is\n"
            "created or migrated at start.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE    read knobs from FILE (see config/lectern-storage.conf)\n"
            "  -s, --set KEY=VALUE  override one knob, e.g. --set storage.batch_max=1000;\n"
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
            "HTTP (http.port, default 8390): GET /healthz, /readyz (200 when consuming\n"
            "and MySQL is connected, else 503 with a reason), /metrics (Prometheus).\n"
            "Signals: SIGTERM or SIGINT stop consuming, write and acknowledge the\n"
            "messages in hand, and exit 0 (within storage.shutdown_timeout_ms).\n"
            "Logs: one key=value line per event on stderr.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "set", required_argument, NULL, 's' },
        { "print-config", no_argument, NULL, 'P' },
        { "check-config", no_argument, NULL, 'C' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    storage_config conf;
    char err[512];
    const char *config_file = NULL;
    const char **sets = calloc((size_t)argc, sizeof *sets);
    int nsets = 0, check_only = 0, rc = 1, opt;
    service *s = NULL;

    memset(&conf, 0, sizeof conf);
    if (!sets) {
        fprintf(stderr, "lectern-storage: out of memory\n");
        return 1;
    }
    while ((opt = getopt_long(argc, argv, "c:s:Vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_file = optarg; break;
        case 's': sets[nsets++] = optarg; break;
        case 'C': check_only = 1; break;
        case 'P':
            cfg_print(storage_knobs, storage_config_title, stdout);
            rc = 0;
            goto out;
        case 'V':
            printf("lectern-storage %s\n", LECTERN_VERSION);
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
        fprintf(stderr, "lectern-storage: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        rc = 2;
        goto out;
    }

    if (cfg_load(storage_knobs, &conf, config_file, sets, nsets, err, sizeof err) < 0)
        goto bad_config;
    if (storage_config_check(&conf, err, sizeof err) < 0)
        goto bad_config;
    if (check_only) {
        printf("configuration ok\n");
        rc = 0;
        goto out;
    }

    log_init("lectern-storage", log_level_parse(conf.log_level));
    signal(SIGPIPE, SIG_IGN);
    /* Before any thread: libmariadb's global initialisation is not thread-safe. */
    if (mysql_library_init(0, NULL, NULL)) {
        log_error("startup_failed", "reason=\"cannot initialise the MySQL client library\"");
        goto out;
    }
    s = service_create(&conf, err, sizeof err);
    if (!s) {
        log_error("startup_failed", "reason=\"%s\"", err);
        mysql_library_end();
        goto out;
    }
    rc = service_run(s);
    service_destroy(s);
    mysql_library_end();
    log_info("exit", "status=%d", rc);
    goto out;

bad_config:
    fprintf(stderr, "lectern-storage: configuration error: %s\n", err);
    rc = 2;
out:
    cfg_free(storage_knobs, &conf);
    free(sets);
    return rc;
}
