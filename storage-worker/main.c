/* main.c — lectern-storage: the command line and the process's loop.
 *
 * Configuration is layered like the server's: defaults (the knob table),
 * --config FILE, then each --set. The main thread runs a libuv loop with
 * the signal handlers and the HTTP endpoint; the worker thread (worker.c)
 * does the consuming and writing. SIGTERM/SIGINT ask the worker to finish
 * its batch; the process exits 0 once it has, or once
 * storage.shutdown_timeout_ms has passed (what was not acked is redelivered).
 */
#include "config.h"
#include "httpd.h"
#include "log.h"
#include "worker.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define STORAGE_VERSION "0.1.0"

typedef struct app {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_timer_t stop_timer;
    httpd *http;
    worker *worker;
    const storage_config *conf;
    uint64_t stop_started;
    bool stopping;
} app;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: lectern-storage [options]\n"
            "\n"
            "Lectern's storage worker: consumes the durable storage queue that every\n"
            "lectern-server publishes each message to, and writes the messages into\n"
            "MySQL/MariaDB in batches, exactly once (idempotent inserts, acks after\n"
            "commit). Run as many as you like: they share the queue. The schema is\n"
            "created and migrated at start.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE    read knobs from FILE (see config/lectern-storage.conf)\n"
            "  -s, --set KEY=VALUE  override one knob, e.g. --set storage.batch_max=1000;\n"
            "                       may be repeated; applied after --config\n"
            "      --print-config   print every knob with its default and help, as a\n"
            "                       config file, and exit\n"
            "      --check-config   load the configuration, report any error, and exit\n"
            "  -V, --version        print the version and exit\n"
            "  -h, --help           print this help and exit\n"
            "\n"
            "HTTP (http.port): GET /healthz, /readyz (RabbitMQ and MySQL usable), /metrics.\n"
            "Signals: SIGTERM or SIGINT finish the batch in hand and exit 0.\n"
            "Logs: one key=value line per event on stderr.\n");
}

static int app_http(void *ctx, const char *path, buf *body, const char **ctype)
{
    app *a = ctx;
    if (!strcmp(path, "/healthz")) {
        buf_append_str(body, "ok\n");
        return 200;
    }
    if (!strcmp(path, "/readyz")) {
        const char *why = NULL;
        if (!a->stopping && worker_ready(a->worker, &why)) {
            buf_append_str(body, "ready\n");
            return 200;
        }
        buf_append_str(body, a->stopping ? "stopping" : why);
        buf_append_str(body, "\n");
        return 503;
    }
    if (!strcmp(path, "/metrics")) {
        *ctype = "text/plain; version=0.0.4";
        worker_metrics(a->worker, body);
        return 200;
    }
    buf_append_str(body, "not found\n");
    return 404;
}

static void app_close_all(app *a)
{
    uv_timer_stop(&a->stop_timer);
    uv_close((uv_handle_t *)&a->stop_timer, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    httpd_destroy(a->http);
    a->http = NULL;
}

static void app_on_stop_tick(uv_timer_t *t)
{
    app *a = t->data;
    uint64_t waited = uv_now(&a->loop) - a->stop_started;
    if (worker_finished(a->worker) || waited >= (uint64_t)a->conf->shutdown_timeout_ms) {
        if (!worker_finished(a->worker))
            log_warn("shutdown_timeout", "waited_ms=%llu detail=\"exiting with the batch "
                     "in hand unacknowledged; RabbitMQ redelivers it\"",
                     (unsigned long long)waited);
        app_close_all(a);
    }
}

static void app_on_signal(uv_signal_t *h, int signum)
{
    app *a = h->data;
    if (a->stopping)
        return;
    a->stopping = true;
    a->stop_started = uv_now(&a->loop);
    log_info("shutdown", "reason=%s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    worker_stop(a->worker);
    uv_timer_start(&a->stop_timer, app_on_stop_tick, 0, 20);
}

static int app_run(const storage_config *conf)
{
    app a;
    char err[256];
    memset(&a, 0, sizeof a);
    a.conf = conf;
    uv_loop_init(&a.loop);
    uv_signal_init(&a.loop, &a.sigterm);
    uv_signal_init(&a.loop, &a.sigint);
    uv_timer_init(&a.loop, &a.stop_timer);
    a.sigterm.data = a.sigint.data = a.stop_timer.data = &a;
    uv_signal_start(&a.sigterm, app_on_signal, SIGTERM);
    uv_signal_start(&a.sigint, app_on_signal, SIGINT);

    int rc = 1;
    if (conf->http_port) {
        a.http = httpd_create(&a.loop, conf->http_listen, conf->http_port, app_http, &a, err,
                              sizeof err);
        if (!a.http) {
            log_error("startup_failed", "reason=\"%s\"", err);
            goto out;
        }
    }
    a.worker = worker_create(conf);
    if (!a.worker)
        goto out;
    log_info("started", "version=%s queue=%s http_port=%d batch_max=%d prefetch=%d",
             STORAGE_VERSION, conf->queue, conf->http_port, conf->batch_max, conf->prefetch);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    rc = 0;
    if (worker_finished(a.worker))
        worker_destroy(a.worker);       /* else it is stuck in MySQL: leave it to exit() */
    log_info("stopped", "status=0");
    uv_loop_close(&a.loop);
    return rc;

out:
    app_close_all(&a);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    return rc;
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

    memset(&conf, 0, sizeof conf);
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
            printf("lectern-storage %s\n", STORAGE_VERSION);
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
    if (cfg_defaults(storage_knobs, &conf, err, sizeof err) < 0 ||
        (config_file && cfg_load_file(storage_knobs, &conf, config_file, err, sizeof err) < 0))
        goto bad_config;
    for (int i = 0; i < nsets; i++)
        if (cfg_set(storage_knobs, &conf, sets[i], err, sizeof err) < 0)
            goto bad_config;
    if (conf.prefetch < conf.batch_max) {
        snprintf(err, sizeof err, "storage.prefetch (%d) must be at least storage.batch_max (%d)",
                 conf.prefetch, conf.batch_max);
        goto bad_config;
    }
    if (check_only) {
        printf("configuration ok\n");
        rc = 0;
        goto out;
    }
    log_init("lectern-storage", log_level_parse(conf.log_level));
    signal(SIGPIPE, SIG_IGN);
    rc = app_run(&conf);
    goto out;

bad_config:
    fprintf(stderr, "lectern-storage: configuration error: %s\n", err);
    rc = 2;
out:
    cfg_free(storage_knobs, &conf);
    free(sets);
    return rc;
}
